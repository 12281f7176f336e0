"""The decision record of every kill plugin (oomd.decision), checked against the ranking the
plugin actually used: the victim is the record's first candidate that was not skipped, and every
key component is the plugin's own (``rank_keys`` gives the same columns; the injected values
give the expected numbers). Fake trees carry a decoy outside the pattern, which the record never
lists."""

from __future__ import annotations

import json

import numpy as np
import pytest

from killfakes import MB, FakeContext, RecordingKiller, kill_engine, one_action
from support import FakeClock
from oomd import logs
from oomd.decision import SKIPS
from oomd.stats import Stats

KILLERS = {
    "kill_by_memory_size_or_growth": ({}, 1),
    "kill_by_swap_usage": ({}, 1),
    "kill_by_pressure": ({"resource": "memory"}, 1),
    "kill_by_io_cost": ({}, 1),
    "kill_by_pg_scan": ({}, 2),
}
# the key components (after kill_preference) each plugin sorts on
KEYS = {
    "kill_by_memory_size_or_growth": ["size", "growth", "effective_usage"],
    "kill_by_swap_usage": ["swap_usage"],
    "kill_by_pressure": ["pressure"],
    "kill_by_io_cost": ["io_cost_rate"],
    "kill_by_pg_scan": ["pg_scan_rate"],
}


def bad(name: str, level: int) -> dict:
    m = {"current_usage": level * MB, "is_populated": True}
    if name == "kill_by_memory_size_or_growth":
        m.update(effective_usage=level * MB, memory_growth=1.0, memory_protection=0)
    elif name == "kill_by_swap_usage":
        m.update(swap_usage=level * MB)
    elif name == "kill_by_pressure":
        m.update(mem_pressure=(level, level, level))
    elif name == "kill_by_io_cost":
        m.update(io_cost_rate=float(level))
    elif name == "kill_by_pg_scan":
        m.update(pg_scan_rate=level)
    return m


def expected_key(name: str, metrics: dict) -> float:
    """The first plugin key component of a cgroup, from its injected values."""
    if name == "kill_by_memory_size_or_growth":
        return metrics["effective_usage"]  # (size-eligible or not: see the tests)
    if name == "kill_by_swap_usage":
        return metrics["swap_usage"]
    if name == "kill_by_pressure":
        p = metrics["mem_pressure"]
        return int(np.float32(p[0]) / np.float32(2) + np.float32(p[1]) / np.float32(2))
    if name == "kill_by_io_cost":
        return metrics["io_cost_rate"]
    return metrics["pg_scan_rate"]


class Run:
    def __init__(self, name: str, tree: dict, *, args=None, fail=(), hooks=None) -> None:
        extra, self.ticks = KILLERS[name]
        self.name = name
        self.clock = FakeClock()
        self.stats = Stats()
        self.ctx = FakeContext(tree, stats=self.stats)
        self.ctx.decisions = []
        self.killer = RecordingKiller(fail={f"/fake/{r}" for r in fail})
        action = {"name": name, "args": {"cgroup": "workload.slice/*", **extra, **(args or {})}}
        self.engine = kill_engine(one_action(action), killer=self.killer, clock=self.clock,
                                  stats=self.stats)
        self.plugin = self.engine.rulesets[0].ruleset.actions[0]
        # the ranking the plugin uses, computed on the same tick as the kill (each peer set)
        self.rankings: list[tuple[list[str], dict]] = []
        rank_set = self.plugin.rank_set

        def spy(ctx, rows, anchor=None):
            ps = rank_set(ctx, rows, anchor)
            keys = self.plugin.rank_keys(ctx, ps.rows) if len(ps.rows) else ()
            self.rankings.append(([ctx.relpath(int(r)) for r in ps.rows], keys))
            return ps

        self.plugin.rank_set = spy

    def tick(self, n=None):
        with logs.capture():
            for _ in range(n or self.ticks):
                self.engine.tick(self.ctx)
                self.clock.advance(1)
        return self.ctx.decisions

    @property
    def killed(self):
        return [p.removeprefix("/fake/") for p in self.killer.killed]


def tree(name: str, **levels) -> dict:
    t = {"": {}, "workload.slice": bad(name, 60),
         "workload.slice/a": bad(name, 10), "workload.slice/b": bad(name, 30),
         "workload.slice/c": bad(name, 20),
         "system.slice": bad(name, 500), "system.slice/decoy": bad(name, 1000)}
    for rel, metrics in levels.items():
        t[rel] = {**t.get(rel, {}), **metrics}
    return t


