"""The lake's flat tables, produced straight from the fused native pass (no per-token structs in the JVM).

Memory stays bounded by the settings, not by the document nor by the Arrow batch: rows are processed
one at a time, and a long document in *segments* of at most ``segment_chars`` characters (cut at a
paragraph, line, sentence or word boundary), each run through the text steps (document, sentences,
tokens) with its offsets and sentence numbers moved to the whole document's. The model steps then
run on *units* of whole sentences, grouped into chunks of at most ``max_tokens`` tokens, and each
chunk's rows leave the worker as soon as they are built. A million-character document is just many
segments and chunks.

The model steps are found by kind: BertEmbeddings (the ``embedding`` column; absent when the job
computes no embeddings), a tagger (NerDLModel or a token classifier: ``ner``, ``ner_confidence``) and
NerConverter (``chunk``), and a sequence classifier (``classification``, on the last token of what
it classifies: see :mod:`pipelines.classify.rollup`).

One bad row does not fail the task when ``on_row_error`` is given: a row whose values cannot be read
(invalid UTF-8), or whose text or model steps raise, is reported and produces no token rows. A chunk
gathering many rows that fails is retried row by row, so only the guilty row is reported.
"""

from __future__ import annotations

import os
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa

from pipelines.annotate import native
from pipelines.annotate.reuse import MemoSpec, SentenceMemo
from pipelines.annotation import Ann
from pipelines.classify.rollup import CLASSIFICATION_TYPE, SequenceRollup
from pipelines.classify.steps import SequenceClassifyStep, TokenClassifyStep
from pipelines.ner.steps import ConverterStep, NerStep
from pipelines.annotate.row_errors import RowFailure

# Characters per segment of a long document. The text steps hold ~80 bytes of annotations per
# character, so a segment costs ~8 MB whatever the document's size. Documents up to this size are
# annotated whole, exactly as a single pass would.
SEGMENT_CHARS = 100_000


@dataclass(frozen=True)
class Unit:
    row: int  # row of the Arrow batch
    first_token: int  # index in the document of the unit's first token
    tokens: list[Ann]
    sentences: list[Ann]  # the sentences the tokens belong to
    last: bool = False  # the last unit of its row (set by the pass, which looks one unit ahead)


def units(row: int, tokens: list[Ann], sentences: list[Ann], first_token: int, max_tokens: int) -> Iterator[Unit]:
    """Split a run of tokens (a segment's) into units of whole sentences of at most ``max_tokens`` tokens.

    A single sentence longer than that stays whole (the embedder windows it); its size is bounded by
    the SentenceDetector's maxLength, not by the document.
    """
    first_sentence = _sentence_of(sentences[0]) if sentences else 0
    start = 0
    while start < len(tokens):
        stop = min(start + max_tokens, len(tokens))
        if stop < len(tokens):
            # back off to the start of the sentence that the cut would split
            cut_sentence = tokens[stop].metadata["sentence"]
            back = stop
            while back > start and tokens[back - 1].metadata["sentence"] == cut_sentence:
                back -= 1
            if back > start:
                stop = back
            else:  # one sentence longer than max_tokens: take all of it
                while stop < len(tokens) and tokens[stop].metadata["sentence"] == cut_sentence:
                    stop += 1
        lo, hi = _sentence_of(tokens[start]) - first_sentence, _sentence_of(tokens[stop - 1]) - first_sentence
        yield Unit(row, first_token + start, tokens[start:stop], sentences[lo : hi + 1])
        start = stop


def chunks(all_units: Iterator[Unit], max_tokens: int) -> Iterator[list[Unit]]:
    """Group units (of any rows) so each group embeds at most about ``max_tokens`` tokens at once."""
    group, size = [], 0
    for u in all_units:
        if group and size + len(u.tokens) > max_tokens:
            yield group
            group, size = [], 0
        group.append(u)
        size += len(u.tokens)
    if group:
        yield group


def _sentence_of(a: Ann) -> int:
    return int(a.metadata["sentence"])


# --- segments of a long document -------------------------------------------------------------------
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_LINE_BREAK = re.compile(r"\n")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|[。！？]")
_SPACE = re.compile(r"\s")


