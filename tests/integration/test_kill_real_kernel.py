"""The kill pipeline on the real kernel: real cgroups under the cgroup2 mount, real processes.

Every test makes its own cgroups and processes (``CgroupSandbox``) and removes them even when it
fails; without root or cgroup2 the module is skipped with the reason.
"""

from __future__ import annotations

import os
import time

import pytest

from cgsandbox import CgroupSandbox, why_no_sandbox
from oomd import logs
from oomd.kill import EMPTY, TIMED_OUT, XATTR_KILL, XATTR_KILL_UUID, XATTR_OOMS, Killer
from oomd.testing import realcg

_why = why_no_sandbox()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"real cgroup2 kill tests: {_why}")

SHELL_WITH_CHILDREN = ("sh", "-c", "sleep 1000 & sleep 1000 & wait")


@pytest.fixture
def sandbox():
    box = CgroupSandbox()
    try:
        yield box
    finally:
        box.close()


def _has_cgroup_kill(box: CgroupSandbox) -> bool:
    return (box.root / "cgroup.kill").exists()


def _wait_procs(cg, n: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = CgroupSandbox.procs_of(cg)
        if len(pids) >= n:
            return pids
        time.sleep(0.01)
    raise AssertionError(f"{cg} never had {n} processes")


@pytest.fixture(params=["cgroup.kill", "pidfd"])
def killer(request, sandbox):
    if request.param == "cgroup.kill" and not _has_cgroup_kill(sandbox):
        pytest.skip("this kernel has no cgroup.kill")
    return Killer(use_cgroup_kill=request.param == "cgroup.kill")


def test_kill_empties_victim_with_descendants_and_spares_bystander(sandbox, killer):
    victim = sandbox.mkcg("victim")
    child = sandbox.mkcg("victim/child")
    bystander_cg = sandbox.mkcg("bystander")
    top = sandbox.spawn(victim)
    forking = sandbox.spawn(child, SHELL_WITH_CHILDREN)
    bystander = sandbox.spawn(bystander_cg)
    _wait_procs(child, 3)

    result = killer.kill(str(victim), reap_memory=True)

    assert result.success  # delivered; the exit is followed by the killer's waiter thread
    assert result.outcome.wait(5) and result.outcome.state == EMPTY
    assert 0 <= result.outcome.time_to_empty < 5
    assert result.killed == 4
    assert sandbox.wait_dead(top) and sandbox.wait_dead(forking)
    assert CgroupSandbox.procs_of(victim) == [] and CgroupSandbox.procs_of(child) == []
    assert sandbox.alive(bystander)


def test_kill_writes_oomd_xattrs(sandbox, killer):
    victim = sandbox.mkcg("victim")
    os.setxattr(victim, XATTR_OOMS, b"4")
    sandbox.spawn(victim)
    sandbox.spawn(victim)
    _wait_procs(victim, 2)

    with logs.capture() as lines:
        result = killer.kill(str(victim), kill_uuid="abc123")

    assert result.success
    assert os.getxattr(victim, XATTR_KILL_UUID) == b"abc123"
    assert os.getxattr(victim, XATTR_OOMS) == b"5"
    assert os.getxattr(victim, XATTR_KILL) == b"2"
    msgs = logs.messages(lines)
    assert msgs[0] == f"Trying to kill {victim}"
    assert f"Set xattr {XATTR_OOMS}=5 on {victim}" in msgs
    assert f"Set xattr {XATTR_KILL}=2 on {victim}" in msgs
    assert any(m.startswith("Killed 2: ") and "(sleep)" in m for m in msgs)


def test_kill_of_empty_cgroup_fails(sandbox, killer):
    victim = sandbox.mkcg("victim")
    result = killer.kill(str(victim))
    assert not result.success and result.killed == 0


def test_kill_through_stale_dir_fd_of_recreated_cgroup_kills_nothing(sandbox, killer):
    """The cgroup was removed and a new one made under the same name after the choice: the old
    directory fd pins the old (dead) cgroup, so the new one's processes are left alone."""
    victim = sandbox.mkcg("victim")
    fd = os.open(victim, os.O_RDONLY | os.O_DIRECTORY)
    try:
        victim.rmdir()
        victim.mkdir()
        newcomer = sandbox.spawn(victim)
        _wait_procs(victim, 1)
        result = killer.kill(str(victim), fd)
    finally:
        os.close(fd)
    assert not result.success
    assert sandbox.alive(newcomer)


class _MoveOutAfterSnapshot(Killer):
    """Moves a process out of the victim right after the killer first reads the victim's pids,
    as another agent might between oomd's read of cgroup.procs and its kill()."""

    def __init__(self, move, **kw) -> None:
        super().__init__(**kw)
        self._move = move

    def subtree_pids(self, dir_fd, where=""):
        pids = super().subtree_pids(dir_fd, where)
        if self._move is not None:
            self._move()
            self._move = None
        return pids


@pytest.mark.parametrize("use_cgroup_kill", [True, False], ids=["cgroup.kill", "pidfd"])
def test_process_moved_out_between_choice_and_kill_survives(sandbox, use_cgroup_kill):
    if use_cgroup_kill and not _has_cgroup_kill(sandbox):
        pytest.skip("this kernel has no cgroup.kill")
    victim = sandbox.mkcg("victim")
    elsewhere = sandbox.mkcg("elsewhere")
    stays = sandbox.spawn(victim)
    leaves = sandbox.spawn(victim)
    _wait_procs(victim, 2)

    killer = _MoveOutAfterSnapshot(lambda: CgroupSandbox.move(leaves.pid, elsewhere),
                                   use_cgroup_kill=use_cgroup_kill)
    result = killer.kill(str(victim))

    assert result.success
    assert sandbox.wait_dead(stays)
    assert sandbox.alive(leaves)
    assert leaves.pid not in result.pids


class _StaleSnapshot(Killer):
    """Returns, on its first read, the victim's pids as they were before one of them exited and
    its pid was taken by a process outside the cgroup."""

    def __init__(self, stale: list[int], **kw) -> None:
        super().__init__(**kw)
        self._stale = stale

    def subtree_pids(self, dir_fd, where=""):
        if self._stale is not None:
            pids, self._stale = self._stale, None
            return pids
        return super().subtree_pids(dir_fd, where)


def test_recycled_pid_outside_victim_is_never_signalled(sandbox):
    victim = sandbox.mkcg("victim")
    member = sandbox.spawn(victim)
    exits = sandbox.spawn(victim)
    _wait_procs(victim, 2)
    recycled = exits.pid
    exits.kill()
    exits.wait()
    reuser = sandbox.spawn_with_pid(recycled)
    if reuser is None:
        pytest.skip(f"could not get pid {recycled} reused (busy machine)")
    assert reuser.pid == recycled and recycled not in CgroupSandbox.procs_of(victim)

    killer = _StaleSnapshot([member.pid, recycled], use_cgroup_kill=False)
    result = killer.kill(str(victim))

    assert result.success
    assert sandbox.wait_dead(member)
    assert sandbox.alive(reuser)
    assert result.pids == [member.pid]
    assert killer.stats.stale_pids == 1


def test_processes_that_do_not_die_in_time_are_reported_when_the_bound_passes(sandbox):
    """A delivered kill is a kill even if its processes do not die: the wait for the exit ends
    at the bound, logged and counted, and the cgroup is held until then."""
    victim = sandbox.mkcg("victim")
    sandbox.spawn(victim)
    _wait_procs(victim, 1)

    class NeverSignals(Killer):
        def _signal(self, pidfd, sig):
            return None  # pretend the signal was sent; the process lives on

    killer = NeverSignals(use_cgroup_kill=False, exit_timeout=0.3)
    with logs.capture() as lines:
        result = killer.kill(str(victim))
        assert result.success and killer.holding(str(victim)) is result.outcome
        assert result.outcome.wait(5)

    assert result.outcome.state == TIMED_OUT and 0.3 <= result.outcome.seconds < 2
    assert killer.holding(str(victim)) is None
    assert killer.stats.exit_timeouts == 1
    assert any("is still populated" in m and "exit_timeout 0.3s" in m
               for m in logs.messages(lines))
    assert CgroupSandbox.procs_of(victim) != []


# -- a kill plugin end to end: engine, real OomdContext on the cgroup2 mount, real Killer ------

def test_kill_plugin_kills_chosen_cgroup_with_descendants_and_records_it(sandbox, tmp_path):
    import re

    from killfakes import kill_engine
    from support import FakeClock
    from oomd.context import OomdContext
    from oomd.kmsg import Kmsg
    from oomd.stats import Stats

    victim = sandbox.mkcg("victim")
    nested = sandbox.mkcg("victim/nested")
    bystander_cg = sandbox.mkcg("bystander")
    top = sandbox.spawn(victim)
    forking = sandbox.spawn(nested, SHELL_WITH_CHILDREN)
    bystander = sandbox.spawn(bystander_cg)
    _wait_procs(nested, 3)
    # no memory controller here: every key ties, so the prefer xattr decides
    os.setxattr(victim, "trusted.oomd_prefer", b"")

    stats = Stats()
    ctx = OomdContext(str(sandbox.mount), stats=stats)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    base = sandbox.relpath(sandbox.root)
    config = {"rulesets": [{"name": "rs", "detectors": [["dg", {"name": "continue"}]],
                            "actions": [{"name": "kill_by_pressure",
                                         "args": {"cgroup": f"{base}/*", "resource": "memory"}}]}]}
    engine = kill_engine(config, killer=None, clock=FakeClock(), stats=stats,
                         cgroup_fs=str(sandbox.mount))
    with logs.capture() as lines:
        engine.tick(ctx)
    ctx.kmsg.close()

    assert sandbox.wait_dead(top) and sandbox.wait_dead(forking)
    # the kill is delivered in the tick; the exit finishes after it (the killer follows it)
    assert realcg.wait_for(lambda: CgroupSandbox.procs_of(victim) == []
                           and CgroupSandbox.procs_of(nested) == [], 5.0, 0.01)
    assert sandbox.alive(bystander)
    assert os.getxattr(victim, XATTR_OOMS) == b"1"
    assert os.getxattr(victim, XATTR_KILL) == b"4"
    assert len(os.getxattr(victim, XATTR_KILL_UUID)) >= 2
    (record,) = (tmp_path / "kmsg").read_text().splitlines()
    assert re.fullmatch(rf"oomd kill: \d+\.\d\d \d+\.\d\d \d+\.\d\d {re.escape(base)}/victim 0 "
                        r"ruleset:\[rs\] detectorgroup:\[dg\] killer:kill_by_pressure v2", record)
    assert stats.get("oomd.kills") == 1
    msgs = logs.messages(lines)
    assert any(m.startswith(f'Picked "{base}/victim" (0MB) based on pressure generation at')
               for m in msgs)


def test_kernelkill_freezes_kills_the_subtree_and_leaves_it_thawed(sandbox):
    """oomd HEAD's ``kernelkill``: cgroup.freeze, then cgroup.kill; pyoomd thaws afterwards."""
    if not _has_cgroup_kill(sandbox) or not (sandbox.root / "cgroup.freeze").exists():
        pytest.skip("this kernel has no cgroup.kill or cgroup.freeze")
    victim = sandbox.mkcg("victim")
    child = sandbox.mkcg("victim/child")
    bystander_cg = sandbox.mkcg("bystander")
    top = sandbox.spawn(victim)
    forking = sandbox.spawn(child, SHELL_WITH_CHILDREN)
    bystander = sandbox.spawn(bystander_cg)
    _wait_procs(child, 3)

    with logs.capture() as lines:
        result = Killer().kill(str(victim), reap_memory=True, kernel_kill=True)

    assert result.success and result.method == "cgroup.kill" and result.outcome.wait(10)
    assert sandbox.wait_dead(top) and sandbox.wait_dead(forking)
    assert sandbox.alive(bystander)
    assert (victim / "cgroup.freeze").read_text().strip() == "0"
    assert logs.messages(lines)[0] == f"Trying to kill {victim} with cgroup.freeze and cgroup.kill"


# -- process_mrelease refused by a real seccomp filter (issue 20) ------------------------------

SECCOMP_CHILD = r"""
import ctypes, json, os, struct, sys
from oomd import logs
from oomd.kill import Killer

# BPF: on x86_64, process_mrelease (448) fails with EPERM, every other call is allowed: what
# systemd's SystemCallFilter=@system-service (without process_mrelease) does to it.
ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1
prog = [(0x20, 0, 0, 4), (0x15, 1, 0, 0xC000003E), (0x06, 0, 0, ALLOW), (0x20, 0, 0, 0),
        (0x15, 0, 1, 448), (0x06, 0, 0, EPERM), (0x06, 0, 0, ALLOW)]
buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
fp = ctypes.create_string_buffer(fprog)
assert libc.prctl(22, 2, ctypes.addressof(fp), 0, 0) == 0, ctypes.get_errno()  # SECCOMP filter

killer = Killer()
out = {}
with logs.capture() as lines:
    for n, path in enumerate(sys.argv[1:]):
        result = killer.kill(path)
        out[f"success{n}"] = result.success and result.outcome.wait(10)
out["refused"] = killer.stats.reap_refused
out["lines"] = logs.messages(lines)
print(json.dumps(out))
"""


def test_reaping_refused_by_a_seccomp_filter_is_logged_once_and_counted(sandbox):
    import json
    import platform
    import subprocess
    import sys
    from pathlib import Path

    from oomd.testing.slowkill import start_victim

    if platform.machine() != "x86_64":
        pytest.skip("the test's seccomp program is for x86_64")
    # victims whose exit takes a while (2 GiB of mappings), so they are still there to reap
    victims = [sandbox.mkcg(f"victim{i}") for i in range(2)]
    for i in range(2):
        start_victim(sandbox.cgroups, f"victim{i}", "mapped", 2 << 30)
    r = subprocess.run([sys.executable, "-c", SECCOMP_CHILD, *map(str, victims)],
                       capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["success0"] and out["success1"]         # the kills themselves are unaffected
    refusals = [m for m in out["lines"] if "process_mrelease refused with EPERM" in m]
    assert len(refusals) == 1 and "seccomp filter" in refusals[0]
    assert out["refused"] == 2                          # one per victim process
    assert sum(m == "Reaped 0 processes in 0ms" for m in out["lines"]) == 2
