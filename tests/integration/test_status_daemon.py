"""``pyoomd status`` against the real daemon process on a fake tree: a detector at its real
value, and the top candidate it shows is the one the kill then chooses (made to fire by raising
the tree's pressure). ``-d`` keeps working beside the new request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_daemon import REPO, start  # noqa: F401 - the fixture
from oomd.testing import faketree


def config(threshold: int, duration: int = 0) -> dict:
    return {"rulesets": [{
        "name": "pressure", "post_action_delay": 0,
        "detectors": [["high", {"name": "pressure_above", "args": {
            "cgroup": "workload/*", "resource": "memory", "threshold": str(threshold),
            "duration": str(duration)}}]],
        "actions": [{"name": "kill_by_pressure",
                     "args": {"cgroup": "workload/*", "resource": "memory", "dry": True}}],
    }]}


def status(d, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oomd", "status", "--runtime-dir",
                           str(d.runtime), *args], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=30)


def test_status_shows_detector_value_and_the_candidate_a_kill_then_picks(start):  # noqa: F811
    d = start(config(70))
    d.settle()
    got = status(d, "--json")
    assert got.returncode == 0, got.stderr
    body = json.loads(got.stdout)
    (rs,) = body["rulesets"]
    (group,) = rs["detector_groups"]
    (det,) = group["detectors"]
    assert det["plugin"] == "pressure_above" and det["cgroup"] == "workload/hog"
    assert det["value"] == 60.0 and det["threshold"] == 70 and det["fired"] is False
    (action,) = rs["actions"]
    top = action["peer_sets"][0]
    assert top["names"] == ["workload/hog", "workload/calm"]
    assert top["components"]["pressure"] == [50, 1]   # int(60/2 + 40/2), int(1/2 + 1/2)
    assert action["would_kill"] == "workload/hog"
    text = status(d).stdout
    assert "pressure_above: memory pressure (full avg10) of workload/hog 60% > 70%" in text
    assert 'would kill now: "workload/hog"' in text
    assert d.records() == []
    # now make it fire: the kill chooses the cgroup status named
    faketree.write_tree(d.tree, {"workload/hog": faketree.cgroup(
        50 << 20, mem_pressure=(80.0, 40.0, 10.0))})
    (record,) = d.wait_for(d.records, "the dry kill")[:1]
    assert f" {action['would_kill']} " in record
    # oomd's own requests are untouched by the new one
    dump = d.cli("-d")
    assert dump.returncode == 0 and '"oomd.kills"' in dump.stdout


def test_status_would_fire_hint_while_the_duration_runs(start):  # noqa: F811
    d = start(config(50, duration=600))
    d.settle()
    body = json.loads(status(d, "--json").stdout)
    det = body["rulesets"][0]["detector_groups"][0]["detectors"][0]
    assert det["held"] is not None and det["fired"] is False
    assert 0 < det["would_fire_in"] <= 600
    assert "(would fire in " in status(d).stdout


def test_status_without_a_daemon_says_why(tmp_path):
    got = subprocess.run([sys.executable, "-m", "oomd", "status", "--runtime-dir",
                          str(tmp_path)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=30)
    assert got.returncode == 1
    assert got.stderr.startswith(f"pyoomd status: {tmp_path}/oomd-stats.socket: ")


def test_status_of_a_per_cgroup_ruleset_shows_each_clone(start):  # noqa: F811
    d = start({"rulesets": [{
        "name": "each", "cgroup": "workload/*", "post_action_delay": 3600,
        "detectors": [["hot", {"name": "pressure_above", "args": {
            "ruleset_cgroup": "/", "resource": "memory", "threshold": "90", "duration": "0"}}]],
        "actions": [{"name": "kill_by_pressure",
                     "args": {"ruleset_cgroup": "/", "resource": "memory", "dry": True}}],
    }]}, extra_args=("--compat", "head"))
    d.settle()
    body = json.loads(status(d, "--json").stdout)
    labels = [rs["label"] for rs in body["rulesets"]]
    assert labels == ["each [workload/calm]", "each [workload/hog]"]
    hog = body["rulesets"][1]
    det = hog["detector_groups"][0]["detectors"][0]
    assert det["cgroup"] == "workload/hog" and det["value"] == 60.0
    assert hog["actions"][0]["would_kill"] == "workload/hog"
