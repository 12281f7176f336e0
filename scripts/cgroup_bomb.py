#!/usr/bin/env python3
"""A cgroup bomb under a candidate pattern (issue 13 item 4): many cgroups where a kill plugin
ranks every one of them every tick; the pyoomd daemon must keep ticking, keep deciding, and
say how much memory it took.

    # a fake tree of N cgroups (files in the kernel's formats, under /dev/shm), 5 minutes at
    # the default interval, the daemon as shipped (the fake tree is re-opened every tick):
    python scripts/cgroup_bomb.py --mode fake --cgroups 50000 --seconds 300

    # N empty cgroups made under the real cgroup2 mount (removed afterwards), one tick a
    # second, kill_by_pressure over all of them, sleeping processes in four:
    python scripts/cgroup_bomb.py --mode real --cgroups 30000 --seconds 60

Config: a tick counter (a ruleset that logs once a tick), then ``exists`` on the bomb's parent
firing every tick with ``post_action_delay`` 0 and a dry kill plugin over ``<parent>/*``
(fake: kill_by_memory_size_or_growth, one cgroup much larger than the rest; real:
kill_by_pressure). Reported: ticks and dry kill decisions in the window (after 3 ticks of
start-up), ticks whose kill plugin abstained because reads failed ("starved"), the fd and
inotify budget lines the daemon logged, whole-process CPU per second, and peak RSS (VmHWM) with
the per-cgroup cost over an idle daemon's. Exit status 0 when every tick decided.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import daemonbench as db  # noqa: E402
from oomd.testing.realcg import RealCgroups, skip_reason  # noqa: E402

STARVED = "Not killing: cgroups could not be read"
PSI = ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
       "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def fake_tree(root: Path, n: int) -> None:
    """root/bomb.slice/c<i> with what kill_by_memory_size_or_growth and the dump read; c<n/2>
    is the largest. The root and the slice carry the files the daemon reads for them too."""
    def write(d: Path, files: dict[str, str]) -> None:
        d.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, text.encode())
            os.close(fd)

    base = {"cgroup.controllers": "memory io\n", "cgroup.subtree_control": "memory io\n",
            "memory.pressure": PSI, "io.pressure": PSI, "memory.min": "0\n",
            "memory.low": "0\n", "cgroup.events": "populated 1\nfrozen 0\n",
            "memory.oom.group": "0\n"}
    write(root, {**base, "memory.current": "0\n"})
    write(root / "bomb.slice", {**base, "memory.current": f"{n << 20}\n"})
    for i in range(n):
        size = (1 << 30) if i == n // 2 else (1 << 20) + i
        write(root / "bomb.slice" / f"c{i:05d}", {**base, "memory.current": f"{size}\n"})


def config(parent: str, killer: str) -> dict:
    args = {"cgroup": f"{parent}/*", "dry": "true"}
    if killer == "kill_by_pressure":
        args["resource"] = "memory"
    return {"rulesets": [
        db.TICK_COUNTER,
        {"name": "bomb", "post_action_delay": "0",
         "detectors": [["always", {"name": "exists", "args": {"cgroup": parent}}]],
         "actions": [{"name": killer, "args": args}]},
    ]}


def idle_hwm(cgroup_fs: str, extra: tuple[str, ...]) -> float:
    """Peak RSS of the same daemon with only the tick counter: the per-cgroup cost's base."""
    work = Path(tempfile.mkdtemp(prefix="pyoomd-bomb-idle-"))
    d = db.start_pyoomd(cgroup_fs, {"rulesets": [db.TICK_COUNTER]}, work, extra=extra)
    try:
        return db.measure([d], 3)["pyoomd"].get("hwm_mib", 0.0)
    finally:
        db.stop([d])
        shutil.rmtree(work, ignore_errors=True)


def run(cgroup_fs: str, parent: str, killer: str, n: int, seconds: float, interval: float,
        extra: tuple[str, ...]) -> int:
    work = Path(tempfile.mkdtemp(prefix="pyoomd-bomb-"))
    d = db.start_pyoomd(cgroup_fs, config(parent, killer), work, interval=interval, extra=extra)
    try:
        t0 = time.monotonic()
        got = db.measure([d], seconds, startup_timeout=900)["pyoomd"]
        log = d.log()
    finally:
        db.stop([d])
        shutil.rmtree(work, ignore_errors=True)
    if "error" in got:
        print(f"daemon failed: {got['error']}")
        return 1
    base = idle_hwm(cgroup_fs, extra)
    starved = log.count(STARVED)
    budget_lines = sorted({line.split("] ", 1)[-1][:160] for line in log.splitlines()
                           if "fd budget" in line or "watch" in line.lower() and "budget" in line})
    expected = int(seconds / interval)
    print(f"cgroups {n}  window {got['wall']:.0f} s at --interval {interval:g} "
          f"(start-up and 3 ticks took {time.monotonic() - t0 - got['wall']:.0f} s)")
    print(f"ticks {got['ticks']} (expected ~{expected})  decisions {got['decisions']}  "
          f"starved ticks (whole run) {starved}")
    print(f"cpu {got['cpu_ms_per_s']:.1f} ms/s  peak RSS {got['hwm_mib']:.1f} MiB  "
          f"(idle daemon {base:.1f} MiB: {(got['hwm_mib'] - base) * 1024 * 1024 / n:.0f} "
          f"bytes per cgroup)")
    for line in budget_lines:
        print(f"  logged: {line}")
    ok = got["decisions"] >= got["ticks"] > 0 and starved == 0
    print("every tick decided" if ok else "NOT every tick decided")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("fake", "real"), required=True)
    ap.add_argument("--cgroups", type=int, default=50000)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--interval", type=float, default=None,
                    help="--interval of the daemon (default: 5 fake, 1 real)")
    ap.add_argument("--assume-cgroup2", action="store_true",
                    help="fake mode: read the tree as cgroup2 (cached fds, inotify)")
    o = ap.parse_args(argv)
    if o.mode == "fake":
        root = Path(tempfile.mkdtemp(prefix="pyoomd-bomb-", dir="/dev/shm"))
        try:
            t = time.monotonic()
            fake_tree(root, o.cgroups)
            print(f"fake tree of {o.cgroups} cgroups in {time.monotonic() - t:.0f} s")
            extra = ("--assume-cgroup2",) if o.assume_cgroup2 else ()
            from oomd.testing.oracle import fake_cgroup_fs
            fs = str(root) if o.assume_cgroup2 else fake_cgroup_fs(root)
            return run(fs, "bomb.slice", "kill_by_memory_size_or_growth", o.cgroups, o.seconds,
                       o.interval or 5, extra)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    why = skip_reason(need_pressure=False)
    if why:
        print(f"cannot run on real cgroup2: {why}")
        return 2
    with RealCgroups(prefix="pyoomd-bomb") as cg:
        t = time.monotonic()
        for i in range(o.cgroups):
            cg.create(f"c{i:05d}")
        for i in range(0, o.cgroups, o.cgroups // 4):
            cg.start_sleeper(f"c{i:05d}")
        print(f"{o.cgroups} real cgroups in {time.monotonic() - t:.0f} s")
        return run(cg.cgroup2, cg.relpath(), "kill_by_pressure", o.cgroups, o.seconds,
                   o.interval or 1, ())


if __name__ == "__main__":
    sys.exit(main())
