#!/usr/bin/env python3
"""The example of docs/explain.md, from a committed test fixture: the daemon (dry) on
tests/fixtures/cgroups/kill_by_memory_size_or_growth/basic with memory_above on
workload.slice, then ``pyoomd explain`` of the flight-recorder file of its kill, and two
``--cgroup`` questions answered from a recording of the same run.

    python scripts/explain_example.py            # prints the commands' outputs

The fixture tree is copied to a temporary directory (the daemon reaches it through the cgroup2
mount, as the oracle tests do); nothing on the host is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "cgroups" / "kill_by_memory_size_or_growth" / "basic"
CONFIG = {"rulesets": [{
    "name": "workload memory",
    "detectors": [["workload over 50M", {"name": "memory_above", "args": {
        "cgroup": "workload.slice", "threshold": "50M", "duration": "2"}}]],
    "actions": [{"name": "kill_by_memory_size_or_growth", "args": {
        "cgroup": "workload.slice/*", "dry": "true"}}],
}]}


def run(work: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO))
    from oomd.testing.oracle import fake_cgroup_fs

    tree = work / "tree"
    shutil.copytree(FIXTURE, tree)
    config = work / "pyoomd.json"
    config.write_text(json.dumps(CONFIG, indent=1))
    runtime = work / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def pyoomd(*args) -> str:
        got = subprocess.run([sys.executable, "-m", "oomd", *map(str, args)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
        if got.returncode != 0:
            raise RuntimeError(f"pyoomd {' '.join(map(str, args))}: {got.stderr[-2000:]}")
        return got.stdout

    common = ["--config", config, "--interval", "1", "--cgroup-fs", fake_cgroup_fs(tree),
              "--kmsg-override", work / "kmsg", "--no-protect", "--max-ticks", "5"]
    pyoomd(*common, "--runtime-dir", runtime)
    (name,) = os.listdir(runtime / "kills")
    flight = runtime / "kills" / name
    out = {"explain": pyoomd("explain", flight)}
    shown = Path("/run/oomd/kills") / name
    out["explain"] = out["explain"]
    out["file"] = str(shown)
    rec = work / "rec"
    pyoomd(*common, "--runtime-dir", work / "run2", "--record", rec)
    for cgroup in ("workload.slice/c", "system.slice/decoy"):
        out[cgroup] = pyoomd("explain", "--config", config, rec, "--cgroup", cgroup)
    return out


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pyoomd-explain-"))
    try:
        out = run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"$ pyoomd explain {out['file']}")
    print(out["explain"], end="")
    for cgroup in ("workload.slice/c", "system.slice/decoy"):
        print(f"\n$ pyoomd explain --config pyoomd.json /var/lib/pyoomd/rec --cgroup {cgroup}")
        print(out[cgroup], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
