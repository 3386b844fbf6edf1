"""Differential testing of the native text stages against the real Spark NLP annotators.

:func:`corpus` builds a deterministic multilingual corpus: the project's real sample texts
(``data/sample_src``, 11 languages) cut into documents, plus generated documents over 14 scripts with
the cases sentence and token rules trip over (numbered and lettered lists, abbreviations, decimals,
URLs, e-mails, quotes, brackets, ellipses, CJK and Thai without spaces, and hostile Unicode).
:func:`compare` puts two engines' annotation columns side by side, row by row, and reports agreement
per stage. ``python scripts/text_parity.py`` runs both engines and prints the rates.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_SRC = Path(__file__).resolve().parents[2] / "data" / "sample_src"

# (script, words) for generated sentences; words are real words of each language.
WORDS = {
    "latin-en": "the city council said new tram line will open next year after long debate about cost".split(),
    "latin-de": "der Bürgermeister sagte dass die neue Straßenbahn im nächsten Jahr fährt".split(),
    "latin-fr": "le maire a déclaré que la nouvelle ligne ouvrira été prochain à Lyon".split(),
    "cyrillic": "городская дума одобрила строительство новой трамвайной линии длиной".split(),
    "greek": "το δημοτικό συμβούλιο ενέκρινε τη νέα γραμμή τραμ στην πόλη".split(),
    "arabic": "وافق المجلس البلدي على إنشاء خط ترام جديد في المدينة".split(),
    "hebrew": "מועצת העיר אישרה את קו החשמלית החדש בעיר".split(),
    "devanagari": "नगर परिषद ने नई ट्राम लाइन के निर्माण को मंजूरी दी".split(),
    "bengali": "নগর পরিষদ নতুন ট্রাম লাইন নির্মাণের অনুমোদন দিয়েছে".split(),
    "tamil": "நகர சபை புதிய டிராம் பாதைக்கு ஒப்புதல் அளித்தது".split(),
    "georgian": "ქალაქის საბჭომ დაამტკიცა ახალი ტრამვაის ხაზი".split(),
    "armenian": "քաղաքային խորհուրդը հաստատեց նոր տրամվայի գիծը".split(),
    "hangul": "시의회는 새로운 트램 노선 건설을 승인했다".split(),
}
# Scripts written without spaces between words: whole sentences.
UNSPACED = {
    "han": ["北京市政府今天宣布新的电车线路", "预计明年开通", "总投资约一百二十亿元"],
    "japanese": ["札幌市は路面電車を延伸する計画を発表した", "新たな区間は約二キロ", "市民にも便利になる"],
    "thai": ["สภาเมืองอนุมัติการก่อสร้างรถรางสายใหม่", "คาดว่าจะเปิดให้บริการปีหน้า", "ค่าใช้จ่ายประมาณหนึ่งร้อยล้านบาท"],
}
TERMINALS = {"han": "。", "japanese": "。", "thai": " ", "arabic": ".", "devanagari": "।", "bengali": "।"}

ABBREVIATIONS = ["Dr.", "Mr.", "Mrs.", "Prof.", "St.", "e.g.", "i.e.", "etc.", "U.S.", "No.", "p.", "Inc.", "Co.",
                 "a.m.", "p.m.", "Jan.", "vs.", "z.B.", "usw.", "т.е.", "г.", "J.R.R.", "Ph.D."]
SPECIALS = [
    "3.14", "1,000.50", "v2.3.1", "12.03.2024", "N°. 1026.253.553", "$5.99", "50%", "10:30",
    "https://example.com/path/to.page?q=a.b&x=1#frag", "www.example.org.", "user.name@mail.example.com",
    "Yahoo!", "Jeopardy!", "C++", "C#", ".NET", "O'Neil", "rock'n'roll", "don't", "l'été", "state-of-the-art",
    "'single quoted'", '"double quoted"', "«guillemets»", "„Anführung“", "“curly”", "(in parens)", "[in brackets]",
    "{in braces}", "...", "…", "?!", "!!!", "--", "—", ";", ":", "*", "#hashtag", "@mention", ":-)", "🙂",
    "👨‍👩‍👧‍👦", "🇩🇪", "e\u0301", "\u00a0", "\u200b", "\u200e", "\u202e", "\u3000", "\t", "\u2028", "\u0085",
    "\x07", "╞", "ↇ", "ↈ", "\uf050", "A.", "(a)", "(ii)", "1)", "-1.", "°",
]
LIST_STYLES = ["{n}. ", "{n}) ", "({a}) ", "{a}) ", "- ", "* ", "• ", "-{n}. "]


def sample_documents() -> list[tuple[str, str]]:
    """(doc_id, text) for each blank-line separated block of the real sample texts."""
    docs = []
    for path in sorted(SAMPLE_SRC.glob("*.txt")):
        blocks = [b.strip("\n") for b in path.read_text(encoding="utf-8").split("\n\n")]
        docs += [(f"{path.stem}-{i:04d}", b) for i, b in enumerate(blocks) if b.strip()]
    return docs


def _sentence(rng: random.Random, script: str) -> str:
    if script in UNSPACED:
        body = rng.choice(UNSPACED[script])
        return body + TERMINALS.get(script, "。")
    words = rng.sample(WORDS[script], k=min(len(WORDS[script]), rng.randint(3, 9)))
    for _ in range(rng.randint(0, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(ABBREVIATIONS + SPECIALS))
    text = " ".join(words)
    if script.startswith("latin") and rng.random() < 0.8:
        text = text[0].upper() + text[1:]
    return text + rng.choice([".", ".", ".", "!", "?", "...", ";", TERMINALS.get(script, "."), ""])


def _list_block(rng: random.Random, script: str) -> str:
    style = rng.choice(LIST_STYLES)
    sep = rng.choice([" ", "\n", "\n\n", "  "])
    items = [style.format(n=i + 1, a="abcdefgh"[i]) + _sentence(rng, script) for i in range(rng.randint(2, 5))]
    return sep.join(items)


def generated_documents(n: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    scripts = list(WORDS) + list(UNSPACED)
    docs = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(1, 6)):
            script = rng.choice(scripts)
            kind = rng.random()
            parts.append(_list_block(rng, script) if kind < 0.15 else _sentence(rng, script))
        joiners = [" ", " ", "  ", "\n", "\n\n", "\t", "\u00a0", "", "\r\n"]
        text = parts[0]
        for p in parts[1:]:
            text += rng.choice(joiners) + p
        if rng.random() < 0.1:
            text = rng.choice(["  ", "\n", "\u3000", "\ufeff"]) + text + rng.choice(["", " ", "\n\n"])
        docs.append((f"gen-{i:05d}", text))
    return docs


def corpus(generated: int = 1800, seed: int = 11) -> list[tuple[str, str]]:
    """The differential corpus: real sample documents first, then ``generated`` generated ones."""
    return sample_documents() + generated_documents(generated, seed)


def scripts_in(texts) -> set[str]:
    """Unicode script names (first word of the character names) of the letters in ``texts``."""
    seen = set()
    for t in texts:
        for ch in set(t):
            if ch.isalpha():
                seen.add(unicodedata.name(ch, "UNKNOWN").split()[0])
    return seen


# ------------------------------------------------------------------------------------------------
# The README's deliberate differences that show in default-parameter runs, as text predicates.
_SENTENCE_MARKERS = re.compile("[\uF050-\uF057╚╦╞╟╔╩╤╥]")
_TOKEN_MARKERS = re.compile("[ↇↈ]")
_CONTROL = re.compile("[\x00-\x08\x0E-\x1B]")


def deliberate_difference(text: str, stage: str) -> str | None:
    """Why the README says our ``stage`` output may differ from Spark NLP's on ``text`` (None: it may not)."""
    from pipelines.text.tokens import CJK_RE

    if stage in ("sentence", "token") and _SENTENCE_MARKERS.search(text):
        return "Spark NLP's sentence marker characters in the text"
    if stage in ("sentence", "token") and _CONTROL.search(text):
        return "control characters that String.trim removes"
    if stage == "token" and _TOKEN_MARKERS.search(text):
        return "Spark NLP's tokenizer marker characters in the text"
    if stage == "token" and CJK_RE.search(text):
        return "one token per CJK ideograph"
    return None


