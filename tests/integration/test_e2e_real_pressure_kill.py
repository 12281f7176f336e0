"""End to end on the real kernel: the pyoomd daemon kills a thrashing hog, not its neighbour
(issue 7 item 1; systemd's TEST-55 does the same for systemd-oomd).

``realcg.run_pressure_kill`` starts ``python -m oomd`` with pressure_above (threshold 10,
duration 1) on a test cgroup and kill_by_pressure over its children, then a hog that thrashes in
a 64 MiB v1 memcg and a sleeping bystander beside it. One run here; ``scripts/e2e_repeat.py``
runs it 20 times and reports the pass count and the detection-to-kill times.
"""

from __future__ import annotations

import signal

import pytest

from oomd.testing import realcg

_why = realcg.skip_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"real cgroups: {_why}")


@pytest.fixture(scope="module")
def run():
    return realcg.run_pressure_kill()


def test_daemon_empties_the_hogs_cgroup(run, record_property):
    record_property("detection_to_kill_s", run.detection_to_kill)
    record_property("pressure_to_kill_s", run.pressure_to_kill)
    assert run.t_empty is not None, run.daemon_log[-20:]
    assert run.hog_returncode == -signal.SIGKILL
    assert any(f" {run.hog_pid}(" in line for line in run.log_lines("Killed "))


def test_daemon_fires_on_the_hogs_pressure_before_the_kill(run):
    assert run.t_fired is not None and run.t_over_threshold is not None
    assert run.t_hog_started <= run.t_fired <= run.t_empty
    assert run.log_lines("10s pressure ") and run.log_lines(f'Picked "{run.hog_cgroup}"')


def test_bystander_survives(run):
    assert run.bystander_alive_at_end


def test_kill_record_goes_to_kmsg_once(run):
    (record,) = run.kmsg
    fields = record.split()
    assert fields[:2] == ["oomd", "kill:"]
    assert all(float(f) > 0 for f in fields[2:4])  # memory PSI avg10 and avg60 of the victim
    assert fields[5] == run.hog_cgroup
    assert record.endswith("ruleset:[memory pressure] detectorgroup:[workload under pressure] "
                           "killer:kill_by_pressure v2")


def test_kill_xattrs_are_written_on_the_victim(run):
    assert run.xattrs["trusted.oomd_ooms"] == b"1"
    assert int(run.xattrs["trusted.oomd_kill"]) >= 1
    assert len(run.xattrs["trusted.oomd_kill_uuid"]) >= 2


def test_no_kernel_oom_kill_in_the_tests_memcgs(run, record_property):
    record_property("host_oom_kill_delta", run.host_oom_kill_delta)
    assert run.memcg_oom_kills and not any(run.memcg_oom_kills.values())


def test_daemon_keeps_running_and_exits_cleanly_on_sigterm(run):
    assert run.daemon_alive_at_end and run.daemon_exit == 0
    assert not run.log_lines("tick failed") and not run.log_lines("Traceback")


def test_run_has_no_problems(run):
    assert run.problems() == []


def test_flight_recorder_file_explains_the_kill(run, tmp_path):
    """Explain on the flight recorder's file of this run: it names the hog, the pressure that
    fired, and shows the bystander as a candidate that lost on pressure (issue 16)."""
    import json
    import re

    from oomd import explain, report

    (name,) = [n for n in run.flight_files if n.endswith(".pyoomdrec")]
    path = tmp_path / name
    path.write_bytes(run.flight_files[name])
    (record,) = report.load_records(str(path))
    assert record["victim"] == run.hog_cgroup and record["outcome"] == "killed"
    parent = run.hog_cgroup.rsplit("/", 1)[0]
    bystander = f"{parent}/bystander"
    verdict = explain.render(record).splitlines()[0]
    m = re.match(rf'killed "{re.escape(run.hog_cgroup)}" because ruleset "memory pressure" '
                 rf"fired \(memory pressure \(full avg10\) of {re.escape(parent)} "
                 rf"([0-9.]+)% > 10% for ([0-9.]+) s\)", verdict)
    assert m, verdict
    assert float(m.group(1)) > 10 and float(m.group(2)) >= 1
    (group,) = record["detectors"]
    (det,) = group["detectors"]
    assert det["value"] == float(m.group(1)) and det["fired"]
    (ps,) = record["peer_sets"]
    assert ps["names"] == [run.hog_cgroup, bystander]
    assert ps["decided_by"] == [None, "pressure"]
    hog_key, bystander_key = ps["components"]["pressure"]
    assert explain.why_not(record, bystander) == (
        f'lost to "{run.hog_cgroup}" on pressure ({bystander_key}% < {hog_key}%)')
    # the history shows the detector's values over its duration, the last tick the firing one
    assert record["history"][-1]["groups"][0]["fired"] is True
    assert json.loads(json.dumps(record)) == record
