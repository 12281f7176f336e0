"""File-descriptor economy: cached file fds read with pread, the fd budget, parked directory
fds, and that none of it changes a value."""

from __future__ import annotations

import os
import resource
import shutil

import numpy as np
import pytest

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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    try:
        ctx.refresh(0.0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 2, hard))
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        ctx.refresh(1.0)
        ctx.get("memory_low", ctx.resolve(PATTERN))
        assert ctx.read_stats["fd_exhausted"] > 0
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 2, hard))
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        vals, ok = ctx.get("memory_low", np.array(parked, dtype=np.int32))
        assert not ok.any()
        assert (ctx.status(parked) == 2).all()            # unreadable, not vanished
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    ctx.refresh(9.0)
    assert [ctx.cgroup_id(ctx.row_of(ctx.relpath(r))) for r in parked] == ids
    assert (ctx.get("memory_low", np.array(parked, dtype=np.int32))[0] == 10).all()