def splits_only_at_cjk(ours: list, theirs: list, text: str) -> bool:
    """Our tokens are Spark NLP's, except that some are cut next to CJK ideographs (and nothing else)."""
    from pipelines.text.tokens import is_cjk

    mine = iter(ours)
    for result, begin, end, meta in theirs:
        parts, covered = [], begin
        while covered <= end:
            t = next(mine, None)
            if t is None or t[1] != covered or t[2] > end or t[3] != meta:
                return False
            parts.append(t)
            covered = t[2] + 1
        if "".join(p[0] for p in parts) != result:
            return False
        if any(not (is_cjk(text[p[1]]) or is_cjk(text[p[1] - 1])) for p in parts[1:]):
            return False
    return next(mine, None) is None


# ------------------------------------------------------------------------------------------------
def utf16_to_code_points(text: str):
    """Map a UTF-16 offset (the JVM's) to a code point offset (Python's); identity on BMP-only text."""
    if all(ord(c) < 0x10000 for c in text):
        return lambda i: i
    table, unit = {}, 0
    for cp, ch in enumerate(text):
        table[unit] = cp
        unit += 2 if ord(ch) >= 0x10000 else 1
        table[unit - 1] = cp  # an end offset pointing at a low surrogate
    table[unit] = len(text)
    return lambda i: table.get(i, i)


