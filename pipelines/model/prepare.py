"""Convert a Hugging Face BERT checkpoint into a model bundle (``corpus-nlp prepare-model``).

Reads config.json + weights (model.safetensors, sharded safetensors, or — only
when torch is installed — pytorch_model.bin) + tokenizer (tokenizer.json, or
vocab.txt + tokenizer_config.json), builds the ONNX encoder graph without torch,
optionally quantizes it to int8, and writes the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .bundle import DEMO_NOTES, BundleError, ModelBundle, write_bundle
from .checkpoint import bert_tokenizer_pipeline, set_bert_post_processor
from .heads import build_classifier_onnx, classifier_head, encoder_config
from .onnx_bert import bert_shape_from_config, build_bert_onnx

HUB_PATTERNS = [
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
_TORCH_PATTERNS = ["pytorch_model.bin", "pytorch_model*.bin", "pytorch_model.bin.index.json"]

# Dynamic int8 quantization settings (measured on mBERT-shaped random models, see report).
INT8_PER_CHANNEL = True
INT8_REDUCE_RANGE = True


# ------------------------------------------------------------------ weights
def _safetensors_manual(path: Path) -> dict[str, np.ndarray]:
    """Minimal safetensors reader for dtypes numpy lacks (BF16 -> float32)."""
    dtypes = {
        "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
        "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
    }
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out: dict[str, np.ndarray] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            f.seek(base + start)
            buf = f.read(end - start)
            if info["dtype"] == "BF16":
                arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif info["dtype"] in dtypes:
                arr = np.frombuffer(buf, dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<"))
            else:
                raise BundleError(
                    f"{path} stores tensor {name!r} as {info['dtype']}, which cannot be converted: "
                    "save the checkpoint in float32/float16/bfloat16"
                )
            out[name] = arr.reshape(info["shape"]).copy()
    return out


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        try:
            return _safetensors_manual(path)
        except BundleError:
            raise
        except Exception:
            raise BundleError(
                f"cannot read weights file {path} ({e}): the file is corrupt or not safetensors; "
                "download the checkpoint again"
            ) from e


def _load_torch_bin(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch  # only here: pytorch_model.bin is a pickle
    except ImportError as e:
        raise BundleError(
            f"the checkpoint at {path.parent} only has PyTorch weights ({path.name}), which need torch "
            "to read: install the torch extra (`pip install 'corpus-nlp[torch]'`), or convert the "
            "weights to model.safetensors elsewhere and run prepare-model on that directory"
        ) from e
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise BundleError(
            f"torch cannot safely load {path} ({e}): it is corrupt or not a plain state dict; "
            "convert it to model.safetensors and retry"
        ) from e
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    return {k: v.detach().to(torch.float32).numpy() for k, v in state.items() if hasattr(v, "detach")}


def _weight_files(ckpt: Path) -> tuple[list[Path], str]:
    """The weight files of a checkpoint dir and their format ("safetensors"/"torch")."""
    for index_name, fmt in (("model.safetensors.index.json", "safetensors"),
                            ("pytorch_model.bin.index.json", "torch")):
        index = ckpt / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise BundleError(f"{index} is not a valid weight index ({e}): download it again") from e
            missing = [s for s in shards if not (ckpt / s).is_file()]
            if missing:
                raise BundleError(
                    f"checkpoint {ckpt} lacks weight shards {missing} listed in {index_name}: "
                    "download all shards"
                )
            if fmt == "safetensors" or not (ckpt / "model.safetensors").is_file():
                return [ckpt / s for s in shards], fmt
    if (ckpt / "model.safetensors").is_file():
        return [ckpt / "model.safetensors"], "safetensors"
    if (ckpt / "pytorch_model.bin").is_file():
        return [ckpt / "pytorch_model.bin"], "torch"
    others = [n for n in ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index") if (ckpt / n).exists()]
    hint = (
        f" (found {', '.join(others)}: convert it to model.safetensors with transformers first)"
        if others else ""
    )
    raise BundleError(
        f"checkpoint {ckpt} has no model.safetensors or pytorch_model.bin{hint}: point --from-dir at "
        "a Hugging Face BERT checkpoint directory"
    )


def load_checkpoint_weights(ckpt: Path) -> tuple[dict[str, np.ndarray], str]:
    """All weights of the checkpoint and a sha256 identifying them."""
    files, fmt = _weight_files(ckpt)
    weights: dict[str, np.ndarray] = {}
    digests = []
    for f in files:
        weights.update(_load_safetensors(f) if fmt == "safetensors" else _load_torch_bin(f))
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(8 * 1024 * 1024), b""):
                h.update(block)
        digests.append(h.hexdigest())
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    return weights, digest


# ---------------------------------------------------------------- tokenizer
def _token_str(value: Any, default: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return default


def tokenizer_from_vocab(vocab_path: Path, tokenizer_config: Mapping[str, Any] | None = None):
    """A ``tokenizers.Tokenizer`` equivalent to transformers' ``BertTokenizer(vocab.txt, **config)``.

    Same defaults as transformers / ``BertWordPieceTokenizer``: ``do_lower_case=True``,
    ``strip_accents=None`` (follows lowercasing), ``tokenize_chinese_chars=True``.
    """
    from tokenizers import models

    cfg = dict(tokenizer_config or {})
    try:
        lines = vocab_path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise BundleError(f"{vocab_path} is not UTF-8 text ({e}): download vocab.txt again") from e
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for i, tok in enumerate(lines):
        vocab[tok.rstrip("\r")] = i
    unk = _token_str(cfg.get("unk_token"), "[UNK]")
    if unk not in vocab:
        raise BundleError(f"{vocab_path} has no {unk} token: it is not a BERT WordPiece vocabulary")
    tok = bert_tokenizer_pipeline(
        models.WordPiece(vocab=vocab, unk_token=unk, continuing_subword_prefix="##",
                         max_input_chars_per_word=100),
        lowercase=bool(cfg.get("do_lower_case", True)),
        strip_accents=cfg.get("strip_accents"),
        handle_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)),
    )
    specials = [
        _token_str(cfg.get(k), d)
        for k, d in (("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                     ("sep_token", "[SEP]"), ("mask_token", "[MASK]"))
    ]
    tok.add_special_tokens([s for s in specials if s in vocab])
    set_bert_post_processor(tok)
    return tok


def load_checkpoint_tokenizer(ckpt: Path):
    from tokenizers import Tokenizer

    tj, vt, tc = ckpt / "tokenizer.json", ckpt / "vocab.txt", ckpt / "tokenizer_config.json"
    if tj.is_file():
        try:
            tok = Tokenizer.from_file(str(tj))
        except Exception as e:
            raise BundleError(f"cannot read {tj} ({e}): delete it to rebuild from vocab.txt, or download it again") from e
    elif vt.is_file():
        cfg: dict[str, Any] = {}
        if tc.is_file():
            try:
                cfg = json.loads(tc.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise BundleError(f"{tc} is not valid JSON ({e}): fix or download it again") from e
        tok = tokenizer_from_vocab(vt, cfg)
    else:
        raise BundleError(
            f"checkpoint {ckpt} has neither tokenizer.json nor vocab.txt: copy the tokenizer "
            "files that belong to the model into that directory"
        )
    tok.no_truncation()
    tok.no_padding()
    return tok


def tokenizer_is_case_sensitive(tok) -> bool:
    """False when the tokenizer's normalizer lowercases."""
    spec = json.loads(tok.to_str()).get("normalizer")

    def lowercases(n: Mapping[str, Any] | None) -> bool:
        if not n:
            return False
        t = n.get("type")
        if t == "BertNormalizer":
            return bool(n.get("lowercase", True))
        if t == "Lowercase":
            return True
        if t == "Sequence":
            return any(lowercases(x) for x in n.get("normalizers", []))
        return False

    return not lowercases(spec)


