"""``dump_cgroup_overview`` (reference §4.10): one log line per matched cgroup whose full
memory pressure has avg10 >= 1 and avg60 > 0 (every matched cgroup with ``always``); always
CONTINUE. Swap comes from /proc/meminfo, pgscan from /proc/vmstat."""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection
from oomd.testing import faketree as ft

PROC = dict(swap_devices=[("/dev/sda2", 1 << 20, 1 << 19)],  # 1 GiB, half used
            vmstat={"pswpout": 0, "pgscan_kswapd": 21, "pgscan_direct": 9})
SYS = "swapfree=512MB/1024MB pgscan=30"


def job(current, pressure):
    return ft.cgroup(current, mem_pressure=pressure)


def test_dumps_cgroup_under_pressure(tmp_path):
    rig = Rig(tmp_path, {"workload.slice/a": job(5 * MB, (2, 0.5, 0.25))}, **PROC)
    rig.add("dump_cgroup_overview", cgroup="workload.slice/*")
    assert rig.run(2) == "CC"
    assert rig.log == [f"cgroup=workload.slice/a total=5MB pressure=2.00:0.50:0.25 {SYS}"] * 2


@pytest.mark.parametrize("pressure", [(0.99, 50, 50), (50, 0, 50), (0, 0, 0)])
def test_no_dump_without_pressure(tmp_path, pressure):
    rig = Rig(tmp_path, {"w": job(MB, pressure)}, **PROC)
    rig.add("dump_cgroup_overview", cgroup="w")
    assert rig.run(1) == "C"
    assert rig.log == []


def test_dumps_at_the_edge_of_pressure(tmp_path):
    rig = Rig(tmp_path, {"w": job(MB, (1, 0.01, 0))}, **PROC)
    rig.add("dump_cgroup_overview", cgroup="w")
    assert rig.run(1) == "C"
    assert rig.log == [f"cgroup=w total=1MB pressure=1.00:0.01:0.00 {SYS}"]


def test_reads_full_line_not_some(tmp_path):
    p = ft.psi(some=(50, 50, 50), full=(0, 0, 0))
    rig = Rig(tmp_path, {"w": job(MB, p)}, **PROC)
    rig.add("dump_cgroup_overview", cgroup="w")
    assert rig.run(1) == "C"
    assert rig.log == []


def test_always_dumps_every_matched_cgroup_in_path_order(tmp_path):
    tree = {"workload.slice/b": job(2 * MB, (0, 0, 0)),
            "workload.slice/a": ft.cgroup(None),  # no memory.current, no memory.pressure
            "system.slice/decoy": job(MB, (90, 90, 90))}
    rig = Rig(tmp_path, tree, **PROC)
    rig.add("dump_cgroup_overview", cgroup="workload.slice/*", always="true")
    assert rig.run(1) == "C"
    assert rig.log == [f"cgroup=workload.slice/a total=0MB pressure=0.00:0.00:0.00 {SYS}",
                       f"cgroup=workload.slice/b total=2MB pressure=0.00:0.00:0.00 {SYS}"]


def test_root_can_be_dumped(tmp_path):
    # oomd's docs say the root cannot be monitored; it can (reference Appendix B)
    rig = Rig(tmp_path, {}, mem_total_kb=4 << 20, mem_free_kb=3 << 20,
              mem_pressure=(12.5, 3, 1), **PROC)
    rig.add("dump_cgroup_overview", cgroup="/")
    assert rig.run(1) == "C"
    assert rig.log == [f"cgroup= total=1024MB pressure=12.50:3.00:1.00 {SYS}"]


def test_missing_vmstat_keys_and_swap_count_as_zero(tmp_path):
    rig = Rig(tmp_path, {"w": job(MB, (5, 5, 5))}, vmstat={"pswpout": 0})
    rig.add("dump_cgroup_overview", cgroup="w")
    assert rig.run(1) == "C"
    assert rig.log == ["cgroup=w total=1MB pressure=5.00:5.00:5.00 swapfree=0MB/0MB pgscan=0"]


def test_follows_pressure_and_vanishing_between_ticks(tmp_path):
    rig = Rig(tmp_path, {"w/a": job(MB, (0, 0, 0)), "w/b": job(MB, (3, 2, 1))}, **PROC)
    rig.add("dump_cgroup_overview", cgroup="w/*")

    def world(tick):
        if tick == 2:
            rig.write("w/a", memory_pressure=ft.psi(full=(4, 4, 4)))
        if tick == 3:
            rig.remove("w/b")

    assert rig.run(3, between=world) == "CCC"
    b = f"cgroup=w/b total=1MB pressure=3.00:2.00:1.00 {SYS}"
    a = f"cgroup=w/a total=1MB pressure=4.00:4.00:4.00 {SYS}"
    assert rig.log == [b, a, b, a]


def test_continues_when_nothing_matches(tmp_path):
    rig = Rig(tmp_path, {})
    rig.add("dump_cgroup_overview", cgroup="nope/*", always="1")
    assert rig.run(1) == "C"
    assert rig.log == []


def test_rejects_missing_cgroup():
    assert rejection("dump_cgroup_overview", always="true") == (
        f"test.json: at {args_path()}: Plugin=dump_cgroup_overview failed to init() with "
        'code=1: Required arg "cgroup" missing in plugin "dump_cgroup_overview"')


def test_rejects_unparsable_always():
    assert rejection("dump_cgroup_overview", cgroup="/", always="sometimes") == (
        f"test.json: at {args_path('always')}: Plugin=dump_cgroup_overview failed to init() "
        'with code=1: Failed to parse argument "always" of plugin "dump_cgroup_overview": '
        "'sometimes' is not a bool (true/True/1/false/False/0)")


def test_rejects_unknown_arg():
    assert rejection("dump_cgroup_overview", cgroup="/", debug="true") == (
        f"test.json: at {args_path('debug')}: Plugin=dump_cgroup_overview failed to init() "
        'with code=1: Unknown arg "debug" in plugin "dump_cgroup_overview"')
