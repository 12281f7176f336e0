"""The wait between ticks (``oomd/wakeup.py``): the capability probe, which PSI triggers the
plugins get, and the tick schedule around trigger events, on a fake epoll and a fake clock.

Real-kernel checks (a trigger on a real cgroup, its POLLERR when the cgroup goes) are at the end
and skip where the host cannot run them.
"""

from __future__ import annotations

import errno
import os
import select
import threading

import pytest

from detectorfakes import MB, Rig
from support import FakeClock
from oomd import logs, wakeup
from oomd.engine import Engine, Ruleset, DetectorGroup
from oomd.testing import faketree as ft
from oomd.testing import realcg
from oomd.wakeup import Capability, TriggerSet, Wakeup

UNPRIV = Capability(True, step=2.0, min_window=2.0)
PRIV = Capability(True)
PRI, ERR, IN = select.EPOLLPRI, select.EPOLLERR, select.EPOLLIN


class Opener:
    """Records trigger writes; each trigger is a real fd (of /dev/null) so closing is real."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.opened: dict[int, tuple[str, str]] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, path: str, text: str) -> int:
        self.calls.append((path, text))
        for needle, err in self.refuse.items():
            if needle in path or needle in text:
                raise OSError(err, os.strerror(err))
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.opened[fd] = (path, text)
        return fd

    def open_now(self) -> list[tuple[str, str]]:
        """(path, text) of the triggers still open."""
        alive = []
        for fd, what in self.opened.items():
            try:
                os.fstat(fd)
            except OSError:
                continue
            alive.append(what)
        return sorted(alive)


class FakePoller:
    """epoll on a script: ``at(t, fd, events)`` delivers an event at time t if fd is registered
    with a mask that wants it (errors always). poll() moves the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.masks: dict[int, int] = {}
        self.script: list[tuple[float, int, int]] = []
        self.polls: list[float] = []  # timeouts asked
        self.closed = False

    def at(self, t: float, fd: int, events: int) -> None:
        self.script.append((t, fd, events))
        self.script.sort(key=lambda e: e[0])

    def register(self, fd: int, mask: int) -> None:
        assert fd not in self.masks, f"fd {fd} registered twice"
        self.masks[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        assert fd in self.masks
        self.masks[fd] = mask

    def unregister(self, fd: int) -> None:
        self.masks.pop(fd, None)

    def _wanted(self, fd: int, ev: int) -> int:
        if fd not in self.masks:
            return 0
        return ev & (self.masks[fd] | ERR | select.EPOLLHUP)

    def poll(self, timeout: float):
        self.polls.append(timeout)
        deadline = self.clock.now + timeout
        for i, (t, fd, ev) in enumerate(self.script):
            if t > deadline:
                break
            got = self._wanted(fd, ev)
            if got:
                del self.script[i]
                self.clock.now = max(self.clock.now, t)
                return [(fd, got)]
        self.clock.now = deadline
        return []

    def close(self) -> None:
        self.closed = True


def _engine(rig: Rig, *plugins, enabled=True) -> Engine:
    rs = Ruleset("r", [DetectorGroup("g", list(plugins))], [])
    rs.enabled = enabled
    return Engine([rs], clock=rig.clock)


def _rig(tmp_path, n=2) -> Rig:
    tree = {f"w/c{i}": ft.cgroup(MB, mem_pressure=ft.psi()) for i in range(n)}
    tree["other/x"] = ft.cgroup(MB, mem_pressure=ft.psi())
    rig = Rig(tmp_path, tree)
    rig.ctx.refresh(rig.clock())
    return rig


def _stall(rig, **args):
    base = dict(cgroup="w/*", resource="memory", threshold="10", window="2")
    p, ret = rig.create("stall_above", **{**base, **args})
    assert ret == 0
    return p


def _pa(rig, **args):
    base = dict(cgroup="w/*", resource="memory", threshold="20", duration="0")
    p, ret = rig.create("pressure_above", **{**base, **args})
    assert ret == 0
    return p


# -- the probe ------------------------------------------------------------------------------


def test_probe_finds_privileged_triggers():
    opener = Opener()
    cap = wakeup.probe("/proc", opener)
    assert cap == Capability(True)
    assert opener.calls == [("/proc/pressure/memory", "some 50000 500000")]
    assert "windows from 0.5s to 10s" in cap.describe()


def test_probe_finds_unprivileged_triggers_when_short_windows_are_refused():
    opener = Opener(refuse={"500000": errno.EINVAL})
    cap = wakeup.probe("/proc", opener)
    assert cap.available and cap.step == 2.0
    assert opener.calls[-1] == ("/proc/pressure/memory", "some 200000 2000000")
    assert cap.describe() == ("PSI triggers available without CAP_SYS_RESOURCE: windows are "
                              "rounded up to multiples of 2s")


@pytest.mark.parametrize("err,why", [
    (errno.EPERM, "not permitted: /proc/pressure/memory: Operation not permitted"),
    (errno.EACCES, "not permitted: /proc/pressure/memory: Permission denied"),
    (errno.ENOENT, "no PSI: /proc/pressure/memory: No such file or directory"),
    (errno.EINVAL, "the kernel refused the trigger: /proc/pressure/memory: Invalid argument"),
])
def test_probe_says_why_triggers_are_unavailable(err, why):
    cap = wakeup.probe("/proc", Opener(refuse={"pressure": err}))
    assert not cap.available
    assert cap.describe() == f"PSI triggers unavailable ({why}): pressure is only seen at the ticks"


@pytest.mark.parametrize("cap,asked,window", [
    (UNPRIV, 0.5, 2.0), (UNPRIV, 2.0, 2.0), (UNPRIV, 2.5, 4.0), (UNPRIV, 10.0, 10.0),
    (PRIV, 0.5, 0.5), (PRIV, 0.75, 0.75), (PRIV, 10.0, 10.0),
])
def test_windows_round_up_to_what_the_kernel_accepts(cap, asked, window):
    assert cap.kernel_window(asked) == window


def test_open_trigger_refuses_a_plain_file_and_leaves_it_unchanged(tmp_path):
    f = tmp_path / "memory.pressure"
    f.write_text(ft.psi())
    with pytest.raises(OSError) as e:
        wakeup.open_trigger(str(f), "some 150000 2000000")
    assert e.value.errno == errno.EOPNOTSUPP
    assert f.read_text() == ft.psi()


# -- which triggers ---------------------------------------------------------------------------


def test_stall_above_gets_one_trigger_per_matched_cgroup(tmp_path):
    rig = _rig(tmp_path)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    with logs.capture() as lines:
        assert ts.sync(_engine(rig, _stall(rig, window="0.5")), rig.ctx)
    root = str(rig.root)
    assert opener.open_now() == [(f"{root}/w/c0/memory.pressure", "full 200000 2000000"),
                                 (f"{root}/w/c1/memory.pressure", "full 200000 2000000")]
    assert logs.messages(lines) == [
        "PSI trigger on w/c0: full stall above 200000us in 2s (stall_above; its 0.5s window "
        "rounded up)",
        "PSI trigger on w/c1: full stall above 200000us in 2s (stall_above; its 0.5s window "
        "rounded up)"]


def test_privileged_windows_are_kept_and_io_uses_io_pressure(tmp_path):
    rig = _rig(tmp_path, 1)
    opener = Opener()
    TriggerSet(PRIV, 32, opener=opener).sync(
        _engine(rig, _stall(rig, resource="io", line="some", window="0.75", threshold="12.5")),
        rig.ctx)
    assert opener.open_now() == [(f"{rig.root}/w/c0/io.pressure", "some 93750 750000")]


def test_root_cgroup_trigger_goes_on_proc_pressure(tmp_path):
    rig = _rig(tmp_path, 1)
    opener = Opener()
    TriggerSet(UNPRIV, 32, opener=opener, proc_root="/fakeproc").sync(
        _engine(rig, _stall(rig, cgroup="/")), rig.ctx)
    assert opener.open_now() == [("/fakeproc/pressure/memory", "full 200000 2000000")]


def test_pressure_above_wakes_only_with_wake_true(tmp_path):
    rig = _rig(tmp_path, 1)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    ts.sync(_engine(rig, _pa(rig), _pa(rig, threshold="30")), rig.ctx)
    assert opener.calls == []
    ts.sync(_engine(rig, _pa(rig, wake="true")), rig.ctx)
    assert opener.open_now() == [(f"{rig.root}/w/c0/memory.pressure", "full 400000 2000000")]


def test_pressure_rising_beyond_wakes_with_wake_true(tmp_path):
    rig = _rig(tmp_path, 1)
    opener = Opener()
    p, ret = rig.create("pressure_rising_beyond", cgroup="w/*", resource="memory",
                        threshold="5", duration="0", wake="true")
    assert ret == 0
    TriggerSet(UNPRIV, 32, opener=opener).sync(_engine(rig, p), rig.ctx)
    assert opener.open_now() == [(f"{rig.root}/w/c0/memory.pressure", "full 100000 2000000")]


def test_identical_wants_share_one_trigger_and_disabled_rulesets_get_none(tmp_path):
    rig = _rig(tmp_path, 1)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    ts.sync(_engine(rig, _stall(rig), _stall(rig)), rig.ctx)
    assert len(ts) == 1
    ts.sync(_engine(rig, _stall(rig), enabled=False), rig.ctx)
    assert len(ts) == 0 and opener.open_now() == []


def test_some_beyond_the_bound_gets_one_trigger_on_the_common_ancestor(tmp_path):
    rig = _rig(tmp_path, 5)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 3, opener=opener)
    with logs.capture() as lines:
        ts.sync(_engine(rig, _stall(rig, line="some")), rig.ctx)
    assert opener.open_now() == [(f"{rig.root}/w/memory.pressure", "some 200000 2000000")]
    assert ("stall_above on w/* (memory some) matches 5 cgroups, more than the 3 PSI triggers "
            "left of --max-psi-triggers 3: one some trigger on their common ancestor w"
            ) in logs.messages(lines)


