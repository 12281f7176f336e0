"""``kill_by_stall`` (pyoomd's own): the candidate with the largest stall share over the last
``window`` seconds (PSI ``total=`` counters, as ``stall_above`` measures them) is killed. Values
are injected (FakeContext); each tick adds ``rate`` µs of stall per second to a cgroup's
total. The decoy outside the pattern stalls most of all."""

from __future__ import annotations

from killfakes import MB, FakeContext, RecordingKiller, kill_engine, one_action
from support import FakeClock
from oomd import logs
from oomd.kmsg import Kmsg
from oomd.stats import Stats

TOTAL = "mem_pressure_full_total"


class Run:
    def __init__(self, tmp_path, rates: dict[str, int], *, args=None, avgs=None) -> None:
        self.clock = FakeClock()
        self.rates = rates
        tree = {"": {}, "workload.slice": {}, "system.slice": {}}
        for rel in rates:
            tree[rel] = {"current_usage": MB, "is_populated": True, TOTAL: 0,
                         "mem_pressure": (avgs or {}).get(rel, (0.0, 0.0, 0.0))}
        self.stats = Stats()
        self.ctx = FakeContext(tree, stats=self.stats)
        self.ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
        self.ctx.on_refresh.append(self._grow)
        self.killer = RecordingKiller()
        action = {"name": "kill_by_stall", "args": {"cgroup": "workload.slice/*",
                                                    "resource": "memory", **(args or {})}}
        self.engine = kill_engine(one_action(action), killer=self.killer, clock=self.clock,
                                  stats=self.stats)
        self.log: list[str] = []

    def _grow(self, ctx) -> None:
        if ctx.tick == 1:
            return
        for rel, rate in self.rates.items():
            row = ctx.row_of(rel)
            if row is not None:
                ctx.data[row][TOTAL] += rate

    def tick(self, n: int = 1) -> list[str]:
        with logs.capture() as lines:
            for _ in range(n):
                self.engine.tick(self.ctx)
                self.clock.advance(1)
        self.log += logs.messages(lines)
        return [p.removeprefix("/fake/") for p in self.killer.killed]


def fire_from_tick(run: Run, tick: int) -> None:
    """The detector group fires from that tick on (STOP before)."""
    detector = run.engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
    detector.run = lambda ctx: 1 if ctx.tick < tick else 0


def test_kills_the_candidate_that_stalled_most_not_the_decoy(tmp_path):
    run = Run(tmp_path, {"workload.slice/a": 100_000, "workload.slice/b": 400_000,
                         "workload.slice/c": 200_000, "system.slice/decoy": 900_000})
    fire_from_tick(run, 3)
    assert run.tick(3) == ["workload.slice/b"]
    assert ('Picked "workload.slice/b" (1MB) based on memory full stall of 40.00% over the '
            "last 2.00s") in run.log


def test_without_history_every_key_is_zero_and_the_smallest_path_goes(tmp_path):
    run = Run(tmp_path, {"workload.slice/a": 100_000, "workload.slice/b": 400_000})
    assert run.tick(1) == ["workload.slice/a"]


def test_a_fresh_stall_outranks_an_idle_neighbour_whose_averages_are_equal(tmp_path):
    # the kernel's averages have not moved yet (both 0): kill_by_pressure would tie and pick
    # "a"; the totals already show "b" stalling
    run = Run(tmp_path, {"workload.slice/a": 0, "workload.slice/b": 300_000})
    fire_from_tick(run, 2)
    assert run.tick(2) == ["workload.slice/b"]


def test_the_window_decides_which_stall_counts(tmp_path):
    run = Run(tmp_path, {"workload.slice/a": 0, "workload.slice/b": 0},
              args={"window": "1"})
    fire_from_tick(run, 5)
    # "a" stalled a lot three seconds ago, "b" a little in the last second
    steps = {2: {"workload.slice/a": 900_000}, 5: {"workload.slice/b": 100_000}}

    def step(ctx) -> None:
        for rel, stall in steps.get(ctx.tick, {}).items():
            ctx.data[ctx.row_of(rel)][TOTAL] += stall

    run.ctx.on_refresh.append(step)
    assert run.tick(5) == ["workload.slice/b"]


def test_recursive_descends_into_the_worst_child(tmp_path):
    run = Run(tmp_path, {"workload.slice/a": 100_000, "workload.slice/b": 300_000,
                         "workload.slice/b/x": 50_000, "workload.slice/b/y": 250_000},
              args={"recursive": "true"})
    fire_from_tick(run, 2)
    assert run.tick(2) == ["workload.slice/b/y"]


def test_dry_kill_records_and_kills_nothing(tmp_path):
    run = Run(tmp_path, {"workload.slice/a": 0, "workload.slice/b": 300_000},
              args={"dry": "true"})
    fire_from_tick(run, 2)
    assert run.tick(2) == []
    record = (tmp_path / "kmsg").read_text()
    assert " workload.slice/b " in record and "killer:(dry)kill_by_stall v2" in record