def check_against_ranking(run: Run, record: dict) -> None:
    """The record is the ranking that was used: same order, same key columns."""
    assert len(record["peer_sets"]) == len(run.rankings)
    for ps, (names, keys) in zip(record["peer_sets"], run.rankings):
        assert ps["names"] == names
        assert ps["key"] == ["kill_preference"] + KEYS[run.name]
        for comp, col in zip(KEYS[run.name], keys):
            want = np.asarray(col)
            got = np.asarray(ps["components"][comp])
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                       rtol=1e-6)
    # the victim is the first visited candidate that was not skipped or descended into
    first = next(v for v in record["visits"]
                 if v["result"] not in SKIPS and v["result"] != "descended")
    assert first["cgroup"] == record["victim"]
    assert json.loads(json.dumps(record)) == record  # JSON as it is


@pytest.mark.parametrize("name", KILLERS)
def test_record_names_victim_and_components_of_the_ranking(name):
    t = tree(name)
    run = Run(name, t)
    (record,) = run.tick()
    assert run.killed == ["workload.slice/b"]
    assert record["victim"] == "workload.slice/b" and record["outcome"] == "killed"
    assert record["plugin"] == name and record["ruleset"] == "rs"
    assert record["detectorgroup"] == "dg"
    check_against_ranking(run, record)
    (ps,) = record["peer_sets"]
    assert ps["names"] == ["workload.slice/b", "workload.slice/c", "workload.slice/a"]
    assert "system.slice/decoy" not in json.dumps(record)
    first = KEYS[name][0] if name != "kill_by_memory_size_or_growth" else "effective_usage"
    want = [expected_key(name, t[n]) for n in ps["names"]]
    assert ps["components"][first] == pytest.approx(want)
    assert ps["decided_by"] == [None, first if name != "kill_by_memory_size_or_growth"
                                else "size", first]


@pytest.mark.parametrize("name", KILLERS)
def test_record_of_recursive_descent_has_each_peer_set(name):
    t = tree(name, **{"workload.slice/b/x": bad(name, 5), "workload.slice/b/y": bad(name, 8),
                      "workload.slice/b/y/z": bad(name, 7)})
    run = Run(name, t, args={"recursive": "true"})
    (record,) = run.tick()
    assert run.killed == ["workload.slice/b/y/z"]
    check_against_ranking(run, record)
    parents = [ps["parent"] for ps in record["peer_sets"]]
    assert parents == [None, "workload.slice/b", "workload.slice/b/y"]
    assert [v["result"] for v in record["visits"]] == ["descended", "descended", "killed"]
    assert record["peer_sets"][1]["names"] == ["workload.slice/b/y", "workload.slice/b/x"]
    assert record["victim"] == "workload.slice/b/y/z"


@pytest.mark.parametrize("name", KILLERS)
def test_record_prefer_outranks_on_kill_preference(name):
    t = tree(name, **{"workload.slice/a": {"kill_preference": 1}})
    run = Run(name, t)
    (record,) = run.tick()
    assert run.killed == ["workload.slice/a"]
    check_against_ranking(run, record)
    (ps,) = record["peer_sets"]
    assert ps["names"][0] == "workload.slice/a"
    assert ps["components"]["kill_preference"] == [1, 0, 0]
    assert ps["decided_by"][1] == "kill_preference"


@pytest.mark.parametrize("name", KILLERS)
def test_record_avoid_names_the_xattr(name):
    t = tree(name, **{"workload.slice/b": {"kill_preference": -1}})
    run = Run(name, t)
    (record,) = run.tick()
    assert run.killed == ["workload.slice/c"]
    check_against_ranking(run, record)
    (ps,) = record["peer_sets"]
    assert ps["names"] == ["workload.slice/c", "workload.slice/a", "workload.slice/b"]
    assert ps["components"]["kill_preference"] == [0, 0, -1]
    assert ps["decided_by"][2] == "kill_preference"
    assert ps["avoid"] == {"workload.slice/b": "trusted.oomd_avoid"}


@pytest.mark.parametrize("name", KILLERS)
def test_record_labels_ties_broken_by_path(name):
    t = tree(name, **{"workload.slice/c": bad(name, 30)})   # b and c equal
    run = Run(name, t)
    (record,) = run.tick()
    assert run.killed == ["workload.slice/b"]
    check_against_ranking(run, record)
    (ps,) = record["peer_sets"]
    assert ps["names"][:2] == ["workload.slice/b", "workload.slice/c"]
    assert ps["decided_by"][1] == "tie"
    assert "smallest path" in record["tie_rule"]


