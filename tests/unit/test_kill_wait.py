"""A kill is done when it is delivered; the victim's exit is followed after the tick (issue 22),
and refused memory reaping is told from an exited process (issue 20).

The real ``Killer`` runs on a fake cgroup tree with the kernel replaced (``FakeKernel``):
``cgroup.kill`` writes and signals are recorded, pidfds are fds of /dev/null, process_mrelease
answers what the test says, and the clock is the test's. The fake victim stays ``populated 1``
until the test rewrites its ``cgroup.events``: an injected slow exit. With ``background=False``
the waiting is done by explicit ``killer.poll()`` calls; one test runs the waiter thread.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import mock_plugins
from killfakes import kill_engine
from support import FakeClock
from oomd import logs
from oomd.context import OomdContext
from oomd.engine import EngineObserver
from oomd.kill import EMPTY, EXITING, GONE, TIMED_OUT, XATTR_KILL, Killer
from oomd.kmsg import Kmsg
from oomd.stats import Stats
from oomd.testing.faketree import cgroup, kv, update_files, write_proc, write_tree

BIG, SMALL, DECOY = 4242, 4343, 4444


class FakeKernel(Killer):
    """The real kill pipeline with every kernel call replaced by a recorder."""

    def __init__(self, clock: FakeClock, *, refuse_signal=(), mrelease_errno=None, **kw) -> None:
        kw.setdefault("background", False)
        super().__init__(**kw)
        self.clock = clock
        self.refuse_signal = set(refuse_signal)  # pids whose SIGKILL fails with EPERM
        self.mrelease_errno = mrelease_errno
        self.writes: list[str] = []
        self.signalled: list[int] = []
        self.mreleased: list[int] = []
        self._pid_of: dict[int, int] = {}

    def _now(self) -> float:
        return self.clock.now

    def _pidfd_open(self, pid: int) -> int:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self._pid_of[fd] = pid
        return fd

    def _signal(self, pidfd: int, sig: int) -> None:
        pid = self._pid_of[pidfd]
        if pid in self.refuse_signal:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        self.signalled.append(pid)

    def _mrelease(self, pidfd: int) -> None:
        if self.mrelease_errno is not None:
            raise OSError(self.mrelease_errno, os.strerror(self.mrelease_errno))
        self.mreleased.append(self._pid_of[pidfd])

    def _write_kill(self, dir_fd: int) -> None:
        self.writes.append(os.readlink(f"/proc/self/fd/{dir_fd}"))


class RecordingObserver(EngineObserver):
    def __init__(self) -> None:
        self.kills: list[tuple[str, str, str]] = []
        self.events: list[tuple[str, str, str, float | None]] = []

    def kill(self, ruleset, plugin, outcome, fire_to_kill_seconds) -> None:
        self.kills.append((ruleset, plugin, outcome))

    def kill_event(self, ruleset, plugin, event, seconds) -> None:
        self.events.append((ruleset, plugin, event, seconds))


def events(populated: int) -> dict:
    return {"cgroup.events": kv({"populated": populated, "frozen": 0})}


def tree(tmp_path: Path, *, cgroup_kill: bool = True) -> Path:
    extra = {"cgroup.kill": ""} if cgroup_kill else {}
    return write_tree(tmp_path / "cg", {
        "": cgroup(),
        "workload": cgroup(mem_pressure=(60, 60, 60)),
        "workload/big": cgroup(mem_pressure=(50, 50, 50), procs=[BIG], extra=extra),
        "workload/small": cgroup(mem_pressure=(20, 20, 20), procs=[SMALL], extra=extra),
        "system": cgroup(),
        "system/decoy": cgroup(mem_pressure=(90, 90, 90), procs=[DECOY], extra=extra),
    })


class Scenario:
    """kill_by_pressure over ``workload/*`` (big ranks first, then small; the decoy outside),
    the ruleset re-arming after one second, a killer with the kernel faked."""

    def __init__(self, tmp_path: Path, *, cgroup_kill: bool = True, args=None, **kernel) -> None:
        self.root = tree(tmp_path, cgroup_kill=cgroup_kill)
        self.clock = FakeClock()
        self.stats = Stats()
        self.killer = FakeKernel(self.clock, use_cgroup_kill=cgroup_kill, **kernel)
        self.ctx = OomdContext(str(self.root), proc_root=str(write_proc(tmp_path / "proc")),
                               cache_files=False, stats=self.stats)
        self.kmsg_path = tmp_path / "kmsg"
        self.ctx.kmsg = Kmsg(str(self.kmsg_path))
        config = {"rulesets": [{
            "name": "rs", "post_action_delay": "1",
            "detectors": [["dg", {"name": "continue"}]],
            "actions": [{"name": "kill_by_pressure", "args": {
                "cgroup": "workload/*", "resource": "memory", **(args or {})}},
                {"name": "mock", "args": {"id": "after"}}]}]}
        self.engine = kill_engine(config, killer=self.killer, clock=self.clock, stats=self.stats,
                                  cgroup_fs=str(self.root))
        self.observer = RecordingObserver()
        self.engine.observer = self.observer

    def tick(self) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        return logs.messages(lines)

    def poll(self, after: float = 0.0) -> list[str]:
        self.clock.advance(after)
        with logs.capture() as lines:
            self.killer.poll()
        return logs.messages(lines)

    def exit(self, rel: str) -> None:
        update_files(self.root, {rel: events(0)})

    def path(self, rel: str) -> str:
        return str(self.root / rel)

    @property
    def records(self) -> list[str]:
        return [r.split()[5] for r in self.kmsg_path.read_text().splitlines()]

    def close(self) -> None:
        self.killer.close()
        self.ctx.kmsg.close()
        self.ctx.close()


@pytest.fixture
def scenario(tmp_path):
    made = []

    def make(**kw) -> Scenario:
        s = Scenario(tmp_path, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# -- issue 22: delivered is done; the exit is followed after the tick ----------------------------

def test_slow_exit_is_one_kill_recorded_at_once_and_the_wait_is_reported(scenario):
    s = scenario()
    msgs = s.tick()

    assert s.killer.writes == [s.path("workload/big")]  # cgroup.kill of big only
    assert s.records == ["workload/big"]                # its record, in the same tick
    assert s.stats.get("oomd.kills") == 1
    assert s.observer.kills == [("rs", "kill_by_pressure", "killed")]
    assert not any("next candidate" in m or "Failed to kill" in m for m in msgs)
    assert mock_plugins.RUNS["after"] == 0              # STOP: the chain ended with the kill
    (outcome,) = s.killer.in_progress()
    assert outcome.state == EXITING and outcome.abspath == s.path("workload/big")

    assert s.poll() == [f"Reaping processes in {s.path('workload/big')}",
                        "Reaped 1 processes in 0ms"]
    assert s.poll(after=4.0) == []                      # still populated 1: still waiting
    s.exit("workload/big")
    msgs = s.poll(after=3.0)

    assert msgs == [f"{s.path('workload/big')} is empty 7000ms after the kill"]
    assert outcome.state == EMPTY and outcome.time_to_empty == pytest.approx(7.0)
    assert s.killer.in_progress() == [] and s.killer.recent() == [outcome]
    assert s.observer.events == [("rs", "kill_by_pressure", "empty", pytest.approx(7.0))]
    assert s.killer.writes == [s.path("workload/big")]  # and still nothing else was killed


def test_victim_still_exiting_when_the_ruleset_fires_again_is_skipped(scenario):
    s = scenario()
    s.tick()
    s.clock.advance(2)                                   # past the ruleset's post_action_delay
    s.poll()
    msgs = s.tick()

    assert s.killer.writes == [s.path("workload/big")]  # neither big again nor small instead
    assert s.records == ["workload/big"]
    assert any(m.startswith('Not killing "workload/big": the kill of '
                            f'{s.path("workload/big")} is still in progress (delivered at ')
               and m.endswith("nothing is killed in its place") for m in msgs)
    assert not any(m.startswith("Picked ") for m in msgs)
    assert s.observer.kills[-1] == ("rs", "kill_by_pressure", "in_progress")
    assert mock_plugins.RUNS["after"] == 0               # the chain stops, as after a kill
    assert s.stats.get("oomd.kills") == 1


def test_once_the_victim_is_empty_it_is_skipped_and_the_next_is_killed(scenario):
    s = scenario()
    s.tick()
    s.exit("workload/big")
    s.poll(after=0.5)
    s.clock.advance(2)
    s.tick()

    assert s.killer.writes == [s.path("workload/big"), s.path("workload/small")]
    assert s.records == ["workload/big", "workload/small"]


def test_bound_passes_warned_counted_and_the_cgroup_can_be_chosen_again(scenario):
    s = scenario(args={"exit_timeout": "10"}, mrelease_errno=errno.ESRCH)
    s.tick()
    s.poll()
    assert s.poll(after=9.9) == []
    msgs = s.poll(after=0.2)

    (outcome,) = s.killer.recent()
    assert outcome.state == TIMED_OUT and outcome.exit_timeout == 10
    assert msgs == [f"{s.path('workload/big')} is still populated 10100ms after the kill "
                    "(exit_timeout 10s): its processes may be in uninterruptible sleep, or "
                    "beyond pyoomd's permissions; it may be chosen again"]
    assert s.killer.stats.exit_timeouts == 1
    assert s.stats.get("pyoomd.kill_exit_timeouts") == 1
    assert s.observer.events == [("rs", "kill_by_pressure", "exit_timeout", pytest.approx(10.1))]

    s.tick()
    assert s.killer.writes == [s.path("workload/big")] * 2  # killed again, not small


def test_kill_in_progress_holds_past_only_until_its_bound(scenario):
    """Even if nobody polled (a stuck waiter), a kill holds nothing once its bound passed."""
    s = scenario(args={"exit_timeout": "3"})
    s.tick()
    assert s.killer.holding(s.path("workload/big")) is not None
    s.clock.advance(3)
    assert s.killer.holding(s.path("workload/big")) is None


def test_undeliverable_kill_moves_on_to_the_next_candidate(scenario):
    """No cgroup.kill and EPERM on every member of big: nothing was delivered, so small (the
    next candidate) is killed in the same run and is the only record."""
    s = scenario(cgroup_kill=False, refuse_signal={BIG})
    msgs = s.tick()

    assert s.killer.signalled == [SMALL]
    assert f"Killed 0: {BIG}[E{errno.EPERM}]" in msgs
    assert f"Failed to kill cgroup {s.path('workload/big')}: no process killed" in msgs
    assert s.records == ["workload/small"]
    assert [o.abspath for o in s.killer.in_progress()] == [s.path("workload/small")]
    assert s.observer.kills == [("rs", "kill_by_pressure", "failed"),
                                ("rs", "kill_by_pressure", "killed")]


def test_failing_cgroup_kill_write_falls_back_to_pidfds(scenario):
    s = scenario()

    def refuse(dir_fd):
        raise PermissionError(errno.EACCES, "Permission denied")

    s.killer._write_kill = refuse
    msgs = s.tick()

    assert s.killer.signalled == [BIG]
    assert any(m.startswith(f"Writing cgroup.kill of {s.path('workload/big')} failed: "
                            "Permission denied; signalling") for m in msgs)
    assert s.records == ["workload/big"]


def test_without_cgroup_kill_newcomers_are_signalled_while_waiting(scenario):
    s = scenario(cgroup_kill=False)
    s.tick()
    assert s.killer.signalled == [BIG]
    update_files(s.root, {"workload/big": {"cgroup.procs": f"{BIG}\n5555\n"}})
    msgs = s.poll(after=0.05)

    assert "Killed 1: 5555" in msgs
    assert s.killer.signalled == [BIG, BIG, 5555]       # the dying one again, the newcomer once
    s.exit("workload/big")
    s.poll(after=0.05)
    (outcome,) = s.killer.recent()
    assert outcome.state == EMPTY and outcome.killed == 2 and outcome.pids == [BIG, 5555]
    try:
        assert os.getxattr(s.path("workload/big"), XATTR_KILL) == b"2"
    except OSError as e:  # pragma: no cover - depends on the test file system
        pytest.skip(f"no trusted xattrs here: {e.strerror}")


def test_memory_is_reaped_by_the_waiter_not_in_the_tick(scenario):
    s = scenario()
    s.tick()
    assert s.killer.mreleased == []                      # the tick only delivered
    msgs = s.poll()
    assert s.killer.mreleased == [BIG]
    assert f"Reaping processes in {s.path('workload/big')}" in msgs
    assert s.killer.in_progress()[0].reaped == 1


def test_removed_victim_ends_the_wait(scenario):
    s = scenario()
    s.tick()
    for name in os.listdir(s.path("workload/big")):
        os.unlink(os.path.join(s.path("workload/big"), name))
    os.rmdir(s.path("workload/big"))
    msgs = s.poll(after=1.5)
    (outcome,) = s.killer.recent()
    assert outcome.state == GONE and outcome.time_to_empty == pytest.approx(1.5)
    assert msgs[-1] == f"{s.path('workload/big')} was removed 1500ms after the kill"


def test_holding_covers_descendants_and_ancestors_not_a_recreated_cgroup(scenario):
    s = scenario()
    s.tick()
    big = s.path("workload/big")
    (outcome,) = s.killer.in_progress()
    assert s.killer.holding(big, outcome.cgroup_id) is outcome
    assert s.killer.holding(big + "/child") is outcome
    assert s.killer.holding(s.path("workload")) is outcome
    assert s.killer.holding(s.path("workload/bigger")) is None
    assert s.killer.holding(s.path("workload/small")) is None
    assert s.killer.holding(big, outcome.cgroup_id + 1) is None  # same name, new inode


def test_outcome_is_found_by_its_kill_uuid_and_describes_itself(scenario):
    s = scenario()
    s.tick()
    uuid = os.getxattr(s.path("workload/big"), "trusted.oomd_kill_uuid").decode()
    outcome = s.killer.find(uuid)
    assert outcome is not None and outcome.kill_uuid == uuid
    assert outcome.describe().endswith("(cgroup.kill, 1 processes); still exiting")
    s.exit("workload/big")
    s.poll(after=1.25)
    assert outcome.describe().endswith("(cgroup.kill, 1 processes); empty at +1.250s")


def test_the_waiter_thread_follows_the_exit_without_polls(tmp_path):
    root = tree(tmp_path)
    killer = Killer(background=True)
    killer._write_kill = lambda dir_fd: update_files(root, {"workload/big": events(0)})
    killer._pidfd_open = lambda pid: os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    killer._mrelease = lambda pidfd: None
    try:
        result = killer.kill(str(root / "workload/big"))
        assert result.success
        assert result.outcome.wait(5)
        assert result.outcome.state == EMPTY
    finally:
        killer.close()


def test_exit_timeout_must_be_positive(tmp_path):
    from oomd.errors import ConfigError

    with pytest.raises(ConfigError, match="exit_timeout"):
        kill_engine({"rulesets": [{"name": "rs", "detectors": [["dg", {"name": "continue"}]],
                                   "actions": [{"name": "kill_by_pressure", "args": {
                                       "cgroup": "*", "resource": "memory",
                                       "exit_timeout": "0"}}]}]})


# -- issue 20: process_mrelease refused is not an exited process ---------------------------------

def test_refused_reaping_is_logged_once_and_counted(scenario):
    """As under a seccomp filter without process_mrelease (EPERM): every refusal counts, the
    log says it once, with the likely cause."""
    s = scenario(mrelease_errno=errno.EPERM)
    s.tick()
    first = s.poll()
    s.exit("workload/big")
    s.poll(after=0.1)
    s.clock.advance(2)
    s.tick()                                             # small, the next kill
    second = s.poll()

    refusals = [m for m in first + second if "process_mrelease refused" in m]
    assert len(refusals) == 1
    assert refusals[0].startswith(f"process_mrelease refused with EPERM ({s.path('workload/big')}"
                                  "): a seccomp filter refuses the call (systemd's "
                                  "SystemCallFilter=@system-service lacks process_mrelease")
    assert "Reaped 0 processes in 0ms" in first and "Reaped 0 processes in 0ms" in second
    assert s.killer.stats.reap_refused == 2
    assert s.stats.get("pyoomd.reap_refused") == 2
    assert [e[2] for e in s.observer.events].count("reap_refused") == 2


@pytest.mark.parametrize("err", [errno.ESRCH, errno.EINVAL])
def test_reaping_an_exited_process_is_silent_and_not_counted(scenario, err):
    s = scenario(mrelease_errno=err)
    s.tick()
    msgs = s.poll()
    assert not any("refused" in m for m in msgs)
    assert s.killer.stats.reap_refused == 0 and s.stats.get("pyoomd.reap_refused") is None


def test_enosys_names_the_kernel_as_the_likely_cause(scenario):
    s = scenario(mrelease_errno=errno.ENOSYS)
    s.tick()
    (line,) = [m for m in s.poll() if "refused" in m]
    assert "with ENOSYS" in line and "Linux < 5.15" in line
    assert json.dumps(s.stats.get_all())  # the stats map stays serialisable for pyoomd -d
