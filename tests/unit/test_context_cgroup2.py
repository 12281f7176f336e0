"""On the real cgroup2 filesystem, in cgroups this test creates and removes: the kernel facts
the cache mode relies on (inotify on mkdir/rmdir, ENODEV through a kept fd after rmdir, a new
inode for a re-created cgroup), and PSI files read through kept fds."""

from __future__ import annotations

import os
import time

import pytest

from oomd.cgpath import CgroupPatterns
from oomd.context import STATUS_VANISHED, OomdContext
from oomd.fs import cgroup2_mount


@pytest.fixture
def cg2():
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount in /proc/mounts")
    base = os.path.join(mount, f"pyoomd-core-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.mkdir(base)
    except OSError as e:
        pytest.skip(f"cannot create a test cgroup under {mount}: {e}")
    made = [base]

    def mk(rel):
        path = os.path.join(base, rel)
        os.mkdir(path)
        made.append(path)
        return path

    def rm(rel):
        path = os.path.join(base, rel)
        os.rmdir(path)
        made.remove(path)

    try:
        yield base, mk, rm
    finally:
        for path in sorted(made, key=len, reverse=True):
            try:
                os.rmdir(path)
            except OSError:
                pass


def test_cgroup2_is_detected_and_cached(cg2):
    base, mk, rm = cg2
    mk("a")
    mk("b")
    ctx = OomdContext(base, fd_budget=256)
    p = CgroupPatterns.parse("*")
    ctx.set_monitored([(p, ["mem_pressure", "is_populated"])])
    ctx.refresh(0.0)
    assert ctx.cache_files
    rows = ctx.resolve(p)
    assert [ctx.relpath(r) for r in rows] == ["a", "b"]
    pr, ok = ctx.get("mem_pressure", rows)
    if not os.path.exists(os.path.join(base, "a", "memory.pressure")):
        pytest.skip("this kernel has no per-cgroup PSI files")
    assert ok.all()
    pop, ok = ctx.get("is_populated", rows)
    assert ok.all() and not pop.any()
    ctx.refresh(1.0)
    assert ctx.read_stats["preads"] > 0
    ctx.close()


def test_cgroup2_mkdir_rmdir_recreate_seen_through_inotify(cg2):
    base, mk, rm = cg2
    mk("a")
    mk("b")
    ctx = OomdContext(base, fd_budget=256)
    p = CgroupPatterns.parse("*")
    ctx.set_monitored([(p, ["is_populated"])])
    ctx.refresh(0.0)
    old_b = ctx.cgroup_id(ctx.row_of("b"))
    mk("c")
    rm("b")
    ctx.refresh(1.0)
    assert [ctx.relpath(r) for r in ctx.resolve(p)] == ["a", "c"]
    assert ctx.read_stats["dir_events"] >= 2
    mk("b")
    ctx.refresh(2.0)
    assert [ctx.relpath(r) for r in ctx.resolve(p)] == ["a", "b", "c"]
    assert ctx.cgroup_id(ctx.row_of("b")) != old_b
    ctx.close()


def test_cgroup2_vanished_mid_tick_through_a_kept_fd(cg2):
    import numpy as np

    from oomd import _fastcg

    base, mk, rm = cg2
    mk("a")
    r = _fastcg.Reader(base.encode(), b"/proc", fd_budget=256)
    root = r.open_root()
    a = r.open_child(root, b"a")
    events = 1 << _fastcg.K["events"]
    rows = np.array([a], dtype=np.int32)
    r.cacheable = events
    r.begin_tick()
    r.load(rows, events)
    assert r.cols["ffd"][a, _fastcg.K["events"]] >= 0          # kept for pread
    rm("a")
    r.begin_tick()
    r.load(rows, events)                                        # pread: ENODEV
    assert r.cols["status"][a] == _fastcg.ST_VANISHED_
    assert not r.cols["valid"][a] & np.uint64(1 << _fastcg.V["populated"])
    assert r.cols["ffd"][a, _fastcg.K["events"]] == -1         # the dead fd was dropped
    assert r.counters()["vanished"] == {"cgroup.events": 1}
    r.close()


def test_cgroup2_vanished_mid_tick_reads_as_unavailable(cg2):
    base, mk, rm = cg2
    mk("a")
    ctx = OomdContext(base, fd_budget=256)
    ctx.refresh(0.0)
    row = ctx.row_of("a")
    rm("a")
    assert ctx.value("mem_pressure", row) is None
    assert ctx.value("nr_dying_descendants", row) is None
    assert ctx.status([row])[0] == STATUS_VANISHED
    ctx.refresh(1.0)
    assert ctx.row_of("a") is None
    ctx.close()
