"""The OomdContext API of docs/design.md: rows, vectorized and scalar access, views, status,
counters and logging. (Rankings over a real context: test_context_ranking.py.)"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from oomd import logs
from oomd.cgpath import CgroupPatterns
from oomd.context import METRICS, OomdContext
from oomd.testing.faketree import cgroup, write_proc, write_tree

MIB = 1 << 20
ALL = CgroupPatterns.parse("/,*,*/*")


@pytest.fixture
def ctx(tmp_path):
    spec = {
        "": cgroup(0),
        "system.slice": cgroup(500 * MIB, memory_low=100 * MIB),
        "system.slice/a.service": cgroup(300 * MIB, memory_low=50 * MIB,
                                         mem_pressure=(12.5, 6.25, 1.0),
                                         io_pressure=(1, 2, 3),
                                         memory_stat={"anon": 5, "file": 6, "pgscan": 7},
                                         nr_dying_descendants=2, oom_group=1,
                                         swap_current=MIB, swap_max="max",
                                         extra={"io.stat": "8:0 rbytes=1 wbytes=2 rios=3 "
                                                           "wios=4 dbytes=5 dios=6\n"}),
        "system.slice/decoy.service": cgroup(100 * MIB, populated=0),
        "system.slice/bad.service": cgroup(None, extra={"memory.current": "garbage\n"}),
    }
    root = write_tree(tmp_path / "cg", spec)
    proc = write_proc(tmp_path / "proc")
    c = OomdContext(str(root), proc_root=str(proc), devices=[(8, 0, False)], fd_budget=1000)
    c.root = root
    c.refresh(1.5)
    return c


def test_tick_and_time_are_set_by_refresh(ctx):
    assert (ctx.tick, ctx.now) == (1, 1.5)
    ctx.refresh(2.5)
    assert (ctx.tick, ctx.now) == (2, 2.5)
    assert ctx.action_context is None and ctx.invoking_ruleset is None and ctx.engine is None


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_value_equals_vectorized_get(ctx, metric):
    rows = ctx.resolve(ALL)
    vals, valid = ctx.get(metric, rows)
    assert len(vals) == len(valid) == len(rows)
    for row, v, ok in zip(rows, vals, valid):
        one = ctx.value(metric, int(row))
        if not ok:
            assert one is None
        elif METRICS[metric].dtype == "float32x3":
            assert one == tuple(v)
        else:
            assert one == v


def test_view_has_oomds_accessor_names(ctx):
    row = ctx.row_of("system.slice/a.service")
    view = ctx.cgroup(row)
    assert view.relpath == "system.slice/a.service"
    assert view.abspath == os.path.join(str(ctx.root), "system.slice/a.service")
    assert view.current_usage == 300 * MIB
    assert view.mem_pressure == (12.5, 6.25, 1.0)
    assert all(isinstance(x, np.float32) for x in view.mem_pressure)
    assert view.io_pressure == (1.0, 2.0, 3.0)
    assert view.anon_usage == 5
    assert view.pg_scan_cumulative == 7
    assert view.nr_dying_descendants == 2
    assert view.oom_group is True
    assert view.is_populated is True
    assert view.kill_preference == 0
    assert view.swap_usage == MIB
    assert view.io_cost_cumulative > 0
    assert view.id == os.stat(view.abspath).st_ino == ctx.cgroup_id(row)
    assert view.parent().relpath == "system.slice"
    assert [c.relpath for c in ctx.cgroup(ctx.row_of("system.slice")).children()] == [
        "system.slice/a.service", "system.slice/bad.service", "system.slice/decoy.service"]
    assert ctx.cgroup(ctx.row_of("system.slice/decoy.service")).is_populated is False


def test_psi_arithmetic_stays_float32(ctx):
    a10, a60, a300 = ctx.cgroup(ctx.row_of("system.slice/a.service")).mem_pressure
    assert isinstance(3 * a10 + 2 * a60 + a300, np.float32)


def test_root_reads_proc(ctx):
    root = ctx.row_of("")
    assert ctx.relpath(root) == "" and ctx.abspath(root) == str(ctx.root)
    assert ctx.parent(root) == -1
    assert ctx.value("current_usage", root) == (16 << 30) - (8 << 30)
    assert ctx.value("mem_pressure", root) == (0.0, 0.0, 0.0)
    assert ctx.system.meminfo["MemTotal"] == 16 << 30
    assert ctx.system.swap_total == 0 and ctx.system.swappiness == 60


def test_row_of_missing_cgroup_is_none(ctx):
    assert ctx.row_of("system.slice/nope") is None
    assert ctx.row_of("system.slice/a.service/deeper") is None


def test_malformed_file_sets_status_counts_and_logs_once(ctx):
    rows = ctx.resolve(CgroupPatterns.parse("system.slice/*"))
    with logs.capture() as captured:
        for t in range(3):
            ctx.refresh(float(t + 2))
            vals, valid = ctx.get("current_usage", rows)
            ctx.get("current_usage", rows)
    bad = ctx.row_of("system.slice/bad.service")
    assert list(valid) == [True, False, True]
    assert ctx.status([bad])[0] == 1
    assert ctx.status(rows).tolist() == [0, 1, 0]
    st = ctx.read_stats
    assert st["malformed:memory.current"] == 3 and st["malformed"] >= 3
    lines = [m for m in logs.messages(captured) if "bad.service" in m]
    assert lines == [f"[context] {ctx.abspath(bad)}/memory.current: malformed"]


def test_vanished_cgroup_mid_tick_never_raises(ctx):
    rows = ctx.resolve(CgroupPatterns.parse("system.slice/*"))
    shutil.rmtree(ctx.root / "system.slice" / "decoy.service")
    for metric in METRICS:
        vals, valid = ctx.get(metric, rows)
        assert len(valid) == 3
    decoy = int(rows[2])
    assert ctx.status([decoy])[0] == 3
    assert ctx.read_stats["vanished"] > 0
    ctx.refresh(3.0)
    assert [ctx.relpath(r) for r in ctx.resolve(CgroupPatterns.parse("system.slice/*"))] == [
        "system.slice/a.service", "system.slice/bad.service"]


def test_unknown_monitored_metric_is_rejected(ctx):
    with pytest.raises(KeyError):
        ctx.set_monitored([(ALL, ["no_such_metric"])])


def test_endless_file_is_malformed_not_an_unbounded_read(tmp_path):
    """A fake tree can link a control file to /dev/zero; the reader stops at 16 MiB."""
    root = write_tree(tmp_path / "cg", {"": cgroup(0), "a": cgroup(1 << 20)})
    os.symlink("/dev/zero", root / "a" / "memory.stat")
    ctx = OomdContext(str(root), proc_root=str(write_proc(tmp_path / "proc")))
    ctx.refresh(1.0)
    row = ctx.row_of("a")
    assert ctx.value("pgscan", row) is None
    assert ctx.status([row])[0] == 1  # malformed
    assert ctx.read_stats["malformed:memory.stat"] == 1
    assert ctx.value("current_usage", row) == 1 << 20
