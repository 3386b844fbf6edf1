"""Small seeded fine-tuned-classifier checkpoints, written by transformers + torch (tests only).

Random weights, but in exactly the layout ``save_pretrained`` gives a fine-tuned model: config.json
with ``architectures`` and ``id2label``, model.safetensors, and a cased WordPiece vocabulary trained
here on multilingual text (multilingual-cased semantics: no lowercasing, accents kept).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
SENTIMENT_LABELS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]

TEXTS = [
    "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland.",
    "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
    "Le président réside au palais de l'Élysée à Paris.",
    "¿Dónde está la estación? Mañana viajaré a Sevilla con María.",
    "Москва — столица России. Η Αθήνα είναι η πρωτεύουσα.",
    "John Smith works for Acme Corporation in New York.",
    "The food was terrible and the service was slow.",
    "What a wonderful film, I loved every minute of it!",
] * 3

# Weights are drawn wider than Hugging Face's 0.02 so that different texts get clearly different
# logits (with 0.02 every sequence's [CLS] scores are nearly the same, and argmax ties would be luck).
INIT_RANGE = 0.3
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 initializer_range=INIT_RANGE)
TINY_DISTILBERT = dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, initializer_range=INIT_RANGE)
# the four fine-tuned heads prepare-model converts, with the labels the tests give them
ARCHITECTURES = {
    "BertForTokenClassification": NER_LABELS,
    "DistilBertForTokenClassification": NER_LABELS,
    "BertForSequenceClassification": SENTIMENT_LABELS,
    "DistilBertForSequenceClassification": SENTIMENT_LABELS,
}


def wordpiece_tokenizer():
    from pipelines.model.checkpoint import train_wordpiece_tokenizer

    return train_wordpiece_tokenizer(TEXTS, vocab_size=600, cased=True)


def write_classifier_checkpoint(out: Path, architecture: str, labels: list[str], tokenizer, seed: int = 0,
                                max_position_embeddings: int = 128) -> Path:
    """A tiny one (2 layers of 32): ``architecture`` e.g. "BertForTokenClassification"."""
    from pipelines.model.checkpoint import write_random_classifier

    shape = TINY_DISTILBERT if architecture.startswith("DistilBert") else TINY_BERT
    return write_random_classifier(out, architecture, labels, tokenizer, seed=seed,
                                   max_position_embeddings=max_position_embeddings, **shape)


def hf_model(checkpoint: Path):
    import transformers

    config = json.loads((checkpoint / "config.json").read_text())
    return getattr(transformers, config["architectures"][0]).from_pretrained(str(checkpoint)).eval()


def hf_tokenizer(checkpoint: Path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(checkpoint))


def hf_word_logits(checkpoint: Path, words: list[str]):
    """Hugging Face's logits for pre-split ``words``: each word's first piece (token classification,
    ``(words, labels)``) or the sequence's (sequence classification, ``(labels,)``)."""
    import torch

    enc = _cached_tokenizer(str(checkpoint))(words, is_split_into_words=True, return_tensors="pt")
    model = _cached_model(str(checkpoint))
    feeds = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    if "DistilBert" in type(model).__name__:
        feeds.pop("token_type_ids", None)
    with torch.no_grad():
        logits = model(**feeds).logits[0].numpy()
    if logits.ndim == 1:
        return logits
    word_ids = enc.word_ids(0)
    return logits[[word_ids.index(w) for w in range(len(words))]]


@functools.lru_cache(maxsize=8)
def _cached_model(checkpoint: str):
    return hf_model(Path(checkpoint))


@functools.lru_cache(maxsize=8)
def _cached_tokenizer(checkpoint: str):
    return hf_tokenizer(Path(checkpoint))
