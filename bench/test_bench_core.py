"""Core benchmarks (issue 3), side by side in one run: the real engine's tick on a typical server
config, the raw read loop over exactly the files that config reads per tick, oomd 0.5.0 on the
same tree and config, the plain Python reader, kill_by_memory_size_or_growth's ranking of every
leaf through the real plugin (cold and warm; and without kept configuration values), and the
daemon's peak RSS. Results land in the summary table (bench/conftest.py).

Only one fd-hungry object lives at a time: a context at 10k cgroups holds most of the fd limit
(19,600 of 20,000 here), so every test closes what it opened before the next one starts.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchlib import (HOST_RULESET, PATTERNS, action, compile_engine, cpu_median, cpu_samples,
                      interleaved, per_tick_files, record, record_samples, run_oomd)
from oomd import _fastcg, protect
from oomd.context import OomdContext, fd_budget_from_rlimit

HERE = Path(__file__).resolve().parent


class Daemonish:
    """What the daemon's loop does each tick: the compiled typical config's Engine.tick on an
    OomdContext over the tree (cache_files=True: the tree is treated as cgroup2)."""

    def __init__(self, tree, *, keep_config=None):
        self.now = 0.0
        self.ctx = OomdContext(str(tree.root), cache_files=True, keep_config=keep_config,
                               fd_budget=fd_budget_from_rlimit(), interval=1)
        self.engine = compile_engine(tree.root, clock=lambda: self.now)
        self.killer = action(self.engine, HOST_RULESET)   # kill_by_memory_size_or_growth, all

    def tick(self):
        self.now += 1.0
        self.engine.tick(self.ctx)

    def settle(self, ticks: int = 3):
        """Start-up as the daemon does it: a few ticks (rows opened, configuration read,
        parking settled), then the start-up garbage is collected and frozen."""
        for _ in range(ticks):
            self.tick()
        protect.freeze_gc()

    def refresh(self):
        self.now += 1.0
        self.ctx.refresh(self.now)

    def candidates(self):
        return self.ctx.resolve(self.killer.cgroup)

    def rank(self):
        return self.killer.rank(self.ctx, self.candidates())

    def close(self):
        self.ctx.close()


def fd_room() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft - len(os.listdir("/proc/self/fd")) - 64


@pytest.fixture
def daemon(tree):
    d = Daemonish(tree)
    yield d
    d.close()


def test_engine_tick_typical_config(benchmark, daemon, tree, size):
    """Engine.tick of the typical config, steady state, against the raw loop over the files the
    tick reads (checked: the same number of cgroup files per tick)."""
    daemon.settle()
    before = daemon.ctx.read_stats
    daemon.tick()
    after = daemon.ctx.read_stats
    files = per_tick_files(tree)
    record(size, "n_files_per_tick", len(files["cgroup"]) + len(files["system"]))
    record(size, "n_reads_per_tick", after["reads"] - before["reads"])
    assert after["reads"] - before["reads"] == len(files["cgroup"]), (
        "the raw loop must read what the tick reads")
    benchmark.pedantic(daemon.tick, rounds=20 if size <= 1000 else 10, iterations=1)
    record_samples(size, "tick_cpu", cpu_samples(daemon.tick, 40 if size <= 1000 else 20))
    record(size, "refresh_cpu", cpu_median(daemon.refresh, 10))
    st = daemon.ctx.read_stats
    for key in ("fd_budget", "open_fds", "parked", "watches", "kept_values"):
        record(size, key, st[key])
    record(size, "n_rows", st["rows"])
    record(size, "n_candidates", len(daemon.candidates()))
    paths = files["cgroup"] + files["system"]
    if fd_room() > len(paths):
        # both fit under the fd limit at once: also measure them in turn, same conditions
        raw = _fastcg.RawPaths(paths, len(paths))
        try:
            got = interleaved({"ours": daemon.tick, "raw": raw.read_all}, 40)
        finally:
            raw.close()
        record(size, "ratio_interleaved",
               sorted(got["ours"])[20] / sorted(got["raw"])[20])


def test_raw_loop_same_fd_limit(benchmark, tree, size):
    """The files of one tick: fds kept (pread) for as many as the reader's fd budget allows
    (the daemon's budget: the limit minus its reserve), the rest open + read + close, no
    parsing."""
    files = per_tick_files(tree)
    raw = _fastcg.RawPaths(files["cgroup"] + files["system"],
                           min(fd_room(), fd_budget_from_rlimit()))
    try:
        raw.read_all()
        benchmark(raw.read_all)
        record_samples(size, "raw_limit", cpu_samples(raw.read_all, 40))
        record(size, "n_raw_kept_fds", raw.kept)
    finally:
        raw.close()


def test_raw_loop_open_path(benchmark, tree, size):
    files = per_tick_files(tree)
    paths = files["cgroup"] + files["system"]
    benchmark.pedantic(_fastcg.raw_read_loop, args=(paths,), rounds=5, iterations=1)
    record(size, "raw_open", cpu_median(lambda: _fastcg.raw_read_loop(paths), 5))


def test_plain_python_reader(benchmark, tree, size):
    """tests/reference_reader.py doing the detectors' reads (no caching of any kind)."""
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

    try:
        tick()
        benchmark.pedantic(tick, rounds=2, iterations=1)
        record(size, "python_reader", cpu_median(tick, 2))
    finally:
        for cg in ref.cache.values():
            os.close(cg.fd)
        ref.cache.clear()


def test_oomd_0_5_0_cpu_per_tick(tree, size, request):
    """oomd 0.5.0 on the same tree with the same config (its own process, measured from
    /proc)."""
    ticks = request.config.getoption("--bench-oomd-ticks") or (15 if size <= 1000 else 6)
    got = run_oomd(tree.root, ticks)
    if "skipped" in got:
        record(size, "oomd_skipped", got["skipped"])
        pytest.skip(f"oomd 0.5.0 not measured: {got['skipped']}")
    record(size, "oomd_cpu", got["cpu_per_tick"])
    record(size, "oomd_ticks", got["ticks"])


def _rank_after_tick(d: Daemonish, n: int) -> list[float]:
    """CPU of the first ranking after each of n real ticks (what a kill sees: the tick read
    the counters; protection, growth and anything not kept are computed by the ranking)."""
    samples = []
    for _ in range(n):
        d.tick()
        c = time.process_time()
        d.rank()
        samples.append(time.process_time() - c)
    return samples


def test_rank_memory_size_or_growth(benchmark, daemon, size):
    """BaseKillPlugin.rank of kill_by_memory_size_or_growth over every leaf (incl. the
    protection maths), through the plugin of the compiled config, in steady state."""
    daemon.settle()
    record(size, "n_ranked", len(daemon.candidates()))
    cold = _rank_after_tick(daemon, 7)
    record(size, "rank_cold", sorted(cold)[len(cold) // 2])
    benchmark.pedantic(daemon.rank, setup=daemon.tick, rounds=5, iterations=1)
    daemon.rank()
    record(size, "rank_warm", cpu_median(daemon.rank, 10))


def test_rank_without_kept_configuration(tree, size):
    """The same ranking where configuration values are read every tick (keep_config=False):
    memory.min/low and the xattrs of every candidate are read by the tick (monitored), the
    ranking itself as above. What the tick and the kill cost without inotify."""
    d = Daemonish(tree, keep_config=False)
    try:
        d.settle()
        record(size, "tick_cpu_unkept", cpu_median(d.tick, 8 if size <= 1000 else 4))
        cold = _rank_after_tick(d, 5)
        record(size, "rank_cold_unkept", sorted(cold)[len(cold) // 2])
    finally:
        d.close()


def test_first_tick_and_first_ranking(tree, size):
    """Start-up: the first tick opens every row and reads every monitored file (configuration
    included); the first ranking right after it."""
    d = Daemonish(tree)
    try:
        c = time.process_time()
        d.tick()
        record(size, "first_tick", time.process_time() - c)
        c = time.process_time()
        d.rank()
        record(size, "first_rank", time.process_time() - c)
    finally:
        d.close()


def test_peak_rss_of_a_daemon_like_process(tree, size):
    """A fresh process that does what the daemon does (the typical config's Engine.tick on an
    OomdContext, one ranking of every leaf) for 20 ticks: its VmHWM."""
    out = subprocess.run(
        [sys.executable, str(HERE / "rss_probe.py"), str(tree.root), "20"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": f"{HERE.parent}{os.pathsep}{HERE}"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    record(size, "peak_rss_mib", got["vmhwm_kib"] / 1024)
