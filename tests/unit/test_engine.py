"""Engine rules of reference §1, with counting mock plugins and a stepped clock."""

from __future__ import annotations

from support import StubContext, engine_from
from mock_plugins import PRERUNS, RUNS, SEEN_CONTEXTS

from oomd import logs
from oomd.engine import PLUGIN_ERRORS_STAT
from oomd.stats import Stats


def mock(id, ret="continue", **kw):
    args = {"id": id, "ret": ret}
    args.update({k.replace("raise_", "raise"): v for k, v in kw.items()})
    return {"name": "mock", "args": args}


def ruleset(name, groups, actions, **kw):
    rs = {"name": name, "detectors": groups, "actions": actions}
    rs.update(kw)
    return rs


def run_ticks(engine, n, clock=None, ctx=None, step=1.0):
    ctx = ctx or StubContext()
    for _ in range(n):
        engine.tick(ctx)
        if clock is not None:
            clock.advance(step)
    return ctx


# -- detector groups -------------------------------------------------------------------------


def test_group_fires_when_every_detector_continues(clock):
    e = engine_from({"rulesets": [ruleset("r", [["g", mock("d1"), mock("d2")]], [mock("a")])]}, clock)
    run_ticks(e, 1)
    assert RUNS["a"] == 1


def test_group_does_not_fire_when_one_detector_stops_but_all_detectors_run(clock):
    e = engine_from(
        {"rulesets": [ruleset("r", [["g", mock("d1", "stop"), mock("d2")]], [mock("a")])]}, clock
    )
    run_ticks(e, 1)
    assert RUNS["a"] == 0
    assert RUNS["d1"] == 1 and RUNS["d2"] == 1  # d2 still ran after d1's STOP


def test_groups_are_ored_and_all_are_evaluated(clock):
    cfg = ruleset(
        "r",
        [["g1", mock("d1", "stop")], ["g2", mock("d2")], ["g3", mock("d3")]],
        [mock("a")],
    )
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 1)
    assert RUNS["a"] == 1
    assert RUNS["d3"] == 1  # evaluated even though g2 had already fired
    assert SEEN_CONTEXTS["a"] == [("r", "g2")]  # the first group that fired names the context


def test_async_from_a_detector_counts_as_continue(clock):
    e = engine_from({"rulesets": [ruleset("r", [["g", mock("d", "async")]], [mock("a")])]}, clock)
    run_ticks(e, 1)
    assert RUNS["a"] == 1


def test_prerun_reaches_every_plugin_every_tick_even_when_nothing_fires(clock):
    cfg = ruleset("r", [["g", mock("d", "stop")]], [mock("a1"), mock("a2")])
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 3, clock)
    assert PRERUNS == {"d": 3, "a1": 3, "a2": 3}
    assert RUNS["a1"] == 0


def test_every_ruleset_runs_every_tick(clock):
    cfg = {"rulesets": [
        ruleset("r1", [["g", mock("d1")]], [mock("a1")]),
        ruleset("r2", [["g", mock("d2")]], [mock("a2")]),
    ]}
    e = engine_from(cfg, clock)
    run_ticks(e, 2, clock)
    assert RUNS["a1"] == 2 and RUNS["a2"] == 2


# -- action chains and post_action_delay -----------------------------------------------------


def test_continue_runs_the_next_action_and_stop_ends_the_chain(clock):
    e = engine_from(
        {"rulesets": [ruleset("r", [["g", mock("d")]], [mock("a1"), mock("a2", "stop"), mock("a3")])]},
        clock,
    )
    run_ticks(e, 1)
    assert (RUNS["a1"], RUNS["a2"], RUNS["a3"]) == (1, 1, 0)


