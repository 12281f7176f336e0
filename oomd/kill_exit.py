"""Following a delivered kill until its cgroup is empty (step 5 of ``oomd.kill``'s docstring).

``ExitFollower`` keeps the kills in progress and a waiter thread that wakes on ``cgroup.events``
changes (kernfs notifies ``poll(POLLPRI)``) and on timers; each pass reaps the members' memory,
signals newcomers (without ``cgroup.kill``), and ends the waits that are over (empty, removed,
or past the bound). It talks to the kernel only through its ``Killer`` (``_reap``,
``_signal_round``, ``_add_to_counter``, ``_now``), so tests that replace those methods on the
killer replace them here too. ``KillOutcome`` is the record of one kill that the rest of pyoomd
reads (the kill plugins' hold, metrics, decision records).
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from oomd import logs
from oomd.names import shown

EVENTS_FILE = "cgroup.events"
KILL_FILE = "cgroup.kill"
XATTR_KILL = "trusted.oomd_kill"

HISTORY = 64  # finished kills kept for ``recent()``
# the waiter's timers: re-reads of cgroup.events (a safety net: kernfs notifies changes) and,
# without cgroup.kill, rounds of signals for newcomers
_CHECK_FIRST, _CHECK_MAX = 0.01, 1.0
_ROUND_FIRST, _ROUND_MAX = 0.005, 0.2

# KillOutcome.state
EXITING = "exiting"      # delivered, the cgroup is still populated
EMPTY = "empty"          # populated 0
GONE = "gone"            # the cgroup's directory was removed (so it was empty)
TIMED_OUT = "timed_out"  # still populated when the bound passed
UNKNOWN = "unknown"      # no cgroup.events to tell (not cgroup2): not waited for
EVENT_ENDED = "ended"           # on_event: the outcome left EXITING
EVENT_REAP_REFUSED = "reap_refused"  # on_event: process_mrelease got EPERM/ENOSYS


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


class ExitFollower:
    """The kills in progress of one ``Killer`` and the thread that follows them."""

    def __init__(self, killer, *, background: bool = True, history: int = HISTORY) -> None:
        self.k = killer
        self.background = background
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._history: deque[KillOutcome] = deque(maxlen=history)
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._closed = False

    def add(self, p: _Pending) -> None:
        """Follow ``p`` from now on (the waiter starts if it is not running)."""
        with self._lock:
            self._pending.append(p)
            self._start_waiter()

    def state_of(self, p: _Pending) -> str:
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
                self.k._reap(o.abspath, members, p)
                _close_fds(members)
            state = self.state_of(p)
            now = self.k._now()
            if state == EXITING and o.method != KILL_FILE and now >= p.next_round \
                    and p.dir_fd >= 0:
                signalled = self.k._signal_round(o.abspath, p.dir_fd, o)
                if p.reap and signalled:
                    self.k._reap(o.abspath, signalled, p)
                _close_fds(signalled)
                p.round_step = min(p.round_step * 2, _ROUND_MAX)
                p.next_round = now + p.round_step
            if state == EXITING and now >= o.deadline:
                state = TIMED_OUT
            if state == EXITING:
                if now >= p.next_check:
                    p.check_step = min(p.check_step * 2, _CHECK_MAX)
                    p.next_check = now + p.check_step
                continue
            self.finish(p, state, now)
            ended.append(o)
        return ended

    def finish(self, p: _Pending, state: str, now: float, tracked: bool = True) -> None:
        o = p.outcome
        late = o.killed - p.killed_at_delivery
        if late > 0 and p.dir_fd >= 0:
            self.k._add_to_counter(p.dir_fd, XATTR_KILL, late, o.abspath)
        for fd in (p.events_fd, p.dir_fd):
            if fd >= 0:
                os.close(fd)
        p.events_fd = p.dir_fd = -1
        _close_fds(p.to_reap)
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
            self.k.stats.exit_timeouts += 1
            logs.log(f"{shown(o.abspath)} is still populated {ms}ms after the kill (exit_timeout "
                     f"{o.exit_timeout:g}s): its processes may be in uninterruptible sleep, or "
                     "beyond pyoomd's permissions; it may be chosen again", logs.WARNING)
        else:
            logs.log(f"Cannot follow the exit of {shown(o.abspath)}: no {EVENTS_FILE}")
        o._done.set()
        self.notify(p, EVENT_ENDED)

    @staticmethod
    def notify(p: _Pending, event: str) -> None:
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
                timeout_ms = max(0.0, (wake_at - self.k._now()) * 1000)
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
            _close_fds(p.to_reap)
        if self._wake is not None and (thread is None or not thread.is_alive()):
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    # -- what is in progress -------------------------------------------------------------------

    def holding(self, abspath: str, cgroup_id: int | None = None) -> KillOutcome | None:
        """The kill in progress that holds the cgroup at ``abspath``: its own (same path and,
        if given, same directory inode), an ancestor's or a descendant's. Past its bound a
        kill holds nothing, even before the waiter has noticed."""
        abspath = abspath.rstrip("/") or "/"
        now = self.k._now()
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


def _covers(outer: str, inner: str) -> bool:
    return inner.startswith(outer + "/") or outer == "/"


def _close_fds(members: dict[int, int]) -> None:
    for fd in members.values():
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