def test_full_beyond_the_bound_gets_no_trigger_and_says_so_once(tmp_path):
    rig = _rig(tmp_path, 5)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 3, opener=opener)
    engine = _engine(rig, _stall(rig))
    with logs.capture() as lines:
        ts.sync(engine, rig.ctx)
        ts.sync(engine, rig.ctx, force=True)
    assert opener.calls == []
    assert logs.messages(lines) == [
        "stall_above on w/* (memory full) matches 5 cgroups, more than the 3 PSI triggers left "
        "of --max-psi-triggers 3: no triggers for them; they are checked at the ticks"]


def test_wants_are_served_in_config_order_within_the_bound(tmp_path):
    rig = _rig(tmp_path, 3)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 4, opener=opener)
    first = _stall(rig, cgroup="w/c0,w/c1,w/c2")
    second = _stall(rig, line="some", threshold="20")  # 3 cgroups, 1 trigger left
    ts.sync(_engine(rig, first, second), rig.ctx)
    assert [t for _, t in opener.open_now()] == ["full 200000 2000000"] * 3 + [
        "some 400000 2000000"]
    assert opener.open_now()[-1][0] == f"{rig.root}/w/memory.pressure"


def test_vanished_and_recreated_cgroups_close_and_reopen_triggers(tmp_path):
    rig = _rig(tmp_path, 2)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    engine = _engine(rig, _stall(rig))
    ts.sync(engine, rig.ctx)
    assert len(opener.open_now()) == 2
    rig.remove("w/c1")
    rig.ctx.refresh(rig.clock())
    with logs.capture() as lines:
        assert ts.sync(engine, rig.ctx)
    assert opener.open_now() == [(f"{rig.root}/w/c0/memory.pressure", "full 200000 2000000")]
    assert logs.messages(lines) == ["PSI trigger on w/c1 (full 200000 2000000) removed"]
    rig.cgroup("w/c1", current=MB, mem_pressure=ft.psi())
    rig.ctx.refresh(rig.clock())
    ts.sync(engine, rig.ctx)
    assert len(opener.open_now()) == 2


