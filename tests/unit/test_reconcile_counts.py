"""The run's last check: every input row, and every classified document or sentence, is in the lake once.

``check_accounted`` reads only the counts read back from the lake, the config and the run manifest (where it
records the counts it refuses); those are real objects here, the plan being just what holds them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipelines.config import JobConfig, parse_config
from pipelines.errors import JobError
from pipelines.store.lake import RunManifest
from pipelines.run.reconcile import check_accounted, zero_counts


@dataclass
class Plan:
    config: JobConfig
    manifest: RunManifest


def _plan(tmp_path, **classify) -> Plan:
    config = parse_config({"output": {"path": str(tmp_path / "lake")},
                           "classify": {"model": str(tmp_path / "bundle"), **classify}})
    return Plan(config, RunManifest(spark=None, root=str(tmp_path / "lake"), run_id="run-1", body={}))


def _counts(rows: int, classifications: int, expected: int) -> dict:
    return {**zero_counts(), "input_rows": rows, "annotated_rows": rows, "rows_with_tokens": rows,
            "classifications": classifications, "classifications_expected": expected}


def test_every_row_and_classification_in_place_passes(tmp_path):
    plan = _plan(tmp_path)
    check_accounted(plan, _counts(rows=3, classifications=3, expected=3))
    assert "counts" not in plan.manifest.body


@pytest.mark.parametrize("found, classify, message", [
    (2, {}, "classifications lost: 3 documents with tokens but 2 classifications in the lake"),
    (4, {}, "classifications doubled: 3 documents with tokens but 4 classifications in the lake"),
    (2, {"over": "sentence"}, "classifications lost: 3 sentences with tokens but 2 classifications"),
    (2, {"over": "sentence", "coalesce_sentences": True}, "classifications lost: 3 documents with tokens"),
])
def test_a_lost_or_doubled_classification_fails_the_run_with_the_counts_recorded(tmp_path, found, classify, message):
    plan = _plan(tmp_path, **classify)
    counts = _counts(rows=3, classifications=found, expected=3)  # every input row accounted for
    with pytest.raises(JobError, match=message) as raised:
        check_accounted(plan, counts)
    assert plan.manifest.path in str(raised.value)
    assert plan.manifest.body["counts"] == counts  # what the failed run's manifest will show


def test_runs_without_a_classifier_are_checked_on_rows_only(tmp_path):
    plan = Plan(parse_config({}), RunManifest(spark=None, root=str(tmp_path), run_id="run-2", body={}))
    check_accounted(plan, {**zero_counts(), "input_rows": 2, "annotated_rows": 2})
    with pytest.raises(JobError, match="rows lost: 3 input rows but 2 annotated"):
        check_accounted(plan, {**zero_counts(), "input_rows": 3, "annotated_rows": 2})
