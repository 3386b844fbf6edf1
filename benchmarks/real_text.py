"""Real multilingual text that packages ship, and corpora built from it with a known share of repeated text.

Message catalogs (gettext ``.mo`` files) are translations people wrote for real programs: the Debian
packages of a machine install thousands under ``/usr/share/locale``, and PyPI packages ship their own
(WTForms: 34 languages). :func:`catalog_sentences` reads every translated message of such a tree, once per
distinct text, in a fixed order; :func:`with_repeats` turns distinct sentences into documents where a
chosen share of the characters sits in sentences that already occurred earlier in the corpus.
"""

from __future__ import annotations

import gettext
import random
from dataclasses import dataclass
from pathlib import Path

# A message that ends one of these ways is a sentence on its own: joined with a space, the sentence
# detector cuts between it and the next one, so every message stays one sentence of its document.
SENTENCE_ENDS = (".", "!", "?", "。", "！", "？")


def catalog_sentences(root: Path, min_chars: int = 12, max_chars: int = 300) -> list[tuple[str, str]]:
    """(language, message) for each distinct translated message of the ``*.mo`` files under ``root``
    (``<lang>/LC_MESSAGES/<domain>.mo``) that reads as one sentence: a single line, ``min_chars`` to
    ``max_chars`` long, ending like a sentence. Sorted by file, then message id: the same tree gives the
    same list."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for path in sorted(Path(root).glob("*/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 (the parsed messages)
        except Exception:  # noqa: BLE001 - a catalog in another charset, or not a catalog: skip it
            continue
        lang = path.parts[-3]
        for key in sorted(catalog, key=str):
            text = catalog[key]
            if not key or not isinstance(text, str):
                continue
            text = " ".join(text.split())
            if (min_chars <= len(text) <= max_chars and "\n" not in catalog[key] and text.endswith(SENTENCE_ENDS)
                    and "%" not in text and text not in seen):
                seen.add(text)
                out.append((lang, text))
    return out


@dataclass(frozen=True)
class Corpus:
    documents: list[tuple[str, str, str]]  # (doc_id, lang, text)
    repeated_share: float  # characters in repeated sentences / all sentence characters, as built
    first_used: int  # how many of the sentences given it used (the first ones, in order)


def with_repeats(sentences: list[tuple[str, str]], total_chars: int, repeated_share: float, seed: int = 0,
                 per_document: tuple[int, int] = (2, 6)) -> Corpus:
    """Documents of ``per_document`` sentences and ``total_chars`` sentence characters in all, where about
    ``repeated_share`` of those characters are repeats of sentences used earlier (each first use drawn in
    order from ``sentences``, a repeat drawn from those already used)."""
    rng = random.Random(seed)
    fresh = iter(sentences)
    used: list[tuple[str, str]] = []
    documents, chars, repeated = [], 0, 0
    while chars < total_chars:
        lang, body = None, []
        for _ in range(rng.randint(*per_document)):
            if used and repeated < repeated_share * (chars + 1):
                lang_s, text = rng.choice(used)
                repeated += len(text)
            else:
                try:
                    lang_s, text = next(fresh)
                except StopIteration:
                    raise ValueError(f"{len(sentences)} sentences are too few for {total_chars} characters "
                                     f"with {repeated_share:.0%} repeated") from None
                used.append((lang_s, text))
            lang = lang or lang_s
            body.append(text)
            chars += len(text)
        documents.append((f"d{len(documents):06d}", _partition(lang), " ".join(body)))
    return Corpus(documents, repeated / chars if chars else 0.0, len(used))


def _partition(lang: str) -> str:
    """A few partitions, as a corpus by language would have: the catalog's language up to its region."""
    return lang.split("_")[0].split("@")[0]
