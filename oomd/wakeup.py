"""Waiting between ticks: one epoll set, and kernel PSI triggers that start ticks early.

The daemon's loop asks ``Wakeup.wait()`` for the next tick. It returns ``None`` when a tick is
due, or the ``siginfo`` of a signal (SIGTERM, SIGINT, SIGHUP) to handle. Meanwhile it waits in
one epoll set on:

* **PSI triggers** (``POLLPRI``): plugins that want them (``stall_above``; ``pressure_above``
  and ``pressure_rising_beyond`` with ``wake: true``) say so with ``psi_triggers()``, a list of
  ``TriggerWant`` (cgroup patterns, resource, line, threshold % and window). Each matched
  cgroup gets a trigger ``<line> <threshold µs> <window µs>`` written to its
  ``<resource>.pressure`` (the root cgroup's is ``/proc/pressure/<resource>``), the window
  rounded up to what the kernel accepts: without CAP_SYS_RESOURCE a multiple of 2 s, with it
  anything from 0.5 s (``probe()`` finds out at start-up, and says so in the log). A trigger
  event starts a tick at once; ticks then come every ``fast_interval`` while any trigger fired
  within its window, and then every ``interval`` again. Ticks are never closer together than
  ``fast_interval``, however many events arrive.
* **the drop-in directory's inotify fd**: a change is applied ``DROPIN_SETTLE`` seconds after the
  first event (no tick is run for it), so a new drop-in's triggers are armed and a removed one's
  closed without waiting for the next tick.
* **the reader's inotify fd** (kept configuration values, cgroup directories): drained between
  ticks, at most once every ``WATCH_REARM`` seconds, so a long interval does not let its queue
  overflow.
* **the signal fd** of the handled signals (blocked by the daemon) and the timer (epoll's
  timeout).

Which triggers exist is recomputed after every tick, reload and drop-in change, only when a
plugin's wants or the cgroups its patterns match have changed: a trigger is closed when its
cgroup is gone, is re-created (a new id), or no plugin wants it any more. A trigger fd that
reports POLLERR (its cgroup was removed) is closed at once: it never wakes the loop twice.

At most ``max_triggers`` triggers exist (each costs the kernel a poller). Wants are served in
config order; one whose cgroups do not all fit gets, for the ``some`` line, one trigger on their
closest common ancestor (a parent's some-stall covers its children's), and for ``full`` none:
those cgroups are checked at the ticks (logged). Without triggers (no PSI, no permission, the
kernel refused, ``--max-psi-triggers 0``, a fake tree) every plugin still decides at the ticks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import math
import os
import select
import signal
from dataclasses import dataclass
from typing import Callable, Iterable

from oomd import logs

DEFAULT_FAST_INTERVAL = 0.1
DEFAULT_MAX_TRIGGERS = 32
WAKE_WINDOW = 2.0        # the window of pressure_above/pressure_rising_beyond wake triggers
DROPIN_SETTLE = 0.05     # seconds between a drop-in event and applying it (writes settle)
WATCH_REARM = 1.0        # the reader's inotify fd is drained at most once per this many seconds
MIN_WINDOW_PRIVILEGED = 0.5
UNPRIVILEGED_STEP = 2.0
MAX_WINDOW = 10.0

PSI_FILES = {"memory": "memory.pressure", "io": "io.pressure"}
CGROUP2_SUPER_MAGIC = 0x63677270
PROC_SUPER_MAGIC = 0x9FA0
TRIGGER_FS = (CGROUP2_SUPER_MAGIC, PROC_SUPER_MAGIC)

EVENTS_STAT = "pyoomd.psi_trigger_events"
TRIGGERS_STAT = "pyoomd.psi_triggers"

_IN, _PRI = select.EPOLLIN, select.EPOLLPRI
_ERR = select.EPOLLERR | select.EPOLLHUP


@dataclass(frozen=True)
class TriggerWant:
    """What a plugin wants to be woken for: a stall of ``line`` above ``threshold`` percent of
    ``window`` seconds in any cgroup ``patterns`` match."""

    patterns: object  # CgroupPatterns
    resource: str     # memory | io
    line: str         # some | full
    threshold: float  # percent of the window
    window: float     # seconds
    owner: str = ""   # the plugin's name, for log lines


# -- what the kernel allows ----------------------------------------------------------------------


@dataclass(frozen=True)
class Capability:
    available: bool
    step: float = 0.0      # windows must be multiples of this (0: any window from min_window)
    min_window: float = MIN_WINDOW_PRIVILEGED
    reason: str = ""

    def kernel_window(self, window: float) -> float:
        """The smallest window the kernel accepts that is at least ``window``."""
        if self.step:
            return min(MAX_WINDOW, max(self.step, math.ceil(window / self.step - 1e-9) * self.step))
        return min(MAX_WINDOW, max(self.min_window, window))

    def describe(self) -> str:
        if not self.available:
            return f"PSI triggers unavailable ({self.reason}): pressure is only seen at the ticks"
        if self.step:
            return (f"PSI triggers available without CAP_SYS_RESOURCE: windows are rounded up "
                    f"to multiples of {self.step:g}s")
        return (f"PSI triggers available with CAP_SYS_RESOURCE: windows from "
                f"{self.min_window:g}s to {MAX_WINDOW:g}s")


class _StatFs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.fstatfs.argtypes = [ctypes.c_int, ctypes.POINTER(_StatFs)]
    return _libc


def fs_magic(fd: int) -> int:
    st = _StatFs()
    if _c().fstatfs(fd, ctypes.byref(st)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return st.f_type & 0xFFFFFFFF


def open_trigger(path: str, text: str) -> int:
    """Open a kernel pressure file and write a trigger to it; the fd is the trigger (closing
    it removes the trigger). Refuses files that are not on cgroup2 or proc (a fake tree's
    plain files must not be written to). Raises OSError."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if fs_magic(fd) not in TRIGGER_FS:
            raise OSError(errno.EOPNOTSUPP, "not a kernel pressure file (cgroup2 or proc)")
        os.write(fd, text.encode() + b"\0")
    except BaseException:
        os.close(fd)
        raise
    return fd


