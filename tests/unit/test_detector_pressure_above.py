"""``pressure_above`` (reference §4.4): the matched cgroup with the highest float32 score
``3·avg10 + 2·avg60 + avg300`` (full line) is watched; CONTINUE once its avg10 has been above
``threshold`` for ``duration`` seconds, while it stays there."""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection
from oomd.testing import faketree as ft

PA = dict(cgroup="workload.slice/*", resource="memory", threshold="70", duration="0")


def tree(**pressures):
    """workload.slice/<name> with those memory pressures (usage 5 MB), plus a decoy sibling
    outside the pattern with the worst pressure of all."""
    out = {"workload.slice": ft.cgroup(0)}
    for name, p in pressures.items():
        out[f"workload.slice/{name}"] = ft.cgroup(5 * MB, mem_pressure=p, io_pressure=(0, 0, 0))
    worst = (99, 99, 99)
    out["system.slice/decoy"] = ft.cgroup(9 * MB, mem_pressure=worst, io_pressure=worst)
    return out


def test_detects_high_mem_pressure(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40)))
    rig.add("pressure_above", **PA)
    assert rig.run(2) == "CC"
    assert rig.log == [
        "10s pressure 80.00 is over the threshold of 70 for 0 seconds , total usage is 5MB"] * 2


def test_no_detect_low_mem_pressure(tmp_path):
    rig = Rig(tmp_path, tree(a=(60, 60, 40)))
    rig.add("pressure_above", **PA)
    assert rig.run(2) == "SS"
    assert rig.log == []


def test_no_detect_at_exactly_threshold(tmp_path):
    rig = Rig(tmp_path, tree(a=(70, 90, 90)))
    rig.add("pressure_above", **PA)
    assert rig.run(1) == "S"


def test_decoy_outside_pattern_is_ignored(tmp_path):
    rig = Rig(tmp_path, tree(a=(10, 10, 10)))
    rig.add("pressure_above", **PA)
    assert rig.run(1) == "S"


def test_detects_high_io_pressure(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(2 * MB, mem_pressure=(0, 0, 0), io_pressure=(75.5, 1, 1))})
    rig.add("pressure_above", cgroup="w", resource="io", threshold="75", duration="0")
    assert rig.run(1) == "C"
    assert rig.log == [
        "10s pressure 75.50 is over the threshold of 75 for 0 seconds , total usage is 2MB"]


def test_io_resource_ignores_memory_pressure(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0, mem_pressure=(90, 90, 90), io_pressure=(1, 1, 1))})
    rig.add("pressure_above", cgroup="w", resource="io", threshold="50", duration="0")
    assert rig.run(1) == "S"


def test_reads_full_line_not_some(tmp_path):
    p = ft.psi(some=(90, 90, 90), full=(10, 10, 10))
    rig = Rig(tmp_path, {"w": ft.cgroup(0, mem_pressure=p)})
    rig.add("pressure_above", cgroup="w", resource="memory", threshold="50", duration="0")
    assert rig.run(1) == "S"


def test_fires_on_the_tick_duration_seconds_after_crossing(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40)))
    rig.add("pressure_above", **{**PA, "duration": "3"})
    assert rig.run(6) == "SSSCCC"
    assert rig.log == [
        "10s pressure 80.00 is over the threshold of 70 for 3 seconds , total usage is 5MB"] * 3


def test_timer_restarts_after_a_dip(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40)))
    rig.add("pressure_above", **{**PA, "duration": "1"})
    dip = {3: (20, 60, 40), 4: (80, 60, 40)}

    def world(tick):
        if tick in dip:
            rig.write("workload.slice/a", memory_pressure=ft.psi(full=dip[tick]))

    assert rig.run(6, between=world) == "SCSSCC"


def test_timer_counts_whole_seconds(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40)))
    rig.add("pressure_above", **{**PA, "duration": "1"})
    assert rig.run(1) == "S"
    rig.clock.advance(-0.25)  # the next ticks come 0.75 s and 1.75 s after the first
    assert rig.run(2) == "SC"


def test_negative_duration_fires_at_once(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40)))
    rig.add("pressure_above", **{**PA, "duration": "-5"})
    assert rig.run(1) == "C"


def test_watches_highest_weighted_score_not_highest_avg10(tmp_path):
    # a: 3*75 + 0 + 0 = 225; b: 3*60 + 2*50 + 40 = 320 -> b is watched, and 60 is not > 70
    rig = Rig(tmp_path, tree(a=(75, 0, 0), b=(60, 50, 40)))
    rig.add("pressure_above", **PA)
    assert rig.run(1) == "S"


def test_watched_cgroup_usage_is_in_the_message(tmp_path):
    t = tree(a=(10, 10, 10))
    t["workload.slice/b"] = ft.cgroup(7 * MB + 5, mem_pressure=(90, 1, 1))
    rig = Rig(tmp_path, t)
    rig.add("pressure_above", **PA)
    assert rig.run(1) == "C"
    assert rig.log == [
        "10s pressure 90.00 is over the threshold of 70 for 0 seconds , total usage is 7MB"]


def test_missing_memory_current_reports_zero_usage(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(None, mem_pressure=(90, 1, 1))})
    rig.add("pressure_above", cgroup="w", resource="memory", threshold="70", duration="0")
    assert rig.run(1) == "C"
    assert rig.log[0].endswith("total usage is 0MB")


