"""The kill itself: one victim cgroup, killed without racing pid reuse (reference §7).

oomd 0.5.0 reads pids from ``cgroup.procs`` and calls ``kill(pid, SIGKILL)`` on each, for up to
ten rounds with one-second sleeps in between, and counts the kill as done when at least one
``kill()`` succeeded. Between the read and the ``kill`` a pid can be recycled by an unrelated
process, and processes forked meanwhile are missed. ``Killer`` does better, in this order:

1. ``Trying to kill <abs>``; the xattrs oomd writes: ``trusted.oomd_kill_uuid`` (a new id) and
   ``trusted.oomd_ooms`` (+1), through the cgroup's directory fd, so a cgroup deleted and
   re-created under the same name is never touched.
2. Snapshot the members: read ``cgroup.procs`` of the cgroup and of every descendant (listed
   afresh, not from a cache), open a pidfd for each pid, then read the files again. A pidfd whose
   pid is still listed on the second read belongs to a process that was in the cgroup after the
   pidfd was opened (a live process keeps its pid), so it is a member; others are closed.
3. Deliver: if the cgroup has ``cgroup.kill`` (Linux 5.14+), write ``1`` to it: the kernel kills
   every process of the subtree, including ones forked during the kill, and nothing outside it.
   Otherwise (or if that write fails) SIGKILL each member through its pidfd
   (``signal.pidfd_send_signal``): a pidfd never reaches a recycled pid.
4. The kill is *delivered* when ``cgroup.kill`` was written to a populated cgroup or at least
   one member was signalled; that is its success, as in oomd (and systemd-oomd). ``kill``
   returns at once: the kill plugin writes the kill record now, and tries its next candidate only
   when nothing could be delivered (no process, every signal refused, the cgroup vanished).
   ``trusted.oomd_kill`` += the number of processes killed.
5. The exit is followed off the tick, by a waiter thread (``oomd.kill_exit``: ``ExitFollower``
   and ``KillOutcome``, re-exported here): a large victim needs seconds to free its memory. The thread wakes on ``cgroup.events`` changes (kernfs
   notifies ``poll(POLLPRI)``) and on timers, and for each kill in progress:

   * with ``reap_memory``, calls ``process_mrelease`` on each member's pidfd right away, which
     frees its memory now instead of when its exit path gets to it (the call does the work, so it
     runs here and not in the tick);
   * without ``cgroup.kill``, signals members that appeared since the last round (rounds back off
     from 5 ms to 200 ms), and adds them to ``trusted.oomd_kill`` when the wait ends;
   * ``populated 0``: logs ``<abs> is empty <ms>ms after the kill``; the directory removed: the
     same with ``was removed``;
   * the bound (``exit_timeout``, 30 s by default, per kill plugin) passed: logs a warning and
     counts it (processes in uninterruptible sleep, or beyond the daemon's permissions).

   While a kill is in progress, ``holding(abspath, cgroup_id)`` returns it for the victim, its
   descendants and its ancestors: kill plugins never kill such a cgroup again, nor another one in
   its place, until it is empty or the bound passed.

Pids that are not positive, blank lines and garbage in ``cgroup.procs`` are skipped and counted
(oomd aborts on blank lines and passes 0 or -1 straight to ``kill``). A non-numeric xattr value
counts as 0 (oomd aborts). ``process_mrelease`` refused with EPERM or ENOSYS (a seccomp filter,
an LSM, a kernel older than 5.15) is logged once per error with its likely cause and counted;
ESRCH and the like (the process is gone, or already past freeing its own memory) are silent.

Everything that talks to the kernel is a method of ``Killer`` (``_pidfd_open``, ``_signal``,
``_mrelease``, ``_write_kill``), and so is the clock (``_now``), so unit tests can run the
pipeline on a fake tree with those replaced by recorders (``background=False`` then leaves the
waiting to explicit ``poll()`` calls); kill plugins take any object with a ``kill`` method of the
same signature (tests pass a recording fake that never signals anything).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from oomd import logs
from oomd.kill_exit import (  # noqa: F401 - the outcome's names are part of this module's API
    EMPTY, EVENT_ENDED, EVENT_REAP_REFUSED, EVENTS_FILE, EXITING, GONE, HISTORY, KILL_FILE,
    TIMED_OUT, UNKNOWN, XATTR_KILL, ExitFollower, KillOutcome, _close_fds, _Pending,
    parse_populated,
)
from oomd.names import shown
from oomd.parsing import int_parse

XATTR_KILL_UUID = "trusted.oomd_kill_uuid"
XATTR_OOMS = "trusted.oomd_ooms"

PROCS_FILE = "cgroup.procs"
FREEZE_FILE = "cgroup.freeze"

DEFAULT_EXIT_TIMEOUT = 30.0
_LOG_BATCH = 20  # oomd logs the pids it kills 20 per line

# process_mrelease(2) has the same number on every architecture (it is newer than the unified
# syscall table, 424+); Python has no wrapper for it.
SYS_PROCESS_MRELEASE = 448
_REFUSED = {
    errno.EPERM: "a seccomp filter refuses the call (systemd's SystemCallFilter=@system-service "
                 "lacks process_mrelease on systemd < 254; the shipped unit adds it) or a "
                 "security module denies it",
    errno.ENOSYS: "the kernel has no process_mrelease (Linux < 5.15) or a seccomp filter "
                  "answers ENOSYS",
}

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

def new_kill_uuid() -> str:
    """oomd's id: two random 64-bit numbers in lower-case hex, without zero padding. From
    ``os.urandom`` as ``secrets`` would: importing ``secrets`` loads OpenSSL's libcrypto
    (hashlib through hmac), 3.4 MiB of the daemon's resident memory."""
    return "".join(f"{int.from_bytes(os.urandom(8), 'little'):x}" for _ in range(2))


