"""The pipeline fingerprint (what redoes a partition), partition signatures and the lake's predicates."""

from dataclasses import dataclass

import pytest

from pipelines.store import state
from pipelines.config import JobConfig, parse_config
from pipelines.store.lake import escape_path_name, partition_dir, partition_predicate
from pipelines.store.remote_files import is_inside


@dataclass(frozen=True)
class Model:
    storage_ref: str = "demo_bert_abc"
    precision: str = "fp32"
    dimension: int = 64


def _leaves(raw: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in raw.items():
        path = f"{prefix}{key}"
        out += _leaves(value, path + ".") if isinstance(value, dict) and value else [path]
    return out


def _covered(path: str, listed) -> bool:
    return any(path == f or path.startswith(f + ".") for f in listed)


def test_every_setting_is_either_in_the_fingerprint_or_left_out_on_purpose():
    """A new config key must be classified: does it change the output or not?"""
    for leaf in _leaves(JobConfig().model_dump(mode="json")):
        assert _covered(leaf, state.FINGERPRINT_FIELDS) != _covered(leaf, state.NOT_IN_FINGERPRINT), leaf


# One changed value per setting that changes the output (a value valid for that key).
CHANGES_OUTPUT = {
    "engine": "sparknlp",
    "input.id_col": "id", "input.text_col": "body", "input.language_col": "language",
    "stages.sentence_detector.max_length": 500, "stages.sentence_detector.kind": "pragmatic",
    "stages.tokenizer.exceptions": ["New York"], "stages.tokenizer.min_length": 2,
    "stages.embeddings.max_sentence_length": 64, "stages.embeddings.pooling": "mean",
    "output.embedding_dtype": "float16", "output.annotations": True,
    "policies.empty_text": "keep", "policies.duplicate_id": "fail", "policies.max_chars": 10,
    "policies.too_long": "quarantine", "policies.quarantine_text_max_chars": 5,
    "ner.include_confidence": False, "ner.white_list": ["PER"],
    "output.embeddings": False, "classify.over": "sentence", "classify.coalesce_sentences": True,
}
# And one per setting left out on purpose.
CHANGES_NOTHING = {
    "incremental": True, "full_refresh": True, "partitions": ["lang=de"], "deleted_partitions": "remove",
    "spark.master": "local[1]", "spark.arrow_batch_rows": 7, "spark.tasks_per_core": 1, "spark.conf": {"a": "b"},
    "input.path": "/elsewhere", "output.path": "/other-lake", "output.format": "parquet",
    "model.bundle": "/models/copy-of-the-same", "stages.embeddings.batch_size": 3,
    "stages.embeddings.max_batch_pieces": 99, "stages.embeddings.max_tokens_per_chunk": 100,
    "stages.embeddings.intra_op_threads": 1, "stages.embeddings.providers": ["CUDAExecutionProvider"],
    "policies.max_error_rows": 0, "ner.batch_size": 64, "ner.model": "/copy/of/the/same/ner",
    "classify.model": "/copy/of/the/same/classifier", "classify.batch_size": 3,
    # keys added later, set to their default: what lakes written before them hold
    "output.embeddings": True, "classify.over": "document", "stages.embeddings.precision": "bundle",
    "stages.embeddings.runtime": "openvino", "stages.embeddings.unsupported_precision": "fp32",
}


def _config_with(dotted: str, value) -> JobConfig:
    raw: dict = {}
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return parse_config(raw)


@pytest.mark.parametrize("dotted", sorted(CHANGES_OUTPUT))
def test_a_setting_that_changes_the_output_changes_the_fingerprint(dotted):
    assert state.fingerprint(_config_with(dotted, CHANGES_OUTPUT[dotted]), Model()) != \
        state.fingerprint(JobConfig(), Model())


@pytest.mark.parametrize("dotted", sorted(CHANGES_NOTHING))
def test_a_setting_left_out_on_purpose_keeps_the_fingerprint(dotted):
    assert state.fingerprint(_config_with(dotted, CHANGES_NOTHING[dotted]), Model()) == \
        state.fingerprint(JobConfig(), Model())


def test_bf16_arithmetic_changes_the_fingerprint():
    openvino = {"stages": {"embeddings": {"runtime": "openvino"}}}
    bf16 = {"stages": {"embeddings": {"runtime": "openvino", "precision": "bf16"}}}
    assert state.fingerprint(parse_config(bf16), Model()) != state.fingerprint(parse_config(openvino), Model())


def test_the_model_and_the_ner_model_count_by_what_they_are():
    base = state.fingerprint(JobConfig(), Model())
    assert state.fingerprint(JobConfig(), Model(storage_ref="other")) != base
    assert state.fingerprint(JobConfig(), Model(precision="int8")) != base
    ner = {"storage_ref": "demo_bert_abc", "tags": ["O", "B-PER"], "path": "/a"}
    assert state.fingerprint(JobConfig(), Model(), ner) != base
    assert state.fingerprint(JobConfig(), Model(), {**ner, "path": "/b"}) == state.fingerprint(JobConfig(), Model(), ner)
    assert state.fingerprint(JobConfig(), Model(), {**ner, "tags": ["O"]}) != state.fingerprint(JobConfig(), Model(), ner)


def test_the_sequence_classifier_counts_by_storage_ref_precision_and_labels():
    classifier = {"storage_ref": "sentiment_abc", "precision": "fp32", "labels": ["neg", "pos"], "path": "/a"}
    with_it = state.fingerprint(JobConfig(), Model(), None, classifier)
    assert with_it != state.fingerprint(JobConfig(), Model())
    for key, other in (("storage_ref", "sentiment_def"), ("precision", "int8"), ("labels", ["pos", "neg"])):
        assert state.fingerprint(JobConfig(), Model(), None, {**classifier, key: other}) != with_it, key
    assert state.fingerprint(JobConfig(), Model(), None, {**classifier, "path": "/b"}) == with_it
    # no embeddings model (output.embeddings: false)
    assert state.fingerprint(JobConfig(), None, None, classifier) != with_it


def test_partition_signature_sees_size_and_time_not_only_names():
    files = {"/c/lang=de/p.parquet": (100, 1), "/c/lang=fr/p.parquet": (50, 1)}
    before = {p.spec: p.signature for p in state.input_partitions(files, "/c", ["lang"])}
    after = {p.spec: p.signature for p in state.input_partitions({**files, "/c/lang=de/p.parquet": (100, 2)}, "/c",
                                                                 ["lang"])}
    assert before["lang=fr"] == after["lang=fr"] and before["lang=de"] != after["lang=de"]


def test_partition_values_are_unescaped_and_null_named_like_spark():
    files = {"file:/c/src=a%3Ab/hour=01/p.parquet": (1, 1), "file:/c/src=__HIVE_DEFAULT_PARTITION__/hour=02/p.parquet": (1, 1)}
    values = [p.values for p in state.input_partitions(files, "/c", ["src", "hour"])]
    assert sorted(values, key=str) == sorted([(("src", "a:b"), ("hour", "01")), (("src", None), ("hour", "02"))], key=str)
    assert partition_dir((("src", "a:b"), ("hour", "01"))) == "src=a%3Ab/hour=01"
    assert partition_dir((("src", None),)) == "src=__HIVE_DEFAULT_PARTITION__"
    assert escape_path_name("a/b=c d") == "a%2Fb%3Dc d"


def test_predicates_select_exactly_the_partitions():
    p = state.Partition
    one = partition_predicate(["lang"], [p((("lang", "de"),), ""), p((("lang", None),), ""), p((("lang", "o'k"),), "")])
    assert one == "`lang` IN ('de', 'o\\'k') OR `lang` IS NULL"
    two = partition_predicate(["a", "b"], [p((("a", "1"), ("b", None)), "")])
    assert two == "(`a` = '1' AND `b` IS NULL)"
    assert partition_predicate([], []) == "true"


def test_pending_needs_one_committed_run_of_this_pipeline_over_these_files():
    part = state.Partition((("lang", "de"),), "sig1")
    run = {"run_id": "r1", "status": "committed", "fingerprint": "fp",
           "input": {"annotated_partitions": [{"values": {"lang": "de"}, "signature": "sig1"}]}}
    assert state.pending([part], {part.key: {"r1"}}, [run], "fp") == []
    assert state.pending([part], {part.key: {"r1", "r2"}}, [run], "fp") == [part]  # rows of two runs
    assert state.pending([part], {part.key: {"r1"}}, [{**run, "status": "running"}], "fp") == [part]
    assert state.pending([part], {part.key: {"r1"}}, [run], "other") == [part]
    assert state.pending([state.Partition(part.values, "sig2")], {part.key: {"r1"}}, [run], "fp") != []
    assert state.pending([part], {}, [run], "fp") == [part]  # the lake holds nothing there


def test_inside_paths():
    assert is_inside("/data/corpus/lake", "/data/corpus")
    assert not is_inside("/data/corpus-lake", "/data/corpus")
    assert not is_inside("s3a://bucket/lake", "/data")
