"""A steady tick on cgroup2 costs only the preads of the files the config needs (issue 14):
files absent because their controller is not enabled are remembered until inotify says they
may be back, liveness comes from the watches and the reads themselves (no per-row faccessat),
and the fd budget goes to per-tick files before directory fds. The syscalls are counted with
the reader's own counters (``read_stats``); the real-kernel tests run in cgroups they create
under this host's cgroup2 mount and remove afterwards."""

from __future__ import annotations

import os
import time

import pytest

from oomd import logs
from oomd.cgpath import CgroupPatterns
from oomd.context import OomdContext
from oomd.fs import cgroup2_mount
from oomd.testing.faketree import cgroup, psi, write_proc, write_tree

MIB = 1 << 20
LEAVES = CgroupPatterns.parse("*")
# what a PSI config with a kill plugin monitors per leaf: both pressures (the detectors), the
# killer's per-tick columns, and current_usage (absent where the memory controller is off)
METRICS = ["mem_pressure", "io_pressure", "current_usage", "oom_group", "kill_preference"]
COUNTED = ("opens", "preads", "reads", "alive_checks", "listings", "unparks")


def counts(ctx) -> dict[str, int]:
    st = ctx.read_stats
    return {k: st[k] for k in COUNTED}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in COUNTED}


@pytest.fixture
def cg2_leaves():
    """A cgroup of this test's own under the cgroup2 mount with 40 empty leaves; removed after."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount in /proc/mounts")
    base = os.path.join(mount, f"pyoomd-test-i14-steady-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.mkdir(base)
    except OSError as e:
        pytest.skip(f"cannot create test cgroups under {mount}: {e}")
    names = [f"leaf{i:02d}" for i in range(40)]
    try:
        for n in names:
            os.mkdir(os.path.join(base, n))
        yield base, names
    finally:
        for n in names:
            try:
                os.rmdir(os.path.join(base, n))
            except OSError:
                pass
        os.rmdir(base)


def present(base: str, name: str, files: tuple[str, ...]) -> int:
    return sum(os.path.exists(os.path.join(base, name, f)) for f in files)


def test_cgroup2_steady_tick_is_only_preads_of_the_needed_files(cg2_leaves):
    base, names = cg2_leaves
    ctx = OomdContext(base, fd_budget=1000)
    ctx.set_monitored([(LEAVES, METRICS)])
    for t in range(3):
        ctx.refresh(float(t))
    assert ctx.cache_files and ctx.keep_config
    files = ("memory.pressure", "io.pressure", "memory.current", "memory.oom.group")
    n_present = sum(present(base, n, files) for n in names)
    before = counts(ctx)
    ctx.refresh(3.0)
    got = delta(before, counts(ctx))
    # no openat, no faccessat, no listing, no directory re-opened: one pread per present file
    assert got == {"opens": 0, "preads": n_present, "reads": n_present, "alive_checks": 0,
                   "listings": 0, "unparks": 0}
    st = ctx.read_stats
    absent = 4 * len(names) - n_present
    assert st["absent_files"] == absent
    assert st["parked"] == len(names)            # leaves hold their files, not their directory
    rows = ctx.resolve(LEAVES)
    assert len(rows) == len(names)
    assert ctx.get("mem_pressure", rows)[1].all() and ctx.get("io_pressure", rows)[1].all()
    if not os.path.exists(os.path.join(base, names[0], "memory.current")):
        assert not ctx.get("current_usage", rows)[1].any()   # missing, as when opened
    ctx.close()


def test_cgroup2_removed_leaf_is_gone_next_tick_without_checking_the_others(cg2_leaves):
    base, names = cg2_leaves
    ctx = OomdContext(base, fd_budget=1000)
    ctx.set_monitored([(LEAVES, ["mem_pressure"])])
    for t in range(3):
        ctx.refresh(float(t))
    gone = names.pop(7)
    old = ctx.cgroup_id(ctx.row_of(gone))
    os.rmdir(os.path.join(base, gone))
    before = counts(ctx)
    ctx.refresh(3.0)
    got = delta(before, counts(ctx))
    assert [ctx.relpath(r) for r in ctx.resolve(LEAVES)] == names
    assert got["alive_checks"] == 0 and got["listings"] == 1   # the parent's IN_DELETE
    os.mkdir(os.path.join(base, gone))                          # re-created: a new row
    ctx.refresh(4.0)
    row = ctx.row_of(gone)
    assert row is not None and ctx.cgroup_id(row) != old
    names.append(gone)
    ctx.close()


def test_cgroup2_fd_budget_goes_to_files_first(cg2_leaves):
    """40 leaves with two per-tick files each under a budget of 60 fds: files are cached up to
    the budget, the directories are not held, the rest is read with openat, nothing fails."""
    base, names = cg2_leaves
    ctx = OomdContext(base, fd_budget=60)
    ctx.set_monitored([(LEAVES, ["mem_pressure", "io_pressure"])])
    with logs.capture() as lines:
        for t in range(4):
            ctx.refresh(float(t))
    said = [m for m in logs.messages(lines) if "fd budget 60 reached" in m]
    assert len(said) == 1                                     # slower reads, said once
    st = ctx.read_stats
    assert not ctx.starved and st["fd_exhausted"] == 0 and st["unreadable"] == 0
    files = ctx._r.file_fd_count()
    assert files >= 56 and st["open_fds"] <= 60              # all but the root's fd and slack
    before = counts(ctx)
    ctx.refresh(4.0)
    got = delta(before, counts(ctx))
    assert got["preads"] == files and got["preads"] + got["opens"] == 2 * len(names)
    rows = ctx.resolve(LEAVES)
    assert ctx.get("mem_pressure", rows)[1].all() and ctx.get("io_pressure", rows)[1].all()
    ctx.close()


# ---- the same rules on a fake tree read as cgroup2 (--assume-cgroup2) ---------------------

def fake(tmp_path, **kw):
    spec = {"": cgroup(0), "s": cgroup(0)}
    for i in range(4):
        spec[f"s/c{i}"] = cgroup((i + 1) * MIB, mem_pressure=psi(some=(1.0, 1.0, 1.0)))
    root = write_tree(tmp_path / "cg", spec)
    for i in range(4):
        os.unlink(root / "s" / f"c{i}" / "memory.current")       # "memory" not enabled in s
    ctx = OomdContext(str(root), proc_root=str(write_proc(tmp_path / "proc")), cache_files=True,
                      remember_absent=True, fd_budget=1000, **kw)
    ctx.set_monitored([(CgroupPatterns.parse("s/*"), ["mem_pressure", "current_usage"])])
    return ctx, root


def test_absent_file_is_not_opened_again_until_a_subtree_control_write(tmp_path):
    ctx, root = fake(tmp_path)
    for t in range(2):
        ctx.refresh(float(t))
    before = counts(ctx)
    ctx.refresh(2.0)
    assert delta(before, counts(ctx))["opens"] == 0
    rows = ctx.resolve(CgroupPatterns.parse("s/*"))
    assert not ctx.get("current_usage", rows)[1].any()
    missing = ctx.read_stats["missing:memory.current"]
    ctx.refresh(3.0)
    assert ctx.read_stats["missing:memory.current"] == missing + 4   # still counted missing
    for i in range(4):                                               # the controller comes
        (root / "s" / f"c{i}" / "memory.current").write_text(f"{(i + 1) * MIB}\n")
    ctx.refresh(4.0)
    assert not ctx.get("current_usage", rows)[1].any()               # no event yet: unseen
    (root / "s" / "cgroup.subtree_control").write_text("+memory\n")
    ctx.refresh(5.0)                                                 # within a tick
    vals, valid = ctx.get("current_usage", rows)
    assert valid.all() and vals.tolist() == [(i + 1) * MIB for i in range(4)]
    ctx.close()


def test_absent_file_is_tried_again_by_the_safety_retry(tmp_path):
    ctx, root = fake(tmp_path)
    ctx._r.absent_retry = 3600.0
    for t in range(2):
        ctx.refresh(float(t))
    (root / "s" / "c1" / "memory.current").write_text("5\n")
    ctx.refresh(2.0)
    row = ctx.row_of("s/c1")
    assert ctx.value("current_usage", row) is None
    ctx._r.absent_retry = 0.0
    ctx.refresh(3.0)
    assert ctx.value("current_usage", row) == 5
    ctx.close()


def test_without_remember_absent_a_missing_file_is_tried_every_tick(tmp_path):
    ctx, root = fake(tmp_path)
    ctx.close()
    ctx = OomdContext(str(root), proc_root=str(tmp_path / "proc"), cache_files=True,
                      fd_budget=1000)
    ctx.set_monitored([(CgroupPatterns.parse("s/*"), ["current_usage"])])
    ctx.refresh(0.0)
    before = counts(ctx)
    ctx.refresh(1.0)
    assert delta(before, counts(ctx))["opens"] == 4
    ctx.close()

