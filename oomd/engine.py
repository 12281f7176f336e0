"""Rulesets, detector groups and the engine (reference §1; oomd ``src/oomd/engine/``).

One tick: ``ctx.refresh`` -> prerun every plugin of every enabled ruleset -> run every ruleset.
A ruleset evaluates every detector group (all of them, so sliding windows stay current), and if
one fired, runs its action chain, honouring pauses and suspended (async) chains.

A plugin that raises is logged with its ruleset, counted, and treated as STOP: an error can
never cause a kill.
"""

from __future__ import annotations

import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from oomd import logs
from oomd.compat import V050, Compat
from oomd.decision import DetectorHistory
from oomd.names import shown
from oomd.plugin import BasePlugin, MonitoredResources, PluginRet, PrekillHook

SILENCE_ENGINE = 1
SILENCE_PLUGINS = 2
PLUGIN_ERRORS_STAT = "pyoomd.plugin_errors"
DEFAULT_POST_ACTION_DELAY = 15
DEFAULT_PREKILL_HOOK_TIMEOUT = 5


@dataclass
class ActionContext:
    """Why an action chain runs: set when a detector group fires (reference §1.3)."""

    ruleset: str = ""
    detectorgroup: str = ""
    uuid: str = ""
    prekill_hook_deadline: float | None = None
    fired_at: float | None = None  # when the ruleset's detectors started firing (this streak)


class EngineObserver:
    """Hooks for metrics; the default does nothing."""

    def detector_group(self, ruleset: str, group: str, fired: bool) -> None:
        pass

    def action(self, ruleset: str, plugin: str, ret: PluginRet) -> None:
        pass

    def kill(self, ruleset: str, plugin: str, outcome: str,
             fire_to_kill_seconds: float | None) -> None:
        """A kill plugin's attempt: outcome is "killed", "dry", "failed", "skipped" (the view
        was incomplete) or "in_progress" (the cgroup it reached is still exiting from a kill)."""

    def kill_event(self, ruleset: str, plugin: str, event: str, seconds: float | None) -> None:
        """After a delivered kill, from the killer's waiter thread: "empty" (seconds from the
        kill to an empty cgroup), "exit_timeout" (the bound passed first; seconds waited) or
        "reap_refused" (process_mrelease got EPERM/ENOSYS; seconds is None)."""

    def decision(self, record: dict) -> None:
        """A kill plugin's decision (killed, or dry), in the tick after the kill: the decision
        record (oomd.decision), which has the keys of a recording's DECISION frame
        (``oomd.record.format``): tick, time, ruleset, ruleset_label, detectorgroup, plugin,
        victim, victim_path, cgroup_id, dry, record. Keep it; do not block."""


def report_kill(ctx, plugin: str, outcome: str) -> None:
    """Kill plugins call this after an attempt, for the metrics (a no-op without observer)."""
    engine = getattr(ctx, "engine", None)
    observer = getattr(engine, "observer", None)
    ac = getattr(ctx, "action_context", None)
    ruleset = getattr(ctx, "invoking_ruleset", None)
    if observer is None or ac is None:
        return
    label = getattr(ruleset, "label", ac.ruleset)
    elapsed = None if ac.fired_at is None else engine.clock() - ac.fired_at
    observer.kill(label, plugin, outcome, elapsed)


def report_decision(ctx, record: dict) -> None:
    """Kill plugins hand each decision record (oomd.decision) here at the end of a kill cycle:
    to the context's ``decisions`` list when it has one (replay, tests), and, for a kill or a
    dry kill, to the engine's observer (a recording's DECISION frame, the flight recorder)."""
    sink = getattr(ctx, "decisions", None)
    if sink is not None:
        sink.append(record)
    if record.get("outcome") not in ("killed", "dry"):
        return
    engine = getattr(ctx, "engine", None)
    observer = getattr(engine, "observer", None)
    decide = getattr(observer, "decision", None)
    if decide is not None:
        decide(record)


def kill_event_reporter(ctx, plugin: str) -> Callable[[str, float | None], None] | None:
    """What a kill plugin hands its killer for the events after the kill: ``report(event,
    seconds)`` to the engine's observer, labelled with the ruleset of this kill (None without
    an observer). It is called from the killer's waiter thread, later."""
    engine = getattr(ctx, "engine", None)
    observer = getattr(engine, "observer", None)
    kill_event = getattr(observer, "kill_event", None)
    if kill_event is None:
        return None
    ac = getattr(ctx, "action_context", None)
    ruleset = getattr(ctx, "invoking_ruleset", None)
    label = getattr(ruleset, "label", getattr(ac, "ruleset", ""))

    def report(event: str, seconds: float | None) -> None:
        kill_event(label, plugin, event, seconds)

    return report


