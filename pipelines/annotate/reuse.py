"""Each distinct sentence through the model once: the worker side.

BertEmbeddings, the taggers (NerDLModel, a token classifier) and NerConverter compute each sentence from
that sentence alone, as Spark NLP's do (padding is masked: a sentence's vectors do not depend on the
batch it rides in). So identical sentence text gives identical outputs, and a repeated sentence can take
them from its first occurrence instead of from the model: the outputs are kept relative to the sentence
(offsets from its start, sentence number 0) and moved to each occurrence's place.

The key is the sentence's exact text: a near-duplicate (one character, one space, case, another Unicode
normalisation form) is another key, and the tokens, which the model steps read, are a function of the
text (the Tokenizer splits each sentence alone). Everything else that changes the outputs (models,
parameters) is fixed for one memo: a worker keeps one memo per pass configuration
(:func:`worker_memo`).

A worker's memo holds, first, the run's *shared* sentences, computed once for the whole run before the
pass and shipped to every executor as one Arrow file (:mod:`pipelines.run.reuse`), then, within
``worker_cache_mb``, the sentences this worker computed or read, least recently used out first, and last,
within ``executor_cache_mb`` on the executor's local disk, the sentences any Python worker of the executor
computed (:class:`ExecutorCache`): without it, two workers that meet one sentence each compute it.

Not reused: a sequence classifier's results over whole documents, which depend on the document (they are
computed as before); a sentence-level classifier, which runs on every occurrence too (its cost is small
next to the embeddings it would be reused with).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from pipelines import annotation as A
from pipelines.annotation import Ann
from pipelines.annotate import native

Entry = tuple  # one list[Ann] per model step, relative to the sentence
SHARED_FILE = "shared.arrow"  # the run's shared sentences: sentence (string), payload (binary), from_lake (bool)
SHARED_MANIFEST = "shared.json"  # {"sha256": ..., "sentences": n}
# per occurrence: served from the run's shared set (computed this run, or read from the lake's sentence cache),
# or from the worker's own memory; computed = sentences - the three
COUNTERS = ("sentences", "reused_run", "reused_lake", "reused_worker")
ANN_BYTES = 240  # what one Ann costs in Python beyond its vector (the object, its metadata dict and strings)


# --- entries: relative to their sentence, and back ---------------------------------------------------
def relative(sentence: Ann, tokens: list[Ann]) -> tuple[Ann, list[Ann]]:
    """The sentence and its tokens as if the sentence were a document of its own, numbered 0."""
    s = Ann(A.DOCUMENT, 0, sentence.end - sentence.begin, sentence.result, {"sentence": "0"})
    return s, [Ann(t.annotatorType, t.begin - sentence.begin, t.end - sentence.begin, t.result,
                   {**t.metadata, "sentence": "0"}) for t in tokens]


def placed(anns: list[Ann], offset: int, sentence: str) -> list[Ann]:
    """Copies of an entry's annotations at an occurrence: offsets moved, sentence number set."""
    return [Ann(a.annotatorType, a.begin + offset, a.end + offset, a.result, {**a.metadata, "sentence": sentence},
                a.embeddings) for a in anns]


def compute_entries(sentences: list[tuple[Ann, list[Ann]]], steps: list, sentence_col: str,
                    token_col: str) -> list[Entry]:
    """The model steps' outputs for each (relative) sentence and its tokens, all in one call per step."""
    batch: native.Batch = {sentence_col: [[s] for s, _ in sentences], token_col: [t for _, t in sentences]}
    native.run_steps(batch, steps)
    return [tuple(batch[step.output_col][i] for step in steps) for i in range(len(sentences))]


def entry_bytes(entry: Entry) -> int:
    return sum(ANN_BYTES + (a.embeddings.nbytes if a.embeddings is not None else 0) for anns in entry for a in anns)


