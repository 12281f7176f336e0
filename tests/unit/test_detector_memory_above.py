"""``memory_above`` (reference §4.6): the largest ``memory.current`` (or memory.stat ``anon``
with ``threshold_anon``) among the matched cgroups, over the threshold for ``duration``
seconds. Thresholds: bare numbers are MB, sizes like ``1.5M 32K 512``, or ``N%`` of MemTotal
read at init."""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection
from oomd.testing import faketree as ft

MA = dict(cgroup="workload.slice/*", threshold="10", duration="0")


def job(current, anon=None):
    return ft.cgroup(current, memory_stat=None if anon is None else {"anon": anon, "pgscan": 0})


def tree(**jobs):
    out = {f"workload.slice/{name}": files for name, files in jobs.items()}
    out["system.slice/decoy"] = job(900 * MB, 900 * MB)
    return out


def test_detects_usage_over_threshold(tmp_path):
    rig = Rig(tmp_path, tree(a=job(10 * MB + 1)))
    rig.add("memory_above", **MA)
    assert rig.run(2) == "CC"
    assert rig.log == []  # without debug nothing is logged


def test_no_detect_usage_at_threshold(tmp_path):
    rig = Rig(tmp_path, tree(a=job(10 * MB)))
    rig.add("memory_above", **MA)
    assert rig.run(2) == "SS"


def test_largest_matched_cgroup_counts_and_decoy_is_ignored(tmp_path):
    rig = Rig(tmp_path, tree(a=job(2 * MB), b=job(11 * MB), c=job(3 * MB)))
    rig.add("memory_above", **MA)
    assert rig.run(1) == "C"


@pytest.mark.parametrize("threshold,bytes_", [
    ("1.5M 32K 512", 1606144), ("8K", 8192), ("1g", 1 << 30), ("2", 2 * MB), ("0.5m", MB // 2),
    ("+3k", 3072), (" 4", 4 * MB), ("4 ", 4), ("1.5M+", None),
])
def test_size_thresholds(tmp_path, threshold, bytes_):
    if bytes_ is None:
        with pytest.raises(AssertionError, match="is not a size"):
            Rig(tmp_path, {}).add("memory_above", **{**MA, "threshold": threshold})
        return
    rig = Rig(tmp_path, tree(at=job(bytes_), over=job(bytes_ + 1)))
    rig.add("memory_above", **{**MA, "cgroup": "workload.slice/at", "threshold": threshold})
    rig.add("memory_above", **{**MA, "cgroup": "workload.slice/over", "threshold": threshold})
    assert rig.run_all(1) == ["S", "C"]


def test_percent_threshold_is_of_memtotal_at_init(tmp_path):
    rig = Rig(tmp_path, tree(a=job((1 << 30) + 1)), mem_total_kb=4 << 20)  # 4 GiB
    rig.add("memory_above", **{**MA, "threshold": "25%"})
    rig.set_proc(mem_total_kb=64 << 20)  # later changes do not move the threshold
    assert rig.run(1) == "C"


@pytest.mark.parametrize("threshold,verdict", [("0%", "C"), ("100%", "S"), ("-1", "C")])
def test_extreme_thresholds(tmp_path, threshold, verdict):
    rig = Rig(tmp_path, tree(a=job(1)), mem_total_kb=1)
    rig.add("memory_above", **{**MA, "threshold": threshold})
    assert rig.run(1) == verdict


def test_negative_threshold_fires_even_without_a_match(tmp_path):
    rig = Rig(tmp_path, tree())
    rig.add("memory_above", **{**MA, "threshold": "-1"})
    assert rig.run(1) == "C"


def test_fires_after_duration_and_restarts_after_a_dip(tmp_path):
    rig = Rig(tmp_path, tree(a=job(20 * MB)))
    rig.add("memory_above", **{**MA, "duration": "2"})

    def world(tick):
        if tick == 5:
            rig.write("workload.slice/a", memory_current=f"{MB}\n")
        if tick == 6:
            rig.write("workload.slice/a", memory_current=f"{20 * MB}\n")

    assert rig.run(9, between=world) == "SSCCSSSCC"


def test_threshold_anon_watches_anon_not_current(tmp_path):
    rig = Rig(tmp_path, tree(big=job(50 * MB, anon=MB), anony=job(2 * MB, anon=11 * MB)))
    rig.add("memory_above", **{**MA, "cgroup": "workload.slice/big", "threshold_anon": "10"})
    rig.add("memory_above", **{**MA, "cgroup": "workload.slice/anony", "threshold_anon": "10"})
    assert rig.run_all(1) == ["S", "C"]


def test_threshold_anon_wins_and_threshold_is_not_even_parsed(tmp_path):
    rig = Rig(tmp_path, tree(a=job(50 * MB, anon=MB)))
    rig.add("memory_above", **{**MA, "threshold": "not a size", "threshold_anon": "10"})
    assert rig.run(1) == "S"


def test_anon_missing_memory_stat_or_key_is_zero(tmp_path):
    t = tree(nostat=job(50 * MB), nokey=ft.cgroup(50 * MB, memory_stat={"file": 99 * MB}))
    rig = Rig(tmp_path, t)
    rig.add("memory_above", cgroup="workload.slice/*", threshold_anon="0", duration="0")
    assert rig.run(1) == "S"


def test_debug_logs_each_cgroup_and_the_verdict(tmp_path):
    rig = Rig(tmp_path, tree(a=job(3 * MB, anon=MB), b=job(12 * MB + 5, anon=2 * MB)))
    rig.add("memory_above", **{**MA, "debug": "true", "duration": "1"})
    assert rig.run(2) == "SC"
    each = ['cgroup "workload.slice/a" memory.current=3145728memory.stat (anon)=1048576',
            'cgroup "workload.slice/b" memory.current=12582917memory.stat (anon)=2097152']
    hit = 'cgroup "workload.slice/b" memory usage=12582917 hit threshold=10485760'
    assert rig.log == [*each, hit, *each, hit,
                       ('cgroup "workload.slice/b" current memory usage 12MB is over the threshold '
                        "of 10MB for 1 seconds")]


def test_debug_anon_names_anon_usage(tmp_path):
    rig = Rig(tmp_path, {"w": job(MB, anon=3 * MB)})
    rig.add("memory_above", cgroup="w", threshold_anon="2", duration="0", debug="1")
    assert rig.run(1) == "C"
    assert rig.log == ['cgroup "w" memory.current=1048576memory.stat (anon)=3145728',
                       'cgroup "w" anon usage=3145728 hit threshold=2097152',
                       ('cgroup "w" current memory usage 3MB is over the threshold of 2MB '
                        "for 0 seconds")]


def test_debug_below_threshold_logs_only_the_cgroups(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(MB)})
    rig.add("memory_above", cgroup="w", threshold="2", duration="0", debug="1")
    assert rig.run(1) == "S"
    assert rig.log == ['cgroup "w" memory.current=1048576memory.stat (anon)=0']


