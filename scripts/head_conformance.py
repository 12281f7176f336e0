#!/usr/bin/env python3
"""Per-cgroup rulesets against oomd HEAD (issue 19): random scenarios through an oomd built
from upstream main at 88c28fd and pyoomd ``--compat head``.

    python scripts/head_conformance.py --count 120                 # run both, compare
    python scripts/head_conformance.py --count 120 --save tests/oracle/fixtures/head_88c28fd.jsonl
    python scripts/head_conformance.py --replay tests/oracle/fixtures/head_88c28fd.jsonl
    python scripts/head_conformance.py --show 7                    # print scenario 7's config

The oomd HEAD binary is ``$PYOOMD_OOMD_HEAD_BIN`` or ``../oomd-head-build/build/oomd`` beside the
checkout (docs/reliability.md: scripts/oomd-head/build.sh builds it). ``--save`` keeps oomd
HEAD's observations (``oomd.testing.head``), which tests/oracle/test_head_conformance.py
replays against pyoomd without the binary.

Scenarios come from ``oomd.testing.headgen`` (one per seed). What is compared is
``oomd.testing.head.tick_events``: clones added and dropped, action chains and the prekill
hooks they fired, kill records, per tick.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oomd.testing.headgen import Gen, generate  # noqa: E402

def main() -> int:
    from oomd.testing import head, oracle
    from oomd.testing.pyoomd_run import run_pyoomd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--save", help="write oomd HEAD's observations here (JSON lines)")
    ap.add_argument("--replay", help="compare pyoomd with saved observations only")
    ap.add_argument("--show", type=int, help="print one scenario and exit")
    ap.add_argument("--jobs", type=int, default=None)
    a = ap.parse_args()
    if a.show is not None:
        print(Gen(a.show).scenario().to_json())
        return 0
    if a.replay:
        fixtures = head.load_fixtures(a.replay)
        bad = 0
        for fx in fixtures:
            sc = head.fixture_scenario(fx)
            diff = head.diff_events(fx["events"], head.run_events(run_pyoomd(sc, compat="head")))
            if diff:
                bad += 1
                print(f"--- {sc.name}\n" + "\n".join(diff))
        print(f"{len(fixtures) - bad}/{len(fixtures)} scenarios agree")
        return 1 if bad else 0
    binary = oracle.head_binary()
    if binary is None:
        print("no oomd HEAD binary: set PYOOMD_OOMD_HEAD_BIN (docs/reliability.md)", file=sys.stderr)
        return 2
    seeds = range(a.first, a.first + a.count)
    scenarios = generate(a.first, a.count)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="head-conf-", dir=oracle.scratch_dir()) as tmp:
        runs = oracle.run_many(scenarios, jobs=a.jobs, return_exceptions=True, binary=binary,
                               implementation=f"{oracle.HEAD_IMPLEMENTATION} {oracle.HEAD_COMMIT}")
        fixtures, bad, errors = [], 0, 0
        for seed, sc, run in zip(seeds, scenarios, runs):
            if isinstance(run, Exception):
                errors += 1
                print(f"--- {sc.name}: harness error: {run}")
                continue
            if run.died:
                print(f"--- {sc.name}: oomd HEAD {run.describe_exit()}")
            fixtures.append(head.fixture(seed, sc, run))
            ours = run_pyoomd(sc, workdir=Path(tmp) / sc.name, compat="head")
            diff = head.diff_events(head.run_events(run), head.run_events(ours))
            if diff:
                bad += 1
                print(f"--- {sc.name} ({sc.description})\n" + "\n".join(diff))
    n = len(fixtures)
    print(f"{n - bad}/{n} scenarios agree ({errors} harness errors) in "
          f"{time.monotonic() - started:.0f} s")
    stats = {"adds": 0, "drops": 0, "chains": 0, "kmsg": 0}
    for fx in fixtures:
        for t in fx["events"]:
            for k in stats:
                stats[k] += len(t[k])
    print("events in oomd HEAD's runs:", json.dumps(stats))
    if a.save:
        print("saved", head.save_fixtures(a.save, fixtures))
    return 1 if bad or errors else 0


if __name__ == "__main__":
    sys.exit(main())
