"""Every detector decides as oomd 0.5.0 (the oracle) does, tick by tick, on generated trees.

Each scenario is a small tree (``w/c0`` … plus a decoy ``d`` outside every pattern) whose
counters move between ticks (seeded, so the same scenarios every run): pressures cross and
leave thresholds, usage and ``pgscan`` grow, ``nr_dying_descendants`` drifts, a child vanishes
for a few ticks and comes back. Every argument variant of the detector under test sits in its
own ruleset whose only action is ``continue``, so the engine's "has fired" lines show, per tick,
which detectors returned CONTINUE. oomd runs through ``oomd.testing.oracle.run_many`` and pyoomd
through ``oomd.testing.pyoomd_run.run_pyoomd``; per tick the engine lines, the kmsg records and
the plugin log lines must be equal, except:

* per-cgroup lines (``dump_cgroup_overview``, ``memory_above`` debug) come in oomd's hash-set
  order and in pyoomd's path order (docs/compat.md): each run of them is compared sorted;
* fields oomd takes from the host rather than the tree are masked: ``dump_cgroup_overview``'s
  ``swapfree``/``pgscan`` (/proc/meminfo, /proc/vmstat), and in the ``host-*`` scenarios,
  which watch the root cgroup ``/`` (its PSI and usage come from the host's /proc) and
  ``swap_free`` (/proc/swaps), every number of every plugin log line. Those scenarios only use
  thresholds far from anything an idle host shows (``-1``, ``1000``, ``1M``, ``100%``), so
  their outcomes are stable while the host's numbers move between the two runs. (On a host
  without swap, ``swap_free`` can only STOP here; its unit tests use a fake /proc/swaps.)

pyoomd's ``[context]`` diagnostics (it counts and logs a malformed file; oomd logs nothing) are
left out: ``odd_files`` feeds both odd but readable control files. Invalid configurations are
compared by how the run ends (both refuse to start, exit 3).
``nr_dying_descendants`` with ``negate`` is the one deliberate difference: oomd refuses it,
pyoomd inverts the plain result (checked against oomd's plain result).
"""

from __future__ import annotations

import random
import re
from dataclasses import replace

import numpy as np
import pytest

from oomd.testing import faketree as ft
from oomd.testing.oracle import (
    ENGINE_RE,
    LogLine,
    OomdRun,
    compare,
    run_many,
    unavailable_reason,
)
from oomd.testing.pyoomd_run import run_pyoomd
from oomd.testing.scenario import Scenario

_why = unavailable_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"oracle: {_why}")

MB = 1 << 20
TICKS = 8
SEEDS = range(3)
CHILDREN = 4
PSI_STEPS = (0, 0.5, 0.99, 1, 5, 19.99, 20, 20.01, 35, 49.5, 50, 50.5, 70, 84.99, 85, 90, 99.5)


def host_mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


UNIT = host_mem_total() // 100  # 1% of the host's memory: memory_above's percentages


def rulesets(variants: list) -> dict:
    """One ruleset per variant (a detector, or a list of detectors for one group), each with a
    lone ``continue`` action."""
    out = []
    for i, v in enumerate(variants):
        dets = v if isinstance(v, list) else [v]
        out.append({"name": f"r{i}", "detectors": [[f"g{i}", *dets]],
                    "actions": [{"name": "continue"}]})
    return {"rulesets": out}


def det(name: str, **args) -> dict:
    return {"name": name, "args": {k: str(v) for k, v in args.items()}}


# ---- trees whose values move ------------------------------------------------------------------


