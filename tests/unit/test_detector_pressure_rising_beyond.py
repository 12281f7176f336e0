"""``pressure_rising_beyond`` (reference §4.5): the watched cgroup (chosen as in
``pressure_above``) fires when its avg60 has been above ``threshold`` for ``duration`` seconds,
its avg10 is above it too, and avg10 is not below ``fast_fall_ratio`` × the previous run's
avg10 (initially 100). float32 arithmetic throughout."""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection
from oomd.testing import faketree as ft

PRB = dict(cgroup="workload.slice/*", resource="memory", threshold="50", duration="0")


def tree(**pressures):
    out = {f"workload.slice/{name}": ft.cgroup(5 * MB, mem_pressure=p, io_pressure=(0, 0, 0))
           for name, p in pressures.items()}
    out["system.slice/decoy"] = ft.cgroup(MB, mem_pressure=(99, 99, 99), io_pressure=(99, 99, 99))
    return out


def pressure_steps(rig, rel, steps):
    """between() for Rig.run: set the full-line pressure of ``rel`` before the given ticks."""
    def world(tick):
        if tick in steps:
            rig.write(rel, memory_pressure=ft.psi(full=steps[tick]))
    return world


def test_detects_rising_pressure(tmp_path):
    rig = Rig(tmp_path, tree(a=(90, 60, 20)))
    rig.add("pressure_rising_beyond", **PRB)
    assert rig.run(2) == "CC"
    assert rig.log == [
        "1m pressure 60.00 is over the threshold of 50 for 0 seconds , total usage is 5MB"] * 2


def test_no_detect_when_1m_pressure_below_threshold(tmp_path):
    rig = Rig(tmp_path, tree(a=(90, 50, 90)))
    rig.add("pressure_rising_beyond", **PRB)
    assert rig.run(2) == "SS"
    assert rig.log == []


def test_no_detect_when_10s_pressure_below_threshold(tmp_path):
    rig = Rig(tmp_path, tree(a=(50, 90, 90)))
    rig.add("pressure_rising_beyond", **PRB)
    assert rig.run(2) == "SS"


def test_first_run_compares_against_a_previous_pressure_of_100(tmp_path):
    # 100 * float32(0.85) rounds to exactly 85.0 in float32: 85.00 is not falling, 84.99 is
    rig = Rig(tmp_path, tree(a=(85, 60, 0), b=(84.99, 60, 0)))
    rig.add("pressure_rising_beyond", **{**PRB, "cgroup": "workload.slice/a"})
    rig.add("pressure_rising_beyond", **{**PRB, "cgroup": "workload.slice/b"})
    assert rig.run_all(2) == ["CC", "SC"]


def test_no_detect_while_10s_pressure_falls_fast(tmp_path):
    rig = Rig(tmp_path, tree(a=(90, 60, 0)))
    rig.add("pressure_rising_beyond", **PRB)
    # 90 -> 76 (< 0.85*90 = 76.5: falling) -> 70 (>= 0.85*76: not falling) -> 55 (< 59.5)
    steps = {2: (76, 60, 0), 3: (70, 60, 0), 4: (55, 60, 0)}
    world = pressure_steps(rig, "workload.slice/a", steps)
    assert rig.run(4, between=world) == "CSCS"


def test_fast_fall_ratio_zero_never_sees_a_fall(tmp_path):
    rig = Rig(tmp_path, tree(a=(51, 60, 0)))
    rig.add("pressure_rising_beyond", **PRB, fast_fall_ratio="0")
    assert rig.run(1) == "C"


def test_fast_fall_ratio_above_one_needs_a_rise(tmp_path):
    rig = Rig(tmp_path, tree(a=(60, 60, 0)))
    rig.add("pressure_rising_beyond", **PRB, fast_fall_ratio="1.1")
    # 60 < 110: falling; 65 < 66: falling; 72 >= 71.5: fires
    world = pressure_steps(rig, "workload.slice/a", {2: (65, 60, 0), 3: (72, 60, 0)})
    assert rig.run(3, between=world) == "SSC"


def test_1m_pressure_must_hold_for_duration(tmp_path):
    rig = Rig(tmp_path, tree(a=(90, 60, 0)))
    rig.add("pressure_rising_beyond", **{**PRB, "duration": "2"})
    assert rig.run(4) == "SSCC"
    assert rig.log == [
        "1m pressure 60.00 is over the threshold of 50 for 2 seconds , total usage is 5MB"] * 2