def test_weighted_score_is_float32(tmp_path):
    # In float32, z scores 355.2 and a 355.19998: z is watched (avg10 88.94 > 60). In exact or
    # double arithmetic a would score at least as high, and a's avg10 (40.66) is below 60.
    rig = Rig(tmp_path, tree(a=(40.66, 97.91, 37.4), z=(88.94, 27.38, 33.62)))
    rig.add("pressure_above", **{**PA, "threshold": "60"})
    assert rig.run(1) == "C"
    assert rig.log == [
        "10s pressure 88.94 is over the threshold of 60 for 0 seconds , total usage is 5MB"]


def test_tie_on_score_watches_smallest_path(tmp_path):
    # both score 225; a (avg10 0) sorts before b (avg10 75): a is watched (docs/compat.md)
    rig = Rig(tmp_path, tree(b=(75, 0, 0), a=(0, 112.5, 0)))
    rig.add("pressure_above", **PA)
    assert rig.run(1) == "S"


def test_missing_pressure_file_counts_as_zero(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(MB)})
    rig.add("pressure_above", cgroup="w", resource="memory", threshold="0", duration="0")
    rig.add("pressure_above", cgroup="w", resource="memory", threshold="-1", duration="0")
    assert rig.run_all(1) == ["S", "C"]
    assert rig.log == [
        "10s pressure 0.00 is over the threshold of -1 for 0 seconds , total usage is 0MB"]


def test_no_match_counts_as_zero_pressure(tmp_path):
    rig = Rig(tmp_path, tree())
    rig.add("pressure_above", **{**PA, "threshold": "-1"})
    assert rig.run(1) == "C"


def test_several_patterns_and_wildcards(tmp_path):
    t = {"a.slice/x": ft.cgroup(MB, mem_pressure=(10, 0, 0)),
         "b.slice/y/z": ft.cgroup(3 * MB, mem_pressure=(80, 0, 0)),
         "c.slice": ft.cgroup(0, mem_pressure=(99, 99, 99))}
    rig = Rig(tmp_path, t)
    rig.add("pressure_above", cgroup="a.slice/*,b.slice/*/z", resource="memory", threshold="70",
            duration="0")
    assert rig.run(1) == "C"
    assert rig.log[0].endswith("total usage is 3MB")


def test_root_reads_proc_pressure(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0, mem_pressure=(0, 0, 0))},
              mem_pressure=(72.5, 10, 5), mem_total_kb=4 << 20, mem_free_kb=1 << 20)
    rig.add("pressure_above", cgroup="/", resource="memory", threshold="70", duration="0")
    assert rig.run(1) == "C"
    # root usage is MemTotal - MemFree = 3 GiB
    assert rig.log == [
        "10s pressure 72.50 is over the threshold of 70 for 0 seconds , total usage is 3072MB"]


def test_root_io_reads_proc_io_pressure(tmp_path):
    rig = Rig(tmp_path, {}, io_pressure=(10, 10, 10), mem_pressure=(90, 90, 90))
    rig.add("pressure_above", cgroup="/", resource="io", threshold="50", duration="0")
    assert rig.run(1) == "S"


def test_watched_cgroup_vanishing_resets_the_timer(tmp_path):
    rig = Rig(tmp_path, tree(a=(80, 60, 40), b=(10, 10, 10)))
    rig.add("pressure_above", **{**PA, "duration": "1"})

    def world(tick):
        if tick == 3:
            rig.remove("workload.slice/a")
        if tick == 4:
            rig.cgroup("workload.slice/a", current=MB, mem_pressure=(80, 60, 40))

    assert rig.run(6, between=world) == "SCSSCC"


@pytest.mark.parametrize("missing", ["cgroup", "resource", "threshold", "duration"])
def test_rejects_missing_required_arg(missing):
    args = {k: v for k, v in PA.items() if k != missing}
    assert rejection("pressure_above", **args) == (
        f"test.json: at {args_path()}: Plugin=pressure_above failed to init() with code=1: "
        f'Required arg "{missing}" missing in plugin "pressure_above"')


@pytest.mark.parametrize("arg,value,reason", [
    ("resource", "cpu", "'cpu' is not a resource (io or memory)"),
    ("resource", "Memory", "'Memory' is not a resource (io or memory)"),
    ("threshold", "high", "'high' is not an integer"),
    ("threshold", "99999999999", "'99999999999' is out of range for an int"),
    ("duration", "", "'' is not an integer"),
])
def test_rejects_unparsable_arg(arg, value, reason):
    assert rejection("pressure_above", **{**PA, arg: value}) == (
        f"test.json: at {args_path(arg)}: Plugin=pressure_above failed to init() with code=1: "
        f'Failed to parse argument "{arg}" of plugin "pressure_above": {reason}')


def test_rejects_fast_fall_ratio_which_only_rising_beyond_takes():
    assert rejection("pressure_above", **PA, fast_fall_ratio="0.5") == (
        f"test.json: at {args_path('fast_fall_ratio')}: Plugin=pressure_above failed to init() "
        'with code=1: Unknown arg "fast_fall_ratio" in plugin "pressure_above"')


def test_integer_args_read_like_stoi(tmp_path):
    # "70.9" reads as 70 and "0s" as 0: trailing text is ignored (reference §0)
    rig = Rig(tmp_path, tree(a=(70.5, 0, 0)))
    rig.add("pressure_above", **{**PA, "threshold": "70.9", "duration": "0s"})
    assert rig.run(1) == "C"