class Walk:
    """Per-child state that changes now and then (so timers see holds, dips and returns).

    ``draw(rng, old)`` makes a state (old is None the first time), ``files(state)`` its
    control files, ``key(state)`` a value that must differ between live children each tick
    (no ties), or None."""

    def __init__(self, name: str, seed: int, draw, files, key=None, change=0.4,
                 root=None) -> None:
        self.rng = random.Random(f"{name}-{seed}")
        self.draw, self.files, self.key, self.change = draw, files, key, change
        self.root = root  # (draw, files) for the fake root cgroup's own files, or None

    def _distinct(self, states: dict) -> None:
        if self.key is None:
            return
        while True:
            seen: dict = {}
            clash = next((rel for rel, s in states.items()
                          if seen.setdefault(self.key(s), rel) != rel), None)
            if clash is None:
                return
            states[clash] = self.draw(self.rng, states[clash])

    def scenario(self, name: str, variants: list) -> Scenario:
        rng = self.rng
        kids = [f"w/c{i}" for i in range(CHILDREN)]
        states = {rel: self.draw(rng, None) for rel in kids}
        self._distinct(states)
        tree = {"": {"cgroup.controllers": "memory io\n"}, "w": ft.cgroup(0),
                "d": self.files(self.draw(rng, None))}
        tree.update({rel: self.files(s) for rel, s in states.items()})
        root_state = None
        if self.root:
            root_state = self.root[0](rng, None)
            tree[""].update(self.root[1](root_state))
        gone = rng.choice(kids)
        away = rng.randrange(2, TICKS - 2)
        back = rng.randrange(away + 1, TICKS)
        trajectory = {}
        for tick in range(2, TICKS + 1):
            step = {}
            for rel in kids:
                if rng.random() < self.change:
                    states[rel] = self.draw(rng, states[rel])
            live = {rel: s for rel, s in states.items()
                    if not (rel == gone and away <= tick < back)}
            self._distinct(live)
            states.update(live)
            for rel in kids:
                if rel == gone and tick == away:
                    step[rel] = None
                elif rel in live:
                    step[rel] = self.files(states[rel])
            if self.root and rng.random() < self.change:
                root_state = self.root[0](rng, root_state)
                step[""] = self.root[1](root_state)
            trajectory[tick] = step
        return Scenario(name=name, config=rulesets(variants), ticks=TICKS, tree=tree,
                        trajectory=trajectory)


def psi_draw(rng, old):
    return tuple(rng.choice(PSI_STEPS) for _ in range(3))


def psi_rising_draw(rng, old):
    """avg10 moves relative to its last value (falls and rises of 0.6x .. 1.4x)."""
    if old is None or rng.random() < 0.3:
        return psi_draw(rng, old)
    a10 = round(min(99.99, old[0] * rng.uniform(0.6, 1.4)), 2)
    return (a10, rng.choice(PSI_STEPS), old[2])


def psi_score(p):
    f = np.float32
    return f(p[0]) * f(3) + f(p[1]) * f(2) + f(p[2])


def psi_files(p):
    return ft.cgroup(3 * MB + int(sum(p) * 1000), mem_pressure=p,
                     io_pressure=(p[2], p[0], p[1]), memory_stat={"anon": MB, "pgscan": 0})


