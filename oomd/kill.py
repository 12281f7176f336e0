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
5. The exit is followed off the tick, by a waiter thread (``KillOutcome``, below): a large victim
   needs seconds to free its memory. The thread wakes on ``cgroup.events`` changes (kernfs
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
import secrets
import select
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from oomd import logs
from oomd.names import shown
from oomd.parsing import int_parse

XATTR_KILL_UUID = "trusted.oomd_kill_uuid"
XATTR_OOMS = "trusted.oomd_ooms"
XATTR_KILL = "trusted.oomd_kill"

PROCS_FILE = "cgroup.procs"
EVENTS_FILE = "cgroup.events"
KILL_FILE = "cgroup.kill"
FREEZE_FILE = "cgroup.freeze"

DEFAULT_EXIT_TIMEOUT = 30.0
HISTORY = 64  # finished kills kept for ``recent()``
_LOG_BATCH = 20  # oomd logs the pids it kills 20 per line
# the waiter's timers: re-reads of cgroup.events (a safety net: kernfs notifies changes) and,
# without cgroup.kill, rounds of signals for newcomers
_CHECK_FIRST, _CHECK_MAX = 0.01, 1.0
_ROUND_FIRST, _ROUND_MAX = 0.005, 0.2

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

# KillOutcome.state
EXITING = "exiting"      # delivered, the cgroup is still populated
EMPTY = "empty"          # populated 0
GONE = "gone"            # the cgroup's directory was removed (so it was empty)
TIMED_OUT = "timed_out"  # still populated when the bound passed
UNKNOWN = "unknown"      # no cgroup.events to tell (not cgroup2): not waited for
EVENT_ENDED = "ended"           # on_event: the outcome left EXITING
EVENT_REAP_REFUSED = "reap_refused"  # on_event: process_mrelease got EPERM/ENOSYS


def new_kill_uuid() -> str:
    """oomd's id: two random 64-bit numbers in lower-case hex, without zero padding."""
    return f"{secrets.randbits(64):x}{secrets.randbits(64):x}"


@dataclass(eq=False)
class KillOutcome:
    """What became of one delivered kill: kept by the ``Killer`` from delivery on, for the log,
    the metrics and any later account of the decision ("delivered at T, empty at T+x").

    Times are the killer's monotonic clock (``delivered_wall`` is ``time.time()`` at delivery).
    Fields change only in the waiter thread until ``done``; read them after ``wait()`` or
    accept a snapshot.
    """

    abspath: str
    cgroup_id: int          # inode of the victim's directory (0 if unknown)
    kill_uuid: str          # the trusted.oomd_kill_uuid written on it
    method: str             # "cgroup.kill" or "pidfd"
    delivered_at: float
    delivered_wall: float
    exit_timeout: float
    killed: int             # processes killed (grows while newcomers are signalled)
    pids: list[int]
    state: str = EXITING
    ended_at: float | None = None
    reaped: int = 0         # processes whose memory process_mrelease freed
    reap_refused: int = 0   # process_mrelease calls refused (EPERM/ENOSYS)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.state != EXITING

    @property
    def deadline(self) -> float:
        return self.delivered_at + self.exit_timeout

    @property
    def seconds(self) -> float | None:
        """Delivery to the end of the wait (to empty, or to the bound); None while exiting."""
        return None if self.ended_at is None else self.ended_at - self.delivered_at

    @property
    def time_to_empty(self) -> float | None:
        return self.seconds if self.state in (EMPTY, GONE) else None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the wait ended (tests, scripts); True if it did."""
        return self._done.wait(timeout)

    def describe(self) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.delivered_wall))
        at += f".{int(self.delivered_wall * 1000) % 1000:03d}"
        text = f"delivered at {at} ({self.method}, {self.killed} processes)"
        s = self.seconds
        if self.state == EXITING:
            return text + "; still exiting"
        if self.state == EMPTY:
            return text + f"; empty at +{s:.3f}s"
        if self.state == GONE:
            return text + f"; removed at +{s:.3f}s"
        if self.state == TIMED_OUT:
            return text + f"; still populated at +{s:.3f}s (bound {self.exit_timeout:g}s)"
        return text + "; not followed (no cgroup.events)"


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


class _Pending:
    """A kill in progress: the outcome plus what the waiter needs (fds, timers, callback)."""

    __slots__ = ("outcome", "dir_fd", "events_fd", "followed", "to_reap", "reap", "on_event",
                 "killed_at_delivery", "next_check", "check_step", "next_round", "round_step")

    def __init__(self, outcome: KillOutcome, dir_fd: int, reap: bool, to_reap: dict[int, int],
                 on_event) -> None:
        self.outcome = outcome
        self.dir_fd = dir_fd
        self.events_fd = -1
        self.followed = False  # cgroup.events was read at least once
        self.to_reap = to_reap
        self.reap = reap
        self.on_event = on_event
        self.killed_at_delivery = outcome.killed
        now = outcome.delivered_at
        self.check_step, self.next_check = _CHECK_FIRST, now + _CHECK_FIRST
        self.round_step, self.next_round = _ROUND_FIRST, now + _ROUND_FIRST

    def next_wake(self) -> float:
        t = min(self.next_check, self.outcome.deadline)
        if self.outcome.method != KILL_FILE:
            t = min(t, self.next_round)
        return self.outcome.delivered_at if self.to_reap else t


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


def parse_populated(text: str) -> bool | None:
    """``cgroup.events``: the first line that is exactly ``populated <v>``; None if unknown."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "populated":
            if parts[1] == "1":
                return True
            if parts[1] == "0":
                return False
            return None
    return None


def read_populated(dir_fd: int) -> bool | None:
    try:
        return parse_populated(_read_at(dir_fd, EVENTS_FILE))
    except OSError:
        return None


def _covers(outer: str, inner: str) -> bool:
    return inner.startswith(outer + "/") or outer == "/"


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
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._history: deque[KillOutcome] = deque(maxlen=history)
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._closed = False
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
            self._notify(pending, EVENT_REAP_REFUSED)

    # -- following the exit --------------------------------------------------------------------

    def _follow(self, abspath: str, dir_fd: int, uuid: str, result: KillResult, reap: bool,
                members: dict[int, int], exit_timeout: float, on_event) -> None:
        """Make the kill's outcome and hand it to the waiter (or end it now if the cgroup is
        already empty, or cannot be followed)."""
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
        state = self._state_of(p)
        if state == UNKNOWN and p.to_reap:
            reap_now, p.to_reap = p.to_reap, {}
            result.reaped = self._reap(abspath, reap_now, p)
            self._close(reap_now)
        if state != EXITING:
            result.verified = state == EMPTY
            self._finish(p, state, self._now(), tracked=False)
            return
        with self._lock:
            self._pending.append(p)
            self._start_waiter()

    def _state_of(self, p: _Pending) -> str:
        """EXITING, EMPTY, GONE or UNKNOWN (never had a cgroup.events), from the kept
        cgroup.events fd (re-opened if a read failed)."""
        if self._removed(p.dir_fd):
            return GONE
        if p.events_fd < 0 and p.dir_fd >= 0:
            try:
                p.events_fd = os.open(EVENTS_FILE, os.O_RDONLY | os.O_CLOEXEC, dir_fd=p.dir_fd)
            except OSError:
                pass
        if p.events_fd >= 0:
            try:
                text = os.pread(p.events_fd, 4096, 0).decode(errors="replace")
            except OSError:
                os.close(p.events_fd)  # a removed cgroup's file: poll() would wake endlessly
                p.events_fd = -1
            else:
                populated = parse_populated(text)
                if populated is not None:
                    p.followed = True
                    return EXITING if populated else EMPTY
        return EXITING if p.followed else UNKNOWN

    @staticmethod
    def _removed(dir_fd: int) -> bool:
        if dir_fd < 0:
            return False
        try:
            return os.fstat(dir_fd).st_nlink == 0
        except OSError:
            return False

    def poll(self) -> list[KillOutcome]:
        """One pass over the kills in progress (the waiter thread's work; tests call it with
        ``background=False``): reap, signal newcomers, end the waits that are over. Returns
        the outcomes that ended in this pass."""
        with self._lock:
            pending = list(self._pending)
        ended = []
        for p in pending:
            o = p.outcome
            if p.to_reap:
                members, p.to_reap = p.to_reap, {}
                self._reap(o.abspath, members, p)
                self._close(members)
            state = self._state_of(p)
            now = self._now()
            if state == EXITING and o.method != KILL_FILE and now >= p.next_round \
                    and p.dir_fd >= 0:
                signalled = self._signal_round(o.abspath, p.dir_fd, o)
                if p.reap and signalled:
                    self._reap(o.abspath, signalled, p)
                self._close(signalled)
                p.round_step = min(p.round_step * 2, _ROUND_MAX)
                p.next_round = now + p.round_step
            if state == EXITING and now >= o.deadline:
                state = TIMED_OUT
            if state == EXITING:
                if now >= p.next_check:
                    p.check_step = min(p.check_step * 2, _CHECK_MAX)
                    p.next_check = now + p.check_step
                continue
            self._finish(p, state, now)
            ended.append(o)
        return ended

    def _finish(self, p: _Pending, state: str, now: float, tracked: bool = True) -> None:
        o = p.outcome
        late = o.killed - p.killed_at_delivery
        if late > 0 and p.dir_fd >= 0:
            self._add_to_counter(p.dir_fd, XATTR_KILL, late, o.abspath)
        for fd in (p.events_fd, p.dir_fd):
            if fd >= 0:
                os.close(fd)
        p.events_fd = p.dir_fd = -1
        self._close(p.to_reap)
        p.to_reap = {}
        with self._lock:
            if tracked and p in self._pending:
                self._pending.remove(p)
            o.ended_at = now
            o.state = state
            self._history.append(o)
        ms = int((now - o.delivered_at) * 1000)
        if state == EMPTY:
            logs.log(f"{shown(o.abspath)} is empty {ms}ms after the kill")
        elif state == GONE:
            logs.log(f"{shown(o.abspath)} was removed {ms}ms after the kill")
        elif state == TIMED_OUT:
            self.stats.exit_timeouts += 1
            logs.log(f"{shown(o.abspath)} is still populated {ms}ms after the kill (exit_timeout "
                     f"{o.exit_timeout:g}s): its processes may be in uninterruptible sleep, or "
                     "beyond pyoomd's permissions; it may be chosen again", logs.WARNING)
        else:
            logs.log(f"Cannot follow the exit of {shown(o.abspath)}: no {EVENTS_FILE}")
        o._done.set()
        self._notify(p, EVENT_ENDED)

    @staticmethod
    def _notify(p: _Pending, event: str) -> None:
        if p.on_event is None:
            return
        try:
            p.on_event(p.outcome, event)
        except Exception as e:  # noqa: BLE001 - a reporting bug must not stop the waiter
            logs.log(f"kill event handler failed: {type(e).__name__}: {e}", logs.ERR)

    # -- the waiter thread ---------------------------------------------------------------------

    def _start_waiter(self) -> None:
        """Called with the lock held, after a kill was added to the pending ones."""
        if not self.background or self._closed:
            return
        if self._wake is None:
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._thread is None:
            self._thread = threading.Thread(target=self._waiter, name="pyoomd-kill-wait",
                                            daemon=True)
            self._thread.start()
        else:
            try:
                os.write(self._wake[1], b"x")
            except BlockingIOError:
                pass  # already woken

    def _waiter(self) -> None:
        while True:
            try:
                with self._lock:
                    if not self._pending or self._closed:
                        self._thread = None
                        return
                    fds = [p.events_fd for p in self._pending if p.events_fd >= 0]
                    wake_at = min(p.next_wake() for p in self._pending)
                    wake_r = self._wake[0]
                po = select.poll()
                po.register(wake_r, select.POLLIN)
                for fd in fds:
                    po.register(fd, select.POLLPRI | select.POLLERR)
                timeout_ms = max(0.0, (wake_at - self._now()) * 1000)
                if po.poll(timeout_ms):
                    try:
                        while os.read(wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                self.poll()
            except Exception as e:  # noqa: BLE001 - the waiter must keep going
                logs.log(f"kill waiter: {type(e).__name__}: {e}", logs.ERR)
                time.sleep(0.1)

    def close(self, timeout: float = 5.0) -> None:
        """Stop following kills (daemon exit, tests): the waiter ends, fds are closed."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if self._wake is not None:
                try:
                    os.write(self._wake[1], b"x")
                except BlockingIOError:
                    pass
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            pending, self._pending = self._pending, []
        for p in pending:
            for fd in (p.events_fd, p.dir_fd):
                if fd >= 0:
                    os.close(fd)
            self._close(p.to_reap)
        if self._wake is not None and (thread is None or not thread.is_alive()):
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    # -- what is in progress (the kill plugins, an account of decisions) ------------------------

    def holding(self, abspath: str, cgroup_id: int | None = None) -> KillOutcome | None:
        """The kill in progress that holds the cgroup at ``abspath``: its own (same path and,
        if given, same directory inode), an ancestor's or a descendant's. Past its bound a
        kill holds nothing, even before the waiter has noticed."""
        abspath = abspath.rstrip("/") or "/"
        now = self._now()
        with self._lock:
            for p in self._pending:
                o = p.outcome
                if now >= o.deadline:
                    continue
                if o.abspath == abspath:
                    if not cgroup_id or not o.cgroup_id or cgroup_id == o.cgroup_id:
                        return o
                elif _covers(o.abspath, abspath) or _covers(abspath, o.abspath):
                    return o
        return None

    def in_progress(self) -> list[KillOutcome]:
        with self._lock:
            return [p.outcome for p in self._pending]

    def recent(self) -> list[KillOutcome]:
        """Finished kills, oldest first (at most ``history``)."""
        with self._lock:
            return list(self._history)

    def find(self, kill_uuid: str) -> KillOutcome | None:
        with self._lock:
            for o in [p.outcome for p in self._pending] + list(self._history):
                if o.kill_uuid == kill_uuid:
                    return o
        return None

    @staticmethod
    def _close(members: dict[int, int]) -> None:
        for fd in members.values():
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