def segment_bounds(text: str, limit: int) -> Iterator[tuple[int, int]]:
    """[start, stop) spans covering ``text``, each at most ``limit`` characters (and at least half of it,
    but the last), cut at the last paragraph break, else line break, else sentence end, else
    whitespace of the span's second half; without any of those (say, a run of 100,000 ideographs
    with no punctuation), at the limit, moved back off combining marks."""
    start = 0
    while len(text) - start > limit:
        stop = _cut(text, start + limit // 2, start + limit)
        yield start, stop
        start = stop
    yield start, len(text)


def _cut(text: str, floor: int, limit: int) -> int:
    for boundary in (_PARAGRAPH_BREAK, _LINE_BREAK, _SENTENCE_END, _SPACE):
        last = None
        for last in boundary.finditer(text, floor, limit):
            pass
        if last is not None:
            return last.end()
    cut = limit
    while cut > floor and unicodedata.combining(text[cut]):
        cut -= 1
    return cut


def _shift(anns: list[Ann], offset: int, sentence_base: int) -> None:
    """Move a segment's annotations to the whole document: offsets and sentence numbers."""
    for a in anns:
        a.begin += offset
        a.end += offset
        if sentence_base and "sentence" in a.metadata:
            a.metadata["sentence"] = str(int(a.metadata["sentence"]) + sentence_base)


# --- the model steps' roles ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRoles:
    """What each model step of the pass is for, found by kind rather than position."""

    annotating: tuple  # the steps run on each chunk, in order (all but the sequence classifier)
    embeddings: native.EmbedStep | None
    tagger: Any  # NerStep | TokenClassifyStep | None
    converter: ConverterStep | None
    sequence: SequenceRollup | None


def model_roles(model_steps: list, sentence_col: str = "sentence") -> ModelRoles:
    def first(kinds):
        return next((s for s in model_steps if isinstance(s, kinds)), None)

    sequence = first(SequenceClassifyStep)
    return ModelRoles(
        tuple(s for s in model_steps if not isinstance(s, SequenceClassifyStep)), first(native.EmbedStep),
        first((NerStep, TokenClassifyStep)), first(ConverterStep),
        SequenceRollup(sequence, per_sentence=sequence.document_col == sentence_col) if sequence else None)


# --- reading rows --------------------------------------------------------------------------------
def _cell(column: pa.Array, row: int, name: str) -> Any:
    """One row's Python value; text is decoded here, row by row, so invalid UTF-8 costs only its row.

    A binary column is read as UTF-8 text (corpora written from bytes often store text that way).
    """
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        column = column.view(pa.large_binary() if pa.types.is_large_string(t) else pa.binary())
    elif not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return column[row].as_py()
    raw = column[row].as_py()
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnicodeDecodeError("utf-8", raw, e.start, e.end, f"{e.reason} (column {name!r})") from None


def _readable(column: pa.Array, row: int) -> Any:
    """A row's value for an error report: never raises; bad bytes become U+FFFD."""
    try:
        return column[row].as_py()
    except UnicodeDecodeError:
        t = column.type
        raw = column.view(pa.large_binary() if pa.types.is_large_string(t) else pa.binary())[row].as_py()
        return raw.decode("utf-8", errors="replace")


# --- the annotations pass (output.annotations, and each native stage's own transform) -------------
# Annotations cost ~80 bytes per character of text (a million-character document: ~80 MB); a slice of
# this many characters keeps a worker's peak to a slice's worth whatever the Arrow batch holds, and is
# still thousands of sentences, so the model's batches stay full.
ANNOTATE_SLICE_CHARS = 1_000_000


def stream_annotations(batches: Iterator[pa.RecordBatch], steps: list, keep: list[str] = (),
                       on_row_error: Callable[[RowFailure], None] | None = None,
                       slice_chars: int = ANNOTATE_SLICE_CHARS) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of a fused run of native stages: each input row plus one annotation column
    a step, a slice of rows (at most ``slice_chars`` of text, a longer row alone) at a time.

    ``on_row_error``: a slice that raises is run again row by row, and each row that still raises is
    reported as a :class:`RowFailure` (``keep``: the columns that identify it) and left out; None: the
    first failure raises.
    """
    text_col = steps[0].inputs()[0]
    for rb in batches:
        for start, stop in _slices(rb.column(text_col), slice_chars):
            part = rb.slice(start, stop - start)
            try:
                yield native.annotated(part, steps)
            except Exception as e:
                if on_row_error is None or isinstance(e, MemoryError):
                    raise
                yield from _rows_alone(part, steps, keep, text_col, on_row_error, e if part.num_rows == 1 else None)


def _slices(texts: pa.Array, slice_chars: int) -> Iterator[tuple[int, int]]:
    """[start, stop) row ranges of at most ``slice_chars`` characters (bytes, as stored) each; the whole
    batch when the first step reads annotations, not text (a stage run on its own on earlier output)."""
    import pyarrow.compute as pc

    t = texts.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)):
        if len(texts):
            yield 0, len(texts)
        return
    lengths = pc.fill_null(pc.binary_length(texts), 0).to_pylist() if len(texts) else []
    start, size = 0, 0
    for row, n in enumerate(lengths):
        if row > start and size + n > slice_chars:
            yield start, row
            start, size = row, 0
        size += n
    if start < len(lengths):
        yield start, len(lengths)


def _rows_alone(part: pa.RecordBatch, steps: list, keep, text_col: str, on_row_error, known: Exception | None):
    for row in range(part.num_rows):
        try:
            if known is not None:
                raise known
            yield native.annotated(part.slice(row, 1), steps)
        except Exception as e:
            if isinstance(e, MemoryError):
                raise
            text = _readable(part.column(text_col), row)
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            stage = "read" if isinstance(e, UnicodeDecodeError) else "pipeline"
            on_row_error(RowFailure({k: _readable(part.column(k), row) for k in keep}, e, text, stage))


# --- the worker pass -----------------------------------------------------------------------------
def stream_token_table(
    batches: Iterator[pa.RecordBatch],
    text_steps: list,
    model_steps: list,
    keep: list[str],
    max_tokens: int,
    on_batch: Callable[[int, int, dict], None] | None = None,
    fault_marker: str | None = None,
    embedding_dtype: str = "float32",
    on_row_error: Callable[[RowFailure], None] | None = None,
    segment_chars: int = SEGMENT_CHARS,
    hold_until: str | None = None,
    memo: MemoSpec | None = None,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of the job: Arrow rows in, one row per token out.

    ``text_steps``: DocumentAssembler, SentenceDetector, Tokenizer steps (in this order).
    ``model_steps``: BertEmbeddings, then optionally NerDLModel and NerConverter, whose results ride
    on the token rows (``ner``, ``ner_confidence``, and ``chunk`` on each entity's first token), so
    the entities table needs no second pass over the model.
    ``on_row_error``: called with a :class:`RowFailure` for each row that fails, which then yields no
    token rows (see :class:`pipelines.annotate.worker_reports.TaskReport`); None: the first failure raises.
    ``on_batch(rows, tokens, embedder counters)``: after each Arrow batch, for progress.
    ``hold_until`` (tests only): wait for this file first (see :func:`_hold`).
    ``memo``: each distinct sentence through the model steps once per worker (and the run's shared sentences
    not at all): see :mod:`pipelines.annotate.reuse`; None: every sentence through the model.
    """
    sentence_memo = memo.memo() if memo is not None else None
    embedder_before = _counters(model_steps, sentence_memo)
    emitted = getattr(on_batch, "emitted", None)  # live counts while a batch (or one huge row) is under way
    task_rows = task_tokens = 0
    if hold_until:
        _hold(hold_until)
    for rb in batches:
        if fault_marker:
            _die_once(fault_marker)
        run = _BatchRun(rb, text_steps, model_steps, keep, on_row_error, segment_chars, embedding_dtype,
                        sentence_memo)
        n_tokens = 0
        for group in chunks(run.units(max_tokens), max_tokens):
            for out in run.embed(group):
                n_tokens += out.num_rows
                yield out
            if emitted is not None:
                emitted(task_rows, task_tokens + n_tokens)
        task_rows, task_tokens = task_rows + rb.num_rows, task_tokens + n_tokens
        if on_batch is not None:  # rows, tokens and this batch's share of the embedder's counters
            embedder_now = _counters(model_steps, sentence_memo)
            on_batch(rb.num_rows, n_tokens, {k: v - embedder_before[k] for k, v in embedder_now.items()})
            embedder_before = embedder_now
    if emitted is not None:
        emitted(task_rows, task_tokens, final=True)


def _counters(model_steps: list, memo: SentenceMemo | None) -> dict:
    """This worker's running counters: the first model step's (the embedder's), and the memo's."""
    return {**model_steps[0].stats(), **(memo.stats() if memo is not None else {})}


def stream_sentences(batches: Iterator[pa.RecordBatch], text_steps: list,
                     segment_chars: int = SEGMENT_CHARS) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of the run's key pass: each sentence the worker pass will see (the same
    segments, the same text steps), with its token count; sentences without tokens, and rows the text steps
    fail on (the worker pass reports those), are left out."""
    for rb in batches:
        run = _BatchRun(rb, text_steps, [], [], lambda failure: None, segment_chars, None)
        texts, counts = [], []
        for text, n_tokens in run.sentences():
            texts.append(text)
            counts.append(n_tokens)
        yield pa.RecordBatch.from_arrays([pa.array(texts, pa.string()), pa.array(counts, pa.int32())],
                                         names=["sentence", "tokens"])


class _BatchRun:
    """One Arrow batch through the steps, row by row and segment by segment, failures contained."""

    def __init__(self, rb: pa.RecordBatch, text_steps: list, model_steps: list, keep: list[str],
                 on_row_error, segment_chars: int, embedding_dtype: str | None, memo: SentenceMemo | None = None):
        self.rb, self.text_steps, self.model_steps, self.keep = rb, text_steps, model_steps, keep
        self.memo = memo
        self.on_row_error, self.segment_chars, self.embedding_dtype = on_row_error, segment_chars, embedding_dtype
        self.text_col = text_steps[0].inputs()[0]  # the DocumentAssembler's: the column cut into segments
        self.sentence_col = text_steps[-1].inputs()[0]  # the Tokenizer's input
        self.token_col = text_steps[-1].output_col
        self.roles = model_roles(model_steps, self.sentence_col)
        self.inputs = native.raw_inputs(text_steps)
        self.failed: set[int] = set()
        self.emitted: dict[int, int] = {}  # row -> token rows already yielded
        self.chunks_done: dict[int, int] = {}  # row -> entity chunks already numbered (chunk_index counts per row)
        self.running: dict = {}  # row -> a document classification's partial sums (see SequenceRollup)

    # text steps: one row, one segment at a time
    def units(self, max_tokens: int) -> Iterator[Unit]:
        """Every row's units, the last one of each row marked (held back until the row's next unit, or
        its end, shows it is the last)."""
        for row in range(self.rb.num_rows):
            held = None
            for unit in self._row_units(row, max_tokens):
                if held is not None:
                    yield held
                held = unit
            if held is not None and row not in self.failed:
                yield replace(held, last=True)

    def sentences(self) -> Iterator[tuple[str, int]]:
        """(text, tokens) of every sentence with tokens, row by row; a row that fails yields none."""
        for row in range(self.rb.num_rows):
            try:
                values = {name: _cell(self.rb.column(name), row, name) for name in self.inputs}
                for sentences, tokens in self._segments(values):
                    per_sentence: dict[str, int] = {}
                    for t in tokens:
                        number = t.metadata.get("sentence", "0")
                        per_sentence[number] = per_sentence.get(number, 0) + 1
                    for s in sentences:
                        if s.metadata.get("sentence", "0") in per_sentence:
                            yield s.result, per_sentence[s.metadata.get("sentence", "0")]
            except Exception as e:
                if isinstance(e, MemoryError):
                    raise

    def _row_units(self, row: int, max_tokens: int) -> Iterator[Unit]:
        stage, values, first_token = "read", None, 0
        try:
            values = {name: _cell(self.rb.column(name), row, name) for name in self.inputs}
            stage = "text"
            text = values[self.text_col]
            if self.on_row_error is not None and text is not None and len(text) > self.segment_chars:
                # A failure must not come after some of the row's tokens have left: try the text
                # steps on the whole document first (they cost a few % of the model's time).
                for _ in self._segments(values):
                    pass
            for sentences, tokens in self._segments(values):
                if row in self.failed:  # failed in the model steps, on an earlier chunk
                    break
                yield from units(row, tokens, sentences, first_token, max_tokens)
                first_token += len(tokens)
        except Exception as e:
            if isinstance(e, MemoryError):
                raise
            self._fail(row, e, stage, values)

    def _segments(self, values: dict) -> Iterator[tuple[list[Ann], list[Ann]]]:
        """(sentences, tokens) of each segment of the row's text, offsets into the whole text."""
        text = values[self.text_col]
        bounds = segment_bounds(text, self.segment_chars) if text else [(0, 0)]
        sentence_base = 0
        for start, stop in bounds:
            columns = {name: [value] for name, value in values.items()}
            if text:
                columns[self.text_col] = [text[start:stop]]
            columns = native.run_steps(columns, self.text_steps)
            sentences, tokens = columns[self.sentence_col][0], columns[self.token_col][0]
            if start or sentence_base:
                _shift(sentences, start, sentence_base)
                _shift(tokens, start, sentence_base)
            sentence_base += len(sentences)
            yield sentences, tokens

    # model steps: a chunk of units; on failure, its rows one by one
    def embed(self, group: list[Unit]) -> Iterator[pa.RecordBatch]:
        group = [u for u in group if u.row not in self.failed]
        if not group:
            return
        try:
            out = self._embed(group)
        except Exception as e:
            if self.on_row_error is None or isinstance(e, MemoryError):
                raise
            rows = list(dict.fromkeys(u.row for u in group))
            if len(rows) == 1:
                self._fail(rows[0], e, "model")
                return
        else:
            yield out
            return
        for row in rows:  # the chunk failed: find the guilty row(s)
            try:
                out = self._embed([u for u in group if u.row == row])
            except Exception as e:
                if isinstance(e, MemoryError):
                    raise
                self._fail(row, e, "model")
                continue
            yield out

    def _embed(self, group: list[Unit]) -> pa.RecordBatch:
        sub: native.Batch = {self.sentence_col: [u.sentences for u in group], self.token_col: [u.tokens for u in group]}
        roles = self.roles
        if self.memo is not None:
            sub.update(self.memo.annotate(sub[self.sentence_col], sub[self.token_col], list(roles.annotating),
                                          self.sentence_col, self.token_col))
        else:
            for step in roles.annotating:
                sub[step.output_col] = step.apply(sub)
        # kept only if all goes well
        chunks_done = {u.row: self.chunks_done.get(u.row, 0) for u in group}
        running = {u.row: self.running[u.row] for u in group if u.row in self.running}
        classes = roles.sequence.heads(group, running) if roles.sequence else None
        out = token_rows(group, sub[roles.embeddings.output_col] if roles.embeddings else [u.tokens for u in group],
                         self.rb, self.keep, sub[roles.tagger.output_col] if roles.tagger else None,
                         sub[roles.converter.output_col] if roles.converter else None, chunks_done,
                         self.embedding_dtype if roles.embeddings else None, classes)
        self.chunks_done.update(chunks_done)
        for u in group:
            self.running.pop(u.row, None)
        self.running.update(running)
        for u in group:
            self.emitted[u.row] = self.emitted.get(u.row, 0) + len(u.tokens)
        return out

    def _fail(self, row: int, error: Exception, stage: str, values: dict | None = None) -> None:
        if self.on_row_error is None:
            raise error
        self.failed.add(row)
        text = values[self.text_col] if values else _readable(self.rb.column(self.text_col), row)
        if isinstance(text, bytes):  # a binary text column
            text = text.decode("utf-8", errors="replace")
        keep = {name: _readable(self.rb.column(name), row) for name in self.keep}
        self.on_row_error(RowFailure(keep, error, text, stage, self.emitted.get(row, 0)))


