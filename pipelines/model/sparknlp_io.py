"""One model for both engines: a bundle as Spark NLP imports it, and a saved Spark NLP model as a bundle.

Spark NLP 5.5.3 (``BertEmbeddings.loadSavedModel(folder, spark)``, read from the jar) takes a folder
with ``model.onnx`` and ``assets/vocab.txt`` (one WordPiece per line, line number = id). It feeds the
graph ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64 ``[batch, seq]``, padding id 0)
and reads ``last_hidden_state``: the I/O of our bundles (``pipelines.model.onnx_bert``), so the bundle's
graph is used as it is, with one exception: Spark NLP warms every BERT session up with fixed ids of
bert-base-uncased's vocabulary (up to 28,937), which a smaller vocabulary (the demo model's 8,000)
cannot look up. For such a vocabulary the exported graph clamps the ids to the vocabulary first: a
no-op for every id Spark NLP's own tokenizer produces.

What ``.write().save(dir)`` writes, and :func:`bundle_from_sparknlp` reads back: ``metadata/`` (the
params as JSON), ``bert_onnx`` (a zip holding the ONNX file) and ``fields/vocabulary/`` (a Hadoop
SequenceFile of Java-serialized pairs, parsed by ``pipelines.model.java_serialized``, never
deserialized).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .bundle import DEMO_NOTES, ONNX_FILE, BundleError, ModelBundle, write_bundle
from .checkpoint import bert_tokenizer_pipeline, set_bert_post_processor, vocab_in_id_order
from .java_serialized import SerializedDataError, read_vocabulary
from .onnx_bert import INPUT_NAMES, OUTPUT_NAME

# Spark NLP 5.5.3's com.johnsnowlabs.ml.ai.Bert.sessionWarmup feeds these ids on every load.
SPARKNLP_WARMUP_MAX_ID = 28937
ASSETS_DIR = "assets"
VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.txt"  # classifiers: one label per line, line number = class id
CLAMPED_IDS = "input_ids_within_vocabulary"

SAVED_CLASS = "com.johnsnowlabs.nlp.embeddings.BertEmbeddings"
SAVED_ONNX = "bert_onnx"
_OTHER_ENGINES = {"bert_tensorflow": "TensorFlow", "bert_openvino": "OpenVINO"}


# --- bundle -> Spark NLP -------------------------------------------------------------------------
def export_for_sparknlp(bundle: ModelBundle, folder: str | os.PathLike[str]) -> Path:
    """Write ``folder/model.onnx`` and ``folder/assets/vocab.txt`` (+ ``assets/labels.txt`` for a classifier):
    what ``loadSavedModel`` imports.

    Written next to, never into, the bundle (a bundle holds only its own files). The folder is
    replaced as a whole, so a reader never sees half of it.
    """
    import onnx

    target = Path(folder)
    if target.resolve() == bundle.path.resolve() or bundle.path.resolve() in target.resolve().parents:
        raise BundleError(f"export folder {target} is inside the bundle {bundle.path}: choose a folder outside it")
    if (bundle.path / "model.onnx.data").exists():
        raise BundleError(f"bundle {bundle.path} keeps its weights in model.onnx.data (a graph over 2 GB), which "
                          "Spark NLP's ONNX import does not read: export a model under 2 GB")
    vocab = vocab_in_id_order(bundle.load_tokenizer())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (staging / ASSETS_DIR).mkdir()
        (staging / ASSETS_DIR / VOCAB_FILE).write_text("".join(f"{t}\n" for t in vocab), encoding="utf-8")
        if bundle.manifest.is_classifier:  # *ForTokenClassification / *ForSequenceClassification.loadSavedModel
            labels = "".join(f"{label}\n" for label in bundle.manifest.labels)
            (staging / ASSETS_DIR / LABELS_FILE).write_text(labels, encoding="utf-8")
        if bundle.manifest.vocab_size <= SPARKNLP_WARMUP_MAX_ID:
            model = onnx.load(str(bundle.onnx_path))
            clamp_input_ids(model, bundle.manifest.vocab_size - 1)
            onnx.save(model, str(staging / ONNX_FILE))
        else:
            shutil.copyfile(bundle.onnx_path, staging / ONNX_FILE)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def clamp_input_ids(model, max_id: int) -> None:
    """Feed the graph ``min(input_ids, max_id)`` instead of ``input_ids`` (in place)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    if any(node.name == "clamp_input_ids" for node in graph.node):  # a graph that came from Spark NLP
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == INPUT_NAMES[0]:
                node.input[i] = CLAMPED_IDS
    graph.initializer.append(numpy_helper.from_array(np.array(max_id, dtype=np.int64), "max_input_id"))
    graph.node.insert(0, helper.make_node("Min", [INPUT_NAMES[0], "max_input_id"], [CLAMPED_IDS],
                                          name="clamp_input_ids"))


