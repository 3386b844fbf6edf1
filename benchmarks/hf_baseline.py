"""The baseline a Databricks user would write: a pandas UDF running Hugging Face transformers (PyTorch).

One model per Python worker (module cache), torch threads set per task, inference_mode, sentences split
with a regex, windows of ``max_length`` pieces with half-window overlap (``return_overflowing_tokens``,
so every word gets a vector, as in the job), run ``batch_size`` at a time with dynamic padding (to the
longest of the batch, like ``padding=True`` / the feature-extraction pipeline), in input order or, with
``sort``, sorted by length inside each Arrow batch (what a performance-minded user adds). Output: one row
per document, the first-piece vector of each word (array<array<float>>), Parquet partitioned by language.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np
import pandas as pd

SENTENCE_END = re.compile(r"(?<=[.!?。！？।؟])\s*")
_MODELS: dict[tuple, tuple] = {}


def load(checkpoint: str, threads: int):
    key = (checkpoint, threads)
    if key not in _MODELS:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers
        from transformers import AutoTokenizer, BertModel

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = BertModel.from_pretrained(checkpoint, add_pooling_layer=False).eval()
        _MODELS[key] = (tokenizer, model)
    return _MODELS[key]


def embed_texts(tokenizer, model, texts: list, batch_size: int, max_length: int,
                sort: bool = False) -> list[list[np.ndarray]]:
    """Per text: the first-piece vector of each word, in order."""
    import torch

    sentences, owner = [], []
    for i, text in enumerate(texts):
        for s in SENTENCE_END.split(text or ""):
            if s.strip():
                sentences.append(s)
                owner.append(i)
    out: list[list[np.ndarray]] = [[] for _ in texts]
    if not sentences:
        return out
    enc = tokenizer(sentences, truncation=True, max_length=max_length, stride=(max_length - 2) // 2,
                    return_overflowing_tokens=True, padding=False)
    chunks = enc["input_ids"]
    sample = enc["overflow_to_sample_mapping"]
    n_words = [0] * len(sentences)
    for c in range(len(chunks)):
        ids = [w for w in enc.word_ids(c) if w is not None]
        if ids:
            n_words[sample[c]] = max(n_words[sample[c]], ids[-1] + 1)
    hidden = model.config.hidden_size
    vectors = [np.zeros((n, hidden), dtype=np.float32) for n in n_words]
    filled = [np.zeros(n, dtype=bool) for n in n_words]
    order = sorted(range(len(chunks)), key=lambda c: len(chunks[c])) if sort else list(range(len(chunks)))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            longest = max(len(chunks[c]) for c in batch)
            ids = np.full((len(batch), longest), tokenizer.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, c in enumerate(batch):
                ids[row, : len(chunks[c])] = chunks[c]
                mask[row, : len(chunks[c])] = 1
            h = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
            for row, c in enumerate(batch):
                s, words, prev = sample[c], enc.word_ids(c), None
                for pos, w in enumerate(words):
                    if w is not None and w != prev and not filled[s][w]:
                        vectors[s][w] = h[row, pos]
                        filled[s][w] = True
                    prev = w
    for s, i in enumerate(owner):
        out[i].extend(vectors[s])
    return out


def make_udf(checkpoint: str, batch_size: int, max_length: int, threads: int, sort: bool = False):
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import ArrayType, FloatType

    @pandas_udf(ArrayType(ArrayType(FloatType())))
    def embed(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        tokenizer, model = load(checkpoint, threads)
        for texts in batches:
            yield pd.Series(embed_texts(tokenizer, model, texts.tolist(), batch_size, max_length, sort))

    return embed


def run(spark, corpus: str, out: str, checkpoint: str, *, batch_size: int, max_length: int, threads: int,
        sort: bool = False, repartition: int = 0) -> int:
    """Read the corpus, embed, write Parquet; returns the number of word vectors written."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(corpus)
    if repartition:
        df = df.repartition(repartition)
    embed = make_udf(checkpoint, batch_size, max_length, threads, sort)
    df.select("doc_id", "lang", embed("text").alias("embeddings")).write.mode("overwrite").partitionBy(
        "lang").parquet(out)
    return spark.read.parquet(out).select(F.sum(F.size("embeddings")).alias("n")).first()["n"] or 0
