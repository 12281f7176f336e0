"""Whole daemons side by side: the pyoomd process and the oomd 0.5.0 process on the same tree and
config, at the same time, measured from outside (bench/test_bench_daemon.py, and
scripts/cgroup_bomb.py for the long runs).

CPU is the whole process's (every thread's utime + stime, ns from schedstat) over a wall-clock
window that starts once each daemon has ticked ``warmup`` times; peak RSS is VmHWM from
/proc/PID/status at the end. Ticks are counted from a first ruleset that fires every tick and
logs one line (``pressure_above`` on ``/`` with threshold -1, as benchlib.typical_config does),
and dry kill decisions from the line every dry kill logs in both implementations.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import _proc_cpu_seconds
from oomd.testing.oomd_bin import find_oomd_binary, oomd_env, why_missing
from oomd.testing.realcg import terminate

REPO = Path(__file__).resolve().parents[1]
TICK_LINE = "is over the threshold of -1"
DECISION_LINE = "would have tried to kill"
TICK_COUNTER = {
    "name": "tick counter",
    "detectors": [["every tick", {"name": "pressure_above", "args": {
        "cgroup": "/", "resource": "memory", "threshold": "-1", "duration": "0"}}]],
    "actions": [{"name": "continue", "args": {}}],
}


def psi_config(pattern: str) -> dict:
    """The issue's PSI-only config on real cgroup2: pressure_above memory and io on every leaf
    (not firing), kill_by_pressure (dry); plus the tick counter."""

    def pressure(resource):
        return {"name": "pressure_above", "args": {
            "cgroup": pattern, "resource": resource, "threshold": "80", "duration": "10"}}

    return {"rulesets": [
        TICK_COUNTER,
        {"name": "leaf pressure",
         "detectors": [["memory pressure", pressure("memory")], ["io pressure", pressure("io")]],
         "actions": [{"name": "kill_by_pressure", "args": {
             "cgroup": pattern, "resource": "memory", "dry": "true"}}]},
    ]}


def kill_every_tick_config(parent: str, pattern: str) -> dict:
    """A kill plugin ranking every leaf every tick: ``exists`` fires always, no pause after a
    dry kill (post_action_delay 0)."""
    return {"rulesets": [
        TICK_COUNTER,
        {"name": "rank every leaf", "post_action_delay": "0",
         "detectors": [["always", {"name": "exists", "args": {"cgroup": parent}}]],
         "actions": [{"name": "kill_by_pressure", "args": {
             "cgroup": pattern, "resource": "memory", "dry": "true"}}]},
    ]}


def empty_config() -> dict:
    return {"rulesets": []}


@dataclass
class Daemon:
    """One daemon process being measured."""
    name: str
    proc: subprocess.Popen
    workdir: Path
    started: float = field(default_factory=time.monotonic)

    def log(self) -> str:
        with open(self.workdir / "stderr", errors="replace") as f:
            return f.read()

    def ticks(self) -> int:
        return self.log().count(TICK_LINE)

    def decisions(self) -> int:
        return self.log().count(DECISION_LINE)

    def cpu(self) -> float:
        return _proc_cpu_seconds(self.proc.pid)

    def status(self, key: str) -> int | None:
        """A VmXXX line of /proc/PID/status, in KiB."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


