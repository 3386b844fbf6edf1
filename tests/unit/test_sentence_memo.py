"""Sentence reuse inside the worker pass (no Spark): the token rows with a memo equal those without it, and
only exact repeats are served from it."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.annotate import reuse
from pipelines.annotate.stages import BertEmbeddings, DocumentAssembler, SentenceDetector, Tokenizer
from pipelines.annotate.tables import stream_sentences, stream_token_table
from pipelines.model.demo import default_texts
from pipelines.ner.stages import NerConverter, NerDLModel

VECTOR_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def steps(demo_bundle, tmp_path_factory):
    from pipelines.ner.demo import build_demo_ner

    ner = tmp_path_factory.mktemp("ner") / "demo-ner"
    build_demo_ner(ner, demo_bundle.path, epochs=2, log=None)
    stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
              SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
              Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
              BertEmbeddings(modelPath=str(demo_bundle.path)).setInputCols(["sentence", "token"]),
              NerDLModel(modelPath=str(ner)).setInputCols(["sentence", "token", "embeddings"]),
              NerConverter()]
    all_steps = [s._step() for s in stages]
    return all_steps[:3], all_steps[3:]


def corpus() -> list[str]:
    """The sample corpus's texts (multilingual, several sentences each), each again later inside another
    document, plus near-duplicates of a sentence that must never be served from it."""
    texts = [t for t in default_texts() if len(t) > 40][:12]
    base = "Der Stadtrat in Köln hat am Dienstag einen neuen Haushalt beschlossen."
    near = [base, base.replace("Köln", "Koln"), base.replace("am Dienstag", "am  Dienstag"), base.upper(),
            unicodedata.normalize("NFD", base), base[:-1] + "!"]
    assert len(set(near)) == len(near) and unicodedata.normalize("NFC", near[4]) == base
    repeated = [f"{a} {b}" for a, b in zip(texts, texts[1:] + texts[:1])]
    return texts + near + repeated + near + texts[:3]


def _rows(steps, texts, memo=None, max_tokens=64):
    rb = pa.RecordBatch.from_pydict({"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts})
    batches = [rb.slice(i, 5) for i in range(0, rb.num_rows, 5)]
    out = pa.Table.from_batches(list(stream_token_table(iter(batches), steps[0], steps[1], ["doc_id"], max_tokens,
                                                         memo=memo)))
    return out.to_pylist()


def test_rows_with_reuse_equal_rows_without(steps):
    texts = corpus()
    plain = _rows(steps, texts)
    spec = reuse.MemoSpec(tuple([steps[0][-1], *steps[1]]), None, 64.0)
    before = dict(spec.memo().counters)
    reused = _rows(steps, texts, spec)
    assert len(plain) == len(reused) > 500
    for a, b in zip(plain, reused):
        vec_a, vec_b = np.asarray(a.pop("embedding")), np.asarray(b.pop("embedding"))
        assert np.abs(vec_a - vec_b).max() <= VECTOR_TOLERANCE
        ner_a, ner_b = a.pop("ner_confidence"), b.pop("ner_confidence")
        assert ner_a == pytest.approx(ner_b, abs=1e-6) if ner_a is not None else ner_b is None
        assert a == b
    counted = {k: v - before[k] for k, v in spec.memo().counters.items()}
    sentences = [s for rb in stream_sentences(iter([pa.RecordBatch.from_pydict({"text": texts})]), steps[0])
                 for s in rb.column("sentence").to_pylist()]
    assert counted["sentences"] == len(sentences)
    # every occurrence after a sentence's first is served from the memo, and nothing else is
    assert counted["reused_worker"] == len(sentences) - len(set(sentences)) > 0


def test_near_duplicates_are_never_served_for_each_other(steps):
    base = "Der Stadtrat in Köln hat am Dienstag einen neuen Haushalt beschlossen."
    variants = [base, base.replace("Köln", "Koln"), base.replace("am Dienstag", "am  Dienstag"), base.upper(),
                unicodedata.normalize("NFD", base)]
    spec = reuse.MemoSpec(tuple([steps[0][-1], *steps[1]]), None, 63.0)  # a memo of its own (the bound is in its key)
    _rows(steps, variants, spec, max_tokens=16)
    assert spec.memo().counters == {"sentences": len(variants), "reused_run": 0, "reused_lake": 0, "reused_worker": 0}
    _rows(steps, variants[:2], spec, max_tokens=16)
    assert spec.memo().counters["reused_worker"] == 2


def test_worker_cache_is_bounded_least_recently_used_out(steps):
    texts = corpus()
    spec = reuse.MemoSpec(tuple([steps[0][-1], *steps[1]]), None, 0.05)  # ~50 KB: a few sentences
    plain, reused = _rows(steps, texts), _rows(steps, texts, spec)
    assert [r["token"] for r in plain] == [r["token"] for r in reused]
    memo = spec.memo()
    assert 0 < memo.held <= memo.capacity and len(memo.recent) < len(set(texts))


def test_shared_entries_round_trip_through_the_shared_file(steps, tmp_path):
    texts = corpus()
    token_step, model_steps = steps[0][-1], steps[1]
    sentence = steps[0][1]
    ann = sentence.apply({"document": steps[0][0].apply({"text": [texts[0]]})})[0][0]
    tokens = token_step.apply({"sentence": [[ann]]})[0]
    entry, = reuse.compute_entries([reuse.relative(ann, tokens)], model_steps, "sentence", "token")
    payload = reuse.encode_entry(entry)
    # the same text twice (two concurrent runs each added it): one entry in the file, the first
    hits = pa.table({"sentence": ["other", "other", ann.result, ann.result],
                     "payload": [b"other-1", b"other-2", payload, b"later copy"]})
    rows = reuse.shared_table(hits, True)
    assert rows.select(["sentence", "payload"]).to_pylist() == [{"sentence": "other", "payload": b"other-1"},
                                                                {"sentence": ann.result, "payload": payload}]
    written = reuse.write_shared(tmp_path, [rows.filter(pc.equal(rows["sentence"], ann.result))])
    assert written["sentences"] == 1
    shared = reuse.read_shared(str(tmp_path), verify=True)
    assert shared[ann.result][1] is True  # read from the lake's cache
    back = reuse.decode_entry(shared[ann.result][0])
    assert [[(a.begin, a.end, a.result, a.metadata) for a in anns] for anns in back] == \
        [[(a.begin, a.end, a.result, a.metadata) for a in anns] for anns in entry]
    assert np.array_equal(np.stack([a.embeddings for a in back[0]]), np.stack([a.embeddings for a in entry[0]]))
    (tmp_path / reuse.SHARED_FILE).write_bytes((tmp_path / reuse.SHARED_FILE).read_bytes()[:-8] + b"x" * 8)
    with pytest.raises(ValueError, match="checksum"):
        reuse.read_shared(str(tmp_path), verify=True)


def test_the_shared_file_is_read_in_place(tmp_path):
    """Each payload a slice of the mapped file (pages the workers share), not a copy per worker: the payloads of
    one record batch lie back to back, as in the file."""
    payloads = [bytes([n]) * (8 * (n + 1)) for n in range(6)]
    tables = [reuse.shared_table(pa.table({"sentence": [f"s{n}" for n in range(k, k + 3)],
                                           "payload": payloads[k:k + 3]}), k == 3) for k in (0, 3)]
    reuse.write_shared(tmp_path, tables)
    shared = reuse.read_shared(str(tmp_path))
    assert {text: (bytes(view), lake) for text, (view, lake) in shared.items()} == \
        {f"s{n}": (payloads[n], n >= 3) for n in range(6)}
    views = [shared[f"s{n}"][0] for n in range(6)]
    for batch in (views[:3], views[3:]):
        assert [v.address for v in batch[1:]] == [v.address + v.size for v in batch[:-1]]


def test_workers_of_one_executor_share_what_they_computed(steps, tmp_path):
    """Two workers (two memos) over one executor cache: the second computes nothing the first stored; another
    pipeline fingerprint has a cache of its own."""
    texts = corpus()
    model_steps = tuple([steps[0][-1], *steps[1]])
    first = reuse.MemoSpec(model_steps, None, 61.0, 16.0, "fingerprint-a", str(tmp_path))
    second = reuse.MemoSpec(model_steps, None, 60.0, 16.0, "fingerprint-a", str(tmp_path))
    other = reuse.MemoSpec(model_steps, None, 59.0, 16.0, "fingerprint-b", str(tmp_path))
    plain = _rows(steps, texts)
    _rows(steps, texts, first)
    assert second.memo() is not first.memo() and not second.memo().recent  # a worker of its own, nothing in memory
    pieces = steps[1][0].stats()["pieces"]
    served = _rows(steps, texts, second)
    assert steps[1][0].stats()["pieces"] == pieces  # the model ran on nothing
    assert [r["token"] for r in served] == [r["token"] for r in plain]
    for a, b in zip(plain, served):
        assert np.abs(np.asarray(a["embedding"]) - np.asarray(b["embedding"])).max() <= VECTOR_TOLERANCE
        assert a["ner"] == b["ner"]
    counted = second.memo().counters
    assert counted["reused_worker"] == counted["sentences"] > 0  # every occurrence: from the executor or itself
    _rows(steps, texts[:3], other)
    assert other.memo().counters["reused_worker"] < other.memo().counters["sentences"]
    assert len(list((tmp_path / "sentence-memo").iterdir())) == 2


class _Given:
    """What ``stream_token_table`` takes as ``memo``: a worker's memo, here built by the test."""

    def __init__(self, memo):
        self._memo = memo

    def memo(self):
        return self._memo


