"""``train-ner`` configuration: YAML validated by pydantic models that forbid unknown keys."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.config import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (try conf/train_ner.yaml)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_train_ner_config(raw, source=str(path))


def parse_train_ner_config(raw: dict, source: str = "config") -> TrainNerConfig:
    try:
        return TrainNerConfig.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{where}'{_suggestion(err['loc'])}")
            else:
                problems.append(f"'{where}': {err['msg']}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _suggestion(loc: tuple) -> str:
    model: type[BaseModel] = TrainNerConfig
    for key in loc[:-1]:
        field = model.model_fields.get(str(key))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
