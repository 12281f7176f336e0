#!/usr/bin/env python3
"""The long config fuzzing run (issue 7 item 3): >= 100,000 inputs through the config pipeline.

    python scripts/fuzz_config.py                      # 120,000 inputs, a fresh seed
    python scripts/fuzz_config.py --inputs 1000000 --seed 7
    python scripts/fuzz_config.py --seed 7 --replay 4242   # re-run one input, with its traceback

Same generators and properties as tests/fuzz (tests/fuzz/fuzzgen.py), driven by random.Random
instead of hypothesis: input i of a run uses the seed ``<seed>:<i>``, so every failure is
reproducible by its number. Each input runs under a hang guard. The summary gives the number of
inputs per target, their outcomes, and each distinct failure (target, exception, place) with
the first input that showed it. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "fuzz"), str(REPO)]

import fuzzgen  # noqa: E402
from oomd import logs, plugin  # noqa: E402

# Share of the inputs per target: the config texts get most, the cheap value parsers many.
WEIGHTS = {"structured": 30, "mutated": 25, "raw": 15, "deep": 3, "dropin": 12, "values": 15}


def schedule(total: int) -> list[str]:
    """Target of each input number: interleaved, in proportion to WEIGHTS."""
    names = sorted(WEIGHTS)
    wheel = [n for n in names for _ in range(WEIGHTS[n])]
    random.Random(0).shuffle(wheel)
    return [wheel[i % len(wheel)] for i in range(total)]


def where(exc: BaseException) -> str:
    """The innermost frame of pyoomd's code (oomd/) in the traceback, else the innermost one."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}oomd{os.sep}" in f.filename]
    f = (ours or frames or [None])[-1]
    return f"{os.path.relpath(f.filename, REPO)}:{f.lineno}" if f else "?"


def run_one(seed: int, i: int, target: str, hang: float):
    chooser = fuzzgen.RandomChooser(random.Random(f"{seed}:{i}"))
    gen, check = fuzzgen.TARGETS[target]
    args = gen(chooser)
    with fuzzgen.time_limit(hang):
        return args, check(*args)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=120_000, help="number of inputs (default 120000)")
    ap.add_argument("--seed", type=int, default=None, help="run seed (default: from the clock)")
    ap.add_argument("--hang-seconds", type=float, default=10.0, help="per-input hang guard")
    ap.add_argument("--targets", default=",".join(sorted(WEIGHTS)), help="comma list of targets")
    ap.add_argument("--replay", type=int, default=None, help="re-run input number N and show it")
    o = ap.parse_args(argv)

    seed = o.seed if o.seed is not None else int(time.time())
    logs.setup(inline=True, stream=open(os.devnull, "w"))
    plugin.load_builtin_plugins()
    plan = schedule(max(o.inputs, (o.replay or 0) + 1))
    wanted = set(o.targets.split(","))
    unknown = wanted - set(WEIGHTS)
    if unknown:
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")

    if o.replay is not None:
        target = plan[o.replay]
        print(f"seed {seed} input {o.replay} target {target}")
        try:
            args, outcome = run_one(seed, o.replay, target, o.hang_seconds)
        except BaseException:
            traceback.print_exc()
            return 1
        print(f"args: {args!r}\noutcome: {outcome}")
        return 0

    plugins = sorted(plugin.REGISTRY)
    print(f"seed {seed}; {o.inputs} inputs; targets {sorted(wanted)}; plugins in the registry: "
          f"{', '.join(plugins)}; prekill hooks: "
          f"{', '.join(sorted(plugin.PREKILL_HOOK_REGISTRY)) or 'none'}",
          flush=True)
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: dict[tuple, list] = {}
    start = time.monotonic()
    done = 0
    for i, target in enumerate(plan[: o.inputs]):
        if target not in wanted:
            continue
        try:
            _args, outcome = run_one(seed, i, target, o.hang_seconds)
            outcomes[target][outcome] += 1
        except Exception as e:  # noqa: BLE001 - every escape is a finding
            kind = "hang" if isinstance(e, fuzzgen.Hang) else (
                "property" if isinstance(e, fuzzgen.FuzzFailure) else "crash")
            key = (target, kind, type(e).__name__, where(e))
            first_line = (str(e).splitlines() or [""])[0][:200]
            failures.setdefault(key, [0, i, first_line])[0] += 1
            outcomes[target]["FAILED"] += 1
        done += 1
        if done % 20_000 == 0:
            print(f"  {done} inputs, {sum(v[0] for v in failures.values())} failures, "
                  f"{time.monotonic() - start:.0f} s", flush=True)
    elapsed = time.monotonic() - start

    print(f"\n{done} inputs in {elapsed:.0f} s ({done / max(elapsed, 1e-9):.0f}/s), seed {seed}")
    for target in sorted(outcomes):
        counts = outcomes[target]
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"  {target:<10} {sum(counts.values()):>8}  {parts}")
    if not failures:
        print("failures: none")
        return 0
    print(f"failures: {len(failures)} distinct")
    for (target, kind, exc, place), (count, first, message) in sorted(failures.items()):
        print(f"  [{kind}] {target}: {exc} at {place} x{count}: {message}\n"
              f"      replay: python scripts/fuzz_config.py --seed {seed} --replay {first}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