def probe(proc_root: str = "/proc", opener: Callable[[str, str], int] = open_trigger) -> Capability:
    """Which triggers this process may create: a 500 ms window needs CAP_SYS_RESOURCE; without
    it (kernel 6.5+) windows that are multiples of 2 s work; older kernels refuse both."""
    path = os.path.join(proc_root, "pressure", "memory")
    try:
        os.close(opener(path, "some 50000 500000"))
        return Capability(True)
    except OSError as e:
        first = e
    if first.errno == errno.EINVAL:
        try:
            os.close(opener(path, "some 200000 2000000"))
            return Capability(True, step=UNPRIVILEGED_STEP, min_window=UNPRIVILEGED_STEP)
        except OSError as e:
            first = e
    return Capability(False, reason=_why(path, first))


def _why(path: str, e: OSError) -> str:
    what = {errno.ENOENT: "no PSI", errno.EPERM: "not permitted", errno.EACCES: "not permitted",
            errno.EROFS: "read-only", errno.EINVAL: "the kernel refused the trigger"}
    head = what.get(e.errno, "error")
    return f"{head}: {path}: {e.strerror or e}"


# -- the triggers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerSpec:
    path: str
    cgroup_id: int
    line: str
    threshold_us: int
    window_us: int

    @property
    def text(self) -> str:
        return f"{self.line} {self.threshold_us} {self.window_us}"

    @property
    def window(self) -> float:
        return self.window_us / 1e6


class Trigger:
    __slots__ = ("spec", "fd", "where", "owner")

    def __init__(self, spec: TriggerSpec, fd: int, where: str, owner: str) -> None:
        self.spec, self.fd, self.where, self.owner = spec, fd, where, owner


def _components(relpath: str) -> list[str]:
    return [c for c in relpath.split("/") if c]


def common_ancestor(relpaths: Iterable[str]) -> str:
    it = iter(relpaths)
    first = next(it, None)
    if first is None:
        return ""
    common = _components(first)
    for rel in it:
        comps = _components(rel)
        n = 0
        while n < len(common) and n < len(comps) and common[n] == comps[n]:
            n += 1
        del common[n:]
        if not common:
            break
    return "/".join(common)


