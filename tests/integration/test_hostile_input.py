"""Hostile input: random Unicode from every plane through the real pipeline; a million-character document."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lake_helpers import job_config, write_corpus, read_table

from pipelines.run.job import run_annotate
from pipelines.annotate.tables import SEGMENT_CHARS, stream_token_table

PIECES = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),  # any plane, controls included
    st.sampled_from(["\u0301\u0302e\u0308", "\u202eevil\u202c", "\u200b\u200c\u200d", "👨‍👩‍👧‍👦", "🇩🇪🇫🇷",
                     "\x00\x07\x1b", "שלום עולם", "مرحبا", "नमस्ते", "北京市", "ｶﾀｶﾅ", "\ufeff", "\U000e0001"]),
    st.text(alphabet="ab", min_size=300, max_size=700),  # a very long token
)
TEXTS = st.lists(st.lists(PIECES, max_size=6).map(" ".join), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def steps(demo_bundle):
    from pipelines.config import parse_config
    from pipelines.run.job import build_stages

    stages = build_stages(parse_config({}), str(demo_bundle.path), ["doc_id", "text"])
    all_steps = [s._step() for s in stages]
    return all_steps[:3], all_steps[3:]


def _check_rows(texts, rows):
    by_doc = {}
    for r in rows:
        text = texts[int(r["doc_id"])]
        assert text[r["begin"] : r["end"] + 1] == r["token"]
        by_doc.setdefault(r["doc_id"], []).append(r)
    for doc_id, text in enumerate(texts):
        got = sorted(by_doc.get(str(doc_id), []), key=lambda r: r["token_index"])
        assert [r["token_index"] for r in got] == list(range(len(got)))
        covered = {i for r in got for i in range(r["begin"], r["end"] + 1)}
        # Tokens split where Java's \s (Spark NLP) does, so a no-break space between two letters stays
        # inside a token; every other character is covered, no ASCII whitespace is
        assert covered >= {i for i, ch in enumerate(text) if not ch.isspace()}
        assert covered <= {i for i, ch in enumerate(text) if ch not in " \t\n\x0b\f\r"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS, st.sampled_from([16, 64, 8192]), st.sampled_from([SEGMENT_CHARS, 60]))
def test_worker_pass_never_crashes_and_never_loses_a_character(steps, texts, max_tokens, segment_chars):
    """The exact mapInArrow body, in-process with the real model, on many random batches; documents
    cut into segments of 60 characters, at any kind of boundary, keep every guarantee."""
    text_steps, model_steps = steps
    rb = pa.RecordBatch.from_pydict({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    out = list(stream_token_table(iter([rb]), text_steps, model_steps, ["doc_id"], max_tokens,
                                  segment_chars=segment_chars))
    rows = [r for b in out for r in b.to_pylist()]
    _check_rows(texts, rows)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(TEXTS)
def test_job_accounts_for_every_hostile_row(spark, tmp_path_factory, demo_bundle, texts):
    tmp = tmp_path_factory.mktemp("hostile")
    corpus = write_corpus(tmp / "corpus", {"xx": [(str(i), t) for i, t in enumerate(texts)]})
    result = run_annotate(job_config(tmp / "lake", corpus, demo_bundle.path), spark=spark)
    counts = json.loads(Path(result.manifest_path).read_text())["counts"]
    assert counts["input_rows"] == len(texts) == counts["annotated_rows"] + counts["quarantined_rows"]
    blank = sum(1 for t in texts if not t.strip() or t.isspace())
    assert counts["quarantined_rows"] == blank
    rows = [r.asDict() for r in read_table(spark, result.tables["token_embeddings"]).drop("run_id").collect()]
    assert bool(rows) == (blank < len(texts))
    _check_rows(texts, rows)


def test_a_million_character_document_is_annotated_completely(spark, tmp_path, demo_bundle):
    sentence = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "
    text = (sentence * (1_000_000 // len(sentence) + 1))[:1_000_000]
    corpus = write_corpus(tmp_path / "corpus", {"de": [("huge", text), ("small", "Klein.")]})
    result = run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path), spark=spark)
    tokens = read_table(spark, result.tables["token_embeddings"]).where("doc_id = 'huge'")
    stats = tokens.selectExpr("count(*) as n", "max(token_index) as last", "sum(length(token)) as chars",
                              "min(size(embedding)) as dim").first()
    assert stats.n == stats.last + 1
    assert stats.chars == sum(1 for ch in text if not ch.isspace())
    assert stats.dim == demo_bundle.manifest.dimension