# The entities table's columns after the kept ones (pipelines.ner.tables); the token table's ``chunk`` struct
# holds the same, less the sentence its token row already has.
ENTITY_FIELDS = (pa.field("sentence", pa.int32(), False), pa.field("chunk_index", pa.int32(), False),
                 pa.field("begin", pa.int32(), False), pa.field("end", pa.int32(), False),
                 pa.field("text", pa.string(), False), pa.field("entity", pa.string(), False),
                 pa.field("confidence", pa.float32(), True))  # null: NerDLModel without includeConfidence
ENTITY_COLUMNS = tuple(f.name for f in ENTITY_FIELDS)
CHUNK_TYPE = pa.struct([(f.name, f.type) for f in ENTITY_FIELDS[1:]])


def token_rows(group: list[Unit], embedded: list[list[Ann]], rb: pa.RecordBatch, keep: list[str],
               tags: list[list[Ann]] | None = None, found: list[list[Ann]] | None = None,
               chunks_done: dict[int, int] | None = None, embedding_dtype: str | None = "float32",
               classes: list[list[dict | None]] | None = None) -> pa.RecordBatch:
    """The token rows of a chunk. ``embedded``: one annotation per token (the embeddings, or the tokens
    themselves with ``embedding_dtype`` None: no embedding column); ``classes``: per unit and token, the
    classification the token carries (see :mod:`pipelines.classify.rollup`)."""
    rows, sentence, index, begin, end, token, vectors = [], [], [], [], [], [], []
    ner, ner_confidence, chunk = [], [], []
    chunks_done = {} if chunks_done is None else chunks_done
    for k, (unit, anns) in enumerate(zip(group, embedded)):
        if len(anns) != len(unit.tokens):  # the guarantee the whole product rests on
            raise AssertionError(f"{len(unit.tokens)} tokens but {len(anns)} embeddings")
        for i, a in enumerate(anns):
            rows.append(unit.row)
            sentence.append(int(a.metadata["sentence"]))
            index.append(unit.first_token + i)
            begin.append(a.begin)
            end.append(a.end)
            token.append(a.result)
            vectors.append(a.embeddings)
        if tags is not None:
            ner.extend(t.result for t in tags[k])
            ner_confidence.extend(_confidence(t) for t in tags[k])
            chunk.extend(_chunk_heads(anns, found[k], chunks_done, unit.row) if found is not None
                         else [None] * len(anns))
    take = pa.array(rows, pa.int64())
    columns = {"sentence": sentence, "token_index": index, "begin": begin, "end": end, "token": token,
               "ner": ner, "ner_confidence": ner_confidence, "chunk": chunk,
               CLASSIFICATION_COLUMN: [c for unit_classes in classes or [] for c in unit_classes]}
    fields = token_fields(embedding_dtype, ner=tags is not None, classification=classes is not None)
    arrays = [rb.column(name).take(take) for name in keep] + [
        embedding_array(vectors, embedding_dtype) if f.name == "embedding" else pa.array(columns[f.name], f.type)
        for f in fields]
    return pa.RecordBatch.from_arrays(arrays, names=list(keep) + [f.name for f in fields])


