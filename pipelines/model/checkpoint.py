"""Train a BERT WordPiece vocabulary and write random-weight Hugging Face BERT checkpoints.

Used for the demo model and for tests/benchmarks: we cannot download real
weights, so we build checkpoints in exactly the layout the hub uses
(config.json, model.safetensors, vocab.txt, tokenizer.json, ...), which both
``transformers`` and our own ``prepare_model`` load. No torch needed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNK, CLS, SEP, PAD, MASK = "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"


def bert_tokenizer_pipeline(
    model: models.Model,
    *,
    lowercase: bool,
    strip_accents: bool | None,
    handle_chinese_chars: bool = True,
) -> Tokenizer:
    """A ``Tokenizer`` with the BERT normalizer/pre-tokenizer/decoder around ``model``."""
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=handle_chinese_chars,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def set_bert_post_processor(tok: Tokenizer) -> None:
    """``[CLS] $A [SEP]`` / ``[CLS] $A [SEP] $B [SEP]`` with the vocab's ids."""
    cls_id, sep_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    if cls_id is None or sep_id is None:
        raise ValueError("the vocabulary has no [CLS]/[SEP] token: it is not a BERT vocabulary")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, cased: bool = True
) -> Tokenizer:
    """Train a BERT-style WordPiece tokenizer (deterministic for the same texts).

    Special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` get ids 0..4; every character
    seen in ``texts`` is in the alphabet, both word-initial and as ``##c``.
    ``cased=True`` keeps case and accents (bert-base-multilingual-cased semantics);
    CJK characters are always split.

    Determinism: tokenizers' WordPieceTrainer creates the ``##c`` pieces lazily in
    hash-map order, so their ids -- and with them the merge tie-breaks -- change from
    process to process (huggingface/tokenizers#1794). We therefore pre-register every
    ``##c`` piece, sorted, before training, then rebuild the tokenizer from the learned
    vocabulary so that only the five real special tokens are special.
    """
    corpus = [t for t in texts if t]
    lowercase = not cased
    strip_accents = False if cased else None

    def pipeline(model: models.Model) -> Tokenizer:
        return bert_tokenizer_pipeline(model, lowercase=lowercase, strip_accents=strip_accents)

    probe = pipeline(models.WordPiece(unk_token=UNK))
    chars: set[str] = set()
    for t in corpus:
        for word, _ in probe.pre_tokenizer.pre_tokenize_str(probe.normalizer.normalize_str(t)):
            chars.update(word)
    continuing = [f"##{c}" for c in sorted(chars)]

    tok = pipeline(models.WordPiece(unk_token=UNK, continuing_subword_prefix="##", max_input_chars_per_word=100))
    trainer = trainers.WordPieceTrainer(
        vocab_size=max(vocab_size, len(SPECIAL_TOKENS) + 2 * len(chars)),
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS) + continuing,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)

    vocab = tok.get_vocab(with_added_tokens=False)
    out = pipeline(models.WordPiece(vocab=vocab, unk_token=UNK, continuing_subword_prefix="##",
                                    max_input_chars_per_word=100))
    out.add_special_tokens(list(SPECIAL_TOKENS))
    set_bert_post_processor(out)
    out.no_truncation()
    out.no_padding()
    return out


def vocab_in_id_order(tok: Tokenizer) -> list[str]:
    """The vocabulary as a list indexed by id (ids must be contiguous)."""
    vocab = tok.get_vocab(with_added_tokens=True)
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ValueError("tokenizer vocabulary ids are not contiguous 0..N-1")
    return [t for t, _ in by_id]


