"""Configuration-like values kept across ticks (``keep_config``): memory.min/low/high/max,
memory.swap.max, memory.oom.group and the kill-preference xattrs are read once for a row with
an inotify watch, and read again only after inotify names that file (or reports IN_ATTRIB on
the directory, or overflows). Fake trees with ``cache_files=True`` here; the kernel side is
checked on the real cgroup2 filesystem at the end, in cgroups the tests create."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import pytest

from support import no_free_fds
from oomd import _fastcg
from oomd.cgpath import CgroupPatterns
from oomd.context import OomdContext
from oomd.fs import cgroup2_mount
from oomd.testing.faketree import cgroup, update_files, write_proc, write_tree

MIB = 1 << 20
PATTERN = CgroupPatterns.parse("s/*")
CONFIG = ("memory_min", "memory_low", "memory_high", "memory_max", "swap_max", "oom_group",
          "kill_preference")


def make(tmp_path, n=4, metrics=CONFIG, **kw):
    spec = {"": cgroup(0), "s": cgroup(0)}
    for i in range(n):
        spec[f"s/c{i}"] = cgroup((i + 1) * MIB, memory_min=i, memory_low=10 * i,
                                 memory_high=100 + i, swap_max=1000 + i, oom_group=i % 2)
    root = write_tree(tmp_path / "cg", spec)
    kw.setdefault("cache_files", True)
    kw.setdefault("fd_budget", 1000)
    ctx = OomdContext(str(root), proc_root=str(write_proc(tmp_path / "proc")), **kw)
    ctx.set_monitored([(PATTERN, list(metrics))])
    return ctx, root


def value(ctx, metric, rel):
    return ctx.value(metric, ctx.row_of(rel))


def reads(ctx) -> int:
    return ctx.read_stats["reads"]


def test_config_values_are_read_once_then_kept(tmp_path):
    ctx, _ = make(tmp_path)
    ctx.refresh(0.0)
    assert ctx.keep_config
    first = reads(ctx)
    assert first >= 4 * len(CONFIG)
    assert ctx.read_stats["kept_values"] == 4 * len(CONFIG)
    for t in range(1, 4):
        ctx.refresh(float(t))
        assert reads(ctx) == first                  # nothing read again
    assert value(ctx, "memory_low", "s/c2") == 20
    assert value(ctx, "swap_max", "s/c3") == 1003
    assert value(ctx, "oom_group", "s/c1") is True
    assert value(ctx, "kill_preference", "s/c0") == 0
    ctx.close()


def test_leaves_watch_their_configuration_files_not_their_directory(tmp_path):
    """A directory watch that reports file writes puts every read of a file in that directory
    on the kernel's slower fsnotify path: the per-tick counters of leaves must not pay it."""
    ctx, _ = make(tmp_path, metrics=("memory_min", "memory_low", "kill_preference",
                                      "current_usage"))
    ctx.refresh(0.0)
    rows = ctx.resolve(PATTERN)
    cols = ctx._r.cols
    assert (cols["wd"][rows] < 0).all()                   # no directory watch on leaves
    k = _fastcg.K
    assert (cols["fwd"][rows][:, [k["min"], k["low"]]] >= 0).all()
    assert (cols["fwd"][rows][:, k["current"]] < 0).all()
    assert ctx.read_stats["watches"] == 2 + 2 * 4          # root and s; min and low per leaf
    ctx.close()


def test_rows_under_an_unwatched_parent_keep_nothing(tmp_path):
    """The parent's watch reports controller changes and the row's xattrs: without it nothing
    is kept (here the parent directory was never listed)."""
    root = write_tree(tmp_path / "cg", {"": cgroup(0), "s": cgroup(0),
                                         "s/c0": cgroup(MIB, memory_low=5)})
    r = _fastcg.Reader(str(root).encode(), str(write_proc(tmp_path / "proc")).encode(),
                       fd_budget=100, cache_files=True)
    s = r.open_child(r.open_root(), b"s")
    c0 = np.array([r.open_child(s, b"c0")], dtype=np.int32)
    low = 1 << _fastcg.K["low"]
    for _ in range(2):
        r.begin_tick()
        r.load(c0, low)
    assert r.cols["memory_low"][c0[0]] == 5
    assert r.counters()["reads"] == 2 and r.counters()["kept_values"] == 0
    r.close()


