"""Kill-plugin cost on flat trees of N siblings read by the real OomdContext, against oomd 0.5.0.

Run: ``python -m pytest bench/test_bench_kill.py -p no:cacheprovider``

* ``rank``: ``plugin.rank(ctx, rows)`` for each killer at 1k and 10k siblings after a tick
  (refresh + the plugin's prerun, as in the daemon): the first ranking of the tick (cold) and
  again (warm, every column loaded).
* ``run``: a whole dry kill (ranking, candidate dump, DFS, kmsg record).
* ``oomd``: oomd 0.5.0's CPU per tick with a dry kill_by_memory_size_or_growth firing every
  tick at 500 and 1,000 siblings (``oracle.measure_cpu``: its cost grows about quadratically,
  seconds per tick at 1,000), next to ours with the same config on the same tree (Engine.tick).

Numbers land in the kill table of the summary (bench/conftest.py). Every context is closed when
its test ends: at 10k siblings one holds most of the fd limit.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from benchlib import KILL_RESULTS, compile_engine, cpu_median  # noqa: E402
from killfakes import RecordingKiller  # noqa: E402
from oomd import plugin  # noqa: E402
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


class Ready:
    """A context ticked like the daemon for one plugin (refresh, prerun), closed at the end."""

    def __init__(self, root: Path, p, res):
        self.p = p
        self.now = 0.0
        self.ctx = OomdContext(str(root), cache_files=True, interval=1)
        self.ctx.set_monitored(res.entries())
        for _ in range(3):
            self.tick()

    def tick(self):
        self.now += 1.0
        self.ctx.refresh(self.now)
        self.p.prerun(self.ctx)

    def rows(self):
        return self.ctx.resolve(self.p.cgroup)


@pytest.fixture
def ready():
    made = []

    def make(root, p, res):
        made.append(Ready(root, p, res))
        return made[-1]

    yield make
    for r in made:
        r.ctx.close()


@pytest.mark.parametrize("killer", sorted(KILLERS))
def test_rank(benchmark, tree, killer, ready):
    n, root = tree
    p, res = make_plugin(killer, str(root))
    r = ready(root, p, res)
    assert len(r.rows()) == n
    cold = []
    for _ in range(5):
        r.tick()
        c = time.process_time()
        p.rank(r.ctx, r.rows())
        cold.append(time.process_time() - c)
    KILL_RESULTS[f"ours: {killer} rank {n} siblings, cold (first after a tick)"] = \
        statistics.median(cold)
    benchmark.group = f"rank {n}"
    benchmark.name = killer
    ranked = benchmark(p.rank, r.ctx, r.rows())
    assert len(ranked) > 0
    KILL_RESULTS[f"ours: {killer} rank {n} siblings, warm"] = \
        cpu_median(lambda: p.rank(r.ctx, r.rows()), 10)


@pytest.mark.parametrize("killer", sorted(KILLERS))
def test_dry_kill_run(benchmark, tree, killer, tmp_path, ready):
    n, root = tree
    p, res = make_plugin(killer, str(root))
    r = ready(root, p, res)
    ctx = r.ctx
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    p._last_tick = 1 if killer == "kill_by_pg_scan" else None

    def once():
        if killer == "kill_by_pg_scan":
            p._last_tick = ctx.tick - 1
        return p.run(ctx)

    benchmark.group = f"dry kill run {n}"
    benchmark.name = killer
    try:
        assert benchmark.pedantic(once, rounds=5, iterations=1) == plugin.PluginRet.STOP
        KILL_RESULTS[f"ours: {killer} dry kill run {n} siblings"] = \
            benchmark.stats.stats.median
    finally:
        ctx.kmsg.close()


@pytest.mark.parametrize("n", [500, 1000])
def test_oomd_dry_kill_cpu_per_tick(n, tmp_path):
    """oomd 0.5.0 and ours: CPU seconds per tick with a dry kill_by_memory_size_or_growth
    firing every tick (oomd: its process from /proc; ours: Engine.tick of the same config)."""
    from oomd.testing.oracle import OracleError, measure_cpu_detail, unavailable_reason

    killer = "kill_by_memory_size_or_growth"
    root = flat_tree(tmp_path / "tree", n)
    config = {"rulesets": [{
        "name": "rs", "post_action_delay": "0",
        "detectors": [["dg", {"name": "continue"}]],
        "actions": [{"name": killer, "args": {"cgroup": "w/*", "dry": "true"}}],
    }]}
    clock = {"now": 0.0}
    engine = compile_engine(root, lambda: clock["now"], config)
    ctx = OomdContext(str(root), cache_files=True, interval=1)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))

    def tick():
        clock["now"] += 1.0
        engine.tick(ctx)

    try:
        for _ in range(3):
            tick()
        KILL_RESULTS[f"ours: {killer} dry kill every tick, {n} siblings, per tick"] = \
            cpu_median(tick, 10)
    finally:
        ctx.kmsg.close()
        ctx.close()
    why = unavailable_reason()
    if why:
        pytest.skip(f"oracle: {why}")
    try:
        m = measure_cpu_detail(root, config, 1, tick_timeout=60.0)
    except OracleError as e:
        KILL_RESULTS[f"oomd 0.5.0: {killer} {n} siblings: no tick within 60 s ({e})"] = None
        return
    KILL_RESULTS[f"oomd 0.5.0: {killer} dry kill every tick, {n} siblings, per tick"] = \
        m.per_tick_s
    assert m.per_tick_s >= 0
