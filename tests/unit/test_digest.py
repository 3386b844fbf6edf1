"""The digest cache: a large model file is hashed once per file identity, and any change is seen."""

import hashlib
import json
import os

import pytest

from pipelines.model.digest import CACHE_FILE, MIN_CACHED_BYTES, cached_sha256


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("CORPUS_NLP_CACHE_DIR", str(directory))
    return directory / CACHE_FILE


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(os.urandom(MIN_CACHED_BYTES + 1))
    return path


def entries(cache):
    return json.loads(cache.read_text())


def test_digest_is_remembered_and_then_used(cache, big_file):
    expected = hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert cached_sha256(big_file) == expected
    entry = entries(cache)[str(big_file.resolve())]
    assert entry["sha256"] == expected
    # The remembered digest is what a second call returns: plant a different one under the same identity.
    cache.write_text(json.dumps({str(big_file.resolve()): {**entry, "sha256": "0" * 64}}))
    assert cached_sha256(big_file) == "0" * 64


def test_a_change_in_place_with_the_old_size_and_mtime_is_hashed_again(cache, big_file):
    first = cached_sha256(big_file)
    st = big_file.stat()
    with open(big_file, "r+b") as f:  # same size, one byte flipped
        byte = f.read(1)
        f.seek(0)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(big_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime cannot be
    second = cached_sha256(big_file)
    assert second != first
    assert second == hashlib.sha256(big_file.read_bytes()).hexdigest()


def test_small_files_are_not_cached(cache, tmp_path):
    small = tmp_path / "tokenizer.json"
    small.write_text("{}")
    assert cached_sha256(small) == hashlib.sha256(b"{}").hexdigest()
    assert not cache.exists()


def test_an_unwritable_cache_only_costs_the_hashing(tmp_path, monkeypatch, big_file):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("CORPUS_NLP_CACHE_DIR", str(blocker / "sub"))
    assert cached_sha256(big_file) == hashlib.sha256(big_file.read_bytes()).hexdigest()
