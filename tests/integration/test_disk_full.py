"""A lake on a disk that fills up during the run: one line naming the disk and what to do, and no manifest
left saying running (a real full file system: a small tmpfs, mounted for the test)."""

import json
import subprocess
import uuid

import pytest
from lake_helpers import job_config, write_corpus

from pipelines.errors import JobError
from pipelines.run.job import run_annotate

SENTENCE = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system. Mounting needs root, which CI's machines give; elsewhere the test is skipped."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()[:120]}): needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def corpus_of(root, documents: int):
    """Each sentence with its own number, so that no two vectors repeat (Parquet would store them once)."""
    rows = [(f"d{i}", " ".join(f"{SENTENCE.strip()} Nr. {i * 100 + j}." for j in range(40))) for i in range(documents)]
    return write_corpus(root, {"de": rows})


def test_a_full_disk_fails_the_run_in_one_line_and_the_manifest_says_so(spark, tmp_path, small_disk, demo_bundle):
    corpus = corpus_of(tmp_path / "corpus", 12)  # ~9,600 tokens: ~5 MB of vectors for a 1 MiB disk
    with pytest.raises(JobError) as failed:
        run_annotate(job_config(small_disk / "lake", corpus, demo_bundle.path), spark=spark)
    message = str(failed.value)
    assert "\n" not in message and "disk is full" in message and "output.path" in message
    manifests = list((small_disk / "lake" / "_runs").glob("*.json"))
    if not manifests:  # full before the run began (the output check's probe file): nothing to record
        assert message.startswith("the disk is full (No space left on device) at output path")
        return
    (manifest_file,) = manifests
    first = json.loads(manifest_file.read_text())
    if first["status"] == "running":  # no room left even for the manifest: the error says so instead
        assert "could not say so (" in message and "marks this run abandoned" in message
    else:
        assert (first["status"], first["reason"]) == ("failed", message)

    # Room again: the disk grows (deleting the failed write's files frees nothing while a JVM task that
    # aborted still holds them open, which on a busy machine it can). The next run goes ahead, and no
    # manifest says running.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    again = run_annotate(job_config(small_disk / "lake", corpus_of(tmp_path / "small", 1), demo_bundle.path),
                         spark=spark)
    statuses = {p.stem: json.loads(p.read_text())["status"] for p in (small_disk / "lake" / "_runs").glob("*.json")}
    assert statuses[again.run_id] == "committed"
    assert statuses[first["run_id"]] in ("failed", "abandoned")