def test_nothing_is_reopened_while_nothing_changed(tmp_path):
    rig = _rig(tmp_path, 2)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    engine = _engine(rig, _stall(rig))
    assert ts.sync(engine, rig.ctx)
    for _ in range(3):
        rig.ctx.refresh(rig.clock())
        assert not ts.sync(engine, rig.ctx)
    assert len(opener.calls) == 2


def test_reload_to_a_config_without_wants_closes_every_trigger(tmp_path):
    rig = _rig(tmp_path, 2)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    ts.sync(_engine(rig, _stall(rig)), rig.ctx)
    ts.sync(_engine(rig, _pa(rig)), rig.ctx)
    assert opener.open_now() == [] and len(ts) == 0


def test_removing_the_drop_in_that_wanted_them_closes_its_triggers(tmp_path):
    from oomd.engine import DropInUnit

    rig = _rig(tmp_path, 2)
    opener = Opener()
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    engine = _engine(rig, _pa(rig))
    engine.rulesets[0].ruleset.detectorgroups_dropin_enabled = True
    ts.sync(engine, rig.ctx)
    assert opener.calls == []
    dropin = Ruleset("r", [DetectorGroup("g", [_stall(rig)])], [])
    assert engine.add_drop_in("d.json", DropInUnit([dropin], []))
    assert ts.sync(engine, rig.ctx) and len(opener.open_now()) == 2
    engine.remove_drop_in("d.json")
    assert ts.sync(engine, rig.ctx) and opener.open_now() == []


