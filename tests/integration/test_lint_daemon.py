"""The daemon lints its config at start-up and after a reload, logs the findings, and runs the
config anyway (a finding never stops it)."""

from __future__ import annotations

import json
import signal

import pytest

from oomd.testing.oracle import cgroup2_mount
from test_daemon import Daemon, base_config

pytestmark = pytest.mark.skipif(cgroup2_mount() is None,
                                reason="the daemon checks --cgroup-fs against a cgroup2 mount; none here")

DRY = ("dry is on, so kill_by_pressure only logs and records what it would do. Fix: Remove "
       '"dry" once the config is tested (pyoomd --dry-run makes every action dry for a trial '
       "run). [dry-left-on]")


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path, base_config(detector_cgroup="workload"))
    yield d
    d.stop()


def lint_lines(d: Daemon) -> list[str]:
    return [line.split("] ", 1)[1] for line in d.lines if "] lint: " in line]


def test_start_up_logs_the_findings_and_runs_the_config_anyway(daemon):
    d = daemon
    d.wait_for(lambda: len(lint_lines(d)) >= 2, "the lint lines")
    assert lint_lines(d)[:2] == [
        f"lint: warning: {d.config}: $.rulesets[0].actions[0].args.dry: {DRY}",
        f"lint: {d.config}: 0 errors, 1 warning, 0 notes",
    ]
    d.wait_for(d.records, "the config's dry kills")   # the warning stopped nothing


def test_reload_lints_the_new_config_and_keeps_it_despite_errors(daemon):
    d = daemon
    d.wait_for(lambda: len(lint_lines(d)) >= 2, "the start-up lint")
    config = base_config(detector_cgroup="workload")
    config["rulesets"][0]["detectors"][0].append(
        {"name": "pressure_above", "args": {"cgroup": "workload/*", "resource": "memory",
                                            "threshold": "100", "duration": "0"}})
    d.config.write_text(json.dumps(config))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: any("SIGHUP: reloaded" in line for line in d.lines), "the reload")
    d.wait_for(lambda: len(lint_lines(d)) >= 5, "the reload's lint lines")
    assert lint_lines(d)[2:5] == [
        f"lint: warning: {d.config}: $.rulesets[0].actions[0].args.dry: {DRY}",
        f"lint: error: {d.config}: $.rulesets[0].detectors[0][2].args.threshold: pressure_above's "
        "threshold 100 can never be met: pressure must exceed it, and pressure is a percentage "
        "that never exceeds 100. Fix: Use a threshold below 100. [threshold-never-met]",
        f"lint: {d.config}: 1 error, 1 warning, 0 notes",
    ]
    assert d.proc.poll() is None
