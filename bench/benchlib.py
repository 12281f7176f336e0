"""Helpers shared by the benchmarks: the results table, the typical config compiled by the real
compiler, the files it reads per tick, oomd 0.5.0 runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from oomd.testing.oomd_bin import find_oomd_binary, why_missing
from oomd.testing.realcg import terminate

RESULTS: dict[str, dict] = {}          # per tree size: core numbers (bench/test_bench_core.py)
KILL_RESULTS: dict[str, float] = {}    # "label": seconds (bench/test_bench_kill.py)
KILL_VS_OOMD: dict[tuple, dict] = {}   # (killer, siblings): ours/oomd idle/firing seconds
RECORD_RESULTS: dict[str, dict] = {}  # per tree size: recording costs (test_bench_record.py)
RULESET_RESULTS: dict[str, dict] = {}  # per-cgroup rulesets vs plain detectors (test_bench_rulesets.py)
CGROUP2_MOUNT = "/sys/fs/cgroup/unified"


def record(size: int, key: str, value) -> None:
    RESULTS.setdefault(str(size), {})[key] = value


def cpu_samples(fn, n: int) -> list[float]:
    """CPU seconds (this process) of each of n calls of fn."""
    samples = []
    for _ in range(n):
        t = time.process_time()
        fn()
        samples.append(time.process_time() - t)
    return samples


def cpu_median(fn, n: int) -> float:
    return statistics.median(cpu_samples(fn, n))


def record_samples(size: int, key: str, samples: list[float]) -> None:
    """Median under `key`, minimum under `key_min` (the machine is shared: interference only
    ever adds time, so minimums are the cleanest comparison)."""
    record(size, key, statistics.median(samples))
    record(size, key + "_min", min(samples))


def interleaved(fns: dict, n: int) -> dict[str, list[float]]:
    """CPU samples of several functions measured in turn, so they see the same machine."""
    out = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t = time.process_time()
            fn()
            out[k].append(time.process_time() - t)
    return out


# ---- the typical config, for us and for oomd --------------------------------------------------

PATTERNS = ("system.slice/*", "workload.slice/*/*")
ALL_LEAVES = ",".join(PATTERNS)
HOST_RULESET = "host memory pressure"


def typical_config() -> dict:
    """A server config in configs/server.json's shape, dry and not firing on a gentree tree:
    pressure_above + memory_reclaim and memory_above detectors on system.slice/* and
    workload.slice/*/*, kill_by_memory_size_or_growth on workload.slice/*/*, kill_by_pressure on
    system.slice/*, and a host ruleset (root pressure, kill_by_memory_size_or_growth over every
    leaf). The first ruleset fires every tick (root avg10 > -1) and logs one line: that is how
    oomd's ticks are counted."""

    def pressure(pattern, threshold, duration):
        return {"name": "pressure_above", "args": {
            "cgroup": pattern, "resource": "memory", "threshold": str(threshold),
            "duration": str(duration)}}

    def reclaim(pattern):
        return {"name": "memory_reclaim", "args": {"cgroup": pattern, "duration": "10"}}

    def protect(name, pattern, slice_, threshold, duration, action):
        return {
            "name": f"{name} protection",
            "detectors": [
                [f"{name} memory pressure while reclaiming",
                 pressure(pattern, threshold, duration), reclaim(slice_)],
                [f"{name} memory usage", {"name": "memory_above", "args": {
                    "cgroup": pattern, "threshold": "95%", "duration": str(duration)}}],
            ],
            "actions": [action],
        }

    return {"rulesets": [
        {"name": "tick counter",
         "detectors": [["every tick", pressure("/", -1, 0)]],
         "actions": [{"name": "continue", "args": {}}]},
        protect("workload", "workload.slice/*/*", "workload.slice", 60, 30,
                {"name": "kill_by_memory_size_or_growth",
                 "args": {"cgroup": "workload.slice/*/*", "dry": "true"}}),
        protect("system", "system.slice/*", "system.slice", 80, 60,
                {"name": "kill_by_pressure",
                 "args": {"cgroup": "system.slice/*", "resource": "memory", "dry": "true"}}),
        {"name": HOST_RULESET,
         "detectors": [["host memory pressure while reclaiming", pressure("/", 80, 60),
                        reclaim("/")]],
         "actions": [{"name": "kill_by_memory_size_or_growth",
                      "args": {"cgroup": ALL_LEAVES, "dry": "true"}}]},
    ]}


