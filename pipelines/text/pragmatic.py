"""Spark NLP's rule-based SentenceDetector (its port of the "pragmatic segmenter"), re-implemented.

Same rules, same order, same symbols as ``com.johnsnowlabs.nlp.annotators.sbd.pragmatic`` in Spark NLP
5.5.3 (``PragmaticContentFormatter``, ``PragmaticDictionaries``, ``PragmaticSentenceExtractor``,
``SentenceDetector.tag``): the text is rewritten with marker characters (protected spans, non-breaking
periods, breaks), split at the unprotected breaks, the markers are turned back into the characters they
stand for, and each sentence is found again in the source with ``indexOf`` from the end of the last one.
The patterns are Spark NLP's Java patterns, compiled through :mod:`pipelines.text.java_regex`, so
``\\s``, ``\\w``, ``\\d`` and ``.`` keep their (ASCII, line-bound) Java meaning.

Where this differs from the jar, on purpose (docs/sparknlp.md, "Differences from Spark NLP"):

- Text that already contains one of the marker characters (``\\uF050``–``\\uF057``, ``╚╦╞╟╔╩╤╥``) is
  segmented as if each were an ordinary symbol; Spark NLP turns them into periods or breaks, and the
  sentence it then cannot find again gets ``begin = -1``.
- Offsets are always right: after ``splitLength`` pieces, Spark NLP assumes one space between pieces.
- A control character that is not whitespace (BEL, ESC) at a sentence's edge stays in the sentence;
  Spark NLP's ``String.trim`` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from pipelines.text.java_regex import compile_java

# RuleSymbols / PragmaticSymbols
BREAK = "\uF050"
DOT = "\uF051"
SEMICOLON = "\uF053"
PROTECT_OPEN = "\uF056"
PROTECT_CLOSE = "\uF057"
ABBREVIATOR = "╞"
NUM_INDICATOR = "╟"
MULT_PERIOD = "╔"
QUESTION_IN_QUOTE = "╤"
EXCLAMATION_INDICATOR = "╥"
ELLIPSIS_INDICATOR = "╦"
_RECOVERY = {
    DOT: ".", SEMICOLON: ";", "\uF054": "?", "\uF055": "!", PROTECT_OPEN: "", PROTECT_CLOSE: "",
    ABBREVIATOR: ".", NUM_INDICATOR: ".", MULT_PERIOD: ".", QUESTION_IN_QUOTE: "?",
    EXCLAMATION_INDICATOR: "!", ELLIPSIS_INDICATOR: "...",
}
_RECOVERY_RE = regex.compile("[" + "".join(_RECOVERY) + "]")
_UNPROTECTED_BREAK = regex.compile(f"{BREAK}(?![^{PROTECT_OPEN}]*{PROTECT_CLOSE})")
# Input characters the rules would mistake for their own markers, and what they stand in for: a symbol
# of the same regex classes (not \w, not \s, no rule names it), so the rules see the same text shape.
_MARKERS = regex.compile("[\uF050-\uF057╚╦╞╟╔╩╤╥]")
_STAND_IN = {True: "\uF058", False: "═"}

# PragmaticDictionaries (the short lists are the ones the rules use)
ABBREVIATIONS = (
    "adj", "bros", "btw", "co", "col", "corp", "cpl", "dec", "aug", "del", "dept", "dist", "dr", "e.g", "etc",
    "exp", "feb", "fy", "hr", "i.e", "id", "inc", "jan", "jr", "jul", "jun", "lt", "ltd", "mar", "may", "min",
    "mr", "mrs", "ms", "no", "nov", "oct", "ok", "p", "px", "plz", "prof", "rep", "sec", "sep", "sept", "sr",
    "st", "u.s", "ver", "vs",
)
PREPOSITIVE_ABBREVIATIONS = ("dr", "mr", "ms", "prof", "mt", "st")
NUMBER_ABBREVIATIONS = ("no", "p", "px")

_PABB = "(?:" + "|".join(PREPOSITIVE_ABBREVIATIONS) + ")"
_NUBB = "(?:" + "|".join(NUMBER_ABBREVIATIONS) + ")"
_ABBR = "(?:" + "|".join(ABBREVIATIONS) + ")"


def _rules(*patterns: str) -> tuple[regex.Pattern, ...]:
    return tuple(compile_java(p) for p in patterns)


LISTS = _rules(
    r"(\()[a-z]+\)|^[a-z]+\)",
    r"\s\d{1,2}\.\s|^\d{1,2}\.\s|\s\d{1,2}\.\)|^\d{1,2}\.\)|\s\-\d{1,2}\.\s|^\-\d{1,2}\.\s|s\-\d{1,2}\.\)|"
    r"^\-\d{1,2}(.\))",
)
STD_ABBREVIATIONS = _rules(
    r"\.(?='s\s)|\.(?='s\$)|\.(?='s\z)",
    r"(?<=Co)\.(?=\sKG)",
    r"(?<=^[A-Z])\.(?=\s)",
    r"(?<=\s[A-Z])\.(?=\s)",
)
SPECIAL_ABBREVIATIONS = _rules(
    r"\b[a-zA-Z](?:\.[a-zA-Z])+(?:\.(?!\s[A-Z]))*",
    r"(?i)p\.m\.*",
    r"(?i)a\.m\.*",
)
DICT_ABBREVIATIONS = _rules(
    rf"(?<=\s(?i){_PABB})\.(?=\s)|(?<=^(?i){_PABB})\.(?=\s)",
    rf"(?<=\s(?i){_PABB})\.(?=:\d+)|(?<=^(?i){_PABB})\.(?=:\d+)",
    rf"(?<=\s(?i){_NUBB})\.(?=\s\d)|(?<=^(?i){_NUBB})\.(?=\s\d)",
    rf"(?<=\s(?i){_NUBB})\.(?=\s+\()|(?<=^(?i){_NUBB})\.(?=\s+\()",
    rf"(?<=\s(?i){_ABBR})\.(?=((\.|\:|-|\?)|(\s([a-z]|I\s|I'm|I'll|\d))))|"
    rf"(?<=^(?i){_ABBR})\.(?=((\.|\:|\?)|(\s([a-z]|I\s|I'm|I'll|\d))))",
    rf"(?<=\s(?i){_ABBR})\.(?=,)|(?<=^(?i){_ABBR})\.(?=,)",
)
NUMBERS = _rules(
    r"(?<=\d)\.(?=\d)",
    r"\.(?=\d)",
    r"(?<=\d)\.(?=\S)",
    r"(?<=^\d)\.(?=(\s\S)|\))",
    r"(?<=^\d\d)\.(?=(\s\S)|\))",
)
PUNCTUATIONS = _rules(r"(?<=\S)[!\?]+(?=\s|\z|\$)")
MULTIPLE_PERIODS = _rules(r"(?<=\w)\.(?=\w)")
GEO_LOCATIONS = _rules(r"(?<=[a-zA-z]°)\.(?=\s*\d+)")
ELLIPSIS = _rules(r"\.\.\.(?=\s+[A-Z])", r"(?<=\S)\.{3}(?=\.\s[A-Z])")
BETWEEN_PUNCTUATIONS = _rules(
    r"(?<=\s|^)'[\w\s?!\.,|'\w]+'(?:\W)",
    r"\"[\w\s?!\.,]+\"",
    r"\[[\w\s?!\.,]+\]",
    r"\([\w\s?!\.,]+\)",
)
QUOTATION_MARK_IN_QUOTATION = _rules(r"\?(?=(\'|\"))")
EXCLAMATION_POINT = _rules(r"\!(?=(\'|\"))", r"\!(?=\,\s[a-z])", r"\!(?=\s[a-z])")
BASIC_BREAKERS = ((DOT, compile_java(r"\.")), (SEMICOLON, compile_java(";")))

CUSTOM_BOUNDS_STRATEGIES = ("none", "prepend", "append")


def _replace(text: str, rules, make) -> str:
    """RuleFactory with MATCH_ALL: each rule, in order, replaces all its matches in the previous result."""
    for rule in rules:
        text = rule.sub(make, text)
    return text


def _with_symbol(symbol: str):
    return lambda m: symbol


def _protect(m) -> str:
    return PROTECT_OPEN + m.group(0) + PROTECT_CLOSE


@dataclass(frozen=True)
class PragmaticRules:
    use_abbreviations: bool = True
    detect_lists: bool = True
    custom_bounds: tuple[str, ...] = ()
    use_custom_bounds_only: bool = False
    custom_bounds_strategy: str = "none"

    def __post_init__(self):
        if self.custom_bounds_strategy not in CUSTOM_BOUNDS_STRATEGIES:
            raise ValueError(f"customBoundsStrategy {self.custom_bounds_strategy!r} is not one of "
                             f"{', '.join(CUSTOM_BOUNDS_STRATEGIES)}")
        for bound in self.custom_bounds:  # a bad pattern fails when the stage is built, not in a task
            compile_java(bound)

    def symbolize(self, text: str) -> str:
        """The text with Spark NLP's markers, exactly as ``PragmaticMethod.extractBounds`` builds it."""
        wip = text
        if self.custom_bounds:
            wip = self._format_custom_bounds(wip)
            if self.use_custom_bounds_only:
                return wip
            wip = self._format_lists(wip)
            wip = self._format_abbreviations(wip)
            wip = _replace(wip, NUMBERS, _with_symbol(NUM_INDICATOR))
        else:
            wip = self._format_lists(wip)
            wip = _replace(wip, NUMBERS, _with_symbol(NUM_INDICATOR))
            wip = self._format_abbreviations(wip)
        wip = _replace(wip, PUNCTUATIONS, lambda m: m.group(0) + BREAK)
        wip = _replace(wip, MULTIPLE_PERIODS, _with_symbol(MULT_PERIOD))
        wip = _replace(wip, GEO_LOCATIONS, _with_symbol(MULT_PERIOD))
        wip = _replace(wip, ELLIPSIS, _with_symbol(ELLIPSIS_INDICATOR + BREAK))
        wip = _replace(wip, BETWEEN_PUNCTUATIONS, _protect)
        wip = _replace(wip, QUOTATION_MARK_IN_QUOTATION, _with_symbol(QUESTION_IN_QUOTE))
        wip = _replace(wip, EXCLAMATION_POINT, _with_symbol(EXCLAMATION_INDICATOR))
        for symbol, rule in BASIC_BREAKERS:
            wip = rule.sub(symbol + BREAK, wip)
        return wip

    def _format_custom_bounds(self, wip: str) -> str:
        make = {
            "none": _with_symbol(BREAK),
            "prepend": lambda m: BREAK + m.group(0),
            "append": lambda m: m.group(0) + BREAK,
        }[self.custom_bounds_strategy]
        return _replace(wip, [compile_java(b) for b in self.custom_bounds], make)

    def _format_lists(self, wip: str) -> str:
        if not self.detect_lists:
            return wip
        return _replace(wip, LISTS, lambda m: BREAK + PROTECT_OPEN + m.group(0) + PROTECT_CLOSE)

    def _format_abbreviations(self, wip: str) -> str:
        wip = _replace(wip, SPECIAL_ABBREVIATIONS, _protect)
        wip = _replace(wip, STD_ABBREVIATIONS, _with_symbol(ABBREVIATOR))
        if self.use_abbreviations:
            wip = _replace(wip, DICT_ABBREVIATIONS, _with_symbol(ABBREVIATOR))
        return wip

    def sentences(self, text: str) -> list[tuple[int, str]]:
        """(start, content) of each sentence, as ``PragmaticSentenceExtractor.pull`` finds them.

        ``content`` is trimmed as Java's ``String.trim`` does (whitespace <= U+0020 stripped; U+00A0 kept); an empty content is kept, as in
        Spark NLP, where the annotator filters it out later.
        """
        source = _MARKERS.sub(lambda m: _STAND_IN[m.group(0) >= "\uF050"], text)
        pieces = _UNPROTECTED_BREAK.split(self.symbolize(source))
        out: list[tuple[int, str]] = []
        last = 0
        for piece in pieces:
            if not piece:
                continue
            content = _trim(_RECOVERY_RE.sub(lambda m: _RECOVERY[m.group(0)], piece.replace(BREAK, "")))
            start = source.find(content, last)
            if start < 0:  # cannot happen once markers are stood in for; never lose the document over it
                continue
            out.append((start, content))
            last = start + len(content)
        return out


def _trimmed(ch: str) -> bool:
    """What ``String.trim`` strips (code points <= U+0020), except control characters that are not
    whitespace (BEL, ESC, ...): Spark NLP loses those at a sentence's edge, we keep them."""
    return ch <= " " and ch.isspace()


def _trim(s: str) -> str:
    start, stop = 0, len(s)
    while start < stop and _trimmed(s[start]):
        start += 1
    while stop > start and _trimmed(s[stop - 1]):
        stop -= 1
    return s[start:stop]


def truncate_sentence(sentence: str, split_length: int) -> list[str]:
    """``SentenceDetectorParams.truncateSentence``: words (split on " ") packed up to ``split_length``.

    A word longer than ``split_length`` becomes a piece of its own: no word is ever cut.
    """
    pieces, current, length = [], [], 0
    for word in sentence.split(" "):
        if length + len(word) > split_length:
            pieces.append(" ".join(current))
            current, length = [], 0
        current.append(word)
        length += len(word) + 1
    pieces.append(" ".join(current))
    return pieces
