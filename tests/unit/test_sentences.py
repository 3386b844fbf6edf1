"""Sentence spans: boundaries in many scripts, offsets into the original, no character lost."""

import re
import sys

import pytest

from pipelines.text.sentences import VISIBLE_CHAR_REGEX, split_sentences


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


def test_custom_bounds_only():
    assert sentences("a;b;c", custom_bounds=(";",), use_custom_bounds_only=True) == ["a;", "b;", "c"]


def test_visible_character_regex_agrees_with_python_whitespace_on_every_code_point():
    visible = re.compile(VISIBLE_CHAR_REGEX)
    mismatches = [c for c in range(sys.maxunicode + 1)
                  if (visible.fullmatch(chr(c)) is None) != chr(c).isspace()]
    assert mismatches == []
