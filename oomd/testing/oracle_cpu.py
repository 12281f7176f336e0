"""oomd 0.5.0's own CPU cost, measured as a process on a tree (the benches' side of the
oracle): ``measure_cpu_detail`` runs the binary for a number of ticks and reads utime+stime
of /proc/<pid>/stat at its start-up, first-tick and tick-end log lines; ``block_device``
picks a device for io cost comparisons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from oomd.testing.oomd_bin import oomd_env, why_missing
from oomd.testing.oracle import (
    DEFAULT_STARTUP_TIMEOUT, DEFAULT_TICK_TIMEOUT, END_LINES, OracleError, OracleTimeout,
    OracleUnavailable, _Lines, _stop, fake_cgroup_fs, marker_rulesets, oracle_binary,
    parse_log_line, scratch_dir)


@dataclass
class CpuMeasurement:
    startup_s: float         # CPU from exec to "Running oomd" (config parse + compile)
    first_tick_s: float      # CPU of tick 1 (cold: opens every cgroup)
    per_tick_s: float        # mean CPU of the following `ticks` ticks
    ticks: int
    wall_per_tick_s: float   # mean wall time between tick ends (interval + processing)
    resolution_s: float      # one clock tick of /proc/<pid>/stat


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def block_device() -> str | None:
    """A maj:min of this host with a readable queue/rotational (oomd checks it at start-up for
    ``--device``), so io cost can be compared; None where there is none."""
    base = Path("/sys/dev/block")
    for dev in sorted(os.listdir(base)) if base.is_dir() else ():
        try:
            if (base / dev / "queue" / "rotational").read_text().strip() in ("0", "1"):
                return dev
        except OSError:
            continue
    return None


def measure_cpu_detail(
    tree_root: str | os.PathLike,
    config: dict | None,
    ticks: int,
    *,
    binary: str | os.PathLike | None = None,
    interval: int = 1,
    inline_logging: bool = False,
    tick_timeout: float = DEFAULT_TICK_TIMEOUT,
    devices: Iterable[str] = (),
) -> CpuMeasurement:
    """Run oomd on an existing tree for 1 + ``ticks`` ticks and measure its CPU time
    (utime + stime of /proc/<pid>/stat, all threads). Start-up and the first (cold) tick are
    measured separately; ``per_tick_s`` is the mean over the ``ticks`` ticks after that.
    Logging is oomd's default (background thread) unless ``inline_logging``. Only the end
    marker ruleset is added to ``config``. ``devices`` go to ``--device`` (io cost).
    Resolution: 1/CLK_TCK per reading, so use enough ticks for small trees."""
    if ticks < 1:
        raise ValueError("ticks must be >= 1")
    binary = Path(binary) if binary else oracle_binary()
    if binary is None:
        raise OracleUnavailable(f"oomd 0.5.0 binary unavailable: {why_missing()}")
    cgroup_fs = fake_cgroup_fs(tree_root)
    cfg = dict(config or {})
    cfg["rulesets"] = [*(cfg.get("rulesets") or []), marker_rulesets()[1]]
    tmp = Path(tempfile.mkdtemp(prefix="oor-", dir=scratch_dir()))
    try:
        (tmp / "config.json").write_text(json.dumps(cfg))
        argv = [str(binary), "--config", str(tmp / "config.json"), "--interval", str(interval),
                "--cgroup-fs", cgroup_fs, "--kmsg-override", str(tmp / "kmsg"),
                "--runtime-dir", str(tmp / "rt")]
        if devices:
            argv += ["--device", ",".join(devices)]
        env = oomd_env(binary)
        env.pop("INLINE_LOGGING", None)
        if inline_logging:
            env["INLINE_LOGGING"] = "1"
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)
        try:
            lines = _Lines(proc.stderr.fileno())
            marks = []   # (cpu, wall) at "Running oomd" and at each tick end
            deadline = time.monotonic() + DEFAULT_STARTUP_TIMEOUT
            while len(marks) < ticks + 2:
                try:
                    raw = lines.readline(deadline)
                except TimeoutError:
                    raise OracleTimeout(f"oomd did not reach tick {len(marks)} in time")
                if raw is None:
                    raise OracleError(
                        "oomd died while being measured:\n"
                        + bytes(lines.raw).decode("utf-8", "replace")[-2000:])
                msg = parse_log_line(raw).message
                if (not marks and msg == "Running oomd") or (marks and msg == END_LINES[2]):
                    marks.append((_cpu_seconds(proc.pid), time.monotonic()))
                    deadline = time.monotonic() + tick_timeout
        finally:
            _stop(proc)
            proc.stderr.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (c0, _), (c1, w1), (cn, wn) = marks[0], marks[1], marks[-1]
    return CpuMeasurement(
        startup_s=c0, first_tick_s=c1 - c0, per_tick_s=(cn - c1) / ticks, ticks=ticks,
        wall_per_tick_s=(wn - w1) / ticks, resolution_s=1 / os.sysconf("SC_CLK_TCK"),
    )


def measure_cpu(tree_root: str | os.PathLike, config: dict | None, ticks: int, **kwargs) -> float:
    """oomd's CPU seconds per tick on ``tree_root`` with ``config`` (see measure_cpu_detail)."""
    return measure_cpu_detail(tree_root, config, ticks, **kwargs).per_tick_s


__all__ = ["CpuMeasurement", "block_device", "measure_cpu", "measure_cpu_detail"]
