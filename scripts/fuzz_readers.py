#!/usr/bin/env python3
"""The long differential fuzzing run of the cgroupfs/procfs parsers (issue 7 item 3).

    python scripts/fuzz_readers.py                     # 120,000 inputs, a fresh seed
    python scripts/fuzz_readers.py --inputs 500000 --seed 3
    python scripts/fuzz_readers.py --seed 3 --replay 811

Each input rewrites one cgroup control file or /proc file of a fake tree with a mutation of a
valid sample (tests/fuzz/readerfuzz.py), refreshes the Cython reader (OomdContext) and the
plain reference reader (tests/reference_reader.py), and compares every metric the file feeds;
the file is then put back. Input i uses the seed "<seed>:<i>". The summary gives inputs per
file and each distinct mismatch with a replay command. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "fuzz"), str(REPO / "tests"), str(REPO)]

import fuzzgen  # noqa: E402
import readerfuzz  # noqa: E402
from oomd import logs  # noqa: E402


def one(bench, seed: int, i: int, hang: float):
    target, content = readerfuzz.gen_case(fuzzgen.RandomChooser(random.Random(f"{seed}:{i}")))
    try:
        with fuzzgen.time_limit(hang):
            bench.check(target, content)
    finally:
        bench.reset(target)
    return target, content


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=120_000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--hang-seconds", type=float, default=10.0)
    ap.add_argument("--replay", type=int, default=None)
    o = ap.parse_args(argv)
    seed = o.seed if o.seed is not None else int(time.time())
    logs.setup(inline=True, stream=open(os.devnull, "w"))
    bench = readerfuzz.Bench()
    try:
        if o.replay is not None:
            target, content = readerfuzz.gen_case(
                fuzzgen.RandomChooser(random.Random(f"{seed}:{o.replay}")))
            print(f"seed {seed} input {o.replay}: {target} = {content!r}")
            bench.check(target, content)
            print("both readers agree")
            return 0
        print(f"seed {seed}; {o.inputs} inputs over {len(readerfuzz.TARGETS)} files", flush=True)
        per_file = collections.Counter()
        failures: dict[tuple, list] = {}
        start = time.monotonic()
        for i in range(o.inputs):
            try:
                target, _ = one(bench, seed, i, o.hang_seconds)
                per_file[target] += 1
            except (readerfuzz.FuzzMismatch, fuzzgen.Hang) as e:
                msg = str(e)
                what = msg.split(": ", 2)[-1].split(":")[0][:60]
                key = (type(e).__name__, msg.split(" = ")[0], what)
                failures.setdefault(key, [0, i, msg[:300]])[0] += 1
            if (i + 1) % 20_000 == 0:
                print(f"  {i + 1} inputs, {sum(v[0] for v in failures.values())} mismatches, "
                      f"{time.monotonic() - start:.0f} s", flush=True)
        elapsed = time.monotonic() - start
        rate = o.inputs / max(elapsed, 1e-9)
        print(f"\n{o.inputs} inputs in {elapsed:.0f} s ({rate:.0f}/s), seed {seed}")
        print("  " + ", ".join(f"{t} {n}" for t, n in sorted(per_file.items())))
        if not failures:
            print("mismatches: none")
            return 0
        print(f"mismatches: {len(failures)} distinct")
        for key, (count, first, msg) in sorted(failures.items(), key=lambda kv: -kv[1][0]):
            print(f"  x{count} {msg}\n      replay: "
                  f"python scripts/fuzz_readers.py --seed {seed} --replay {first}")
        return 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
