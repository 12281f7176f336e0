"""The oracle harness, proven against behaviour the reference documents.

Tests marked ``oracle`` run the real oomd 0.5.0 (one shared concurrent batch, see conftest.py);
the rest check the harness's own parsing, scenario handling and diffing without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oomd.testing import faketree as ft
from oomd.testing.oracle import (
    END_LINES,
    KillRecord,
    LockstepError,
    LogLine,
    OomdRun,
    Tick,
    compare,
    fake_cgroup_fs,
    oracle_config,
    parse_kmsg,
    parse_log_line,
    run_oomd,
)
from oomd.testing.oracle_cpu import measure_cpu_detail
from oomd.testing.scenario import PID_MAX_LIMIT, Scenario, ScenarioError

FIXTURES = Path(__file__).parent / "fixtures"
MiB = 1 << 20


def psi(avg):
    """A memory.pressure with the same (avg10, avg60, avg300) on the some and full lines."""
    return ft.psi(some=avg, full=avg)


def ruleset(name, detectors, actions, **extra):
    return {"name": name, "detectors": detectors, "actions": actions, **extra}


CONTINUE = {"name": "continue", "args": {}}


def dry_kill_by_pressure(cgroup="*"):
    return {"name": "kill_by_pressure",
            "args": {"cgroup": cgroup, "resource": "memory", "dry": "true"}}


# ---- scenarios run by the real oomd (one concurrent batch) ------------------------------------

PRESSURE_ABOVE_D2 = Scenario(
    name="pressure_above_duration_2",
    ticks=5,
    tree={
        "": ft.cgroup(0),
        "hot": ft.cgroup(10 * MiB, mem_pressure=(50, 40, 30)),
        "decoy": ft.cgroup(20 * MiB, mem_pressure=(5, 4, 3)),
    },
    config={"rulesets": [ruleset(
        "watch",
        [["hot group", {"name": "pressure_above", "args": {
            "cgroup": "*", "resource": "memory", "threshold": 10, "duration": 2}}]],
        [CONTINUE],
    )]},
)

DRY_KILL_BY_PRESSURE = Scenario(
    name="dry_kill_by_pressure",
    ticks=2,
    tree={
        "": ft.cgroup(0),
        "hot": ft.cgroup(10 * MiB, mem_pressure=(50, 40, 30), memory_stat={"anon": 1, "pgscan": 7}),
        "big": ft.cgroup(900 * MiB, mem_pressure=(5, 4, 3), memory_stat={"anon": 1, "pgscan": 9}),
    },
    config={"rulesets": [ruleset("protect", [["always", CONTINUE]], [dry_kill_by_pressure()])]},
)

# "large" is the only size-eligible sibling (600 of 1000 MiB >= 50 %) but memory.low protects
# most of it (effective 100 MiB); "decoy" has the largest effective usage (300 MiB) and, on the
# first tick, growth 4.0 (reference 4.12: size eligibility uses current, the key effective).
SIZE_OR_GROWTH = Scenario(
    name="kill_by_memory_size_or_growth_size_eligible",
    ticks=1,
    tree={
        "": ft.cgroup(0),
        "large": ft.cgroup(600 * MiB, memory_low=500 * MiB),
        "decoy": ft.cgroup(300 * MiB),
        "small": ft.cgroup(100 * MiB),
    },
    config={"rulesets": [ruleset(
        "size", [["always", CONTINUE]],
        [{"name": "kill_by_memory_size_or_growth", "args": {"cgroup": "*", "dry": "true"}}],
    )]},
)

# pgscan is flat until tick 4, then jumps: memory_reclaim (duration 1) holds on ticks 4 and 5.
RECLAIM = Scenario(
    name="memory_reclaim_after_pgscan_rises",
    ticks=6,
    tree={
        "": ft.cgroup(0),
        "work": ft.cgroup(10 * MiB, mem_pressure=(0, 0, 0), memory_stat={"anon": 1, "pgscan": 0}),
        "decoy": ft.cgroup(10 * MiB, mem_pressure=(0, 0, 0), memory_stat={"anon": 1, "pgscan": 0}),
    },
    trajectory={4: {"work": {"memory.stat": ft.kv({"anon": 1, "pgscan": 500})}}},
    config={"rulesets": [ruleset(
        "reclaim",
        [["scanning", {"name": "memory_reclaim", "args": {"cgroup": "work", "duration": 1}}]],
        [CONTINUE],
    )]},
)

# Pressure rises above 40 at tick 3 and falls back at tick 6; duration 1 -> fires on 4 and 5.
RISING = Scenario(
    name="pressure_rises_at_tick_3",
    ticks=7,
    tree={
        "": ft.cgroup(0),
        "app": ft.cgroup(30 * MiB, mem_pressure=(5, 5, 5), memory_stat={"anon": 1, "pgscan": 0}),
        "decoy": ft.cgroup(40 * MiB, mem_pressure=(20, 20, 20),
                           memory_stat={"anon": 1, "pgscan": 0}),
    },
    trajectory={
        3: {"app": {"memory.pressure": psi((60, 30, 10))}},
        4: {"app": {"memory.pressure": psi((70, 40, 12))}},
        6: {"app": {"memory.pressure": psi((5, 30, 12))}},
    },
    config={"rulesets": [ruleset(
        "rising",
        [["app pressure", {"name": "pressure_above", "args": {
            "cgroup": "*", "resource": "memory", "threshold": 40, "duration": 1}}]],
        [dry_kill_by_pressure()],
        post_action_delay=0,
    )]},
)

# memory.stat without pgscan: computing the candidate dump aborts oomd (reference 4.17, App. B).
ABORT_NO_PGSCAN = Scenario(
    name="abort_memory_stat_without_pgscan",
    ticks=3,
    tree={
        "": ft.cgroup(0),
        "victim": ft.cgroup(10 * MiB, mem_pressure=(50, 40, 30), memory_stat={"anon": 1}),
    },
    config={"rulesets": [ruleset("abort", [["always", CONTINUE]], [dry_kill_by_pressure()])]},
)

UNKNOWN_PLUGIN = Scenario(
    name="config_with_unknown_plugin",
    ticks=3,
    tree={"": ft.cgroup(0)},
    config={"rulesets": [ruleset("bad", [["g", {"name": "no_such_plugin", "args": {}}]],
                                 [CONTINUE])]},
)

AVOID_XATTR = Scenario.load(FIXTURES / "kill_by_pressure_avoid_xattr.json")


@pytest.mark.oracle
@pytest.mark.oracle_scenario(PRESSURE_ABOVE_D2)
def test_pressure_above_fires_first_on_tick_duration_plus_one(oracle_run):
    assert oracle_run.fired_ticks("watch") == [3, 4, 5]
    assert ("10s pressure 50.00 is over the threshold of 10 for 2 seconds , total usage is 10MB"
            in oracle_run.tick(3).plugin_log)
    assert oracle_run.tick(3).engine == [
        "DetectorGroup=hot group has fired for Ruleset=watch. Running action chain.",
        "Running Action=continue",
        "Action=continue returned CONTINUE. Continuing action chain.",
    ]
    assert not oracle_run.died


@pytest.mark.oracle
@pytest.mark.oracle_scenario(DRY_KILL_BY_PRESSURE)
def test_dry_kill_by_pressure_writes_exact_kmsg_record(oracle_run):
    assert oracle_run.tick(1).kmsg == [
        "oomd kill: 50.00 40.00 30.00 hot 10485760 ruleset:[protect] detectorgroup:[always] "
        "killer:(dry)kill_by_pressure v2"
    ]
    (kill,) = oracle_run.tick(1).kills
    assert kill.dry and kill.cgroup == "hot" and kill.usage == 10 * MiB
    assert kill.pressure == (50.0, 40.0, 30.0)


@pytest.mark.oracle
@pytest.mark.oracle_scenario(DRY_KILL_BY_PRESSURE)
def test_post_action_delay_silences_next_tick(oracle_run):
    # The dry kill returned STOP: the ruleset pauses 15 s, so tick 2 neither fires nor kills.
    assert oracle_run.tick(1).engine[-1] == (
        "Action=kill_by_pressure returned STOP. Terminating action chain.")
    assert oracle_run.tick(2).engine == [] and oracle_run.tick(2).kmsg == []


@pytest.mark.oracle
@pytest.mark.oracle_scenario(SIZE_OR_GROWTH)
def test_kill_by_memory_size_or_growth_picks_size_eligible(oracle_run):
    (kill,) = oracle_run.tick(1).kills
    assert (kill.cgroup, kill.usage, kill.plugin) == (
        "large", 600 * MiB, "kill_by_memory_size_or_growth")
    assert ('Picked "large" (600MB) based on size > 50% of total 1000MB with kill preference '
            "NORMAL") in oracle_run.tick(1).plugin_log


@pytest.mark.oracle
@pytest.mark.oracle_scenario(RECLAIM)
def test_memory_reclaim_holds_for_duration_after_pgscan_rises(oracle_run):
    assert oracle_run.fired_ticks("reclaim") == [4, 5]


@pytest.mark.oracle
@pytest.mark.oracle_scenario(RISING)
def test_trajectory_raising_pressure_fires_detector_on_right_tick(oracle_run):
    assert oracle_run.fired_ticks("rising") == [4, 5]
    assert [(n, str(k)) for n, k in oracle_run.kills] == [
        (4, "oomd kill: 70.00 40.00 12.00 app 31457280 ruleset:[rising] "
            "detectorgroup:[app pressure] killer:(dry)kill_by_pressure v2"),
        (5, "oomd kill: 70.00 40.00 12.00 app 31457280 ruleset:[rising] "
            "detectorgroup:[app pressure] killer:(dry)kill_by_pressure v2"),
    ]


@pytest.mark.oracle
@pytest.mark.oracle_scenario(ABORT_NO_PGSCAN)
def test_abort_on_memory_stat_without_pgscan_is_reported(oracle_run):
    assert oracle_run.died
    assert (oracle_run.exit_status, oracle_run.signal) == (134, "SIGABRT")
    assert [t.complete for t in oracle_run.ticks] == [False]
    assert oracle_run.tick(1).kmsg == []
    assert "what():  Bad memory.stat format: missing pgscan entry" in [
        m.strip() for m in oracle_run.tick(1).plugin_log]
    assert oracle_run.describe_exit() == "died: SIGABRT (134) during tick 1"


@pytest.mark.oracle
@pytest.mark.oracle_scenario(UNKNOWN_PLUGIN)
def test_uncompilable_config_exits_3_before_first_tick(oracle_run):
    assert (oracle_run.died, oracle_run.exit_status, oracle_run.ticks) == (True, 3, [])
    messages = [ll.message for ll in oracle_run.startup]
    assert "Could not locate plugin=no_such_plugin in plugin registry" in messages
    assert "Config failed to compile" in messages


@pytest.mark.oracle
@pytest.mark.oracle_scenario(AVOID_XATTR)
def test_replayed_fixture_kills_the_cgroup_not_marked_avoid(oracle_run):
    assert [(n, k.cgroup) for n, k in oracle_run.kills] == [(1, "warm")]


@pytest.mark.oracle
@pytest.mark.oracle_scenario(RISING)
def test_oomd_run_agrees_with_itself_after_json_round_trip(oracle_run):
    again = OomdRun.from_dict(oracle_run.to_dict())
    assert not compare(oracle_run, again, logs=True)


@pytest.mark.oracle
def test_lost_lockstep_raises_instead_of_returning_data():
    import time

    sc = Scenario(name="slow_harness", ticks=3, tree={"": ft.cgroup(0)}, config=None)
    with pytest.raises(LockstepError, match="tick 2: oomd read the tick cgroup as 1"):
        run_oomd(sc, on_tick=lambda tick: time.sleep(1.5))


@pytest.mark.oracle
def test_measure_cpu_counts_requested_ticks(tmp_path):
    tree = ft.write_tree(tmp_path / "tree", {
        "": ft.cgroup(0), "a": ft.cgroup(MiB, mem_pressure=(1, 1, 1)), "b": ft.cgroup(MiB)})
    cfg = {"rulesets": [ruleset("watch", [["g", {"name": "pressure_above", "args": {
        "cgroup": "*", "resource": "memory", "threshold": 90, "duration": 1}}]], [CONTINUE])]}
    m = measure_cpu_detail(tree, cfg, ticks=2)
    assert m.ticks == 2
    assert m.per_tick_s >= 0 and m.first_tick_s >= 0 and m.startup_s >= 0
    assert m.resolution_s == 1 / os.sysconf("SC_CLK_TCK")
    # A sleeping daemon: its CPU per tick cannot exceed the wall time per tick.
    assert m.per_tick_s <= m.wall_per_tick_s


# ---- the harness's own logic (no binary needed) -----------------------------------------------


def test_kill_record_round_trips_through_its_kmsg_line():
    line = ("oomd kill: 12.50 3.00 0.25 system.slice/a b.service 4096 ruleset:[r 1] "
            "detectorgroup:[g] killer:kill_by_swap_usage v2")
    rec = KillRecord.parse(line)
    assert rec == KillRecord("12.50", "3.00", "0.25", "system.slice/a b.service", 4096, "r 1",
                             "g", "kill_by_swap_usage", False)
    assert rec.format() == line


def test_kill_record_of_root_cgroup_has_empty_path():
    rec = KillRecord.parse("oomd kill: 0.00 0.00 0.00  0 ruleset:[r] detectorgroup:[g] "
                           "killer:(dry)kill_by_pressure v2")
    assert (rec.cgroup, rec.usage, rec.dry) == ("", 0, True)


def test_non_kill_kmsg_lines_are_not_kill_records():
    text = ("oomd kill: restarted systemd service=foo.service (dry)\n"
            "oomd kill: 1.00 1.00 1.00 a 1 ruleset:[r] detectorgroup:[g] killer:x v2\n")
    assert [k.cgroup for k in parse_kmsg(text)] == ["a"]


def test_log_lines_split_into_source_and_message():
    assert parse_log_line("(inl) [Ruleset.cpp:177] Running Action=stop\n") == LogLine(
        "Ruleset.cpp:177", "Running Action=stop")
    assert parse_log_line("[OomdContext.cpp:148] Dumping OomdContext: \n") == LogLine(
        "OomdContext.cpp:148", "Dumping OomdContext: ")
    assert parse_log_line("[pressure_above] 10s pressure") == LogLine(
        "pressure_above", "10s pressure")
    assert parse_log_line("  what():  boom") == LogLine(None, "  what():  boom")


def test_scenario_round_trips_through_json(tmp_path):
    sc = Scenario(
        name="rt", ticks=3, tree={"a": ft.cgroup(1)}, xattrs={"a": {"user.oomd_prefer": ""}},
        trajectory={2: {"a": {"memory.current": "5\n", "memory.stat": None}, "b": None}},
        config={"rulesets": []}, devices=["8:0"],
    )
    back = Scenario.load(sc.save(tmp_path / "s.json"))
    assert back == sc
    assert back.trajectory[2]["b"] is None


@pytest.mark.parametrize("procs", ["1\n", "0\n", "-1\n", "12abc\n", f"{PID_MAX_LIMIT}\n"])
def test_scenario_rejects_pids_that_could_be_real(procs):
    sc = Scenario(name="p", ticks=1, tree={"a": ft.cgroup(1, procs=None)}, config=None,
                  trajectory={1: {"a": {"cgroup.procs": procs}}})
    with pytest.raises(ScenarioError, match="could be a real process"):
        sc.validate()


def test_scenario_accepts_pids_beyond_pid_max_and_garbage_lines():
    sc = Scenario(name="p", ticks=1, config=None, tree={"a": ft.cgroup(
        1, procs=[PID_MAX_LIMIT + 1, 2_000_000_000])})
    sc.tree["a"]["cgroup.procs"] += "\nxyz\n"
    assert sc.validate() is sc


@pytest.mark.parametrize("sc, message", [
    (Scenario(name="n", ticks=2, config="{}"), "raw-text config"),
    (Scenario(name="n", ticks=1, config={"rulesets": [{"name": "__oracle_end__"}]}), "reserved"),
    (Scenario(name="n", ticks=1, config={"rulesets": {"a": {}}}), "must be a list"),
    (Scenario(name="n", ticks=1, config={"rulesets": [ruleset("s", [], [{"name": "senpai",
        "args": {"cgroup": "x", "modulate_swappiness": True}}])]}), "swappiness"),
    (Scenario(name="n", ticks=1, config={"rulesets": [ruleset("s", [], [{
        "name": "systemd_restart", "args": {"service": "x.service"}}])]}), "real service"),
    (Scenario(name="n", ticks=1, config={"rulesets": [ruleset("s", [[{"name": "exists", "args": {
        "cgroup": "a,../../../sys/fs/cgroup/unified/*"}}]], [])]}), "could leave the fake tree"),
    (Scenario(name="n", ticks=1, config={"rulesets": [ruleset("s", [], [dry_kill_by_pressure(
        "{..,x}/y")])]}), "could leave the fake tree"),
    (Scenario(name="n", ticks=1, config={"prekill_hooks": [{"name": "dummy_prekill_hook",
        "args": {"cgroup": ".*"}}]}), "could leave the fake tree"),
    (Scenario(name="n", ticks=2, config=None, trajectory={3: {}}), "outside 1..2"),
    (Scenario(name="n", ticks=1, config=None, tree={"../x": {}}), "must not contain"),
])
def test_scenario_rejects_unsafe_or_malformed_input(sc, message):
    with pytest.raises(ScenarioError, match=message):
        sc.validate()


def test_apply_step_rewrites_in_place_deletes_and_creates(tmp_path):
    sc = Scenario(name="s", ticks=2, config=None,
                  tree={"a": ft.cgroup(1, memory_stat={"pgscan": 0}), "gone": ft.cgroup(1)},
                  trajectory={2: {"a": {"memory.current": "7\n", "memory.stat": None},
                                  "gone": None, "new/child": {"memory.current": "3\n"}}})
    root = sc.write_tree(tmp_path / "t")
    inode = os.stat(root / "a" / "memory.current").st_ino
    sc.apply_step(root, 2)
    assert (root / "a" / "memory.current").read_text() == "7\n"
    assert os.stat(root / "a" / "memory.current").st_ino == inode
    assert not (root / "a" / "memory.stat").exists()
    assert not (root / "gone").exists()
    assert (root / "new" / "child" / "memory.current").read_text() == "3\n"


def test_xattrs_are_set_on_materialised_tree(tmp_path):
    sc = Scenario(name="x", ticks=1, config=None, tree={"a": ft.cgroup(1)},
                  xattrs={"a": {"user.oomd_avoid": "1"}})
    root = sc.write_tree(tmp_path / "t")
    assert os.getxattr(root / "a", "user.oomd_avoid") == b"1"


def test_lint_names_the_appendix_c_problems():
    sc = Scenario(name="l", ticks=2, config=None, tree={
        "ok": ft.cgroup(1, memory_stat={"pgscan": 1}),
        "nostat": ft.cgroup(1, memory_stat={"anon": 1}),
        "bare": {"memory.current": "1\n"},
    }, trajectory={2: {"ok": {"memory.pressure": "aggr 0\nsome 0 0 0\nfull 0 0 0\n"}}})
    assert sc.lint() == [
        "nostat: memory.stat without pgscan (oomd aborts on a kill)",
        "bare: no cgroup.controllers (oomd evicts it every tick)",
        "bare: top-level cgroup without memory.min/memory.low",
        "ok: memory.pressure not in upstream format",
    ]


def test_fake_cgroup_fs_climbs_out_of_the_mount(tmp_path):
    assert fake_cgroup_fs("/dev/shm/x/tree", mount="/sys/fs/cgroup/unified") == (
        "/sys/fs/cgroup/unified/../../../../dev/shm/x/tree")
    assert fake_cgroup_fs("/t", mount="/cg") == "/cg/../t"


def test_oracle_config_brackets_scenario_rulesets_with_markers():
    cfg = oracle_config({"rulesets": [{"name": "mine"}], "prekill_hooks": []})
    assert [r["name"] for r in cfg["rulesets"]] == ["__oracle_begin__", "mine", "__oracle_end__"]
    assert cfg["prekill_hooks"] == []
    assert END_LINES[0].startswith("DetectorGroup=__oracle_end__ has fired")


def _run(name, impl, ticks, returncode=None):
    return OomdRun(scenario=name, implementation=impl, ticks=ticks, returncode=returncode)


def _tick(n, kmsg=(), log=()):
    return Tick(n, log=[LogLine("X.cpp:1", m) for m in log], kmsg=list(kmsg), complete=True)


def test_compare_reports_kill_difference_with_tick_and_both_lines():
    kill_a = "oomd kill: 1.00 1.00 1.00 a 1 ruleset:[r] detectorgroup:[g] killer:(dry)k v2"
    kill_b = "oomd kill: 1.00 1.00 1.00 b 1 ruleset:[r] detectorgroup:[g] killer:(dry)k v2"
    fired = "DetectorGroup=g has fired for Ruleset=r. Running action chain."
    a = _run("s", "oomd 0.5.0", [_tick(1), _tick(2, [kill_a], [fired, "Picked a"])])
    b = _run("s", "pyoomd", [_tick(1), _tick(2, [kill_b], [fired, "Picked b"])])
    diff = compare(a, b)
    assert diff
    assert [(i.tick, i.what) for i in diff.items] == [(2, "kmsg records")]
    text = str(diff)
    assert "tick 2: kmsg records differ" in text
    assert "-" + kill_a in text and "+" + kill_b in text
    assert [i.what for i in compare(a, b, logs=True).items] == ["kmsg records", "log messages"]


def test_compare_reports_different_endings_and_agrees_with_itself():
    a = _run("s", "oomd 0.5.0", [Tick(1, complete=False)], returncode=-6)
    b = _run("s", "pyoomd", [_tick(1), _tick(2)])
    diff = compare(a, b)
    assert [i.what for i in diff.items] == ["endings"]
    assert "died: SIGABRT (134) during tick 1" in str(diff)
    assert not compare(b, b)
    assert "agree" in str(compare(b, b))