def test_a_refused_trigger_is_logged_once_and_the_rest_still_register(tmp_path):
    rig = _rig(tmp_path, 2)
    opener = Opener(refuse={"c1": errno.EBUSY})
    ts = TriggerSet(UNPRIV, 32, opener=opener)
    engine = _engine(rig, _stall(rig))
    with logs.capture() as lines:
        ts.sync(engine, rig.ctx)
        ts.sync(engine, rig.ctx, force=True)
    assert len(opener.open_now()) == 1
    refused = [m for m in logs.messages(lines) if "refused" in m]
    assert refused == [f"PSI trigger on w/c1 ({rig.root}/w/c1/memory.pressure: full 200000 "
                       "2000000) refused: Device or resource busy; stall_above relies on the "
                       "ticks"]


def test_unavailable_triggers_open_nothing(tmp_path):
    rig = _rig(tmp_path, 2)
    opener = Opener()
    ts = TriggerSet(Capability(False, reason="x"), 32, opener=opener)
    assert not ts.sync(_engine(rig, _stall(rig)), rig.ctx)
    assert opener.calls == []


# -- the schedule -----------------------------------------------------------------------------


class Loop:
    """A Wakeup on the fake poller and clock, with a rig's engine and context."""

    def __init__(self, tmp_path, *plugins, interval=5.0, fast=0.1, cap=UNPRIV, max_triggers=32,
                 n=2, engine=None, **kw):
        self.rig = _rig(tmp_path, n)
        self.clock = self.rig.clock
        self.poller = FakePoller(self.clock)
        self.opener = Opener()
        plugins = plugins or (_stall(self.rig),)
        self.engine = engine or _engine(self.rig, *plugins)
        self.w = Wakeup(interval=interval, fast_interval=fast, max_triggers=max_triggers,
                        clock=self.clock, engine_of=lambda: self.engine,
                        ctx_of=lambda: self.rig.ctx, capability=cap, opener=self.opener,
                        poller=self.poller, **kw)
        self.start = self.clock()

    def trigger_fds(self) -> list[int]:
        return sorted(self.w.triggers.by_fd)

    def ticks_until(self, end: float) -> list[float]:
        """Times (from start) of the ticks that start before ``end`` (from start)."""
        out = []
        while True:
            assert self.w.wait() is None
            t = self.clock() - self.start
            if t >= end:
                return out
            out.append(round(t, 6))


def test_without_events_ticks_come_every_interval(tmp_path):
    loop = Loop(tmp_path)
    assert loop.ticks_until(21) == [5, 10, 15, 20]
    assert len(loop.poller.polls) == 5  # one wait per tick: the timer


