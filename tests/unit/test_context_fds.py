"""File-descriptor economy: cached file fds read with pread, the fd budget, parked directory
fds, and that none of it changes a value."""

from __future__ import annotations

import resource
import shutil

import numpy as np
import pytest

from support import no_free_fds
from oomd.cgpath import CgroupPatterns
from oomd.context import OomdContext, fd_budget_from_rlimit
from oomd.testing.faketree import cgroup, psi, update_files, write_proc, write_tree

PATTERN = CgroupPatterns.parse("s/*")


def make(tmp_path, n=6, **kw):
    spec = {"": cgroup(0), "s": cgroup(0)}
    for i in range(n):
        spec[f"s/c{i}"] = cgroup(1000 + i, mem_pressure=(i, i, i), memory_low=10)
    root = write_tree(tmp_path / "cg", spec)
    proc = write_proc(tmp_path / "proc")
    ctx = OomdContext(str(root), proc_root=str(proc), **kw)
    ctx.set_monitored([(PATTERN, ["current_usage", "mem_pressure"])])
    return ctx, root


def values(ctx):
    rows = ctx.resolve(PATTERN)
    cur = ctx.get("current_usage", rows)
    pr = ctx.get("mem_pressure", rows)
    low = ctx.get("memory_low", rows)
    eff = ctx.get("effective_usage", rows)
    return [ctx.relpath(r) for r in rows], [a.tolist() for a in (*cur, *pr, *low, *eff)]


def test_fake_tree_is_not_cached_by_default(tmp_path):
    ctx, _ = make(tmp_path, fd_budget=1000)
    ctx.refresh(0.0)
    assert not ctx.cache_files
    assert ctx.read_stats["open_fds"] == ctx.nrows             # directory fds only
    assert ctx.read_stats["preads"] == 0


def test_cached_fds_are_reread_with_pread_and_see_in_place_updates(tmp_path):
    ctx, root = make(tmp_path, fd_budget=1000, cache_files=True)
    ctx.refresh(0.0)
    opens = ctx.read_stats["opens"]
    update_files(root, {"s/c0": {"memory.current": "4242\n",
                                 "memory.pressure": psi(full=(9, 8, 7))}})
    ctx.refresh(1.0)
    assert ctx.read_stats["opens"] == opens                     # no open: pread on kept fds
    row = ctx.row_of("s/c0")
    assert ctx.value("current_usage", row) == 4242
    assert ctx.value("mem_pressure", row) == (9.0, 8.0, 7.0)


@pytest.mark.parametrize("budget", [0, 3, 9, 14, 1000])
def test_values_do_not_depend_on_the_fd_budget(tmp_path, budget):
    ref, _ = make(tmp_path / "a", fd_budget=1000, cache_files=False)
    ctx, _ = make(tmp_path / "b", fd_budget=budget, cache_files=True)
    for t in range(3):
        ref.refresh(float(t))
        ctx.refresh(float(t))
        assert values(ctx) == values(ref)
        assert ctx.read_stats["open_fds"] <= max(budget, ctx.nrows) + 1


def test_tight_budget_parks_leaf_directory_fds(tmp_path):
    ctx, root = make(tmp_path, n=6, fd_budget=14, cache_files=True)
    for t in range(3):
        ctx.refresh(float(t))
    st = ctx.read_stats
    assert st["parked"] > 0
    assert st["open_fds"] <= 14 + 1
    # a parked row still answers everything, re-opening its directory on demand
    rows = ctx.resolve(PATTERN)
    pref, ok = ctx.get("kill_preference", rows)
    assert ok.all() and (pref == 0).all()
    assert ctx.dir_fd(int(rows[0])) >= 0


def test_parked_row_replaced_by_a_new_directory_reads_as_vanished(tmp_path):
    ctx, root = make(tmp_path, n=6, fd_budget=14, cache_files=True)
    for t in range(3):
        ctx.refresh(float(t))
    rows = ctx.resolve(PATTERN)
    parked = [int(r) for r in rows if ctx._r.cols["dirfd"][r] < 0]
    assert parked
    victim = ctx.relpath(parked[0])
    shutil.rmtree(root / victim)
    write_tree(root, {victim: cgroup(77)})
    # same tick: the row must not read the new directory's xattrs through its old identity
    vals, ok = ctx.get("kill_preference", np.array([parked[0]], dtype=np.int32))
    assert not ok[0]
    assert ctx.status([parked[0]])[0] == 3
    ctx.refresh(9.0)
    new = ctx.row_of(victim)
    assert ctx.value("current_usage", new) == 77


def test_cache_mode_sees_removed_cgroups_at_the_next_tick(tmp_path):
    ctx, root = make(tmp_path, cache_files=True, fd_budget=1000)
    ctx.refresh(0.0)
    shutil.rmtree(root / "s" / "c1")
    ctx.refresh(1.0)
    assert "s/c1" not in [ctx.relpath(r) for r in ctx.resolve(PATTERN)]


def test_dropping_a_monitored_metric_closes_its_cached_fds(tmp_path):
    ctx, _ = make(tmp_path, cache_files=True, fd_budget=1000)
    ctx.refresh(0.0)
    before = ctx.read_stats["open_fds"]
    ctx.set_monitored([(PATTERN, ["current_usage"])])
    assert ctx.read_stats["open_fds"] == before - 6


