"""The kill itself: one victim cgroup, killed without racing pid reuse (reference §7).

oomd 0.5.0 reads pids from ``cgroup.procs`` and calls ``kill(pid, SIGKILL)`` on each, for up to
ten rounds with one-second sleeps in between. Between the read and the ``kill`` a pid can be
recycled by an unrelated process, and processes forked meanwhile are missed. ``Killer`` does
better, in this order:

1. ``Trying to kill <abs>``; the xattrs oomd writes: ``trusted.oomd_kill_uuid`` (a new id) and
   ``trusted.oomd_ooms`` (+1), through the cgroup's directory fd, so a cgroup deleted and
   re-created under the same name is never touched.
2. Snapshot the members: read ``cgroup.procs`` of the cgroup and of every descendant (listed
   afresh, not from a cache), open a pidfd for each pid, then read the files again. A pidfd whose
   pid is still listed on the second read belongs to a process that was in the cgroup after the
   pidfd was opened (a live process keeps its pid), so it is a member; others are closed.
3. Kill: if the cgroup has ``cgroup.kill`` (Linux 5.14+), write ``1`` to it: the kernel kills
   every process of the subtree, including ones forked during the kill, and nothing outside it.
   Otherwise SIGKILL each member through its pidfd (``signal.pidfd_send_signal``): a pidfd never
   reaches a recycled pid.
4. With ``reap_memory``, ``process_mrelease`` on each member's pidfd frees its memory now
   instead of when the exit path gets to it.
5. Verify: poll ``cgroup.events`` until ``populated 0``, at most ``verify_timeout`` seconds
   (0.5 s by default; polls start at 1 ms and back off to 50 ms). Without ``cgroup.kill``,
   every poll also signals members that appeared since the last one. A cgroup that is still
   populated at the deadline is logged and the kill counts as failed, so the kill plugin moves on
   to its next candidate, as oomd does when a kill fails.
6. ``trusted.oomd_kill`` += the number of processes killed.

Pids that are not positive, blank lines and garbage in ``cgroup.procs`` are skipped and counted
(oomd aborts on blank lines and passes 0 or -1 straight to ``kill``). A non-numeric xattr value
counts as 0 (oomd aborts).

Everything that talks to the kernel is a method of ``Killer`` (``_pidfd_open``, ``_signal``,
``_mrelease``, ``_write_kill``), so unit tests can run the pipeline on a fake tree with those
replaced by recorders, and kill plugins take any object with a ``kill`` method of the same
signature (tests pass a recording fake that never signals anything).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import time
from dataclasses import dataclass, field

from oomd import logs
from oomd.parsing import int_parse

XATTR_KILL_UUID = "trusted.oomd_kill_uuid"
XATTR_OOMS = "trusted.oomd_ooms"
XATTR_KILL = "trusted.oomd_kill"

PROCS_FILE = "cgroup.procs"
EVENTS_FILE = "cgroup.events"
KILL_FILE = "cgroup.kill"
FREEZE_FILE = "cgroup.freeze"

DEFAULT_VERIFY_TIMEOUT = 0.5
_LOG_BATCH = 20  # oomd logs the pids it kills 20 per line

# process_mrelease(2) has the same number on every architecture (it is newer than the unified
# syscall table, 424+); Python has no wrapper for it.
SYS_PROCESS_MRELEASE = 448

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def new_kill_uuid() -> str:
    """oomd's id: two random 64-bit numbers in lower-case hex, without zero padding."""
    return f"{secrets.randbits(64):x}{secrets.randbits(64):x}"


@dataclass
class KillResult:
    """What one kill did. ``success`` means something was killed and the cgroup emptied."""

    success: bool
    killed: int = 0
    method: str = ""  # "cgroup.kill" or "pidfd"
    verified: bool = False
    reaped: int = 0
    reason: str = ""
    pids: list[int] = field(default_factory=list)


