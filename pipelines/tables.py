"""The lake's flat tables, produced straight from the fused native pass (no per-token structs in the JVM).

Memory stays bounded by the settings, not by the document: the text steps (document, sentences,
tokens) run on the whole Arrow batch, then the model steps run on *units* of whole sentences holding
at most ``max_tokens`` tokens, and each unit's rows leave the worker as soon as they are built. A
million-character document is just many units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from pipelines import native
from pipelines.annotation import Ann

TOKEN_COLUMNS = ("sentence", "token_index", "begin", "end", "token", "embedding")


@dataclass(frozen=True)
class Unit:
    row: int  # row of the Arrow batch
    first_token: int  # index in the document of the unit's first token
    tokens: list[Ann]


def units(token_rows: list[list[Ann]], max_tokens: int) -> Iterator[Unit]:
    """Split each row's tokens into runs of whole sentences of at most ``max_tokens`` tokens.

    A single sentence longer than that stays whole (the embedder windows it); its size is bounded by
    the SentenceDetector's maxLength, not by the document.
    """
    for row, tokens in enumerate(token_rows):
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
            yield Unit(row, start, tokens[start:stop])
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


def stream_token_table(
    batches: Iterator[pa.RecordBatch],
    text_steps: list,
    model_steps: list,
    keep: list[str],
    max_tokens: int,
    on_batch: Callable[[int, int, dict], None] | None = None,
    fault_marker: str | None = None,
    embedding_dtype: str = "float32",
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` body of the job: Arrow rows in, one row per token out.

    ``model_steps``: BertEmbeddings, then optionally NerDLModel and NerConverter, whose results ride
    on the token rows (``ner``, ``ner_confidence``, and ``chunk`` on each entity's first token), so
    the entities table needs no second pass over the model.
    """
    token_col = text_steps[-1].output_col
    embeddings_col = model_steps[0].output_col
    ner_col = model_steps[1].output_col if len(model_steps) > 1 else None
    chunk_col = model_steps[2].output_col if len(model_steps) > 2 else None
    embedder_before = model_steps[0].stats()
    for rb in batches:
        if fault_marker:
            _die_once(fault_marker)
        columns = native.apply_steps(rb, text_steps)
        chunks_done: dict[int, int] = {}  # row -> chunks already numbered (chunk_index counts per document)
        n_tokens = 0
        for group in chunks(units(columns[token_col], max_tokens), max_tokens):
            sub: native.Batch = {name: [columns[name][u.row] for u in group] for name in columns}
            sub[token_col] = [u.tokens for u in group]
            for step in model_steps:
                sub[step.output_col] = step.apply(sub)
            n_tokens += sum(len(u.tokens) for u in group)
            yield token_rows(group, sub[embeddings_col], rb, keep, sub[ner_col] if ner_col else None,
                             sub[chunk_col] if chunk_col else None, chunks_done, embedding_dtype)
        if on_batch is not None:  # rows, tokens and this batch's share of the embedder's counters
            embedder_now = model_steps[0].stats()
            on_batch(rb.num_rows, n_tokens, {k: v - embedder_before[k] for k, v in embedder_now.items()})
            embedder_before = embedder_now


CHUNK_TYPE = pa.struct([("chunk_index", pa.int32()), ("begin", pa.int32()), ("end", pa.int32()),
                        ("text", pa.string()), ("entity", pa.string()), ("confidence", pa.float32())])


def token_rows(group: list[Unit], embedded: list[list[Ann]], rb: pa.RecordBatch, keep: list[str],
               tags: list[list[Ann]] | None = None, found: list[list[Ann]] | None = None,
               chunks_done: dict[int, int] | None = None, embedding_dtype: str = "float32") -> pa.RecordBatch:
    rows, sentence, index, begin, end, token, vectors = [], [], [], [], [], [], []
    ner, ner_confidence, chunk = [], [], []
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
            chunk.extend(_chunk_heads(anns, found[k], chunks_done, unit.row))
    take = pa.array(rows, pa.int64())
    arrays = [rb.column(name).take(take) for name in keep] + [
        pa.array(sentence, pa.int32()),
        pa.array(index, pa.int32()),
        pa.array(begin, pa.int32()),
        pa.array(end, pa.int32()),
        pa.array(token, pa.string()),
        embedding_array(vectors, embedding_dtype),
    ]
    names = list(keep) + list(TOKEN_COLUMNS)
    if tags is not None:
        arrays += [pa.array(ner, pa.string()), pa.array(ner_confidence, pa.float32()), pa.array(chunk, CHUNK_TYPE)]
        names += list(NER_COLUMNS)
    return pa.RecordBatch.from_arrays(arrays, names=names)


NER_COLUMNS = ("ner", "ner_confidence", "chunk")


def embedding_array(vectors: list[np.ndarray], dtype: str = "float32") -> pa.Array:
    """float32: list<float>. float16: binary, each value the vector's little-endian half floats
    (half the bytes; read back with :func:`decode_float16`)."""
    dim = len(vectors[0]) if vectors else 0
    flat = np.concatenate(vectors) if vectors else np.zeros(0, np.float32)
    if dtype == "float16":
        data = flat.astype("<f2").tobytes()
        offsets = (np.arange(len(vectors) + 1, dtype=np.int32) * dim * 2).tobytes()
        return pa.Array.from_buffers(pa.binary(), len(vectors), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    offsets = pa.array(np.arange(len(vectors) + 1, dtype=np.int32) * dim)
    return pa.ListArray.from_arrays(offsets, pa.array(flat.astype(np.float32, copy=False), pa.float32()))


def decode_float16(value: bytes) -> np.ndarray:
    """A float16 ``embedding`` cell as a float32 vector."""
    return np.frombuffer(value, dtype="<f2").astype(np.float32)


def _confidence(a: Ann) -> float | None:
    c = a.metadata.get("confidence")
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


def _die_once(marker: str) -> None:
    """Failure injection for tests only: the first worker to get here dies like an OOM-killed process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(137)
