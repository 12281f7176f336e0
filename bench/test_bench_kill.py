"""Kill-plugin ranking cost at 1k and 10k candidates, for each killer, against oomd 0.5.0.

Run: ``python -m pytest bench/test_bench_kill.py --benchmark-only --benchmark-group-by=group``

* ``rank``: ``plugin.rank(ctx, rows)`` on a flat tree of N siblings read by the real
  OomdContext (values loaded by the tick's refresh, as in the daemon).
* ``run``: a whole dry kill (ranking, candidate dump, DFS, kmsg record), log output discarded.
* ``oomd``: oomd 0.5.0's CPU per tick with a dry kill action firing every tick on the same kind
  of tree (``oracle.measure_cpu``), at 100, 250 and 1,000 siblings: its cost grows about
  quadratically (seconds per tick at 1,000), so each run is capped with a 60 s tick timeout and
  a run that hits it is reported as such. Printed: run with ``-s``.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from killfakes import RecordingKiller  # noqa: E402
from oomd import logs, plugin  # noqa: E402
from oomd.context import OomdContext  # noqa: E402
from oomd.kmsg import Kmsg  # noqa: E402
from oomd.plugin import MonitoredResources, PluginConstructionContext  # noqa: E402
from oomd.testing import faketree as ft  # noqa: E402

plugin.load_builtin_plugins()
MB = 1 << 20
KILLERS = {
    "kill_by_memory_size_or_growth": {},
    "kill_by_swap_usage": {},
    "kill_by_pressure": {"resource": "memory"},
    "kill_by_pg_scan": {},
    "kill_by_io_cost": {},
}


def flat_tree(root: Path, n: int) -> Path:
    spec = {"": {"cgroup.controllers": "memory io\n"}}
    for i in range(n):
        level = (i * 7919) % n + 1
        a = (level % 97) / 10
        spec[f"w/c{i:05d}"] = ft.cgroup(
            level * 4096, swap_current=level * 1024, mem_pressure=(a, a, a), io_pressure=(0, 0, 0),
            memory_stat={"anon": level, "file": 0, "pgscan": level * 3})
    return ft.write_tree(root, spec)


@pytest.fixture(scope="module", params=[1000, 10000], ids=["1k", "10k"])
def tree(request, tmp_path_factory):
    return request.param, flat_tree(tmp_path_factory.mktemp(f"flat{request.param}"), request.param)


def make_plugin(name: str, ctx_fs: str, **extra):
    p = plugin.create(name)
    res = MonitoredResources()
    assert p.init(res, {"cgroup": "w/*", "dry": "true", **KILLERS[name], **extra},
                  PluginConstructionContext(cgroup_fs=ctx_fs, killer=RecordingKiller())) == 0
    return p, res


def ready_context(root: Path, p, res) -> OomdContext:
    ctx = OomdContext(str(root), cache_files=True, interval=1)
    ctx.set_monitored(res.entries())
    ctx.refresh(1.0)
    p.prerun(ctx)
    ctx.refresh(2.0)
    p.prerun(ctx)
    return ctx


@pytest.mark.parametrize("killer", sorted(KILLERS))
def test_rank(benchmark, tree, killer):
    n, root = tree
    p, res = make_plugin(killer, str(root))
    ctx = ready_context(root, p, res)
    rows = ctx.resolve(p.cgroup)
    assert len(rows) == n
    benchmark.group = f"rank {n}"
    benchmark.name = killer
    ranked = benchmark(p.rank, ctx, rows)
    assert len(ranked) > 0


@pytest.mark.parametrize("killer", sorted(KILLERS))
def test_dry_kill_run(benchmark, tree, killer, tmp_path):
    n, root = tree
    p, res = make_plugin(killer, str(root))
    ctx = ready_context(root, p, res)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    ctx.tick = 2
    p._last_tick = 1 if killer == "kill_by_pg_scan" else None
    logs.setup(inline=True, stream=io.StringIO())

    def once():
        if killer == "kill_by_pg_scan":
            p._last_tick = ctx.tick - 1
        return p.run(ctx)

    benchmark.group = f"dry kill run {n}"
    benchmark.name = killer
    try:
        assert benchmark.pedantic(once, rounds=5, iterations=1) == plugin.PluginRet.STOP
    finally:
        logs.setup(inline=True)
        ctx.kmsg.close()


@pytest.mark.parametrize("n, timeout", [(100, 60.0), (250, 60.0), (1000, 60.0)])
@pytest.mark.parametrize("killer", ["kill_by_pressure", "kill_by_memory_size_or_growth"])
def test_oomd_dry_kill_cpu_per_tick(n, timeout, killer, tmp_path):
    """oomd 0.5.0: CPU seconds per tick with a dry kill every tick (printed; -s to see)."""
    from oomd.testing.oracle import OracleError, measure_cpu_detail, unavailable_reason

    why = unavailable_reason()
    if why:
        pytest.skip(f"oracle: {why}")
    root = flat_tree(tmp_path / "tree", n)
    config = {"rulesets": [{
        "name": "rs", "post_action_delay": "0",
        "detectors": [["dg", {"name": "continue"}]],
        "actions": [{"name": killer, "args": {"cgroup": "w/*", "dry": "true", **KILLERS[killer]}}],
    }]}
    try:
        m = measure_cpu_detail(root, config, 1, tick_timeout=timeout)
    except OracleError as e:
        print(f"\noomd 0.5.0 {killer} {n} siblings: no tick finished within {timeout:.0f} s ({e})")
        return
    print(f"\noomd 0.5.0 {killer} {n} siblings: {m.per_tick_s:.3f} s CPU per tick "
          f"(first tick {m.first_tick_s:.3f} s)")
    assert m.per_tick_s >= 0