def normalise(rows, columns, text_col: str = "text", jvm_offsets: bool = False) -> dict:
    """{doc_id: {column: [(result, begin, end, metadata), ...]}}; JVM offsets converted to code points."""
    out = {}
    for row in rows:
        text = row[text_col] or ""
        to_cp = utf16_to_code_points(text) if jvm_offsets else (lambda i: i)
        out[row["doc_id"]] = {
            c: [(a["result"], to_cp(a["begin"]) if a["begin"] >= 0 else a["begin"],
                 to_cp(a["end"]) if a["end"] >= 0 else a["end"], dict(a["metadata"])) for a in row[c]]
            for c in columns
        }
    return out


@dataclass
class StageAgreement:
    documents: int = 0
    equal_documents: int = 0
    annotations_ours: int = 0
    annotations_theirs: int = 0
    equal_annotations: int = 0
    differing: list = field(default_factory=list)

    @property
    def document_rate(self) -> float:
        return self.equal_documents / self.documents if self.documents else 1.0

    @property
    def annotation_rate(self) -> float:
        """Annotations present, identical, in both (multiset), over the larger of the two counts."""
        larger = max(self.annotations_ours, self.annotations_theirs)
        return self.equal_annotations / larger if larger else 1.0


def compare(ours: dict, theirs: dict, columns, skip=lambda doc_id, column: False) -> dict[str, StageAgreement]:
    """Per column: how many documents have identical annotations, and how many annotations agree."""
    from collections import Counter

    result = {c: StageAgreement() for c in columns}
    for doc_id, mine in ours.items():
        for c in columns:
            if skip(doc_id, c):
                continue
            a, b = mine[c], theirs[doc_id][c]
            s = result[c]
            s.documents += 1
            s.annotations_ours += len(a)
            s.annotations_theirs += len(b)
            key = lambda x: (x[0], x[1], x[2], tuple(sorted(x[3].items())))  # noqa: E731
            s.equal_annotations += sum((Counter(map(key, a)) & Counter(map(key, b))).values())
            if a == b:
                s.equal_documents += 1
            else:
                s.differing.append(doc_id)
    return result
