"""``train-ner`` configuration: YAML validated by pydantic models that forbid unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from pipelines.config import _Strict, load_yaml_config, validate


class NerBundleSettings(_Strict):
    bundle: str = Field("models/demo-bert", description="BertEmbeddings model bundle the tagger learns from")
    build_demo_if_missing: bool = True


class NerEmbeddingsSettings(_Strict):
    max_sentence_length: int = Field(128, ge=3, le=512, description="as the pipeline's BertEmbeddings")
    batch_size: int = Field(32, ge=1)
    pooling: Literal["first", "mean"] = "first"
    threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0: all cores")


class NerTrainingSettings(_Strict):
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-3, gt=0)
    lr_decay: float = Field(0.005, ge=0, description="lr / (1 + lr_decay * epoch), as NerDLApproach's po")
    dropout: float = Field(0.5, ge=0, lt=1)
    lstm_hidden: int = Field(100, ge=1)
    char_dim: int = Field(25, ge=1)
    char_filters: int = Field(30, ge=1)
    char_window: int = Field(3, ge=1)
    max_chars: int = Field(32, ge=1)
    min_char_count: int = Field(2, ge=1)
    patience: int | None = Field(None, ge=1, description="stop after this many epochs without dev gain")
    dev_fraction: float = Field(0.1, gt=0, lt=1, description="held out from train when there is no dev file")
    seed: int = 0
    torch_threads: int = Field(1, ge=1)


class TrainNerConfig(_Strict):
    train: str = "pipelines/resources/ner_sample/train.conll"
    dev: str | None = "pipelines/resources/ner_sample/dev.conll"
    test: str | None = None
    out: str = "models/demo-ner"
    retokenize: bool = Field(True, description="cut CoNLL tokens as the pipeline's Tokenizer does")
    model: NerBundleSettings = Field(default_factory=NerBundleSettings)
    embeddings: NerEmbeddingsSettings = Field(default_factory=NerEmbeddingsSettings)
    training: NerTrainingSettings = Field(default_factory=NerTrainingSettings)


def load_train_ner_config(path: str | Path, overrides: dict | None = None) -> TrainNerConfig:
    """Read and validate a train-ner YAML; ``overrides``: dotted keys, e.g. {"out": "models/ner"}."""
    return load_yaml_config(path, TrainNerConfig, overrides, example="conf/train_ner.yaml")


def parse_train_ner_config(raw: dict, source: str = "config") -> TrainNerConfig:
    return validate(raw, TrainNerConfig, source)
