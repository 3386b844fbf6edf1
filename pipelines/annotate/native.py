"""The native engine: stage steps that run on Arrow batches inside Python workers.

A *step* is the picklable, Spark-free half of a stage: the stage's parameters plus a function from a
batch of rows to one new annotation column. Consecutive native stages are fused into one
``mapInArrow`` call (see :mod:`pipelines.annotate.stages`), so a row crosses the JVM/Python boundary once,
whatever the number of stages; between steps, rows stay Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipelines import annotation as A
from pipelines.annotation import Ann
from pipelines.text.pragmatic import PragmaticRules
from pipelines.text.sentences import Span, multilingual_sentences, pragmatic_sentences
from pipelines.text.tokens import TokenizerRules
from pipelines.annotate.worker_models import intra_op_threads, loaded, worker_model

Batch = dict[str, list]  # column name -> one value per row (str for text, list[Ann] for annotations)


def _sentence_index(ann: Ann) -> int:
    return int(ann.metadata.get("sentence", "0"))


@dataclass(frozen=True)
class AssembleStep:
    input_col: str
    output_col: str
    cleanup_mode: str = "disabled"
    id_col: str | None = None
    metadata_col: str | None = None

    def inputs(self) -> list[str]:
        return [self.input_col] + [c for c in (self.id_col, self.metadata_col) if c]

    def apply(self, batch: Batch) -> list[list[Ann]]:
        texts = batch[self.input_col]
        ids = batch[self.id_col] if self.id_col else [None] * len(texts)
        extras = batch[self.metadata_col] if self.metadata_col else [None] * len(texts)
        return [[Ann(A.DOCUMENT, 0, len(t or "") - 1, t or "", self._metadata(i, m))]
                for t, i, m in zip(texts, ids, extras)]

    def _metadata(self, doc_id, extra) -> dict[str, str]:
        """Spark NLP's order: the metadata column's entries, then ``id``, then ``sentence`` (which win)."""
        meta = dict(extra or {}) if self.metadata_col else {}  # Arrow gives a map as a list of pairs
        if self.id_col:
            meta["id"] = None if doc_id is None else str(doc_id)
        meta["sentence"] = "0"
        return meta


def _sentence_annotations(docs: list[Ann], split) -> list[Ann]:
    """One ``document`` annotation per sentence of each input annotation, numbered in order."""
    row: list[Ann] = []
    for doc in docs:
        for span in split(doc.result):
            row.append(Ann(A.DOCUMENT, doc.begin + span.begin, doc.begin + span.end, span.text(doc.result),
                           {"sentence": str(len(row))}))
    return row


@dataclass(frozen=True)
class SentenceStep:
    """Spark NLP's SentenceDetector rules."""

    input_col: str
    output_col: str
    rules: PragmaticRules
    options: dict = field(default_factory=dict, hash=False)

    def inputs(self) -> list[str]:
        return [self.input_col]

    def apply(self, batch: Batch) -> list[list[Ann]]:
        split = lambda text: pragmatic_sentences(text, self.rules, **self.options)  # noqa: E731
        return [_sentence_annotations(docs, split) for docs in batch[self.input_col]]


@dataclass(frozen=True)
class MultilingualSentenceStep:
    """sentencex's rules for the row's language."""

    input_col: str
    output_col: str
    language: str
    language_col: str | None
    options: dict = field(default_factory=dict, hash=False)

    def inputs(self) -> list[str]:
        return [self.input_col] + ([self.language_col] if self.language_col else [])

    def apply(self, batch: Batch) -> list[list[Ann]]:
        languages = batch[self.language_col] if self.language_col else [self.language] * len(batch[self.input_col])
        return [
            _sentence_annotations(docs, lambda text, lang=lang: multilingual_sentences(
                text, lang or self.language, **self.options))
            for docs, lang in zip(batch[self.input_col], languages)
        ]


@dataclass(frozen=True)
class TokenStep:
    input_col: str
    output_col: str
    rules: TokenizerRules

    def inputs(self) -> list[str]:
        return [self.input_col]

    def apply(self, batch: Batch) -> list[list[Ann]]:
        out = []
        for sentences in batch[self.input_col]:
            row = []
            for s in sentences:
                meta = {"sentence": str(_sentence_index(s))}
                for t in self.rules.tokenize(s.result, Span(0, len(s.result) - 1)):
                    row.append(Ann(A.TOKEN, s.begin + t.begin, s.begin + t.end, t.text(s.result), dict(meta)))
            out.append(row)
        return out


