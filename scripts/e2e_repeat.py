#!/usr/bin/env python3
"""Run the real-kernel end-to-end kill scenario N times in a row (issue 7 item 1).

    python scripts/e2e_repeat.py            # 20 runs
    python scripts/e2e_repeat.py --runs 50 --json runs.json

Each run (oomd/testing/realcg.py ``run_pressure_kill``): a fresh pyoomd daemon with
pressure_above (threshold 10, duration 1, interval 1 s) and kill_by_pressure on a test cgroup,
a hog thrashing in a 64 MiB v1 memcg and a sleeping bystander. A run passes when the hog's
cgroup is emptied by the daemon's SIGKILL, the bystander lives, one kill record reaches the
kmsg file, the oomd xattrs are on the victim, no kernel OOM kill hit the test's memcgs, and the
daemon logged no failure and exited 0 on SIGTERM.

Times per run: start->fired (hog started until the detector group fired: pressure build-up plus
the detector's duration), detection->kill (the daemon's "has fired" line, logged inline before
the action chain runs, reached the harness, until the harness, polling every 20 ms, saw the
hog's cgroup empty) and pressure->kill (the harness first read avg10 over the threshold until
empty). Root, cgroup2 and a v1 memory controller are needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oomd.testing import realcg  # noqa: E402


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms, "
            f"min {min(values) * 1000:.0f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--deadline", type=float, default=90.0, help="seconds for the kill, per run")
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between runs (PSI settles)")
    ap.add_argument("--json", default=None, help="write every run's figures to this file")
    o = ap.parse_args(argv)
    why = realcg.skip_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2

    rows = []
    for i in range(1, o.runs + 1):
        try:
            run = realcg.run_pressure_kill(deadline=o.deadline)
            problems = run.problems()
        except realcg.RealCgError as e:
            run, problems = None, [f"harness: {e}"]
        row = {"run": i, "passed": not problems, "problems": problems}
        if run is not None:
            row.update(
                start_to_fired=None if run.t_fired is None else run.t_fired - run.t_hog_started,
                detection_to_kill=run.detection_to_kill, pressure_to_kill=run.pressure_to_kill,
                host_oom_kill_delta=run.host_oom_kill_delta, kmsg=run.kmsg)
        rows.append(row)
        times = ", ".join(f"{k} {row[k] * 1000:.0f} ms"
                          for k in ("start_to_fired", "detection_to_kill", "pressure_to_kill")
                          if row.get(k) is not None)
        print(f"run {i:>2}: {'PASS' if row['passed'] else 'FAIL'}  {times}"
              + ("" if row["passed"] else f"  problems: {problems}"), flush=True)
        if i < o.runs:
            time.sleep(o.pause)

    passed = sum(r["passed"] for r in rows)
    print(f"\n{passed}/{len(rows)} runs passed")
    for key, label in (("detection_to_kill", "detection->kill"),
                       ("pressure_to_kill", "pressure->kill"), ("start_to_fired", "start->fired")):
        print(f"  {label:<16} {fmt([r[key] for r in rows if r.get(key) is not None])}")
    deltas = [r["host_oom_kill_delta"] for r in rows if r.get("host_oom_kill_delta") is not None]
    print(f"  host oom_kill delta over all runs: {sum(deltas) if deltas else 'n/a'} "
          "(the whole machine, any cgroup)")
    if o.json:
        Path(o.json).write_text(json.dumps(rows, indent=2))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
