"""System files (reference §5.5): /proc/meminfo, swaps, vmstat, swappiness and pressure, good
and broken, against both readers where the reference has the value."""

from __future__ import annotations

import os

import numpy as np
import pytest

from oomd.context import OomdContext
from oomd.testing.faketree import cgroup, meminfo, psi, write_proc, write_tree
from tests.reference_reader import READERS, PlainReader

UP = psi(some=(1.5, 2.5, 3.5), full=(0.5, 0.25, 0.75), some_total=11, full_total=22)


@pytest.fixture(params=sorted(READERS))
def reader_kind(request):
    return request.param


def make(kind, tmp_path, **proc):
    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    p = write_proc(tmp_path / "proc", **proc)
    r = READERS[kind](str(root), proc_root=str(p))
    r.refresh(0.0)
    return r, p


def test_root_usage_is_memtotal_minus_memfree(reader_kind, tmp_path):
    r, _ = make(reader_kind, tmp_path, mem_total_kb=1000, mem_free_kb=250)
    assert r.value("current_usage", "") == 750 * 1024


def test_root_usage_unavailable_without_memfree(reader_kind, tmp_path):
    r, p = make(reader_kind, tmp_path)
    (p / "meminfo").write_text(meminfo({"MemTotal": 1000}))
    r.refresh(1.0)
    assert r.value("current_usage", "") is None


def test_root_usage_unavailable_without_meminfo(reader_kind, tmp_path):
    r, p = make(reader_kind, tmp_path)
    os.unlink(p / "meminfo")
    r.refresh(1.0)
    assert r.value("current_usage", "") is None


def test_root_pressure_comes_from_proc(reader_kind, tmp_path):
    r, _ = make(reader_kind, tmp_path, mem_pressure=UP, io_pressure=UP)
    assert r.value("mem_pressure", "") == (0.5, 0.25, 0.75)
    assert r.value("io_pressure_some", "") == (1.5, 2.5, 3.5)
    assert r.value("mem_pressure_full_total", "") == 22


def test_root_pressure_falls_back_to_mempressure(reader_kind, tmp_path):
    legacy = "aggr 1\nsome 1.00 2.00 3.00\nfull 4.00 5.00 6.00\n"
    r, _ = make(reader_kind, tmp_path, mem_pressure=None, extra={"mempressure": legacy})
    assert r.value("mem_pressure", "") == (4.0, 5.0, 6.0)
    assert r.value("mem_pressure_some_total", "") is None


def test_root_pressure_unavailable_when_garbled(reader_kind, tmp_path):
    r, _ = make(reader_kind, tmp_path, mem_pressure="nonsense\n")
    assert r.value("mem_pressure", "") is None


def meminfo_text():
    return ("MemTotal:       16384 kB\nMemFree:         1024 kB\nNoSpace:1 kB\n"
            "Bad: x kB\nHugePages_Total:       0\nSwapTotal:          8 kB\n")


def test_meminfo_dict_keeps_only_lines_that_parse(tmp_path):
    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    p = write_proc(tmp_path / "proc", extra={"meminfo": meminfo_text()})
    ctx = OomdContext(str(root), proc_root=str(p))
    ref = PlainReader(str(root), proc_root=str(p))
    ctx.refresh(0.0)
    ref.refresh(0.0)
    assert ctx.system.meminfo == ref.sys["meminfo"] == {
        "MemTotal": 16384 * 1024, "MemFree": 1024 * 1024, "HugePages_Total": 0,
        "SwapTotal": 8 * 1024}


def test_swaps_sum_devices_and_skip_malformed_lines(tmp_path):
    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    p = write_proc(tmp_path / "proc", swap_devices=[("/dev/a", 100, 10), ("/swapfile", 50, 5)])
    with open(p / "swaps", "a") as f:
        f.write("garbage line without tabs\n")
    ctx = OomdContext(str(root), proc_root=str(p))
    ctx.refresh(0.0)
    assert (ctx.system.swap_total, ctx.system.swap_used) == (150 * 1024, 15 * 1024)
    assert ctx.read_stats["system_malformed"] == 1
    ref = PlainReader(str(root), proc_root=str(p))
    ref.refresh(0.0)
    assert (ref.sys["swap_total"], ref.sys["swap_used"]) == (150 * 1024, 15 * 1024)


def test_swappiness_and_vmstat(tmp_path):
    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    p = write_proc(tmp_path / "proc", swappiness=10,
                   vmstat={"pswpout": 5, "pgscan_kswapd": 7, "pgscan_direct": 9})
    with open(p / "vmstat", "a") as f:
        f.write("broken\nnumber x\n")
    ctx = OomdContext(str(root), proc_root=str(p))
    ctx.refresh(0.0)
    assert ctx.system.swappiness == 10
    assert ctx.system.vmstat == {"pswpout": 5, "pgscan_kswapd": 7, "pgscan_direct": 9}
    assert ctx.read_stats["system_malformed"] == 1


@pytest.mark.parametrize("name", ["meminfo", "vmstat", "swaps", "sys/vm/swappiness",
                                  "pressure/memory", "pressure/io"])
def test_missing_system_file_never_raises(tmp_path, name):
    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    p = write_proc(tmp_path / "proc")
    os.unlink(p / name)
    ctx = OomdContext(str(root), proc_root=str(p))
    for t in range(2):
        ctx.refresh(float(t))
        ctx.system.meminfo, ctx.system.swap_total, ctx.system.mem_pressure
        ctx.value("current_usage", ctx.row_of(""))
    assert ctx.read_stats["system_unreadable"] == 2        # once per tick
    assert ctx.system.swapout_bps_60 == 0.0


def test_real_proc_is_readable():
    """The host's own /proc parses (root metrics come from it in production)."""
    if not os.path.exists("/proc/pressure/memory"):
        pytest.skip("this kernel has no PSI (/proc/pressure/memory)")
    ctx = OomdContext("/sys/fs/cgroup", fd_budget=64)
    ctx.refresh(0.0)
    assert ctx.system.meminfo["MemTotal"] > 0
    assert ctx.read_stats["system_unreadable"] == 0
    assert all(isinstance(x, np.float32) for x in ctx.system.mem_pressure)
