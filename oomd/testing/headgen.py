"""Random per-cgroup-ruleset scenarios for the oomd HEAD comparison (issue 19).

A scenario is a fake tree whose ``work/*`` and ``batch/*`` cgroups appear, vanish and gain or
lose the filter xattr between ticks, and a config of one or two rulesets with a ``cgroup`` key
(sometimes an ``xattr_filter``) whose detectors and dry kill plugins use ``ruleset_cgroup``
(sometimes ``cgroup`` too), now and then a plain ruleset and a prekill hook matching by xattr or
path. Values are distinct among the cgroups of a tick (kill_by_pressure's truncated key
included), so no kill ranking ties; names are plain (oomd HEAD globs a cgroup's name when it
builds ruleset_cgroup patterns, pyoomd matches it literally: docs/compat.md), and nothing
reaches the root cgroup (its values come from the host).

``generate(first, count)``: the scenarios of seeds first..first+count-1; the same seed always
gives the same scenario (``digest`` checks that, so saved oracle observations can refer to a
seed instead of carrying the whole tree).
"""

from __future__ import annotations

import hashlib
import json
import random

from oomd.testing import faketree as ft
from oomd.testing.scenario import XATTR_KEY, Scenario

MB = 1 << 20
PID = 5_000_000  # above PID_MAX_LIMIT: never a real process
TOPS = ("work", "batch")
NAMES = ("a", "b", "c", "d", "e", "f", "svc1", "svc2", "job.x", "job-y", "sa", "sb")
CHILDREN = ("c1", "c2", "c3", "x")
FILTERS = ("trusted.oomd_rs", "user.oomd_rs")
HOOK_XATTR = "user.oomd_hook"


