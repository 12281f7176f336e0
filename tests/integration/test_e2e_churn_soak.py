"""The churn soak driver (scripts/churn_soak.py) measures a target and cleans up (issue 7 item 5).

Short runs on a fake tree: a target that leaks an fd every half second fails the soak, a target
that holds still passes it, and neither leaves the tree behind. The 10-minute soak against the
daemon is the script's job, not CI's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from oomd.testing import realcg

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "churn_soak.py"
spec = importlib.util.spec_from_file_location("churn_soak", SCRIPT)
churn_soak = importlib.util.module_from_spec(spec)
spec.loader.exec_module(churn_soak)

SHORT = ["--minutes", "0.05", "--cgroups", "40", "--per-slice", "10", "--pool", "5",
         "--rate", "1200", "--warmup", "1", "--sample-seconds", "0.5"]
LEAKER = ("import time\nfds = []\nwhile True:\n"
          "    fds.append(open('/dev/null'))\n    time.sleep(0.3)\n")
STILL = "import time\ntime.sleep(600)\n"


def run_soak(capsys, tmp_path, *args):
    code = churn_soak.main(["--mode", "fake", "--fake-dir", str(tmp_path), *SHORT, *args])
    out = capsys.readouterr().out
    report = json.loads(out.rsplit("json: ", 1)[1])
    return code, out, report


def test_soak_fails_a_target_that_leaks_fds(capsys, tmp_path):
    code, out, report = run_soak(capsys, tmp_path, "--", sys.executable, "-c", LEAKER)
    assert code == 1
    assert report["fds"]["end"] > report["fds"]["start"]
    assert "FAIL: fd count grew by" in out
    assert report["left_behind"] == [] and os.listdir(tmp_path) == []


def test_soak_passes_a_target_that_holds_still_and_churns_at_the_asked_rate(capsys, tmp_path):
    samples = tmp_path.parent / f"{tmp_path.name}-samples.csv"
    code, out, report = run_soak(capsys, tmp_path, "--samples", str(samples), "--",
                                 sys.executable, "-c", STILL)
    assert code == 0, out
    assert report["fds"]["start"] == report["fds"]["end"]
    assert report["fds"]["late_slope_per_minute"] == 0.0
    rows = samples.read_text().splitlines()
    assert rows[0] == "seconds,fds,rss_kib" and len(rows) >= 4
    assert report["creates"] >= 40 and report["churn_errors"] == 0
    assert not report["target_died"]
    assert report["left_behind"] == [] and os.listdir(tmp_path) == []


def test_soak_fails_when_the_target_logs_a_failed_tick(capsys, tmp_path):
    noisy = ("import time\nprint('[daemon.py:1] tick failed: KeyError: x', flush=True)\n"
             "time.sleep(600)\n")
    code, out, report = run_soak(capsys, tmp_path, "--", sys.executable, "-c", noisy)
    assert code == 1
    assert report["log_findings"] == {"tick failed": 1}


def test_soak_fails_when_the_target_dies(capsys, tmp_path):
    code, out, report = run_soak(capsys, tmp_path, "--", sys.executable, "-c",
                                 "raise SystemExit(3)")
    assert code == 1
    assert report["target_died"] and report["exit_status"] == 3


def test_fake_tree_has_kernel_files_and_a_cgroup_fs_path_that_starts_with_the_mount(tmp_path):
    tree = churn_soak.FakeTree(str(tmp_path))
    try:
        tree.create("a.slice/b.service")
        leaf = Path(tree.tree) / "a.slice" / "b.service"
        assert (leaf / "cgroup.controllers").exists() and (leaf / "memory.pressure").exists()
        assert (leaf.parent / "memory.current").exists()
        mount = realcg.cgroup2_mount()
        if mount:
            assert tree.cgroup_fs.startswith(mount + "/..")
        assert os.path.realpath(tree.cgroup_fs) == os.path.realpath(tree.root)
        tree.remove("a.slice/b.service")
        assert not leaf.exists()
        with pytest.raises(FileExistsError):
            tree.create("a.slice")
    finally:
        assert tree.cleanup() == []


def test_slope_is_zero_for_flat_series_and_per_minute_for_a_ramp():
    assert churn_soak.slope_per_minute([(0, 5), (10, 5), (20, 5)]) == 0.0
    assert churn_soak.slope_per_minute([(0, 0), (30, 1), (60, 2)]) == pytest.approx(2.0)
