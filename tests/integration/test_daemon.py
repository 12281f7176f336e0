"""The real daemon process on a fake tree: drop-ins, stats socket, metrics, sd_notify, signals.

Each test starts ``python -m oomd`` with a short interval on a fake cgroup tree reached through
the cgroup2 mount (the same ``<mount>/../../..<tree>`` path the oracle uses), and watches what
it writes: kill records (dry), its log, the stats socket, the metrics textfile, a notify socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from oomd.testing import faketree
from oomd.testing.oracle import cgroup2_mount, fake_cgroup_fs
from oomd.testing.realcg import terminate

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 0.2
WAIT = 15.0

pytestmark = pytest.mark.skipif(cgroup2_mount() is None,
                                reason="the daemon checks --cgroup-fs against a cgroup2 mount; none here")


def base_config(detector_cgroup="nothing-here", post_action_delay=0):
    return {"rulesets": [{
        "name": "r",
        "post_action_delay": post_action_delay,
        "drop-in": {"detectors": True, "actions": True},
        "detectors": [["base group", {"name": "exists", "args": {"cgroup": detector_cgroup}}]],
        "actions": [{"name": "kill_by_pressure",
                     "args": {"cgroup": "workload/*", "resource": "memory", "dry": True}}],
    }]}


class Daemon:
    """A running ``python -m oomd`` with its files, its log collected by a thread."""

    def __init__(self, tmp: Path, config: dict, extra_args=(), env=None) -> None:
        self.tmp = tmp
        self.tree = faketree.write_tree(tmp / "tree", {
            "workload/hog": faketree.cgroup(50 << 20, mem_pressure=(60.0, 40.0, 10.0)),
            "workload/calm": faketree.cgroup(10 << 20, mem_pressure=(1.0, 1.0, 1.0)),
        })
        self.config = tmp / "pyoomd.json"
        self.config.write_text(json.dumps(config))
        self.kmsg = tmp / "kmsg"
        self.runtime = tmp / "rt"
        self.dropins = tmp / "dropins"
        self.dropins.mkdir()
        self.textfile = tmp / "metrics.prom"
        argv = [sys.executable, "-m", "oomd", "--interval", str(INTERVAL), "--config", str(self.config),
                "--cgroup-fs", fake_cgroup_fs(self.tree), "--runtime-dir", str(self.runtime),
                "--kmsg-override", str(self.kmsg), "--drop-in-dir", str(self.dropins),
                "--metrics-textfile", str(self.textfile), "--no-protect", *extra_args]
        full_env = dict(os.environ, PYTHONPATH=str(REPO))
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda: any("Running pyoomd" in line for line in self.lines), "start-up")

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; daemon log:\n" + "\n".join(self.lines[-40:]))

    def records(self) -> list[str]:
        return self.kmsg.read_text().splitlines() if self.kmsg.exists() else []

    def settle(self, ticks: int = 4) -> None:
        time.sleep(ticks * INTERVAL)

    def cli(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "oomd", "-D", str(self.runtime), *args],
                              cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                              capture_output=True, text=True, timeout=30)

    def drop_in(self, name: str, content: dict | str) -> None:
        """Write atomically (a moved-in file is one "add"), as an operator's tool would."""
        text = content if isinstance(content, str) else json.dumps(content)
        tmp = self.dropins / f".{name}.tmp"
        tmp.write_text(text)
        os.rename(tmp, self.dropins / name)

    def stop(self) -> int:
        terminate(self.proc)
        self._reader.join(timeout=5)
        return self.proc.returncode


@pytest.fixture
def start(tmp_path):
    daemons = []

    def _start(config=None, **kw):
        d = Daemon(tmp_path, config or base_config(), **kw)
        daemons.append(d)
        return d

    yield _start
    for d in daemons:
        d.stop()


def test_drop_in_changes_decisions_on_the_next_tick_and_its_removal_restores_them(start):
    d = start()
    d.settle()
    assert d.records() == []  # the base detector never fires
    d.drop_in("fire.json", {"rulesets": [{"name": "r", "detectors": [
        ["drop-in group", {"name": "exists", "args": {"cgroup": "workload"}}]]}]})
    first = d.wait_for(d.records, "a dry kill from the drop-in's detector")
    assert first[0] == ("oomd kill: 60.00 40.00 10.00 workload/hog 52428800 ruleset:[r] "
                        "detectorgroup:[drop-in group] killer:(dry)kill_by_pressure v2")
    assert any("Drop in config=fire.json injected into engine" in line for line in d.lines)
    os.unlink(d.dropins / "fire.json")
    d.wait_for(lambda: any("Drop in config=fire.json removed from engine" in line for line in d.lines),
               "the removal")
    d.settle(2)
    count = len(d.records())
    d.settle()
    assert len(d.records()) == count  # back to the base rules: nothing fires


def test_bad_drop_in_is_rejected_with_file_and_path_and_changes_nothing(start):
    d = start(base_config(detector_cgroup="workload"))
    d.wait_for(d.records, "the base ruleset's dry kills")
    d.drop_in("bad.json", {"rulesets": [{"name": "r", "detectors": [
        ["g", {"name": "pressure_above", "args": {"cgroup": "workload", "resource": "cpu",
                                                  "threshold": 1, "duration": 0}}]]}]})
    path = d.dropins / "bad.json"
    msg = d.wait_for(lambda: [line for line in d.lines if "Could not compile drop in config" in line],
                     "the rejection")
    assert (f"{path}: at $.rulesets[0].detectors[0][1].args.resource: Plugin=pressure_above failed to "
            "init() with code=1: Failed to parse argument \"resource\" of plugin \"pressure_above\": "
            "'cpu' is not a resource (io or memory)") in msg[0]
    n = len(d.records())
    d.wait_for(lambda: len(d.records()) > n + 2, "base decisions continuing")
    assert all("detectorgroup:[base group]" in r for r in d.records())


