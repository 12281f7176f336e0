"""Core benchmarks (issue 3): the tick, the raw read loops, the plain Python reader, oomd 0.5.0,
ranking all candidates, and peak RSS. Results land in the summary table (bench/conftest.py)."""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchlib import PATTERNS, cpu_median, cpu_samples, interleaved, record, record_samples, run_oomd
from oomd import _fastcg
from oomd.cgpath import CgroupPatterns
from oomd.context import OomdContext, fd_budget_from_rlimit, rank_memory_size_or_growth

HERE = Path(__file__).resolve().parent
ROOT_PAT = CgroupPatterns.parse("/")
PATS = [CgroupPatterns.parse(p) for p in PATTERNS]
ALL_LEAVES = CgroupPatterns.parse(",".join(PATTERNS))
TICK_METRICS = ("mem_pressure", "current_usage", "average_usage")


def make_ctx(tree) -> OomdContext:
    ctx = OomdContext(str(tree.root), cache_files=True, fd_budget=fd_budget_from_rlimit(),
                      interval=1)
    ctx.set_monitored([(ROOT_PAT, ["mem_pressure"])] + [(p, TICK_METRICS) for p in PATS])
    return ctx


def detector_access(ctx: OomdContext) -> None:
    """What the typical config's plugins read each tick (pressure_above, memory_above, and the
    kill plugin's prerun average), including the tick-counter ruleset on the root."""
    ctx.get("mem_pressure", ctx.resolve(ROOT_PAT))
    for p in PATS:
        rows = ctx.resolve(p)
        pr, pv = ctx.get("mem_pressure", rows)
        cur, cv = ctx.get("current_usage", rows)
        score = np.where(pv, 3 * pr[:, 0] + 2 * pr[:, 1] + pr[:, 2], np.float32(0))
        if len(rows):
            int(score.argmax())
            int(np.where(cv, cur, 0).max())
        ctx.get("average_usage", rows)


class Ticker:
    def __init__(self, ctx):
        self.ctx = ctx
        self.now = 0.0

    def refresh(self):
        self.now += 1.0
        self.ctx.refresh(self.now)

    def tick(self):
        self.refresh()
        detector_access(self.ctx)


def release(*objs):
    """Close what a benchmark opened: pytest-benchmark keeps references to the measured
    functions, so fds must not wait for the garbage collector."""
    for o in objs:
        if isinstance(o, Ticker):
            o.ctx.close()
        elif hasattr(o, "close"):
            o.close()
    gc.collect()


@pytest.fixture(autouse=True)
def no_leaked_fds():
    n = len(os.listdir("/proc/self/fd"))
    assert n < 200, f"{n} fds open before a benchmark: an earlier one leaked them"
    yield


def test_tick_typical_config(benchmark, tree, size):
    t = Ticker(make_ctx(tree))
    for _ in range(3):
        t.tick()                          # open rows, cache fds, settle parking
    benchmark.pedantic(t.tick, rounds=30 if size <= 1000 else 15, iterations=1)
    record_samples(size, "tick_cpu", cpu_samples(t.tick, 40 if size <= 1000 else 20))
    record(size, "refresh_cpu", cpu_median(t.refresh, 10))
    _, paths = config_files(tree)
    if fd_room() > len(paths):
        # both fit under the fd limit at once: also measure them in turn, same conditions
        raw = _fastcg.RawPaths(paths, len(paths))
        got = interleaved({"ours": t.tick, "raw": raw.read_all}, 60)
        record(size, "ratio_interleaved",
               sorted(got["ours"])[30] / sorted(got["raw"])[30])
        release(raw)
    st = t.ctx.read_stats
    for key in ("fd_budget", "open_fds", "parked"):
        record(size, key, st[key])
    record(size, "n_rows", st["rows"])
    record(size, "n_monitored", int(sum(len(t.ctx.resolve(p)) for p in PATS)))
    release(t)


def config_files(tree) -> tuple[list[str], list[str]]:
    dirs = [str(tree.root / rel) for rel in tree.leaves]
    paths = [os.path.join(d, f) for d in dirs for f in ("memory.pressure", "memory.current")]
    return dirs, paths