def compile_engine(tree_root, clock, config: dict | None = None):
    """The real compiler's Engine for ``config`` (default: typical_config()) on the tree."""
    from oomd import plugin
    from oomd.config.compiler import compile_config
    from oomd.config.parser import parse_string
    from oomd.plugin import PluginConstructionContext

    plugin.load_builtin_plugins()
    root = parse_string(json.dumps(config or typical_config()), "<bench config>")
    return compile_config(root, PluginConstructionContext(cgroup_fs=str(tree_root)), clock)


def action(engine, ruleset: str):
    """The (first) action plugin of a ruleset of a compiled engine."""
    for base in engine.rulesets:
        if base.ruleset.name == ruleset:
            return base.ruleset.actions[0]
    raise KeyError(ruleset)


# Files typical_config() reads every tick in steady state (configuration values kept, counters
# read): what a plain loop has to read to know the same. From proc (checked with strace): vmstat
# (swap-out rate), meminfo (the root's usage, memory_above's threshold), the root's pressure.
SYSTEM_FILES = ("/proc/vmstat", "/proc/meminfo", "/proc/pressure/memory")


def per_tick_files(tree) -> dict[str, list[str]]:
    """{"cgroup": [...], "system": [...]}: every file the typical config reads per tick.

    Leaves: memory.pressure and memory.current (pressure_above, memory_above, the killers'
    average_usage); the slices and the root: memory.stat (memory_reclaim). The root's usage and
    pressure come from proc. (kill_by_pressure reads its candidates' pressure only when it ranks.)
    """
    root = tree.root
    files = []
    for rel in tree.leaves:
        files += [str(root / rel / "memory.pressure"), str(root / rel / "memory.current")]
    for rel in ("", "system.slice", "workload.slice"):
        files.append(str(root / rel / "memory.stat") if rel else str(root / "memory.stat"))
    return {"cgroup": files, "system": list(SYSTEM_FILES)}


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of all threads (ns precision from schedstat when available)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except OSError:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_oomd(tree_root: Path, ticks: int, warmup: int = 3, config: dict | None = None) -> dict:
    """Run oomd 0.5.0 with --interval 1 on the tree with ``config`` (default: typical_config(),
    whose first ruleset logs once per tick); CPU seconds per tick over `ticks` ticks after
    `warmup` ticks. Returns {"cpu_per_tick": s, "ticks": n} or {"skipped": reason}."""
    binary = find_oomd_binary()
    if binary is None:
        return {"skipped": why_missing()}
    if not os.path.isdir(CGROUP2_MOUNT):
        return {"skipped": f"no cgroup2 mount at {CGROUP2_MOUNT} (oomd requires one)"}
    with tempfile.TemporaryDirectory(prefix="pyoomd-oomd-") as tmp:
        cfg = Path(tmp) / "oomd.json"
        cfg.write_text(json.dumps(config or typical_config()))
        (Path(tmp) / "run").mkdir()
        err = open(Path(tmp) / "stderr", "w")
        fs = CGROUP2_MOUNT + "/../../../.." + str(tree_root)
        proc = subprocess.Popen(
            [str(binary), "--config", str(cfg), "--interval", "1", "--cgroup-fs", fs,
             "--kmsg-override", str(Path(tmp) / "kmsg"), "--runtime-dir", str(Path(tmp) / "run")],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "INLINE_LOGGING": "1"})
        try:
            def ticks_seen():
                with open(Path(tmp) / "stderr", errors="replace") as f:
                    return f.read().count("is over the threshold of -1")

            deadline = time.monotonic() + 60 + 3 * (ticks + warmup)
            while ticks_seen() < warmup:
                if proc.poll() is not None or time.monotonic() > deadline:
                    return {"skipped": f"oomd exited or stalled (rc={proc.poll()})"}
                time.sleep(0.02)
            c0, n0 = _proc_cpu_seconds(proc.pid), ticks_seen()
            while ticks_seen() < n0 + ticks:
                if proc.poll() is not None or time.monotonic() > deadline:
                    return {"skipped": f"oomd exited or stalled (rc={proc.poll()})"}
                time.sleep(0.02)
            c1, n1 = _proc_cpu_seconds(proc.pid), ticks_seen()
            return {"cpu_per_tick": (c1 - c0) / (n1 - n0), "ticks": n1 - n0}
        finally:
            terminate(proc)
            err.close()
