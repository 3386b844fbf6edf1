"""The reuse benchmark's arithmetic (benchmarks.reuse): floors and the verdict its JSON carries per scenario."""

import pytest

from benchmarks.reuse import floors, verdict


def scenario(off_s, model_s, pieces, **modes):
    """An off run of ``off_s`` seconds with ``model_s`` model seconds over ``pieces`` WordPieces, and per mode
    (duration, WordPieces computed)."""
    out = {"off": {"duration_s": off_s, "embedder": {"model_seconds": model_s, "pieces": pieces}}}
    for mode, (duration, computed) in modes.items():
        out[mode] = {"duration_s": duration, "reuse": {"wordpieces_computed": computed}}
        out[f"ratio_{mode}"] = round(duration / off_s, 3)
    return out


def test_the_floor_is_the_off_runs_time_outside_the_model_plus_the_model_time_of_what_was_computed():
    # 100 s, 160 model-seconds on 2 cores: 80 s of model, 20 s outside it; half the pieces computed: 20 + 40
    s = scenario(100.0, 160.0, 1000, worker=(70.0, 500))
    assert floors(s, cores=2) == {"off_outside_model_s": 20.0, "off_model_share": 0.8, "worker": 0.6}
    assert floors(s, cores=1)["off_model_share"] == 1.6  # the cores matter: 160 model-seconds on one core


def test_a_target_under_the_floor_is_missed_because_of_the_time_outside_the_model():
    s = scenario(100.0, 160.0, 1000, worker=(70.0, 500))
    s.update(target=0.45, floor=floors(s, cores=2))
    v = verdict(s)
    assert v["missed_by"] == pytest.approx(0.25)
    assert "floor is 0.6, above the target" in v["why"] and "20.0 s of its 100.0 s outside the model" in v["why"]


def test_a_target_over_the_floor_is_missed_by_the_modes_own_cost():
    s = scenario(100.0, 160.0, 1000, worker=(80.0, 500), run=(75.0, 400))
    s.update(target=0.7, floor=floors(s, cores=2))  # run: floor (20 + 32) / 100 = 0.52, ratio 0.75
    v = verdict(s)
    assert v["missed_by"] == pytest.approx(0.05)
    assert v["why"].startswith("run sits 0.23 above its floor 0.52")


def test_a_met_target_is_missed_by_nothing():
    s = scenario(100.0, 160.0, 1000, worker=(70.0, 500))
    s.update(target=0.75, floor=floors(s, cores=2))
    assert verdict(s) == {"missed_by": 0.0}
