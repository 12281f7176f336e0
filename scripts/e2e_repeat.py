#!/usr/bin/env python3
"""Run the real-kernel end-to-end kill scenario N times in a row (issue 7 item 1, issue 17).

    python scripts/e2e_repeat.py            # 20 runs
    python scripts/e2e_repeat.py --runs 50 --json runs.json
    python scripts/e2e_repeat.py --mode stall -i 5 --runs 10          # issue 17's acceptance
    python scripts/e2e_repeat.py --mode pressure -i 5 --duration 0 --runs 10
    python scripts/e2e_repeat.py --mode oomd -i 1 --duration 0 --runs 10   # oomd 0.5.0

Modes: ``pressure`` (default): pressure_above (``--threshold``, ``--duration``) on the workload,
kill_by_pressure over its children; ``stall``: stall_above (memory, full, ``--threshold`` % of a
2 s window, duration 0) on the workload's children and kill_by_stall, the hog started early (its
file writing already stalls it) in a leaf below ``workload/hog`` (see realcg.run_pressure_kill:
the harness's 20 ms reads must not land on the cgroup that carries the daemon's trigger); ``oomd``: the ``pressure`` config run by oomd 0.5.0
(``.oomd-bin``).

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
empty), and window->kill: from the end of the first 2 s window in which the hog's full stall
exceeded the threshold (from the hog's memory.pressure totals, sampled every 20 ms by the
harness) until empty. Root, cgroup2 and a v1 memory controller are needed.
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
    ap.add_argument("--mode", choices=("pressure", "stall", "oomd"), default="pressure")
    ap.add_argument("-i", "--interval", type=float, default=1.0)
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--duration", type=int, default=1, help="pressure_above's duration")
    o = ap.parse_args(argv)
    why = realcg.skip_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    kw = dict(deadline=o.deadline, interval=o.interval, threshold=o.threshold,
              duration=o.duration)
    if o.mode == "stall":
        kw.update(config_for=lambda rel: realcg.stall_kill_config(rel, o.threshold),
                  killer="kill_by_stall", early_hog=True, duration=0, hog_leaf=True)
    elif o.mode == "oomd":
        from oomd.testing.oomd_bin import find_oomd_binary, why_missing

        binary = find_oomd_binary()
        if binary is None:
            print(f"cannot run: no oomd 0.5.0 binary: {why_missing()}", file=sys.stderr)
            return 2
        kw.update(oomd_binary=str(binary))
    print(f"mode {o.mode}, interval {o.interval:g}s, threshold {o.threshold}"
          + ("" if o.mode == "stall" else f", duration {o.duration}"), flush=True)

    rows = []
    for i in range(1, o.runs + 1):
        try:
            run = realcg.run_pressure_kill(**kw)
            problems = run.problems()
        except realcg.RealCgError as e:
            run, problems = None, [f"harness: {e}"]
        row = {"run": i, "passed": not problems, "problems": problems}
        if run is not None:
            row.update(
                start_to_fired=None if run.t_fired is None else run.t_fired - run.t_hog_started,
                detection_to_kill=run.detection_to_kill, pressure_to_kill=run.pressure_to_kill,
                window_to_kill=run.window_to_kill, bystander_alive=run.bystander_alive_at_end,
                host_oom_kill_delta=run.host_oom_kill_delta, kmsg=run.kmsg)
        rows.append(row)
        times = ", ".join(f"{k} {row[k] * 1000:.0f} ms"
                          for k in ("start_to_fired", "detection_to_kill", "pressure_to_kill",
                                    "window_to_kill")
                          if row.get(k) is not None)
        print(f"run {i:>2}: {'PASS' if row['passed'] else 'FAIL'}  {times}"
              + ("" if row["passed"] else f"  problems: {problems}"), flush=True)
        if i < o.runs:
            time.sleep(o.pause)

    passed = sum(r["passed"] for r in rows)
    print(f"\n{passed}/{len(rows)} runs passed")
    alive = sum(1 for r in rows if r.get("bystander_alive"))
    print(f"  bystander alive in {alive}/{len(rows)} runs")
    for key, label in (("window_to_kill", "window->kill"), ("detection_to_kill", "detection->kill"),
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
