"""Helpers shared by the benchmarks: the results table, the typical config, oomd 0.5.0 runs."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from oomd.testing.oomd_bin import find_oomd_binary, why_missing

RESULTS: dict[str, dict] = {}
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


def oomd_config() -> dict:
    def protect(name, pattern, threshold, duration):
        return {
            "name": f"{name} protection",
            "detectors": [
                [f"{name} memory pressure", {"name": "pressure_above", "args": {
                    "cgroup": pattern, "resource": "memory", "threshold": str(threshold),
                    "duration": str(duration)}}],
                [f"{name} memory usage", {"name": "memory_above", "args": {
                    "cgroup": pattern, "threshold": "95%", "duration": str(duration)}}],
            ],
            "actions": [{"name": "kill_by_memory_size_or_growth",
                         "args": {"cgroup": pattern, "dry": "true"}}],
        }

    return {"rulesets": [
        # logs one line per tick (root avg10 > -1): how we count oomd's ticks
        {"name": "tick counter",
         "detectors": [["every tick", {"name": "pressure_above", "args": {
             "cgroup": "/", "resource": "memory", "threshold": "-1", "duration": "0"}}]],
         "actions": [{"name": "continue", "args": {}}]},
        protect("workload", "workload.slice/*/*", 60, 30),
        protect("system", "system.slice/*", 80, 60),
    ]}


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


def run_oomd(tree_root: Path, ticks: int, warmup: int = 3) -> dict:
    """Run oomd 0.5.0 with --interval 1 on the tree; CPU seconds per tick over `ticks` ticks
    after `warmup` ticks. Returns {"cpu_per_tick": s, "ticks": n} or {"skipped": reason}."""
    binary = find_oomd_binary()
    if binary is None:
        return {"skipped": why_missing()}
    if not os.path.isdir(CGROUP2_MOUNT):
        return {"skipped": f"no cgroup2 mount at {CGROUP2_MOUNT} (oomd requires one)"}
    with tempfile.TemporaryDirectory(prefix="pyoomd-oomd-") as tmp:
        cfg = Path(tmp) / "oomd.json"
        cfg.write_text(json.dumps(oomd_config()))
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
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            err.close()
