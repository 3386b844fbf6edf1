"""Leases scoped to the partitions a run writes, on real manifest files: disjoint claims both hold, an
overlapping one refuses in one line naming the other run and the partitions, and of two runs claiming
at once exactly one goes on. (Real concurrent runs: tests/integration/test_lake_conflict.py.)"""

import os
import socket
import threading
import time

import pytest

from pipelines.errors import RunInProgress
from pipelines.store.lake import HELD, PLANNING, RunManifest, overlap, read_manifests, take_lease

DE, FR = {"lang": "de"}, {"lang": "fr"}


def run(tmp_path, run_id: str, started: str = "2026-01-01T00:00:00+00:00") -> RunManifest:
    """A live run of this process, saved as running and still planning (as RunManifest.start leaves it)."""
    manifest = RunManifest(None, str(tmp_path), run_id, {"run_id": run_id, "started_at": started,
                                                         "host": socket.gethostname(), "pid": os.getpid()})
    manifest.save("running", lease={"state": PLANNING})
    return manifest


def lease_of(tmp_path, run_id: str) -> dict:
    return next(m["lease"] for m in read_manifests(None, str(tmp_path)) if m["run_id"] == run_id)


def test_disjoint_partitions_are_held_together_and_an_overlapping_claim_refuses_naming_run_and_partitions(tmp_path):
    take_lease(None, run(tmp_path, "a-de"), [DE])
    take_lease(None, run(tmp_path, "b-fr"), [FR])
    assert lease_of(tmp_path, "a-de") == {"state": HELD, "partitions": [DE]}
    assert lease_of(tmp_path, "b-fr") == {"state": HELD, "partitions": [FR]}
    with pytest.raises(RunInProgress) as refused:
        take_lease(None, run(tmp_path, "c-all", "2025-12-31T00:00:00+00:00"), [{"lang": "es"}, DE])
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"run a-de (host {socket.gethostname()}, pid {os.getpid()}")
    assert "is writing to" in message and "(partitions lang=de, which this run writes too)" in message
    assert "lang=es" not in message  # only what the two runs share


def test_the_whole_lake_meets_every_claim_but_an_empty_one(tmp_path):
    take_lease(None, run(tmp_path, "a-unpartitioned"), None)
    with pytest.raises(RunInProgress, match=r"run a-unpartitioned .*\(the whole lake\)"):
        take_lease(None, run(tmp_path, "b-de"), [DE])
    take_lease(None, run(tmp_path, "c-nothing-to-write"), [])  # an incremental run with nothing new holds nothing
    assert lease_of(tmp_path, "c-nothing-to-write")["state"] == HELD


def test_a_running_manifest_of_an_older_version_holds_the_whole_lake_and_a_planning_run_holds_nothing(tmp_path):
    old = run(tmp_path, "a-old")
    old.body.pop("lease")
    old.save("running")
    refused = run(tmp_path, "b-de")
    with pytest.raises(RunInProgress, match=r"run a-old .*\(the whole lake\)"):
        take_lease(None, refused, [DE])
    refused.save("failed")  # as the job does with a run that refused
    old.save("committed")
    run(tmp_path, "c-planning")  # has not said what it writes yet: it checks when it claims
    take_lease(None, run(tmp_path, "d-de"), [DE])


def test_claims_overlap_when_their_values_agree_on_every_column_both_name():
    assert overlap([DE], [{"lang": "de", "day": "1"}])
    assert not overlap([{"lang": "de", "day": "1"}], [{"lang": "de", "day": "2"}])
    assert overlap([{"src": None}], [{"src": None}]) and not overlap([{"src": None}], [{"src": "a"}])
    assert overlap(None, None) and overlap(None, [DE]) and not overlap(None, []) and not overlap([], None)


def claiming(tmp_path, run_id: str, started: str, partitions) -> RunManifest:
    """A run that has written its claim and not yet read the others' (between the two steps of take_lease)."""
    manifest = run(tmp_path, run_id, started)
    manifest.save("running", lease={"state": "claiming", "partitions": partitions})
    return manifest


def test_of_two_runs_claiming_at_once_the_later_refuses(tmp_path):
    claiming(tmp_path, "a-first", "2026-01-01T00:00:00+00:00", [DE])
    with pytest.raises(RunInProgress, match="run a-first"):
        take_lease(None, run(tmp_path, "b-second", "2026-01-01T00:00:01+00:00"), [DE])


@pytest.mark.parametrize("later_outcome", ["refuses", "holds"])
def test_the_earlier_claimant_waits_for_the_later_one_to_refuse_or_hold(tmp_path, later_outcome):
    """The later one either saw this claim (and refuses) or read before it was written (and holds): the
    earlier one goes on only in the first case, so never both."""
    later = claiming(tmp_path, "b-later", "2026-01-01T00:00:01+00:00", [DE])
    earlier = run(tmp_path, "a-earlier", "2026-01-01T00:00:00+00:00")

    def later_decides():
        # it decides once the earlier claim is there, so the earlier run has to wait for its decision
        while lease_of(tmp_path, "a-earlier")["state"] != "claiming":
            time.sleep(0.01)
        if later_outcome == "refuses":
            later.save("failed", reason="refused")
        else:
            later.save("running", lease={"state": HELD, "partitions": [DE]})

    decides = threading.Thread(target=later_decides, daemon=True)
    decides.start()
    if later_outcome == "refuses":
        take_lease(None, earlier, [DE], poll_s=0.01)
        assert lease_of(tmp_path, "a-earlier")["state"] == HELD
    else:
        with pytest.raises(RunInProgress, match="run b-later"):
            take_lease(None, earlier, [DE], poll_s=0.01)
    decides.join()
    assert read_manifests(None, str(tmp_path))[1]["status"] == ("failed" if later_outcome == "refuses" else "running")
