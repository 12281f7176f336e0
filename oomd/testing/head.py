"""Differential tests against oomd HEAD (upstream main at 88c28fd): what is compared, and the
fixtures that keep oomd HEAD's observations.

oomd HEAD runs through the same lock-step harness as oomd 0.5.0 (``oracle.run_oomd`` with
``binary=oracle.head_binary()``); pyoomd runs with ``--compat head``
(``pyoomd_run.run_pyoomd(..., compat="head")``). Per tick, ``tick_events`` keeps:

* ``adds`` / ``drops``: the cgroups of ``Adding``/``Dropping runnable ruleset for cgroup: <abs>``;
* ``chains``: each action chain as the engine reports it, from its ``has fired`` line (which
  names the ruleset cgroup) through its ``Running Action``/``returned`` lines, with the prekill
  hooks it fired (``Prekill hook fired on <rel>``);
* ``kmsg``: the kill records.

Absolute paths are written relative to the run's ``--cgroup-fs`` (``@/work/a``), so a fixture
does not depend on where the tree was. Clones run in resolution order, which is oomd's hash
order and pyoomd's path order (docs/compat.md): each list is sorted, so two runs agree when
they made the same decisions for the same cgroups, whatever the order among clones; within a
chain the order is compared as is.

Fixtures are JSON lines (``load_fixtures``/``save_fixtures``): a scenario (its
``oomd.testing.headgen`` seed and digest) and the events oomd HEAD produced for it, its exit
status if it died.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from oomd.testing.oracle import ENGINE_RE, OomdRun, Tick
from oomd.testing.scenario import Scenario

_ADD = re.compile(r"^Adding runnable ruleset for cgroup: (.*)$")
_DROP = re.compile(r"^Dropping runnable ruleset for cgroup: (.*)$")
_HOOK = re.compile(r"^Prekill hook fired on (.*)$")
KEYS = ("adds", "drops", "chains", "kmsg")


def _rel(path: str, cgroup_fs: str) -> str:
    if cgroup_fs and path.startswith(cgroup_fs):
        return "@" + path[len(cgroup_fs):]
    return path


def tick_events(tick: Tick, cgroup_fs: str) -> dict:
    adds, drops, chains = [], [], []
    chain: list[str] | None = None
    for ll in tick.log:
        msg = ll.message
        m = _ADD.match(msg) or _DROP.match(msg)
        if m:
            (adds if msg.startswith("Adding") else drops).append(_rel(m[1], cgroup_fs))
            continue
        e = ENGINE_RE.match(msg)
        if e is None and not _HOOK.match(msg):
            continue
        line = msg.replace(cgroup_fs, "@") if cgroup_fs else msg
        if e is not None and e["dg"] is not None:
            chain = [line]
            chains.append(chain)
        elif chain is None:
            chain = [line]
            chains.append(chain)
        else:
            chain.append(line)
    return {"adds": sorted(adds), "drops": sorted(drops),
            "chains": sorted(chains), "kmsg": sorted(tick.kmsg)}


def run_events(run: OomdRun) -> list[dict]:
    return [tick_events(t, run.cgroup_fs) for t in run.ticks if t.complete]


def diff_events(expected: list[dict], actual: list[dict]) -> list[str]:
    """Readable differences (empty when the runs agree)."""
    out = []
    if len(expected) != len(actual):
        out.append(f"ticks: {len(expected)} vs {len(actual)}")
    for n, (a, b) in enumerate(zip(expected, actual), start=1):
        for key in KEYS:
            if a[key] != b[key]:
                out.append(f"tick {n} {key}:\n  oomd HEAD: {a[key]}\n  pyoomd:    {b[key]}")
    return out


def fixture(seed: int, scenario: Scenario, run: OomdRun) -> dict:
    """What is kept of an oracle run: the scenario by its ``headgen`` seed and digest (the
    trees are large and the generator rebuilds them), and oomd HEAD's events."""
    from oomd.testing.headgen import digest

    return {"seed": seed, "digest": digest(scenario), "implementation": run.implementation,
            "returncode": run.returncode, "events": run_events(run)}


def fixture_scenario(fx: dict) -> Scenario:
    """The scenario a fixture was recorded on. Raises ValueError if the generator no longer
    makes the same scenario for its seed (re-record with scripts/head_conformance.py --save)."""
    from oomd.testing.headgen import Gen, digest

    sc = Gen(fx["seed"]).scenario()
    if digest(sc) != fx["digest"]:
        raise ValueError(f"seed {fx['seed']}: oomd.testing.headgen no longer generates the "
                         "recorded scenario; re-record the fixtures with "
                         "scripts/head_conformance.py --save")
    return sc


def save_fixtures(path: str | os.PathLike, fixtures: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for fx in fixtures:
            f.write(json.dumps(fx, separators=(",", ":"), sort_keys=True) + "\n")
    return path


def load_fixtures(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
