"""Sentence boundaries with offsets into the original text.

Two splitters, one contract (spans into the original text, in order):

- :func:`pragmatic_sentences`: Spark NLP's SentenceDetector rules (:mod:`pipelines.text.pragmatic`),
  for parity with the real annotator.
- :func:`multilingual_sentences`: sentencex (Wikimedia's rule-based segmenter for ~300 languages), for
  scripts and languages the English-centred pragmatic rules do not know (。！？, ।, ؟, ...).

Whatever a splitter returns, the offsets are computed here, from the original text: a splitter that
rewrites or drops characters (sentencex drops a blank line after a line without end punctuation) can
move a boundary, never lose a character or fail the document. Every non-whitespace character lies in
exactly one sentence, whatever the length limits (except the ``customBounds`` text that
``customBoundsStrategy="none"`` asks to remove, as in Spark NLP).
"""

from __future__ import annotations

from dataclasses import dataclass

import sentencex

from pipelines.text.pragmatic import PragmaticRules, truncate_sentence

# sentencex falls back to generic rules for codes it does not know; "xx" is Spark NLP's code for
# "multilingual" and gets those generic rules.
DEFAULT_LANGUAGE = "xx"


# Exactly the characters Python's str.isspace() (and so re's \s) calls whitespace, spelled so that both
# Python's re and Java's regex (Spark's rlike) read it: the job decides "blank text" in Spark with it,
# and the stages decide what is a token in Python; they must agree (tests/unit/test_sentences.py).
WHITESPACE_CLASS = r"\t\n\x0B\f\r\x1C-\x1F \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
VISIBLE_CHAR_REGEX = f"[^{WHITESPACE_CLASS}]"


@dataclass(frozen=True, slots=True)
class Span:
    begin: int  # 0-based, into the document
    end: int  # inclusive

    def text(self, doc: str) -> str:
        return doc[self.begin : self.end + 1]


def strip_span(text: str, start: int, stop: int) -> Span | None:
    """The span [start, stop) without surrounding whitespace, or None when it is all whitespace."""
    while start < stop and text[start].isspace():
        start += 1
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return Span(start, stop - 1) if stop > start else None


def pragmatic_sentences(
    text: str,
    rules: PragmaticRules = PragmaticRules(),
    *,
    min_length: int = 0,
    max_length: int = 99999,
    split_length: int | None = None,
) -> list[Span]:
    """Spark NLP's SentenceDetector on ``text``: same sentences, same ``result`` strings.

    ``split_length`` packs words as Spark NLP does (a word is never cut); each piece's offsets are
    where it really is (Spark NLP assumes one space between pieces).
    """
    if not text:
        return []
    spans: list[Span] = []
    for start, content in rules.sentences(text):
        pieces = truncate_sentence(content, split_length) if split_length else [content]
        cursor = 0
        for piece in pieces:
            if not piece:
                continue
            at = content.find(piece, cursor)
            spans.append(Span(start + at, start + at + len(piece) - 1))
            cursor = at + len(piece)
    return _apply_length_limits(text, spans, min_length, max_length, None)


def multilingual_sentences(
    text: str,
    language: str = DEFAULT_LANGUAGE,
    *,
    min_length: int = 0,
    max_length: int = 99999,
    split_length: int | None = None,
) -> list[Span]:
    """sentencex's sentences of ``text`` as spans, whitespace around each one excluded."""
    if not text:
        return []
    cuts = cuts_from_segments(text, sentencex.segment(language or DEFAULT_LANGUAGE, text))
    spans = [s for a, b in zip(cuts, cuts[1:]) if (s := strip_span(text, a, b)) is not None]
    return _apply_length_limits(text, spans, min_length, max_length, split_length)


def cuts_from_segments(text: str, segments) -> list[int]:
    """Sorted boundary positions (0 and len included) for segments a splitter returned for ``text``.

    Each segment is looked up in the text from the previous boundary on, by its content without
    surrounding whitespace, so a splitter that drops or rewrites whitespace (or anything else) moves a
    boundary at worst. A segment that cannot be found (rewritten text) adds no boundary.
    """
    cuts = {0, len(text)}
    cursor = 0
    for segment in segments:
        content = segment.strip()
        if not content:
            continue
        at = text.find(content, cursor)
        if at < 0:
            tail = content[-8:]  # a rewritten segment: its last characters usually survive
            at = text.find(tail, cursor)
            if at < 0:
                continue
            cursor = at + len(tail)
        else:
            cursor = at + len(content)
        cuts.add(cursor)
    return sorted(cuts)


def _apply_length_limits(text: str, spans: list[Span], min_length: int, max_length: int,
                         split_length: int | None) -> list[Span]:
    """Unlike Spark NLP, sentences outside [min_length, max_length] are never dropped: a short one is
    merged into the next, a long one is cut at whitespace, so no character is lost."""
    if min_length > 0:
        spans = _merge_short(spans, min_length)
    limit = min(x for x in (max_length, split_length) if x) if (max_length or split_length) else 0
    if limit:
        spans = [piece for s in spans for piece in _cut_long(text, s, limit)]
    return spans


def split_sentences(text: str, language: str = DEFAULT_LANGUAGE, **options) -> list[Span]:
    """The multilingual splitter (kept for callers of the old name)."""
    return multilingual_sentences(text, language, **options)


def _merge_short(spans: list[Span], min_length: int) -> list[Span]:
    merged: list[Span] = []
    pending: Span | None = None
    for s in spans:
        s = Span(pending.begin, s.end) if pending else s
        pending = None
        if s.end - s.begin + 1 < min_length:
            pending = s
        else:
            merged.append(s)
    if pending:
        if merged:
            merged[-1] = Span(merged[-1].begin, pending.end)
        else:
            merged.append(pending)
    return merged


def _cut_long(text: str, span: Span, limit: int) -> list[Span]:
    """Cut a span longer than ``limit`` characters at the last whitespace before the limit."""
    if span.end - span.begin + 1 <= limit:
        return [span]
    out = []
    start, stop = span.begin, span.end + 1
    while stop - start > limit:
        cut = start + limit
        space = cut
        while space > start and not text[space].isspace():
            space -= 1
        cut = space if space > start else cut  # no whitespace at all: hard cut
        piece = strip_span(text, start, cut)
        if piece:
            out.append(piece)
        start = cut
        while start < stop and text[start].isspace():
            start += 1
    if (last := strip_span(text, start, stop)) is not None:
        out.append(last)
    return out
