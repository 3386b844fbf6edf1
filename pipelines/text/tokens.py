"""Spark NLP's rule-based Tokenizer, plus BERT's CJK rule, on one sentence at a time.

Spark NLP builds one regex per infix pattern: ``\\A([ctx]*)(infix)([ctx]*)\\z`` where ``ctx`` are the
context characters; every non-empty group becomes a token. So a leading or trailing run of context
characters is one token ("Hi!!" -> "Hi", "!!"), and a candidate made only of context characters stays
whole. On top of that, each CJK ideograph becomes its own token, exactly the ranges BERT's basic
tokenizer splits, so no Chinese character hides behind the first one of a run.

What differs from Spark NLP, on purpose: no character is ever dropped. ``splitChars``/``splitPattern``
keep the separator as its own token, and a token longer than ``maxLength`` is cut into pieces of at
most ``maxLength`` characters instead of being removed. ``minLength`` still removes short tokens, as in
Spark NLP, because that only happens when a user asks for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from pipelines.text.sentences import Span

DEFAULT_CONTEXT_CHARS = (".", ",", ";", ":", "!", "?", "*", "-", "(", ")", '"', "'")

# The code-point ranges of BERT's ``_is_chinese_char`` (CJK Unified Ideographs and extensions).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_CJK_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _CJK_RANGES)
_CJK_RE = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(ch: str) -> bool:
    return _CJK_RE.match(ch) is not None


@dataclass(frozen=True)
class TokenizerRules:
    target_pattern: str = r"\S+"
    context_chars: tuple[str, ...] = DEFAULT_CONTEXT_CHARS
    prefix_pattern: str | None = None
    suffix_pattern: str | None = None
    infix_patterns: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    case_sensitive_exceptions: bool = True
    split_chars: tuple[str, ...] = ()
    split_pattern: str | None = None
    min_length: int = 0
    max_length: int = 99999

    @cached_property
    def _target(self) -> re.Pattern:
        return re.compile(self.target_pattern)

    @cached_property
    def _rules(self) -> list[re.Pattern]:
        ctx = re.escape("".join(self.context_chars))
        prefix = self.prefix_pattern or (f"\\A([{ctx}]*)" if ctx else r"\A()")
        suffix = self.suffix_pattern or (f"([{ctx}]*)\\z" if ctx else r"()\z")
        infixes = self.infix_patterns or ((f"([^{ctx}](?:.*[^{ctx}])*)" if ctx else "(.+)"),)
        # Python spells Java's \z as \Z.
        return [re.compile((prefix + infix + suffix).replace("\\z", "\\Z"), re.DOTALL) for infix in infixes]

    @cached_property
    def _exceptions(self) -> re.Pattern | None:
        if not self.exceptions:
            return None
        alternatives = "|".join(re.escape(e) for e in sorted(self.exceptions, key=len, reverse=True))
        return re.compile(alternatives, 0 if self.case_sensitive_exceptions else re.IGNORECASE)

    @cached_property
    def _splitter(self) -> re.Pattern | None:
        if self.split_pattern:
            return re.compile(self.split_pattern)
        if self.split_chars:
            return re.compile("|".join(c if len(c) == 2 else re.escape(c) for c in self.split_chars))
        return None

    def tokenize(self, text: str, sentence: Span) -> list[Span]:
        """Tokens of one sentence, as spans into ``text`` (the whole document)."""
        tokens: list[Span] = []
        for start, stop, protected in self._candidates(text, sentence.begin, sentence.end + 1):
            pieces = [(start, stop)] if protected else self._split_candidate(text, start, stop)
            for a, b in pieces:
                tokens.extend(self._limit_length(a, b))
        return tokens

    def _candidates(self, text: str, start: int, stop: int):
        """(start, stop, is_exception) runs: exceptions first, the target pattern between them."""
        cursor = start
        if self._exceptions is not None:
            for m in self._exceptions.finditer(text, start, stop):
                yield from self._targets(text, cursor, m.start())
                yield m.start(), m.end(), True
                cursor = m.end()
        yield from self._targets(text, cursor, stop)

    def _targets(self, text: str, start: int, stop: int):
        for m in self._target.finditer(text, start, stop):
            if m.end() > m.start():
                yield m.start(), m.end(), False

    def _split_candidate(self, text: str, start: int, stop: int) -> list[tuple[int, int]]:
        word = text[start:stop]
        for rule in self._rules:
            m = rule.match(word)
            if m is None:
                continue
            pieces = []
            for g in range(1, (m.lastindex or 0) + 1):
                if m.start(g) >= 0 and m.end(g) > m.start(g):
                    pieces.extend(self._split_inside(text, start + m.start(g), start + m.end(g)))
            return pieces
        return self._split_inside(text, start, stop)  # e.g. "--": all context characters, kept whole

    def _split_inside(self, text: str, start: int, stop: int) -> list[tuple[int, int]]:
        """splitChars/splitPattern, then one token per CJK ideograph."""
        runs = [(start, stop)]
        if self._splitter is not None:
            runs = []
            cursor = start
            for m in self._splitter.finditer(text, start, stop):
                if m.end() == m.start():
                    continue
                runs += [(cursor, m.start()), (m.start(), m.end())]
                cursor = m.end()
            runs.append((cursor, stop))
        out = []
        for a, b in runs:
            cursor = a
            for m in _CJK_RE.finditer(text, a, b):
                out += [(cursor, m.start()), (m.start(), m.end())]
                cursor = m.end()
            out.append((cursor, b))
        return [(a, b) for a, b in out if b > a]

    def _limit_length(self, start: int, stop: int) -> list[Span]:
        if stop - start < self.min_length:
            return []
        step = max(self.max_length, 1)
        return [Span(a, min(a + step, stop) - 1) for a in range(start, stop, step)]