def start_pyoomd(cgroup_fs: str, config: dict, workdir: Path, *, interval: float = 1,
                 extra: tuple[str, ...] = ()) -> Daemon:
    """``python -m oomd`` as a user starts it (protection on, dry run)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    err = open(workdir / "stderr", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "oomd", "--config", str(workdir / "config.json"),
         "--interval", f"{interval:g}", "--cgroup-fs", cgroup_fs, "--dry-run",
         "--kmsg-override", str(workdir / "kmsg"), "--runtime-dir", str(workdir / "run"),
         *extra],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    err.close()
    return Daemon("pyoomd", proc, workdir)


def start_oomd(cgroup_fs: str, config: dict, workdir: Path, *, interval: float = 1) -> Daemon | str:
    """oomd 0.5.0 on the same tree and config (dry via the config's ``dry`` args), or the
    reason it cannot run."""
    binary = find_oomd_binary()
    if binary is None:
        return why_missing()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "run").mkdir(exist_ok=True)
    err = open(workdir / "stderr", "w")
    proc = subprocess.Popen(
        [str(binary), "--config", str(workdir / "config.json"), "--interval", f"{interval:g}",
         "--cgroup-fs", cgroup_fs, "--kmsg-override", str(workdir / "kmsg"),
         "--runtime-dir", str(workdir / "run")],
        stdout=subprocess.DEVNULL, stderr=err, env=oomd_env(binary))
    err.close()
    return Daemon("oomd", proc, workdir)


def measure(daemons: list[Daemon], seconds: float, warmup: int = 3,
            startup_timeout: float = 300) -> dict[str, dict]:
    """Wait until every daemon has ticked ``warmup`` times, then measure each over the same
    ``seconds`` of wall clock. Returns {name: {"cpu_ms_per_s", "ticks", "decisions",
    "hwm_mib", "rss_mib"}} (or {"error": ...} for a daemon that died or stalled)."""
    out: dict[str, dict] = {}
    deadline = time.monotonic() + startup_timeout
    live = []
    for d in daemons:
        while d.ticks() < warmup:
            if d.proc.poll() is not None:
                out[d.name] = {"error": f"exited (rc={d.proc.poll()}): {d.log()[-800:]}"}
                break
            if time.monotonic() > deadline:
                live.append(d)           # alive but slower: measured anyway, and said so
                out[d.name] = {"note": f"{d.ticks()} of {warmup} warm-up ticks in "
                                       f"{startup_timeout:g} s"}
                break
            time.sleep(0.05)
        else:
            live.append(d)
    if not live:
        return out
    start = {d.name: (d.cpu(), d.ticks(), d.decisions()) for d in live}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    for d in live:
        c0, n0, k0 = start[d.name]
        if d.proc.poll() is not None:
            out[d.name] = {"error": f"died during the window (rc={d.proc.returncode})"}
            continue
        c1, n1, k1 = d.cpu(), d.ticks(), d.decisions()
        out[d.name] = {**out.get(d.name, {}), "cpu_ms_per_s": (c1 - c0) / wall * 1e3,
                       "ticks": n1 - n0,
                       "decisions": k1 - k0, "wall": wall,
                       "hwm_mib": (d.status("VmHWM") or 0) / 1024,
                       "rss_mib": (d.status("VmRSS") or 0) / 1024}
    return out


def stop(daemons: list[Daemon]) -> None:
    for d in daemons:
        terminate(d.proc)


LOOP_SOURCE = """
import sys, time
from oomd import _fastcg
from oomd.context import fd_budget_from_rlimit
files = open(sys.argv[1]).read().split("\\0")
raw = _fastcg.RawPaths(files, fd_budget_from_rlimit())
interval = float(sys.argv[2])
nxt = time.monotonic()
while True:
    raw.read_all()
    sys.stderr.write("%s\\n")
    sys.stderr.flush()
    nxt += interval
    time.sleep(max(0.0, nxt - time.monotonic()))
""" % TICK_LINE


def start_loop(files: list[str], workdir: Path, *, interval: float = 1) -> Daemon:
    """The C pread loop over ``files`` as a process of its own, one pass per ``interval`` like
    a daemon's tick (PSI averages are updated at most every 2 s per cgroup, on read: a loop
    that reads back to back pays less than one that reads once a second)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "files").write_text("\0".join(files))
    err = open(workdir / "stderr", "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", LOOP_SOURCE, str(workdir / "files"), f"{interval:g}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    err.close()
    return Daemon("loop", proc, workdir)


def pread_loop_ms(files: list[str], passes: int = 30) -> float:
    """The C loop over the same files under this process's fd budget (RawPaths: fds kept for
    as many files as the budget allows, pread at offset 0; open/read/close for the rest): CPU
    ms per pass, the median (one pass per tick at --interval 1 = ms per second)."""
    from oomd import _fastcg
    from oomd.context import fd_budget_from_rlimit

    raw = _fastcg.RawPaths(files, fd_budget_from_rlimit())
    try:
        samples = []
        for _ in range(passes):
            t = time.process_time()
            raw.read_all()
            samples.append(time.process_time() - t)
        return statistics.median(samples) * 1e3
    finally:
        raw.close()


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
