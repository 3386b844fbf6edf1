"""Sentence boundaries with offsets into the original text.

Segmentation itself is sentencex's (Wikimedia's rule-based segmenter for ~300 languages; about 100
times faster than pysbd on our corpus, which matters on million-character documents). This module only
turns its segments into spans and enforces our guarantee: every non-whitespace character of the
document lies in exactly one sentence, whatever the length limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import sentencex

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


def split_sentences(
    text: str,
    language: str = DEFAULT_LANGUAGE,
    *,
    min_length: int = 0,
    max_length: int = 99999,
    split_length: int | None = None,
    custom_bounds: tuple[str, ...] = (),
    use_custom_bounds_only: bool = False,
) -> list[Span]:
    """Sentences of ``text`` as spans, in order.

    Unlike Spark NLP, sentences outside [min_length, max_length] are never dropped: a short one is
    merged into the next, a long one is cut at whitespace (as ``splitLength`` does), so no character
    is lost.
    """
    if not text:
        return []
    cuts = _boundaries(text, language or DEFAULT_LANGUAGE, custom_bounds, use_custom_bounds_only)
    spans = [s for a, b in zip(cuts, cuts[1:]) if (s := strip_span(text, a, b)) is not None]
    if min_length > 0:
        spans = _merge_short(spans, min_length)
    limit = min(x for x in (max_length, split_length) if x) if (max_length or split_length) else 0
    if limit:
        spans = [piece for s in spans for piece in _cut_long(text, s, limit)]
    return spans


def _boundaries(text: str, language: str, custom_bounds, custom_only: bool) -> list[int]:
    """Sorted character positions where one segment ends and the next begins (0 and len included)."""
    cuts = {0, len(text)}
    if not custom_only:
        pos = 0
        for segment in sentencex.segment(language, text):
            pos += len(segment)
            cuts.add(pos)
        if pos != len(text):  # sentencex promises segments that concatenate to the input
            raise AssertionError(f"sentence segmenter lost characters ({pos} of {len(text)})")
    for bound in custom_bounds:
        start = text.find(bound)
        while start >= 0:
            cuts.add(start + len(bound))
            start = text.find(bound, start + 1)
    return sorted(cuts)


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