def test_debug_names_nothing_when_no_cgroup_uses_memory(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0)})
    rig.add("memory_above", cgroup="w", threshold="-1", duration="0", debug="1")
    assert rig.run(1) == "C"
    assert rig.log[1:] == ['cgroup "" memory usage=0 hit threshold=-1048576',
                           ('cgroup "" current memory usage 0MB is over the threshold of -1MB for '
                            "0 seconds")]


def test_tie_names_the_smallest_path(tmp_path):
    rig = Rig(tmp_path, tree(b=job(20 * MB), a=job(20 * MB)))
    rig.add("memory_above", **MA, debug="true")
    assert rig.run(1) == "C"
    assert rig.log[-1].startswith('cgroup "workload.slice/a" current memory usage 20MB')


def test_root_usage_is_memtotal_minus_memfree(tmp_path):
    rig = Rig(tmp_path, {}, mem_total_kb=8 << 20, mem_free_kb=5 << 20)  # 3 GiB used
    rig.add("memory_above", cgroup="/", threshold="3071", duration="0")
    rig.add("memory_above", cgroup="/", threshold="3072", duration="0")
    assert rig.run_all(1) == ["C", "S"]


def test_root_anon_reads_the_cgroup_fs_root_memory_stat(tmp_path):
    rig = Rig(tmp_path, {}, mem_total_kb=8 << 20, mem_free_kb=1 << 20)
    rig.write("", memory_stat=ft.kv({"anon": 5 * MB, "pgscan": 0}))
    rig.add("memory_above", cgroup="/", threshold_anon="4", duration="0")
    rig.add("memory_above", cgroup="/", threshold_anon="5", duration="0")
    assert rig.run_all(1) == ["C", "S"]


def test_largest_cgroup_vanishing_between_ticks(tmp_path):
    rig = Rig(tmp_path, tree(a=job(2 * MB), b=job(30 * MB)))
    rig.add("memory_above", **{**MA, "duration": "1"})
    assert rig.run(3, between=lambda t: t == 3 and rig.remove("workload.slice/b")) == "SCS"


def test_meminfo_location_is_read_for_percentages(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(ft.meminfo({"MemTotal": 1024}))  # 1 MiB
    rig = Rig(tmp_path, tree(a=job(MB // 2 + 1)))
    rig.add("memory_above", **{**MA, "threshold": "50%", "meminfo_location": str(meminfo)})
    assert rig.run(1) == "C"


def test_rejects_meminfo_without_memtotal(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(ft.meminfo({"MemFree": 1024}))
    assert rejection("memory_above", **MA, meminfo_location=str(meminfo)) == (
        f"test.json: at {args_path('meminfo_location')}: Plugin=memory_above failed to init() "
        "with code=1: meminfo does not contain MemTotal")


def test_rejects_unreadable_meminfo(tmp_path):
    missing = tmp_path / "nope"
    assert rejection("memory_above", **MA, meminfo_location=str(missing)) == (
        f"test.json: at {args_path('meminfo_location')}: Plugin=memory_above failed to init() "
        f"with code=1: Could not read meminfo {missing}: No such file or directory")


@pytest.mark.parametrize("missing", ["cgroup", "threshold", "duration"])
def test_rejects_missing_required_arg(missing):
    args = {k: v for k, v in MA.items() if k != missing}
    assert rejection("memory_above", **args) == (
        f"test.json: at {args_path()}: Plugin=memory_above failed to init() with code=1: "
        f'Required arg "{missing}" missing in plugin "memory_above"')


@pytest.mark.parametrize("value,reason", [
    ("101%", "'101%': percentage must be within 0..100"),
    ("-1%", "'-1%': percentage must be within 0..100"),
    ("1.5MK", "'1.5MK' is not a size"),
    ("1kb", "'1kb' is not a size"),
    ("+-123M", "'+-123M' is not a size"),
    (".5G", "'.5G' is not a size"),
    ("", "'' is not a size"),
])
def test_rejects_unparsable_threshold(value, reason):
    for arg in ("threshold", "threshold_anon"):
        assert rejection("memory_above", **{**MA, arg: value}) == (
            f"test.json: at {args_path(arg)}: Plugin=memory_above failed to init() with code=1: "
            f'Failed to parse argument "{arg}" of plugin "memory_above": {reason}')


def test_rejects_unknown_arg():
    assert rejection("memory_above", **MA, resource="memory") == (
        f"test.json: at {args_path('resource')}: Plugin=memory_above failed to init() with "
        'code=1: Unknown arg "resource" in plugin "memory_above"')
