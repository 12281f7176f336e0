#!/usr/bin/env python3
"""Oracle conformance (issue 7 item 2): random scenarios through oomd 0.5.0 and pyoomd.

    python scripts/conformance.py                       # 1,000 scenarios from seed 0
    python scripts/conformance.py --count 200 --first 5000
    python scripts/conformance.py --save-dir /tmp/disagree   # keep each disagreement as JSON
    python scripts/conformance.py --replay /tmp/disagree/scn-00042.json

A scenario (``oomd.testing.scenario.Scenario``) is a fake cgroup tree, a counter trajectory over
4-10 ticks and a config drawn from every plugin the 0.5.0 binary ships, with random arguments
(valid, plus now and then an invalid one). The oracle harness runs the real oomd binary on it in
lock-step (``oomd.testing.oracle.run_many``), ``oomd.testing.pyoomd_run.run_pyoomd`` runs pyoomd
in-process on the same scenario, and ``oracle.compare`` diffs them tick by tick: kill records
written to kmsg, the engine's lines (which detector groups fired, which actions ran and what
they returned) and how the run ended. Kill plugins are always dry.

What the generator avoids, because parity is not promised there (docs/compat.md): ties between
kill candidates (ranking inputs are distinct per tick: oomd breaks ties by hash order, we by a
documented rule), patterns that reach the root cgroup (its numbers come from the host's /proc,
which moves between the two runs), and ``systemd_restart`` with a post_action_delay (oomd
sleeps through it and loses lock-step). One tie it cannot avoid: ``kill_by_io_cost`` on the
first tick it sees a cgroup ranks every candidate at rate 0. A disagreement is classified as a
tie when, at every differing tick, both sides logged the same ranking reason (the same key) for
their victims and pyoomd's victim has the smaller relative path, as docs/compat.md says.

The summary gives the agreement rate over the scenarios the oracle could run, the disagreements
grouped by what differed, and a replay command for each. Exit status 1 if any disagreed.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oomd.testing import faketree as ft  # noqa: E402
from oomd.testing.scenario import Scenario  # noqa: E402

MB = 1 << 20
DETECTORS = ["pressure_above", "pressure_rising_beyond", "memory_above", "memory_reclaim",
             "swap_free", "exists", "nr_dying_descendants", "dump_cgroup_overview", "continue",
             "stop"]
KILLERS = ["kill_by_memory_size_or_growth", "kill_by_swap_usage", "kill_by_pressure",
           "kill_by_pg_scan", "kill_by_io_cost"]
OTHER_ACTIONS = ["continue", "stop", "senpai", "systemd_restart"]


class Distinct:
    """Draws values that no other cgroup has this tick, so no ranking key ties."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[tuple, set] = collections.defaultdict(set)

    def near(self, key: tuple, target: int, lo: int, hi: int, step: int = 1) -> int:
        """The first value at or above ``target`` (wrapping to ``lo``) on the ``step`` grid
        in [lo, hi) that is still free for ``key``."""
        used = self.used[key]
        span = (hi - lo) // step
        start = (min(max(target, lo), hi - 1) - lo) // step
        for i in range(span):
            v = lo + ((start + i) % span) * step
            if v not in used:
                used.add(v)
                return v
        raise RuntimeError(f"no distinct value left in {lo}..{hi} for {key}")

    def draw(self, key: tuple, lo: int, hi: int, step: int = 1) -> int:
        return self.near(key, self.rng.randrange(lo, hi, step), lo, hi, step)


