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
