#!/usr/bin/env python3
"""Run the slow-victim kill of issue 22 on the real kernel N times in a row.

    python scripts/slow_victim_repeat.py                     # 5 runs, 8 GiB of anonymous memory
    python scripts/slow_victim_repeat.py --kind mapped --gib 24 --runs 20
    python scripts/slow_victim_repeat.py --json runs.json

Each run (oomd/testing/slowkill.py ``run_slow_kill``): ``a-big`` with one process holding
``--gib`` GiB (``anon``: private anonymous memory, every page touched, the issue's victim;
``mapped``: mappings of a 256 MiB memfd, cheap to set up) and ``trusted.oomd_prefer``,
``b-small`` with a sleeping bystander, a fresh daemon with ``exists`` → ``kill_by_pressure``
over both, not dry. A run passes when only a-big is killed, its one kill record and the oomd
xattrs are written, the bystander lives, and the daemon logs and exports the time to empty.

Printed per run: the victim's allocation time and VmRSS, the exit time as the harness saw it
(the daemon's "Trying to kill" line to ``populated 0`` in cgroup.events) and as the daemon
logged it. Needs root and cgroup2; the memory is freed by the kill (and by the cleanup on any
failure). Check ``free -g`` first: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oomd.testing import realcg, slowkill  # noqa: E402


HEADROOM = 4 * slowkill.GiB  # left for everything else on the machine


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kind", choices=("anon", "mapped"), default="anon")
    ap.add_argument("--gib", type=float, default=8.0, help="victim size in GiB")
    ap.add_argument("--no-reap", action="store_true",
                    help="kill_by_pressure with reap_memory false (no process_mrelease)")
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    ap.add_argument("--json", default=None, help="write every run's figures to this file")
    o = ap.parse_args(argv)
    why = realcg.skip_reason(need_pressure=False)
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2

    def no_reap(relparent: str) -> dict:
        c = slowkill.slow_kill_config(relparent)
        c["rulesets"][0]["actions"][0]["args"]["reap_memory"] = "false"
        return c

    rows = []
    for i in range(1, o.runs + 1):
        if o.kind == "anon" and mem_available() < o.gib * slowkill.GiB + HEADROOM:
            print(f"run {i}: not started: MemAvailable {mem_available() / slowkill.GiB:.1f} GiB "
                  f"is below {o.gib:g} GiB + {HEADROOM / slowkill.GiB:g} GiB of headroom "
                  "(the machine is shared)", flush=True)
            return 2
        try:
            run = slowkill.run_slow_kill(o.kind, int(o.gib * slowkill.GiB),
                                         config_factory=no_reap if o.no_reap else None)
            problems = run.problems()
        except realcg.RealCgError as e:
            run, problems = None, [f"harness: {e}"]
        row = {"run": i, "passed": not problems, "problems": problems}
        if run is not None:
            row.update(setup_s=run.setup_seconds, rss_kib=run.victim_rss_kib,
                       exit_s=run.exit_seconds, daemon_empty_ms=run.daemon_empty_ms,
                       kmsg=run.kmsg)
        rows.append(row)
        figures = ""
        if run is not None and run.exit_seconds is not None:
            figures = (f"VmRSS {run.victim_rss_kib / (1 << 20):.1f} GiB in "
                       f"{run.setup_seconds:.1f} s, exit {run.exit_seconds * 1000:.0f} ms "
                       f"(daemon: {run.daemon_empty_ms} ms), records {len(run.kmsg)}, "
                       f"bystander {'alive' if run.bystander_alive_at_end else 'DEAD'}")
        print(f"run {i}: {'PASS' if row['passed'] else 'FAIL'}  {figures}"
              + ("" if row["passed"] else f"  problems: {problems}"), flush=True)
        if i < o.runs:
            time.sleep(o.pause)

    passed = sum(r["passed"] for r in rows)
    exits = [r["exit_s"] for r in rows if r.get("exit_s") is not None]
    print(f"\n{passed}/{len(rows)} runs passed")
    if exits:
        print(f"  kill -> empty  median {statistics.median(exits) * 1000:.0f} ms, "
              f"min {min(exits) * 1000:.0f} ms, max {max(exits) * 1000:.0f} ms")
    if o.json:
        Path(o.json).write_text(json.dumps(rows, indent=2))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