def test_written_value_is_seen_on_the_very_next_tick(tmp_path):
    ctx, root = make(tmp_path)
    ctx.refresh(0.0)
    before = reads(ctx)
    update_files(root, {"s/c1": {"memory.low": "4096\n"}})
    ctx.refresh(1.0)
    assert value(ctx, "memory_low", "s/c1") == 4096
    assert reads(ctx) == before + 1                 # only that file of that row
    assert value(ctx, "memory_low", "s/c0") == 0
    assert ctx.read_stats["config_invalidations"] == 1
    ctx.close()


def test_write_right_after_the_first_read_is_not_lost(tmp_path):
    """The watch exists before the first read: a write just after it is reported."""
    ctx, root = make(tmp_path, metrics=("memory_max",))
    ctx.refresh(0.0)
    assert value(ctx, "memory_max", "s/c0") == (1 << 63) - 1
    update_files(root, {"s/c0": {"memory.max": "123\n"}})
    ctx.refresh(1.0)
    assert value(ctx, "memory_max", "s/c0") == 123
    ctx.close()


def test_xattr_change_is_seen_on_the_next_tick(tmp_path):
    ctx, root = make(tmp_path, metrics=("kill_preference",))
    ctx.refresh(0.0)
    before = reads(ctx)
    try:
        os.setxattr(root / "s" / "c2", "user.oomd_prefer", b"")
    except OSError as e:
        pytest.skip(f"xattrs not supported on {tmp_path}: {e}")
    ctx.refresh(1.0)
    assert value(ctx, "kill_preference", "s/c2") == 1
    assert reads(ctx) == before + 1
    os.removexattr(root / "s" / "c2", "user.oomd_prefer")
    os.setxattr(root / "s" / "c2", "user.oomd_avoid", b"")
    ctx.refresh(2.0)
    assert value(ctx, "kill_preference", "s/c2") == -1
    ctx.close()


def test_many_xattr_changes_in_one_tick_are_all_seen(tmp_path):
    """Past 64 named IN_ATTRIB events in one drain every child of the directory re-reads its
    xattrs (instead of a search per event): the outcome is the same."""
    ctx, root = make(tmp_path, n=80, metrics=("kill_preference",))
    ctx.refresh(0.0)
    try:
        for i in range(80):             # 80 events for 80 different names (none merged)
            os.setxattr(root / "s" / f"c{i}", f"user.oomd_{'avoid' if i % 2 else 'prefer'}", b"")
    except OSError as e:
        pytest.skip(f"xattrs not supported on {tmp_path}: {e}")
    ctx.refresh(1.0)
    rows = ctx.resolve(PATTERN)
    want = {f"s/c{i}": (-1 if i % 2 else 1) for i in range(80)}
    got = dict(zip((ctx.relpath(r) for r in rows), ctx.get("kill_preference", rows)[0].tolist()))
    assert got == want
    ctx.close()


def test_watch_table_follows_cgroups_that_come_and_go(tmp_path):
    import shutil

    ctx, root = make(tmp_path, n=150, metrics=("memory_min", "memory_low"))
    ctx.refresh(0.0)
    assert ctx.read_stats["watches"] == 2 + 2 * 150
    for i in range(0, 150, 2):
        shutil.rmtree(root / "s" / f"c{i}")
    ctx.refresh(1.0)
    ctx.refresh(2.0)
    assert ctx.read_stats["watches"] == 2 + 2 * 75
    write_tree(root, {f"s/c{i}": cgroup(MIB, memory_low=7000 + i) for i in range(0, 150, 2)})
    ctx.refresh(3.0)
    assert ctx.read_stats["watches"] == 2 + 2 * 150
    rows = ctx.resolve(PATTERN)
    got = dict(zip((ctx.relpath(r) for r in rows), ctx.get("memory_low", rows)[0].tolist()))
    assert got == {f"s/c{i}": (7000 + i if i % 2 == 0 else 10 * i) for i in range(150)}
    update_files(root, {"s/c3": {"memory.low": "1\n"}, "s/c4": {"memory.low": "2\n"}})
    ctx.refresh(4.0)
    assert value(ctx, "memory_low", "s/c3") == 1 and value(ctx, "memory_low", "s/c4") == 2
    ctx.close()


