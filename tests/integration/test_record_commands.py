"""``pyoomd --record``, ``record-info``, ``replay`` and ``export`` end to end (issue 15): the
daemon records a fake tree, the verbs read the recording back; the Parquet tables hold the
recorded values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oomd.commands import export as export_cmd
from oomd.commands import record_info as record_info_cmd
from oomd.commands import replay as replay_cmd
from oomd.testing import faketree
from oomd.testing.oracle import cgroup2_mount, fake_cgroup_fs
from oomd.testing.record_run import run_recorded
from oomd.testing.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
MB = 1 << 20

CONFIG = {"rulesets": [{
    "name": "r", "post_action_delay": 0,
    "detectors": [["g", {"name": "pressure_above", "args": {
        "cgroup": "work.slice", "resource": "memory", "threshold": "50", "duration": "0"}}]],
    "actions": [{"name": "kill_by_memory_size_or_growth", "args": {"cgroup": "work.slice/*"}}]}]}


def _scenario(ticks=30):
    tree = {"": faketree.cgroup(), "work.slice": faketree.cgroup(900 * MB),
            "work.slice/a": faketree.cgroup(300 * MB), "work.slice/b": faketree.cgroup(200 * MB)}
    trajectory = {}
    for t in range(2, ticks + 1):
        trajectory[t] = {"work.slice/a": {"memory.current": f"{(300 + t) * MB}\n"},
                         "work.slice/b": {"memory.current": f"{(200 + 2 * t) * MB}\n"}}
        if t in (10, 11, 12, 20):
            trajectory[t]["work.slice"] = {"memory.pressure": faketree.psi(full=(80, 80, 80))}
        elif t in (13, 21):
            trajectory[t]["work.slice"] = {"memory.pressure": faketree.psi()}
    return Scenario("commands", CONFIG, ticks, tree, trajectory)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    base = tmp_path_factory.mktemp("cmds")
    live = run_recorded(_scenario(), base / "rec", base / "live")
    (base / "config.json").write_text(json.dumps(CONFIG))
    return base, live


def test_record_info_describes_the_recording(recorded, capsys):
    base, _ = recorded
    assert record_info_cmd.main(["--json", str(base / "rec")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ticks"] == 30 and (info["first_tick"], info["last_tick"]) == (1, 30)
    assert info["seconds"] == 29.0 and info["segments"] == 1 and info["dropped_frames"] == 0
    assert info["cgroups"] == 4 and info["decisions"] == 4 and info["gaps"] == 0
    assert {"current", "mem_full", "average_usage"} <= set(info["columns"])
    assert {"current_usage", "mem_pressure", "memory_growth"} <= set(info["metrics"])
    assert info["bytes"] == os.path.getsize(next((base / "rec").iterdir()))
    assert record_info_cmd.main([str(base / "rec")]) == 0
    text = capsys.readouterr().out
    assert "ticks:      30 (ticks 1..30, 0 gap(s))" in text and "dropped:    0" in text


def test_replay_prints_the_kills_and_a_summary(recorded, capsys):
    base, live = recorded
    assert replay_cmd.main(["--config", str(base / "config.json"), str(base / "rec")]) == 0
    out = capsys.readouterr().out.splitlines()
    kills = [ln for ln in out if " kill: " in ln]
    assert [k.split(" kill: oomd kill: ")[1] for k in kills] == [d["record"] for d in live.decisions]
    assert kills[0].startswith("tick 10 (+9.0s) kill: oomd kill: ")
    assert "tick 10 (+9.0s) fired: r / g" in out
    assert out[-2:] == ["summary: 30 ticks over 29 s (ticks 1..30, 1 run(s)), 4 detector group "
                        "firings, 4 kills (the recording holds 4 live)", "  4 kills by ruleset r"]
    assert replay_cmd.main(["--json", str(base / "rec")]) == 0     # the recorded config
    doc = json.loads(capsys.readouterr().out)
    assert [d["victim"] for d in doc["decisions"]] == ["work.slice/a"] * 4
    assert doc["firings"][0] == {"tick": 10, "ruleset": "r", "detectorgroup": "g"}


def test_export_tables_read_back_with_the_recorded_values(recorded, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet", reason="the test extra installs pyarrow")
    base, live = recorded
    out = tmp_path / "export"
    assert export_cmd.main(["--format", "parquet", str(base / "rec"), str(out)]) == 0
    assert "ticks: 30 rows, cgroups: 4 rows, values: 120 rows, decisions: 4 rows" in capsys.readouterr().out
    values = pq.read_table(out / "values.parquet").to_pylist()
    by = {(v["tick"], v["path"]): v for v in values}
    for t in range(2, 31):
        assert by[(t, "work.slice/a")]["current_usage"] == (300 + t) * MB
        assert by[(t, "work.slice/b")]["current_usage"] == (200 + 2 * t) * MB
    assert by[(10, "work.slice")]["mem_pressure_avg10"] == pytest.approx(80.0)
    assert by[(14, "work.slice")]["mem_pressure_avg10"] == 0.0
    assert by[(9, "work.slice")]["mem_pressure_avg10"] is None        # no file yet: invalid
    assert by[(5, "work.slice/a")]["io_pressure_avg10"] is None      # never read: null
    ticks = pq.read_table(out / "ticks.parquet").to_pylist()
    assert [t["tick"] for t in ticks] == list(range(1, 31))
    assert ticks[9]["fired"] == "r / g" and ticks[0]["mem_total"] > 0
    decisions = pq.read_table(out / "decisions.parquet").to_pylist()
    assert [(d["tick"], d["victim"], d["record"]) for d in decisions] == [
        (d["tick"], d["victim"], d["record"]) for d in live.decisions]
    cgroups = {c["path"]: c for c in pq.read_table(out / "cgroups.parquet").to_pylist()}
    assert set(cgroups) == {"", "work.slice", "work.slice/a", "work.slice/b"}
    assert (cgroups["work.slice/a"]["first_tick"], cgroups["work.slice/a"]["last_tick"]) == (1, 30)


def test_export_without_pyarrow_says_how_to_get_it(recorded, tmp_path, capsys, monkeypatch):
    base, _ = recorded
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert export_cmd.main(["--format", "parquet", str(base / "rec"), str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err == (
        "pyoomd export: pyoomd export needs pyarrow: pip install 'pyoomd[parquet]'\n")


@pytest.mark.skipif(cgroup2_mount() is None,
                    reason="the daemon checks --cgroup-fs against a cgroup2 mount; none here")
def test_daemon_records_and_replay_gives_its_kills(tmp_path):
    tree = faketree.write_tree(tmp_path / "tree", {
        "": faketree.cgroup(), "system.slice": faketree.cgroup(),
        "system.slice/big.service": faketree.cgroup(3 << 30),
        "system.slice/small.service": faketree.cgroup(1 << 30)})
    config = tmp_path / "pyoomd.json"
    config.write_text(json.dumps({"rulesets": [{
        "name": "r", "post_action_delay": 0,
        "detectors": [["g", {"name": "exists", "args": {"cgroup": "system.slice"}}]],
        "actions": [{"name": "kill_by_memory_size_or_growth",
                     "args": {"cgroup": "system.slice/*"}}]}]}))
    kmsg = tmp_path / "kmsg"
    argv = [sys.executable, "-m", "oomd", "--interval", "0.2", "--max-ticks", "4",
            "--config", str(config), "--cgroup-fs", fake_cgroup_fs(tree), "--dry-run",
            "--runtime-dir", str(tmp_path / "rt"), "--kmsg-override", str(kmsg),
            "--no-protect", "--record", str(tmp_path / "rec"), "--record-max-bytes", "4M"]
    out = subprocess.run(argv, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    log = out.stderr.decode()
    assert out.returncode == 0, log[-3000:]
    assert f"Recording every tick into {tmp_path / 'rec'} (at most 4194304 bytes)" in log
    records = [ln.split("oomd kill: ", 1)[1] for ln in kmsg.read_text().splitlines()]
    assert len(records) == 4
    replayed = subprocess.run([sys.executable, "-m", "oomd", "replay", "--json",
                               str(tmp_path / "rec")], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)),
                              capture_output=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr.decode()
    doc = json.loads(replayed.stdout)
    assert [d["record"] for d in doc["decisions"]] == records
    assert [(d["tick"], d["victim"]) for d in doc["decisions"]] == [
        (t, "system.slice/big.service") for t in range(1, 5)]
