"""Model bundles at Hadoop paths (here ``file:`` URIs, read through the session's Hadoop FileSystem like
``hdfs:``/``s3a:``): fetched and checked by every run, kept in the cache under the manifest's sha256 (and
healed there when damaged)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest

from pipelines.cache import cache_dir
from pipelines.store.model_paths import FETCHED_DIR, ModelFetchError, forget_fetched, local_dir
from pipelines.annotate.stages import BertEmbeddings


@pytest.fixture
def remote_bundle(tmp_path, demo_bundle):
    """A copy of the demo bundle (a new path: nothing fetched for it yet), as a file: URI."""
    copy = tmp_path / "remote" / "demo-bert"
    shutil.copytree(demo_bundle.path, copy)
    return copy


def test_a_bundle_at_a_uri_is_fetched_checked_and_used_like_a_local_one(spark, remote_bundle, demo_bundle):
    uri = remote_bundle.as_uri()
    stage = BertEmbeddings(modelPath=uri)._sync_with_bundle()
    fetched = stage.bundle().path
    key = fetched.name
    assert fetched.parent == cache_dir().joinpath(*FETCHED_DIR)
    assert (fetched / "manifest.json").read_bytes() == (remote_bundle / "manifest.json").read_bytes()
    listed = set(json.loads((remote_bundle / "manifest.json").read_text())["files"])
    assert {p.name for p in fetched.iterdir()} == listed | {"manifest.json"}  # checkpoint/ stays behind
    assert stage.getStorageRef() == demo_bundle.manifest.storage_ref and stage.getModelPath() == uri
    assert local_dir(uri) == fetched and fetched.name == key  # the same model: the same copy

    texts = spark.createDataFrame([("d1", "Angela Merkel besuchte Paris.")], ["doc_id", "text"])
    from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer

    def vectors(bundle_path):
        df = texts
        for s in (DocumentAssembler(inputCol="text"), SentenceDetector().setInputCols(["document"]).setOutputCol(
                "sentence"), Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
                  BertEmbeddings(modelPath=bundle_path)):
            df = s.transform(df)
        return [[list(a.embeddings) for a in row.embeddings] for row in df.select("embeddings").collect()]

    assert vectors(uri) == vectors(str(demo_bundle.path))


def _make_new_version(bundle: Path) -> None:
    """Another manifest (so another cache key): the fetch really reads the files."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["notes"] = f"copy {uuid.uuid4().hex}"
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_tampered_file_at_the_uri_is_refused_and_nothing_is_cached(spark, remote_bundle):
    _make_new_version(remote_bundle)
    (remote_bundle / "tokenizer.json").write_text((remote_bundle / "tokenizer.json").read_text().replace("[CLS]", "[XLS]"))
    before = set(cache_dir().joinpath(*FETCHED_DIR).glob("*"))
    with pytest.raises(ModelFetchError, match=r"tokenizer.json does not match the sha256 its manifest.json lists") as e:
        local_dir(remote_bundle.as_uri())
    assert set(cache_dir().joinpath(*FETCHED_DIR).glob("*")) == before
    assert_paths_exist(str(e.value))


def assert_paths_exist(message: str) -> None:
    """Every path an error names is one the user can go and look at."""
    named = re.findall(r"(?:file:)?/[^\s:,;()]+", message)
    assert named, message
    for path in named:
        assert Path(path.removeprefix("file:")).exists(), (path, message)


def test_a_damaged_cached_copy_is_replaced_by_a_fresh_checked_one(spark, remote_bundle):
    _make_new_version(remote_bundle)
    uri = remote_bundle.as_uri()
    cached = local_dir(uri)
    (cached / "tokenizer.json").write_text("{}")  # damaged on this disk (a full disk, a stray edit)
    (cached / "model.onnx").unlink()
    forget_fetched()  # as the next run starts
    healed = local_dir(uri)
    assert healed == cached
    for name in ("tokenizer.json", "model.onnx"):
        assert (healed / name).read_bytes() == (remote_bundle / name).read_bytes()
    assert not [p for p in healed.parent.iterdir() if p.name.startswith((".damaged-", ".fetch-"))]
    BertEmbeddings(modelPath=uri)._sync_with_bundle()  # and the stage takes it


def test_a_source_changed_under_an_unchanged_manifest_is_refused_by_the_next_run(spark, remote_bundle):
    _make_new_version(remote_bundle)
    uri = remote_bundle.as_uri()
    good = local_dir(uri)
    tokenizer = remote_bundle / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace("[CLS]", "[XLS]"))
    forget_fetched()
    with pytest.raises(ModelFetchError, match=rf"model {re.escape(uri)}: tokenizer.json does not match") as e:
        local_dir(uri)
    assert_paths_exist(str(e.value))
    assert (good / "tokenizer.json").read_text() != tokenizer.read_text()  # the good copy stays as it was


def test_a_uri_without_a_model_says_what_a_model_is(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFetchError, match=r"has no manifest.json or ner.json"):
        local_dir((tmp_path / "empty").as_uri())
    with pytest.raises(ModelFetchError, match=r"has no manifest.json or ner.json"):
        local_dir(Path(tmp_path / "missing").as_uri())
