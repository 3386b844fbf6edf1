"""Model bundles: the directory a Spark stage loads with ONNX Runtime + ``tokenizers``.

Layout::

    <bundle>/manifest.json    ModelManifest (what the model is, sha256 of every file)
    <bundle>/model.onnx       encoder graph, see pipelines.model.onnx_bert for its I/O
    <bundle>/tokenizer.json   Hugging Face ``tokenizers`` file
    <bundle>/checkpoint/      optional (demo bundles): the HF checkpoint it was built from

A bundle never contains pickles: ``ModelBundle.load`` refuses any file whose type
is not on an allow-list. This module never imports torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from pipelines.errors import CorpusNlpError
from pipelines.model.digest import cached_sha256

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import onnxruntime
    import tokenizers

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
ONNX_DATA_FILE = "model.onnx.data"  # external weights, only written for graphs > 2 GB
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINT_DIR = "checkpoint"

# Top-level files a bundle may contain (by suffix), and what may sit in checkpoint/.
_ALLOWED_SUFFIXES = (".onnx", ".json", ".txt")
_ALLOWED_CHECKPOINT_SUFFIXES = (".json", ".txt", ".safetensors")
_EXTERNAL_DATA_LIMIT = 2 * 1024**3 - 64 * 1024**2  # protobuf's 2 GB limit, with headroom

DEMO_NOTES = "DEMO MODEL: random weights, embeddings carry no meaning"


def _how_to_build(path: Path | str) -> str:
    return (
        f"build one with `corpus-nlp prepare-model --from-dir CHECKPOINT --out {path}` "
        f"or `corpus-nlp demo-model --out {path}`"
    )


def _how_to_rebuild(path: Path | str) -> str:
    return f"rebuild the bundle ({_how_to_build(path)})"


class BundleError(CorpusNlpError):
    """A model bundle (or checkpoint) cannot be used; the message says what to do."""


class Calibration(BaseModel):
    """How an int8-static bundle was calibrated, and how closely it agrees with the fp32 graph it came from."""

    model_config = ConfigDict(extra="forbid")

    corpus: str  # the path given to --calibrate
    fingerprint: str  # sha256 of the calibration sentences, in order
    sentences: int
    min_cosine: float  # per token, against fp32 on the same runtime, over the calibration sentences
    mean_cosine: float


class Selection(BaseModel):
    """What ``prepare-model --min-cosine`` measured on the machine it ran on, and which candidate won."""

    model_config = ConfigDict(extra="forbid")

    runtime: str  # stages.embeddings.runtime to configure
    precision: str  # stages.embeddings.precision to configure (bundle or bf16)
    min_cosine_floor: float
    tokens_per_s: float
    min_cosine: float
    mean_cosine: float
    cpu: str
    texts: int
    candidates: list[dict[str, Any]]


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    name: str
    kind: Literal["demo", "real"]
    storage_ref: str
    source: str
    dimension: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    case_sensitive: bool
    precision: Literal["fp32", "int8", "int8-static", "fp16"]
    files: dict[str, str]
    created_at: str
    notes: str = ""
    # What the graph computes: token embeddings (``last_hidden_state``), or a fine-tuned classifier's
    # ``logits`` over ``labels`` (index = class id). Written only for classifiers, so embeddings
    # manifests stay as they were.
    task: Literal["embeddings", "token-classification", "sequence-classification"] = "embeddings"
    labels: list[str] = []
    model_type: Literal["bert", "distilbert"] = "bert"
    calibration: Calibration | None = None  # int8-static bundles only
    selection: Selection | None = None  # bundles written by prepare-model --min-cosine only

    @model_validator(mode="after")
    def _labels_fit_the_task(self):
        if self.task == "embeddings" and (self.labels or self.model_type != "bert"):
            raise ValueError("an embeddings bundle has no labels and is a BERT model")
        if self.task != "embeddings" and (len(self.labels) < 2 or len(set(self.labels)) != len(self.labels)):
            raise ValueError(f"a {self.task} bundle needs at least 2 distinct labels, got {self.labels}")
        return self

    @property
    def is_classifier(self) -> bool:
        return self.task != "embeddings"


def _is_allowed(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) == 1:
        return rel.endswith(_ALLOWED_SUFFIXES) or rel == ONNX_DATA_FILE
    if len(parts) == 2 and parts[0] == CHECKPOINT_DIR:
        return parts[1].endswith(_ALLOWED_CHECKPOINT_SUFFIXES)
    return False


class ModelBundle:
    """A verified model bundle directory."""

    def __init__(self, path: Path, manifest: ModelManifest):
        self.path = path
        self.manifest = manifest

    def __repr__(self) -> str:
        m = self.manifest
        return f"ModelBundle({str(self.path)!r}, name={m.name!r}, kind={m.kind}, precision={m.precision})"

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    # ------------------------------------------------------------------ load
    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> ModelBundle:
        """Open and check a bundle; ``verify`` also checks every file's sha256.

        Raises ``BundleError`` if the directory is missing, has no/invalid
        manifest.json, lacks a listed file, a hash does not match, or it holds a
        file of a type a bundle never contains (e.g. a pickle).
        """
        p = Path(path)
        if not p.exists():
            raise BundleError(f"model bundle {p} does not exist: {_how_to_build(p)}")
        if not p.is_dir():
            raise BundleError(
                f"model bundle {p} is not a directory (a bundle is a directory with "
                f"manifest.json, model.onnx, tokenizer.json): pass the bundle directory, or "
                f"{_how_to_build(p)}"
            )
        mpath = p / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"model bundle {p} is missing {MANIFEST}: {_how_to_build(p)}")
        try:
            raw = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(
                f"{MANIFEST} in model bundle {p} is not valid JSON ({e}): {_how_to_rebuild(p)}"
            ) from e
        try:
            manifest = ModelManifest.model_validate(raw)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
            )
            raise BundleError(
                f"{MANIFEST} in model bundle {p} has invalid fields ({problems}): {_how_to_rebuild(p)}"
            ) from e
        if manifest.format_version != 1:
            raise BundleError(
                f"model bundle {p} has format_version {manifest.format_version}, this version of "
                f"corpus-nlp reads format_version 1: upgrade corpus-nlp or {_how_to_rebuild(p)}"
            )
        for required in (ONNX_FILE, TOKENIZER_FILE):
            if required not in manifest.files:
                raise BundleError(
                    f"{MANIFEST} in model bundle {p} does not list {required}: {_how_to_rebuild(p)}"
                )

        # File-type allow-list: bundles never contain pickles or anything executable.
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(p).as_posix()
            if f.is_dir() and not f.is_symlink():
                if rel == CHECKPOINT_DIR:
                    continue
                raise BundleError(
                    f"model bundle {p} contains an unexpected directory {rel!r} (only "
                    f"'{CHECKPOINT_DIR}/' is allowed): remove it or {_how_to_rebuild(p)}"
                )
            if f.is_symlink() or not f.is_file() or not _is_allowed(rel):
                raise BundleError(
                    f"model bundle {p} contains {rel!r}, which is not an allowed bundle file "
                    "(only .onnx/.json/.txt; bundles never contain pickles or links): delete "
                    f"that file if you put it there, otherwise treat the bundle as tampered "
                    f"with and {_how_to_rebuild(p)}"
                )

        for name, digest in manifest.files.items():
            fp = p / name
            if "/" in name.replace("\\", "/") or name in ("", ".", ".."):
                raise BundleError(
                    f"{MANIFEST} in model bundle {p} lists an invalid file name {name!r}: "
                    f"{_how_to_rebuild(p)}"
                )
            if not fp.is_file():
                raise BundleError(
                    f"model bundle {p} is missing {name}, which its {MANIFEST} lists: "
                    f"{_how_to_rebuild(p)}"
                )
            if verify and cached_sha256(fp) != digest.lower():
                raise BundleError(
                    f"file {name} in bundle {p} does not match its manifest sha256 (corrupt or "
                    f"modified): {_how_to_rebuild(p)}"
                )
        return cls(p, manifest)

    def require_task(self, task: str, stage: str) -> ModelBundle:
        """Raise BundleError unless the bundle's graph computes ``task`` (what ``stage`` reads)."""
        m = self.manifest
        if m.task != task:
            what = {"embeddings": "a BERT encoder (token embeddings)",
                    "token-classification": "a token classifier", "sequence-classification": "a sequence classifier"}
            users = {"embeddings": "BertEmbeddings", "token-classification": "BertForTokenClassification / "
                     "DistilBertForTokenClassification", "sequence-classification": "BertForSequenceClassification "
                     "/ DistilBertForSequenceClassification"}
            raise BundleError(f"{stage}: model bundle {self.path} is {what[m.task]} ({m.model_type}), not "
                              f"{what[task]}: use it with {users[m.task]}, or give {stage} a bundle built from a "
                              "matching checkpoint")
        return self

    # --------------------------------------------------------------- runtime
    def create_session(
        self, intra_op_threads: int | None = None, providers: list[str] | None = None
    ) -> onnxruntime.InferenceSession:
        """An ONNX Runtime session on model.onnx (graph optimizations ALL, sequential)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if intra_op_threads is not None:
            so.intra_op_num_threads = int(intra_op_threads)
        try:
            return ort.InferenceSession(
                str(self.onnx_path), sess_options=so, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(
                f"ONNX Runtime cannot load {self.onnx_path} ({type(e).__name__}: {e}): check that "
                f"onnxruntime is >= 1.17 and the providers {providers!r} exist, or "
                f"{_how_to_rebuild(self.path)}"
            ) from e

    def open_session(self, *, runtime: str = "onnxruntime", precision: str = "bundle", on_unsupported: str = "fail",
                     threads: int | None = None, providers: list[str] | None = None):
        """The graph on ONNX Runtime or OpenVINO behind one interface (:mod:`pipelines.model.runtime`)."""
        from pipelines.model.runtime import open_session

        return open_session(self, runtime=runtime, precision=precision, on_unsupported=on_unsupported,
                            threads=threads, providers=providers)

    def load_tokenizer(self) -> tokenizers.Tokenizer:
        """The bundle's tokenizer, with truncation and padding disabled.

        The post-processor is kept: ``encode(text, add_special_tokens=False)`` gives
        the bare word pieces, ``add_special_tokens=True`` adds ``[CLS] ... [SEP]``.
        """
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as e:
            raise BundleError(
                f"{TOKENIZER_FILE} in model bundle {self.path} cannot be read by tokenizers "
                f"({e}): upgrade the tokenizers package or {_how_to_rebuild(self.path)}"
            ) from e
        tok.no_truncation()
        tok.no_padding()
        return tok


# ---------------------------------------------------------------------- writing
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; executors may run as another user
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_onnx(model: onnx.ModelProto, path: Path) -> list[str]:
    """Save ``model`` to ``path``; weights go to ``model.onnx.data`` only above 2 GB.

    Returns the names of the files written (relative to ``path.parent``).
    """
    import onnx

    if model.ByteSize() < _EXTERNAL_DATA_LIMIT:
        _atomic_write_bytes(path, model.SerializeToString())
        return [path.name]
    data = path.parent / ONNX_DATA_FILE
    if data.exists():
        data.unlink()
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=ONNX_DATA_FILE, size_threshold=1024,
    )
    return [path.name, ONNX_DATA_FILE]


def write_bundle(
    out_dir: str | os.PathLike[str],
    onnx_model: onnx.ModelProto | str | os.PathLike[str],
    tokenizer: tokenizers.Tokenizer | str | os.PathLike[str],
    **manifest_fields: Any,
) -> ModelBundle:
    """Write model.onnx, tokenizer.json and manifest.json (with sha256s) to ``out_dir``.

    ``onnx_model``: a ModelProto, or the path of an .onnx file to copy.
    ``tokenizer``: a ``tokenizers.Tokenizer``, or the path of a tokenizer.json.
    ``manifest_fields``: every ModelManifest field except ``files`` (and optionally
    ``created_at``). Returns the freshly loaded and verified bundle.
    """
    import shutil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "files" in manifest_fields:
        raise TypeError("write_bundle computes 'files' itself; do not pass it")
    for stale in (MANIFEST, ONNX_DATA_FILE):
        if (out / stale).exists():
            (out / stale).unlink()

    written: list[str]
    if isinstance(onnx_model, (str, os.PathLike)):
        src = Path(onnx_model)
        if src.resolve() != (out / ONNX_FILE).resolve():
            shutil.copyfile(src, out / ONNX_FILE)
        written = [ONNX_FILE]
        if (src.parent / ONNX_DATA_FILE).exists():
            shutil.copyfile(src.parent / ONNX_DATA_FILE, out / ONNX_DATA_FILE)
            written.append(ONNX_DATA_FILE)
    else:
        written = save_onnx(onnx_model, out / ONNX_FILE)

    if isinstance(tokenizer, (str, os.PathLike)):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    _atomic_write_bytes(out / TOKENIZER_FILE, tokenizer.to_str(pretty=True).encode("utf-8"))
    written.append(TOKENIZER_FILE)

    fields = dict(manifest_fields)
    fields.setdefault("created_at", datetime.now(timezone.utc).replace(microsecond=0).isoformat())
    fields["files"] = {name: cached_sha256(out / name) for name in written}
    try:
        manifest = ModelManifest(**fields)
    except ValidationError as e:
        raise TypeError(f"invalid manifest fields for write_bundle: {e}") from e
    # Fields written only where they apply, so other manifests stay as they were.
    left_out = (set() if manifest.is_classifier else {"task", "labels", "model_type"}) | (
        set() if manifest.calibration else {"calibration"}) | (set() if manifest.selection else {"selection"})
    text = manifest.model_dump_json(indent=2, exclude=left_out or None)
    _atomic_write_bytes(out / MANIFEST, (text + "\n").encode("utf-8"))
    return ModelBundle.load(out, verify=True)