@dataclass
class KillerStats:
    """Counters for the daemon's stats and for tests."""

    bad_procs_lines: int = 0
    bad_xattrs: int = 0
    stale_pids: int = 0
    verify_timeouts: int = 0


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
    """``cgroup.events``: the first line that is exactly ``populated <v>``; None if unknown."""
    try:
        text = _read_at(dir_fd, EVENTS_FILE)
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "populated":
            if parts[1] == "1":
                return True
            if parts[1] == "0":
                return False
            return None
    return None


class Killer:
    """Kills one cgroup (see the module docstring). One instance serves every kill plugin."""

    def __init__(self, *, verify_timeout: float = DEFAULT_VERIFY_TIMEOUT,
                 proc_root: str = "/proc", use_cgroup_kill: bool = True) -> None:
        self.verify_timeout = verify_timeout
        self.proc_root = proc_root
        self.use_cgroup_kill = use_cgroup_kill
        self.stats = KillerStats()

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

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

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
                logs.log(f"Skipping bad line {line!r} in {where}/{PROCS_FILE}", logs.WARNING)
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
            logs.log(f"xattr {name}={text!r} on {where} is not a number; counting from 0",
                     logs.WARNING)
            return 0

    def _set_xattr(self, dir_fd: int, name: str, value: str, where: str) -> None:
        try:
            os.setxattr(dir_fd, name, value.encode())
        except OSError:
            return  # unsupported filesystem or no privilege: silent, as in oomd
        logs.log(f"Set xattr {name}={value} on {where}")

    def _add_to_counter(self, dir_fd: int, name: str, delta: int, where: str) -> None:
        self._set_xattr(dir_fd, name, str(self._get_counter(dir_fd, name, where) + delta), where)

    # -- the kill ------------------------------------------------------------------------------

    def kill(self, abspath: str, dir_fd: int | None = None, *, reap_memory: bool = True,
             kill_uuid: str | None = None, kernel_kill: bool = False,
             user_xattrs: bool = False) -> KillResult:
        """Kill every process of the cgroup at ``abspath`` (opened through ``dir_fd`` if given,
        which pins the cgroup's identity) and its descendants.

        oomd HEAD: ``kernel_kill`` (the ``kernelkill`` argument) freezes the cgroup first and
        kills only through ``cgroup.kill``; ``user_xattrs`` writes the three xattrs under
        ``user.`` too."""
        if kernel_kill:
            logs.log(f"Trying to kill {abspath} with cgroup.freeze and cgroup.kill")
        else:
            logs.log(f"Trying to kill {abspath}")
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
                result = self._kill_frozen(abspath, dir_fd, reap_memory)
            elif self._has_cgroup_kill(dir_fd):
                result = self._kill_with_cgroup_kill(abspath, dir_fd, reap_memory)
            else:
                result = self._kill_with_pidfds(abspath, dir_fd, reap_memory)
            for name in kill_names:
                self._add_to_counter(dir_fd, name, result.killed, abspath)
            return result
        finally:
            if own_fd:
                os.close(dir_fd)

    def _failed(self, abspath: str, reason: str, **kw) -> KillResult:
        logs.log(f"Failed to kill cgroup {abspath}: {reason}")
        return KillResult(False, reason=reason, **kw)

    def _kill_with_cgroup_kill(self, abspath: str, dir_fd: int, reap: bool) -> KillResult:
        members = self._members(dir_fd, abspath) if reap else {
            p: -1 for p in dict.fromkeys(self.subtree_pids(dir_fd, abspath))}
        populated = read_populated(dir_fd)
        try:
            self._write_kill(dir_fd)
        except OSError as e:
            self._close(members)
            return self._failed(abspath, f"writing {KILL_FILE}: {e.strerror}",
                                method=KILL_FILE)
        pids = list(members)
        self._log_kills([(p, None) for p in pids])
        killed = len(pids) or (0 if populated is False else 1)
        reaped = self._reap(abspath, members) if reap else 0
        self._close(members)
        if killed == 0:
            return self._failed(abspath, "no process to kill", method=KILL_FILE)
        return self._verify(abspath, dir_fd, KillResult(
            True, killed=killed, method=KILL_FILE, reaped=reaped, pids=pids), None)

    def _kill_frozen(self, abspath: str, dir_fd: int, reap: bool) -> KillResult:
        """``kernelkill``: freeze (a failure is only logged), then ``cgroup.kill``; no
        fallback to signals. The cgroup is thawed again afterwards (oomd HEAD leaves it frozen,
        so whatever is started in it later would freeze too)."""
        try:
            self._write_freeze(dir_fd, b"1")
        except OSError as e:
            logs.log(f"Failed to freeze cgroup {abspath}, proceed to kill without freezing: "
                     f"{e.strerror}")
        try:
            if not self._has_cgroup_kill(dir_fd):
                return self._failed(abspath, "Failed to kill cgroup with cgroup.kill: no "
                                    f"{KILL_FILE}", method=KILL_FILE)
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

    def _kill_with_pidfds(self, abspath: str, dir_fd: int, reap: bool) -> KillResult:
        result = KillResult(True, method="pidfd")
        self._signal_round(abspath, dir_fd, reap, result)
        if result.killed == 0:
            return self._failed(abspath, "no process killed", method="pidfd")
        return self._verify(abspath, dir_fd, result, reap)

    def _signal_round(self, abspath: str, dir_fd: int, reap: bool, result: KillResult) -> None:
        """SIGKILL, through pidfds, every member (again: a dying process ignores it)."""
        members = self._members(dir_fd, abspath)
        entries: list[tuple[int, int | None]] = []
        signalled: dict[int, int] = {}
        for pid, pidfd in members.items():
            new = pid not in result.pids
            try:
                self._signal(pidfd, signal.SIGKILL)
            except OSError as e:
                if new:
                    entries.append((pid, e.errno))
                continue
            signalled[pid] = pidfd
            if new:
                entries.append((pid, None))
                result.pids.append(pid)
                result.killed += 1
        self._log_kills(entries)  # only processes not signalled in an earlier round
        if reap and signalled:
            result.reaped += self._reap(abspath, signalled)
        self._close(members)

    def _reap(self, abspath: str, members: dict[int, int]) -> int:
        """process_mrelease on each killed member; returns how many were reaped."""
        if not members:
            return 0
        logs.log(f"Reaping processes in {abspath}")
        start = self._now()
        reaped = 0
        for pidfd in members.values():
            if pidfd < 0:
                continue
            try:
                self._mrelease(pidfd)
                reaped += 1
            except OSError:
                continue  # already exited, or no mm left to release
        logs.log(f"Reaped {reaped} processes in {int((self._now() - start) * 1000)}ms")
        return reaped

    def _verify(self, abspath: str, dir_fd: int, result: KillResult, reap: bool | None) -> KillResult:
        """Wait, bounded, for ``populated 0``; ``reap`` not None means keep signalling newcomers
        through pidfds (no cgroup.kill)."""
        start = self._now()
        deadline = start + self.verify_timeout
        step = 0.001
        while True:
            populated = read_populated(dir_fd)
            if populated is False:
                result.verified = True
                return result
            if populated is None:
                # no cgroup.events (not cgroup2, or the cgroup is gone): nothing to wait for
                return result
            now = self._now()
            if now >= deadline:
                break
            self._sleep(min(step, deadline - now))
            step = min(step * 2, 0.05)
            if reap is not None:
                self._signal_round(abspath, dir_fd, reap, result)
        self.stats.verify_timeouts += 1
        ms = int((self._now() - start) * 1000)
        logs.log(f"{abspath} is still populated {ms}ms after the kill; "
                 "trying the next candidate")
        result.success = False
        result.reason = "still populated"
        return result

    @staticmethod
    def _close(members: dict[int, int]) -> None:
        for fd in members.values():
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