def _distinct_sentences(steps, texts) -> list[str]:
    return list(dict.fromkeys(s for rb in stream_sentences(iter([pa.RecordBatch.from_pydict({"text": texts})]),
                                                            steps[0]) for s in rb.column("sentence").to_pylist()))


def _served_like_plain(steps, texts, memo):
    plain, served = _rows(steps, texts), _rows(steps, texts, _Given(memo))
    assert [r["token"] for r in served] == [r["token"] for r in plain]
    for a, b in zip(plain, served):
        assert np.abs(np.asarray(a["embedding"]) - np.asarray(b["embedding"])).max() <= VECTOR_TOLERANCE
        assert a["ner"] == b["ner"]
    return memo.counters["sentences"] - memo.counters["reused_worker"] - memo.counters["reused_run"]


def test_a_sentence_another_worker_is_computing_is_taken_from_it(steps, tmp_path):
    """Another worker of the executor claimed some sentences (it is computing them) and stores them while this
    one computes its own share: this one serves them, and computes each of the others once."""
    texts = corpus()
    distinct = _distinct_sentences(steps, texts)
    source = reuse.SentenceMemo(None, 0, reuse.ExecutorCache(tmp_path / "source", 1 << 30))
    _rows(steps, texts, _Given(source))  # what the other worker will have computed
    theirs = distinct[::3]
    other = reuse.ExecutorCache(tmp_path / "shared", 1 << 30)
    assert other.claim(theirs) == set(theirs)

    class OtherStoresMeanwhile(reuse.ExecutorCache):
        def claim(self, texts):
            mine = super().claim(texts)
            for text in theirs:  # the other worker finishes while this one computes
                other.cache.set(text, source.executor.get(text))
            return mine

    memo = reuse.SentenceMemo(None, 0, OtherStoresMeanwhile(tmp_path / "shared", 1 << 30))
    assert _served_like_plain(steps, texts, memo) == len(distinct) - len(theirs)


