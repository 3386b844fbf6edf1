"""Tokenizer rules: Spark NLP's context-character splitting, CJK ideographs, nothing lost."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.text.java_regex import JavaRegexError
from pipelines.text.pragmatic import PragmaticRules
from pipelines.text.sentences import Span, pragmatic_sentences, split_sentences
from pipelines.text.tokens import TokenizerRules


def tokens(text, **rules):
    spans = TokenizerRules(**rules).tokenize(text, Span(0, len(text) - 1))
    return [text[s.begin : s.end + 1] for s in spans]


def test_context_characters_split_off_as_runs_like_spark_nlp():
    assert tokens('Hello, world!! (Dr. Smith) said "U.S." -- ok...') == [
        "Hello", ",", "world", "!!", "(", "Dr", ".", "Smith", ")", "said", '"', "U.S", '."', "--", "ok", "...",
    ]


def test_each_cjk_ideograph_is_a_token_but_kana_runs_stay_whole():
    assert tokens("我们去北京吧！") == ["我", "们", "去", "北", "京", "吧", "！"]
    assert tokens("東京へ行きます") == ["東", "京", "へ", "行", "きます"]
    assert tokens("ひらがなカタカナ") == ["ひらがなカタカナ"]
    assert tokens("abc北京def") == ["abc", "北", "京", "def"]


def test_accents_and_case_are_kept():
    assert tokens("Ärger über Éclairs à Zürich") == ["Ärger", "über", "Éclairs", "à", "Zürich"]


def test_exceptions_keep_the_whole_candidate_as_spark_nlp_does():
    # Spark NLP keeps a candidate holding a protected exception whole, punctuation included ("new york.");
    # the old native tokenizer split the "." off, which the jar does not.
    assert tokens("I love new york.", exceptions=("New York",), case_sensitive_exceptions=False) == [
        "I", "love", "new york.",
    ]
    assert tokens("I love new york.", exceptions=("New York",)) == ["I", "love", "new", "york", "."]
    assert tokens("an e-mail, ok", exceptions=("e-mail",)) == ["an", "e-mail", ",", "ok"]


def test_patterns_are_java_regular_expressions():
    assert tokens("naïve café 42x", infix_patterns=(r"(\p{L}+)(\d*)",), context_chars=()) == [
        "naïve", "café", "42x"]  # no rule matches "42x" (\A\p{L}+): the candidate stays whole
    assert tokens("camelCaseWord", split_pattern="(?<=\\p{Ll})(?=\\p{Lu})") == ["camel", "Case", "Word"]
    with pytest.raises(JavaRegexError, match="javaLowerCase"):
        TokenizerRules(infix_patterns=(r"(\p{javaLowerCase}+)",))
    with pytest.raises(ValueError, match="prefixPattern must begin with"):
        TokenizerRules(prefix_pattern="([(]*)")


def test_whitespace_is_what_javas_s_sees():
    # Spark NLP splits candidates at [ \t\n\x0B\f\r] only: a no-break space or an ideographic space
    # stays inside a token
    assert tokens("a\u00a0b c\u3000d\te") == ["a\u00a0b", "c\u3000d", "e"]


def test_split_chars_keep_the_separator_as_a_token():
    assert tokens("state-of-the-art", split_chars=("-",)) == ["state", "-", "of", "-", "the", "-", "art"]


def test_overlong_token_is_cut_not_dropped():
    assert tokens("abcdefghij xy", max_length=4) == ["abcd", "efgh", "ij", "xy"]


def test_min_length_removes_short_tokens_as_in_spark_nlp():
    assert tokens("a bb ccc", min_length=2) == ["bb", "ccc"]


visible_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200
)


JAVA_WHITESPACE = set(" \t\n\x0b\f\r")


@pytest.mark.parametrize("splitter", [split_sentences, lambda t: pragmatic_sentences(t, PragmaticRules())],
                         ids=["multilingual", "pragmatic"])
@settings(max_examples=300, deadline=None)
@given(text=visible_text)
def test_every_non_whitespace_character_is_in_exactly_one_token(splitter, text):
    sentences = splitter(text)
    rules = TokenizerRules()
    covered = []
    for s in sentences:
        assert s.begin <= s.end
        for t in rules.tokenize(text, s):
            assert s.begin <= t.begin <= t.end <= s.end
            token = text[t.begin : t.end + 1]
            assert token and not set(token) & JAVA_WHITESPACE
            covered.extend(range(t.begin, t.end + 1))
    assert covered == sorted(set(covered)), "tokens overlap or are out of order"
    # Java's \S decides what a token may hold: other Unicode spaces (U+00A0, U+3000) can be inside one
    assert set(covered) >= {i for i, ch in enumerate(text) if not ch.isspace()}
    assert set(covered) <= {i for i, ch in enumerate(text) if ch not in JAVA_WHITESPACE}
