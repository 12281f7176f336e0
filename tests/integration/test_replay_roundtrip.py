"""Record a live run on a changing tree, replay it: the same kills and detector firings
(issue 15's round trip), with and without a drop-in added mid-run; a different config replayed
over the recording decides as a live run of that config on the same trajectory."""

from __future__ import annotations

import pytest

from oomd.record.reader import Recording
from oomd.record.replay import ReplayError, replay
from oomd.testing import faketree
from oomd.testing.record_run import run_recorded
from oomd.testing.scenario import Scenario

GB = 1 << 30
MB = 1 << 20
TICKS = 320
HIGH = {range(40, 70), range(140, 175), range(250, 300)}   # workload.slice under pressure


def _high(t: int) -> bool:
    return any(t in r for r in HIGH)


def _psi(level: float) -> str:
    return faketree.psi(some=(level, level, level), full=(level, level / 2, level / 4),
                        some_total=1000, full_total=500)


def changing_scenario(config: dict, ticks: int = TICKS) -> Scenario:
    """Six jobs in workload.slice and two services; a job appears every 30 ticks, one goes
    every 45; usages change every tick; workload.slice's pressure is high in three windows."""
    tree = {"": faketree.cgroup(), "workload.slice": faketree.cgroup(4 * GB),
            "system.slice": faketree.cgroup(GB), "other.slice": faketree.cgroup(GB),
            "other.slice/x.scope": faketree.cgroup(GB)}
    for i in range(6):
        tree[f"workload.slice/job{i}"] = faketree.cgroup((i + 1) * 100 * MB,
                                                          mem_pressure=(i, i, i))
    for name in ("a.service", "b.service"):
        tree[f"system.slice/{name}"] = faketree.cgroup(200 * MB)
    alive = [f"workload.slice/job{i}" for i in range(6)]
    trajectory = {}
    for t in range(2, ticks + 1):
        step = {"workload.slice": {"memory.pressure": _psi(80.0 if _high(t) else 3.0)}}
        if t % 30 == 0:
            rel = f"workload.slice/new{t}"
            step[rel] = faketree.cgroup((t // 3) * MB, mem_pressure=(t % 50, 1, 1))
            alive.append(rel)
        if t % 45 == 0 and len(alive) > 2:
            step[alive.pop(0)] = None
        for k, rel in enumerate(alive):
            if rel not in step:
                step[rel] = {"memory.current": f"{(k + 1) * 97 * MB + (t * 7919 * (k + 3)) % (64 * MB)}\n",
                             "memory.pressure": _psi(float((t * (k + 1)) % 90))}
        step["system.slice/a.service"] = {"memory.current": f"{(t % 20) * 100 * MB}\n"}
        trajectory[t] = step
    return Scenario(name="replay-roundtrip", config=config, ticks=ticks, tree=tree,
                    trajectory=trajectory)


def _pressure(cgroup, threshold, duration):
    return {"name": "pressure_above", "args": {"cgroup": cgroup, "resource": "memory",
                                               "threshold": str(threshold),
                                               "duration": str(duration)}}


CONFIG_A = {"rulesets": [
    {"name": "workload pressure", "post_action_delay": 5,
     "detectors": [["workload under pressure", _pressure("workload.slice", 60, 3)]],
     "actions": [{"name": "kill_by_memory_size_or_growth",
                  "args": {"cgroup": "workload.slice/*"}}]},
    {"name": "job pressure", "post_action_delay": 5,
     "detectors": [["a job under pressure", _pressure("workload.slice/*", 85, 2)]],
     "actions": [{"name": "kill_by_pressure",
                  "args": {"cgroup": "workload.slice/*", "resource": "memory"}}]},
    {"name": "system usage", "post_action_delay": 3, "drop-in": {"detectors": True},
     "detectors": [["service too big", {"name": "memory_above", "args": {
         "cgroup": "system.slice/*", "threshold": "1500M", "duration": "2"}}]],
     "actions": [{"name": "kill_by_memory_size_or_growth",
                  "args": {"cgroup": "system.slice/*"}}]},
]}

# another config over the same cgroups and metrics: lower thresholds, other durations and
# delays, another killer for the workload, a memory_above instead of pressure for the jobs
CONFIG_B = {"rulesets": [
    {"name": "workload pressure", "post_action_delay": 2,
     "detectors": [["workload under pressure", _pressure("workload.slice", 40, 1)]],
     "actions": [{"name": "kill_by_pressure",
                  "args": {"cgroup": "workload.slice/*", "resource": "memory"}}]},
    {"name": "job size", "post_action_delay": 10,
     "detectors": [["a job too big", {"name": "memory_above", "args": {
         "cgroup": "workload.slice/*", "threshold": "700M", "duration": "4"}}]],
     "actions": [{"name": "kill_by_pressure",
                  "args": {"cgroup": "workload.slice/*", "resource": "memory"}}]},
]}

DROP_IN = {"rulesets": [
    {"name": "system usage",
     "detectors": [["service bigger", {"name": "memory_above", "args": {
         "cgroup": "system.slice/*", "threshold": "900M", "duration": "1"}}]]}]}


def _key(d):
    return (d["tick"], d["ruleset"], d["detectorgroup"], d["plugin"], d["victim"], d["record"])


def _assert_same(live, result):
    assert [_key(d) for d in result.decisions] == [_key(d) for d in live.decisions]
    assert result.firings == live.firings
    assert [_key(d) for d in result.recorded_decisions] == [_key(d) for d in live.decisions]


def test_replay_of_the_same_config_gives_the_live_kills_and_firings(tmp_path):
    config = tmp_path / "a.json"
    import json
    config.write_text(json.dumps(CONFIG_A))
    live = run_recorded(changing_scenario(CONFIG_A), tmp_path / "rec", tmp_path / "live")
    assert len(live.decisions) >= 6                     # kills fired several times
    assert {d["ruleset"] for d in live.decisions} == {"workload pressure", "job pressure",
                                                      "system usage"}
    victims = {d["victim"] for d in live.decisions}
    assert any(v.startswith("workload.slice/new") for v in victims)   # appeared mid-run
    result = replay(str(tmp_path / "rec"), str(config))
    assert result.ticks == TICKS and result.problems == []
    _assert_same(live, result)
    assert [ln.split("oomd kill: ", 1)[1] for ln in live.kmsg] == [d["record"] for d in result.decisions]


def test_replay_applies_a_drop_in_added_mid_run(tmp_path):
    import json
    dropins = {120: ("10-bigger.json", DROP_IN), 230: ("10-bigger.json", None)}
    live = run_recorded(changing_scenario(CONFIG_A), tmp_path / "rec", tmp_path / "live",
                        dropins=dropins)
    base = run_recorded(changing_scenario(CONFIG_A), None, tmp_path / "base")
    assert [_key(d) for d in live.decisions] != [_key(d) for d in base.decisions]
    assert any(g == "service bigger" for _, _, g in live.firings)
    config = tmp_path / "a.json"
    config.write_text(json.dumps(CONFIG_A))
    result = replay(str(tmp_path / "rec"), str(config))
    _assert_same(live, result)


def test_replay_of_another_config_decides_as_a_live_run_of_it(tmp_path):
    import json
    run_recorded(changing_scenario(CONFIG_A), tmp_path / "rec", tmp_path / "live-a")
    live_b = run_recorded(changing_scenario(CONFIG_B), None, tmp_path / "live-b")
    assert len(live_b.decisions) >= 4
    config = tmp_path / "b.json"
    config.write_text(json.dumps(CONFIG_B))
    result = replay(str(tmp_path / "rec"), str(config))
    assert [_key(d) for d in result.decisions] == [_key(d) for d in live_b.decisions]
    assert result.firings == live_b.firings


def test_replay_refuses_a_config_that_needs_an_unrecorded_metric(tmp_path):
    import json
    run_recorded(changing_scenario(CONFIG_A, ticks=20), tmp_path / "rec", tmp_path / "live")
    config = tmp_path / "io.json"
    config.write_text(json.dumps({"rulesets": [{"name": "io", "detectors": [
        ["io", {"name": "pressure_above", "args": {"cgroup": "workload.slice/*",
                                                   "resource": "io", "threshold": "10",
                                                   "duration": "1"}}]],
        "actions": [{"name": "continue", "args": {}}]}]}))
    with pytest.raises(ReplayError) as e:
        replay(str(tmp_path / "rec"), str(config))
    assert str(e.value) == (
        "cannot replay: the recording does not have what the config needs at tick 1: "
        "value not recorded, metric io_pressure, cgroup pattern workload.slice/*, "
        "cgroup workload.slice/job0")


def test_replay_refuses_a_config_that_needs_an_unrecorded_cgroup(tmp_path):
    import json
    (tmp_path / "live").mkdir()
    run_recorded(changing_scenario(CONFIG_A, ticks=20), tmp_path / "rec", tmp_path / "live")
    config = tmp_path / "sys.json"
    config.write_text(json.dumps({"rulesets": [{"name": "s", "detectors": [
        ["s", _pressure("other.slice/*", 10, 1)]],
        "actions": [{"name": "continue", "args": {}}]}]}))
    with pytest.raises(ReplayError) as e:
        replay(str(tmp_path / "rec"), str(config))
    assert str(e.value) == (
        "cannot replay: the recording does not have what the config needs at tick 1: "
        "cgroup not recorded, cgroup pattern other.slice/*, cgroup other.slice")
    # the same kind of pattern over what was recorded is fine (no kill: no need)
    config.write_text(json.dumps({"rulesets": [{"name": "s", "detectors": [
        ["s", _pressure("{system,workload}.slice/*", 10, 1)]],
        "actions": [{"name": "continue", "args": {}}]}]}))
    assert replay(str(tmp_path / "rec"), str(config)).ticks == 20


def test_recording_of_the_run_reads_back_whole(tmp_path):
    run_recorded(changing_scenario(CONFIG_A, ticks=50), tmp_path / "rec", tmp_path / "live")
    rec = Recording.open(str(tmp_path / "rec"))
    ticks = [f.tick for f in rec.ticks()]
    assert ticks == list(range(1, 51)) and rec.problems == []


def _drive_daemon(tmp_path, ticks, before_tick):
    """The daemon's own tick (oomd.daemon.Daemon: drop-in watcher, engine, recording, reload),
    driven tick by tick on the changing tree with a fake clock; ``before_tick(d, number,
    dropdir, config)`` may add drop-ins or reload. Returns the kill records of the kmsg file."""
    import json

    from oomd import cli
    from oomd.daemon import Daemon
    from oomd.dropin_watch import DropInWatcher
    from oomd.dropins import DropIns
    from oomd.sdnotify import Notifier

    scenario = changing_scenario(CONFIG_A, ticks=ticks)
    tree = tmp_path / "tree"
    scenario.write_tree(tree)
    config = tmp_path / "a.json"
    config.write_text(json.dumps(CONFIG_A))
    dropdir = tmp_path / "dropins"
    dropdir.mkdir()
    kmsg = tmp_path / "kmsg"
    options = cli.parse_options([
        "--config", str(config), "--interval", "1", "--cgroup-fs", str(tree), "--dry-run",
        "--kmsg-override", str(kmsg), "--runtime-dir", str(tmp_path / "rt"),
        "--drop-in-dir", str(dropdir), "--record", str(tmp_path / "rec")])
    now = [1000.0]
    d = Daemon(options, clock=lambda: now[0])
    d.load_plugins()
    assert d._open_kmsg()
    engine, d.base_ir = d.load_config("invalid")
    assert d.start_recording()
    d.install_engine(engine)
    d.dropins = DropIns(d.compiler(str(config)), d.base_ir)
    d.watcher = DropInWatcher(str(dropdir))
    d.ctx = d.make_context()
    d.notifier = Notifier.from_env({})
    try:
        for number in range(1, scenario.ticks + 1):
            if number > 1:
                scenario.apply_step(tree, number)
                now[0] += 1.0
            before_tick(d, number, dropdir, config)
            d.tick()
    finally:
        d.record.close()
        d.watcher.close()
        d.kmsg.close()
    return [ln.split("oomd kill: ", 1)[1] for ln in kmsg.read_text().splitlines()], config


def test_daemon_tick_loop_with_record_and_a_drop_in_replays_identically(tmp_path):
    """A drop-in file appears mid-run and goes again: replay gives the kmsg file's kill
    records and the recorded firings."""
    import json

    def before_tick(d, number, dropdir, config):
        if number == 100:
            (dropdir / "10-bigger.json").write_text(json.dumps(DROP_IN))
        if number == 200:
            (dropdir / "10-bigger.json").unlink()

    records, config = _drive_daemon(tmp_path, 260, before_tick)
    assert len(records) >= 6
    assert any("detectorgroup:[service bigger]" in r for r in records)   # the drop-in's
    result = replay(str(tmp_path / "rec"), str(config))
    assert result.ticks == 260 and result.problems == []
    assert [x["record"] for x in result.decisions] == records
    assert [x["record"] for x in result.recorded_decisions] == records
    assert result.firings == result.recorded_firings
    assert any(g == "service bigger" for _, _, g in result.firings)
    no_dropins = replay(str(tmp_path / "rec"), str(config), drop_ins=False)
    assert not any(g == "service bigger" for _, _, g in no_dropins.firings)


def test_replay_of_the_recorded_config_follows_a_sighup_reload(tmp_path):
    import json

    def before_tick(d, number, dropdir, config):
        if number == 120:
            config.write_text(json.dumps(CONFIG_B))
            d.reload()

    records, config = _drive_daemon(tmp_path, 240, before_tick)
    assert any("ruleset:[job size]" in r for r in records)      # CONFIG_B's, after the reload
    result = replay(str(tmp_path / "rec"))                       # the recorded config(s)
    assert [x["record"] for x in result.decisions] == records
    assert result.firings == result.recorded_firings
    # CONFIG_A all along: after the reload the daemon no longer computed its averages
    config.write_text(json.dumps(CONFIG_A))
    with pytest.raises(ReplayError, match="at tick 120: value not recorded, metric "
                                          "average_usage, cgroup pattern workload.slice/"):
        replay(str(tmp_path / "rec"), str(config))
