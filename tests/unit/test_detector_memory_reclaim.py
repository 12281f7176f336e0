"""``memory_reclaim`` (reference §4.7): CONTINUE while the summed ``pgscan`` of the matched
cgroups' memory.stat rose within the last ``duration`` seconds. The first "previous" sum is 0
and the first "last reclaim" is the monotonic clock's origin."""

from __future__ import annotations

import pytest

from detectorfakes import Rig, args_path, rejection
from oomd.testing import faketree as ft

MR = dict(cgroup="workload.slice/*", duration="2")


def job(pgscan):
    return ft.cgroup(0, memory_stat={"anon": 0, "pgscan": pgscan})


def scan(rig, rel, value):
    rig.write(rel, memory_stat=ft.kv({"anon": 0, "pgscan": value}))


def tree(**pgscans):
    out = {f"workload.slice/{name}": job(v) for name, v in pgscans.items()}
    out["system.slice/decoy"] = job(10)
    return out


def test_detects_reclaim_on_first_tick_and_for_duration_after(tmp_path):
    rig = Rig(tmp_path, tree(a=100))
    rig.add("memory_reclaim", **MR)
    assert rig.run(5) == "CCCSS"


def test_no_detect_without_any_scanning(tmp_path):
    rig = Rig(tmp_path, tree(a=0))
    rig.add("memory_reclaim", **MR)
    assert rig.run(3) == "SSS"


def test_never_reclaimed_counts_from_clock_origin(tmp_path):
    # the fake clock starts at 1000 s: a duration that long still covers "the last reclaim"
    rig = Rig(tmp_path, tree(a=0))
    rig.add("memory_reclaim", cgroup="workload.slice/*", duration="1000")
    rig.add("memory_reclaim", cgroup="workload.slice/*", duration="999")
    assert rig.run_all(2) == ["CS", "SS"]


def test_each_rise_restarts_the_window(tmp_path):
    rig = Rig(tmp_path, tree(a=5))
    rig.add("memory_reclaim", **{**MR, "duration": "1"})
    rises = {4: 6, 5: 6, 6: 6, 7: 9}
    assert rig.run(8, between=lambda t: t in rises and scan(rig, "workload.slice/a", rises[t])) \
        == "CCSCCSCC"


def test_duration_zero_fires_only_on_the_tick_of_the_rise(tmp_path):
    rig = Rig(tmp_path, tree(a=1))
    rig.add("memory_reclaim", **{**MR, "duration": "0"})
    assert rig.run(3, between=lambda t: t == 3 and scan(rig, "workload.slice/a", 2)) == "CSC"


def test_negative_duration_never_fires(tmp_path):
    rig = Rig(tmp_path, tree(a=1))
    rig.add("memory_reclaim", **{**MR, "duration": "-1"})
    assert rig.run(2) == "SS"


def test_sums_all_matched_cgroups(tmp_path):
    # a falls by 5 while b rises by 3: the sum falls, no reclaim
    rig = Rig(tmp_path, tree(a=10, b=10))
    rig.add("memory_reclaim", **{**MR, "duration": "0"})

    def world(tick):
        if tick == 2:
            scan(rig, "workload.slice/a", 5)
            scan(rig, "workload.slice/b", 13)
        if tick == 3:
            scan(rig, "workload.slice/b", 14)

    assert rig.run(3, between=world) == "CSC"


def test_decoy_outside_pattern_is_ignored(tmp_path):
    rig = Rig(tmp_path, tree(a=0))
    rig.add("memory_reclaim", **{**MR, "duration": "0"})
    assert rig.run(2, between=lambda t: scan(rig, "system.slice/decoy", 99)) == "SS"


def test_vanished_cgroup_lowers_the_sum_and_its_return_counts_as_reclaim(tmp_path):
    rig = Rig(tmp_path, tree(a=10, b=20))
    rig.add("memory_reclaim", **{**MR, "duration": "0"})

    def world(tick):
        if tick == 2:
            rig.remove("workload.slice/b")
        if tick == 3:
            rig.cgroup("workload.slice/b", current=0, memory_stat={"pgscan": 20})

    assert rig.run(3, between=world) == "CSC"


def test_missing_memory_stat_or_pgscan_counts_as_zero(tmp_path):
    t = tree(a=7)
    t["workload.slice/nostat"] = ft.cgroup(0)
    t["workload.slice/nokey"] = ft.cgroup(0, memory_stat={"anon": 5})
    rig = Rig(tmp_path, t)
    rig.add("memory_reclaim", **{**MR, "duration": "0"})
    assert rig.run(2, between=lambda t: scan(rig, "workload.slice/a", 8)) == "CC"


def test_several_patterns(tmp_path):
    t = tree(a=0)
    t["other.slice/x"] = job(3)
    rig = Rig(tmp_path, t)
    rig.add("memory_reclaim", cgroup="workload.slice/*,other.slice/x", duration="0")
    assert rig.run(2, between=lambda t: scan(rig, "other.slice/x", 4)) == "CC"


def test_root_reads_cgroup_fs_root_memory_stat(tmp_path):
    rig = Rig(tmp_path, tree(a=0))
    scan(rig, "", 50)
    rig.add("memory_reclaim", cgroup="/", duration="0")
    assert rig.run(3, between=lambda t: t == 3 and scan(rig, "", 51)) == "CSC"


@pytest.mark.parametrize("missing", ["cgroup", "duration"])
def test_rejects_missing_required_arg(missing):
    args = {k: v for k, v in MR.items() if k != missing}
    assert rejection("memory_reclaim", **args) == (
        f"test.json: at {args_path()}: Plugin=memory_reclaim failed to init() with code=1: "
        f'Required arg "{missing}" missing in plugin "memory_reclaim"')


def test_rejects_unparsable_duration():
    assert rejection("memory_reclaim", **{**MR, "duration": "soon"}) == (
        f"test.json: at {args_path('duration')}: Plugin=memory_reclaim failed to init() with "
        'code=1: Failed to parse argument "duration" of plugin "memory_reclaim": '
        "'soon' is not an integer")


def test_rejects_unknown_arg():
    assert rejection("memory_reclaim", **MR, threshold="1") == (
        f"test.json: at {args_path('threshold')}: Plugin=memory_reclaim failed to init() with "
        'code=1: Unknown arg "threshold" in plugin "memory_reclaim"')