def encode_entry(entry: Entry) -> bytes:
    """An entry as an Arrow IPC stream: one annotation column per step, one row (vectors as float32)."""
    batch = pa.RecordBatch.from_arrays([A.to_arrow([anns]) for anns in entry],
                                       names=[f"step{i}" for i in range(len(entry))])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode_entry(payload) -> Entry:
    batch = pa.ipc.open_stream(payload).read_next_batch()
    return tuple(_annotations(batch.column(i)) for i in range(batch.num_columns))


def _annotations(column: pa.ListArray) -> list[Ann]:
    """Row 0 of an annotation column, its vectors as views of the Arrow buffer (no float by float copy)."""
    values = column.values.slice(column.offsets[0].as_py(), len(column[0]))
    kinds, begins, ends, results, metadata = (values.field(name).to_pylist() for name in
                                              ("annotatorType", "begin", "end", "result", "metadata"))
    vectors = values.field("embeddings")
    offsets = vectors.offsets.to_numpy()
    flat = vectors.values.to_numpy(zero_copy_only=False)
    return [Ann(kind, begin, end, result, dict(meta),
                flat[offsets[i]:offsets[i + 1]] if offsets[i + 1] > offsets[i] else None)
            for i, (kind, begin, end, result, meta) in enumerate(zip(kinds, begins, ends, results, metadata))]


def stream_shared(batches, token_step, model_steps: list, max_tokens: int):
    """The ``mapInArrow`` body of the run's shared pass: distinct sentence texts in (column ``sentence``), each
    with its encoded entry out, and on each output batch's first row the WordPieces it cost (``pieces``)."""
    sentence_col, token_col = token_step.input_col, token_step.output_col
    first = model_steps[0]
    for rb in batches:
        pending, size = [], 0
        for text in rb.column("sentence").to_pylist():
            sentence = Ann(A.DOCUMENT, 0, len(text) - 1, text, {"sentence": "0"})
            tokens = token_step.apply({sentence_col: [[sentence]]})[0]
            pending.append((sentence, tokens))
            size += len(tokens)
            if size >= max_tokens:
                yield _shared_batch(pending, model_steps, sentence_col, token_col, first)
                pending, size = [], 0
        if pending:
            yield _shared_batch(pending, model_steps, sentence_col, token_col, first)


def _shared_batch(pending, model_steps, sentence_col, token_col, first) -> pa.RecordBatch:
    before = first.stats().get("pieces", 0)
    entries = compute_entries(pending, model_steps, sentence_col, token_col)
    pieces = [0] * len(pending)
    pieces[0] = int(first.stats().get("pieces", 0) - before)
    return pa.RecordBatch.from_arrays(
        [pa.array([s.result for s, _ in pending], pa.string()), pa.array([encode_entry(e) for e in entries], pa.binary()),
         pa.array(pieces, pa.int64())], names=["sentence", "payload", "pieces"])