CLASSIFICATION_COLUMN = "classification"  # on the token rows: a struct of CLASSIFICATION_TYPE
CLASSIFICATION_COLUMNS = tuple(CLASSIFICATION_TYPE.names)  # the classifications table's, after the kept ones


def token_fields(embedding_dtype: str | None = "float32", ner: bool = False,
                 classification: bool = False) -> list[pa.Field]:
    """The token table's own columns (after the ``keep`` columns), declared once, in Arrow: what
    :func:`token_rows` builds, and, through :func:`spark_schema`, what Spark is told. ``embedding_dtype``
    None: no embedding column (the job computes no embeddings)."""
    fields = [pa.field("sentence", pa.int32(), False), pa.field("token_index", pa.int32(), False),
              pa.field("begin", pa.int32(), False), pa.field("end", pa.int32(), False),
              pa.field("token", pa.string(), False)]
    if embedding_dtype is not None:
        vector = (pa.binary() if embedding_dtype in ("float16", "int8")
                  else pa.list_(pa.field("element", pa.float32(), False)))
        fields.append(pa.field("embedding", vector, False))
    if ner:
        fields += [pa.field("ner", pa.string(), False), pa.field("ner_confidence", pa.float32(), True),
                   pa.field("chunk", CHUNK_TYPE, True)]
    if classification:
        fields.append(pa.field(CLASSIFICATION_COLUMN, CLASSIFICATION_TYPE, True))
    return fields