def wants_of(engine) -> list[TriggerWant]:
    """Every TriggerWant of the plugins of the engine's enabled rulesets (drop-ins first, as
    the engine runs them)."""
    out: list[TriggerWant] = []
    for base in getattr(engine, "rulesets", ()):
        for ruleset in [d.ruleset for d in base.dropins] + [base.ruleset]:
            if not ruleset.enabled:
                continue
            for plugin in ruleset.plugins():
                get = getattr(plugin, "psi_triggers", None)
                if get is not None:
                    out.extend(get())
    return out


class TriggerSet:
    """The registered triggers, kept in line with what the plugins want (``sync``)."""

    def __init__(self, capability: Capability, max_triggers: int, *, proc_root: str = "/proc",
                 opener: Callable[[str, str], int] = open_trigger, stats=None,
                 poller=None) -> None:
        self.cap = capability
        self.max_triggers = max_triggers
        self.proc_root = proc_root
        self.opener = opener
        self.stats = stats
        self.poller = poller  # trigger fds are registered in it (POLLPRI) while open
        self.by_fd: dict[int, Trigger] = {}
        self.by_spec: dict[TriggerSpec, Trigger] = {}
        self._failed: set[TriggerSpec] = set()   # refused or vanished: not retried while wanted
        self._notes: set[str] = set()            # plan notes already logged
        self._signature: list | None = None

    @property
    def enabled(self) -> bool:
        return self.cap.available and self.max_triggers > 0

    def __len__(self) -> int:
        return len(self.by_spec)

    # -- planning ------------------------------------------------------------------------------

    def _spec(self, ctx, row: int, want: TriggerWant, line: str) -> tuple[TriggerSpec, tuple]:
        rel = ctx.relpath(row)
        if rel:
            path = os.path.join(ctx.abspath(row), PSI_FILES[want.resource])
        else:
            path = os.path.join(self.proc_root, "pressure", want.resource)
        window = self.cap.kernel_window(want.window)
        window_us = int(round(window * 1e6))
        threshold_us = min(window_us, max(1, math.ceil(want.threshold / 100.0 * window_us)))
        why = want.owner if window == want.window else \
            f"{want.owner}; its {want.window:g}s window rounded up"
        return TriggerSpec(path, ctx.cgroup_id(row), line, threshold_us, window_us), \
            (rel or "/", why)

    def _note(self, text: str, notes: set[str]) -> None:
        notes.add(text)
        if text not in self._notes:
            logs.log(text, logs.NOTICE)

    def plan(self, engine, ctx) -> dict[TriggerSpec, tuple[str, str]]:
        """The triggers the engine's plugins want now: spec -> (cgroup, owner) for logs."""
        desired: dict[TriggerSpec, tuple[str, str]] = {}
        notes: set[str] = set()
        budget = self.max_triggers
        for want in wants_of(engine):
            rows = ctx.resolve(want.patterns)
            if len(rows) == 0:
                continue
            fresh = []
            if len(rows) <= budget:
                for row in rows:
                    spec, label = self._spec(ctx, int(row), want, want.line)
                    if spec not in desired:
                        fresh.append((spec, label))
            if len(rows) <= budget and len(fresh) <= budget:
                desired.update(fresh)
                budget -= len(fresh)
                continue
            what = (f"{want.owner} on {want.patterns} ({want.resource} {want.line}) matches "
                    f"{len(rows)} cgroups, more than the {budget} PSI triggers left of "
                    f"--max-psi-triggers {self.max_triggers}")
            if want.line != "some":
                self._note(f"{what}: no triggers for them; they are checked at the ticks", notes)
                continue
            anc = common_ancestor(ctx.relpath(int(r)) for r in rows)
            row = ctx.row_of(anc)
            if row is None or budget < 1:
                self._note(f"{what}: no trigger on their common ancestor "
                           f"{anc or '/'} either; they are checked at the ticks", notes)
                continue
            spec, label = self._spec(ctx, row, want, "some")
            if spec not in desired:
                desired[spec] = label
                budget -= 1
            self._note(f"{what}: one some trigger on their common ancestor {label[0]}", notes)
        self._notes = notes
        return desired

    # -- registering ---------------------------------------------------------------------------

    def sync(self, engine, ctx, *, force: bool = False) -> bool:
        """Bring the triggers in line with the plugins' wants; cheap when nothing changed.
        Returns True if triggers were opened or closed."""
        if not self.enabled or engine is None or ctx is None:
            return False
        wants = wants_of(engine)
        signature = [(w, ctx.resolve(w.patterns)) for w in wants]
        if not force and self._signature is not None and len(signature) == len(self._signature) \
                and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(signature, self._signature)):
            return False
        self._signature = signature
        return self.apply(self.plan(engine, ctx))

    def apply(self, desired: dict[TriggerSpec, tuple[str, str]]) -> bool:
        changed = False
        for spec in [s for s in self.by_spec if s not in desired]:
            t = self.by_spec[spec]
            self.close(t)
            logs.log(f"PSI trigger on {t.where} ({spec.text}) removed")
            changed = True
        self._failed &= desired.keys()
        for spec, (where, owner) in desired.items():
            if spec in self.by_spec or spec in self._failed:
                continue
            try:
                fd = self.opener(spec.path, spec.text)
            except OSError as e:
                self._failed.add(spec)
                logs.log(f"PSI trigger on {where} ({spec.path}: {spec.text}) refused: "
                         f"{e.strerror or e}; {owner.split(';')[0]} relies on the ticks",
                         logs.WARNING)
                continue
            t = Trigger(spec, fd, where, owner)
            if self.poller is not None:
                self.poller.register(fd, _PRI)
            self.by_fd[fd] = t
            self.by_spec[spec] = t
            changed = True
            logs.log(f"PSI trigger on {where}: {spec.line} stall above {spec.threshold_us}us "
                     f"in {spec.window:g}s ({owner})")
        if self.stats is not None:
            self.stats.set(TRIGGERS_STAT, len(self.by_spec))
        return changed

    def close(self, t: Trigger) -> None:
        self.by_fd.pop(t.fd, None)
        self.by_spec.pop(t.spec, None)
        if self.poller is not None:
            self.poller.unregister(t.fd)
        try:
            os.close(t.fd)
        except OSError:
            pass

    def vanished(self, t: Trigger) -> None:
        """Its cgroup was removed (POLLERR): close it, and do not re-open the same spec."""
        self.close(t)
        self._failed.add(t.spec)
        logs.log(f"PSI trigger on {t.where} removed: the cgroup is gone")
        if self.stats is not None:
            self.stats.set(TRIGGERS_STAT, len(self.by_spec))

    def close_all(self) -> None:
        for t in list(self.by_spec.values()):
            self.close(t)
        self._signature = None