class Values:
    """Distinct values per tick, so no two cgroups tie on any ranking key."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, set] = {}

    def reset(self) -> None:
        self.used = {}

    def pick(self, key: str, lo: int, hi: int) -> int:
        used = self.used.setdefault(key, set())
        for _ in range(1000):
            v = self.rng.randrange(lo, hi)
            if v not in used:
                used.add(v)
                return v
        raise RuntimeError(f"no distinct {key} left in {lo}..{hi}")


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.v = Values(self.rng)
        self.pgscan: dict[str, int] = {}

    # -- cgroup files ---------------------------------------------------------------------

    def pressure(self, hot: bool, kind: str = "full") -> tuple[float, float, float]:
        """avg10/60/300 with avg10 distinct and, for the full line, kill_by_pressure's key
        int(avg10/2 + avg60/2) distinct too (avg60 is placed half-way between two integers)."""
        a10 = self.v.pick(kind + "10", 3000, 9900) if hot else self.v.pick(kind + "10", 0, 1500)
        if kind == "full":
            lo, hi = (a10 - 100) // 200 + 1, (9899 + a10) // 200 - 1
            key = self.v.pick("pkey", lo, hi + 1)
            a60 = 200 * key - a10 + 100
        else:
            a60 = self.v.pick(kind + "60", 0, 9900)
        a300 = self.v.pick(kind + "300", 0, 9900)
        return a10 / 100, a60 / 100, a300 / 100

    def files(self, rel: str, first: bool) -> dict:
        rng = self.rng
        hot = rng.random() < 0.6
        pg = self.pgscan.get(rel, 0) + (0 if rng.random() < 0.25 else self.v.pick("pg", 1, 10_000))
        self.pgscan[rel] = pg
        anon = 0 if rng.random() < 0.15 else self.v.pick("anon", 1, 4096) * MB // 16
        f = {
            "memory.current": f"{self.v.pick('cur', 1, 8192) * MB // 8}\n",
            "memory.pressure": ft.psi(some=self.pressure(hot, "some"), full=self.pressure(hot),
                                      some_total=1, full_total=1),
            "memory.stat": ft.kv({"anon": anon, "file": 0, "pgscan": pg}),
            "memory.swap.current": f"{0 if rng.random() < 0.3 else self.v.pick('swap', 1, 512) * MB // 4}\n",
            "cgroup.events": ft.kv({"populated": 0 if rng.random() < 0.08 else 1, "frozen": 0}),
            "cgroup.stat": ft.kv({"nr_descendants": 0,
                                  "nr_dying_descendants": rng.randrange(0, 6)}),
        }
        if first:
            f["cgroup.controllers"] = "memory io\n"
            f["memory.min"] = f"{rng.choice([0, 0, 64 * MB, 256 * MB])}\n"
            f["memory.low"] = f"{rng.choice([0, 0, 128 * MB, 512 * MB])}\n"
        return f

    # -- the tree and its changes ---------------------------------------------------------------

    def new_cgroup(self, step: dict, live: set, rel: str, filt: str | None, hooks: bool) -> None:
        step[rel] = self.files(rel, True)
        if filt and self.rng.random() < 0.7:
            step[rel][XATTR_KEY + filt] = "1"
        if hooks and self.rng.random() < 0.3:
            step[rel][XATTR_KEY + HOOK_XATTR] = "1"
        live.add(rel)
        if rel.count("/") == 1:
            for c in self.rng.sample(CHILDREN, self.rng.randrange(0, 4)):
                self.new_cgroup(step, live, f"{rel}/{c}", None, hooks)

    def scenario(self) -> Scenario:
        rng = self.rng
        ticks = rng.randrange(6, 10)
        filt = rng.choice([None, None, *FILTERS])
        hooks = rng.random() < 0.3
        live: set[str] = set()
        tree = {"": {"cgroup.controllers": "memory io\n"}}
        for top in (*TOPS, "shared"):
            tree[top] = self.files(top, True)
            live.add(top)
        step1: dict = {}
        for name in rng.sample(NAMES, rng.randrange(2, 6)):
            self.new_cgroup(step1, live, f"{rng.choice(TOPS)}/{name}", filt, hooks)
        trajectory = {1: step1}
        for tick in range(2, ticks + 1):
            self.v.reset()
            step: dict = {}
            clones = sorted(r for r in live if r.count("/") == 1)
            for _ in range(rng.randrange(0, 3)):
                event = rng.random()
                if event < 0.35 and clones:                       # a clone's cgroup goes away
                    gone = rng.choice(clones)
                    step[gone] = None
                    live -= {r for r in live if r == gone or r.startswith(gone + "/")}
                    clones.remove(gone)
                elif event < 0.7:                                 # a new one appears
                    rel = f"{rng.choice(TOPS)}/{rng.choice(NAMES)}"
                    if rel not in live and rel not in step:
                        self.new_cgroup(step, live, rel, filt, hooks)
                elif event < 0.85 and filt and clones:            # the filter xattr changes
                    rel = rng.choice(clones)
                    step.setdefault(rel, {})[XATTR_KEY + filt] = rng.choice(["1", None])
                elif clones:                                      # children come and go
                    parent = rng.choice(clones)
                    child = f"{parent}/{rng.choice(CHILDREN)}"
                    if child in live:
                        step[child] = None
                        live.discard(child)
                    elif child not in step:
                        self.new_cgroup(step, live, child, None, hooks)
            for rel in sorted(live):
                files = step.setdefault(rel, {})
                if "cgroup.controllers" not in files and rng.random() < 0.8:
                    files.update(self.files(rel, False))  # new values (new cgroups have theirs)
                if not files:
                    del step[rel]
            trajectory[tick] = step
        config = {"rulesets": [self.per_cgroup_ruleset(i, filt) for i in range(rng.randrange(1, 3))]}
        if rng.random() < 0.3:
            config["rulesets"].append(self.plain_ruleset())
        if hooks:
            config["prekill_hooks"] = [rng.choice([
                {"name": "dummy_prekill_hook", "args": {"xattr": HOOK_XATTR}},
                {"name": "dummy_prekill_hook", "args": {"cgroup": "work/*/c1,batch/a"}},
                {"name": "dummy_prekill_hook", "args": {"cgroup": "batch/*", "xattr": HOOK_XATTR}},
            ])]
        return Scenario(f"head-{self.seed:05d}", config, ticks, tree=tree, trajectory=trajectory,
                        description=f"scripts/head_conformance.py seed {self.seed}")

    # -- configs --------------------------------------------------------------------------------

    def detector(self) -> dict:
        rng = self.rng
        rel = rng.choice(["/", "/", "*", "c*"])
        args: dict = {"ruleset_cgroup": rel}
        if rng.random() < 0.15:
            args["cgroup"] = "shared"
        kind = rng.choice(["pressure_above", "pressure_above", "memory_above", "exists",
                           "nr_dying_descendants", "pressure_rising_beyond", "continue"])
        if kind == "pressure_above":
            args.update(resource="memory", threshold=str(rng.choice([20, 30, 50])),
                        duration=str(rng.choice([0, 0, 1, 2])))
        elif kind == "pressure_rising_beyond":
            args.update(resource="memory", threshold=str(rng.choice([20, 30])),
                        duration=str(rng.choice([0, 1])), fast_fall_ratio="0.5")
        elif kind == "memory_above":
            args.update(threshold=f"{rng.choice([100, 300, 600])}M",
                        duration=str(rng.choice([0, 1])))
        elif kind == "exists":
            args["negate"] = rng.choice(["false", "true"])
        elif kind == "nr_dying_descendants":
            args.update(count=str(rng.randrange(0, 5)), lte=rng.choice(["true", "false"]))
        else:
            args = {}
        return {"name": kind, "args": args}

    def killer(self) -> dict:
        rng = self.rng
        kind = rng.choice(["kill_by_pressure", "kill_by_memory_size_or_growth",
                           "kill_by_swap_usage", "kill_by_pg_scan"])
        args = {"ruleset_cgroup": rng.choice(["*", "*", "/", "c*"]), "dry": "true"}
        if kind == "kill_by_pressure":
            args["resource"] = "memory"
        if kind == "kill_by_swap_usage":
            args["threshold"] = rng.choice(["0", "64M"])
        if rng.random() < 0.25:
            args["recursive"] = "true"
        if rng.random() < 0.3:
            args["post_action_delay"] = str(rng.choice([0, 1, 2]))
        return {"name": kind, "args": args}

    def per_cgroup_ruleset(self, i: int, filt: str | None) -> dict:
        rng = self.rng
        groups = []
        for g in range(rng.randrange(1, 3)):
            groups.append([f"group{g}", *[self.detector() for _ in range(rng.randrange(1, 3))]])
        actions = [self.killer()]
        if rng.random() < 0.2:
            actions[0]["args"]["always_continue"] = "true"
            actions.append({"name": "stop", "args": {}})
        elif rng.random() < 0.1:
            actions = [{"name": rng.choice(["continue", "stop"]), "args": {}}]
        rs = {"name": f"per-cgroup {i}",
              "cgroup": rng.choice(["work/*", "work/*", "{work,batch}/*", "work/s*,batch/*",
                                    "batch/*"]),
              "post_action_delay": str(rng.choice([0, 1, 2, 3])),
              "detectors": groups, "actions": actions}
        if filt:
            rs["xattr_filter"] = filt
        return rs

    def plain_ruleset(self) -> dict:
        det = {"name": "pressure_above", "args": {"cgroup": "shared", "resource": "memory",
                                                  "threshold": "20", "duration": "0"}}
        if self.rng.random() < 0.5:
            # ruleset_cgroup outside a per-cgroup ruleset resolves nothing
            det = {"name": "exists", "args": {"ruleset_cgroup": "*", "negate": "true"}}
        return {"name": "plain", "post_action_delay": "1", "detectors": [["plain group", det]],
                "actions": [{"name": "kill_by_pressure",
                             "args": {"cgroup": "work/*", "resource": "memory", "dry": "true"}}]}


def generate(first: int, count: int) -> list[Scenario]:
    out = []
    for seed in range(first, first + count):
        sc = Gen(seed).scenario()
        sc.validate()
        out.append(sc)
    return out


def digest(scenario: Scenario) -> str:
    """A short hash of everything a scenario is."""
    text = json.dumps(scenario.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
