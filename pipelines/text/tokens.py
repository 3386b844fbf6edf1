"""Spark NLP's rule-based Tokenizer (``TokenizerModel`` 5.5.3), plus BERT's CJK rule, on one sentence.

As in Spark NLP: token candidates are the runs between the characters the ``targetPattern`` class
leaves out (with the default ``\\S+``, Java's ASCII whitespace ``[ \\t\\n\\x0B\\f\\r]``: a no-break
space does not separate tokens); exception matches have their whitespace protected, and a candidate
that contains a protected exception, or equals one without whitespace, is one token ("New York."
stays whole); any other candidate goes through the first rule (``prefix + infix + suffix``, one regex
per infix pattern) that matches, one token per non-empty group; a candidate no rule matches (e.g. "--")
is one token. Every pattern is Java syntax (:mod:`pipelines.text.java_regex`).

What differs from Spark NLP, on purpose (docs/sparknlp.md, "Differences from Spark NLP"): each CJK ideograph is
its own token (the ranges BERT's basic tokenizer splits), ``splitChars``/``splitPattern`` keep the
separator as its own token, a token longer than ``maxLength`` is cut into pieces instead of removed,
offsets are where each group really is, and the characters ``ↇ``/``ↈ`` (Spark NLP's own markers) are
ordinary characters. ``minLength`` still removes short tokens, as in Spark NLP, because that only
happens when a user asks for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import regex

from pipelines.text.java_regex import compile_java
from pipelines.text.sentences import Span

DEFAULT_CONTEXT_CHARS = (".", ",", ";", ":", "!", "?", "*", "-", "(", ")", '"', "'")
PROTECT_CHAR = "ↈ"
BREAK_CHAR = "ↇ"
_CANDIDATE = regex.compile(f"[^{BREAK_CHAR}]+")
_OWN_MARKERS = regex.compile(f"[{PROTECT_CHAR}{BREAK_CHAR}]")
_STAND_IN = "↉"  # another \\S, non-word symbol, so the rules see the same shape of text

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
CJK_RE = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(ch: str) -> bool:
    return CJK_RE.match(ch) is not None


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

    def __post_init__(self):
        # Spark NLP's own checks (Tokenizer.buildRuleFactory), on the driver, before any task runs
        if self.prefix_pattern is not None and not self.prefix_pattern.startswith("\\A"):
            raise ValueError("prefixPattern must begin with \\A to ensure it is the beginning of the string")
        if self.suffix_pattern is not None and not self.suffix_pattern.endswith("\\z"):
            raise ValueError("suffixPattern must end with \\z to ensure it is the end of the string")
        if not all("(" in p and ")" in p for p in self.infix_patterns):
            raise ValueError("infix patterns must use regex group. Notice each group will result in separate token")
        self._rules, self._break, self._exceptions, self._splitter  # noqa: B018 (compile now: errors here)

    @cached_property
    def _break(self) -> regex.Pattern:
        """Spark NLP's BREAK_PATTERN: a character class built from the target pattern's text."""
        return compile_java("[^(?:" + self.target_pattern + ")" + PROTECT_CHAR + "]")

    @cached_property
    def _rules(self) -> list[regex.Pattern]:
        ctx = regex.escape("".join(self.context_chars))
        # no context characters: Spark NLP's "[]" would not compile; we read it as "nothing to split off"
        prefix = self.prefix_pattern or (f"\\A([{ctx}]*)" if ctx else "\\A()")
        suffix = self.suffix_pattern or (f"([{ctx}]*)\\z" if ctx else "()\\z")
        infixes = self.infix_patterns or ((f"([^{ctx}](?:.*[^{ctx}])*)" if ctx else "(.+)"),)
        return [compile_java(prefix + infix + suffix) for infix in infixes]

    @cached_property
    def _exceptions(self) -> regex.Pattern | None:
        if not self.exceptions:
            return None
        cased = (e if self.case_sensitive_exceptions else "(?i)" + e for e in self.exceptions)
        return compile_java("|".join(cased))

    @cached_property
    def _splitter(self) -> regex.Pattern | None:
        if self.split_pattern:
            return compile_java(self.split_pattern)
        if self.split_chars:
            return compile_java("|".join(self.split_chars))
        return None

    def tokenize(self, text: str, sentence: Span) -> list[Span]:
        """Tokens of one sentence, as spans into ``text`` (the whole document)."""
        content = _OWN_MARKERS.sub(_STAND_IN, sentence.text(text))
        base = sentence.begin
        kept_whole = self._protect_exceptions(content)
        protected = self._break.sub(BREAK_CHAR, kept_whole[0])
        tokens: list[Span] = []
        for cand in _CANDIDATE.finditer(protected):
            a, b = cand.start(), cand.end()
            if kept_whole[1] is not None and (PROTECT_CHAR in cand.group(0) or content[a:b] in kept_whole[1]):
                pieces = [(a, b)]
            else:
                pieces = self._split_candidate(content, a, b)
            for start, stop in pieces:
                tokens.extend(self._limit_length(base + start, base + stop))
        return tokens

    def _protect_exceptions(self, content: str) -> tuple[str, set | None]:
        """The content with whitespace inside exception matches protected, and the matches without any."""
        if self._exceptions is None:
            return content, None
        without_break: set[str] = set()

        def protect(m):
            replaced = self._break.sub(PROTECT_CHAR, m.group(0))
            if replaced == m.group(0):
                without_break.add(m.group(0))
            return replaced

        return self._exceptions.sub(protect, content), without_break

    def _split_candidate(self, content: str, start: int, stop: int) -> list[tuple[int, int]]:
        word = content[start:stop]
        for rule in self._rules:
            m = rule.search(word)
            if m is None:
                continue
            pieces = []
            for g in range(1, len(m.groups()) + 1):
                if m.start(g) >= 0 and m.end(g) > m.start(g):
                    pieces.extend(self._split_inside(content, start + m.start(g), start + m.end(g)))
            return pieces
        return self._split_inside(content, start, stop)  # e.g. "--": all context characters, kept whole

    def _split_inside(self, content: str, start: int, stop: int) -> list[tuple[int, int]]:
        """splitChars/splitPattern (separators kept, zero-width cuts allowed), then one token per CJK ideograph."""
        runs = [(start, stop)]
        if self._splitter is not None:
            runs, cursor = [], start
            for m in self._splitter.finditer(content, start, stop):
                runs += [(cursor, m.start()), (m.start(), m.end())]
                cursor = m.end()
            runs.append((cursor, stop))
        out = []
        for a, b in runs:
            cursor = a
            for m in CJK_RE.finditer(content, a, b):
                out += [(cursor, m.start()), (m.start(), m.end())]
                cursor = m.end()
            out.append((cursor, b))
        return [(a, b) for a, b in out if b > a]

    def _limit_length(self, start: int, stop: int) -> list[Span]:
        if stop - start < self.min_length:
            return []
        step = max(self.max_length, 1)
        return [Span(a, min(a + step, stop) - 1) for a in range(start, stop, step)]