def _call(method: Callable, plugin: BasePlugin, ruleset: Ruleset, ctx, what: str):
    """Run a plugin method; an exception or a bad return value counts as STOP."""
    try:
        ret = method(ctx)
    except Exception as e:  # noqa: BLE001 - any plugin failure must be contained
        _plugin_failed(plugin, ruleset, ctx, what, f"raised {type(e).__name__}: {e}",
                       traceback.format_exc())
        return PluginRet.STOP
    if what == "run" and not isinstance(ret, PluginRet):
        try:
            return PluginRet(ret)
        except ValueError:
            _plugin_failed(plugin, ruleset, ctx, what, f"returned {ret!r}, not a PluginRet", "")
            return PluginRet.STOP
    return ret


def _plugin_failed(plugin, ruleset, ctx, what, why, tb):
    logs.log(f"Plugin={plugin.name} in Ruleset={ruleset.name} {what}() {why}; treated as STOP",
             logs.ERR, force=True)
    if tb:
        for line in tb.rstrip().splitlines():
            logs.log(line, logs.DEBUG, force=True)
    stats = getattr(ctx, "stats", None)
    if stats is not None:
        stats.increment(PLUGIN_ERRORS_STAT)


class DetectorGroup:
    def __init__(self, name: str, detectors: Sequence[BasePlugin]) -> None:
        self.name = name
        self.detectors = list(detectors)
        self.last_fired = False

    def prerun(self, ctx, ruleset: Ruleset) -> None:
        for d in self.detectors:
            _call(d.prerun, d, ruleset, ctx, "prerun")

    def check(self, ctx, ruleset: Ruleset) -> bool:
        """Run every detector (none is skipped); true unless one returned STOP."""
        triggered = True
        for d in self.detectors:
            with logs.plugin_logs_silenced(bool(ruleset.silenced_logs & SILENCE_PLUGINS)):
                ret = _call(d.run, d, ruleset, ctx, "run")
            if ret == PluginRet.STOP:
                triggered = False
        self.last_fired = triggered
        return triggered

    def observations(self) -> list:
        """This tick's detector observations (``plugin.observation``; None where a detector
        keeps none), for the ruleset's history."""
        return [getattr(d, "observation", None) for d in self.detectors]


@dataclass
class _SuspendedChain:
    index: int
    action_context: ActionContext