def test_a_trigger_event_starts_a_tick_at_once_then_fast_ticks_for_a_window(tmp_path):
    loop = Loop(tmp_path)
    assert loop.w.wait() is None            # tick at 5 s; triggers armed before it
    fd = loop.trigger_fds()[0]
    loop.poller.at(loop.start + 6.23, fd, PRI)
    with logs.capture() as lines:
        ticks = loop.ticks_until(16)
    # at once at 6.23, every 0.1 s until the 2 s window of the event ends, then every 5 s
    fast = [round(6.23 + 0.1 * i, 6) for i in range(20)]
    assert ticks == fast + [10, 15]
    assert logs.messages(lines) == [
        "PSI trigger on w/c0 fired (full 200000 2000000): ticking every 0.1s while triggers "
        "fire", "No PSI trigger fired for a window: ticking every 5s"]
    assert loop.w.events == 1


def test_events_are_never_closer_than_the_fast_interval(tmp_path):
    loop = Loop(tmp_path, n=4)
    loop.w.wait()
    fds = loop.trigger_fds()
    t = loop.start + 6.0
    while t < loop.start + 9.0:  # a storm: every trigger, every 10 ms
        for fd in fds:
            loop.poller.at(t, fd, PRI)
        t += 0.01
    ticks = loop.ticks_until(12)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert min(gaps) >= 0.1 - 1e-9
    # fast ticks from the first event until a window (2 s) after the last one
    assert ticks[0] == 6.0 and 10.8 < ticks[-1] < 11.0
    assert 29 <= len([x for x in ticks if 6 <= x < 9]) <= 31
    # every poll either delivered an event or waited for the next tick: no zero-timeout spin
    assert sum(1 for p in loop.poller.polls if p == 0) == 0


def test_fast_ticks_still_honour_post_action_delay(tmp_path):
    import json

    from oomd.config.compiler import compile_config
    from oomd.config.parser import parse_string
    from oomd.kmsg import Kmsg

    config = {"rulesets": [{"name": "r", "post_action_delay": 1, "detectors": [["g", {
        "name": "stall_above", "args": {"cgroup": "w/*", "resource": "memory",
                                        "threshold": "10", "window": "2"}}]],
        "actions": [{"name": "kill_by_stall", "args": {"cgroup": "w/*", "resource": "memory",
                                                      "dry": "true"}}]}]}
    loop = Loop(tmp_path, n=1)
    engine = compile_config(parse_string(json.dumps(config), "c.json"),
                            loop.rig.construction_context(), loop.clock)
    loop.engine = engine
    ctx = loop.rig.ctx
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    loop.w.wait()  # first tick at 5 s arms the trigger
    fd = loop.trigger_fds()[0]
    for k in range(4):  # pressure for 8 s: the kernel signals once per 2 s window
        loop.poller.at(loop.start + 6 + 2 * k, fd, PRI)
    ticks = []
    with logs.capture():
        while loop.clock() - loop.start < 14:
            engine.tick(ctx)
            now = loop.clock() - loop.start
            ticks.append(now)
            if 6 <= now < 14:  # the cgroup stalls half of the time
                loop.rig.write("w/c0", memory_pressure=ft.psi(
                    full_total=int((now - 6) * 500_000), some_total=int((now - 6) * 500_000)))
            assert loop.w.wait() is None
    kills = [line for line in (tmp_path / "kmsg").read_text().splitlines() if "(dry)" in line]
    fast = [b - a for a, b in zip(ticks, ticks[1:]) if 6 <= a < 14]
    assert min(fast) >= 0.1 - 1e-9 and len(fast) > 60
    # fired at every fast tick from ~6.3 s to 14 s (70 ticks); the chain ran once a second
    assert 6 <= len(kills) <= 9, (len(kills), len(fast))


def test_a_vanished_cgroups_pollerr_closes_its_trigger_without_a_tick(tmp_path):
    loop = Loop(tmp_path)
    loop.w.wait()
    fd = loop.trigger_fds()[0]
    for k in range(50):  # POLLERR stays set on a removed cgroup's trigger
        loop.poller.at(loop.start + 6 + k * 1e-3, fd, ERR | PRI)
    with logs.capture() as lines:
        ticks = loop.ticks_until(11)
    assert ticks == [10]
    assert fd not in loop.w.triggers.by_fd and fd not in loop.poller.masks
    assert "PSI trigger on w/c0 removed: the cgroup is gone" in logs.messages(lines)
    assert len(loop.poller.polls) <= 4