# --- the memo ----------------------------------------------------------------------------------
class SentenceMemo:
    """Sentence text -> the model steps' outputs, for one pass configuration, in one Python worker."""

    def __init__(self, shared: dict[str, tuple] | None = None, capacity_bytes: int = 0,
                 executor: ExecutorCache | None = None):
        self.shared = shared or {}  # text -> (encoded entry, from the lake); decoded on use: the file stays compact
        self.capacity = capacity_bytes
        self.executor = executor
        # text -> (entry, bytes, its counter): computed here, or decoded once from the shared set
        self.recent: OrderedDict[str, tuple[Entry, int, str]] = OrderedDict()
        self.held = 0
        self.counters = dict.fromkeys(COUNTERS, 0)

    def stats(self) -> dict:
        return dict(self.counters)

    def annotate(self, unit_sentences: list[list[Ann]], unit_tokens: list[list[Ann]], steps: list,
                 sentence_col: str, token_col: str) -> dict[str, list[list[Ann]]]:
        """What ``native.run_steps`` gives for these units (one column per step), each distinct sentence
        not already held computed once, in one call per step."""
        occurrences = [[(s, tokens) for s, tokens in _sentences_of(sentences, tokens)]
                       for sentences, tokens in zip(unit_sentences, unit_tokens)]
        found: dict[str, Entry] = {}
        source: dict[str, str] = {}  # text -> the counter a repeat inside this chunk counts in
        missing: dict[str, tuple[Ann, list[Ann]]] = {}
        for s, tokens in (o for unit in occurrences for o in unit):
            self.counters["sentences"] += 1
            text = s.result
            if text in source:  # a repeat inside this chunk
                self.counters[source[text]] += 1
            elif (held := self._held(text)) is not None:
                found[text], source[text] = held
                self.counters[source[text]] += 1
                self._keep(text, held[0], held[1])
            else:
                missing[text] = relative(s, tokens)
                source[text] = "reused_worker"  # its repeats: computed by this worker
        if missing:
            # what another worker of the executor is computing right now (its claim): asked again after this
            # worker's own share, and computed here only if still missing
            mine = self.executor.claim(list(missing)) if self.executor is not None else set(missing)
            later = {text: missing[text] for text in missing if text not in mine}
            self._compute({text: missing[text] for text in missing if text in mine}, found, steps, sentence_col,
                          token_col)
            for text in list(later):
                held = self._held(text)
                if held is not None:
                    found[text] = held[0]
                    self.counters["reused_worker"] += 1  # its first occurrence here (its repeats counted above)
                    self._keep(text, held[0], held[1])
                    del later[text]
            self._compute(later, found, steps, sentence_col, token_col)
        out: dict[str, list[list[Ann]]] = {step.output_col: [] for step in steps}
        for unit in occurrences:
            columns: list[list[Ann]] = [[] for _ in steps]
            for s, _ in unit:
                for column, anns in zip(columns, found[s.result]):
                    column.extend(placed(anns, s.begin, s.metadata.get("sentence", "0")))
            for step, column in zip(steps, columns):
                out[step.output_col].append(_renumbered(column) if column and column[0].annotatorType == A.CHUNK
                                            else column)
        return out

    def _compute(self, missing: dict[str, tuple[Ann, list[Ann]]], found: dict, steps: list, sentence_col: str,
                 token_col: str) -> None:
        """``missing`` (text -> relative sentence and tokens) through the model steps in one call per step,
        kept here and stored in the executor's cache."""
        if not missing:
            return
        computed = compute_entries(list(missing.values()), steps, sentence_col, token_col)
        for text, entry in zip(missing, computed):
            found[text] = entry
            self._keep(text, entry, "reused_worker")
        if self.executor is not None:
            self.executor.put(zip(missing, computed))

    def _held(self, text: str) -> tuple[Entry, str] | None:
        """The entry held for ``text`` and where from (its counter), or None."""
        if text in self.recent:
            self.recent.move_to_end(text)
            entry, _, counter = self.recent[text]
            return entry, counter
        held = self.shared.get(text)
        if held is not None:
            return decode_entry(held[0]), "reused_lake" if held[1] else "reused_run"
        payload = self.executor.get(text) if self.executor is not None else None
        return None if payload is None else (decode_entry(payload), "reused_worker")

    def _keep(self, text: str, entry: Entry, counter: str) -> None:
        if text in self.recent:
            return
        size = entry_bytes(entry)
        if size > self.capacity:
            return
        self.recent[text] = (entry, size, counter)
        self.held += size
        while self.held > self.capacity:
            _, (_, dropped, _) = self.recent.popitem(last=False)
            self.held -= dropped


def _sentences_of(sentences: list[Ann], tokens: list[Ann]):
    """(sentence, its tokens) for each sentence of a unit that has tokens, in order."""
    by_number = {s.metadata.get("sentence", "0"): s for s in sentences}
    start = 0
    while start < len(tokens):
        number = tokens[start].metadata.get("sentence", "0")
        stop = start
        while stop < len(tokens) and tokens[stop].metadata.get("sentence", "0") == number:
            stop += 1
        yield by_number[number], tokens[start:stop]
        start = stop


def _renumbered(chunks: list[Ann]) -> list[Ann]:
    """NerConverter numbers a row's chunks in order (``chunk`` metadata)."""
    for n, c in enumerate(chunks):
        c.metadata["chunk"] = str(n)
    return chunks


