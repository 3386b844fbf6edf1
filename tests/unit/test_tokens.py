"""Tokenizer rules: Spark NLP's context-character splitting, CJK ideographs, nothing lost."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.text.sentences import Span, split_sentences
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


def test_exceptions_keep_multiword_tokens_case_insensitively():
    assert tokens("I love new york.", exceptions=("New York",), case_sensitive_exceptions=False) == [
        "I", "love", "new york", ".",
    ]
    assert tokens("I love new york.", exceptions=("New York",)) == ["I", "love", "new", "york", "."]


def test_split_chars_keep_the_separator_as_a_token():
    assert tokens("state-of-the-art", split_chars=("-",)) == ["state", "-", "of", "-", "the", "-", "art"]


def test_overlong_token_is_cut_not_dropped():
    assert tokens("abcdefghij xy", max_length=4) == ["abcd", "efgh", "ij", "xy"]


def test_min_length_removes_short_tokens_as_in_spark_nlp():
    assert tokens("a bb ccc", min_length=2) == ["bb", "ccc"]


visible_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200
)


@settings(max_examples=300, deadline=None)
@given(visible_text)
def test_every_non_whitespace_character_is_in_exactly_one_token(text):
    sentences = split_sentences(text)
    rules = TokenizerRules()
    covered = []
    for s in sentences:
        assert s.begin <= s.end
        for t in rules.tokenize(text, s):
            assert s.begin <= t.begin <= t.end <= s.end
            token = text[t.begin : t.end + 1]
            assert token and not token.isspace()
            covered.extend(range(t.begin, t.end + 1))
    assert covered == sorted(set(covered)), "tokens overlap or are out of order"
    visible = [i for i, ch in enumerate(text) if not ch.isspace()]
    assert sorted(set(covered)) == visible
