"""``continue`` and ``stop`` (reference §4.1/4.2): fixed answers, any arguments accepted; as
actions, ``stop`` ends the chain and pauses the ruleset, ``continue`` does not."""

from __future__ import annotations

import mock_plugins
from detectorfakes import Rig
from support import FakeClock, StubContext, engine_from


def test_continue_always_continues_whatever_its_arguments(tmp_path):
    rig = Rig(tmp_path, {})
    rig.add("continue", anything="at all", cgroup="[")
    assert rig.run(3) == "CCC"


def test_stop_always_stops_whatever_its_arguments(tmp_path):
    rig = Rig(tmp_path, {})
    rig.add("stop", threshold="not a number")
    assert rig.run(3) == "SSS"


def chain(*actions, detector="continue", delay=None):
    rs = {"name": "rs", "detectors": [["dg", {"name": detector}]],
          "actions": [{"name": a} if isinstance(a, str) else a for a in actions]}
    if delay is not None:
        rs["post_action_delay"] = str(delay)
    return {"rulesets": [rs]}


def test_stop_action_ends_chain_and_pauses_ruleset():
    clock = FakeClock()
    engine = engine_from(chain({"name": "mock", "args": {"id": "first"}}, "stop",
                               {"name": "mock", "args": {"id": "after"}}, delay=5), clock)
    ctx = StubContext()
    for _ in range(7):  # t = 1000 .. 1006: the chain runs at 1000 and again at 1005
        engine.tick(ctx)
        clock.advance(1)
    assert mock_plugins.RUNS["first"] == 2
    assert mock_plugins.RUNS["after"] == 0


def test_continue_action_runs_rest_of_chain_every_tick_without_pause():
    clock = FakeClock()
    engine = engine_from(chain("continue", {"name": "mock", "args": {"id": "after"}}), clock)
    ctx = StubContext()
    for _ in range(4):
        engine.tick(ctx)
        clock.advance(1)
    assert mock_plugins.RUNS["after"] == 4


def test_stop_detector_keeps_group_from_firing():
    engine = engine_from(chain({"name": "mock", "args": {"id": "act"}}, detector="stop"))
    engine.tick(StubContext())
    assert mock_plugins.RUNS["act"] == 0