class Ruleset:
    def __init__(
        self,
        name: str,
        detector_groups: Sequence[DetectorGroup],
        actions: Sequence[BasePlugin],
        *,
        disable_on_drop_in: bool = False,
        detectorgroups_dropin_enabled: bool = False,
        actiongroup_dropin_enabled: bool = False,
        silenced_logs: int = 0,
        post_action_delay: int = DEFAULT_POST_ACTION_DELAY,
        prekill_hook_timeout: int = DEFAULT_PREKILL_HOOK_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        compat: Compat = V050,
    ) -> None:
        self.name = name
        self.label = name  # for metrics: drop-in copies say which drop-in they come from
        self.detector_groups = list(detector_groups)
        self.actions = list(actions)
        self.disable_on_drop_in = disable_on_drop_in
        self.detectorgroups_dropin_enabled = detectorgroups_dropin_enabled
        self.actiongroup_dropin_enabled = actiongroup_dropin_enabled
        self.silenced_logs = silenced_logs
        self.post_action_delay = post_action_delay
        self.prekill_hook_timeout = prekill_hook_timeout
        self.clock = clock
        self.enabled = True
        self.num_targeted = 0
        self.pause_actions_until = float("-inf")
        self._plugin_overrode_delay = False
        self._suspended: _SuspendedChain | None = None
        self.firing_since: float | None = None
        self.compat = compat
        self.ruleset_cgroup: str | None = None  # a per-cgroup clone's cgroup (absolute path)
        self.history = DetectorHistory()  # detector observations tick by tick (oomd.decision)

    # -- drop-ins (reference §2.5) ------------------------------------------------------------

    def merge_with_drop_in(self, dropin: Ruleset) -> str | None:
        """Take the drop-in's detector groups and/or actions. Returns an error text or None."""
        if dropin.detector_groups:
            if not self.detectorgroups_dropin_enabled:
                return "Error: DetectorGroup drop-in configs disabled"
            self.detector_groups = dropin.detector_groups
        if dropin.actions:
            if not self.actiongroup_dropin_enabled:
                return "Error: Action drop-in configs disabled"
            self.actions = dropin.actions
        return None

    def mark_drop_in_targeted(self) -> None:
        self.num_targeted += 1
        if self.disable_on_drop_in and self.num_targeted:
            self.enabled = False

    def mark_drop_in_untargeted(self) -> None:
        self.num_targeted -= 1
        if self.num_targeted <= 0:
            self.enabled = True

    # -- running -------------------------------------------------------------------------------

    def pause_actions(self, seconds: float) -> None:
        """A kill plugin's own post_action_delay: replaces the ruleset's for this STOP."""
        self.pause_actions_until = self.clock() + seconds
        self._plugin_overrode_delay = True

    def prerun(self, ctx) -> None:
        if not self.enabled:
            return
        for dg in self.detector_groups:
            dg.prerun(ctx, self)
        for action in self.actions:
            _call(action.prerun, action, self, ctx, "prerun")

    def run_once(self, ctx) -> int:
        if not self.enabled:
            return 0
        observer = getattr(getattr(ctx, "engine", None), "observer", None)
        fired: ActionContext | None = None
        seen = []
        for dg in self.detector_groups:
            hit = dg.check(ctx, self)
            seen.append({"name": dg.name, "fired": hit, "detectors": dg.observations()})
            if observer is not None:
                observer.detector_group(self.label, dg.name, hit)
            if hit and fired is None:
                now = self.clock()
                if self.firing_since is None:
                    self.firing_since = now
                fired = ActionContext(self.name, dg.name, uuid.uuid4().hex,
                                      now + self.prekill_hook_timeout, self.firing_since)
        if fired is None:
            self.firing_since = None
        self.history.add(int(getattr(ctx, "tick", 0) or 0), float(getattr(ctx, "now", 0.0) or 0.0),
                         seen)
        ctx.action_context = fired
        ctx.invoking_ruleset = self if fired is not None else None
        try:
            if self.clock() < self.pause_actions_until:
                return 0
            if self._suspended is not None:
                suspended, self._suspended = self._suspended, None
                ctx.action_context = suspended.action_context
                ctx.invoking_ruleset = self
                if self.compat.fired_line_cgroup and not self.silenced_logs & SILENCE_ENGINE:
                    logs.log(self._fired_line(suspended.action_context.detectorgroup,
                                              "Running action chain from state."))
                return self._run_chain(suspended.index, ctx)
            if fired is None:
                return 0
            if not self.silenced_logs & SILENCE_ENGINE:
                logs.log(self._fired_line(fired.detectorgroup, "Running action chain."))
            return self._run_chain(0, ctx)
        finally:
            ctx.action_context = None
            ctx.invoking_ruleset = None

    def _fired_line(self, group: str, tail: str) -> str:
        """The engine's "has fired" line; oomd HEAD names the ruleset cgroup (empty outside
        a per-cgroup ruleset)."""
        where = ""
        if self.compat.fired_line_cgroup:
            where = f" with ruleset cgroup `{shown(self.ruleset_cgroup or '')}`"
        return f"DetectorGroup={group} has fired for Ruleset={self.name}{where}. {tail}"

    def release(self) -> None:
        """The ruleset is being dropped (a per-cgroup clone whose cgroup went away): let go of
        what its plugins hold across ticks (a running prekill hook)."""
        self._suspended = None
        for p in self.plugins():
            release = getattr(p, "release", None)
            if release is not None:
                try:
                    release()
                except Exception as e:  # noqa: BLE001 - dropping must not fail the tick
                    logs.log(f"Plugin={p.name} in Ruleset={self.name} release() raised "
                             f"{type(e).__name__}: {e}", logs.ERR, force=True)

    def _run_chain(self, start: int, ctx) -> int:
        engine_logs = not self.silenced_logs & SILENCE_ENGINE
        observer = getattr(getattr(ctx, "engine", None), "observer", None)
        for index in range(start, len(self.actions)):
            action = self.actions[index]
            if engine_logs:
                logs.log(f"Running Action={action.name}")
            with logs.plugin_logs_silenced(bool(self.silenced_logs & SILENCE_PLUGINS)):
                ret = _call(action.run, action, self, ctx, "run")
            if observer is not None:
                observer.action(self.label, action.name, ret)
            if ret == PluginRet.CONTINUE:
                if engine_logs:
                    logs.log(f"Action={action.name} returned CONTINUE. Continuing action chain.")
                continue
            if ret == PluginRet.STOP:
                if engine_logs:
                    logs.log(f"Action={action.name} returned STOP. Terminating action chain.")
                if not self._plugin_overrode_delay:
                    self.pause_actions_until = self.clock() + self.post_action_delay
                self._plugin_overrode_delay = False
                return 1
            self._suspended = _SuspendedChain(index, ctx.action_context)
            logs.log(f"Action={action.name} returned ASYNC. Yielding action chain.")
            return 0
        return 1

    @property
    def resources(self) -> MonitoredResources:
        """What this ruleset's plugins monitor (each plugin keeps what its init added)."""
        res = MonitoredResources()
        for plugin in self.plugins():
            own = getattr(plugin, "resources", None)
            if own is not None:
                res.update(own)
        return res

    def plugins(self) -> Iterable[BasePlugin]:
        for dg in self.detector_groups:
            yield from dg.detectors
        yield from self.actions


