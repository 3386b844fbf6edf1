"""Sentence spans: boundaries in many scripts, offsets into the original, no character lost."""

import re
import sys

import pytest

from pipelines.text.pragmatic import PragmaticRules
from pipelines.text.sentences import VISIBLE_CHAR_REGEX, cuts_from_segments, pragmatic_sentences, split_sentences


def sentences(text, lang="xx", **kw):
    return [s.text(text) for s in split_sentences(text, lang, **kw)]


@pytest.mark.parametrize(
    "lang,text,expected",
    [
        ("de", "Das ist z.B. ein Test. Dr. Müller kam am 3. Mai nach Berlin! Was nun?",
         ["Das ist z.B. ein Test.", "Dr. Müller kam am 3. Mai nach Berlin!", "Was nun?"]),
        ("zh", "今天天气很好。我们去公园吧！你呢？", ["今天天气很好。", "我们去公园吧！", "你呢？"]),
        ("ja", "こんにちは。元気ですか？はい", ["こんにちは。", "元気ですか？", "はい"]),
        ("hi", "नमस्ते। आप कैसे हैं? ठीक", ["नमस्ते।", "आप कैसे हैं?", "ठीक"]),
        ("ar", "مرحبا. كيف حالك؟ بخير", ["مرحبا.", "كيف حالك؟", "بخير"]),
        ("ru", "Привет. Как дела? Хорошо", ["Привет.", "Как дела?", "Хорошо"]),
    ],
)
def test_boundaries_across_scripts(lang, text, expected):
    assert sentences(text, lang) == expected


def test_offsets_point_into_the_original_text_with_surrounding_whitespace_excluded():
    text = "  First one.   Second one!\n\n  Third  "
    spans = split_sentences(text)
    assert [(s.begin, s.end) for s in spans] == [(2, 11), (15, 25), (30, 34)]


def test_empty_and_whitespace_only_text_have_no_sentences():
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


def test_long_sentence_is_cut_at_whitespace_not_dropped():
    text = "word " * 30 + "end."
    parts = sentences(text, max_length=40)
    assert all(len(p) <= 40 for p in parts)
    assert " ".join(parts).split() == text.split()


def test_short_sentences_merge_into_the_next():
    assert sentences("Hi. Ok. This is longer.", min_length=8) == ["Hi. Ok. This is longer."]


@pytest.mark.parametrize("strategy,expected", [
    # Spark NLP's customBoundsStrategy: "none" drops the matched bound, the others keep it
    ("none", ["a", "b", "c"]), ("append", ["a;", "b;", "c"]), ("prepend", ["a", ";b", ";c"]),
])
def test_custom_bounds_are_regular_expressions_with_a_strategy(strategy, expected):
    rules = PragmaticRules(custom_bounds=(r";|\|",), use_custom_bounds_only=True, custom_bounds_strategy=strategy)
    text = "a;b|c".replace("|", ";")
    assert [s.text(text) for s in pragmatic_sentences(text, rules)] == expected


def test_custom_bounds_only_ignores_the_pragmatic_rules():
    rules = PragmaticRules(custom_bounds=(r"\n\n",), use_custom_bounds_only=True)
    text = "One. Two.\n\nThree"
    assert [s.text(text) for s in pragmatic_sentences(text, rules)] == ["One. Two.", "Three"]


def test_multilingual_splitter_never_loses_a_character_of_real_text():
    """sentencex drops a blank line after a line without end punctuation (a signed-off letter in
    ru.txt, and in ar.txt and hi.txt): its segments do not concatenate back to the text; the offsets
    are ours, so the document is split anyway and every character stays in a sentence."""
    import sentencex

    from pipelines.text.parity import SAMPLE_SRC

    for lang in ("ru", "ar", "hi"):
        text = (SAMPLE_SRC / f"{lang}.txt").read_text(encoding="utf-8")
        assert "".join(sentencex.segment(lang, text)) != text  # the library's behaviour this guards against
        spans = split_sentences(text, lang)
        covered = [i for s in spans for i in range(s.begin, s.end + 1)]
        assert covered == sorted(set(covered))
        assert set(covered) >= {i for i, ch in enumerate(text) if not ch.isspace()}
        assert len(spans) > 50


def test_segments_that_do_not_match_the_text_still_give_valid_cuts():
    text = "Первое предложение.\n\nВторое — тут. Третье"
    segments = ["Первое предложение.", "Второе — тут. ", "Третье", "не из этого текста"]
    cuts = cuts_from_segments(text, segments)
    assert cuts[0] == 0 and cuts[-1] == len(text) and cuts == sorted(set(cuts))
    assert [text[a:b].strip() for a, b in zip(cuts, cuts[1:])] == ["Первое предложение.", "Второе — тут.", "Третье"]


def test_visible_character_regex_agrees_with_python_whitespace_on_every_code_point():
    visible = re.compile(VISIBLE_CHAR_REGEX)
    mismatches = [c for c in range(sys.maxunicode + 1)
                  if (visible.fullmatch(chr(c)) is None) != chr(c).isspace()]
    assert mismatches == []