@dataclass(frozen=True)
class EmbedStep:
    sentence_col: str
    token_col: str
    output_col: str
    bundle_path: str
    max_sentence_length: int = 128
    batch_size: int = 8
    pooling: str = "first"
    intra_op_threads: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    max_batch_pieces: int = 0
    runtime: str = "onnxruntime"
    precision: str = "bundle"  # or bf16 (OpenVINO)
    unsupported_precision: str = "fail"

    def inputs(self) -> list[str]:
        return [self.sentence_col, self.token_col]

    def _key(self) -> tuple:
        threads = intra_op_threads(self.intra_op_threads)
        return ("embedder", self.bundle_path, self.max_sentence_length, self.batch_size, self.pooling, threads, self.providers,
                self.max_batch_pieces, self.runtime, self.precision, self.unsupported_precision)

    def stats(self) -> dict:
        """This process's embedder counters so far (zeros before the model is loaded). They outlive tasks,
        like the embedder itself: callers take differences."""
        from pipelines.model.embed import empty_stats

        embedder = loaded(self._key())
        return dict(embedder.stats) if embedder is not None else empty_stats()

    def embedder(self):
        from pipelines.model.embed import TokenEmbedder
        from pipelines.model.bundle import ModelBundle
        from pipelines.store.model_paths import load_on_executor

        def load():
            # Checked by the driver, or (shipped to this executor) by its first worker.
            bundle = load_on_executor(self.bundle_path, ModelBundle.load)
            # Each worker checks its own CPU: one without bf16 fails, or runs fp32 and counts a fall-back.
            return TokenEmbedder(
                bundle.open_session(runtime=self.runtime, precision=self.precision,
                                    on_unsupported=self.unsupported_precision,
                                    threads=intra_op_threads(self.intra_op_threads), providers=list(self.providers)),
                bundle.load_tokenizer(),
                max_sentence_length=self.max_sentence_length,
                batch_size=self.batch_size,
                max_batch_pieces=self.max_batch_pieces,
                pooling=self.pooling,
            )

        return worker_model(self._key(), load)

    def apply(self, batch: Batch) -> list[list[Ann]]:
        # Group each row's tokens by sentence; embed all sentences of the batch together.
        groups: list[list[Ann]] = []
        row_groups: list[list[int]] = []
        for tokens in batch[self.token_col]:
            by_sentence: dict[int, list[Ann]] = {}
            for t in tokens:
                by_sentence.setdefault(_sentence_index(t), []).append(t)
            row_groups.append(list(range(len(groups), len(groups) + len(by_sentence))))
            groups.extend(by_sentence.values())
        embedded = self.embedder().embed([[t.result for t in g] for g in groups]) if groups else []
        out = []
        for indices in row_groups:
            row = []
            for g in indices:
                e = embedded[g]
                for t, vec, piece, oov in zip(groups[g], e.vectors, e.first_piece_ids, e.oov):
                    meta = {
                        "sentence": t.metadata.get("sentence", "0"),
                        "token": t.result,
                        "pieceId": str(int(piece)),
                        "isWordStart": "true",
                        "isOOV": "true" if oov else "false",
                    }
                    row.append(Ann(A.WORD_EMBEDDINGS, t.begin, t.end, t.result, meta, vec))
            out.append(row)
        return out


# ------------------------------------------------------------------------------------------------
def _column_to_python(array: pa.Array) -> list:
    if pa.types.is_list(array.type) and pa.types.is_struct(array.type.value_type):
        return [A.from_arrow_row(v) for v in array.to_pylist()]
    return array.to_pylist()


def apply_steps(record_batch: pa.RecordBatch, steps: list) -> Batch:
    """Apply ``steps`` in order; input columns are converted from Arrow once, when first needed."""
    columns: Batch = {}
    for name in raw_inputs(steps):
        columns[name] = _column_to_python(record_batch.column(name))
    return run_steps(columns, steps)


def raw_inputs(steps: list) -> list[str]:
    """The input columns ``steps`` read that no earlier step writes, in order of first use."""
    made: set[str] = set()
    needed: list[str] = []
    for step in steps:
        needed += [name for name in step.inputs() if name not in made and name not in needed]
        made.add(step.output_col)
    return needed


def run_steps(columns: Batch, steps: list) -> Batch:
    """Apply ``steps`` in order to Python columns (one value per row); adds one column per step."""
    for step in steps:
        columns[step.output_col] = step.apply(columns)
    return columns


def annotated(record_batch: pa.RecordBatch, steps: list) -> pa.RecordBatch:
    """The batch plus one annotation column a step (see :func:`pipelines.annotate.tables.stream_annotations`)."""
    columns = apply_steps(record_batch, steps)
    arrays = list(record_batch.columns) + [A.to_arrow(columns[s.output_col]) for s in steps]
    return pa.RecordBatch.from_arrays(arrays, names=list(record_batch.schema.names) + [s.output_col for s in steps])
