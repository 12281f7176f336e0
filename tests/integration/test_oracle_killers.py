"""Every killer picks the same victim as oomd 0.5.0 (the oracle) on generated trees without ties.

Trees are random but seeded: ``w`` with 5–24 children (past 16, oomd's std::sort switches to
introsort), some with grandchildren for ``recursive``, a few ``trusted.oomd_prefer``/``_avoid``
xattrs, ``memory.low`` protection, and a decoy ``decoy`` outside the pattern with the worst
numbers. Counters move between ticks (growth, pg scan, io cost), the detector fires when the
``trigger`` cgroup appears, and the kill actions are dry. oomd runs through
``oomd.testing.oracle.run_oomd``; pyoomd runs in-process on a copy of the same tree, tick for
tick, and the kmsg records must be equal.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest

from killfakes import RecordingKiller, kill_engine
from support import FakeClock
from oomd.context import OomdContext
from oomd.kmsg import Kmsg
from oomd.testing import faketree as ft
from oomd.testing.oracle import run_many, unavailable_reason
from oomd.testing.oracle_cpu import block_device
from oomd.testing.scenario import Scenario

MB = 1 << 20

_why = unavailable_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"oracle: {_why}")

TRIGGER_TICK = 3
SEEDS = range(4)


DEVICE = block_device()


def io_stat(wbytes: int) -> str:
    return f"{DEVICE} rbytes=0 wbytes={wbytes} rios=0 wios=0 dbytes=0 dios=0\n"


def stat(pgscan: int) -> dict:
    return {"anon": MB, "file": MB, "pgscan": pgscan}


class Gen:
    """Distinct values per cgroup and killer, so no two peers tie."""

    def __init__(self, killer: str, seed: int) -> None:
        self.killer = killer
        self.rng = random.Random(f"{killer}-{seed}")
        self.used: set[int] = set()

    def level(self) -> int:
        while True:
            v = self.rng.randrange(1, 4000)
            if v not in self.used:
                self.used.add(v)
                return v

    def files(self, level: int, low: int = 0) -> dict[str, str]:
        k = self.killer
        kw = dict(memory_stat=stat(1000), mem_pressure=(0.0, 0.0, 0.0), io_pressure=(0.0, 0.0, 0.0),
                  swap_current=0, memory_low=low)
        current = MB
        if k == "kill_by_memory_size_or_growth":
            current = level * MB
        elif k == "kill_by_swap_usage":
            kw["swap_current"] = level * MB if level % 5 else 0  # some below the 1-byte default
        elif k == "kill_by_pressure":
            a = level / 40 + 0.25
            kw["mem_pressure"] = ft.psi(some=(a, a, a), full=(a, a, a))
        elif k == "kill_by_io_cost":
            kw["extra"] = {"io.stat": io_stat(1 << 30)}
        return ft.cgroup(current, **kw)

    def step(self, rel: str, level: int, tick: int) -> dict[str, str]:
        """What changes before ``tick`` (2..): rates from cumulative counters, usage growth."""
        k = self.killer
        if k == "kill_by_pg_scan":
            return {"memory.stat": ft.kv(stat(1000 + tick * level * 7))}
        if k == "kill_by_io_cost":
            return {"io.stat": io_stat((1 << 30) + tick * level * 4096)}
        if k == "kill_by_memory_size_or_growth" and level % 3 == 0:
            return {"memory.current": f"{level * MB * tick}\n"}
        return {}


KILLERS = {
    "kill_by_memory_size_or_growth": [{}, {"size_threshold": "30", "growing_size_percentile": "60"},
                                      {"min_growth_ratio": "2"}],
    "kill_by_swap_usage": [{}, {"threshold": "1000"}],
    "kill_by_pressure": [{"resource": "memory"}],
    "kill_by_pg_scan": [{}],
    "kill_by_io_cost": [{}],
}


def scenario(killer: str, seed: int) -> Scenario:
    g = Gen(killer, seed)
    variants = KILLERS[killer]
    args = dict(variants[seed % len(variants)])
    recursive = seed % 2 == 1
    if recursive:
        args["recursive"] = "true"
    tree = {"": {"cgroup.controllers": "memory io\n"}, "w": g.files(g.level())}
    levels = {}
    xattrs = {}
    n = g.rng.randrange(5, 25)
    for i in range(n):
        rel = f"w/c{i:02d}"
        levels[rel] = g.level()
        low = g.rng.choice([0, 0, 0, levels[rel] * MB // 2]) if killer.startswith("kill_by_memory") else 0
        tree[rel] = g.files(levels[rel], low)
        if g.rng.random() < 0.15:
            xattrs[rel] = {g.rng.choice(["trusted.oomd_prefer", "trusted.oomd_avoid"]): ""}
        if recursive and g.rng.random() < 0.5:
            for j in range(g.rng.randrange(1, 5)):
                child = f"{rel}/g{j}"
                levels[child] = g.level()
                tree[child] = g.files(levels[child])
    tree["decoy"] = g.files(9000)
    levels["decoy"] = 9000
    ticks = TRIGGER_TICK + (1 if killer == "kill_by_pg_scan" else 0)
    trajectory = {}
    for tick in range(2, ticks + 1):
        step = {rel: s for rel, lvl in levels.items() if (s := g.step(rel, lvl, tick))}
        if tick == TRIGGER_TICK:
            step["trigger"] = {"cgroup.controllers": "memory io\n"}
        if step:
            trajectory[tick] = step
    config = {"rulesets": [{
        "name": "rs", "post_action_delay": "600",
        "detectors": [["dg", {"name": "exists", "args": {"cgroup": "trigger"}}]],
        "actions": [{"name": killer, "args": {"cgroup": "w/*", "dry": "true", **args}}],
    }]}
    return Scenario(name=f"{killer}-{seed}", config=config, ticks=ticks, tree=tree,
                    trajectory=trajectory, xattrs=xattrs,
                    devices=[DEVICE] if killer == "kill_by_io_cost" else [])


def run_pyoomd(sc: Scenario) -> list[tuple[int, str]]:
    """pyoomd in-process on the same scenario: (tick, kmsg line) for each kill record."""
    with tempfile.TemporaryDirectory(prefix="pyoomd-kill-oracle-") as tmp:
        tree = sc.write_tree(Path(tmp) / "tree")
        devices = []
        for dev in sc.devices:
            maj, mnr = dev.split(":")
            rot = Path(f"/sys/dev/block/{dev}/queue/rotational").read_text().strip()
            devices.append((int(maj), int(mnr), rot == "1"))
        ctx = OomdContext(str(tree), devices=devices, cache_files=False, interval=1)
        kmsg_path = Path(tmp) / "kmsg"
        ctx.kmsg = Kmsg(str(kmsg_path))
        clock = FakeClock()
        engine = kill_engine(sc.config, killer=RecordingKiller(), clock=clock,
                             cgroup_fs=str(tree))
        out = []
        seen = 0
        for tick in range(1, sc.ticks + 1):
            if tick > 1:
                sc.apply_step(tree, tick)
            engine.tick(ctx)
            clock.advance(1)
            lines = kmsg_path.read_text().splitlines()
            out += [(tick, line) for line in lines[seen:]]
            seen = len(lines)
        ctx.kmsg.close()
        return out


SCENARIOS = [scenario(k, s) for k in KILLERS for s in SEEDS
             if not (k == "kill_by_io_cost" and DEVICE is None)]


@pytest.fixture(scope="module")
def oomd_runs():
    runs = run_many(SCENARIOS, return_exceptions=True)
    return {sc.name: run for sc, run in zip(SCENARIOS, runs)}


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_victim_as_oomd(sc, oomd_runs):
    run = oomd_runs[sc.name]
    if isinstance(run, Exception):
        raise run
    assert not run.died, run.describe_exit()
    theirs = [(tick, rec.format()) for tick, rec in run.kills]
    assert theirs, f"oomd killed nothing in {sc.name}"
    ours = run_pyoomd(sc)
    assert ours == theirs
