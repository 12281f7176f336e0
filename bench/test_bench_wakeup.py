"""Idle CPU of the whole daemon with PSI trigger wake-ups (issue 17): ``stall_above`` on 1,000
real cgroup2 leaves, at ``--interval 10`` and at ``-i 1``, both daemons running side by side over
the same minute (utime + stime of every thread, from /proc). With triggers the interval can be
long: a stall wakes the daemon within the trigger's window (scripts/e2e_repeat.py --mode stall).

    .venv/bin/python -m pytest bench/test_bench_wakeup.py -s -p no:cacheprovider

Two rulesets on the leaves: ``full`` (1,000 cgroups are beyond --max-psi-triggers: no
triggers, ticks only, as the issue's example) and ``some`` (one trigger on the leaves' parent).
Needs root and a cgroup2 mount; the cgroups are made and removed by oomd.testing.realcg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchlib import _proc_cpu_seconds
from oomd.testing import realcg

REPO = Path(__file__).resolve().parents[1]
LEAVES = int(os.environ.get("PYOOMD_BENCH_LEAVES", "1000"))
WARMUP = float(os.environ.get("PYOOMD_BENCH_WARMUP", "25"))
MEASURE = float(os.environ.get("PYOOMD_BENCH_SECONDS", "60"))
LIMIT = 0.15

_why = realcg.skip_reason(need_pressure=False)


def config(relparent: str) -> dict:
    leaves = f"{relparent}/leaves/*"

    def ruleset(name, line):
        return {"name": name, "detectors": [[name, {"name": "stall_above", "args": {
            "cgroup": leaves, "resource": "memory", "line": line, "threshold": "10",
            "window": "2"}}]],
            "actions": [{"name": "kill_by_stall", "args": {
                "cgroup": leaves, "resource": "memory", "line": line, "dry": "true"}}]}

    return {"rulesets": [ruleset("full stall", "full"), ruleset("some stall", "some")]}


def start(cg, work: Path, interval: str) -> tuple[subprocess.Popen, Path]:
    log = work / f"daemon-{interval}.log"
    argv = [sys.executable, "-m", "oomd", "--config", str(work / "c.json"), "--interval",
            interval, "--cgroup-fs", cg.cgroup2, "--runtime-dir", str(work / f"rt-{interval}"),
            "--kmsg-override", str(work / f"kmsg-{interval}"), "--no-protect"]
    out = open(log, "w")
    proc = cg.start(argv, name=f"pyoomd -i {interval}", cwd=REPO, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc, log


@pytest.mark.skipif(_why is not None, reason=f"real cgroups: {_why}")
def test_idle_cpu_interval_10_vs_1_with_stall_above_on_1000_real_leaves():
    with realcg.RealCgroups() as cg:
        t0 = time.monotonic()
        for i in range(LEAVES):
            cg.create(f"leaves/l{i:04d}")
        made = time.monotonic() - t0
        work = Path(cg.tempdir())
        (work / "c.json").write_text(json.dumps(config(cg.name)))
        slow, slow_log = start(cg, work, "10")
        fast, fast_log = start(cg, work, "1")
        try:
            time.sleep(WARMUP)
            assert slow.poll() is None and fast.poll() is None, fast_log.read_text()[-2000:]
            c_slow, c_fast, w0 = _proc_cpu_seconds(slow.pid), _proc_cpu_seconds(fast.pid), \
                time.monotonic()
            time.sleep(MEASURE)
            d_slow = _proc_cpu_seconds(slow.pid) - c_slow
            d_fast = _proc_cpu_seconds(fast.pid) - c_fast
            wall = time.monotonic() - w0
        finally:
            for p in (slow, fast):
                realcg.terminate(p)
        text = slow_log.read_text()
        ratio = d_slow / d_fast
        print(f"\n{LEAVES} real cgroup2 leaves (made in {made:.2f}s); both daemons over the same "
              f"{wall:.0f}s after {WARMUP:.0f}s of warm-up")
        print(f"  -i 10: {d_slow:.3f} s CPU ({d_slow / wall * 100:.3f}% of a core)")
        print(f"  -i 1 : {d_fast:.3f} s CPU ({d_fast / wall * 100:.3f}% of a core)")
        print(f"  ratio: {ratio:.3f} (limit {LIMIT})")
        # the some ruleset got its one trigger on the leaves' parent; full got none (logged)
        assert f"PSI trigger on {cg.name}/leaves: some stall" in text, text[-3000:]
        assert "no triggers for them; they are checked at the ticks" in text
        assert ratio <= LIMIT, f"-i 10 used {ratio:.3f}x the CPU of -i 1"