# ------------------------------------------------------------------ helpers
def _slug(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_") or "model"


def _hub_cache_info(ckpt: Path) -> tuple[str, str] | None:
    """(repo id, commit) when ``ckpt`` is a hub cache snapshot (models--org--name/snapshots/SHA)."""
    if ckpt.parent.name == "snapshots" and ckpt.parent.parent.name.startswith("models--"):
        return ckpt.parent.parent.name[len("models--"):].replace("--", "/"), ckpt.name
    return None


def _download(hf_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise BundleError(
            f"downloading {hf_id!r} needs huggingface_hub, which is not installed: "
            "`pip install 'corpus-nlp[hub]'`, or download the checkpoint on a machine with hub "
            "access and use `corpus-nlp prepare-model --from-dir CHECKPOINT`"
        ) from e
    try:
        path = Path(snapshot_download(hf_id, allow_patterns=HUB_PATTERNS))
        if not any(path.glob("*.safetensors")):
            path = Path(snapshot_download(hf_id, allow_patterns=HUB_PATTERNS + _TORCH_PATTERNS))
    except Exception as e:
        raise BundleError(
            f"cannot download {hf_id!r} from the Hugging Face hub ({type(e).__name__}: {e}): check the "
            "model id and network access, or download the checkpoint elsewhere "
            "(config.json, model.safetensors, vocab.txt, tokenizer files) and use "
            "`corpus-nlp prepare-model --from-dir CHECKPOINT`"
        ) from e
    return path


def quantize_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization (QInt8 weights, uint8 activations) of an ONNX file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_path),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=INT8_PER_CHANNEL,
        reduce_range=INT8_REDUCE_RANGE,
        extra_options={"MatMulConstBOnly": True},
    )


def prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BundleError(f"--out {out} exists and is not a directory: choose another path")
    out.mkdir(parents=True, exist_ok=True)
    from .bundle import _is_allowed  # same allow-list as the loader

    stray = [
        f.relative_to(out).as_posix() for f in out.rglob("*")
        if f.is_file() and not _is_allowed(f.relative_to(out).as_posix())
    ]
    if stray:
        raise BundleError(
            f"--out {out} already contains files that do not belong in a model bundle "
            f"({', '.join(sorted(stray)[:5])}): choose an empty or new directory"
        )


# --------------------------------------------------------------------- main
def prepare_model(
    out_dir: str | os.PathLike[str],
    *,
    from_dir: str | os.PathLike[str] | None = None,
    hf_id: str | None = None,
    precision: Literal["fp32", "int8", "int8-static", "fp16"] = "fp32",
    kind: Literal["demo", "real"] = "real",
    name: str | None = None,
    calibrate: str | os.PathLike[str] | None = None,
) -> ModelBundle:
    """Build a model bundle in ``out_dir`` from a local checkpoint or a hub id (exactly one).

    ``int8-static`` needs ``calibrate``: a Parquet corpus or a text file of the user's sentences
    (:mod:`pipelines.model.calibrate`)."""
    if (from_dir is None) == (hf_id is None):
        raise BundleError(
            "prepare-model needs exactly one source: --from-dir CHECKPOINT_DIR or --hf-id MODEL_ID"
        )
    if precision not in ("fp32", "int8", "int8-static", "fp16"):
        raise BundleError(f"precision {precision!r} is not supported: use 'fp32', 'int8' (CPU, dynamic), "
                          "'int8-static' (CPU, calibrated on --calibrate CORPUS) or 'fp16' (GPU)")
    if (precision == "int8-static") != (calibrate is not None):
        raise BundleError("--precision int8-static needs --calibrate CORPUS (a few hundred sentences of your text), "
                          "and --calibrate applies only to int8-static")
    if kind not in ("demo", "real"):
        raise BundleError(f"kind {kind!r} is not supported: use 'real' or 'demo'")
    out = Path(out_dir)
    prepare_out_dir(out)  # fail before the expensive part

    if hf_id is not None:
        ckpt = _download(hf_id)
        cache = _hub_cache_info(ckpt)
        source = f"huggingface:{hf_id}" + (f"@{cache[1]}" if cache else "")
    else:
        ckpt = Path(from_dir).expanduser().resolve()
        if not ckpt.is_dir():
            raise BundleError(
                f"checkpoint directory {ckpt} does not exist or is not a directory: pass the "
                "directory that holds config.json and the weights"
            )
        source = str(ckpt)

    cfg_path = ckpt / "config.json"
    if not cfg_path.is_file():
        raise BundleError(f"checkpoint {ckpt} has no config.json: copy the model's config.json there")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        head = classifier_head(config)  # None: an encoder, for embeddings
        shape = bert_shape_from_config(encoder_config(config, head))
    except json.JSONDecodeError as e:
        raise BundleError(f"{cfg_path} is not valid JSON ({e}): download it again") from e
    except ValueError as e:
        raise BundleError(f"checkpoint {ckpt}: {e}") from e

    tokenizer = load_checkpoint_tokenizer(ckpt)
    tok_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if tok_vocab > shape.vocab_size:
        raise BundleError(
            f"checkpoint {ckpt}: the tokenizer has {tok_vocab} tokens but the model only "
            f"{shape.vocab_size} embeddings: the tokenizer files belong to another model"
        )

    weights, weights_sha = load_checkpoint_weights(ckpt)
    try:
        # int8-static: standard ops only, so that the QDQ graph runs on OpenVINO too and every weight MatMul
        # (the attention's query/key/value included) is quantized
        fused = precision != "int8-static"
        model = (build_classifier_onnx(weights, config, head, fused=fused) if head
                 else build_bert_onnx(weights, config, fused=fused))
    except ValueError as e:
        raise BundleError(f"checkpoint {ckpt}: {e}") from e
    del weights

    cache = _hub_cache_info(ckpt)
    base_name = hf_id or config.get("_name_or_path") or (cache[0] if cache else ckpt.name)
    if kind == "demo":
        storage_ref = f"demo_bert_{weights_sha[:12]}"
    elif hf_id is not None:
        storage_ref = _slug(hf_id.split("/")[-1])
    else:
        storage_ref = f"{_slug(Path(str(base_name)).name)}_{weights_sha[:8]}"

    fields: dict[str, Any] = dict(
        name=name or str(base_name),
        kind=kind,
        storage_ref=storage_ref,
        source=source,
        dimension=shape.hidden_size,
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        vocab_size=shape.vocab_size,
        max_position_embeddings=shape.max_position_embeddings,
        case_sensitive=tokenizer_is_case_sensitive(tokenizer),
        precision=precision,
        notes=DEMO_NOTES if kind == "demo" else "",
    )
    if head is not None:
        fields.update(task=head.task, labels=list(head.labels), model_type=head.model_type)

    if precision == "fp32":
        return write_bundle(out, model, tokenizer, **fields)
    if precision == "fp16":
        # For ONNX Runtime's CUDA provider on GPU executors; inputs and output stay int64/float32.
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return write_bundle(out, convert_float_to_float16(model, keep_io_types=True), tokenizer, **fields)

    from .bundle import save_onnx

    if precision == "int8-static":
        from .calibrate import calibrate_int8_static

        with tempfile.TemporaryDirectory(prefix="corpus-nlp-int8-static-") as tmp:
            q = Path(tmp) / "int8-static.onnx"
            fields["calibration"] = calibrate_int8_static(model, tokenizer, q, Path(tmp), calibrate)
            return write_bundle(out, q, tokenizer, **fields)

    with tempfile.TemporaryDirectory(prefix="corpus-nlp-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        if len(save_onnx(model, fp32)) > 1:
            raise BundleError(
                f"{ckpt} is larger than 2 GB as an ONNX graph; int8 bundles of such models are not "
                "supported: use precision fp32"
            )
        del model
        q = Path(tmp) / "int8.onnx"
        try:
            quantize_int8(fp32, q)
        except Exception as e:
            raise BundleError(
                f"int8 quantization of {ckpt} failed ({type(e).__name__}: {e}): use precision fp32"
            ) from e
        return write_bundle(out, q, tokenizer, **fields)