def test_dump_and_reset_stats_round_trip_against_the_live_daemon(start):
    d = start()
    d.drop_in("one.json", {"rulesets": [{"name": "r", "actions": [{"name": "continue"}]}]})
    d.wait_for(lambda: any("injected" in line for line in d.lines), "the drop-in")
    dumped = d.cli("-d")
    assert dumped.returncode == 0, dumped.stderr
    assert '\t"oomd.dropin.added" : 1,' in dumped.stdout
    assert dumped.stdout.startswith("{\n") and dumped.stdout.endswith("}\n\n")
    reset = d.cli("-r")
    assert reset.returncode == 0, reset.stderr
    assert '\t"oomd.dropin.added" : 0,' in d.cli("-d").stdout


def test_metrics_textfile_parses_and_counts_dry_kills(start):
    from prometheus_client.parser import text_string_to_metric_families

    d = start(base_config(detector_cgroup="workload"))
    d.wait_for(lambda: len(d.records()) >= 2, "dry kills")

    def dry_kills():
        if not d.textfile.exists():
            return 0
        for family in text_string_to_metric_families(d.textfile.read_text()):
            for sample in family.samples:
                if sample.name == "pyoomd_kills_total" and sample.labels.get("outcome") == "dry":
                    return sample.value
        return 0

    first = d.wait_for(dry_kills, "a dry kill in the textfile")
    assert d.wait_for(lambda: dry_kills() > first, "the counter moving")
    families = {f.name for f in text_string_to_metric_families(d.textfile.read_text())}
    assert {"pyoomd_tick_duration_seconds", "pyoomd_detector_group_fired", "pyoomd_kills"} <= families


def test_ready_and_watchdog_arrive_on_the_notify_socket(start, tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(WAIT)
    try:
        d = start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
        got = []
        while not ({"READY=1", "WATCHDOG=1"} <= set(got)):
            got.extend(sock.recv(4096).decode().splitlines())
        assert got.index("READY=1") < got.index("WATCHDOG=1")
        d.stop()
        while "STOPPING=1" not in got:
            got.extend(sock.recv(4096).decode().splitlines())
    finally:
        sock.close()


def test_sighup_with_a_broken_config_keeps_the_old_rules(start):
    d = start(base_config(detector_cgroup="workload"))
    d.wait_for(d.records, "dry kills under the first config")
    d.config.write_text('{"rulesets": [ this is not json')
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: any("SIGHUP: keeping the running config" in line for line in d.lines),
               "the refused reload")
    n = len(d.records())
    d.wait_for(lambda: len(d.records()) > n + 2, "decisions under the old rules")
    d.config.write_text(json.dumps(base_config(detector_cgroup="nothing-here")))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: any("SIGHUP: reloaded" in line for line in d.lines), "the reload")
    d.settle(2)
    n = len(d.records())
    d.settle()
    assert len(d.records()) == n  # the new rules never fire


def test_sigterm_exits_cleanly_between_ticks_and_removes_the_socket(start):
    d = start()
    d.settle(2)
    assert (d.runtime / "oomd-stats.socket").exists()
    assert d.stop() == 0
    assert any("Received signal 15. Exiting!" in line for line in d.lines)
    assert not (d.runtime / "oomd-stats.socket").exists()


def test_compat_head_daemon_runs_a_per_cgroup_ruleset_and_follows_new_cgroups(start):
    config = {"rulesets": [{
        "name": "each",
        "cgroup": "workload/*",
        "post_action_delay": 60,
        "detectors": [["hot", {"name": "pressure_above", "args": {
            "ruleset_cgroup": "/", "resource": "memory", "threshold": 50, "duration": 0}}]],
        "actions": [{"name": "kill_by_pressure",
                     "args": {"ruleset_cgroup": "/", "resource": "memory", "dry": True}}],
    }]}
    d = start(config, extra_args=("--compat", "head"))
    first = d.wait_for(d.records, "the hot cgroup's clone killing it")
    assert first == ["oomd kill: 60.00 40.00 10.00 workload/hog 52428800 ruleset:[each] "
                     "detectorgroup:[hot] killer:(dry)kill_by_pressure v2"]
    # the log goes through a writer thread: the line may reach the pipe after the kill record
    d.wait_for(lambda: any("has fired for Ruleset=each with ruleset cgroup `" in line
                           and line.endswith("/workload/hog`. Running action chain.")
                           for line in d.lines), "the hot clone's fired line")
    faketree.write_tree(d.tree, {"workload/new": faketree.cgroup(20 << 20, mem_pressure=(70.0, 50.0, 1.0))})
    d.wait_for(lambda: len(d.records()) == 2, "the new cgroup's own clone killing it")
    assert d.records()[1].split()[5] == "workload/new"
    # the log goes through a writer thread: the line may reach the pipe after the kill record
    d.wait_for(lambda: any("Adding runnable ruleset for cgroup: " in line
                           and line.endswith("/workload/new") for line in d.lines),
               "the new clone's log line")