def test_stop_pauses_actions_for_post_action_delay_while_detectors_keep_running(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a", "stop")], post_action_delay=10)
    e = engine_from({"rulesets": [cfg]}, clock)
    ctx = StubContext()
    e.tick(ctx)  # t=0: fires, STOP -> paused until t=10
    for _ in range(9):
        clock.advance(1)
        e.tick(ctx)  # t=1..9
    assert RUNS["a"] == 1
    assert RUNS["d"] == 10 and PRERUNS["a"] == 10
    clock.advance(1)  # t=10: the pause has ended (strict comparison)
    e.tick(ctx)
    assert RUNS["a"] == 2


def test_default_post_action_delay_is_15_seconds(clock):
    e = engine_from({"rulesets": [ruleset("r", [["g", mock("d")]], [mock("a", "stop")])]}, clock)
    ctx = StubContext()
    e.tick(ctx)
    clock.advance(14.9)
    e.tick(ctx)
    assert RUNS["a"] == 1
    clock.advance(0.1)
    e.tick(ctx)
    assert RUNS["a"] == 2


def test_all_continue_chain_does_not_pause(clock):
    e = engine_from({"rulesets": [ruleset("r", [["g", mock("d")]], [mock("a")])]}, clock)
    run_ticks(e, 3, clock, step=0.5)
    assert RUNS["a"] == 3


def test_zero_post_action_delay_never_suppresses(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a", "stop")], post_action_delay="0")
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 3)  # the clock does not even move
    assert RUNS["a"] == 3


def test_plugin_requested_delay_replaces_the_ruleset_delay(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a", "stop", pause=3)], post_action_delay=60)
    e = engine_from({"rulesets": [cfg]}, clock)
    ctx = StubContext()
    e.tick(ctx)
    clock.advance(3)
    e.tick(ctx)
    assert RUNS["a"] == 2  # 3 s, not the ruleset's 60 s


def test_any_stop_action_triggers_the_pause_even_the_stop_plugin(clock):
    cfg = ruleset("r", [["g", mock("d")]], [{"name": "stop"}, mock("never")], post_action_delay=5)
    e = engine_from({"rulesets": [cfg]}, clock)
    ctx = StubContext()
    with logs.capture() as lines:
        e.tick(ctx)
        clock.advance(4)
        e.tick(ctx)
    msgs = logs.messages(lines)
    assert msgs.count("Running Action=stop") == 1
    assert RUNS["never"] == 0


# -- async -----------------------------------------------------------------------------------


def test_async_action_yields_and_resumes_at_the_same_plugin_next_tick(clock):
    cfg = ruleset("r", [["g", mock("d", "continue,stop,stop")]],
                  [mock("a1"), mock("a2", "async,continue"), mock("a3")])
    e = engine_from({"rulesets": [cfg]}, clock)
    ctx = StubContext()
    e.tick(ctx)  # a1, a2 -> ASYNC
    assert (RUNS["a1"], RUNS["a2"], RUNS["a3"]) == (1, 1, 0)
    clock.advance(1)
    e.tick(ctx)  # detector now STOPs, but the suspended chain resumes at a2
    assert (RUNS["a1"], RUNS["a2"], RUNS["a3"]) == (1, 2, 1)
    assert SEEN_CONTEXTS["a3"] == [("r", "g")]  # the context of the original firing
    clock.advance(1)
    e.tick(ctx)
    assert (RUNS["a1"], RUNS["a2"], RUNS["a3"]) == (1, 2, 1)


def test_suspended_chain_survives_many_ticks(clock):
    cfg = ruleset("r", [["g", mock("d", "continue,stop")]], [mock("a", "async,async,async,stop")])
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 6, clock)
    assert RUNS["a"] == 4  # three yields, then STOP; paused afterwards and nothing fires


def test_async_yield_line_is_logged_even_with_engine_logs_silenced(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a", "async")], **{"silence-logs": "engine"})
    e = engine_from({"rulesets": [cfg]}, clock)
    with logs.capture() as lines:
        run_ticks(e, 1)
    assert logs.messages(lines) == ["Action=mock returned ASYNC. Yielding action chain."]


def test_suspended_chain_does_not_resume_while_paused(clock):
    cfg = {"rulesets": [ruleset("r", [["g", mock("d")]], [mock("a", "async,stop", pause=5)])]}
    e = engine_from(cfg, clock)
    ctx = StubContext()
    e.tick(ctx)  # ASYNC, and the plugin asked for a 5 s pause
    clock.advance(1)
    e.tick(ctx)
    assert RUNS["a"] == 1
    clock.advance(4)
    e.tick(ctx)
    assert RUNS["a"] == 2


# -- logging ---------------------------------------------------------------------------------


def test_engine_logs_the_firing_and_each_action(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a1"), mock("a2", "stop")])
    e = engine_from({"rulesets": [cfg]}, clock)
    with logs.capture() as lines:
        run_ticks(e, 1)
    assert logs.messages(lines) == [
        "DetectorGroup=g has fired for Ruleset=r. Running action chain.",
        "Running Action=mock",
        "Action=mock returned CONTINUE. Continuing action chain.",
        "Running Action=mock",
        "Action=mock returned STOP. Terminating action chain.",
    ]


def test_silence_engine_drops_the_four_engine_messages(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a1"), mock("a2", "stop")],
                  **{"silence-logs": "engine"})
    e = engine_from({"rulesets": [cfg]}, clock)
    with logs.capture() as lines:
        run_ticks(e, 1)
    assert lines == []


def test_silence_plugins_drops_run_logs_but_not_prerun_logs(clock):
    cfg = ruleset("r", [["g", mock("d", log="D")]], [mock("a", log="A")],
                  **{"silence-logs": " plugins ,engine"})
    e = engine_from({"rulesets": [cfg]}, clock)
    with logs.capture() as lines:
        run_ticks(e, 1)
    assert logs.messages(lines) == ["prerun D", "prerun A"]


# -- failures --------------------------------------------------------------------------------


def test_detector_that_raises_counts_as_stop_and_is_logged_with_its_ruleset(clock):
    stats = Stats()
    cfg = ruleset("r", [["g", mock("d", raise_="run"), mock("d2")]], [mock("a")])
    e = engine_from({"rulesets": [cfg]}, clock, stats=stats)
    with logs.capture() as lines:
        run_ticks(e, 1, ctx=StubContext(stats))
    assert RUNS["a"] == 0 and RUNS["d2"] == 1
    assert ("Plugin=mock in Ruleset=r run() raised RuntimeError: mock d fails in run; "
            "treated as STOP") in logs.messages(lines)
    assert stats.get(PLUGIN_ERRORS_STAT) == 1


def test_action_that_raises_ends_the_chain_before_any_later_action(clock):
    cfg = ruleset("r", [["g", mock("d")]], [mock("a1", raise_="run"), mock("kill")])
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 1)
    assert RUNS["kill"] == 0


def test_prerun_that_raises_does_not_stop_the_tick(clock):
    cfg = ruleset("r", [["g", mock("d", raise_="prerun")]], [mock("a")])
    e = engine_from({"rulesets": [cfg]}, clock)
    run_ticks(e, 2, clock)
    assert RUNS["a"] == 2


def test_run_returning_garbage_counts_as_stop(clock):
    e = engine_from({"rulesets": [ruleset("r", [["g", mock("d")]], [mock("a")])]}, clock)
    e.rulesets[0].ruleset.detector_groups[0].detectors[0].run = lambda ctx: "yes"
    with logs.capture() as lines:
        run_ticks(e, 1)
    assert RUNS["a"] == 0
    assert any("returned 'yes', not a PluginRet" in m for m in logs.messages(lines))


# -- drop-ins at the engine level ------------------------------------------------------------


def _base_with_dropins(clock, disable=False):
    base = ruleset("r", [["g", mock("base_d")]], [mock("base_a")],
                   **{"drop-in": {"detectors": True, "actions": True, "disable-on-drop-in": disable}})
    return {"rulesets": [base]}


def _dropin(engine_cfg, dropin_cfg, clock):
    from oomd.config.compiler import Compiler
    from oomd.config.parser import parse_string
    from oomd.plugin import PluginConstructionContext
    import json

    base_ir = parse_string(json.dumps(engine_cfg), "base.json")
    comp = Compiler(PluginConstructionContext(), "dropin.json", clock)
    return comp.compile_drop_in(base_ir, parse_string(json.dumps(dropin_cfg), "dropin.json"))


def test_drop_ins_run_most_recent_first_then_the_base(clock):
    stats = Stats()
    base = _base_with_dropins(clock)
    e = engine_from(base, clock, stats=stats)
    order = []
    e.add_drop_in("one", _dropin(base, {"rulesets": [{"name": "r", "actions": [mock("one_a")]}]}, clock))
    e.add_drop_in("two", _dropin(base, {"rulesets": [{"name": "r", "actions": [mock("two_a")]}]}, clock))
    ctx = StubContext(stats)
    for b in e.rulesets:
        for d in b.dropins:
            order.append(d.tag)
    assert order == ["two", "one"]
    e.tick(ctx)
    assert RUNS["one_a"] == 1 and RUNS["two_a"] == 1 and RUNS["base_a"] == 1
    assert stats.get("oomd.dropin.added") == 2 and stats.get("oomd.dropin.fired") == 2
    e.remove_drop_in("two")
    assert stats.get("oomd.dropin.added") == 1


def test_disable_on_drop_in_turns_the_base_off_until_the_drop_in_goes(clock):
    base = _base_with_dropins(clock, disable=True)
    e = engine_from(base, clock)
    e.add_drop_in("x", _dropin(base, {"rulesets": [{"name": "r", "actions": [mock("x_a")]}]}, clock))
    run_ticks(e, 1, clock)
    assert RUNS["base_a"] == 0 and PRERUNS["base_a"] == 0 and RUNS["x_a"] == 1
    e.remove_drop_in("x")
    run_ticks(e, 1, clock)
    assert RUNS["base_a"] == 1


def test_drop_in_ruleset_keeps_its_own_pause(clock):
    base = _base_with_dropins(clock)
    base["rulesets"][0]["post_action_delay"] = 100
    e = engine_from(base, clock)
    e.add_drop_in("x", _dropin(base, {"rulesets": [{"name": "r", "actions": [mock("x_a", "stop")]}]}, clock))
    run_ticks(e, 3, clock)
    assert RUNS["x_a"] == 1 and RUNS["base_a"] == 3


def test_engine_tells_the_context_what_every_plugin_monitors(clock):
    from oomd.cgpath import CgroupPatterns

    cfg = ruleset("r", [["g", mock("d", cgroup="system.slice/*")]], [mock("a", cgroup="/,a/b")])
    e = engine_from({"rulesets": [cfg]}, clock)
    ctx = run_ticks(e, 1)
    assert dict(ctx.monitored) == {
        CgroupPatterns.parse("system.slice/*"): frozenset({"current_usage"}),
        CgroupPatterns.parse("/,a/b"): frozenset({"current_usage"}),
    }
