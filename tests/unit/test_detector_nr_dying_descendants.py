"""``nr_dying_descendants`` (reference §4.9): CONTINUE when any matched cgroup with a readable
cgroup.stat has ``nr_dying_descendants <= count`` (``lte``, the default) or ``> count``.
pyoomd also takes the documented ``negate`` (oomd 0.5.0 rejects it; docs/compat.md)."""

from __future__ import annotations

import pytest

from detectorfakes import Rig, args_path, rejection
from oomd.testing import faketree as ft

ND = dict(cgroup="workload.slice/*", count="10")


def job(dying):
    return ft.cgroup(0, nr_dying_descendants=dying)


def tree(**dying):
    out = {f"workload.slice/{name}": job(n) for name, n in dying.items()}
    out["system.slice/decoy"] = job(1000)
    return out


def test_detects_few_dying_descendants(tmp_path):
    rig = Rig(tmp_path, tree(a=10))
    rig.add("nr_dying_descendants", **ND)
    assert rig.run(2) == "CC"
    assert rig.log == []


def test_no_detect_many_dying_descendants(tmp_path):
    rig = Rig(tmp_path, tree(a=11))
    rig.add("nr_dying_descendants", **ND)
    assert rig.run(1) == "S"


def test_lte_false_detects_many_dying_descendants(tmp_path):
    rig = Rig(tmp_path, tree(a=11))
    rig.add("nr_dying_descendants", **ND, lte="false")
    assert rig.run(1) == "C"


def test_lte_false_no_detect_at_count(tmp_path):
    rig = Rig(tmp_path, tree(a=10))
    rig.add("nr_dying_descendants", **ND, lte="0")
    assert rig.run(1) == "S"


def test_any_matched_cgroup_is_enough(tmp_path):
    rig = Rig(tmp_path, tree(a=50, b=3, c=70))
    rig.add("nr_dying_descendants", **ND)
    rig.add("nr_dying_descendants", **ND, lte="false")
    assert rig.run_all(1) == ["C", "C"]


def test_decoy_outside_pattern_is_ignored(tmp_path):
    rig = Rig(tmp_path, tree(a=5))
    rig.add("nr_dying_descendants", **ND, lte="false")
    assert rig.run(1) == "S"


def test_debug_logs_the_first_match(tmp_path):
    rig = Rig(tmp_path, tree(a=50, b=3, c=7))
    rig.add("nr_dying_descendants", **ND, debug="true")
    rig.add("nr_dying_descendants", **ND, lte="false", debug="true")
    assert rig.run_all(1) == ["C", "C"]
    assert rig.log == ["nr_dying_descendants=3 <= count=10", "nr_dying_descendants=50 > count=10"]


def test_missing_key_counts_as_zero(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0, extra={"cgroup.stat": "nr_descendants 4\n"})})
    rig.add("nr_dying_descendants", cgroup="w", count="0", debug="1")
    assert rig.run(1) == "C"
    assert rig.log == ["nr_dying_descendants=0 <= count=0"]


def test_cgroup_without_cgroup_stat_is_skipped(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0)})
    rig.add("nr_dying_descendants", cgroup="w", count="5")
    assert rig.run(1) == "S"


def test_no_match_never_detects(tmp_path):
    rig = Rig(tmp_path, tree())
    rig.add("nr_dying_descendants", **ND)
    assert rig.run(1) == "S"


def test_root_reads_cgroup_fs_root_cgroup_stat(tmp_path):
    rig = Rig(tmp_path, {})
    rig.write("", cgroup_stat=ft.kv({"nr_descendants": 9, "nr_dying_descendants": 4}))
    rig.add("nr_dying_descendants", cgroup="/", count="3", lte="false")
    assert rig.run(1) == "C"


def test_follows_counts_and_vanishing_between_ticks(tmp_path):
    rig = Rig(tmp_path, tree(a=20, b=30))
    rig.add("nr_dying_descendants", **ND)

    def world(tick):
        if tick == 2:
            rig.write("workload.slice/b", cgroup_stat=ft.kv({"nr_dying_descendants": 2}))
        if tick == 3:
            rig.remove("workload.slice/b")

    assert rig.run(3, between=world) == "SCS"


def test_negate_inverts_the_result(tmp_path):
    rig = Rig(tmp_path, tree(a=3, b=30))
    rig.add("nr_dying_descendants", cgroup="workload.slice/a", count="10", negate="true")
    rig.add("nr_dying_descendants", cgroup="workload.slice/b", count="10", negate="true")
    rig.add("nr_dying_descendants", cgroup="workload.slice/nope", count="10", negate="true")
    rig.add("nr_dying_descendants", cgroup="workload.slice/b", count="10", negate="false")
    assert rig.run_all(1) == ["S", "C", "C", "S"]


def test_count_reads_like_stoi(tmp_path):
    rig = Rig(tmp_path, tree(a=7))
    rig.add("nr_dying_descendants", **{**ND, "count": "7.9"})
    assert rig.run(1) == "C"


@pytest.mark.parametrize("missing", ["cgroup", "count"])
def test_rejects_missing_required_arg(missing):
    args = {k: v for k, v in ND.items() if k != missing}
    assert rejection("nr_dying_descendants", **args) == (
        f"test.json: at {args_path()}: Plugin=nr_dying_descendants failed to init() with "
        f'code=1: Required arg "{missing}" missing in plugin "nr_dying_descendants"')


@pytest.mark.parametrize("arg,value,reason", [
    ("count", "-1", "'-1' is negative"),
    ("count", "many", "'many' is not an integer"),
    ("lte", "yes", "'yes' is not a bool (true/True/1/false/False/0)"),
    ("negate", "no", "'no' is not a bool (true/True/1/false/False/0)"),
])
def test_rejects_unparsable_arg(arg, value, reason):
    assert rejection("nr_dying_descendants", **{**ND, arg: value}) == (
        f"test.json: at {args_path(arg)}: Plugin=nr_dying_descendants failed to init() with "
        f'code=1: Failed to parse argument "{arg}" of plugin "nr_dying_descendants": {reason}')