def spark_schema(keep_fields: list, embedding_dtype: str | None = "float32", ner: bool = False,
                 classification: bool = False):
    """The Spark schema of what :func:`stream_token_table` yields: the ``keep`` columns' Spark fields, then
    :func:`token_fields` converted (nullability of list elements included)."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import ArrayType, StructField, StructType

    def spark_type(arrow_type):
        if pa.types.is_list(arrow_type):  # from_arrow_type would make every element nullable
            return ArrayType(spark_type(arrow_type.value_type), arrow_type.value_field.nullable)
        return from_arrow_type(arrow_type)

    return StructType(list(keep_fields) + [StructField(f.name, spark_type(f.type), f.nullable)
                                           for f in token_fields(embedding_dtype, ner, classification)])


def embedding_array(vectors: list[np.ndarray], dtype: str = "float32") -> pa.Array:
    """float32: list<float>. float16: binary, each value the vector's little-endian half floats
    (half the bytes; read back with :func:`decode_float16`). int8: binary, a quarter of the bytes plus 4
    (:func:`encode_int8`; read back with :func:`decode_int8`)."""
    dim = len(vectors[0]) if vectors else 0
    flat = np.concatenate(vectors) if vectors else np.zeros(0, np.float32)
    if dtype in ("float16", "int8"):
        data = (flat.astype("<f2").tobytes() if dtype == "float16"
                else encode_int8(np.reshape(flat, (len(vectors), dim))))
        offsets = (np.arange(len(vectors) + 1, dtype=np.int32) * vector_bytes(dim, dtype)).tobytes()
        return pa.Array.from_buffers(pa.binary(), len(vectors), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    offsets = pa.array(np.arange(len(vectors) + 1, dtype=np.int32) * dim)
    return pa.ListArray.from_arrays(offsets, pa.array(flat.astype(np.float32, copy=False), pa.float32()))


def vector_bytes(dimension: int, dtype: str = "float32") -> int:
    """The bytes of one stored vector: 4 a dimension (float32), 2 (float16), 1 plus the 4-byte scale (int8)."""
    return {"float32": 4 * dimension, "float16": 2 * dimension, "int8": 4 + dimension}[dtype]


def decode_float16(value: bytes) -> np.ndarray:
    """A float16 ``embedding`` cell as a float32 vector."""
    return np.frombuffer(value, dtype="<f2").astype(np.float32)


def encode_int8(vectors: np.ndarray) -> bytes:
    """Each row of ``vectors`` (n, dim) as its scale (little-endian float32, the largest magnitude / 127)
    then ``dim`` int8 values round(v / scale): symmetric, one scale per vector, so every cell decodes alone."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scale = np.abs(vectors).max(axis=1, initial=0.0) / 127
    safe = np.where(scale > 0, scale, 1.0)[:, None]
    q = np.clip(np.rint(vectors / safe), -127, 127).astype(np.int8)
    rows = np.empty((len(vectors), 4 + vectors.shape[1]), dtype=np.uint8)
    rows[:, :4] = scale.astype("<f4").view(np.uint8).reshape(-1, 4)
    rows[:, 4:] = q.view(np.uint8)
    return rows.tobytes()


