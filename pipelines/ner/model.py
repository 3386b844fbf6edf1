"""A trained NER model directory (NER_DIR) and its inference: ONNX Runtime network + NumPy Viterbi.

Layout::

    <ner_dir>/ner.json       NerManifest: tags, character vocabulary, CRF transitions, storage ref of
                             the embeddings it was trained on, hyper-parameters, sha256 of the files
    <ner_dir>/tagger.onnx    the emission scores: (embeddings, char_ids, lengths) -> emissions; char-CNN + BiLSTM
                             (train-ner, pipelines.ner.train), or linear (the demo model, pipelines.ner.linear)
    <ner_dir>/metrics.json   entity-level precision / recall / F1 on the dev set

No pickles: :meth:`NerModel.load` refuses any other file. This module never imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import CorpusNlpError
from pipelines.model.digest import cached_sha256, sha256_file
from pipelines.ner.tags import allowed_transitions

MANIFEST = "ner.json"
ONNX_FILE = "tagger.onnx"
METRICS_FILE = "metrics.json"
ALLOWED_FILES = (MANIFEST, ONNX_FILE, METRICS_FILE)
PAD, UNK = 0, 1  # character ids; real characters start at 2
_FORBIDDEN = -1e4  # score of a transition IOB2 does not allow


class NerModelError(CorpusNlpError):
    """An NER model directory cannot be used; the message says what to do."""


def _how_to_rebuild(path) -> str:
    return (f"retrain it with `corpus-nlp train-ner --config conf/train_ner.yaml --out {path}` "
            "(or pipelines.ner.demo.build_demo_ner)")


class NerManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    kind: Literal["ner_dl"] = "ner_dl"
    tags: list[str]
    chars: list[str] = Field(description="character vocabulary; id = position + 2 (0 padding, 1 unknown)")
    max_chars: int = Field(description="characters per token the char-CNN sees (the first ones)")
    transitions: list[list[float]] = Field(description="CRF scores, transitions[i][j]: tag i -> tag j")
    start_transitions: list[float]
    end_transitions: list[float]
    storage_ref: str = Field(description="storage ref of the embeddings model the tagger was trained on")
    embeddings_dimension: int
    embeddings: dict = Field(default_factory=dict, description="how the training embeddings were made")
    hyperparameters: dict = Field(default_factory=dict)
    training: dict = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    created_at: str = ""


def write_manifest(out_dir, manifest: NerManifest, hashed: list[str]) -> NerManifest:
    """Fill in ``files`` (sha256 of ``hashed``) and ``created_at``, and write ner.json atomically."""
    out = Path(out_dir)
    manifest = manifest.model_copy(update={
        "files": {name: sha256_file(out / name) for name in hashed},
        "created_at": manifest.created_at or datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    })
    tmp = out / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    return manifest


@dataclass
class Prediction:
    tags: list[str]
    scores: np.ndarray  # (n_tokens, n_tags): softmax of the emission scores


class NerModel:
    """The tagger at inference: build once per Python worker (the ONNX session costs the most)."""

    def __init__(self, path: Path, manifest: NerManifest, session=None):
        self.path = path
        self.manifest = manifest
        self.tags = list(manifest.tags)
        self.char_ids = {c: i + 2 for i, c in enumerate(manifest.chars)}
        self.transitions = np.asarray(manifest.transitions, dtype=np.float64)
        self.start = np.asarray(manifest.start_transitions, dtype=np.float64)
        self.end = np.asarray(manifest.end_transitions, dtype=np.float64)
        allowed, allowed_start = allowed_transitions(self.tags)
        self.transitions = np.where(np.asarray(allowed), self.transitions, _FORBIDDEN)
        self.start = np.where(np.asarray(allowed_start), self.start, _FORBIDDEN)
        self._session = session
        self._threads = 1

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True, intra_op_threads: int = 1) -> NerModel:
        p = Path(path)
        if not (p / MANIFEST).is_file():
            what = "does not exist" if not p.exists() else f"has no {MANIFEST}"
            raise NerModelError(f"NER model {p} {what}: {_how_to_rebuild(p)}")
        try:
            manifest = NerManifest.model_validate_json((p / MANIFEST).read_text(encoding="utf-8"))
        except (ValidationError, UnicodeDecodeError, ValueError) as e:
            raise NerModelError(f"{MANIFEST} in NER model {p} is invalid ({str(e).splitlines()[0]}): "
                                f"{_how_to_rebuild(p)}") from e
        if manifest.format_version != 1:
            raise NerModelError(f"NER model {p} has format_version {manifest.format_version}; this version "
                                f"reads 1: upgrade corpus-nlp or {_how_to_rebuild(p)}")
        for f in sorted(p.iterdir()):
            if f.name not in ALLOWED_FILES or f.is_symlink() or not f.is_file():
                raise NerModelError(
                    f"NER model {p} contains {f.name!r}, which is not an NER model file (only "
                    f"{', '.join(ALLOWED_FILES)}; never pickles or links): delete it if you put it there, "
                    f"otherwise treat the model as tampered with and {_how_to_rebuild(p)}")
        if ONNX_FILE not in manifest.files:
            raise NerModelError(f"{MANIFEST} in NER model {p} does not list {ONNX_FILE}: {_how_to_rebuild(p)}")
        for name, digest in manifest.files.items():
            if name not in ALLOWED_FILES or name == MANIFEST or not (p / name).is_file():
                raise NerModelError(f"NER model {p} is missing {name!r}, which {MANIFEST} lists: "
                                    f"{_how_to_rebuild(p)}")
            if verify and cached_sha256(p / name) != digest.lower():
                raise NerModelError(f"file {name} in NER model {p} does not match its sha256 in {MANIFEST} "
                                    f"(corrupt or modified): {_how_to_rebuild(p)}")
        n = len(manifest.tags)
        if len(manifest.transitions) != n or any(len(r) != n for r in manifest.transitions) \
                or len(manifest.start_transitions) != n or len(manifest.end_transitions) != n:
            raise NerModelError(f"{MANIFEST} in NER model {p}: CRF transitions do not match the {n} tags: "
                                f"{_how_to_rebuild(p)}")
        model = cls(p, manifest)
        model._threads = max(1, int(intra_op_threads))
        return model

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            try:
                self._session = ort.InferenceSession(str(self.path / ONNX_FILE), opts,
                                                     providers=["CPUExecutionProvider"])
            except Exception as e:
                raise NerModelError(f"ONNX Runtime cannot load {self.path / ONNX_FILE} ({type(e).__name__}: "
                                    f"{e}): {_how_to_rebuild(self.path)}") from e
        return self._session

    @property
    def storage_ref(self) -> str:
        return self.manifest.storage_ref

    @property
    def dimension(self) -> int:
        return self.manifest.embeddings_dimension

    # ------------------------------------------------------------------ inference
    def encode_chars(self, tokens: list[str], width: int | None = None) -> np.ndarray:
        width = width or max((min(len(t), self.manifest.max_chars) for t in tokens), default=1)
        out = np.zeros((len(tokens), max(width, 1)), dtype=np.int64)
        get = self.char_ids.get
        for i, t in enumerate(tokens):
            for j, ch in enumerate(t[: self.manifest.max_chars]):
                out[i, j] = get(ch, UNK)
        return out

    def emissions(self, sentences: list[tuple[list[str], np.ndarray]], batch_size: int = 8) -> list[np.ndarray]:
        """Emission scores (n_tokens, n_tags) per sentence; batches of similar length, padding masked."""
        out: list[np.ndarray | None] = [None] * len(sentences)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i][0]))
        for i in order:
            if not sentences[i][0]:
                out[i] = np.zeros((0, len(self.tags)), dtype=np.float32)
        order = [i for i in order if sentences[i][0]]
        dim = self.dimension
        for b in range(0, len(order), max(1, batch_size)):
            idx = order[b : b + max(1, batch_size)]
            longest = max(len(sentences[i][0]) for i in idx)
            width = max(min(len(t), self.manifest.max_chars) for i in idx for t in sentences[i][0])
            emb = np.zeros((len(idx), longest, dim), dtype=np.float32)
            chars = np.zeros((len(idx), longest, max(width, 1)), dtype=np.int64)
            lengths = np.zeros(len(idx), dtype=np.int64)
            for row, i in enumerate(idx):
                tokens, vectors = sentences[i]
                vectors = np.asarray(vectors, dtype=np.float32).reshape(len(tokens), -1)
                if vectors.shape[1] != dim:
                    raise ValueError(f"NER model {self.path} expects {dim}-dimensional embeddings, got "
                                     f"{vectors.shape[1]}")
                emb[row, : len(tokens)] = vectors
                chars[row, : len(tokens)] = self.encode_chars(tokens, width)
                lengths[row] = len(tokens)
            scores = self.session.run(["emissions"], {"embeddings": emb, "char_ids": chars, "lengths": lengths})[0]
            for row, i in enumerate(idx):
                out[i] = scores[row, : lengths[row]]
        return out  # type: ignore[return-value]

    def viterbi(self, emissions: np.ndarray) -> list[int]:
        return viterbi(emissions, self.transitions, self.start, self.end)

    def predict(self, sentences: list[tuple[list[str], np.ndarray]], batch_size: int = 8) -> list[Prediction]:
        out = []
        for em in self.emissions(sentences, batch_size):
            path = self.viterbi(em) if len(em) else []
            out.append(Prediction([self.tags[k] for k in path], softmax(em)))
        return out


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[int]:
    """Best tag path of one sentence: emissions (T, K), transitions (K, K) from -> to."""
    T = len(emissions)
    if T == 0:
        return []
    em = emissions.astype(np.float64, copy=False)
    score = start + em[0]
    back = np.zeros((T, len(start)), dtype=np.int64)
    for t in range(1, T):
        total = score[:, None] + transitions  # (from, to)
        back[t] = total.argmax(axis=0)
        score = total.max(axis=0) + em[t]
    score = score + end
    best = [int(score.argmax())]
    for t in range(T - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return best[::-1]


def softmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x.astype(np.float32)
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def read_metrics(path) -> dict:
    return json.loads((Path(path) / METRICS_FILE).read_text(encoding="utf-8"))