@dataclass
class DropInUnit:
    rulesets: list[Ruleset]
    prekill_hooks: list[PrekillHook]


@dataclass
class _DropInRuleset:
    tag: str
    ruleset: Ruleset


@dataclass
class _BaseRuleset:
    ruleset: Ruleset
    dropins: list[_DropInRuleset]


class Engine:
    def __init__(
        self,
        rulesets: Sequence[Ruleset],
        prekill_hooks: Sequence[PrekillHook] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        stats=None,
    ) -> None:
        self.clock = clock
        self.stats = stats
        self.observer: EngineObserver | None = None
        self.rulesets = [_BaseRuleset(rs, []) for rs in rulesets if rs is not None]
        for rs in rulesets:
            rs.clock = clock
        # (tag, hook): drop-in hooks first (most recent drop-in first), then base hooks
        self._hooks: list[tuple[str | None, PrekillHook]] = [(None, h) for h in prekill_hooks]
        self._monitored_dirty = True
        # more to read every tick, from the rulesets (a recording: oomd.record.session)
        self.extra_monitored: Callable[[Engine], MonitoredResources] | None = None

    # -- resources -----------------------------------------------------------------------------

    def monitored(self) -> MonitoredResources:
        """The union of what every ruleset (base and drop-in) monitors."""
        res = MonitoredResources()
        for base in self.rulesets:
            res.update(base.ruleset.resources)
            for d in base.dropins:
                res.update(d.ruleset.resources)
        if self.extra_monitored is not None:
            res.update(self.extra_monitored(self))
        return res

    # -- drop-ins ------------------------------------------------------------------------------

    def add_drop_in(self, tag: str, unit: DropInUnit) -> bool:
        for ruleset in unit.rulesets:
            target = next((b for b in self.rulesets if b.ruleset.name == ruleset.name), None)
            if target is None:
                logs.log(f"Error: could not locate targeted ruleset: {ruleset.name}")
                self.remove_drop_in(tag)
                return False
            ruleset.clock = self.clock
            ruleset.label = f"{ruleset.name} (drop-in {tag})"
            target.dropins.insert(0, _DropInRuleset(tag, ruleset))
            target.ruleset.mark_drop_in_targeted()
            if self.stats is not None:
                self.stats.increment("oomd.dropin.added", 1)
        # later drop-ins' hooks come before earlier ones; within a file, in file order
        self._hooks[0:0] = [(tag, h) for h in unit.prekill_hooks]
        self._monitored_dirty = True
        return True

    def remove_drop_in(self, tag: str) -> None:
        for base in self.rulesets:
            keep = [d for d in base.dropins if d.tag != tag]
            n = len(base.dropins) - len(keep)
            if not n:
                continue
            base.dropins = keep
            for _ in range(n):
                base.ruleset.mark_drop_in_untargeted()
            if self.stats is not None:
                self.stats.increment("oomd.dropin.added", -n)
        self._hooks = [(t, h) for t, h in self._hooks if t != tag]
        self._monitored_dirty = True

    # -- prekill hooks -------------------------------------------------------------------------

    def fire_prekill_hook(self, relpath: str, abspath: str, action_context,
                          dir_fd: int | None = None):
        """Fire the first hook matching the victim (``dir_fd``: its directory, for hooks
        that match an xattr)."""
        for _tag, hook in self._hooks:
            matches = getattr(hook, "matches", None)
            if matches(relpath, dir_fd) if matches is not None else hook.can_run_on(relpath):
                return hook.fire(relpath, abspath, action_context)
        return None

    # -- the tick ------------------------------------------------------------------------------

    def prerun(self, ctx) -> None:
        for base in self.rulesets:
            for d in base.dropins:
                d.ruleset.prerun(ctx)
            base.ruleset.prerun(ctx)

    def run_once(self, ctx) -> None:
        fired = 0
        for base in self.rulesets:
            for d in base.dropins:
                fired += d.ruleset.run_once(ctx)
            base.ruleset.run_once(ctx)
        if self.stats is not None:
            self.stats.increment("oomd.dropin.fired", fired)

    def tick(self, ctx) -> None:
        """One iteration of oomd's main loop after the sleep (reference §1.1 steps 3-5)."""
        ctx.engine = self
        if self._monitored_dirty and hasattr(ctx, "set_monitored"):
            ctx.set_monitored(self.monitored().entries())
            self._monitored_dirty = False
        ctx.refresh(self.clock())
        self.prerun(ctx)
        self.run_once(ctx)
