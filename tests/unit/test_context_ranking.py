"""kill_by_memory_size_or_growth's ranking (reference §4.12) over a real OomdContext on fake
trees: the plugin's own ``rank`` and ``classify``, with the plugin's monitored metrics and prerun
each tick, as the engine drives them."""

from __future__ import annotations

import os

import pytest

from killfakes import RecordingKiller
from oomd import plugin
from oomd.context import OomdContext
from oomd.plugin import MonitoredResources, PluginConstructionContext
from oomd.testing.faketree import cgroup, update_files, write_proc, write_tree

MIB = 1 << 20

plugin.load_builtin_plugins()


def killer(root, **args):
    p = plugin.create("kill_by_memory_size_or_growth")
    res = MonitoredResources()
    got = p.init(res, {"cgroup": "w/*", "dry": "true", **args},
                 PluginConstructionContext(cgroup_fs=str(root), killer=RecordingKiller()))
    assert got == 0
    return p, res


def context(tmp_path, root, plugins, **kw) -> OomdContext:
    ctx = OomdContext(str(root), proc_root=str(write_proc(tmp_path / "proc")), fd_budget=100,
                      **kw)
    res = MonitoredResources()
    for _, r in plugins:
        res.update(r)
    ctx.set_monitored(res.entries())
    return ctx


def tick(ctx, plugins, now: float) -> None:
    ctx.refresh(now)
    for p, _ in plugins:
        p.prerun(ctx)


def ranked_paths(ctx, p) -> list[str]:
    return [ctx.relpath(r) for r in p.rank(ctx, ctx.resolve(p.cgroup))]


def test_ranking_prefers_size_then_growth_then_rest(tmp_path):
    spec = {"": cgroup(0), "w": cgroup(0)}
    for name, cur in (("big", 600), ("mid", 300), ("small", 100)):
        spec[f"w/{name}"] = cgroup(cur * MIB)
    root = write_tree(tmp_path / "cg", spec)
    default = killer(root)
    every_size = killer(root, growing_size_percentile="0")
    ctx = context(tmp_path, root, [default, every_size])
    for t in range(20):                 # settle the averages: growth ~1.0
        tick(ctx, [default, every_size], float(t))
    p = default[0]
    ranked = p.rank(ctx, ctx.resolve(p.cgroup))
    assert [ctx.relpath(r) for r in ranked] == ["w/big", "w/mid", "w/small"]
    c = p.classify(ctx, ranked)
    assert c.phase.tolist() == [0, 2, 2]
    assert c.total == 1000 * MIB and c.size_threshold == 500 * MIB
    # "small" suddenly grows 3x: growth-eligible only if among the top 20 % by size (n=3 ->
    # the largest), so it stays in REST; with percentile 0 every cgroup qualifies
    update_files(root, {"w/small": {"memory.current": f"{300 * MIB}\n"}})
    tick(ctx, [default, every_size], 21.0)
    assert ranked_paths(ctx, p) == ["w/big", "w/mid", "w/small"]
    assert p.classify(ctx, p.rank(ctx, ctx.resolve(p.cgroup))).phase.tolist() == [0, 2, 2]
    q = every_size[0]
    ranked = q.rank(ctx, ctx.resolve(q.cgroup))
    assert [ctx.relpath(r) for r in ranked] == ["w/big", "w/small", "w/mid"]
    assert q.classify(ctx, ranked).phase.tolist() == [0, 1, 2]


def test_ranking_kill_preference_outranks_everything(tmp_path):
    spec = {"": cgroup(0), "w": cgroup(0), "w/big": cgroup(900 * MIB),
            "w/tiny": cgroup(MIB), "w/mid": cgroup(100 * MIB)}
    root = write_tree(tmp_path / "cg", spec)
    try:
        os.setxattr(root / "w" / "tiny", "user.oomd_prefer", b"")
        os.setxattr(root / "w" / "big", "user.oomd_avoid", b"")
    except OSError as e:
        pytest.skip(f"xattrs not supported on {tmp_path}: {e}")
    k = killer(root)
    ctx = context(tmp_path, root, [k])
    tick(ctx, [k], 0.0)
    assert ranked_paths(ctx, k[0]) == ["w/tiny", "w/mid", "w/big"]


def test_ranking_ties_keep_path_order(tmp_path):
    spec = {"": cgroup(0), "w": cgroup(0)}
    names = [f"t{i:02d}" for i in range(40)]
    for n in reversed(names):
        spec[f"w/{n}"] = cgroup(10 * MIB)
    root = write_tree(tmp_path / "cg", spec)
    k = killer(root)
    ctx = context(tmp_path, root, [k])
    tick(ctx, [k], 0.0)
    assert ranked_paths(ctx, k[0]) == [f"w/{n}" for n in names]


def protected_tree(tmp_path):
    # w's own protection (1000 MiB) covers whatever its children claim
    spec = {"": cgroup(0), "w": cgroup(1000 * MIB, memory_low=1000 * MIB),
            "w/big": cgroup(600 * MIB), "w/mid": cgroup(300 * MIB),
            "w/small": cgroup(100 * MIB)}
    return write_tree(tmp_path / "cg", spec)


@pytest.mark.parametrize("cache_files", [False, True], ids=["read-every-tick", "kept"])
def test_ranking_sees_memory_low_written_between_ticks(tmp_path, cache_files):
    root = protected_tree(tmp_path)
    k = killer(root)
    ctx = context(tmp_path, root, [k], cache_files=cache_files)
    assert ctx.keep_config == cache_files
    for t in range(3):
        tick(ctx, [k], float(t))
    assert ranked_paths(ctx, k[0]) == ["w/big", "w/mid", "w/small"]
    update_files(root, {"w/big": {"memory.low": f"{600 * MIB}\n"}})  # big is protected now
    tick(ctx, [k], 3.0)
    assert ranked_paths(ctx, k[0]) == ["w/mid", "w/small", "w/big"]
    update_files(root, {"w/big": {"memory.low": "0\n"}})
    tick(ctx, [k], 4.0)
    assert ranked_paths(ctx, k[0]) == ["w/big", "w/mid", "w/small"]
    ctx.close()


@pytest.mark.parametrize("cache_files", [False, True], ids=["read-every-tick", "kept"])
def test_ranking_sees_kill_preference_set_between_ticks(tmp_path, cache_files):
    root = protected_tree(tmp_path)
    k = killer(root)
    ctx = context(tmp_path, root, [k], cache_files=cache_files)
    tick(ctx, [k], 0.0)
    assert ranked_paths(ctx, k[0]) == ["w/big", "w/mid", "w/small"]
    try:
        os.setxattr(root / "w" / "small", "user.oomd_prefer", b"")
    except OSError as e:
        pytest.skip(f"xattrs not supported on {tmp_path}: {e}")
    tick(ctx, [k], 1.0)
    assert ranked_paths(ctx, k[0]) == ["w/small", "w/big", "w/mid"]
    os.removexattr(root / "w" / "small", "user.oomd_prefer")
    tick(ctx, [k], 2.0)
    assert ranked_paths(ctx, k[0]) == ["w/big", "w/mid", "w/small"]
    ctx.close()
