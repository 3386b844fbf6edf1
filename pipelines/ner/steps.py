"""Native steps of NerDLModel and NerConverter (picklable; they run inside the fused mapInArrow pass)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pipelines import annotation as A
from pipelines.annotation import Ann
from pipelines.annotate.native import Batch
from pipelines.ner.tags import converter_chunks
from pipelines.annotate.worker_models import intra_op_threads, worker_model


def _score(x: float) -> str:
    """Spark NLP writes confidences as a float rounded to 4 decimals ("0.9987", "1.0")."""
    return str(round(float(x), 4))


def _by_sentence(anns: list[Ann]) -> list[tuple[str, list[Ann]]]:
    """Consecutive runs of annotations of the same sentence, in order."""
    groups: list[tuple[str, list[Ann]]] = []
    for a in anns:
        s = a.metadata.get("sentence", "0")
        if not groups or groups[-1][0] != s:
            groups.append((s, []))
        groups[-1][1].append(a)
    return groups


@dataclass(frozen=True)
class NerStep:
    sentence_col: str
    token_col: str
    embeddings_col: str
    output_col: str
    ner_dir: str
    batch_size: int = 8
    include_confidence: bool = False
    include_all_scores: bool = False
    intra_op_threads: int = 0

    def inputs(self) -> list[str]:
        return [self.sentence_col, self.token_col, self.embeddings_col]

    def model(self):
        from pipelines.store.model_paths import load_on_executor
        from pipelines.ner.model import NerModel

        threads = intra_op_threads(self.intra_op_threads)
        # Checked by the driver, or (shipped to this executor) by its first worker.
        return worker_model(("ner", self.ner_dir, threads), lambda: load_on_executor(
            self.ner_dir, functools.partial(NerModel.load, intra_op_threads=threads)))

    def _token_vectors(self, tokens: list[Ann], embeddings: list[Ann]) -> list:
        """The embedding of every token (matched by offsets); a token without one is an error, not a gap."""
        if len(tokens) == len(embeddings) and all(
                t.begin == e.begin and t.end == e.end for t, e in zip(tokens, embeddings)):
            vectors = [e.embeddings for e in embeddings]
        else:
            by_span = {(e.begin, e.end): e.embeddings for e in embeddings}
            vectors = [by_span.get((t.begin, t.end)) for t in tokens]
        missing = [t for t, v in zip(tokens, vectors) if v is None or len(v) == 0]
        if missing:
            t = missing[0]
            raise ValueError(
                f"NerDLModel: {len(missing)} of {len(tokens)} tokens have no vector in column "
                f"{self.embeddings_col!r} (first: {t.result!r} at {t.begin}-{t.end}); every token needs exactly "
                "one embedding: compute the embeddings from the same token column (BertEmbeddings does)")
        return vectors

    def apply(self, batch: Batch) -> list[list[Ann]]:
        rows: list[list[tuple[str, list[Ann]]]] = []
        inputs = []
        for tokens, embeddings in zip(batch[self.token_col], batch[self.embeddings_col]):
            groups = _by_sentence(tokens)
            vectors = self._token_vectors(tokens, embeddings) if tokens else []
            k = 0
            for _, group in groups:
                inputs.append(([t.result for t in group], vectors[k : k + len(group)]))
                k += len(group)
            rows.append(groups)
        predictions = self.model().predict(inputs, self.batch_size) if inputs else []
        model_tags = self.model().tags if inputs else []
        out: list[list[Ann]] = []
        p = 0
        for groups in rows:
            row: list[Ann] = []
            for sentence, group in groups:
                pred = predictions[p]
                p += 1
                for t, tag, scores in zip(group, pred.tags, pred.scores):
                    meta = {"word": t.result, "sentence": sentence}
                    if self.include_confidence or self.include_all_scores:
                        meta["confidence"] = _score(scores.max())
                    if self.include_all_scores:
                        meta.update({name: _score(s) for name, s in zip(model_tags, scores)})
                    row.append(Ann(A.NAMED_ENTITY, t.begin, t.end, tag, meta))
            out.append(row)
        return out


@dataclass(frozen=True)
class ConverterStep:
    sentence_col: str
    token_col: str
    ner_col: str
    output_col: str
    white_list: tuple[str, ...] = ()

    def inputs(self) -> list[str]:
        return [self.sentence_col, self.token_col, self.ner_col]

    def apply(self, batch: Batch) -> list[list[Ann]]:
        out = []
        for sentences, tags in zip(batch[self.sentence_col], batch[self.ner_col]):
            by_index = {s.metadata.get("sentence", "0"): s for s in sentences}
            row: list[Ann] = []
            for sentence, group in _by_sentence(tags):
                s = by_index.get(sentence)
                for first, last, entity in converter_chunks([a.result for a in group]):
                    if self.white_list and entity not in self.white_list:
                        continue
                    begin, end = group[first].begin, group[last].end
                    if s is not None and s.begin <= begin and end <= s.end:
                        text = s.result[begin - s.begin : end - s.begin + 1]
                    else:  # no sentence for these tags: the tokens' words, joined as written
                        text = " ".join(a.metadata.get("word", "") for a in group[first : last + 1])
                    meta = {"entity": entity, "sentence": sentence, "chunk": str(len(row))}
                    confidences = [float(a.metadata["confidence"]) for a in group[first : last + 1]
                                   if "confidence" in a.metadata]
                    if confidences:
                        meta["confidence"] = _score(sum(confidences) / len(confidences))
                    row.append(Ann(A.CHUNK, begin, end, text, meta))
            out.append(row)
        return out