# -- signals -------------------------------------------------------------------------------------


def signal_fd(signals: Iterable[int]) -> int:
    """A non-blocking signalfd for ``signals`` (which the caller keeps blocked), or -1."""
    try:
        libc = _c()
        mask = ctypes.create_string_buffer(128)  # sigset_t
        libc.sigemptyset(mask)
        for s in signals:
            libc.sigaddset(mask, int(s))
        libc.signalfd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        return libc.signalfd(-1, mask, os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return -1


class EpollPoller:
    """select.epoll behind the small interface Wakeup uses (tests pass a fake)."""

    def __init__(self) -> None:
        self._ep = select.epoll()

    def register(self, fd: int, mask: int) -> None:
        self._ep.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._ep.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        try:
            self._ep.unregister(fd)
        except (OSError, ValueError):
            pass  # already closed (the kernel dropped it) or never registered

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        try:
            return self._ep.poll(timeout)
        except InterruptedError:
            return []

    def close(self) -> None:
        self._ep.close()


# -- the wait ------------------------------------------------------------------------------------


class Wakeup:
    """The daemon's wait between ticks (see the module docstring)."""

    def __init__(
        self,
        *,
        interval: float,
        fast_interval: float = DEFAULT_FAST_INTERVAL,
        max_triggers: int = DEFAULT_MAX_TRIGGERS,
        clock: Callable[[], float],
        engine_of: Callable[[], object] = lambda: None,
        ctx_of: Callable[[], object] = lambda: None,
        signals: Iterable[int] = (),
        dropin_fd: Callable[[], int] | None = None,
        apply_dropins: Callable[[], None] | None = None,
        stats=None,
        capability: Capability | None = None,
        proc_root: str = "/proc",
        opener: Callable[[str, str], int] = open_trigger,
        poller=None,
    ) -> None:
        self.interval = float(interval)
        self.fast = min(float(fast_interval), self.interval)
        self.clock = clock
        self.engine_of, self.ctx_of = engine_of, ctx_of
        self.signals = tuple(signals)
        self.dropin_fd, self.apply_dropins = dropin_fd, apply_dropins
        self.stats = stats
        if capability is None:
            capability = probe(proc_root, opener) if max_triggers > 0 else \
                Capability(False, reason="--max-psi-triggers 0")
        self.cap = capability
        self.poller = poller if poller is not None else EpollPoller()
        self.triggers = TriggerSet(capability, max_triggers, proc_root=proc_root, opener=opener,
                                   stats=stats, poller=self.poller)
        self._sig_fd = -1
        if self.signals:
            self._sig_fd = signal_fd(self.signals)
            if self._sig_fd >= 0:
                self.poller.register(self._sig_fd, _IN)
            else:
                logs.log("signalfd unavailable: signals are checked every 0.2s", logs.WARNING)
        # fds that come and go with their owners: name -> (fd, armed)
        self._dyn: dict[str, list] = {"dropin": [-1, False], "watch": [-1, False]}
        self._timers: dict[str, float] = {}
        self._readers: dict[int, Callable[[], None]] = {}  # add_reader: fd -> callback
        start = clock()
        self.next_regular = start + self.interval
        self.last_tick = start  # (no tick yet; nothing starts before the floor it sets)
        self.fast_until = -math.inf
        self.pending_fire = False
        self.fast_mode = False
        self.ticks_started = 0
        self.events = 0

    @classmethod
    def for_daemon(cls, daemon, signals: Iterable[int]) -> Wakeup:
        o = daemon.o
        watcher = daemon.watcher
        w = cls(
            interval=o.interval,
            fast_interval=getattr(o, "fast_interval", DEFAULT_FAST_INTERVAL),
            max_triggers=getattr(o, "max_psi_triggers", DEFAULT_MAX_TRIGGERS),
            clock=daemon.clock,
            engine_of=lambda: daemon.engine,
            ctx_of=lambda: daemon.ctx,
            signals=signals,
            dropin_fd=watcher.fileno if watcher is not None else None,
            apply_dropins=daemon.apply_drop_ins if watcher is not None else None,
            stats=daemon.stats,
        )
        logs.log(w.cap.describe(), logs.NOTICE)
        return w

    # -- fds -------------------------------------------------------------------------------

    @staticmethod
    def _guarded(what: str, fn: Callable[[], object]) -> None:
        """Triggers only bring ticks forward: a failure here is logged, never the loop's end."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - the wait must survive what the ticks survive
            logs.log(f"{what} failed: {type(e).__name__}: {e}", logs.ERR, force=True)

    def _sync_triggers(self) -> None:
        self._guarded("PSI trigger update",
                      lambda: self.triggers.sync(self.engine_of(), self.ctx_of()))

    def _current_fd(self, name: str) -> int:
        if name == "dropin":
            return self.dropin_fd() if self.dropin_fd is not None else -1
        ctx = self.ctx_of()
        get = getattr(ctx, "watch_fd", None)
        return get() if get is not None else -1

    def _refresh_dynamic(self) -> None:
        """Follow the drop-in watcher's and the reader's inotify fds, which their owners close
        and re-create (a re-created one may get the same number, which epoll has forgotten):
        called after code that may have done so (a tick, applying drop-ins), before any
        trigger is opened, so a stale number is never one of our triggers'."""
        for name, slot in self._dyn.items():
            fd = self._current_fd(name)
            if slot[0] >= 0 and slot[0] not in self.triggers.by_fd and slot[0] != self._sig_fd:
                self.poller.unregister(slot[0])
            if fd != slot[0]:
                self._timers.pop(name, None)
            armed = fd >= 0 and name not in self._timers
            slot[0], slot[1] = fd, armed
            if fd >= 0:
                self.poller.register(fd, _IN if armed else 0)

    def _arm(self, name: str, on: bool) -> None:
        slot = self._dyn[name]
        if slot[0] >= 0 and slot[1] != on:
            self.poller.modify(slot[0], _IN if on else 0)
            slot[1] = on

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the waiting thread, between ticks) whenever ``fd`` is
        readable; the callback must drain it (``pyoomd status`` requests)."""
        self._readers[fd] = callback
        self.poller.register(fd, _IN)

    # -- events -----------------------------------------------------------------------------

    def _fired(self, t: Trigger, now: float) -> None:
        self.events += 1
        if self.stats is not None:
            self.stats.increment(EVENTS_STAT)
        if not self.fast_mode:
            self.fast_mode = True
            logs.log(f"PSI trigger on {t.where} fired ({t.spec.text}): ticking every "
                     f"{self.fast:g}s while triggers fire")
        self.fast_until = max(self.fast_until, now + t.spec.window)
        self.pending_fire = True

    def _handle(self, fd: int, ev: int, now: float):
        """One ready fd; returns a siginfo to hand to the daemon, or None."""
        t = self.triggers.by_fd.get(fd)
        if t is not None:
            if ev & _ERR:
                self.triggers.vanished(t)
            elif ev & _PRI:
                self._fired(t, now)
            return None
        if fd == self._sig_fd:
            return signal.sigtimedwait(self.signals, 0)
        reader = self._readers.get(fd)
        if reader is not None:
            self._guarded("answering a request", reader)
            return None
        if fd == self._dyn["dropin"][0]:
            self._arm("dropin", False)
            self._timers.setdefault("dropin", now + DROPIN_SETTLE)
        elif fd == self._dyn["watch"][0]:
            self._arm("watch", False)
            drain = getattr(self.ctx_of(), "drain_watches", None)
            if drain is not None:
                self._guarded("draining the reader's inotify", drain)
            self._timers["watch"] = now + WATCH_REARM
        return None

    def _run_timers(self, now: float) -> None:
        for name, at in list(self._timers.items()):
            if now < at:
                continue
            del self._timers[name]
            if name == "dropin":
                if self.apply_dropins is not None:
                    self._guarded("applying drop-ins", self.apply_dropins)
                self._refresh_dynamic()
                self._arm("dropin", True)
                self._sync_triggers()
            else:
                self._arm(name, True)

    # -- the schedule ----------------------------------------------------------------------

    def due(self) -> float:
        """When the next tick starts (monotonic seconds)."""
        floor = self.last_tick + self.fast
        due = self.next_regular
        if self.pending_fire or floor <= self.fast_until:
            due = min(due, floor)
        return max(due, floor)

    def _start_tick(self, now: float) -> None:
        self.last_tick = now
        self.pending_fire = False
        self.ticks_started += 1
        if now >= self.next_regular - self.fast:
            self.next_regular = max(self.next_regular + self.interval, now)
        if self.fast_mode and now + self.fast > self.fast_until:
            self.fast_mode = False
            logs.log(f"No PSI trigger fired for a window: ticking every {self.interval:g}s")

    def wait(self):
        """Block until the next tick is due (returns None) or a handled signal arrives
        (returns its siginfo)."""
        # after a tick (which applied pending drop-ins), a reload, or at start-up
        self._timers.pop("dropin", None)
        self._refresh_dynamic()
        self._arm("dropin", True)
        self._sync_triggers()
        while True:
            now = self.clock()
            due = self.due()
            if now >= due:
                self._start_tick(now)
                return None
            until = min([due, *self._timers.values()])
            timeout = max(0.0, until - now)
            if self.signals and self._sig_fd < 0:
                timeout = min(timeout, 0.2)
            events = self.poller.poll(timeout)
            now = self.clock()
            sig = None
            for fd, ev in events:
                got = self._handle(fd, ev, now)
                if got is not None and sig is None:
                    sig = got
            if self.signals and self._sig_fd < 0 and sig is None:
                sig = signal.sigtimedwait(self.signals, 0)
            if sig is not None:
                return sig
            self._run_timers(self.clock())

    def close(self) -> None:
        self.triggers.close_all()
        if self._sig_fd >= 0:
            os.close(self._sig_fd)
            self._sig_fd = -1
        self.poller.close()
