"""Kill-plugin cost on flat trees of N siblings read by the real OomdContext, against oomd 0.5.0.

Run: ``python -m pytest bench/test_bench_kill.py -p no:cacheprovider``

* ``rank``: ``plugin.rank(ctx, rows)`` for each killer at 1k and 10k siblings after a tick
  (refresh + the plugin's prerun, as in the daemon): the first ranking of the tick (cold) and
  again (warm, every column loaded).
* ``run``: a whole dry kill (ranking, candidate dump, DFS, kmsg record).
* ``tick start -> kill call``: wall time from the start of a firing tick to the kill, with the
  daemon's threaded logging (the candidate dump is read and written after the kill).
* ``vs_oomd``: for each killer at 1k and 10k siblings, oomd 0.5.0's CPU per tick and ours
  (Engine.tick) on the same tree, with the dry killer running every tick and idle; the
  difference is the cost of one decision. oomd's kill_by_memory_size_or_growth grows about
  quadratically (seconds per tick at 1,000), so it also runs at 500 and gets 60 s at 10,000.

Numbers land in the kill table of the summary (bench/conftest.py). Every context is closed when
its test ends: at 10k siblings one holds most of the fd limit.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from benchlib import KILL_RESULTS, KILL_VS_OOMD, compile_engine, cpu_median  # noqa: E402
from killfakes import KILLERS, RecordingKiller  # noqa: E402
from oomd import plugin  # noqa: E402
from oomd.context import OomdContext  # noqa: E402
from oomd.kmsg import Kmsg  # noqa: E402
from oomd.plugin import MonitoredResources, PluginConstructionContext  # noqa: E402
from oomd.testing import faketree as ft  # noqa: E402
from oomd.testing.oracle_cpu import block_device  # noqa: E402

plugin.load_builtin_plugins()
DEVICE = block_device()   # io.stat lines of this device count for io cost (--device)
DEVICES = [(*map(int, DEVICE.split(":")), False)] if DEVICE else []


def flat_tree(root: Path, n: int) -> Path:
    spec = {"": {"cgroup.controllers": "memory io\n"}}
    for i in range(n):
        level = (i * 7919) % n + 1
        a = (level % 97) / 10
        spec[f"w/c{i:05d}"] = ft.cgroup(
            level * 4096, swap_current=level * 1024, mem_pressure=(a, a, a), io_pressure=(0, 0, 0),
            memory_stat={"anon": level, "file": 0, "pgscan": level * 3},
            extra={"io.stat": f"{DEVICE} rbytes={level * 4096} wbytes=0 rios={level} wios=0 "
                              "dbytes=0 dios=0\n"} if DEVICE else None)
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


class TimingKiller(RecordingKiller):
    """Notes when it is asked to kill."""

    def kill(self, *args, **kwargs):
        self.called_at = time.perf_counter()
        return super().kill(*args, **kwargs)


@pytest.mark.parametrize("killer", ["kill_by_memory_size_or_growth", "kill_by_pressure"])
def test_tick_start_to_kill_call(tree, killer, tmp_path):
    """Wall time from the start of a firing tick to the kill call, with the daemon's threaded
    logging: what the ranking, the "Picked" lines and the victim's reads cost before the kill
    (the candidate dump is read and written after it)."""
    import os

    from oomd import logs
    from oomd.config.compiler import compile_config
    from oomd.config.parser import parse_string

    n, root = tree
    config = dry_kill_config(killer, "continue")
    config["rulesets"][0]["actions"][0]["args"]["dry"] = "false"
    k = TimingKiller()
    clock = {"now": 0.0}
    engine = compile_config(parse_string(json.dumps(config), "<bench>"),
                            PluginConstructionContext(cgroup_fs=str(root), killer=k),
                            lambda: clock["now"])
    ctx = OomdContext(str(root), cache_files=True, interval=1, devices=DEVICES)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    sink = open(os.devnull, "w")
    logs.setup(inline=False, stream=sink)
    to_kill, whole = [], []
    try:
        for i in range(7):
            clock["now"] += 1.0
            start = time.perf_counter()
            engine.tick(ctx)
            end = time.perf_counter()
            logs.flush(60)
            if i >= 2:
                to_kill.append(k.called_at - start)
                whole.append(end - start)
    finally:
        logs.setup(inline=True, stream=sink)  # bench/conftest.py's quiet inline logging
        ctx.kmsg.close()
        ctx.close()
    assert len(k.killed) == 7
    KILL_RESULTS[f"ours: {killer} tick start -> kill call, {n} siblings (wall)"] = \
        statistics.median(to_kill)
    KILL_RESULTS[f"ours: {killer} whole firing tick, {n} siblings (wall)"] = \
        statistics.median(whole)


# oomd 0.5.0's kill_by_memory_size_or_growth is about quadratic in siblings (seconds per tick at
# 1,000); 500 shows the curve, and at 10,000 it is given a minute for one tick.
VS_OOMD = [(k, n) for k in sorted(KILLERS) for n in (
    [500, 1000, 10000] if k == "kill_by_memory_size_or_growth" else [1000, 10000])]


def dry_kill_config(killer: str, detector: str) -> dict:
    """One ruleset whose dry killer runs every tick (detector ``continue``) or never (``stop``)."""
    return {"rulesets": [{
        "name": "rs", "post_action_delay": "0",
        "detectors": [["dg", {"name": detector}]],
        "actions": [{"name": killer, "args": {"cgroup": "w/*", "dry": "true", **KILLERS[killer]}}],
    }]}


def our_cpu_per_tick(root: Path, config: dict, tmp_path: Path, rounds: int) -> float:
    """Engine.tick CPU seconds (median) of ``config`` on the tree, as the daemon ticks."""
    clock = {"now": 0.0}
    engine = compile_engine(root, lambda: clock["now"], config)
    ctx = OomdContext(str(root), cache_files=True, interval=1, devices=DEVICES)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))

    def tick():
        clock["now"] += 1.0
        engine.tick(ctx)

    try:
        for _ in range(3):
            tick()
        return cpu_median(tick, rounds)
    finally:
        ctx.kmsg.close()
        ctx.close()


@pytest.mark.parametrize("killer,n", VS_OOMD, ids=[f"{k}-{n}" for k, n in VS_OOMD])
def test_dry_kill_cpu_per_tick_vs_oomd(killer, n, tmp_path):
    """Ours and oomd 0.5.0 on the same tree: CPU per tick with the dry killer running every tick
    and with it idle (same resources monitored, detector ``stop``); the difference is what one
    ranking-and-kill decision costs each (oomd: its process from /proc; ours: Engine.tick)."""
    from oomd.testing.oracle import OracleError, unavailable_reason
    from oomd.testing.oracle_cpu import measure_cpu_detail

    root = flat_tree(tmp_path / "tree", n)
    firing, idle = dry_kill_config(killer, "continue"), dry_kill_config(killer, "stop")
    rounds = 10 if n <= 1000 else 5
    row = KILL_VS_OOMD.setdefault((killer, n), {})
    row["ours_idle"] = our_cpu_per_tick(root, idle, tmp_path, rounds)
    row["ours_firing"] = our_cpu_per_tick(root, firing, tmp_path, rounds)
    assert row["ours_firing"] >= 0
    why = unavailable_reason()
    if why:
        pytest.skip(f"oracle: {why}")
    devices = [DEVICE] if DEVICE else []
    row["oomd_idle"] = measure_cpu_detail(
        root, idle, 10 if n <= 1000 else 4, devices=devices).per_tick_s
    slow = killer == "kill_by_memory_size_or_growth" and n >= 1000
    try:
        row["oomd_firing"] = measure_cpu_detail(
            root, firing, 1 if slow else (5 if n <= 1000 else 4), devices=devices,
            tick_timeout=60.0).per_tick_s
    except OracleError as e:
        row["oomd_firing"] = None
        row["oomd_note"] = f"no tick within 60 s ({type(e).__name__})"
