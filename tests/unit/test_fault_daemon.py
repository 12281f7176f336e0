"""Faults around the daemon process: the kmsg file, the runtime directory, a tree full of bad
files (issue 7 item 4). Each test runs ``python -m oomd`` on a fake tree (dry-run, a few ticks
of 50 ms) and looks at its exit status, its log and its kill records.

oomd's rules, which pyoomd keeps: a kmsg file or runtime directory that cannot be opened at
start-up ends the daemon with status 1 and oomd's message; once running, a kill record that
cannot be written is logged and the loop goes on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oomd.testing import realcg
from oomd.testing.faketree import cgroup, psi, write_tree

REPO = Path(__file__).resolve().parents[2]
MOUNT = realcg.cgroup2_mount()
pytestmark = pytest.mark.skipif(
    MOUNT is None, reason="pyoomd checks that --cgroup-fs starts with the cgroup2 mount: none here")

HOG = "workload.slice/hog.service"
CONFIG = """{"rulesets": [{
  "name": "pressure",
  "detectors": [["hog under pressure", {"name": "pressure_above", "args": {
      "cgroup": "workload.slice/hog.service", "resource": "memory",
      "threshold": "50", "duration": "0"}}]],
  "actions": [{"name": "kill_by_pressure", "args": {"cgroup": "workload.slice/*",
                                                    "resource": "memory"}}],
  "post_action_delay": "0"
}]}"""
FAILURES = ("tick failed", "Traceback")


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "cg"
        write_tree(self.root, {
            "": cgroup(current=None),
            "workload.slice": cgroup(mem_pressure=(50.0, 50.0, 50.0)),
            HOG: cgroup(64 << 20, mem_pressure=psi(some=(90, 90, 90), full=(90, 90, 90))),
            "workload.slice/decoy.service": cgroup(64 << 20, mem_pressure=(1.0, 1.0, 1.0)),
        })
        self.config = tmp_path / "pyoomd.json"
        self.config.write_text(CONFIG)
        self.kmsg = tmp_path / "kmsg"
        self.runtime = tmp_path / "run"
        depth = len([c for c in MOUNT.split("/") if c])
        self.cgroup_fs = MOUNT + "/.." * depth + str(self.root)

    def argv(self, ticks: int, **over) -> list[str]:
        opts = {"--kmsg-override": str(self.kmsg), "--runtime-dir": str(self.runtime)}
        opts.update(over)
        argv = [sys.executable, "-m", "oomd", "--config", str(self.config), "--interval", "0.05",
                "--max-ticks", str(ticks), "--cgroup-fs", self.cgroup_fs, "--dry-run",
                "--no-protect"]
        for k, v in opts.items():
            argv += [k, v]
        return argv

    def run(self, ticks: int = 5, **over) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(ticks, **over), cwd=REPO, capture_output=True, text=True,
                              timeout=120)

    def records(self) -> list[str]:
        return self.kmsg.read_text().splitlines() if self.kmsg.exists() else []


@pytest.fixture
def setup(tmp_path):
    return Setup(tmp_path)


def test_healthy_tree_gives_one_dry_kill_record_per_tick(setup):
    done = setup.run(ticks=3)
    assert done.returncode == 0, done.stderr[-2000:]
    records = setup.records()
    assert len(records) == 3
    assert all(f" {HOG} " in r and r.endswith("killer:(dry)kill_by_pressure v2") for r in records)


def test_kill_record_that_cannot_be_written_is_logged_and_the_loop_goes_on(setup):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full to make every write fail with ENOSPC")
    done = setup.run(ticks=4, **{"--kmsg-override": "/dev/full"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("Unable to write log to output file") == 4
    assert done.stderr.count("killer:(dry)kill_by_pressure v2") == 4  # still logged
    assert not any(f in done.stderr for f in FAILURES)


def test_kmsg_file_that_cannot_be_opened_ends_start_up_with_status_1(setup):
    done = setup.run(**{"--kmsg-override": str(setup.tmp / "no" / "such" / "dir" / "kmsg")})
    assert done.returncode == 1
    assert "Unable to open outfile" in done.stderr


def test_runtime_dir_that_cannot_be_made_ends_start_up_with_status_1(setup):
    blocker = setup.tmp / "a-file"
    blocker.write_text("")
    done = setup.run(**{"--runtime-dir": str(blocker / "run")})
    assert done.returncode == 1
    assert "Failed to open lock file=" in done.stderr


def test_runtime_dir_removed_while_running_does_not_stop_the_loop(setup):
    proc = subprocess.Popen(setup.argv(ticks=60), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "Running pyoomd" in line or time.monotonic() > deadline:
                break
        shutil.rmtree(setup.runtime)
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    assert not any(f in rest for f in FAILURES)
    assert len(setup.records()) == 60


def test_tree_full_of_bad_files_ticks_on_and_kills_nothing(setup):
    hog = setup.root / HOG
    (hog / "memory.pressure").write_text("full avg10=garbage\n")
    (hog / "memory.current").write_text("\x00\xff\n")
    (hog / "cgroup.events").unlink()
    (hog / "cgroup.events").mkdir()
    (hog / "memory.stat").write_text("anon\n")
    os.mkfifo(hog / "io.pressure")
    (setup.root / "workload.slice" / "memory.pressure").write_text("")
    done = setup.run(ticks=10)
    assert done.returncode == 0, done.stderr[-2000:]
    assert setup.records() == []
    assert not any(f in done.stderr for f in FAILURES)
    assert "memory.pressure: malformed" in done.stderr


def test_metrics_survive_a_cgroup_going_away_and_count_reads_by_reason(setup):
    """The context's level counters (rows, open fds) go down when a cgroup is removed; they
    once reached Prometheus counters as negative increments and ended the daemon."""
    prom = setup.tmp / "pyoomd.prom"
    proc = subprocess.Popen(setup.argv(ticks=40) + ["--metrics-textfile", str(prom)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "Running pyoomd" in line:
                break
        time.sleep(0.3)
        shutil.rmtree(setup.root / "workload.slice" / "decoy.service")
        rest = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, rest[-2000:]
    assert "metrics failed" not in rest and not any(f in rest for f in FAILURES)
    text = prom.read_text()
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values["pyoomd_cgroup_files_read_total"] > 0
    assert values["pyoomd_cgroups_monitored"] > 0
    reasons = {k for k in values if k.startswith("pyoomd_cgroup_file_read_errors_total{")}
    assert reasons <= {f'pyoomd_cgroup_file_read_errors_total{{reason="{r}"}}'
                       for r in ("vanished", "unreadable", "malformed", "missing")}