# --- Spark NLP -> bundle -------------------------------------------------------------------------
def _saved_file_allowed(rel: str) -> bool:
    parts = rel.split("/")
    name = parts[-1]
    bookkeeping = name == "_SUCCESS" or (name.startswith(".") and name.endswith(".crc"))
    if parts[0] == "metadata" and len(parts) == 2:
        return bookkeeping or name.startswith("part-")
    if parts[:2] == ["fields", "vocabulary"] and len(parts) == 3:
        return bookkeeping or name.startswith("part-")
    return rel in (SAVED_ONNX, f".{SAVED_ONNX}.crc") or rel in ("fields", "fields/vocabulary", "metadata")


def _read_metadata(saved: Path) -> dict[str, Any]:
    parts = sorted((saved / "metadata").glob("part-*"))
    if not parts:
        raise BundleError(f"{saved} has no metadata/part-* file: it is not a saved Spark NLP model (pass the "
                          "folder that `.write().save(dir)` wrote)")
    try:
        meta = json.loads(parts[0].read_text(encoding="utf-8").splitlines()[0])
    except (UnicodeDecodeError, json.JSONDecodeError, IndexError) as e:
        raise BundleError(f"{parts[0]} is not the JSON Spark NLP writes ({e}): save the model again") from e
    if meta.get("class") != SAVED_CLASS:
        raise BundleError(f"{saved} holds a {meta.get('class')}, not a {SAVED_CLASS}: only BertEmbeddings "
                          "models can become a bundle")
    return {**meta.get("defaultParamMap", {}), **meta.get("paramMap", {})}


def _read_onnx_bytes(saved: Path) -> bytes:
    archive = saved / SAVED_ONNX
    if not archive.is_file():
        raise BundleError(f"{saved} has no {SAVED_ONNX} file: save the model again with Spark NLP 5.x from an "
                          "ONNX model (BertEmbeddings.loadSavedModel of an ONNX export)")
    try:
        with zipfile.ZipFile(archive) as z:
            entries = [i for i in z.infolist() if not i.is_dir()]
            if len(entries) != 1 or not entries[0].filename.endswith(".onnx"):
                raise BundleError(f"{archive} holds {[i.filename for i in entries]}, not one .onnx file (external "
                                  "weights are not supported): export a model under 2 GB")
            return z.read(entries[0])
    except zipfile.BadZipFile as e:
        raise BundleError(f"{archive} is not a zip archive ({e}): save the model again") from e


