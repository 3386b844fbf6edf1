"""Config: typed, strict, and errors that name the offending key."""

from pathlib import Path

import pytest

from pipelines.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid():
    config = load_config(ROOT / "conf" / "local.yaml")
    assert config.engine == "native"
    assert config.spark.master == "local[*]"
    assert config.input.id_col == "doc_id" and config.input.text_col == "text"


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'input\.txt_col' \(did you mean 'text_col'\?\)"):
        parse_config({"input": {"txt_col": "body"}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"'stages\.embeddings\.max_sentence_length'"):
        parse_config({"stages": {"embeddings": {"max_sentence_length": 4096}}})


def test_command_line_overrides_win(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("input:\n  path: a\noutput:\n  path: b\n")
    config = load_config(cfg, {"input.path": "x", "output.path": None, "model.bundle": "m"})
    assert (config.input.path, config.output.path, config.model.bundle) == ("x", "b", "m")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_sentence_detector_kind_and_its_options():
    from pipelines.config import ConfigError, parse_config

    assert parse_config({}).stages.sentence_detector.kind == "multilingual"
    sd = parse_config({"stages": {"sentence_detector": {"kind": "pragmatic", "custom_bounds": ["\n\n"],
                                                         "custom_bounds_strategy": "append"}}}).stages.sentence_detector
    assert (sd.kind, sd.custom_bounds, sd.custom_bounds_strategy) == ("pragmatic", ["\n\n"], "append")
    with pytest.raises(ConfigError, match="custom_bounds and use_custom_bounds_only need kind: pragmatic"):
        parse_config({"stages": {"sentence_detector": {"custom_bounds": [";"]}}})
    with pytest.raises(ConfigError, match="custom_bounds_strategy"):
        parse_config({"stages": {"sentence_detector": {"kind": "pragmatic", "custom_bounds_strategy": "both"}}})


def test_classifier_settings_and_what_they_cannot_be_combined_with():
    c = parse_config({"classify": {"model": "models/sentiment", "over": "sentence", "coalesce_sentences": True},
                      "output": {"embeddings": False}})
    assert (c.classify.over, c.classify.coalesce_sentences, c.output.embeddings) == ("sentence", True, False)
    assert parse_config({}).classify.model is None and parse_config({}).output.embeddings
    with pytest.raises(ConfigError, match="classify.model need engine: native"):
        parse_config({"engine": "sparknlp", "classify": {"model": "m"}})
    with pytest.raises(ConfigError, match="output.embeddings: false need engine: native"):
        parse_config({"engine": "sparknlp", "output": {"embeddings": False}})
    with pytest.raises(ConfigError, match="cannot be combined with output.annotations"):
        parse_config({"output": {"annotations": True}, "classify": {"model": "m"}})
    with pytest.raises(ConfigError, match="'classify.over'"):
        parse_config({"classify": {"over": "paragraph"}})