class Generator:
    def __init__(self, seed: int, device: str | None) -> None:
        self.seed = seed
        self.rng = random.Random(f"pyoomd-conformance-{seed}")
        self.device = device
        self.d = Distinct(self.rng)

    # ---- the tree -------------------------------------------------------------------------

    def cgroups(self) -> list[str]:
        rng = self.rng
        out = ["system.slice", "workload.slice"]
        for i in range(rng.randrange(1, 5)):
            out.append(f"system.slice/s{i}.service")
        for i in range(rng.randrange(2, 13)):
            svc = f"workload.slice/w{i}.service"
            out.append(svc)
            if rng.random() < 0.25:
                out += [f"{svc}/g{j}" for j in range(rng.randrange(1, 4))]
        return out

    def psi_line(self, key: tuple, tick: int, shape: str, base: int) -> tuple[float, float, float]:
        """avg10 even and distinct among cgroups; avg60 = avg10/2, so kill_by_pressure's
        int(avg10/2 + avg60/2) = int(0.75 * avg10) is distinct too."""
        level = {"flat": base, "rising": base + 12 * tick, "falling": base - 12 * tick,
                 "spike": base + (60 if tick % 3 == 0 else 0)}[shape]
        a10 = self.d.near(key + (tick,), level, 0, 200, 2)
        return float(a10), a10 / 2.0, a10 / 4.0

    def files(self, rel: str, tick: int, plan: dict) -> dict[str, str]:
        """The files of ``rel`` at ``tick``; called in tick order (counters accumulate)."""
        p = plan[rel]
        mem = self.psi_line(("mem",), tick, p["mem_shape"], p["mem_base"])
        io = self.psi_line(("io",), tick, p["io_shape"], p["io_base"])
        current = self.d.near(("cur", tick), int(p["size_mb"] * p["growth"] ** tick), 1, 64000) * MB
        p["pgscan"] += self.d.draw(("pgrate", tick), 1, 100000)
        swap = self.d.draw(("swap", tick), 1, 4000) * MB if p["swaps"] else 0
        p["mem_total"] += 1000 * (1 + int(mem[0]))
        extra = {}
        if self.device:
            extra["io.stat"] = (f"{self.device} rbytes={tick * p['io_rate'] * 4096} wbytes=0 "
                                f"rios={tick * p['io_rate']} wios=0 dbytes=0 dios=0\n")
        return ft.cgroup(
            current,
            mem_pressure=ft.psi(some=mem, full=mem, some_total=p["mem_total"],
                                full_total=p["mem_total"]),
            io_pressure=ft.psi(some=io, full=io, some_total=tick * 100, full_total=tick * 100),
            memory_min=p["min"], memory_low=p["low"], swap_current=swap, swap_max="max",
            memory_stat={"anon": current // 2, "file": current // 4, "shmem": 0,
                         "pgscan": p["pgscan"],
                         "active_file": current // 8, "inactive_file": current // 8,
                         "active_anon": current // 4, "inactive_anon": current // 4},
            populated=p["populated"],
            nr_dying_descendants=p["dying"] + (tick if p["dying_grows"] else 0),
            oom_group=p["oom_group"], extra=extra,
        )

    def plan(self, rels: list[str]) -> dict:
        rng = self.rng
        plan = {}
        for rel in rels:
            plan[rel] = {
                "mem_shape": rng.choice(["flat", "flat", "rising", "falling", "spike"]),
                "mem_base": rng.randrange(0, 90, 2),
                "io_shape": rng.choice(["flat", "rising", "falling"]),
                "io_base": rng.randrange(0, 90, 2),
                "size_mb": rng.randrange(1, 4000),
                "growth": rng.choice([1.0, 1.0, 1.0, 1.3, 1.6]),
                "pgscan": rng.randrange(0, 10 ** 6),
                "mem_total": rng.randrange(0, 10 ** 6),
                "swaps": rng.random() < 0.6,
                "io_rate": self.d.draw(("iorate",), 1, 10 ** 6),
                "min": rng.choice([0, 0, 0, rng.randrange(1, 500) * MB]),
                "low": rng.choice([0, 0, rng.randrange(1, 2000) * MB]),
                "populated": 0 if rng.random() < 0.05 else 1,
                "dying": rng.randrange(0, 20),
                "dying_grows": rng.random() < 0.3,
                "oom_group": 1 if rng.random() < 0.1 else 0,
            }
        return plan

    # ---- the config -----------------------------------------------------------------------

    def pattern(self, rels: list[str]) -> str:
        rng = self.rng
        leaves = [r for r in rels if "/" in r]
        choices = ["workload.slice/*", "workload.slice/*", "system.slice/*", "*/*",
                   "workload.slice/w*", "workload.slice/*/*", rng.choice(leaves),
                   rng.choice(["workload.slice", "system.slice"]),
                   f"{rng.choice(leaves)},{rng.choice(leaves)}", "nothing.slice/*"]
        return rng.choice(choices)

    def bad(self) -> bool:
        return self.rng.random() < 0.03

    def detector(self, rels: list[str]) -> dict:
        rng = self.rng
        name = rng.choice(DETECTORS)
        cg = self.pattern(rels)
        res = rng.choice(["memory", "memory", "io"])
        if name == "pressure_above":
            args = {"cgroup": cg, "resource": res, "threshold": str(rng.randrange(0, 100, 5)),
                    "duration": str(rng.randrange(0, 4))}
        elif name == "pressure_rising_beyond":
            args = {"cgroup": cg, "resource": res, "threshold": str(rng.randrange(0, 80, 5)),
                    "duration": str(rng.randrange(0, 4))}
            if rng.random() < 0.5:
                args["fast_fall_ratio"] = rng.choice(["0.5", "0.85", "1", "1.2"])
        elif name == "memory_above":
            key = "threshold_anon" if rng.random() < 0.3 else "threshold"
            args = {"cgroup": cg, key: rng.choice([f"{rng.randrange(100, 8000)}M",
                                                  f"{rng.randrange(1, 5)}G",
                                                  str(rng.randrange(100, 8000)),
                                                  f"{rng.randrange(1, 30)}%"]),
                    "duration": str(rng.randrange(0, 4))}
            if rng.random() < 0.3:
                args["debug"] = "true"
        elif name == "memory_reclaim":
            args = {"cgroup": cg, "duration": str(rng.randrange(0, 5))}
        elif name == "swap_free":
            args = {"threshold_pct": str(rng.randrange(0, 100))}
        elif name == "exists":
            args = {"cgroup": cg}
            if rng.random() < 0.4:
                args["negate"] = rng.choice(["true", "false"])
        elif name == "nr_dying_descendants":
            args = {"cgroup": cg, "count": str(rng.randrange(0, 30))}
            if rng.random() < 0.5:
                args["lte"] = rng.choice(["true", "false"])
        elif name == "dump_cgroup_overview":
            args = {"cgroup": cg}
            if rng.random() < 0.5:
                args["always"] = rng.choice(["true", "false"])
        else:
            args = {}
        if self.bad() and args:
            args[rng.choice(sorted(args))] = rng.choice(["", "abc", "-1", "1.5x"])
        return {"name": name, "args": args}

    def action(self, rels: list[str]) -> dict:
        rng = self.rng
        if rng.random() < 0.8:
            name = rng.choice(KILLERS)
            args = {"cgroup": self.pattern(rels), "dry": "true"}
            if rng.random() < 0.3:
                args["recursive"] = "true"
            if rng.random() < 0.2:
                args["post_action_delay"] = str(rng.randrange(0, 4))
            if rng.random() < 0.1:
                args["always_continue"] = "true"
            if name == "kill_by_pressure":
                args["resource"] = rng.choice(["memory", "io"])
            elif name == "kill_by_memory_size_or_growth":
                if rng.random() < 0.5:
                    args["size_threshold"] = str(rng.randrange(0, 100, 10))
                if rng.random() < 0.3:
                    args["growing_size_percentile"] = str(rng.randrange(10, 95, 5))
                if rng.random() < 0.3:
                    args["min_growth_ratio"] = rng.choice(["1", "2", "1.5"])
            elif name == "kill_by_swap_usage" and rng.random() < 0.5:
                args["threshold"] = rng.choice(["100M", "1", "2000", "1G"])
            if self.bad():
                args[rng.choice(["recursive", "dry", "size_threshold"])] = "maybe"
            return {"name": name, "args": args}
        name = rng.choice(OTHER_ACTIONS)
        if name == "senpai":
            return {"name": name, "args": {"cgroup": self.pattern(rels),
                                           "interval": str(rng.randrange(1, 4)),
                                           "limit_min_bytes": str(rng.randrange(1, 100) * MB)}}
        if name == "systemd_restart":
            return {"name": name, "args": {"service": "pyoomd-conformance.service", "dry": "true",
                                           "post_action_delay": "0"}}
        return {"name": name, "args": {}}

    def config(self, rels: list[str]) -> dict:
        rng = self.rng
        rulesets = []
        for r in range(rng.randrange(1, 3)):
            groups = []
            for g in range(rng.randrange(1, 3)):
                detectors = [self.detector(rels) for _ in range(rng.randrange(1, 3))]
                groups.append([f"g{r}{g}"] + detectors)
            actions = [self.action(rels) for _ in range(rng.randrange(1, 3))]
            rs = {"name": f"r{r}", "detectors": groups, "actions": actions}
            if rng.random() < 0.7:
                rs["post_action_delay"] = str(rng.randrange(0, 4))
            if rng.random() < 0.1:
                rs["silence-logs"] = rng.choice(["engine", "plugins", "engine,plugins"])
            rulesets.append(rs)
        cfg = {"rulesets": rulesets}
        if rng.random() < 0.15:
            hook_cgroup = rng.choice(["workload.slice", "/", "*/w1.service"])
            cfg["prekill_hooks"] = [{"name": "dummy_prekill_hook", "args": {"cgroup": hook_cgroup}}]
        return cfg

    # ---- the scenario ---------------------------------------------------------------------

    def scenario(self) -> Scenario:
        rng = self.rng
        rels = self.cgroups()
        plan = self.plan(rels)
        ticks = rng.randrange(4, 11)
        late = {r for r in rels if "/" in r and rng.random() < 0.1}  # created at a later tick
        born = {r: rng.randrange(2, ticks + 1) for r in late}
        gone = {}
        for r in rels:
            if "/" in r and r not in late and rng.random() < 0.08:
                gone[r] = rng.randrange(2, ticks + 1)
        gone = {r: t for r, t in gone.items()
                if not any(g != r and r.startswith(g + "/") for g in gone)}
        tree = {"": {"cgroup.controllers": "memory io\n"}}
        for rel in rels:
            if rel not in late and not any(rel.startswith(p + "/") for p in late):
                tree[rel] = self.files(rel, 1, plan)
        trajectory = {}
        for tick in range(2, ticks + 1):
            step = {}
            for rel in rels:
                dead = any(rel == g or rel.startswith(g + "/")
                           for g, t in gone.items() if t <= tick)
                unborn = any(rel == b or rel.startswith(b + "/")
                             for b, t in born.items() if t > tick)
                if dead or unborn:
                    if dead and any(rel == g for g, t in gone.items() if t == tick):
                        step[rel] = None
                    continue
                step[rel] = self.files(rel, tick, plan)
            trajectory[tick] = step
        xattrs = {}
        for rel in rels:
            if "/" in rel and rng.random() < 0.1 and rel in tree:
                xattrs[rel] = {rng.choice(["trusted.oomd_prefer", "trusted.oomd_avoid"]): ""}
        return Scenario(name=f"scn-{self.seed:05d}", config=self.config(rels), ticks=ticks,
                        tree=tree, trajectory=trajectory, xattrs=xattrs,
                        devices=[self.device] if self.device else [],
                        description=f"generated by scripts/conformance.py, seed {self.seed}")


def generate(seed: int, device: str | None = None) -> Scenario:
    return Generator(seed, device).scenario().validate()


# ---- running and comparing --------------------------------------------------------------------


_PICKED = re.compile(r'^Picked "(?P<rel>[^"]*)" \(-?\d+MB\) (?P<why>based on .*)$')


def picked(tick) -> list[tuple[str, str]]:
    """(victim, reason) of each "Picked" line of a tick, the reason without the victim's size."""
    out = []
    for msg in tick.plugin_log:
        m = _PICKED.match(msg)
        if m:
            out.append((m["rel"], m["why"]))
    return out


def is_tie(their, ours, diff) -> bool:
    """Every difference is in kill records, and at each such tick the first "Picked" line where
    the two sides chose different cgroups gives the same ranking reason (the same key) and
    pyoomd's choice has the smaller relative path: a tie, broken by docs/compat.md's rule
    instead of libstdc++'s order (what follows, e.g. the children ranked under a different
    parent, is its consequence)."""
    if not diff.items:
        return False
    for item in diff.items:
        if item.what != "kmsg records" or item.tick is None:
            return False
        a, b = picked(their.tick(item.tick)), picked(ours.tick(item.tick))
        parted = next(((x, y) for x, y in zip(a, b) if x[0] != y[0]), None)
        if parted is None:
            return False
        (rel_a, why_a), (rel_b, why_b) = parted
        if why_a != why_b or not os.fsencode(rel_b) < os.fsencode(rel_a):
            return False
    return True


def classify(their, ours, diff) -> str:
    if not diff:
        return "agree"
    if is_tie(their, ours, diff):
        return "tie"
    return "disagree"


class Outcome(NamedTuple):
    scenario: Scenario
    kind: str              # agree, tie, disagree, oracle-error
    diff: object           # oracle.RunDiff, or the error text
    oomd: object = None    # oracle.OomdRun of each side (None when the oracle failed)
    pyoomd: object = None


def run(scenarios: list[Scenario], jobs: int | None = None) -> list[Outcome]:
    """Both sides on each scenario, compared and classified."""
    from oomd.testing.oracle import OracleError, compare, run_many
    from oomd.testing.pyoomd_run import run_pyoomd

    theirs = run_many(scenarios, jobs=jobs, return_exceptions=True)
    out = []
    for sc, their in zip(scenarios, theirs):
        if isinstance(their, OracleError):
            out.append(Outcome(sc, "oracle-error", f"{type(their).__name__}: {their}"))
            continue
        saved, sys.stderr = sys.stderr, open(os.devnull, "w")  # run_pyoomd logs inline
        try:
            ours = run_pyoomd(sc)
        finally:
            sys.stderr.close()
            sys.stderr = saved
        diff = compare(their, ours)
        kind = classify(their, ours, diff)
        if kind == "disagree" and _silenced(sc):
            kind = _classify_unsilenced(sc, diff)
        out.append(Outcome(sc, kind, diff, their, ours))
    return out


def _silenced(sc: Scenario) -> bool:
    return any("silence-logs" in rs for rs in sc.config.get("rulesets", []))


def _classify_unsilenced(sc: Scenario, diff, attempts: int = 3) -> str:
    """``silence-logs: plugins`` hides the "Picked" lines that show a tie. Silencing changes no
    decision, so run both sides again without it (oomd's tie order follows its --cgroup-fs
    string, which is new each run, so up to ``attempts`` times): if a run shows the kill records
    parting over a tie, the silenced difference was one too."""
    from oomd.testing.oracle import OracleError, compare, run_oomd
    from oomd.testing.pyoomd_run import run_pyoomd

    loud = Scenario.from_dict(sc.to_dict())
    for rs in loud.config["rulesets"]:
        rs.pop("silence-logs", None)
    for _ in range(attempts):
        try:
            their = run_oomd(loud)
        except OracleError:
            return "disagree"
        saved, sys.stderr = sys.stderr, open(os.devnull, "w")
        try:
            ours = run_pyoomd(loud)
        finally:
            sys.stderr.close()
            sys.stderr = saved
        again = compare(their, ours)
        if again and is_tie(their, ours, again):
            return "tie"
    return "disagree"


def coverage(runs) -> str:
    """What the oracle's runs exercised: kills per plugin, detector groups fired, ticks,
    configs that did not compile and runs where oomd died."""
    kills = collections.Counter()
    fired = ticks = failed = died = with_kill = 0
    for r in runs:
        ticks += len(r.ticks)
        rejected = bool(r.died) and r.exit_status in (1, 3) and not r.ticks
        failed += rejected
        died += bool(r.died) and not rejected
        n = 0
        for t in r.ticks:
            fired += len(t.fired)
            for line in t.kmsg:
                m = re.search(r"killer:(?:\(dry\))?(\S+) v2$", line)
                kills[m[1] if m else "systemd_restart"] += 1
                n += 1
        with_kill += n > 0
    return (f"  coverage: {len(runs)} runs, {ticks} ticks, {fired} detector groups fired, "
            f"{sum(kills.values())} kill records in {with_kill} runs "
            f"({', '.join(f'{k} {v}' for k, v in kills.most_common())}); "
            f"{failed} configs rejected at start-up, {died} oomd deaths")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="seed of the first scenario")
    ap.add_argument("--batch", type=int, default=128, help="scenarios per oracle batch")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent oomd runs")
    ap.add_argument("--save-dir", default=None, help="write each disagreeing scenario here")
    ap.add_argument("--replay", default=None, help="run one saved scenario and print the diff")
    ap.add_argument("--show", type=int, default=20, help="diffs to print in full")
    o = ap.parse_args(argv)

    from oomd import logs
    from oomd.testing.oracle import unavailable_reason
    from oomd.testing.oracle_cpu import block_device

    why = unavailable_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    logs.setup(inline=True, stream=open(os.devnull, "w"))
    device = block_device()

    if o.replay:
        sc = Scenario.load(o.replay)
        ((_, outcome, diff, _, _),) = run([sc], jobs=1)
        print(f"{sc.name}: {outcome}\n{diff}")
        return 0 if outcome in ("agree", "tie") else 1

    print(f"{o.count} scenarios from seed {o.first}; io device {device or 'none'}", flush=True)
    start = time.monotonic()
    results = []
    seeds = list(range(o.first, o.first + o.count))
    for i in range(0, len(seeds), o.batch):
        batch = [generate(s, device) for s in seeds[i:i + o.batch]]
        results += run(batch, jobs=o.jobs)
        agree = sum(1 for r in results if r.kind == "agree")
        print(f"  {len(results)} run, {agree} agree, {time.monotonic() - start:.0f} s", flush=True)

    ran = [r for r in results if r.kind != "oracle-error"]
    agree = [r for r in ran if r.kind == "agree"]
    ties = [r for r in ran if r.kind == "tie"]
    disagree = [r for r in ran if r.kind == "disagree"]
    errors = [r for r in results if r.kind == "oracle-error"]
    pct = lambda n: f"{100.0 * n / max(1, len(ran)):.1f}%"  # noqa: E731
    print(f"\n{len(results)} scenarios in {time.monotonic() - start:.0f} s, "
          f"{len(ran)} run by both:")
    print(f"  same decisions      {len(agree):>5} ({pct(len(agree))})")
    print(f"  tie broken our way  {len(ties):>5} ({pct(len(ties))}): "
          "same key, smaller path (docs/compat.md)")
    print(f"  unexplained         {len(disagree):>5} ({pct(len(disagree))})")
    print(f"  oracle could not run {len(errors):>4}")
    by_kind = collections.Counter(r.diff.items[0].what for r in disagree)
    for kind, n in by_kind.most_common():
        print(f"  {n:>5} unexplained, first difference in {kind}")
    for r in errors[:10]:
        print(f"  oracle error {r.scenario.name}: {r.diff}")
    if ties:
        print(f"  ties: {' '.join(r.scenario.name for r in ties)}")
    if disagree:
        print(f"  unexplained: {' '.join(r.scenario.name for r in disagree)}")
    print(coverage([r.oomd for r in ran]))
    if o.save_dir:
        Path(o.save_dir).mkdir(parents=True, exist_ok=True)
    for n, (sc, _, diff, theirs, ours) in enumerate(disagree + ties):
        if o.save_dir:
            path = sc.save(Path(o.save_dir) / f"{sc.name}.json")
            theirs.save(Path(o.save_dir) / f"{sc.name}.oomd-run.json")  # the evidence: oomd's
            ours.save(Path(o.save_dir) / f"{sc.name}.pyoomd-run.json")  # and our ticks, logs
            where = f"python scripts/conformance.py --replay {path}"
        else:
            seed = sc.name[4:].lstrip("0") or "0"
            where = f"python scripts/conformance.py --first {seed} --count 1"
        if n < o.show:
            print(f"\n{'(tie) ' if n >= len(disagree) else ''}{diff}\n  replay: {where}")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