# --- what the workers of one executor computed ---------------------------------------------------
class ExecutorCache:
    """Encoded entries on the executor's local disk, shared by all its Python workers (processes): SQLite
    through ``diskcache``, bounded by ``capacity_bytes``, the oldest stored out first (an LRU would write on
    every read, which the workers would then queue for). A directory serves one pipeline (its name is the run's
    fingerprint and the steps' identity); it lives as long as the Spark application, in the executor's Spark
    files directory, which Spark removes at the end.

    A worker claims the sentences it is about to compute (:meth:`claim`); another worker that misses one of
    them computes its own first and then looks again, so that a sentence in flight is seldom computed twice.
    A claim expires after ``CLAIM_S`` (a worker that died holding it) and goes when its entry is stored.
    Two workers can still both compute a sentence (the claimer is slower than the other's own share, or a
    claim expired): same key, same value.
    """

    CLAIM_S = 600.0  # longer than any one chunk's model call

    def __init__(self, directory: Path, capacity_bytes: int):
        import diskcache

        self.cache = diskcache.Cache(
            str(directory), size_limit=capacity_bytes, eviction_policy="least-recently-stored",
            cull_limit=64)  # culls at most this many entries per write: a write never stalls on a big sweep

    def get(self, text: str) -> bytes | None:
        return self.cache.get(text)

    def claim(self, texts: list[str]) -> set[str]:
        """The ``texts`` no other worker has claimed, now claimed by this one (one transaction)."""
        with self.cache.transact():
            return {text for text in texts if self.cache.add(_claim(text), os.getpid(), expire=self.CLAIM_S)}

    def put(self, entries) -> None:
        """Stores (text, entry) pairs, and drops their claims, in one transaction (one commit, whatever their
        number)."""
        with self.cache.transact():
            for text, entry in entries:
                self.cache.set(text, encode_entry(entry))
                self.cache.delete(_claim(text))


def _claim(text: str) -> tuple:
    """A claim's key: a tuple never equals an entry's key (the text)."""
    return ("claim", text)


def executor_directory() -> Path | None:
    """This executor's Spark files directory (shared by its Python workers, removed with the application), or
    None outside a Spark Python worker."""
    from pyspark import SparkFiles

    if not getattr(SparkFiles, "_is_running_on_worker", False):
        return None
    return Path(SparkFiles.getRootDirectory())


# --- one memo per worker and pass --------------------------------------------------------------
@dataclass(frozen=True)
class MemoSpec:
    """What a worker's memo is for: the pass's token and model steps (their models and parameters), the
    run's shared sentences (a directory, or None), the bound on what the worker adds, and the executor's
    cache: its bound (0: none) and the run's pipeline fingerprint, which names it with the steps (the steps
    carry their models' paths; the fingerprint, their digests: no cache without it). ``executor_root``: the
    directory the executor caches go in (tests); None: the executor's Spark files directory."""

    steps: tuple
    shared_path: str | None = None
    worker_cache_mb: float = 64.0
    executor_cache_mb: float = 0.0
    fingerprint: str | None = None
    executor_root: str | None = None

    def memo(self) -> SentenceMemo:
        """This worker's memo for these steps. A worker keeps one per steps: a run with another shared set
        (the next run, in a long-lived application) replaces the set and keeps the recent sentences, which
        the same steps made."""
        with _MEMO_LOCK:
            key = (_identity(self.steps), self.worker_cache_mb, self.executor_cache_mb, self.fingerprint,
                   self.executor_root)
            held = _MEMOS.get(key)
            if held is None or held[0] != self.shared_path:
                memo = SentenceMemo(self._shared(), int(self.worker_cache_mb * 1024 * 1024),
                                    held[1].executor if held is not None else self._executor_cache(key[0]))
                if held is not None:
                    memo.recent, memo.held = held[1].recent, held[1].held
                    memo.counters = held[1].counters  # running counters: the reports take differences
                held = _MEMOS[key] = (self.shared_path, memo)
            return held[1]

    def _executor_cache(self, identity: str) -> ExecutorCache | None:
        root = Path(self.executor_root) if self.executor_root else executor_directory()
        if root is None or not self.fingerprint or self.executor_cache_mb <= 0:
            return None
        name = hashlib.sha256(f"{self.fingerprint}\n{identity}".encode()).hexdigest()[:32]
        return ExecutorCache(root / "sentence-memo" / name, int(self.executor_cache_mb * 1024 * 1024))

    def _shared(self) -> dict[str, tuple] | None:
        if not self.shared_path:
            return None
        from pipelines.store.model_paths import load_on_executor

        return load_on_executor(self.shared_path, read_shared)