@pytest.mark.parametrize("name", KILLERS)
def test_record_lists_skipped_candidates_with_reasons(name):
    t = tree(name, **{"workload.slice/b": {"is_populated": False}})
    run = Run(name, t, fail=["workload.slice/c"])
    (record,) = run.tick()
    assert run.killed == ["workload.slice/c", "workload.slice/a"]
    check_against_ranking(run, record)
    assert [(v["cgroup"], v["result"]) for v in record["visits"]] == [
        ("workload.slice/b", "unpopulated"), ("workload.slice/c", "kill_failed"),
        ("workload.slice/a", "killed")]
    assert record["victim"] == "workload.slice/a"


def test_record_of_memory_protection_shows_effective_and_protection():
    name = "kill_by_memory_size_or_growth"
    t = tree(name, **{
        "workload.slice/b": {"current_usage": 80 * MB, "effective_usage": 10 * MB,
                             "memory_protection": 70 * MB},
        "workload.slice/c": {"current_usage": 50 * MB, "effective_usage": 50 * MB}})
    run = Run(name, t, args={"size_threshold": "90"})   # nobody is size-eligible
    (record,) = run.tick()
    assert run.killed == ["workload.slice/c"]
    check_against_ranking(run, record)
    (ps,) = record["peer_sets"]
    assert ps["names"] == ["workload.slice/c", "workload.slice/a", "workload.slice/b"]
    assert ps["decided_by"] == [None, "effective_usage", "tie"]   # a and b: 10MB effective
    i = ps["names"].index("workload.slice/b")
    assert ps["components"]["current_usage"][i] == 80 * MB
    assert ps["components"]["protection"][i] == 70 * MB
    assert ps["components"]["effective_usage"][i] == 10 * MB
    assert ps["facts"]["total"] == 140 * MB
    assert ps["facts"]["size_threshold"] == int(140 * MB * 0.9)
    assert ps["components"]["size_eligible"] == [False, False, False]


def test_record_of_swap_filter_lists_the_left_out():
    name = "kill_by_swap_usage"
    t = tree(name, **{"workload.slice/a": {"swap_usage": 0}})
    run = Run(name, t)
    (record,) = run.tick()
    (ps,) = record["peer_sets"]
    assert "workload.slice/a" not in ps["names"]
    assert ps["filtered"] == [{"cgroup": "workload.slice/a",
                               "reason": "swap usage is not >= the threshold of 1 bytes"}]


def test_dry_kill_record_says_dry():
    run = Run("kill_by_pressure", tree("kill_by_pressure"), args={"dry": "true"})
    (record,) = run.tick()
    assert record["outcome"] == "dry" and record["dry"] is True
    assert record["visits"][-1]["result"] == "dry"


def test_record_when_nothing_is_killable():
    t = tree("kill_by_io_cost")
    for rel in ("workload.slice/a", "workload.slice/b", "workload.slice/c"):
        t[rel]["is_populated"] = False
    run = Run("kill_by_io_cost", t)
    (record,) = run.tick()
    assert record["outcome"] == "failed" and record["victim"] is None
    assert {v["result"] for v in record["visits"]} == {"unpopulated"}


def test_record_carries_the_detector_that_fired_and_its_history():
    clock = FakeClock()
    ctx = FakeContext({"": {}, "workload.slice": {"mem_pressure": (70, 65, 10),
                                                  "current_usage": 100 * MB},
                       "workload.slice/a": bad("kill_by_pressure", 70),
                       "workload.slice/b": bad("kill_by_pressure", 20)})
    ctx.decisions = []
    detector = {"name": "pressure_above", "args": {"cgroup": "workload.slice",
                                                   "resource": "memory", "threshold": "60",
                                                   "duration": "3"}}
    config = one_action({"name": "kill_by_pressure",
                         "args": {"cgroup": "workload.slice/*", "resource": "memory"}},
                        detector=detector)
    engine = kill_engine(config, killer=RecordingKiller(), clock=clock)
    with logs.capture():
        for _ in range(5):
            engine.tick(ctx)
            clock.advance(1)
    (record,) = ctx.decisions
    (group,) = record["detectors"]
    assert group["name"] == "dg" and group["fired"] is True
    (det,) = group["detectors"]
    assert det["plugin"] == "pressure_above" and det["cgroup"] == "workload.slice"
    assert det["value"] == 70 and det["threshold"] == 60 and det["op"] == ">"
    assert det["held"] == 3.0 and det["duration"] == 3 and det["fired"] is True
    ticks = [h["tick"] for h in record["history"]]
    assert ticks == [1, 2, 3, 4]
    assert [h["groups"][0]["fired"] for h in record["history"]] == [False, False, False, True]
    assert [h["t"] for h in record["history"]] == [-3.0, -2.0, -1.0, 0.0]
