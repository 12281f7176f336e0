#!/usr/bin/env python3
"""A PSI trigger storm on the real kernel (issue 17): memory pressure that stays high for a
minute, under a daemon that is woken by it.

    .venv/bin/python scripts/trigger_storm.py [--seconds 60]

A hog thrashes in ``workload/hog`` (its process in the leaf ``workload/hog/task``) next to a
sleeping bystander for ``--seconds``. The daemon (``--interval 5``, ``--fast-interval 0.1``)
runs stall_above (memory full 10 % of 2 s) on ``workload/*`` with a *dry* kill_by_stall, so the
hog lives on and the pressure never ends, and a ruleset ``post_action_delay`` of
``--delay`` seconds. Reported, and checked:

* ticks: how many (the metrics textfile's tick histogram), their mean rate, and the smallest
  gap between two ticks at which the detector fired: its line says for how long it has been
  firing (``for X.XX seconds``, from the ticks' own clock), so within a streak the difference
  of two lines is the gap between their ticks, to 10 ms; never below the fast interval;
* CPU: the daemon's utime + stime over the storm, as a share of one core;
* the pause: dry kill records (one per action chain run) at least ``--delay`` seconds apart;
* trigger events (the stats socket's ``pyoomd.psi_trigger_events``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import _proc_cpu_seconds  # noqa: E402
from oomd.testing import realcg  # noqa: E402

FAST = 0.1


def config(relparent: str, delay: int) -> dict:
    cfg = realcg.stall_kill_config(relparent, 10)
    rs = cfg["rulesets"][0]
    rs["post_action_delay"] = delay
    rs["actions"][0]["args"]["dry"] = "true"
    return cfg


def tick_count(textfile: Path) -> int | None:
    try:
        text = textfile.read_text()
    except OSError:
        return None
    m = re.search(r"^pyoomd_tick_duration_seconds_count (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--delay", type=int, default=10, help="the ruleset's post_action_delay")
    o = ap.parse_args(argv)
    why = realcg.skip_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    lines: list[tuple[float, str]] = []
    with realcg.RealCgroups() as cg:
        cg.create("workload/hog/task")
        cg.create("workload/bystander")
        work = Path(cg.tempdir())
        (work / "c.json").write_text(json.dumps(config(cg.name, o.delay)))
        textfile = work / "metrics.prom"
        rt = work / "rt"
        daemon = cg.start(
            [sys.executable, "-m", "oomd", "--config", str(work / "c.json"), "--interval", "5",
             "--fast-interval", str(FAST), "--cgroup-fs", cg.cgroup2, "--runtime-dir", str(rt),
             "--kmsg-override", str(work / "kmsg"), "--metrics-textfile", str(textfile)],
            name="pyoomd", cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env={**os.environ, "INLINE_LOGGING": "1"})

        def collect():
            for raw in daemon.stdout:
                lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        if not realcg.wait_for(lambda: any("Running pyoomd" in x for _, x in lines), 60):
            print("the daemon did not start", file=sys.stderr)
            return 1
        time.sleep(6)  # a first tick, so the textfile exists
        bystander = cg.start_sleeper("workload/bystander")
        hog = cg.start_hog("workload/hog/task", wait_written=False,
                           max_seconds=o.seconds + 30)
        t0 = time.monotonic()
        ticks0, cpu0 = tick_count(textfile) or 0, _proc_cpu_seconds(daemon.pid)
        time.sleep(o.seconds)
        ticks1, cpu1 = tick_count(textfile) or 0, _proc_cpu_seconds(daemon.pid)
        t1 = time.monotonic()
        stats = subprocess.run([sys.executable, "-m", "oomd", "-D", str(rt), "-d"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout
        hog_alive, by_alive = hog.alive(), bystander.alive()
        rc = realcg.terminate(daemon)
        reader.join(5)
        records = (work / "kmsg").read_text().splitlines() if (work / "kmsg").exists() else []
    wall = t1 - t0
    held = [float(m.group(1)) for t, x in lines if t0 <= t <= t1 and "stall_above" in x
            for m in [re.search(r"for (\d+\.\d+) seconds$", x)] if m]
    gaps = [b - a for a, b in zip(held, held[1:]) if b > a]  # a new streak starts at 0
    kills = [t for t, x in lines if t0 <= t <= t1 and "(dry)kill_by_stall v2" in x]
    kill_gaps = [b - a for a, b in zip(kills, kills[1:])]
    events = re.search(r'"pyoomd.psi_trigger_events" : (\d+)', stats)
    ticks = ticks1 - ticks0
    cpu = cpu1 - cpu0
    print(f"storm: {wall:.1f}s of pressure; hog alive {hog_alive}, bystander alive {by_alive}, "
          f"daemon exit {rc}")
    print(f"  ticks: {ticks} ({ticks / wall:.2f}/s; at most {1 / FAST:.0f}/s at the fast "
          f"interval); trigger events: {events.group(1) if events else 'n/a'}")
    print(f"  smallest gap between two firing ticks (the detector's own clock): "
          f"{min(gaps) * 1000:.0f} ms over {len(gaps)} gaps" if gaps else "  no firing ticks")
    print(f"  daemon CPU: {cpu:.2f}s = {cpu / wall * 100:.1f}% of a core "
          f"({cpu / max(ticks, 1) * 1000:.2f} ms per tick)")
    print(f"  dry kills: {len(kills)}, gaps {[round(g, 1) for g in kill_gaps]} "
          f"(post_action_delay {o.delay}s); records in kmsg: {len(records)}")
    ok = (ticks / wall <= 1 / FAST + 0.5 and (not gaps or min(gaps) >= FAST - 0.011)
          and all(g >= o.delay - 0.5 for g in kill_gaps) and kills and by_alive and rc == 0)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