@dataclass
class KillResult:
    """What one ``kill`` call did. ``success`` means the kill was delivered (see the module
    docstring); ``outcome`` then follows the exit."""

    success: bool
    killed: int = 0
    method: str = ""  # "cgroup.kill" or "pidfd"
    verified: bool = False  # already empty when kill() returned
    reaped: int = 0
    reason: str = ""
    pids: list[int] = field(default_factory=list)
    outcome: KillOutcome | None = None


@dataclass
class KillerStats:
    """Counters for the daemon's stats and for tests."""

    bad_procs_lines: int = 0
    bad_xattrs: int = 0
    stale_pids: int = 0
    exit_timeouts: int = 0
    reap_refused: int = 0


class _Libc:
    _lib = None

    @classmethod
    def syscall(cls, *args: int) -> int:
        if cls._lib is None:
            cls._lib = ctypes.CDLL(None, use_errno=True)
        cls._lib.syscall.restype = ctypes.c_long
        ret = cls._lib.syscall(*(ctypes.c_long(a) for a in args))
        if ret < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return ret


def _read_at(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)


def read_populated(dir_fd: int) -> bool | None:
    try:
        return parse_populated(_read_at(dir_fd, EVENTS_FILE))
    except OSError:
        return None


class Killer:
    """Kills cgroups and follows their exit (see the module docstring). One instance serves
    every kill plugin of a daemon, so a kill in progress holds its cgroup for all rulesets."""

    def __init__(self, *, exit_timeout: float = DEFAULT_EXIT_TIMEOUT, proc_root: str = "/proc",
                 use_cgroup_kill: bool = True, background: bool = True,
                 history: int = HISTORY) -> None:
        self.exit_timeout = exit_timeout
        self.proc_root = proc_root
        self.use_cgroup_kill = use_cgroup_kill
        self.background = background
        self.stats = KillerStats()
        self.exits = ExitFollower(self, background=background, history=history)
        self._refusals_logged: set[int] = set()

    # -- the kernel, one call each (tests replace these) -------------------------------------

    def _pidfd_open(self, pid: int) -> int:
        return os.pidfd_open(pid)

    def _signal(self, pidfd: int, sig: int) -> None:
        signal.pidfd_send_signal(pidfd, sig)

    def _mrelease(self, pidfd: int) -> None:
        _Libc.syscall(SYS_PROCESS_MRELEASE, pidfd, 0)

    def _write_kill(self, dir_fd: int) -> None:
        fd = os.open(KILL_FILE, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)

    def _has_cgroup_kill(self, dir_fd: int) -> bool:
        if not self.use_cgroup_kill:
            return False
        try:
            os.stat(KILL_FILE, dir_fd=dir_fd)
            return True
        except OSError:
            return False

    def _now(self) -> float:
        return time.monotonic()

    # -- reading the subtree -------------------------------------------------------------------

    def _pids_at(self, dir_fd: int, where: str) -> list[int]:
        try:
            text = _read_at(dir_fd, PROCS_FILE)
        except OSError:
            return []
        pids = []
        for line in text.splitlines():
            try:
                pid = int(line.strip(), 10)
            except ValueError:
                pid = 0
            if pid <= 0:
                self.stats.bad_procs_lines += 1
                logs.log(f"Skipping bad line {line!r} in {shown(where)}/{PROCS_FILE}", logs.WARNING)
                continue
            pids.append(pid)
        return pids

    def subtree_pids(self, dir_fd: int, where: str = "") -> list[int]:
        """Pids of the cgroup and all its descendants, children listed now (not cached)."""
        pids = self._pids_at(dir_fd, where)
        try:
            list_fd = os.open(".", _O_DIR, dir_fd=dir_fd)
        except OSError:
            return pids
        try:
            with os.scandir(list_fd) as it:
                children = [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            children = []
        finally:
            os.close(list_fd)
        for name in children:
            try:
                child = os.open(name, _O_DIR, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                pids.extend(self.subtree_pids(child, f"{where}/{name}"))
            finally:
                os.close(child)
        return pids

    def _members(self, dir_fd: int, where: str) -> dict[int, int]:
        """pid -> pidfd for processes of the subtree (see step 2 of the module docstring)."""
        opened: dict[int, int] = {}
        for pid in dict.fromkeys(self.subtree_pids(dir_fd, where)):
            try:
                opened[pid] = self._pidfd_open(pid)
            except OSError:
                continue  # exited already
        if not opened:
            return opened
        again = set(self.subtree_pids(dir_fd, where))
        for pid in [p for p in opened if p not in again]:
            self.stats.stale_pids += 1
            os.close(opened.pop(pid))
        return opened

    def _comm(self, pid: int) -> str | None:
        try:
            with open(f"{self.proc_root}/{pid}/comm", "rb") as f:
                line = f.read().decode(errors="replace").split("\n", 1)[0]
            return line or None
        except OSError:
            return None

    def _log_kills(self, entries: list[tuple[int, int | None]]) -> None:
        """oomd's ``Killed <k>: <pid>(<comm>) ... [E<errno>]``, 20 pids a line."""
        for i in range(0, len(entries), _LOG_BATCH):
            batch = entries[i:i + _LOG_BATCH]
            parts = []
            for pid, err in batch:
                comm = self._comm(pid)
                parts.append(f" {pid}({comm})" if comm else f" {pid}")
                if err is not None:
                    parts.append(f"[E{err}]")
            ok = sum(1 for _, err in batch if err is None)
            logs.log(f"Killed {ok}:{''.join(parts)}")

    # -- xattrs --------------------------------------------------------------------------------

    def _get_counter(self, dir_fd: int, name: str, where: str) -> int:
        try:
            raw = os.getxattr(dir_fd, name)
        except OSError:
            return 0
        text = raw.decode(errors="replace")
        if not text:
            return 0
        try:
            return int_parse(text)
        except ValueError:
            self.stats.bad_xattrs += 1
            logs.log(f"xattr {name}={text!r} on {shown(where)} is not a number; counting from 0",
                     logs.WARNING)
            return 0

    def _set_xattr(self, dir_fd: int, name: str, value: str, where: str) -> None:
        try:
            os.setxattr(dir_fd, name, value.encode())
        except OSError:
            return  # unsupported filesystem or no privilege: silent, as in oomd
        logs.log(f"Set xattr {name}={value} on {shown(where)}")

    def _add_to_counter(self, dir_fd: int, name: str, delta: int, where: str) -> None:
        self._set_xattr(dir_fd, name, str(self._get_counter(dir_fd, name, where) + delta), where)

    # -- the kill ------------------------------------------------------------------------------

    def kill(self, abspath: str, dir_fd: int | None = None, *, reap_memory: bool = True,
             kill_uuid: str | None = None, exit_timeout: float | None = None,
             on_event: Callable[[KillOutcome, str], None] | None = None,
             kernel_kill: bool = False, user_xattrs: bool = False) -> KillResult:
        """Kill every process of the cgroup at ``abspath`` (opened through ``dir_fd`` if given,
        which pins the cgroup's identity) and its descendants; returns once the kill is
        delivered or failed. ``exit_timeout`` (seconds, default the killer's) bounds the wait
        for the exit; ``on_event(outcome, event)`` is called, from the waiter thread, for
        ``"reap_refused"`` and once with ``"ended"`` when the wait ends.

        oomd HEAD: ``kernel_kill`` (the ``kernelkill`` argument) freezes the cgroup first and
        kills only through ``cgroup.kill``; ``user_xattrs`` writes the three xattrs under
        ``user.`` too."""
        if kernel_kill:
            logs.log(f"Trying to kill {shown(abspath)} with cgroup.freeze and cgroup.kill")
        else:
            logs.log(f"Trying to kill {shown(abspath)}")
        own_fd = dir_fd is None
        if own_fd:
            try:
                dir_fd = os.open(abspath, _O_DIR)
            except OSError as e:
                return self._failed(abspath, f"cannot open: {e.strerror}")
        uuid_names, ooms_names, kill_names = (
            (n, "user." + n.split(".", 1)[1]) if user_xattrs else (n,)
            for n in (XATTR_KILL_UUID, XATTR_OOMS, XATTR_KILL))
        try:
            uuid = kill_uuid or new_kill_uuid()
            for name in uuid_names:
                self._set_xattr(dir_fd, name, uuid, abspath)
            for name in ooms_names:
                self._add_to_counter(dir_fd, name, 1, abspath)
            if kernel_kill:
                result, members = self._kill_frozen(abspath, dir_fd, reap_memory)
            elif self._has_cgroup_kill(dir_fd):
                result, members = self._kill_with_cgroup_kill(abspath, dir_fd, reap_memory)
            else:
                result, members = self._kill_with_pidfds(abspath, dir_fd)
            for name in kill_names:
                self._add_to_counter(dir_fd, name, result.killed, abspath)
            if result.success:
                self._follow(abspath, dir_fd, uuid, result, reap_memory, members,
                             self.exit_timeout if exit_timeout is None else exit_timeout,
                             on_event)
            return result
        finally:
            if own_fd:
                os.close(dir_fd)

    def _failed(self, abspath: str, reason: str, **kw) -> KillResult:
        logs.log(f"Failed to kill cgroup {shown(abspath)}: {reason}")
        return KillResult(False, reason=reason, **kw)

    def _kill_with_cgroup_kill(self, abspath: str, dir_fd: int,
                               reap: bool) -> tuple[KillResult, dict[int, int]]:
        members = self._members(dir_fd, abspath) if reap else {
            p: -1 for p in dict.fromkeys(self.subtree_pids(dir_fd, abspath))}
        populated = read_populated(dir_fd)
        try:
            self._write_kill(dir_fd)
        except OSError as e:
            self._close(members)
            logs.log(f"Writing {KILL_FILE} of {shown(abspath)} failed: {e.strerror}; "
                     "signalling its processes one by one", logs.WARNING)
            return self._kill_with_pidfds(abspath, dir_fd)
        pids = list(members)
        self._log_kills([(p, None) for p in pids])
        killed = len(pids) or (0 if populated is False else 1)
        if killed == 0:
            self._close(members)
            return self._failed(abspath, "no process to kill", method=KILL_FILE), {}
        return KillResult(True, killed=killed, method=KILL_FILE, pids=pids), members

    def _kill_frozen(self, abspath: str, dir_fd: int,
                     reap: bool) -> tuple[KillResult, dict[int, int]]:
        """``kernelkill``: freeze (a failure is only logged), then ``cgroup.kill``; no
        fallback to signals. The cgroup is thawed again afterwards (oomd HEAD leaves it frozen,
        so whatever is started in it later would freeze too)."""
        try:
            self._write_freeze(dir_fd, b"1")
        except OSError as e:
            logs.log(f"Failed to freeze cgroup {shown(abspath)}, proceed to kill without freezing: "
                     f"{e.strerror}")
        try:
            if not self._has_cgroup_kill(dir_fd):
                return self._failed(abspath, "Failed to kill cgroup with cgroup.kill: no "
                                    f"{KILL_FILE}", method=KILL_FILE), {}
            return self._kill_with_cgroup_kill(abspath, dir_fd, reap)
        finally:
            try:
                self._write_freeze(dir_fd, b"0")
            except OSError:
                pass

    def _write_freeze(self, dir_fd: int, value: bytes) -> None:
        fd = os.open(FREEZE_FILE, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)

    def _kill_with_pidfds(self, abspath: str, dir_fd: int) -> tuple[KillResult, dict[int, int]]:
        result = KillResult(True, method="pidfd")
        signalled = self._signal_round(abspath, dir_fd, result)
        if result.killed == 0:
            return self._failed(abspath, "no process killed", method="pidfd"), {}
        return result, signalled

    def _signal_round(self, abspath: str, dir_fd: int, acc) -> dict[int, int]:
        """SIGKILL, through pidfds, every member (again: a dying process ignores it). ``acc``
        (a KillResult or KillOutcome) gets the new pids; returns the signalled members' pidfds
        (the caller closes them)."""
        members = self._members(dir_fd, abspath)
        entries: list[tuple[int, int | None]] = []
        signalled: dict[int, int] = {}
        known = set(acc.pids)
        for pid, pidfd in members.items():
            new = pid not in known
            try:
                self._signal(pidfd, signal.SIGKILL)
            except OSError as e:
                if new:
                    entries.append((pid, e.errno))
                os.close(pidfd)
                continue
            signalled[pid] = pidfd
            if new:
                entries.append((pid, None))
                acc.pids.append(pid)
                acc.killed += 1
        self._log_kills(entries)  # only processes not signalled in an earlier round
        return signalled

    def _reap(self, abspath: str, members: dict[int, int], pending: _Pending | None = None) -> int:
        """process_mrelease on each killed member; returns how many were reaped."""
        fds = [fd for fd in members.values() if fd >= 0]
        if not fds:
            return 0
        logs.log(f"Reaping processes in {shown(abspath)}")
        start = self._now()
        reaped = 0
        for pidfd in fds:
            try:
                self._mrelease(pidfd)
                reaped += 1
            except OSError as e:
                if e.errno in _REFUSED:
                    self._reap_refused(abspath, e.errno, pending)
                # ESRCH: exited, or in its own exit with its memory already detached; EINVAL:
                # not dying (yet); EINTR/EAGAIN: the exit path is at it. Nothing to do.
        logs.log(f"Reaped {reaped} processes in {int((self._now() - start) * 1000)}ms")
        if pending is not None:
            pending.outcome.reaped += reaped
        return reaped

    def _reap_refused(self, abspath: str, err: int, pending: _Pending | None) -> None:
        self.stats.reap_refused += 1
        if err not in self._refusals_logged:
            self._refusals_logged.add(err)
            logs.log(f"process_mrelease refused with {errno.errorcode.get(err, err)} "
                     f"({shown(abspath)}): {_REFUSED[err]}; killed processes free their memory "
                     "only as they exit (logged once; counted in pyoomd.reap_refused)", logs.WARNING)
        if pending is not None:
            pending.outcome.reap_refused += 1
            self.exits.notify(pending, EVENT_REAP_REFUSED)

    # -- following the exit --------------------------------------------------------------------

    def _follow(self, abspath: str, dir_fd: int, uuid: str, result: KillResult, reap: bool,
                members: dict[int, int], exit_timeout: float, on_event) -> None:
        """Make the kill's outcome and hand it to the exit follower (or end it now if the cgroup
        is already empty, or cannot be followed)."""
        try:
            own = os.open(".", _O_DIR, dir_fd=dir_fd)
        except OSError:
            own = -1
        try:
            cgroup_id = os.fstat(own).st_ino if own >= 0 else 0
        except OSError:
            cgroup_id = 0
        outcome = KillOutcome(abspath, cgroup_id, uuid, result.method, self._now(), time.time(),
                              max(0.0, float(exit_timeout)), result.killed, list(result.pids))
        result.outcome = outcome
        to_reap = {p: fd for p, fd in members.items() if fd >= 0} if reap else {}
        if not reap:
            self._close(members)
        p = _Pending(outcome, own, reap, to_reap, on_event)
        state = self.exits.state_of(p)
        if state == UNKNOWN and p.to_reap:
            reap_now, p.to_reap = p.to_reap, {}
            result.reaped = self._reap(abspath, reap_now, p)
            self._close(reap_now)
        if state != EXITING:
            result.verified = state == EMPTY
            self.exits.finish(p, state, self._now(), tracked=False)
            return
        self.exits.add(p)


    # -- kills in progress (``ExitFollower``; the kill plugins, an account of decisions) -----------

    def poll(self) -> list[KillOutcome]:
        """One pass over the kills in progress (the waiter's work; tests call it with
        ``background=False``). Returns the outcomes that ended in this pass."""
        return self.exits.poll()

    def close(self, timeout: float = 5.0) -> None:
        """Stop following kills (daemon exit, tests): the waiter ends, fds are closed."""
        self.exits.close(timeout)

    def holding(self, abspath: str, cgroup_id: int | None = None) -> KillOutcome | None:
        """The kill in progress that holds the cgroup at ``abspath`` (its own, an ancestor's
        or a descendant's); see ``ExitFollower.holding``."""
        return self.exits.holding(abspath, cgroup_id)

    def in_progress(self) -> list[KillOutcome]:
        return self.exits.in_progress()

    def recent(self) -> list[KillOutcome]:
        """Finished kills, oldest first (at most ``history``)."""
        return self.exits.recent()

    def find(self, kill_uuid: str) -> KillOutcome | None:
        return self.exits.find(kill_uuid)

    @staticmethod
    def _close(members: dict[int, int]) -> None:
        _close_fds(members)
