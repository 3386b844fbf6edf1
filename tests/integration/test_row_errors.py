"""One bad row costs only itself: invalid UTF-8, binary text, a stage or the model raising on one row;
and long documents streamed in segments give the rows a whole-document pass gives."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.annotate.native import EmbedStep, MultilingualSentenceStep
from pipelines.annotate.row_errors import RowErrorLimitExceeded, limit_message
from pipelines.annotate.tables import segment_bounds, spark_schema, stream_annotations, stream_token_table
from pipelines.annotate.worker_reports import RunReport, with_report_column

TEXT_POISON = "Giftpilz"  # a document holding it makes the sentence step below raise
MODEL_POISON = "Knollenblätterpilz"  # a token equal to it makes the embeddings step below raise


@dataclass(frozen=True)
class SentencesThatBreak(MultilingualSentenceStep):
    """The real MultilingualSentenceStep, breaking its contract on documents holding TEXT_POISON (as a library
    bug would)."""

    def apply(self, batch):
        if any(TEXT_POISON in (docs[0].result if docs else "") for docs in batch[self.input_col]):
            raise AssertionError("sentence segmenter lost characters (poisoned row)\nsecond line")
        return super().apply(batch)


@dataclass(frozen=True)
class EmbeddingsThatBreak(EmbedStep):
    """The real EmbedStep, raising for a whole call when any of its tokens is MODEL_POISON."""

    def apply(self, batch):
        if any(t.result == MODEL_POISON for tokens in batch[self.token_col] for t in tokens):
            raise RuntimeError("ONNX Runtime: invalid input")
        return super().apply(batch)


@pytest.fixture(scope="module")
def steps(demo_bundle):
    from pipelines.config import parse_config
    from pipelines.run.job import build_stages

    stages = build_stages(parse_config({}), str(demo_bundle.path), ["doc_id", "text"])
    all_steps = [s._step() for s in stages]
    return all_steps[:3], all_steps[3:]


def _run(rb, steps, max_tokens=8192, **kwargs):
    text_steps, model_steps = steps
    return [r for b in stream_token_table(iter([rb]), text_steps, model_steps, ["doc_id"], max_tokens, **kwargs)
            for r in b.to_pylist()]


def _same_rows(got, expected):
    key = lambda r: (r["doc_id"], r["token_index"])  # noqa: E731
    got, expected = sorted(got, key=key), sorted(expected, key=key)
    assert [{k: v for k, v in r.items() if k != "embedding"} for r in got] == \
           [{k: v for k, v in r.items() if k != "embedding"} for r in expected]
    assert all(np.array_equal(a["embedding"], b["embedding"]) for a, b in zip(got, expected))
    assert got


def _poisoned(steps):
    (assemble, sentences, tokens), (embed,) = steps
    return ([assemble, SentencesThatBreak(**sentences.__dict__), tokens],
            [EmbeddingsThatBreak(**embed.__dict__)])


GOOD = {"a": "Das ist gut. Noch ein Satz.", "e": "北京很大！ And the last one."}


def _text_array(values: list[bytes | None], as_string: bool) -> pa.Array:
    """Raw bytes as an Arrow column, unchecked (as Spark hands a Parquet string column over)."""
    binary = pa.array(values, pa.binary())
    return binary.view(pa.string()) if as_string else binary


@pytest.mark.parametrize("as_string", [True, False], ids=["string column", "binary column"])
def test_each_bad_row_is_reported_and_the_others_are_annotated_as_if_alone(steps, as_string):
    rows = [("a", GOOD["a"].encode()), ("b", b"Kaputt: \xff\xfe und weiter."),
            ("c", f"Ein {TEXT_POISON} im Satz.".encode()), ("d", f"Hier steht {MODEL_POISON} allein .".encode()),
            ("e", GOOD["e"].encode())]
    rb = pa.RecordBatch.from_arrays([pa.array([r[0] for r in rows]), _text_array([r[1] for r in rows], as_string)],
                                    names=["doc_id", "text"])
    failures = []
    # one chunk holds every row: when the model raises on it, each row is tried alone
    got = _run(rb, _poisoned(steps), on_row_error=failures.append)
    alone = pa.RecordBatch.from_pydict({"doc_id": list(GOOD), "text": list(GOOD.values())})
    _same_rows(got, _run(alone, steps))

    by_row = {f.keep["doc_id"]: f for f in failures}
    assert sorted(by_row) == ["b", "c", "d"]
    b, c, d = by_row["b"], by_row["c"], by_row["d"]
    assert type(b.error) is UnicodeDecodeError and b.stage == "read"
    assert "position 8" in str(b.error) and "column 'text'" in str(b.error)
    assert b.text == "Kaputt: \ufffd\ufffd und weiter."
    assert c.stage == "text" and type(c.error) is AssertionError and c.text == rows[2][1].decode()
    assert d.stage == "model" and str(d.error) == "ONNX Runtime: invalid input" and d.text == rows[3][1].decode()
    assert all(f.partial_tokens == 0 for f in failures)


def test_without_a_callback_the_first_bad_row_raises(steps):
    rb = pa.RecordBatch.from_arrays([pa.array(["a", "b"]), _text_array([b"Gut.", b"\xff"], True)],
                                    names=["doc_id", "text"])
    with pytest.raises(UnicodeDecodeError):
        _run(rb, steps)


LINE = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "


def test_long_documents_in_segments_give_the_rows_of_one_whole_pass(steps):
    long_text = "\n".join([LINE * 12] * 30)  # ~25,000 characters, cut at line breaks
    no_space = "北京很大" * 3000  # no break of any kind: cut at the limit
    rb = pa.RecordBatch.from_pydict({"doc_id": ["long", "short", "cjk"], "text": [long_text, "Kurz.", no_space]})
    assert len(list(segment_bounds(long_text, 3000))) > 8
    whole = _run(rb, steps, max_tokens=700)
    segmented = _run(rb, steps, max_tokens=700, segment_chars=3000)
    _same_rows([r for r in segmented if r["doc_id"] != "cjk"], [r for r in whole if r["doc_id"] != "cjk"])
    # A cut without a boundary makes a sentence end there (so vectors differ), but the tokens stay.
    cjk = [r for r in segmented if r["doc_id"] == "cjk"]
    assert [(r["token_index"], r["begin"], r["end"], r["token"]) for r in cjk] == \
           [(i, i, i, ch) for i, ch in enumerate(no_space)]
    assert sorted({r["sentence"] for r in cjk}) == list(range(len(list(segment_bounds(no_space, 3000)))))


def test_a_failure_late_in_a_long_document_leaves_no_rows_of_it(steps):
    text_steps, model_steps = _poisoned(steps)
    late_text_failure = "\n".join([LINE * 12] * 10) + f"\nEin {TEXT_POISON} am Ende."
    late_model_failure = "\n".join([LINE * 12] * 10) + f"\nNur {MODEL_POISON} ."
    rb = pa.RecordBatch.from_pydict({"doc_id": ["t", "m", "a"], "text": [late_text_failure, late_model_failure,
                                                                        GOOD["a"]]})
    failures = []
    got = _run(rb, (text_steps, model_steps), max_tokens=500, segment_chars=2000, on_row_error=failures.append)
    by_row = {f.keep["doc_id"]: f for f in failures}
    assert sorted(by_row) == ["m", "t"]
    # the text steps run over a long document before any of its tokens leave: nothing of "t"
    assert by_row["t"].partial_tokens == 0 and not [r for r in got if r["doc_id"] == "t"]
    # the model fails on the last chunk of "m", after the first ones left: the count says how many
    m_rows = sorted(r["token_index"] for r in got if r["doc_id"] == "m")
    assert by_row["m"].partial_tokens == len(m_rows) > 0 and m_rows == list(range(len(m_rows)))
    assert [r for r in got if r["doc_id"] == "a"]


# --- the annotations pass (output.annotations) ----------------------------------------------------
def _annotations(rb, steps, **kwargs):
    return [r for b in stream_annotations(iter([rb]), steps[0] + steps[1], ["doc_id"], **kwargs) for r in b.to_pylist()]


def test_annotations_pass_reports_each_bad_row_and_keeps_the_others_as_if_alone(steps):
    rows = [("a", GOOD["a"].encode()), ("b", b"Kaputt: \xff\xfe und weiter."),
            ("c", f"Ein {TEXT_POISON} im Satz.".encode()), ("d", f"Hier steht {MODEL_POISON} allein .".encode()),
            ("e", GOOD["e"].encode())]
    rb = pa.RecordBatch.from_arrays([pa.array([r[0] for r in rows]), _text_array([r[1] for r in rows], True)],
                                    names=["doc_id", "text"])
    failures = []
    got = _annotations(rb, _poisoned(steps), on_row_error=failures.append)
    alone = pa.RecordBatch.from_pydict({"doc_id": list(GOOD), "text": list(GOOD.values())})
    assert got == _annotations(alone, steps) and [r["doc_id"] for r in got] == ["a", "e"]
    by_row = {f.keep["doc_id"]: f for f in failures}
    assert sorted(by_row) == ["b", "c", "d"]
    assert by_row["b"].stage == "read" and type(by_row["b"].error) is UnicodeDecodeError
    assert by_row["c"].stage == "pipeline" and type(by_row["c"].error) is AssertionError
    assert str(by_row["d"].error) == "ONNX Runtime: invalid input" and by_row["d"].text == rows[3][1].decode()
    with pytest.raises(UnicodeDecodeError):  # without a callback, the first bad row fails the task
        _annotations(rb, steps)


def test_annotations_pass_works_in_slices_of_bounded_text_and_gives_the_rows_of_one_pass(steps):
    texts = {f"r{i}": (LINE * (i + 1)) for i in range(6)}  # 60 to 360 characters each
    rb = pa.RecordBatch.from_pydict({"doc_id": list(texts), "text": list(texts.values())})
    sliced = list(stream_annotations(iter([rb]), steps[0] + steps[1], slice_chars=400))
    sizes = [sum(len(t.encode()) for t in b.column("text").to_pylist()) for b in sliced]
    assert len(sliced) > 2 and all(s <= 400 or b.num_rows == 1 for s, b in zip(sizes, sliced))
    assert [r for b in sliced for r in b.to_pylist()] == _annotations(rb, steps)


# --- through Spark: the report rows --------------------------------------------------------------
def test_spark_job_collects_the_bad_rows_once_and_stops_a_task_past_the_limit(spark, steps, tmp_path):
    values = [b"Gut.", b"\xc3\x28 kaputt", "Auch gut. 北京很大！".encode(), b"noch \xff kaputt " + b"x" * 50]
    table = pa.table({"doc_id": [f"d{i}" for i in range(len(values))], "lang": ["de"] * len(values),
                      "text": _text_array(values, as_string=True)})
    pq.write_table(table, tmp_path / "bad.parquet")
    df = spark.read.parquet(str(tmp_path / "bad.parquet")).repartition(2)
    text_steps, model_steps = steps
    keep = ["doc_id", "lang"]
    schema = spark_schema([df.schema[c] for c in keep])

    def annotate(report):
        def run(batches):
            task = report.task()
            return task.attach(stream_token_table(batches, text_steps, model_steps, keep, 4096, task,
                                                  on_row_error=task.row_failed), schema)

        return report.split(df.mapInArrow(run, with_report_column(schema)))

    report = RunReport(max_rows=5, text_max_chars=20)
    out = annotate(report)
    assert out.columns == df.select(*keep).columns + [f.name for f in schema.fields[len(keep):]]
    tokens = out.collect()
    assert {r.doc_id for r in tokens} == {"d0", "d2"}
    assert report.counts() == (4, len(tokens))  # every row read, the tokens of the good ones
    records = sorted(report.records(), key=lambda r: r["doc_id"])
    assert [(r["doc_id"], r["lang"], r["error_class"], r["stage"]) for r in records] == \
           [("d1", "de", "UnicodeDecodeError", "read"), ("d3", "de", "UnicodeDecodeError", "read")]
    assert records[1]["text_length"] == len(values[3].decode("utf-8", "replace"))
    assert records[1]["text"] == values[3].decode("utf-8", "replace")[:20]

    strict = RunReport(max_rows=0)
    with pytest.raises(Exception) as failed:
        annotate(strict).collect()
    line = limit_message(failed.value)
    assert line is not None and "UnicodeDecodeError" in line and "'doc_id': 'd" in line
    assert RowErrorLimitExceeded.__name__ in str(failed.value)