def test_a_claim_never_fulfilled_only_delays_a_sentence(steps, tmp_path):
    """A worker that claimed sentences and died: the others compute them after their own share."""
    texts = corpus()
    distinct = _distinct_sentences(steps, texts)
    reuse.ExecutorCache(tmp_path / "shared", 1 << 30).claim(distinct[::2])
    memo = reuse.SentenceMemo(None, 0, reuse.ExecutorCache(tmp_path / "shared", 1 << 30))
    assert _served_like_plain(steps, texts, memo) == len(distinct)
    assert all(memo.executor.get(text) is not None for text in distinct)  # and stored them for the others


def test_executor_cache_is_bounded(steps, tmp_path):
    texts = corpus()
    spec = reuse.MemoSpec(tuple([steps[0][-1], *steps[1]]), None, 58.0, 0.2, "fingerprint-c", str(tmp_path))
    _rows(steps, texts, spec)
    cache = spec.memo().executor.cache
    distinct = {s for rb in stream_sentences(iter([pa.RecordBatch.from_pydict({"text": texts})]), steps[0])
                for s in rb.column("sentence").to_pylist()}
    assert 0 < len(cache) < len(distinct)
    assert cache.volume() <= 0.2 * 1024 * 1024 + 256 * 1024  # the bound, plus SQLite's own pages


@pytest.mark.parametrize("sentences, chars, one_executor, native, expected", [
    ("auto", 10**9, True, True, "worker"),  # one executor: its workers' cache already computes a sentence ~once
    ("auto", 10**9, False, True, "run"),  # a cluster: the key pass pays from run_min_chars
    ("auto", 10**3, False, True, "worker"),
    ("lake", 10**3, True, True, "lake"),  # what is asked, whatever the size
    ("run", 10**3, True, True, "run"),
    ("run", 10**9, False, False, "off"),  # no native token pass (sparknlp engine, annotations table)
])
def test_the_reuse_a_run_gets(sentences, chars, one_executor, native, expected):
    from pipelines.config import ReuseSettings
    from pipelines.run.reuse import mode_for

    assert mode_for(ReuseSettings(sentences=sentences), chars, native, one_executor) == expected
