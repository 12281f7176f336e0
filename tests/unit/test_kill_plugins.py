"""Behaviour every kill plugin shares (reference §4.11, §7), run for each of the five killers on
injected values. Each tree has a decoy outside the ``cgroup`` pattern with the worst numbers of
all, which must never be picked. A ``RecordingKiller`` stands in for the kernel."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import mock_plugins
from killfakes import MB, FakeContext, RecordingKiller, kill_engine, one_action
from support import FakeClock
from oomd import logs
from oomd.kmsg import Kmsg
from oomd.stats import Stats


@dataclass
class Killer:
    name: str
    args: dict = field(default_factory=dict)
    ticks: int = 1  # kill_by_pg_scan needs two consecutive ticks

    def bad(self, level: int) -> dict:
        """Metrics that make a cgroup rank by ``level`` under this killer (higher = worse)."""
        m = {"current_usage": level * MB, "is_populated": True}
        if self.name == "kill_by_memory_size_or_growth":
            m.update(effective_usage=level * MB, memory_growth=1.0)
        elif self.name == "kill_by_swap_usage":
            m.update(swap_usage=level * MB)
        elif self.name == "kill_by_pressure":
            m.update(mem_pressure=(level, level, level))
        elif self.name == "kill_by_io_cost":
            m.update(io_cost_rate=float(level))
        elif self.name == "kill_by_pg_scan":
            m.update(pg_scan_rate=level)
        return m


KILLERS = [
    Killer("kill_by_memory_size_or_growth"),
    Killer("kill_by_swap_usage"),
    Killer("kill_by_pressure", {"resource": "memory"}),
    Killer("kill_by_io_cost"),
    Killer("kill_by_pg_scan", ticks=2),
]


@pytest.fixture(params=KILLERS, ids=[k.name for k in KILLERS])
def killer(request):
    return request.param


class Run:
    """One engine, one fake context, one recording killer."""

    def __init__(self, tmp_path, k: Killer, tree: dict, *, args=None, ruleset_extra=None,
                 force_dry=False, fail=()) -> None:
        self.k = k
        self.clock = FakeClock()
        self.stats = Stats()
        self.ctx = FakeContext(tree, stats=self.stats)
        self.kmsg_path = tmp_path / "kmsg"
        self.ctx.kmsg = Kmsg(str(self.kmsg_path))
        self.killer = RecordingKiller(fail={f"/fake/{r}" for r in fail})
        action = {"name": k.name, "args": {"cgroup": "workload.slice/*", **k.args, **(args or {})}}
        self.engine = kill_engine(one_action(action, ruleset_extra=ruleset_extra),
                                  killer=self.killer, clock=self.clock, stats=self.stats,
                                  force_dry=force_dry)
        self.ruleset = self.engine.rulesets[0].ruleset

    def tick(self, n: int | None = None) -> list[str]:
        with logs.capture() as lines:
            for _ in range(n or self.k.ticks):
                self.engine.tick(self.ctx)
                self.clock.advance(1)
        return logs.messages(lines)

    @property
    def records(self) -> list[str]:
        return self.kmsg_path.read_text().splitlines()

    @property
    def killed(self) -> list[str]:
        return [p.removeprefix("/fake/") for p in self.killer.killed]

    @property
    def chain_went_on(self) -> bool:
        return mock_plugins.RUNS["after"] > 0


def tree(k: Killer, **overrides) -> dict:
    t = {
        "": {},
        "workload.slice": k.bad(60),
        "workload.slice/a": k.bad(10),
        "workload.slice/b": k.bad(30),
        "workload.slice/c": k.bad(20),
        "system.slice": k.bad(500),
        "system.slice/decoy": k.bad(1000),
    }
    for key, extra in overrides.items():
        rel = key.replace("__", "/").replace("_slice", ".slice")
        t[rel] = {**t.get(rel, {}), **extra}
    return t


def test_kills_worst_candidate_in_pattern_not_decoy(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer))
    run.tick()
    assert run.killed == ["workload.slice/b"]
    assert len(run.records) == 1
    assert run.records[0].startswith("oomd kill: ")
    assert " workload.slice/b " in run.records[0]
    assert run.records[0].endswith(f" ruleset:[rs] detectorgroup:[dg] killer:{killer.name} v2")
    assert run.stats.get("oomd.kills") == 1
    assert not run.chain_went_on  # STOP


def test_dry_kill_signals_nothing_and_records_dry(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), args={"dry": "true"})
    msgs = run.tick()
    assert run.killed == []
    assert "OOMD: In dry-run mode; would have tried to kill /fake/workload.slice/b" in msgs
    assert run.records[0].endswith(f"killer:(dry){killer.name} v2")
    assert run.stats.get("oomd.kills") == 0
    assert not run.chain_went_on


def test_dry_run_flag_makes_kill_dry(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), force_dry=True)
    run.tick()
    assert run.killed == []
    assert "(dry)" in run.records[0]


def test_recursive_descends_into_worst_child(tmp_path, killer):
    t = tree(killer, **{"workload_slice__b__x": killer.bad(5), "workload_slice__b__y": killer.bad(8),
                        "workload_slice__b__y__z": killer.bad(7)})
    run = Run(tmp_path, killer, t, args={"recursive": "true"})
    run.tick()
    assert run.killed == ["workload.slice/b/y/z"]


def test_recursive_stops_at_oom_group(tmp_path, killer):
    t = tree(killer, **{"workload_slice__b": {"oom_group": True},
                        "workload_slice__b__x": killer.bad(5)})
    run = Run(tmp_path, killer, t, args={"recursive": "true"})
    run.tick()
    assert run.killed == ["workload.slice/b"]


def test_without_recursive_parent_is_killed_whole(tmp_path, killer):
    t = tree(killer, **{"workload_slice__b__x": killer.bad(5)})
    run = Run(tmp_path, killer, t)
    run.tick()
    assert run.killed == ["workload.slice/b"]


def test_prefer_xattr_outranks_worse_candidates(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer, workload_slice__a={"kill_preference": 1}))
    run.tick()
    assert run.killed == ["workload.slice/a"]


def test_avoid_xattr_ranks_last(tmp_path, killer):
    t = tree(killer)
    t["workload.slice/b"] = {**killer.bad(30), "kill_preference": -1}
    run = Run(tmp_path, killer, t)
    run.tick()
    assert run.killed == ["workload.slice/c"]


def test_failed_kill_moves_to_next_candidate(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), fail=["workload.slice/b"])
    run.tick()
    assert run.killed == ["workload.slice/b", "workload.slice/c"]
    assert len(run.records) == 1 and " workload.slice/c " in run.records[0]


def test_failed_kill_backtracks_to_parents_siblings(tmp_path, killer):
    t = tree(killer, **{"workload_slice__b__x": killer.bad(5)})
    run = Run(tmp_path, killer, t, args={"recursive": "true"}, fail=["workload.slice/b/x"])
    run.tick()
    assert run.killed == ["workload.slice/b/x", "workload.slice/c"]


def test_vanished_candidate_is_not_killed(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer))
    run.ctx.on_refresh.append(lambda ctx: ctx.remove("workload.slice/b"))
    run.tick()
    assert run.killed == ["workload.slice/c"]


def test_empty_cgroup_is_skipped(tmp_path, killer):
    t = tree(killer)
    t["workload.slice/b"] = {**killer.bad(30), "is_populated": False}
    run = Run(tmp_path, killer, t)
    msgs = run.tick()
    assert run.killed == ["workload.slice/c"]
    assert not any('Picked "workload.slice/b"' in m for m in msgs)


def test_nothing_killable_continues_chain(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), fail=["workload.slice/a", "workload.slice/b",
                                                    "workload.slice/c"])
    run.tick()
    assert len(run.killed) == 3
    assert not run.kmsg_path.read_text()
    assert run.chain_went_on


def test_no_candidates_continues_chain(tmp_path, killer):
    run = Run(tmp_path, killer, {"": {}, "system.slice/decoy": killer.bad(1000)})
    msgs = run.tick()
    assert run.killed == []
    assert "Dumping OomdContext: " in msgs
    assert run.chain_went_on


def test_own_post_action_delay_pauses_ruleset(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), args={"post_action_delay": "42"},
              ruleset_extra={"post_action_delay": "7"})
    run.tick()
    assert run.ruleset.pause_actions_until == run.clock.now - 1 + 42


def test_ruleset_post_action_delay_applies_without_own(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), ruleset_extra={"post_action_delay": "7"})
    run.tick()
    assert run.ruleset.pause_actions_until == run.clock.now - 1 + 7


def test_always_continue_continues_chain_without_pause(tmp_path, killer):
    run = Run(tmp_path, killer, tree(killer), args={"always_continue": "true",
                                                    "post_action_delay": "42"})
    run.tick()
    assert run.killed == ["workload.slice/b"]
    assert run.chain_went_on
    assert run.ruleset.pause_actions_until == float("-inf")


def test_init_resets_kill_stat(tmp_path, killer):
    stats = Stats()
    stats.set("oomd.kills", 9)
    kill_engine(one_action({"name": killer.name, "args": {"cgroup": "/", **killer.args}}),
                killer=RecordingKiller(), clock=FakeClock(), stats=stats)
    assert stats.get("oomd.kills") == 0


def test_missing_cgroup_arg_rejected(killer):
    from oomd.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        kill_engine(one_action({"name": killer.name, "args": dict(killer.args)}),
                    killer=RecordingKiller(), clock=FakeClock())
    assert e.value.reason.endswith(f'Required arg "cgroup" missing in plugin "{killer.name}"')