def _random_bert_weights(
    *,
    vocab_size: int,
    num_layers: int,
    hidden_size: int,
    intermediate_size: int,
    max_position_embeddings: int,
    type_vocab_size: int,
    seed: int,
    pad_token_id: int = 0,
    vocab_digest: int | None = None,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed if vocab_digest is None else [seed, vocab_digest])
    H, I = hidden_size, intermediate_size

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def ones(*shape: int) -> np.ndarray:
        return np.ones(shape, dtype=np.float32)

    word = normal(vocab_size, H)
    word[pad_token_id] = 0.0  # nn.Embedding(padding_idx=pad_token_id) init, as in HF
    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": normal(max_position_embeddings, H),
        "embeddings.token_type_embeddings.weight": normal(type_vocab_size, H),
        "embeddings.LayerNorm.weight": ones(H),
        "embeddings.LayerNorm.bias": zeros(H),
    }
    for i in range(num_layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            w[p + f"attention.self.{n}.weight"] = normal(H, H)
            w[p + f"attention.self.{n}.bias"] = zeros(H)
        w[p + "attention.output.dense.weight"] = normal(H, H)
        w[p + "attention.output.dense.bias"] = zeros(H)
        w[p + "attention.output.LayerNorm.weight"] = ones(H)
        w[p + "attention.output.LayerNorm.bias"] = zeros(H)
        w[p + "intermediate.dense.weight"] = normal(I, H)
        w[p + "intermediate.dense.bias"] = zeros(I)
        w[p + "output.dense.weight"] = normal(H, I)
        w[p + "output.dense.bias"] = zeros(H)
        w[p + "output.LayerNorm.weight"] = ones(H)
        w[p + "output.LayerNorm.bias"] = zeros(H)
    w["pooler.dense.weight"] = normal(H, H)
    w["pooler.dense.bias"] = zeros(H)
    return w


def _normalizer_settings(tok: Tokenizer) -> dict:
    spec = json.loads(tok.to_str()).get("normalizer") or {}
    if spec.get("type") == "BertNormalizer":
        return spec
    return {"lowercase": False, "strip_accents": None, "handle_chinese_chars": True}


def write_random_checkpoint(
    out_dir: str | Path,
    tokenizer: Tokenizer,
    *,
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    intermediate_size: int,
    max_position_embeddings: int = 512,
    type_vocab_size: int = 2,
    seed: int = 0,
    name: str = "demo-bert",
) -> Path:
    """Write a random-weight Hugging Face ``BertModel`` checkpoint to ``out_dir``.

    Files: config.json, model.safetensors (HF names, N(0, 0.02) init, LayerNorm 1/0,
    pooler included; the random stream is seeded with ``seed`` *and* a hash of the
    vocabulary, so the weights -- and the storage_ref derived from their hash --
    differ whenever the vocabulary does), vocab.txt, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json. Loadable by ``transformers`` ``BertModel`` /
    ``AutoTokenizer.from_pretrained``. Returns ``out_dir``.
    """
    from safetensors.numpy import save_file

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = vocab_in_id_order(tokenizer)
    for t in SPECIAL_TOKENS:
        if tokenizer.token_to_id(t) is None:
            raise ValueError(f"tokenizer has no {t} token: train it with train_wordpiece_tokenizer")
    pad_id = tokenizer.token_to_id(PAD)

    weights = _random_bert_weights(
        vocab_size=len(vocab),
        num_layers=num_layers,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=type_vocab_size,
        seed=seed,
        pad_token_id=pad_id,
        vocab_digest=int.from_bytes(hashlib.sha256("\n".join(vocab).encode("utf-8")).digest()[:8], "big"),
    )
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)

    config = {
        "_name_or_path": name,
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": intermediate_size,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": max_position_embeddings,
        "model_type": "bert",
        "num_attention_heads": num_heads,
        "num_hidden_layers": num_layers,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "type_vocab_size": type_vocab_size,
        "use_cache": True,
        "vocab_size": len(vocab),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tokenizer.save(str(out / "tokenizer.json"))

    norm = _normalizer_settings(tokenizer)
    lowercase = bool(norm.get("lowercase", False))
    strip = norm.get("strip_accents")
    tok_config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": lowercase,
        "strip_accents": None if strip is None or (strip is False and not lowercase) else strip,
        "tokenize_chinese_chars": bool(norm.get("handle_chinese_chars", True)),
        "do_basic_tokenize": True,
        "never_split": None,
        "model_max_length": max_position_embeddings,
        "clean_up_tokenization_spaces": False,
        "unk_token": UNK,
        "sep_token": SEP,
        "pad_token": PAD,
        "cls_token": CLS,
        "mask_token": MASK,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")
    special = {"unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS, "mask_token": MASK}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return out


def write_random_classifier(out: str | Path, architecture: str, labels: list[str], tokenizer: Tokenizer, *,
                            seed: int = 0, max_position_embeddings: int = 512, **shape) -> Path:
    """A seeded random-weight fine-tuned classifier, in the layout ``save_pretrained`` gives one (config.json
    with ``architectures`` and ``id2label``, model.safetensors, a cased vocabulary): the stand-in for a user's
    fine-tuned checkpoint in the tests and benchmarks. ``architecture``: e.g. "BertForTokenClassification"
    or "DistilBertForSequenceClassification"; ``shape``: the transformers config's size arguments
    (``hidden_size``... for BERT, ``dim``... for DistilBERT). Needs the torch extra."""
    import torch
    import transformers

    out = Path(out)
    vocab = vocab_in_id_order(tokenizer)
    id2label = dict(enumerate(labels))
    common = dict(vocab_size=len(vocab), max_position_embeddings=max_position_embeddings, id2label=id2label,
                  label2id={v: k for k, v in id2label.items()}, pad_token_id=tokenizer.token_to_id("[PAD]"))
    kind = transformers.DistilBertConfig if architecture.startswith("DistilBert") else transformers.BertConfig
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(kind(**common, **shape)).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": False, "strip_accents": None,
        "tokenize_chinese_chars": True, "model_max_length": max_position_embeddings}), encoding="utf-8")
    return out
