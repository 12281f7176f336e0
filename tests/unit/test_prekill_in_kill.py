"""Prekill hooks as kill plugins use them (reference §2.6): the chain waits, tick by tick, until
the hook finishes or the ruleset's prekill_hook_timeout passes, then kills the saved victim if it
is still the same cgroup (path and inode)."""

from __future__ import annotations

import mock_plugins
from killfakes import MB, FakeContext, RecordingKiller, kill_engine
from support import FakeClock
from oomd import logs
from oomd.plugin import PrekillHook, PrekillHookInvocation, register_prekill_hook

GATE = {"open": False, "fired": [], "cancelled": 0}


class GateInvocation(PrekillHookInvocation):
    def finished(self) -> bool:
        return GATE["open"]

    def cancel(self) -> None:
        GATE["cancelled"] += 1


@register_prekill_hook("test_gate_hook")
class GateHook(PrekillHook):
    def fire(self, relpath, abspath, action_context):
        GATE["fired"].append((relpath, action_context.ruleset, action_context.detectorgroup))
        return GateInvocation()


def setup_function():
    GATE.update(open=False, fired=[], cancelled=0)


def tree():
    return {"w/a": {"swap_usage": 10 * MB, "is_populated": True},
            "w/b": {"swap_usage": 30 * MB, "is_populated": True},
            "w/c": {"swap_usage": 20 * MB, "is_populated": True},
            "x/decoy": {"swap_usage": 999 * MB}}


class Setup:
    def __init__(self, hook_cgroup="w/*", args=None, timeout="5", fail=(), plugin="kill_by_swap_usage"):
        self.clock = FakeClock()
        self.killer = RecordingKiller(fail={f"/fake/{r}" for r in fail})
        config = {
            "rulesets": [{"name": "rs", "prekill_hook_timeout": timeout,
                          "detectors": [["dg", {"name": "continue"}]],
                          "actions": [{"name": plugin, "args": {"cgroup": "w/*", **(args or {})}},
                                      {"name": "mock", "args": {"id": "after"}}]}],
            "prekill_hooks": [{"name": "test_gate_hook", "args": {"cgroup": hook_cgroup}}],
        }
        self.engine = kill_engine(config, killer=self.killer, clock=self.clock)
        self.ctx = FakeContext(tree())

    def tick(self, advance: float = 1.0) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        self.clock.advance(advance)
        return logs.messages(lines)

    @property
    def killed(self):
        return [p.removeprefix("/fake/") for p in self.killer.killed]


def test_kill_waits_for_running_hook_then_kills():
    s = Setup()
    msgs = s.tick()
    assert GATE["fired"] == [("w/b", "rs", "dg")]
    assert s.killed == []
    assert "Action=kill_by_swap_usage returned ASYNC. Yielding action chain." in msgs
    msgs = s.tick()
    assert "Still running pre-kill hook for Ruleset=rs" in msgs and s.killed == []
    GATE["open"] = True
    msgs = s.tick()
    assert "pre-kill hook finished for Ruleset=rs" in msgs
    assert s.killed == ["w/b"]
    assert GATE["fired"] == [("w/b", "rs", "dg")]  # fired once
    assert mock_plugins.RUNS["after"] == 0


def test_hook_timeout_cancels_hook_and_kills():
    s = Setup(timeout="2")
    s.tick()
    s.tick()
    msgs = s.tick()  # now = start + 2 is not past the deadline (strict)
    assert s.killed == [] and "Still running pre-kill hook for Ruleset=rs" in msgs
    msgs = s.tick()
    assert "pre-kill hook timed out for Ruleset=rs" in msgs
    assert GATE["cancelled"] == 1
    assert s.killed == ["w/b"]


def test_victim_recreated_while_hook_runs_is_left_alone():
    s = Setup()
    s.tick()
    s.ctx.recreate("w/b", {"swap_usage": 30 * MB, "is_populated": True})
    GATE["open"] = True
    s.tick()
    assert s.killed == []
    assert mock_plugins.RUNS["after"] == 1  # CONTINUE: someone else did the job


def test_failed_kill_after_hook_tries_saved_next_candidates():
    s = Setup(fail=["w/b"])
    s.tick()
    GATE["open"] = True
    s.tick()
    # w/c is the next saved candidate; it gets its own hook, which is open now
    assert s.killed == ["w/b", "w/c"]


def test_vanished_saved_candidate_discards_lower_ranked_ones():
    s = Setup(fail=["w/b"])
    s.tick()
    s.ctx.remove("w/c")  # ranked below w/b, above w/a
    GATE["open"] = True
    s.tick()
    assert s.killed == ["w/b"]
    assert mock_plugins.RUNS["after"] == 1


def test_no_hook_for_victims_outside_its_cgroups():
    s = Setup(hook_cgroup="other")
    s.tick()
    assert GATE["fired"] == [] and s.killed == ["w/b"]


def test_hook_fires_in_dry_mode_too():
    s = Setup(args={"dry": "true"})
    s.tick()
    assert GATE["fired"] == [("w/b", "rs", "dg")]
    GATE["open"] = True
    msgs = s.tick()
    assert "OOMD: In dry-run mode; would have tried to kill /fake/w/b" in msgs


def test_no_hook_once_deadline_has_passed():
    # kill_by_pg_scan kills on the tick after the detectors fired; a 0 s timeout has passed
    s = Setup(timeout="0", plugin="kill_by_pg_scan")
    s.tick()
    s.tick()
    assert GATE["fired"] == []
    assert s.killed == ["w/a"]  # no pg_scan data in the tree: all tie, smallest path