_MEMOS: dict[tuple, tuple[str | None, SentenceMemo]] = {}
_MEMO_LOCK = threading.Lock()


def _identity(steps: tuple) -> str:
    """The steps' parameters as text: two passes with equal steps share a memo, any difference splits it."""
    return hashlib.sha256(repr(steps).encode()).hexdigest()


SHARED_SCHEMA = pa.schema([("sentence", pa.string()), ("payload", pa.large_binary()), ("from_lake", pa.bool_())])


def shared_table(entries: pa.Table, from_lake: bool) -> pa.Table:
    """``entries`` (``sentence``, ``payload``: what :func:`pipelines.annotate.dataframes.shared_sentence_entries`
    and the lake's cache hold) as rows of the shared file, each marked read from the lake's cache or not.
    The first entry of a text wins (two concurrent runs may both have added one; they are equal)."""
    entries = entries.select(["sentence", "payload"])
    if entries.num_rows:
        import pyarrow.compute as pc

        first = pa.table({"i": pa.array(range(entries.num_rows), pa.int64()), "sentence": entries["sentence"]}) \
            .group_by("sentence", use_threads=False).aggregate([("i", "min")])["i_min"]  # each text's first row
        entries = entries.take(first.take(pc.sort_indices(first)))  # those rows, in their order
    return pa.table({"sentence": entries["sentence"].cast(pa.string()),
                     "payload": entries["payload"].cast(pa.large_binary()),
                     "from_lake": pa.array([from_lake] * entries.num_rows, pa.bool_())}, schema=SHARED_SCHEMA)


def write_shared(directory: Path, tables: list[pa.Table]) -> dict:
    """The run's shared sentences, :func:`shared_table` tables, as one Arrow file and its checksum."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SHARED_FILE
    table = pa.concat_tables(tables) if tables else SHARED_SCHEMA.empty_table()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SHARED_SCHEMA) as writer:
        writer.write_table(table)
    manifest = {"sha256": _sha256(path), "sentences": table.num_rows, "bytes": path.stat().st_size}
    (directory / SHARED_MANIFEST).write_text(json.dumps(manifest))
    return manifest


def read_shared(directory: str, verify: bool = False) -> dict[str, tuple]:
    """text -> (encoded entry, read from the lake's cache), from :func:`write_shared`'s file (memory-mapped; ``verify``: its sha256 first)."""
    path = Path(directory) / SHARED_FILE
    if verify:
        expected = json.loads((Path(directory) / SHARED_MANIFEST).read_text())["sha256"]
        if _sha256(path) != expected:
            raise ValueError(f"the run's shared sentences at {path} do not match their checksum")
    reader = pa.ipc.open_file(pa.memory_map(str(path)))
    shared: dict[str, tuple] = {}
    for b in range(reader.num_record_batches):
        batch = reader.get_batch(b)
        shared.update(zip(batch.column("sentence").to_pylist(),
                          zip(_views(batch.column("payload")), batch.column("from_lake").to_pylist())))
    return shared


def _views(payloads: pa.LargeBinaryArray) -> list[pa.Buffer]:
    """Each value of ``payloads`` as a slice of its data buffer: on a mapped file, pages the kernel shares between
    the workers. (``payloads[i].as_buffer()`` copies the value: 390 MB private per worker for a 390 MB file.)"""
    import numpy as np

    _, offsets, data = payloads.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[payloads.offset:payloads.offset + len(payloads) + 1].tolist()
    return [data.slice(start, stop - start) for start, stop in zip(ends, ends[1:])]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

