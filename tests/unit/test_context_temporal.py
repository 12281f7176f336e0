"""Temporal metrics (reference §5.4) and eviction (§5.2), against both readers."""

from __future__ import annotations

import os
import shutil

import pytest

from oomd.testing.faketree import cgroup, update_files, write_proc, write_tree
from tests.reference_reader import READERS


@pytest.fixture(params=sorted(READERS))
def reader_kind(request):
    return request.param


def tree(tmp_path, spec):
    root = write_tree(tmp_path / "cg", {"": cgroup(0), **spec})
    proc = write_proc(tmp_path / "proc")
    return root, proc


def test_average_usage_decays_from_a_cold_start(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000), "decoy": cgroup(5000)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    avgs, growths = [], []
    for t in range(4):
        r.refresh(float(t))
        avgs.append(r.value("average_usage", "c"))
        growths.append(r.value("memory_growth", "c"))
    assert avgs == [250, 437, 577, 682]
    assert growths == [4.0, 1000 / 437, 1000 / 577, 1000 / 682]


def test_average_restarts_when_a_tick_skipped_it(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("average_usage", "c") == 250
    r.refresh(1.0)                      # nobody asks: nothing to archive for the next tick
    assert r.value("current_usage", "c") == 1000
    r.refresh(2.0)
    assert r.value("average_usage", "c") == 250


def test_growth_is_zero_when_average_is_zero(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(0)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("memory_growth", "c") == 0.0


def test_average_unavailable_without_memory_current(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(None)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("average_usage", "c") is None
    assert r.value("memory_growth", "c") is None


def test_pg_scan_rate_needs_the_previous_tick(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1, memory_stat={"anon": 1, "pgscan": 77})})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("pg_scan_cumulative", "c") == 77
    assert r.value("pg_scan_rate", "c") is None
    update_files(root, {"c": {"memory.stat": "anon 1\npgscan 100\n"}})
    r.refresh(1.0)
    assert r.value("pg_scan_rate", "c") == 23
    r.refresh(2.0)                      # skipped
    r.refresh(3.0)
    assert r.value("pg_scan_rate", "c") is None


def test_io_cost_rate_is_zero_then_the_difference(reader_kind, tmp_path):
    line = "8:0 rbytes={} wbytes=0 rios={} wios=0 dbytes=0 dios=0\n"
    root, proc = tree(tmp_path, {"c": cgroup(1, extra={"io.stat": line.format(1000, 10)})})
    r = READERS[reader_kind](str(root), proc_root=str(proc), devices=[(8, 0, False)])
    r.refresh(0.0)
    first = r.value("io_cost_cumulative", "c")
    assert r.value("io_cost_rate", "c") == 0.0
    update_files(root, {"c": {"io.stat": line.format(3000, 30)}})
    r.refresh(1.0)
    assert r.value("io_cost_rate", "c") == r.value("io_cost_cumulative", "c") - first
    assert r.value("io_cost_rate", "c") > 0


def test_no_device_means_zero_io_cost(reader_kind, tmp_path):
    line = "8:0 rbytes=5 wbytes=5 rios=5 wios=5 dbytes=5 dios=5\n"
    root, proc = tree(tmp_path, {"c": cgroup(1, extra={"io.stat": line})})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("io_cost_cumulative", "c") == 0.0


def test_cgroup_without_controllers_file_restarts_every_tick(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000)})
    os.unlink(root / "c" / "cgroup.controllers")
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    for t in range(3):
        r.refresh(float(t))
        assert r.value("memory_growth", "c") == 4.0


def test_evicted_cgroup_gets_fresh_temporal_state(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    r.value("average_usage", "c")
    r.refresh(1.0)
    assert r.value("average_usage", "c") == 437
    os.unlink(root / "c" / "cgroup.controllers")
    r.refresh(2.0)
    assert r.value("average_usage", "c") == 250      # evicted at refresh, re-opened fresh


def test_recreated_cgroup_is_a_new_cgroup(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    old_id = r.value("id", "c")
    r.value("average_usage", "c")
    shutil.rmtree(root / "c")           # the readers' open dir fd keeps the old inode in use
    write_tree(root, {"c": cgroup(2000)})
    r.refresh(1.0)
    assert r.value("id", "c") != old_id
    assert r.value("current_usage", "c") == 2000
    assert r.value("average_usage", "c") == 500       # fresh: 0 * 3/4 + 2000 / 4


def test_values_are_cached_within_a_tick(reader_kind, tmp_path):
    root, proc = tree(tmp_path, {"c": cgroup(1000)})
    r = READERS[reader_kind](str(root), proc_root=str(proc))
    r.refresh(0.0)
    assert r.value("current_usage", "c") == 1000
    update_files(root, {"c": {"memory.current": "2000\n"}})
    assert r.value("current_usage", "c") == 1000      # read once per tick (reference §5.1)
    r.refresh(1.0)
    assert r.value("current_usage", "c") == 2000


def test_swapout_rate_follows_pswpout(tmp_path):
    from oomd.context import OomdContext

    root = write_tree(tmp_path / "cg", {"": cgroup(0)})
    proc = write_proc(tmp_path / "proc", vmstat={"pswpout": 100})
    ctx = OomdContext(str(root), proc_root=str(proc), interval=2)
    ctx.refresh(0.0)
    assert (ctx.system.swapout_bps, ctx.system.swapout_bps_60) == (0.0, 0.0)
    write_proc(tmp_path / "proc", vmstat={"pswpout": 150})
    ctx.refresh(2.0)
    bps = 50 * 4096.0 / 2
    assert ctx.system.swapout_bps == bps
    import math
    assert ctx.system.swapout_bps_60 == bps + math.exp(-2 / 60.0) * (0.0 - bps)
    assert ctx.system.swapout_bps_300 == bps + math.exp(-2 / 300.0) * (0.0 - bps)
    os.unlink(proc / "vmstat")
    ctx.refresh(4.0)
    assert ctx.system.swapout_bps_60 == 0.0           # unreadable vmstat resets the averages