def _architecture(model) -> dict[str, Any]:
    """Shape numbers read off the graph (manifest fields); 0 where the graph does not tell."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    ids = {INPUT_NAMES[0], CLAMPED_IDS}
    word = next((inits[n.input[0]] for n in model.graph.node
                 if n.op_type == "Gather" and n.input[1] in ids and n.input[0] in inits), None)
    if word is None or len(word.dims) != 2:
        raise BundleError("the ONNX graph has no word-embedding lookup on input_ids (a Gather of a 2-D table): "
                          "it is not a BERT encoder")
    vocab, hidden = (int(d) for d in word.dims)
    positions = [i for name, i in inits.items() if "position" in name and len(i.dims) == 2 and i.dims[1] == hidden]
    widths = {int(i.dims[1]) for i in inits.values() if len(i.dims) == 2 and i.dims[0] == hidden}
    attention = [n for n in model.graph.node if n.op_type in ("Attention", "MultiHeadAttention")]
    heads = [a.i for n in attention for a in n.attribute if a.name == "num_heads"]
    ops = {n.op_type for n in model.graph.node}
    precision = "int8" if ops & {"MatMulInteger", "DynamicQuantizeLinear", "QAttention"} else \
        "fp16" if numpy_helper.to_array(word).dtype.name == "float16" else "fp32"
    return dict(
        vocab_size=vocab, dimension=hidden,
        max_position_embeddings=int(positions[0].dims[0]) if positions else 0,
        num_layers=len(attention) or sum(n.op_type == "Softmax" for n in model.graph.node),
        num_heads=heads[0] if heads else 0,
        intermediate_size=max(widths - {hidden, 3 * hidden}, default=0),
        precision=precision,
    )


def _check_io(model, source: Path) -> None:
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    if not set(INPUT_NAMES) <= inputs or OUTPUT_NAME not in outputs:
        raise BundleError(f"the ONNX graph in {source} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; a "
                          f"bundle needs inputs {list(INPUT_NAMES)} and output {OUTPUT_NAME!r} (a BERT encoder "
                          "export such as Hugging Face Optimum's)")


def _tokenizer(vocabulary: dict[str, int], case_sensitive: bool, source: Path):
    from tokenizers import models

    if sorted(vocabulary.values()) != list(range(len(vocabulary))):
        raise BundleError(f"the vocabulary in {source} does not number its tokens 0..{len(vocabulary) - 1}: save "
                          "the model again")
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]") if t not in vocabulary]
    if missing:
        raise BundleError(f"the vocabulary in {source} lacks {', '.join(missing)}: it is not a BERT WordPiece vocabulary")
    # Spark NLP lowercases (and so strips accents, as BERT's uncased tokenizer does) only when not case sensitive.
    tok = bert_tokenizer_pipeline(
        models.WordPiece(vocab=vocabulary, unk_token="[UNK]", continuing_subword_prefix="##",
                         max_input_chars_per_word=100),
        lowercase=not case_sensitive, strip_accents=None)
    tok.add_special_tokens([t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocabulary])
    set_bert_post_processor(tok)
    return tok


def bundle_from_sparknlp(saved_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                         name: str | None = None) -> ModelBundle:
    """Turn a saved Spark NLP ``BertEmbeddings`` (ONNX engine) into a verified bundle in ``out_dir``."""
    import onnx

    from .prepare import prepare_out_dir

    saved = Path(saved_dir).expanduser().resolve()
    if not saved.is_dir():
        raise BundleError(f"{saved} does not exist or is not a directory: pass the folder that Spark NLP's "
                          "`.write().save(dir)` wrote")
    for engine_file, engine in _OTHER_ENGINES.items():
        if (saved / engine_file).exists():
            raise BundleError(f"{saved} was saved with Spark NLP's {engine} engine ({engine_file}); only ONNX models "
                              "can become a bundle: import an ONNX export into Spark NLP and save that")
    for f in sorted(saved.rglob("*")):
        rel = f.relative_to(saved).as_posix()
        if f.is_symlink() or not _saved_file_allowed(rel):
            raise BundleError(f"{saved} contains {rel!r}, which a saved Spark NLP BertEmbeddings does not hold "
                              "(metadata/, fields/vocabulary/, bert_onnx): remove it, or save the model again")
    params = _read_metadata(saved)
    if params.get("engine") != "onnx":
        raise BundleError(f"{saved} was saved with engine {params.get('engine')!r}; only 'onnx' models can become "
                          "a bundle: import an ONNX export into Spark NLP and save that")
    out = Path(out_dir)
    prepare_out_dir(out)
    raw = _read_onnx_bytes(saved)
    try:
        model = onnx.load_from_string(raw)
    except Exception as e:  # protobuf's DecodeError
        raise BundleError(f"{saved / SAVED_ONNX} does not hold a readable ONNX graph ({e}): save the model again") from e
    _check_io(model, saved)
    shape = _architecture(model)
    try:
        vocabulary = read_vocabulary(saved / "fields" / "vocabulary")
    except (SerializedDataError, OSError, UnicodeDecodeError) as e:
        raise BundleError(f"cannot read the vocabulary in {saved / 'fields' / 'vocabulary'}: {e}") from e
    case_sensitive = bool(params.get("caseSensitive", False))
    tokenizer = _tokenizer(vocabulary, case_sensitive, saved)
    if len(vocabulary) > shape["vocab_size"]:
        raise BundleError(f"{saved}: the vocabulary has {len(vocabulary)} tokens but the graph only "
                          f"{shape['vocab_size']} embeddings: the two belong to different models")
    storage_ref = str(params.get("storageRef") or params.get("uid") or saved.name)
    kind = "demo" if storage_ref.startswith("demo_bert_") else "real"  # our demo model keeps its ref through Spark NLP
    with tempfile.TemporaryDirectory(prefix="corpus-nlp-from-sparknlp-") as tmp:
        onnx_path = Path(tmp) / ONNX_FILE
        onnx_path.write_bytes(raw)
        return write_bundle(
            out, onnx_path, tokenizer, name=name or storage_ref, kind=kind, storage_ref=storage_ref,
            source=f"sparknlp:{saved}", case_sensitive=case_sensitive,
            **shape,
            notes=DEMO_NOTES if kind == "demo" else "")