def usage_draw(rng, old):
    return (rng.randrange(UNIT // 2, UNIT * 5 // 2), rng.randrange(UNIT // 2, UNIT * 5 // 2))


def usage_files(s):
    return ft.cgroup(s[0], memory_stat={"anon": s[1], "pgscan": 0})


def pgscan_draw(rng, old):
    if old is None:
        return rng.choice([0, 0, 50, 1000])
    return max(0, old + rng.choice([0, 0, 0, 1, 7, 300, -5]))


def pgscan_files(n):
    return ft.cgroup(MB, memory_stat={"anon": MB, "pgscan": n})


def dying_draw(rng, old):
    return rng.choice([None, 0, 1, 4, 5, 6, 10, 11, 30])


def dying_files(n):
    if n is None:  # no cgroup.stat at all
        return ft.cgroup(MB)
    return ft.cgroup(MB, nr_dying_descendants=n)


def size_text(n: int) -> str:
    """A byte count as oomd's size terms: ``"1g 234m 5k 17"``."""
    terms = []
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >> shift:
            terms.append(f"{n >> shift}{unit}")
            n &= (1 << shift) - 1
    return " ".join(terms + [str(n)])


# ---- scenarios per detector ---------------------------------------------------------------------


def pressure_above(seed: int) -> Scenario:
    walk = Walk("pa", seed, psi_draw, psi_files, key=psi_score)
    v = [det("pressure_above", cgroup="w/*", resource="memory", threshold=t, duration=d)
         for t, d in ((20, 0), (50, 1), (50, 3), (85, 2))]
    v += [det("pressure_above", cgroup="w/*", resource="io", threshold=50, duration=seed),
          det("pressure_above", cgroup="w/c0,w/c3", resource="memory", threshold=20, duration=1),
          det("pressure_above", cgroup="w/c[12]", resource="io", threshold="20.9", duration="2s"),
          det("pressure_above", cgroup=f"w/c{seed}", resource="memory", threshold=-1, duration=0)]
    return walk.scenario(f"pressure_above-{seed}", v)


def pressure_rising_beyond(seed: int) -> Scenario:
    walk = Walk("prb", seed, psi_rising_draw, psi_files, key=psi_score, change=0.6)
    v = [det("pressure_rising_beyond", cgroup="w/*", resource="memory", threshold=t, duration=d)
         for t, d in ((20, 0), (50, 1), (35, 3))]
    v += [det("pressure_rising_beyond", cgroup="w/*", resource="memory", threshold=20, duration=0,
              fast_fall_ratio=r) for r in ("0.5", "1.2", "0", "0.99")]
    v += [det("pressure_rising_beyond", cgroup="w/*", resource="io", threshold=20, duration=1),
          det("pressure_rising_beyond", cgroup=f"w/c{seed},w/c3", resource="memory",
              threshold=20, duration=0, fast_fall_ratio="0.7")]
    return walk.scenario(f"pressure_rising_beyond-{seed}", v)


def memory_above(seed: int) -> Scenario:
    walk = Walk("ma", seed, usage_draw, usage_files, key=lambda s: s[0], change=0.5)
    mid = UNIT * 3 // 2
    v = [det("memory_above", cgroup="w/*", threshold=mid >> 20, duration=d) for d in (0, 2)]
    v += [det("memory_above", cgroup="w/*", threshold="1%", duration=0),
          det("memory_above", cgroup="w/*", threshold="2%", duration=1, debug="true"),
          det("memory_above", cgroup="w/*", threshold=size_text(mid + seed * 12345), duration=0),
          det("memory_above", cgroup="w/*", threshold=f"{mid / MB:.1f}m", duration=0),
          det("memory_above", cgroup="w/*", threshold_anon=f"{2 * UNIT >> 20}", duration=1,
              debug="1"),
          det("memory_above", cgroup="w/*", threshold="0", threshold_anon="2%", duration=0),
          det("memory_above", cgroup=f"w/c{seed},w/c3", threshold="50%", duration=0,
              meminfo_location="/proc/meminfo"),
          det("memory_above", cgroup="w/c1", threshold="1%", duration=0, debug="true")]
    return walk.scenario(f"memory_above-{seed}", v)


def memory_reclaim(seed: int) -> Scenario:
    walk = Walk("mr", seed, pgscan_draw, pgscan_files, change=0.5,
                root=(pgscan_draw, lambda n: {"memory.stat": ft.kv({"anon": 0, "pgscan": n})}))
    v = [det("memory_reclaim", cgroup="w/*", duration=d) for d in (0, 1, 3)]
    v += [det("memory_reclaim", cgroup=f"w/c{seed}", duration=1),
          det("memory_reclaim", cgroup="w/c0,w/c2", duration=0),
          det("memory_reclaim", cgroup="/", duration=1)]
    return walk.scenario(f"memory_reclaim-{seed}", v)


def nr_dying_descendants(seed: int) -> Scenario:
    walk = Walk("nd", seed, dying_draw, dying_files, change=0.5,
                root=(dying_draw, lambda n: {} if n is None else {
                    "cgroup.stat": ft.kv({"nr_descendants": 2, "nr_dying_descendants": n})}))
    v = [det("nr_dying_descendants", cgroup="w/*", count=c, lte=lte)
         for c in (0, 5, 10) for lte in ("true", "false")]
    v += [det("nr_dying_descendants", cgroup="w/*", count=5),
          det("nr_dying_descendants", cgroup=f"w/c{seed}", count=5, debug="true"),
          det("nr_dying_descendants", cgroup="w/c3", count=4, lte="0", debug="1"),
          det("nr_dying_descendants", cgroup="/", count=5, lte="False")]
    return walk.scenario(f"nr_dying_descendants-{seed}", v)


def dump_cgroup_overview(seed: int) -> Scenario:
    walk = Walk("dump", seed, psi_draw, psi_files, change=0.5)
    v = [det("dump_cgroup_overview", cgroup="w/*"),
         det("dump_cgroup_overview", cgroup=f"w/c{seed},w/c3", always="true"),
         det("dump_cgroup_overview", cgroup="w/c1", always="false")]
    return walk.scenario(f"dump_cgroup_overview-{seed}", v)


def exists(seed: int) -> Scenario:
    rng = random.Random(f"exists-{seed}")
    names = ["w/c0", "w/c1", "w/c2", "w/c1/g", "x"]
    present = {n: rng.random() < 0.5 for n in names}
    present["w/c1"] |= present["w/c1/g"]
    tree = {"": {"cgroup.controllers": "memory\n"}, "w": ft.cgroup(0), "d": ft.cgroup(0)}
    tree.update({n: ft.cgroup(0) for n, p in present.items() if p})
    trajectory = {}
    for tick in range(2, TICKS + 1):
        before = dict(present)
        for n in names:
            if rng.random() < 0.35:
                present[n] = not present[n]
        present["w/c1"] |= present["w/c1/g"]  # a child keeps its parent
        step = {n: ft.cgroup(0) if present[n] else None for n in names if present[n] != before[n]}
        if step.get("w/c1", "") is None:
            step.pop("w/c1/g", None)  # removed with its parent
        trajectory[tick] = step
    v = [det("exists", cgroup="w/c1"), det("exists", cgroup="w/c1", negate="true"),
         det("exists", cgroup="w/c*"), det("exists", cgroup="w/c*", negate="True"),
         det("exists", cgroup="w/nope,x"), det("exists", cgroup="w/*/g", debug="true"),
         det("exists", cgroup="w/c[02]", negate="0"), det("exists", cgroup="/w//c2/"),
         det("exists", cgroup="w/c?/g,w/c0", negate="1"), det("exists", cgroup="/"),
         det("exists", cgroup="/", negate="true")]
    return Scenario(name=f"exists-{seed}", config=rulesets(v), ticks=TICKS, tree=tree,
                    trajectory=trajectory)


def continue_stop() -> Scenario:
    """continue/stop as detectors and actions; several groups and detectors per group."""
    tree = {"": {"cgroup.controllers": "memory\n"}, "w": ft.cgroup(0), "w/a": ft.cgroup(0)}
    cfg = rulesets([det("continue"), det("stop"), [det("continue", anything="x"), det("stop")],
                    [det("exists", cgroup="w/a"), det("continue")],
                    [det("exists", cgroup="w/a"), det("stop", threshold="1")]])
    cfg["rulesets"].append({"name": "groups", "detectors": [["first", det("stop")],
                                                            ["second", det("continue")],
                                                            ["third", det("continue")]],
                            "actions": [{"name": "continue"}]})
    cfg["rulesets"].append({"name": "stopper", "detectors": [["g", det("continue")]],
                            "actions": [det("continue"), det("stop"), det("continue")]})
    return Scenario(name="continue_stop", config=cfg, ticks=5, tree=tree,
                    trajectory={3: {"w/a": None}, 4: {"w/a": ft.cgroup(0)}})


def float32_pick() -> Scenario:
    """float32 PSI arithmetic where it changes decisions: in float32 w/z scores 355.2 and w/a
    355.19998 (exact or double arithmetic says the opposite), so z is watched and only z's
    avg10 is above 60; ``100 * float32(0.85)`` is exactly 85.0f, so a first avg10 of 85.00 is
    not "falling" and 84.99 is."""
    tree = {"": {"cgroup.controllers": "memory io\n"}, "w": ft.cgroup(0),
            "w/a": psi_files((40.66, 97.91, 37.4)), "w/z": psi_files((88.94, 27.38, 33.62)),
            "w/e85": psi_files((85, 60, 10)), "w/e8499": psi_files((84.99, 60, 10))}
    v = [det("pressure_above", cgroup="w/a,w/z", resource="memory", threshold=60, duration=0),
         det("pressure_rising_beyond", cgroup="w/e85", resource="memory", threshold=50,
             duration=0),
         det("pressure_rising_beyond", cgroup="w/e8499", resource="memory", threshold=50,
             duration=0)]
    return Scenario(name="float32", config=rulesets(v), ticks=2, tree=tree)


ODD_PSI = {
    "one-line": "some avg10=90.00 avg60=90.00 avg300=90.00 total=5\n",
    "legacy": "aggr 123\nsome 1.00 2.00 3.00\nfull 95.00 60.00 70.00\n",
    "full-first": "full avg10=95.00 avg60=95.00 avg300=95.00 total=5\n"
                  "some avg10=95.00 avg60=95.00 avg300=95.00 total=5\n",
    "empty": "",
    "extra-fields": "some avg10=90.00 avg60=90.00 avg300=90.00 total=5 x=1\n"
                    "full avg10=91.00 avg60=92.00 avg300=93.00 total=6 y=2\n",
    "no-newline": "some avg10=1 avg60=1 avg300=1 total=5\nfull avg10=91 avg60=92 avg300=93 total=6",
    "exponent": "some avg10=9e1 avg60=9e1 avg300=9e1 total=5\n"
                "full avg10=9.1e1 avg60=92.00 avg300=93.00 total=6\n",
    "bad-label": "some avg10=90.00 avg60=90.00 avg300=90.00 total=5\n"
                 "full avg11=91.00 avg60=92.00 avg300=93.00 total=6\n",
}
ODD_MEMORY = {
    "current-garbage": {"memory.current": "5242880abc\n"},
    "current-lines": {"memory.current": "  5242880\n1\n"},
    "current-negative": {"memory.current": "-5242880\n"},
    "stat-tabs": {"memory.stat": "anon\t5242880\npgscan\t7\n"},
    "stat-negative": {"memory.stat": "anon -5\npgscan -7\n"},
    "stat-junk": {"memory.stat": "junk\nanon 1\nanon 5242880 x\n\npgscan 7.9\n"},
    "stat-huge": {"memory.stat": "anon 18446744073709551615\npgscan 9223372036854775808\n"},
    "dying-extra": {"cgroup.stat": "nr_dying_descendants 3 x\n"},
    "dying-negative": {"cgroup.stat": "nr_dying_descendants -3\n"},
    "dying-twice": {"cgroup.stat": "nr_dying_descendants 3\nnr_dying_descendants 30\n"},
    "dying-junk": {"cgroup.stat": "nr_dying_descendants x\nnr_descendants 3\n"},
}


def odd_files() -> Scenario:
    """Control files in odd but readable shapes (oomd 0.5.0 neither aborts nor crashes on
    these): both must read the same values out of them, or none."""
    tree = {"": {"cgroup.controllers": "memory io\n"}, "w": ft.cgroup(0)}
    v = []
    for name, text in ODD_PSI.items():
        tree[f"w/{name}"] = ft.cgroup(MB, mem_pressure=text)
        v += [det("pressure_above", cgroup=f"w/{name}", resource="memory", threshold=t,
                  duration=0) for t in (-1, 50)]
        v.append(det("dump_cgroup_overview", cgroup=f"w/{name}"))
    for name, files in ODD_MEMORY.items():
        tree[f"w/{name}"] = {**ft.cgroup(MB), **files}
        v += [det("memory_above", cgroup=f"w/{name}", threshold="4", duration=0, debug="1"),
              det("memory_above", cgroup=f"w/{name}", threshold_anon="4", duration=0),
              det("memory_reclaim", cgroup=f"w/{name}", duration=0),
              det("nr_dying_descendants", cgroup=f"w/{name}", count=3, debug="1"),
              det("nr_dying_descendants", cgroup=f"w/{name}", count=3, lte="0", debug="1")]
    step = {f"w/{n}": {"memory.stat": "anon 1\npgscan 8\n"} for n in ODD_MEMORY
            if n.startswith("stat")}
    return Scenario(name="odd_files", config=rulesets(v), ticks=2, tree=tree,
                    trajectory={2: step})


def host_root(seed: int) -> Scenario:
    """The root cgroup (host PSI and usage) and swap_free (host swap), with thresholds no idle
    host comes near; numbers in log lines are masked."""
    tree = {"": {"cgroup.controllers": "memory io\n"}, "w": ft.cgroup(0)}
    res = ("memory", "io")[seed % 2]
    v = [det("pressure_above", cgroup="/", resource=res, threshold=-1, duration=seed),
         det("pressure_above", cgroup="/", resource=res, threshold=1000, duration=0),
         det("pressure_rising_beyond", cgroup="/", resource=res, threshold=-1, duration=1,
             fast_fall_ratio="0"),
         det("pressure_rising_beyond", cgroup="/", resource=res, threshold=1000, duration=0),
         det("memory_above", cgroup="/", threshold="1M", duration=seed),
         det("memory_above", cgroup="/", threshold="100%", duration=0),
         det("memory_above", cgroup="/,w", threshold="0%", duration=0),
         det("dump_cgroup_overview", cgroup="/", always="true"),
         det("swap_free", threshold_pct="0"), det("swap_free", threshold_pct="-1")]
    return Scenario(name=f"host-{seed}", config=rulesets(v), ticks=4, tree=tree)


INVALID = {
    "pressure_above-threshold": det("pressure_above", cgroup="w", resource="memory",
                                    threshold="high", duration=0),
    "pressure_above-resource": det("pressure_above", cgroup="w", resource="cpu", threshold=1,
                                   duration=0),
    "pressure_above-missing": det("pressure_above", cgroup="w", resource="io", threshold=1),
    "pressure_rising_beyond-ratio": det("pressure_rising_beyond", cgroup="w", resource="io",
                                        threshold=1, duration=0, fast_fall_ratio="fast"),
    "memory_above-percent": det("memory_above", cgroup="w", threshold="101%", duration=0),
    "memory_above-size": det("memory_above", cgroup="w", threshold="1.5MK", duration=0),
    "memory_above-anon": det("memory_above", cgroup="w", threshold_anon="1kb", duration=0),
    "memory_reclaim-missing": det("memory_reclaim", duration=1),
    "swap_free-unknown": det("swap_free", threshold_pct=10, cgroup="w"),
    "exists-negate": det("exists", cgroup="w", negate="yes"),
    "nr_dying_descendants-count": det("nr_dying_descendants", cgroup="w", count=-1),
    "dump_cgroup_overview-always": det("dump_cgroup_overview", cgroup="w", always="sometimes"),
}


def invalid(name: str) -> Scenario:
    tree = {"": {"cgroup.controllers": "memory\n"}, "w": ft.cgroup(0)}
    return Scenario(name=f"invalid-{name}", config=rulesets([INVALID[name]]), ticks=1, tree=tree)


GENERATED = (pressure_above, pressure_rising_beyond, memory_above, memory_reclaim,
             nr_dying_descendants, dump_cgroup_overview, exists, host_root)
SCENARIOS = ([gen(seed) for gen in GENERATED for seed in SEEDS]
             + [continue_stop(), float32_pick(), odd_files()] + [invalid(n) for n in INVALID])

# nr_dying_descendants with negate: oomd 0.5.0 refuses the argument (Appendix B), pyoomd
# inverts the plain result. The twin without negate gives oomd's plain result.
NEGATE_PLAIN = det("nr_dying_descendants", cgroup="w/*", count=10, lte="false")
NEGATE = Walk("nd", 7, dying_draw, dying_files, change=0.5).scenario(
    "negate", [NEGATE_PLAIN, {**NEGATE_PLAIN, "args": {**NEGATE_PLAIN["args"], "negate": "true"}}])
NEGATE_TWIN = replace(NEGATE, name="negate-twin", config=rulesets([NEGATE_PLAIN]))


# ---- comparing ----------------------------------------------------------------------------------

_PER_CGROUP = re.compile(r'^cgroup=|^cgroup "[^"]*" memory\.current=')
_HOST_FIELDS = re.compile(r"swapfree=\d+MB/\d+MB pgscan=\d+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def normalized(run: OomdRun, host: bool) -> OomdRun:
    """The run with each run of per-cgroup lines sorted, host-derived numbers masked, and
    pyoomd's ``[context]`` diagnostics (a malformed file is counted and logged; oomd logs
    nothing there) left out."""
    ticks = []
    for t in run.ticks:
        out: list[LogLine] = []
        group: list[LogLine] = []
        for ll in [*(x for x in t.log if not x.message.startswith("[context] ")), None]:
            if ll is not None and _PER_CGROUP.match(ll.message):
                group.append(ll)
                continue
            out += sorted(group, key=lambda x: x.message)
            group = []
            if ll is not None:
                out.append(ll)
        masked = []
        for ll in out:
            msg = _HOST_FIELDS.sub("swapfree=<host> pgscan=<host>", ll.message)
            if host and not ENGINE_RE.match(ll.message):
                msg = _NUMBER.sub("#", msg)
            masked.append(LogLine(None, msg))
        ticks.append(replace(t, log=masked))
    return replace(run, ticks=ticks)


@pytest.fixture(scope="module")
def runs() -> dict:
    """oomd's run of every scenario, all at once (concurrently), by scenario name."""
    scenarios = [*SCENARIOS, NEGATE, NEGATE_TWIN]
    return dict(zip((sc.name for sc in scenarios), run_many(scenarios, return_exceptions=True)))


def oomd_run(runs: dict, name: str) -> OomdRun:
    run = runs[name]
    if isinstance(run, Exception):
        raise run
    return run


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_outcome_as_oomd(sc, runs):
    theirs = oomd_run(runs, sc.name)
    ours = run_pyoomd(sc)
    if sc.name.startswith("invalid-"):
        assert theirs.exit_status == 3, theirs.describe_exit()
    else:
        assert not theirs.died, theirs.describe_exit()
        assert theirs.completed_ticks == sc.ticks
    host = sc.name.startswith("host-")
    diff = compare(normalized(theirs, host), normalized(ours, host), logs=True)
    # oomd's timers see real time: ticks late by a second in total would move a boundary
    drift = sum(s - 1 for s in theirs.tick_spacing)
    assert not diff, f"{diff}\n(oomd's ticks drifted {drift:.3f} s from 1 s apart in total)"


@pytest.mark.parametrize("sc", [s for s in SCENARIOS if "-" in s.name and not
                                s.name.startswith(("invalid-", "host-"))],
                         ids=lambda s: s.name)
def test_generated_scenario_exercises_both_outcomes(sc, runs):
    """A scenario whose detectors never fire, or whose ticks all look alike, would prove
    little: something fires, and the ticks differ in what fires or what is logged."""
    theirs = oomd_run(runs, sc.name)
    assert any(t.fired for t in theirs.ticks), f"{sc.name}: no detector ever fired"
    seen = {(frozenset(t.fired), tuple(sorted(t.plugin_log))) for t in theirs.ticks}
    assert len(seen) > 1, f"{sc.name}: every tick had the same outcome"


def test_nr_dying_descendants_negate_inverts_oomds_plain_result(runs):
    theirs = oomd_run(runs, "negate")
    assert theirs.exit_status == 3, theirs.describe_exit()
    assert any('Unknown arg "negate"' in ll.message for ll in theirs.startup)
    plain = oomd_run(runs, "negate-twin").fired_ticks("r0")
    ours = run_pyoomd(NEGATE)
    assert ours.fired_ticks("r0") == plain
    assert ours.fired_ticks("r1") == [t for t in range(1, TICKS + 1) if t not in plain]
    assert 0 < len(plain) < TICKS


def test_scenarios_cover_every_detector_argument():
    expected = {
        "continue": set(), "stop": set(),
        "exists": {"cgroup", "negate", "debug"},
        "pressure_above": {"cgroup", "resource", "threshold", "duration"},
        "pressure_rising_beyond": {"cgroup", "resource", "threshold", "duration",
                                   "fast_fall_ratio"},
        "memory_above": {"cgroup", "threshold", "threshold_anon", "duration", "debug",
                         "meminfo_location"},
        "memory_reclaim": {"cgroup", "duration"},
        "swap_free": {"threshold_pct"},
        "nr_dying_descendants": {"cgroup", "count", "lte", "debug"},
        "dump_cgroup_overview": {"cgroup", "always"},
    }
    seen: dict[str, set] = {}
    for sc in SCENARIOS:
        if sc.name.startswith("invalid-"):
            continue
        for rs in sc.config["rulesets"]:
            for group in rs["detectors"]:
                for d in group[1:]:
                    seen.setdefault(d["name"], set()).update(d.get("args", {}))
    assert {k: seen.get(k, set()) >= v for k, v in expected.items()} == \
        {k: True for k in expected}
    odd = ("invalid-", "odd_files")  # odd on purpose
    assert {sc.name: sc.lint() for sc in SCENARIOS if not sc.name.startswith(odd)} == \
        {sc.name: [] for sc in SCENARIOS if not sc.name.startswith(odd)}
