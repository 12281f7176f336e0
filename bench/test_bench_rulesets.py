"""Per-cgroup rulesets at scale (issue 19): a ruleset matching every leaf of a 2,000-leaf tree
against the same work written out as 2,000 plain detector instances, CPU per tick, measured in
turn on the same machine:

* ``per-cgroup``: one ruleset, ``cgroup`` = every leaf's pattern, a ``pressure_above`` on
  ``ruleset_cgroup: "/"`` and ``continue`` (one clone per leaf);
* ``2,000 rulesets``: a ruleset per leaf with the same detector on its literal path (what a
  generated config does without per-cgroup rulesets: every cgroup with its own state and pause);
* ``1 ruleset, 2,000 groups``: one ruleset whose detector groups are the 2,000 detectors;
* ``per-cgroup + xattr_filter``: every leaf carries the filter xattr (one getxattr per leaf per
  tick), against the two plain configs again, in a second run.

Each engine has its own context over the same tree (cache_files=True, as cgroup2), an fd budget
of a third of the limit each, and is settled for a few ticks; the detector never fires (gentree's
pressure is low), which is the steady state. Issue 19's target: per-cgroup <= 2x the plain
detectors. Also: the first tick, which builds the 2,000 clones.

    .venv/bin/python -m pytest bench/test_bench_rulesets.py -p no:cacheprovider
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from benchlib import RULESET_RESULTS, compile_engine
from oomd import protect
from oomd.context import OomdContext, fd_budget_from_rlimit
from oomd.testing import gentree

LEAVES = 2000
TICKS = 25
PATTERN = "system.slice/*,workload.slice/*/*"
XATTR = "user.oomd_rs"


def detector(**where):
    return {"name": "pressure_above", "args": {**where, "resource": "memory",
                                               "threshold": "80", "duration": "30"}}


CONTINUE = [{"name": "continue", "args": {}}]


def configs(leaves):
    return {
        "per-cgroup": {"rulesets": [{"name": "per cgroup", "cgroup": PATTERN,
                                     "detectors": [["hot", detector(ruleset_cgroup="/")]],
                                     "actions": CONTINUE}]},
        "per-cgroup + xattr_filter": {"rulesets": [{
            "name": "per cgroup", "cgroup": PATTERN, "xattr_filter": XATTR,
            "detectors": [["hot", detector(ruleset_cgroup="/")]], "actions": CONTINUE}]},
        "2,000 rulesets": {"rulesets": [{"name": f"r{i}", "detectors": [["hot", detector(cgroup=rel)]],
                                         "actions": CONTINUE} for i, rel in enumerate(leaves)]},
        "1 ruleset, 2,000 groups": {"rulesets": [{
            "name": "one", "detectors": [[f"g{i}", detector(cgroup=rel)] for i, rel in enumerate(leaves)],
            "actions": CONTINUE}]},
    }


class Setup:
    def __init__(self, tree, config, budget):
        self.now = 0.0
        self.ctx = OomdContext(str(tree.root), cache_files=True, fd_budget=budget, interval=1)
        t = time.process_time()
        self.engine = compile_engine(tree.root, clock=lambda: self.now, config=config)
        self.compile_s = time.process_time() - t
        t = time.process_time()
        self.tick()
        self.first_tick_s = time.process_time() - t
        for _ in range(3):
            self.tick()

    def tick(self):
        self.now += 1.0
        self.engine.tick(self.ctx)

    def close(self):
        self.ctx.close()


@pytest.fixture(scope="module")
def leaf_tree(bench_root):
    tree = gentree.generate(bench_root / "rulesets-2k", LEAVES)
    for rel in tree.leaves:
        os.setxattr(tree.root / rel, XATTR, b"1")
    return tree


def _measure(tree, run, names):
    """CPU per tick of ``names``' engines measured in turn; results under RULESET_RESULTS[run]."""
    budget = fd_budget_from_rlimit() // 3  # three contexts at once stay inside the limit
    cfgs = configs(tree.leaves)
    setups = {n: Setup(tree, cfgs[n], budget) for n in names}
    protect.freeze_gc()
    try:
        samples = {n: [] for n in names}
        for _ in range(TICKS):
            for n, s in setups.items():
                t = time.process_time()
                s.tick()
                samples[n].append(time.process_time() - t)
        out = RULESET_RESULTS.setdefault(run, {})
        for n, s in setups.items():
            clones = getattr(s.engine.rulesets[0].ruleset, "clones", None)
            out[n] = {
                "median": statistics.median(samples[n]), "min": min(samples[n]),
                "first_tick": s.first_tick_s, "compile": s.compile_s,
                "clones": len(clones) if clones is not None else None,
                "starved": s.ctx.starved, "leaves": len(tree.leaves)}
    finally:
        for s in setups.values():
            s.close()


def test_per_cgroup_ruleset_vs_plain_detectors(leaf_tree):
    _measure(leaf_tree, "plain", ["per-cgroup", "2,000 rulesets", "1 ruleset, 2,000 groups"])
    r = RULESET_RESULTS["plain"]
    assert r["per-cgroup"]["clones"] == len(leaf_tree.leaves)
    assert not any(v["starved"] for v in r.values())


def test_per_cgroup_ruleset_with_xattr_filter(leaf_tree):
    _measure(leaf_tree, "xattr", ["per-cgroup + xattr_filter", "2,000 rulesets",
                                  "1 ruleset, 2,000 groups"])
    r = RULESET_RESULTS["xattr"]
    assert r["per-cgroup + xattr_filter"]["clones"] == len(leaf_tree.leaves)
    assert not any(v["starved"] for v in r.values())