def decode_int8(value: bytes) -> np.ndarray:
    """An int8 ``embedding`` cell (:func:`encode_int8`) as a float32 vector."""
    scale = np.frombuffer(value, dtype="<f4", count=1)[0]
    return np.frombuffer(value, dtype=np.int8, offset=4).astype(np.float32) * scale


def _confidence(a: Ann) -> float | None:
    """NerDLModel's ``confidence``; a token classifier writes none, but the probability of each label
    (Spark NLP's metadata), so a tag's confidence is its label's probability."""
    c = a.metadata.get("confidence", a.metadata.get(a.result) if a.annotatorType == "named_entity" else None)
    return float(c) if c is not None else None


def _chunk_heads(tokens: list[Ann], found: list[Ann], chunks_done: dict[int, int], row: int) -> list[dict | None]:
    """For each token: its entity chunk when the token starts one, else None."""
    heads: list[dict | None] = [None] * len(tokens)
    position = {t.begin: i for i, t in enumerate(tokens)}
    base = chunks_done.get(row, 0)
    for n, c in enumerate(found):
        heads[position[c.begin]] = {"chunk_index": base + n, "begin": c.begin, "end": c.end, "text": c.result,
                                    "entity": c.metadata.get("entity", ""), "confidence": _confidence(c)}
    chunks_done[row] = base + len(found)
    return heads


def _hold(release: str) -> None:
    """For tests only: say so (``<release>.held``), then wait until ``release`` exists, so that the write
    this task belongs to keeps its transaction open while another run commits."""
    open(f"{release}.held", "a").close()
    for _ in range(60000):  # the test releases it within minutes; the bound only avoids a hang
        if os.path.exists(release):
            return
        time.sleep(0.01)


def _die_once(marker: str) -> None:
    """Failure injection for tests only: the first worker to get here dies like an OOM-killed process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(137)