def test_fd_budget_raises_the_soft_limit_and_keeps_a_reserve():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        budget = fd_budget_from_rlimit()
        now_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert now_soft == hard
        assert budget == hard - max(256, hard // 50)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_running_out_of_fds_never_raises(tmp_path):
    ctx, _ = make(tmp_path, n=6, fd_budget=1000, cache_files=True)
    ctx.refresh(0.0)
    with no_free_fds():
        ctx.refresh(1.0)
        ctx.get("memory_low", ctx.resolve(PATTERN))
        assert ctx.read_stats["fd_exhausted"] > 0
    ctx.refresh(2.0)
    assert ctx.value("memory_low", ctx.row_of("s/c0")) == 10


def test_parked_rows_survive_fd_exhaustion(tmp_path):
    ctx, _ = make(tmp_path, n=6, fd_budget=14, cache_files=True)
    for t in range(3):
        ctx.refresh(float(t))
    rows = ctx.resolve(PATTERN)
    parked = [int(r) for r in rows if ctx._r.cols["dirfd"][r] < 0]
    assert parked
    ids = [ctx.cgroup_id(r) for r in parked]
    with no_free_fds():
        vals, ok = ctx.get("memory_low", np.array(parked, dtype=np.int32))
        assert not ok.any()
        assert (ctx.status(parked) == 2).all()            # unreadable, not vanished
    ctx.refresh(9.0)
    assert [ctx.cgroup_id(ctx.row_of(ctx.relpath(r))) for r in parked] == ids
    assert (ctx.get("memory_low", np.array(parked, dtype=np.int32))[0] == 10).all()


def test_rows_opened_at_the_budget_park_cached_leaves_first(tmp_path):
    """A second pattern's cgroups are opened after the first pattern's files took the budget:
    the first pattern's fully cached leaves park to make room, the budget holds."""
    spec = {"": cgroup(0), "s": cgroup(0), "t": cgroup(0)}
    for i in range(6):
        spec[f"s/c{i}"] = cgroup(1000 + i, mem_pressure=(i, i, i))
    for i in range(2):
        spec[f"t/c{i}"] = cgroup(2000 + i, mem_pressure=(i, i, i))
    root = write_tree(tmp_path / "cg", spec)
    ctx = OomdContext(str(root), proc_root=str(write_proc(tmp_path / "proc")), fd_budget=20,
                      cache_files=True)
    t = CgroupPatterns.parse("t/*")
    ctx.set_monitored([(PATTERN, ["current_usage", "mem_pressure"]),
                       (t, ["current_usage", "mem_pressure"])])
    ctx.refresh(0.0)
    st = ctx.read_stats
    assert st["open_fds"] <= 20                 # s's leaves parked before t's were opened
    assert st["fd_exhausted"] == 0 and st["parked"] >= 5
    assert [ctx.relpath(r) for r in ctx.resolve(t)] == ["t/c0", "t/c1"]
    assert ctx.get("current_usage", ctx.resolve(t))[0].tolist() == [2000, 2001]
    ctx.close()


@pytest.mark.parametrize("cache_files", [False, True])
def test_cgroup_not_opened_for_lack_of_fds_is_resolved_again(tmp_path, cache_files):
    """Out of fds says nothing about a cgroup: the resolution that missed it is not kept."""
    ctx, root = make(tmp_path, n=2, fd_budget=1000, cache_files=cache_files)
    ctx.refresh(0.0)
    write_tree(root, {"s/new": cgroup(4242)})
    with no_free_fds():
        ctx.refresh(1.0)
        assert "s/new" not in [ctx.relpath(r) for r in ctx.resolve(PATTERN)]
        assert ctx.read_stats["fd_exhausted"] > 0
    ctx.refresh(2.0)
    rows = ctx.resolve(PATTERN)
    assert [ctx.relpath(r) for r in rows] == ["s/c0", "s/c1", "s/new"]
    assert ctx.value("current_usage", ctx.row_of("s/new")) == 4242
    ctx.close()


@pytest.mark.parametrize("keep_config", [False, True])
def test_budget_holds_when_rows_read_more_files_than_it_can_cache(tmp_path, keep_config):
    """Leaves that cannot cache every file they read give their directory fd back past the
    budget (re-opened when needed) instead of holding one each until the process runs out."""
    ctx, _ = make(tmp_path, n=30, fd_budget=20, cache_files=True, keep_config=keep_config)
    ref, _ = make(tmp_path / "ref", n=30, fd_budget=1000, cache_files=False)
    metrics = ["current_usage", "mem_pressure", "memory_min", "memory_low", "kill_preference"]
    ctx.set_monitored([(PATTERN, metrics)])
    ref.set_monitored([(PATTERN, metrics)])
    for t in range(4):
        ctx.refresh(float(t))
        ref.refresh(float(t))
        assert values(ctx) == values(ref)
        st = ctx.read_stats
        assert st["open_fds"] <= 20 + 1 and st["fd_exhausted"] == 0
    ctx.close()
    ref.close()