def test_replaced_removed_and_recreated_files_are_read_again(tmp_path):
    ctx, root = make(tmp_path, metrics=("memory_high",))
    ctx.refresh(0.0)
    d = root / "s" / "c3"
    (d / "tmp").write_text("77\n")
    os.replace(d / "tmp", d / "memory.high")        # IN_MOVED_TO memory.high
    ctx.refresh(1.0)
    assert value(ctx, "memory_high", "s/c3") == 77
    os.unlink(d / "memory.high")                      # IN_DELETE memory.high
    ctx.refresh(2.0)
    assert value(ctx, "memory_high", "s/c3") is None
    ctx.refresh(3.0)
    assert value(ctx, "memory_high", "s/c3") is None  # a missing file is tried every tick
    (d / "memory.high").write_text("88\n")
    ctx.refresh(4.0)
    assert value(ctx, "memory_high", "s/c3") == 88
    ctx.close()


def test_recreated_cgroup_reads_its_own_values(tmp_path):
    import shutil

    ctx, root = make(tmp_path)
    ctx.refresh(0.0)
    old = ctx.cgroup_id(ctx.row_of("s/c1"))
    shutil.rmtree(root / "s" / "c1")
    write_tree(root, {"s/c1": cgroup(MIB, memory_low=555)})
    ctx.refresh(1.0)
    assert ctx.cgroup_id(ctx.row_of("s/c1")) != old
    assert value(ctx, "memory_low", "s/c1") == 555
    ctx.close()


def test_subtree_control_write_rereads_the_childrens_values(tmp_path):
    """Enabling or disabling a controller in the parent makes files appear or vanish in the
    children without an event of their own."""
    ctx, root = make(tmp_path, metrics=("memory_low",))
    ctx.refresh(0.0)
    before = reads(ctx)
    (root / "s" / "cgroup.subtree_control").write_text("-memory\n")
    ctx.refresh(1.0)
    assert reads(ctx) == before + 4
    ctx.close()


def test_queue_overflow_rereads_every_kept_value(tmp_path):
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        limit = int(f.read())
    if limit > 100_000:
        pytest.skip(f"fs.inotify.max_queued_events is {limit}: too many writes to overflow")
    ctx, root = make(tmp_path)
    ctx.refresh(0.0)
    kept = ctx.read_stats["kept_values"]
    before = reads(ctx)
    d = root / "s"                     # a watched directory (listed for s/*)
    fds = [os.open(d / name, os.O_WRONLY | os.O_CREAT) for name in ("x", "y")]
    try:
        for i in range(limit + 8):       # alternate, so the kernel cannot merge the events
            os.pwrite(fds[i % 2], b"1", 0)
    finally:
        for fd in fds:
            os.close(fd)
    ctx.refresh(1.0)
    assert ctx.read_stats["dir_event_overflows"] >= 1
    assert reads(ctx) == before + kept
    assert value(ctx, "memory_low", "s/c3") == 30
    ctx.close()


def test_without_a_watch_config_is_read_every_tick(tmp_path):
    ctx, root = make(tmp_path, watch_budget=0)
    ctx.refresh(0.0)
    assert ctx.read_stats["kept_values"] == 0
    assert ctx.read_stats["watch_refused"] > 0
    per_tick = reads(ctx)
    ctx.refresh(1.0)
    assert reads(ctx) == 2 * per_tick
    update_files(root, {"s/c1": {"memory.low": "4096\n"}})
    ctx.refresh(2.0)
    assert value(ctx, "memory_low", "s/c1") == 4096
    ctx.close()