def test_without_triggers_ticks_stay_at_the_interval(tmp_path):
    loop = Loop(tmp_path, cap=Capability(False, reason="no PSI"))
    assert loop.ticks_until(16) == [5, 10, 15]
    assert loop.opener.calls == []


def test_fast_interval_is_never_longer_than_the_interval(tmp_path):
    loop = Loop(tmp_path, interval=0.5, fast=2.0)
    assert loop.w.fast == 0.5


def test_a_signal_is_returned_between_ticks(tmp_path):
    import signal
    loop = Loop(tmp_path, signals=(signal.SIGUSR2,))
    old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
    try:
        loop.poller.at(loop.start + 1.0, loop.w._sig_fd, IN)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)  # blocked in this thread
        sig = loop.w.wait()
        assert sig is not None and sig.si_signo == signal.SIGUSR2
        assert loop.clock() - loop.start == 1.0
    finally:
        loop.w.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def test_a_drop_in_event_is_applied_after_settling_without_a_tick(tmp_path):
    r, wfd = os.pipe()
    applied = []
    try:
        loop = Loop(tmp_path, dropin_fd=lambda: r, apply_dropins=lambda: applied.append(
            loop.clock() - loop.start))
        loop.poller.at(loop.start + 1.0, r, IN)
        assert loop.ticks_until(6) == [5]
        assert applied == [pytest.approx(1.0 + wakeup.DROPIN_SETTLE)]
        assert loop.poller.masks[r] == IN  # re-armed
    finally:
        os.close(r)
        os.close(wfd)


def test_the_readers_inotify_is_drained_at_most_once_a_second(tmp_path):
    loop = Loop(tmp_path)
    drained = []
    fd = loop.rig.ctx.watch_fd()
    if fd < 0:  # the rig's fake tree is read without inotify: stand in for the reader
        r, _w = os.pipe()
        loop.rig.ctx.watch_fd = lambda: r
        fd = r

    def drain():  # reading inotify takes every queued event
        drained.append(round(loop.clock() - loop.start, 6))
        loop.poller.script = [e for e in loop.poller.script
                              if e[1] != fd or e[0] > loop.clock()]

    loop.rig.ctx.drain_watches = drain
    for k in range(40):
        loop.poller.at(loop.start + 1.0 + k * 0.05, fd, IN)
    assert loop.ticks_until(6) == [5]
    assert drained == [1.0, 2.0, 3.0]


# -- the options ------------------------------------------------------------------------------


def test_fast_interval_and_trigger_bound_options_parse():
    from oomd.cli import parse_options

    o = parse_options(["--fast-interval", "0.25", "--max-psi-triggers", "0"])
    assert (o.fast_interval, o.max_psi_triggers) == (0.25, 0)
    o = parse_options([])
    assert (o.fast_interval, o.max_psi_triggers) == (wakeup.DEFAULT_FAST_INTERVAL,
                                                     wakeup.DEFAULT_MAX_TRIGGERS)


@pytest.mark.parametrize("argv,message", [
    (["--fast-interval", "0"], "--fast-interval needs seconds > 0, got '0'"),
    (["--fast-interval", "x"], "--fast-interval needs seconds > 0, got 'x'"),
    (["--max-psi-triggers", "-1"], "--max-psi-triggers needs a count of 0 or more, got '-1'"),
    (["--max-psi-triggers", "2.5"], "--max-psi-triggers needs a count of 0 or more, got '2.5'"),
])
def test_bad_wakeup_options_exit_one_with_a_reason(capsys, argv, message):
    from oomd.cli import main

    assert main(argv) == 1
    assert capsys.readouterr().err == message + "\n"


def test_a_failing_trigger_update_is_logged_and_the_ticks_go_on(tmp_path):
    loop = Loop(tmp_path)

    def broken(patterns):
        raise RuntimeError("boom")

    loop.rig.ctx.resolve = broken
    with logs.capture() as lines:
        assert loop.ticks_until(11) == [5, 10]
    assert "PSI trigger update failed: RuntimeError: boom" in logs.messages(lines)