def fd_room() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft - len(os.listdir("/proc/self/fd")) - 64


def test_raw_loop_same_fd_limit(benchmark, tree, size):
    _, paths = config_files(tree)
    raw = _fastcg.RawPaths(paths, fd_room())
    raw.read_all()
    benchmark(raw.read_all)
    record_samples(size, "raw_limit", cpu_samples(raw.read_all, 40))
    record(size, "n_raw_kept_fds", raw.kept)
    release(raw)


def test_raw_loop_openat(benchmark, tree, size):
    dirs, _ = config_files(tree)
    raw = _fastcg.RawFds(dirs, ["memory.pressure", "memory.current"], keep_files=False)
    raw.openat_all()
    benchmark(raw.openat_all)
    record(size, "raw_openat", cpu_median(raw.openat_all, 10))
    release(raw)


def test_raw_loop_open_path(benchmark, tree, size):
    _, paths = config_files(tree)
    benchmark(_fastcg.raw_read_loop, paths)
    record(size, "raw_open", cpu_median(lambda: _fastcg.raw_read_loop(paths), 10))


def test_plain_python_reader(benchmark, tree, size):
    sys.path.insert(0, str(HERE.parent))
    from tests.reference_reader import ReferenceContext

    ref = ReferenceContext(str(tree.root), interval=1)
    state = {"now": 0.0}

    def tick():
        state["now"] += 1
        ref.refresh(state["now"])
        ref.value("mem_pressure", "")
        for p in PATTERNS:
            for rel in ref.resolve(p):
                ref.value("mem_pressure", rel)
                ref.value("current_usage", rel)
                ref.value("average_usage", rel)

    tick()
    benchmark.pedantic(tick, rounds=3, iterations=1)
    record(size, "python_reader", cpu_median(tick, 3))
    for cg in ref.cache.values():
        os.close(cg.fd)
    ref.cache.clear()
    release(ref)


def test_oomd_0_5_0_cpu_per_tick(tree, size, request):
    ticks = request.config.getoption("--bench-oomd-ticks") or (20 if size <= 1000 else 8)
    got = run_oomd(tree.root, ticks)
    if "skipped" in got:
        record(size, "oomd_skipped", got["skipped"])
        pytest.skip(f"oomd 0.5.0 not measured: {got['skipped']}")
    record(size, "oomd_cpu", got["cpu_per_tick"])
    record(size, "oomd_ticks", got["ticks"])


def test_rank_memory_size_or_growth(benchmark, tree, size):
    """kill_by_memory_size_or_growth's ranking over every leaf (incl. protection maths):
    cold = right after a refresh, so current_usage/average_usage are loaded (monitored) but
    memory.min/low, siblings and xattrs are read by the ranking itself."""
    t = Ticker(make_ctx(tree))
    for _ in range(3):
        t.tick()
    rows = t.ctx.resolve(ALL_LEAVES)
    record(size, "n_ranked", len(rows))

    def cold():
        t.tick()
        return rank_memory_size_or_growth(t.ctx, rows)

    samples = []
    for _ in range(7):
        t.tick()
        c = time.process_time()
        rank_memory_size_or_growth(t.ctx, rows)
        samples.append(time.process_time() - c)
    record(size, "rank_cold", sorted(samples)[len(samples) // 2])
    benchmark.pedantic(rank_memory_size_or_growth, args=(t.ctx, rows), setup=t.tick,
                       rounds=5, iterations=1)
    rank_memory_size_or_growth(t.ctx, rows)
    record(size, "rank_warm",
           cpu_median(lambda: rank_memory_size_or_growth(t.ctx, rows), 10))
    release(t)


def test_peak_rss_of_a_daemon_like_process(tree, size):
    """A fresh process that does what the daemon's tick does (context, typical config,
    detector access, one ranking) for 20 ticks: its VmHWM."""
    out = subprocess.run(
        [sys.executable, str(HERE / "rss_probe.py"), str(tree.root), "20"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    record(size, "peak_rss_mib", got["vmhwm_kib"] / 1024)