def test_watch_budget_limits_kept_rows_and_a_freed_watch_is_reused(tmp_path):
    import shutil

    ctx, root = make(tmp_path, metrics=("memory_low",), watch_budget=4)

    def kept_rows():
        keep = ctx._r.cols["keep"]
        return [ctx.relpath(r) for r in ctx.resolve(PATTERN) if keep[r]]

    ctx.refresh(0.0)
    st = ctx.read_stats
    assert st["watches"] == 4 and st["watch_refused"] == 2   # root, s, c0, c1 watched
    assert kept_rows() == ["s/c0", "s/c1"]
    shutil.rmtree(root / "s" / "c0")
    ctx.refresh(1.0)                                         # c0's watch is released
    ctx.refresh(2.0)
    assert ctx.read_stats["watches"] == 4
    assert kept_rows() == ["s/c1", "s/c2"]
    assert value(ctx, "memory_low", "s/c3") == 30            # read every tick, still right
    ctx.close()


def test_off_cgroup2_config_is_read_every_tick(tmp_path):
    """Fake trees default to oomd's rule: every file is read when it is needed, every tick."""
    ctx, root = make(tmp_path, cache_files=None)
    ctx.refresh(0.0)
    assert not ctx.keep_config
    per_tick = reads(ctx)
    ctx.refresh(1.0)
    assert reads(ctx) == 2 * per_tick
    ctx.close()


def test_kept_config_files_hold_no_fds(tmp_path):
    ctx, _ = make(tmp_path, metrics=("current_usage", "memory_low", "memory_min"))
    ctx.refresh(0.0)
    ctx.refresh(1.0)
    assert ctx._r.file_fd_count() == 4                # memory.current only
    ctx.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_values_equal_values_read_every_tick(tmp_path, seed):
    """Random writes, xattr changes and re-created cgroups between ticks: a kept context and
    one that reads every file every tick agree on every value at every tick."""
    import shutil

    rng = random.Random(seed)
    kept, root = make(tmp_path, n=6)
    fresh = OomdContext(str(root), proc_root=str(tmp_path / "proc"), cache_files=False,
                        fd_budget=1000)
    fresh.set_monitored([(PATTERN, list(CONFIG))])
    files = {"memory_min": "memory.min", "memory_low": "memory.low",
             "memory_high": "memory.high", "memory_max": "memory.max",
             "swap_max": "memory.swap.max", "oom_group": "memory.oom.group"}
    for t in range(12):
        for _ in range(rng.randrange(4)):
            rel = f"s/c{rng.randrange(6)}"
            what = rng.choice(sorted(files) + ["xattr", "recreate"])
            if what == "xattr":
                name = rng.choice(["user.oomd_prefer", "user.oomd_avoid"])
                try:
                    if rng.random() < 0.5:
                        os.setxattr(root / rel, name, b"")
                    else:
                        os.removexattr(root / rel, name)
                except OSError:
                    pass
            elif what == "recreate":
                shutil.rmtree(root / rel)
                write_tree(root, {rel: cgroup(MIB, memory_low=rng.randrange(100))})
            else:
                text = rng.choice(["max\n", f"{rng.randrange(1000)}\n", "garbage\n", "1\n"])
                update_files(root, {rel: {files[what]: text}})
        kept.refresh(float(t))
        fresh.refresh(float(t))
        rk, rf = kept.resolve(PATTERN), fresh.resolve(PATTERN)
        assert [kept.relpath(r) for r in rk] == [fresh.relpath(r) for r in rf]
        for metric in CONFIG:
            a, av = kept.get(metric, rk)
            b, bv = fresh.get(metric, rf)
            assert av.tolist() == bv.tolist(), (t, metric)
            assert np.where(av, a, 0).tolist() == np.where(bv, b, 0).tolist(), (t, metric)
    kept.close()
    fresh.close()


# ---- the kernel side: real cgroup2, in cgroups these tests create ----------------------------

