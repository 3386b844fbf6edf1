"""Where the worker pass cuts a long document into segments (pipelines.annotate.tables.segment_bounds)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.annotate.tables import segment_bounds


def _check_cover(text: str, limit: int) -> list[tuple[int, int]]:
    spans = list(segment_bounds(text, limit))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, nothing lost or repeated
    assert all(0 < stop - start <= limit for start, stop in spans[:-1])
    assert all(stop - start >= limit // 2 for start, stop in spans[:-1])
    return spans


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!\n\t北。\u0301")), max_size=400), st.integers(2, 60))
def test_segments_cover_the_text_in_bounded_pieces(text, limit):
    _check_cover(text, limit)


def test_short_text_is_one_segment():
    assert list(segment_bounds("Hello world.", 100)) == [(0, 12)]
    assert list(segment_bounds("", 100)) == [(0, 0)]


def test_cut_prefers_paragraph_then_line_then_sentence_then_space():
    # a paragraph break in the second half of the window wins over a later line break
    assert _check_cover("Aaaa bbbb.\n\nCc.\nEeee ffff gggg", 20)[0] == (0, 12)
    # no paragraph break: the line break wins over a later sentence end
    assert _check_cover("Aaaa bbbb cc.\nDd. eeee", 16)[0] == (0, 14)
    # no break at all: after the sentence end; then at the last whitespace
    assert _check_cover("Eeee ffff. Gggg hhhh", 16)[0] == (0, 10)
    assert _check_cover("Eeee ffff gggg hhhh", 16)[0] == (0, 15)


def test_text_without_whitespace_is_cut_at_the_limit_but_not_before_a_combining_mark():
    assert _check_cover("x" * 25, 10) == [(0, 10), (10, 20), (20, 25)]
    text = "e" * 10 + "\u0301" + "e" * 10  # a cut at the limit would part the 10th e from its accent
    start, stop = _check_cover(text, 10)[0]
    assert stop == 9 and text[stop:stop + 2] == "e\u0301"


def test_cjk_text_is_cut_after_an_ideographic_full_stop():
    text = "北京很大。" * 10
    assert all(text[stop - 1] == "。" for _, stop in _check_cover(text, 12)[:-1])