def test_1m_timer_runs_while_10s_pressure_is_low(tmp_path):
    # avg10 below threshold does not stop the avg60 timer: the first tick with avg10 back
    # above the threshold fires at once
    rig = Rig(tmp_path, tree(a=(10, 60, 0)))
    rig.add("pressure_rising_beyond", **{**PRB, "duration": "2", "fast_fall_ratio": "0"})
    world = pressure_steps(rig, "workload.slice/a", {4: (90, 60, 0)})
    assert rig.run(4, between=world) == "SSSC"


def test_1m_timer_restarts_when_1m_pressure_dips(tmp_path):
    rig = Rig(tmp_path, tree(a=(90, 60, 0)))
    rig.add("pressure_rising_beyond", **{**PRB, "duration": "1", "fast_fall_ratio": "0"})
    world = pressure_steps(rig, "workload.slice/a", {3: (90, 40, 0), 4: (90, 60, 0)})
    assert rig.run(6, between=world) == "SCSSCC"


def test_previous_pressure_is_kept_when_nothing_matches(tmp_path):
    # the watched cgroup vanishes for a tick: the "previous" avg10 becomes 0, so the next
    # tick cannot be falling
    rig = Rig(tmp_path, tree(a=(90, 60, 0)))
    rig.add("pressure_rising_beyond", **PRB)

    def world(tick):
        if tick == 2:
            rig.remove("workload.slice/a")
        if tick == 3:
            rig.cgroup("workload.slice/a", current=5 * MB, mem_pressure=(51, 60, 0))

    assert rig.run(3, between=world) == "CSC"


def test_watches_highest_weighted_score(tmp_path):
    # a: 3*95 = 285; b: 3*55 + 2*60 + 30 = 315 -> b is watched (its avg10 55 > 50 but it fell
    # from 100: 55 < 85) -> STOP; a alone would fire
    rig = Rig(tmp_path, tree(a=(95, 0, 0), b=(55, 60, 30)))
    rig.add("pressure_rising_beyond", **PRB)
    assert rig.run(1) == "S"


def test_io_resource(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(MB, mem_pressure=(0, 0, 0), io_pressure=(90, 60, 0))})
    rig.add("pressure_rising_beyond", **{**PRB, "cgroup": "w", "resource": "io"})
    assert rig.run(1) == "C"
    assert rig.log == [
        "1m pressure 60.00 is over the threshold of 50 for 0 seconds , total usage is 1MB"]


def test_root_reads_proc_pressure(tmp_path):
    rig = Rig(tmp_path, {}, mem_pressure=(88.5, 51.25, 1), mem_total_kb=2 << 20,
              mem_free_kb=1 << 20)
    rig.add("pressure_rising_beyond", **{**PRB, "cgroup": "/"})
    assert rig.run(1) == "C"
    assert rig.log == [
        "1m pressure 51.25 is over the threshold of 50 for 0 seconds , total usage is 1024MB"]


def test_wildcard_and_several_patterns(tmp_path):
    t = tree(a=(10, 10, 10))
    t["other.slice/x"] = ft.cgroup(2 * MB, mem_pressure=(90, 70, 0))
    rig = Rig(tmp_path, t)
    rig.add("pressure_rising_beyond", **{**PRB, "cgroup": "workload.slice/*,other.slice/*"})
    assert rig.run(1) == "C"
    assert rig.log[0].endswith("total usage is 2MB")


@pytest.mark.parametrize("missing", ["cgroup", "resource", "threshold", "duration"])
def test_rejects_missing_required_arg(missing):
    args = {k: v for k, v in PRB.items() if k != missing}
    assert rejection("pressure_rising_beyond", **args) == (
        f"test.json: at {args_path()}: Plugin=pressure_rising_beyond failed to init() with "
        f'code=1: Required arg "{missing}" missing in plugin "pressure_rising_beyond"')


@pytest.mark.parametrize("value,reason", [("fast", "'fast' is not a number"),
                                          ("1e39", "'1e39' is out of range for a float")])
def test_rejects_unparsable_fast_fall_ratio(value, reason):
    assert rejection("pressure_rising_beyond", **PRB, fast_fall_ratio=value) == (
        f"test.json: at {args_path('fast_fall_ratio')}: Plugin=pressure_rising_beyond failed to "
        f'init() with code=1: Failed to parse argument "fast_fall_ratio" of plugin '
        f'"pressure_rising_beyond": {reason}')


def test_rejects_unknown_arg():
    assert rejection("pressure_rising_beyond", **PRB, debug="true") == (
        f"test.json: at {args_path('debug')}: Plugin=pressure_rising_beyond failed to init() "
        'with code=1: Unknown arg "debug" in plugin "pressure_rising_beyond"')