@pytest.fixture
def cg2():
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount in /proc/mounts")
    base = os.path.join(mount, f"pyoomd-keep-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.mkdir(base)
        os.mkdir(os.path.join(base, "a"))
        os.mkdir(os.path.join(base, "b"))
    except OSError as e:
        pytest.skip(f"cannot create test cgroups under {mount}: {e}")
    try:
        yield base
    finally:
        for rel in ("a", "b", ""):
            try:
                os.rmdir(os.path.join(base, rel))
            except OSError:
                pass


def test_cgroup2_write_to_a_control_file_is_seen_next_tick_and_only_then(cg2):
    """Where the memory controller may be missing, memory.low and memory.max are read from
    cgroup.max.depth and cgroup.max.descendants (same format, same kernel path: a write
    through kernfs, IN_MODIFY on the watch of the file)."""
    r = _fastcg.Reader(cg2.encode(), b"/proc", fd_budget=256,
                       file_names={"low": b"cgroup.max.depth", "max": b"cgroup.max.descendants"})
    root = r.open_root()
    assert r.is_cgroup2 and r.keep_config
    r.begin_tick()
    r.scan_dirs(np.array([root], dtype=np.int32))               # the parent is watched
    rows = np.array([r.open_child(root, b"a"), r.open_child(root, b"b")], dtype=np.int32)
    kinds = (1 << _fastcg.K["low"]) | (1 << _fastcg.K["max"])
    big = (1 << 63) - 1

    def tick():
        r.begin_tick()
        r.load(rows, kinds)
        return r.cols["memory_low"][rows].tolist(), r.cols["memory_max"][rows].tolist()

    assert tick() == ([big, big], [big, big])
    n = r.counters()["reads"]
    assert tick() == ([big, big], [big, big])
    assert r.counters()["reads"] == n                          # kept: nothing read
    with open(os.path.join(cg2, "a", "cgroup.max.depth"), "w") as f:
        f.write("5")
    assert tick() == ([5, big], [big, big])                    # the very next tick
    assert r.counters()["reads"] == n + 1
    with open(os.path.join(cg2, "b", "cgroup.max.descendants"), "w") as f:
        f.write("7")
    assert tick() == ([5, big], [big, 7])
    assert r.counters()["reads"] == n + 2
    r.close()


def test_cgroup2_kill_preference_xattr_is_seen_next_tick(cg2):
    ctx = OomdContext(cg2, fd_budget=256)
    p = CgroupPatterns.parse("*")
    ctx.set_monitored([(p, ["kill_preference"])])
    ctx.refresh(0.0)
    assert ctx.keep_config
    rows = ctx.resolve(p)
    assert ctx.get("kill_preference", rows)[0].tolist() == [0, 0]
    ctx.refresh(1.0)
    n = ctx.read_stats["reads"]
    try:
        os.setxattr(os.path.join(cg2, "a"), "trusted.oomd_prefer", b"1")
        os.setxattr(os.path.join(cg2, "b"), "user.oomd_avoid", b"1")
    except OSError as e:
        pytest.skip(f"this kernel's cgroup2 takes no trusted./user. xattrs: {e}")
    ctx.refresh(2.0)
    assert ctx.get("kill_preference", ctx.resolve(p))[0].tolist() == [1, -1]
    assert ctx.read_stats["reads"] == n + 2
    os.removexattr(os.path.join(cg2, "a"), "trusted.oomd_prefer")
    ctx.refresh(3.0)
    assert ctx.get("kill_preference", ctx.resolve(p))[0].tolist() == [0, -1]
    ctx.close()


def test_first_read_of_kept_values_stays_within_a_tight_fd_budget(tmp_path):
    """Parked leaves (a tight budget) that read configuration values for the first time get
    their file watches through a re-opened directory fd, which must go back at once: a pass
    over many rows must not hold one fd per row (it ran the process out of fds at 10k cgroups).
    The process is left 10 fds of headroom, far fewer than the 60 rows."""
    ctx, root = make(tmp_path, n=60, metrics=("current_usage",), fd_budget=40)
    for t in range(3):
        ctx.refresh(float(t + 1))
    assert ctx.read_stats["parked"] > 0
    rows = ctx.resolve(PATTERN)
    with no_free_fds(spare=10):
        ctx.prefetch(("memory_min", "memory_low", "kill_preference"), rows)
    stats = ctx.read_stats
    assert stats["fd_exhausted"] == 0 and not ctx.starved
    assert stats["open_fds"] <= 41
    assert [value(ctx, "memory_low", f"s/c{i}") for i in (0, 59)] == [0, 590]
