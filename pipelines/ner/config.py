"""``train-ner`` configuration: YAML validated by pydantic models that forbid unknown keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipelines.config import DEMO, StrictModel, bundled_path, load_yaml_config, resolve_demo, validate


class NerBundleSettings(StrictModel):
    bundle: str = Field(DEMO, validate_default=True, description="BertEmbeddings model bundle the tagger learns "
                        "from; `demo`: the per-user demo model")
    build_demo_if_missing: bool = True

    @field_validator("bundle")
    @classmethod
    def demo_bundle_dir(cls, value):
        return resolve_demo(value, "bert")


class NerEmbeddingsSettings(StrictModel):
    max_sentence_length: int = Field(128, ge=3, le=512, description="as the pipeline's BertEmbeddings")
    batch_size: int = Field(32, ge=1)
    pooling: Literal["first", "mean"] = "first"
    threads: int = Field(0, ge=0, description="ONNX Runtime threads; 0: all cores")


class NerTrainingSettings(StrictModel):
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


class TrainNerConfig(StrictModel):
    # defaults: the NER sample inside the installed package, and the per-user demo NER directory
    train: str = Field(default_factory=lambda: bundled_path("ner_sample", "train.conll"))
    dev: str | None = Field(default_factory=lambda: bundled_path("ner_sample", "dev.conll"))
    test: str | None = None
    out: str = Field(DEMO, validate_default=True, description="NER_DIR to write; `demo`: the per-user demo NER dir")
    retokenize: bool = Field(True, description="cut CoNLL tokens as the pipeline's Tokenizer does")
    model: NerBundleSettings = Field(default_factory=NerBundleSettings)
    embeddings: NerEmbeddingsSettings = Field(default_factory=NerEmbeddingsSettings)
    training: NerTrainingSettings = Field(default_factory=NerTrainingSettings)

    @field_validator("out")
    @classmethod
    def demo_ner_dir(cls, value):
        return resolve_demo(value, "ner")


def load_train_ner_config(path: str | Path, overrides: dict | None = None) -> TrainNerConfig:
    """Read and validate a train-ner YAML; ``overrides``: dotted keys, e.g. {"out": "models/ner"}."""
    return load_yaml_config(path, TrainNerConfig, overrides, example="`corpus-nlp init --train-ner PATH` to write a starter config")


def parse_train_ner_config(raw: dict, source: str = "config") -> TrainNerConfig:
    return validate(raw, TrainNerConfig, source)
