"""What a daemon with a recording holds (``--record DIR``, and the flight recorder's ring):
``RecordSession``. The daemon calls ``after_tick(ctx)`` once the engine's tick is done; the
engine's observer (wrapped by ``observer()``) tells it which detector groups fired and which
kill decisions were made; ``config_event`` records drop-ins and reloads.

Nothing here may fail a tick: every call is guarded and a failure is logged once.
"""

from __future__ import annotations

import os

from oomd import logs
from oomd.context.metric_table import METRICS
from oomd.engine import EngineObserver
from oomd.plugin import MonitoredResources
from oomd.record.ticks import Capturer, TickSnapshot

# what a kill decision reads of its candidates besides the ranking: the kill record's
# pressure and usage, the preference (oomd.plugins.base_kill). Not is_populated (a file read
# per candidate per tick): replay serves it as unknown where it was not read, which a kill
# plugin treats as populated, as it treats a missing cgroup.events live.
DECISION_METRICS = ("mem_pressure", "current_usage", "kill_preference")


def decision_metrics(engine) -> MonitoredResources:
    """What a recording reads every tick beyond what the config monitors: for each kill
    plugin's ``cgroup``, the file-backed values its decision reads when it runs (its
    ranking's metrics read straight from a file, and ``DECISION_METRICS``), so that a replay
    of another kill plugin over the same cgroups finds them at every tick, not only at the
    ticks the recorded config killed. Reading them changes no decision (no history). Derived
    metrics are left out: the temporal ones (average, rates) would change if computed every
    tick, and protection over siblings costs as much as the rest of the tick; a replay that
    needs one where the live config did not compute it stops and says so."""
    res = MonitoredResources()
    for base in engine.rulesets:
        for rs in [base.ruleset] + [d.ruleset for d in base.dropins]:
            for p in rs.plugins():
                rank = getattr(p, "RANK_METRICS", None)
                cgroup = getattr(p, "cgroup", None)
                if rank is None or cgroup is None:
                    continue
                names = [m for m in tuple(rank) + DECISION_METRICS
                         if m in METRICS and METRICS[m].derive is None]
                compat = getattr(p, "compat", None)
                if getattr(compat, "skip_zero_anon", False):
                    names.append("anon_usage_strict")
                res.add(cgroup, *names)
    return res


class RecordingObserver(EngineObserver):
    """Forwards everything to ``inner`` (the metrics' observer, or None) and tells the session
    about detector groups that fired and decisions."""

    def __init__(self, session: "RecordSession", inner: EngineObserver | None) -> None:
        self.session = session
        self.inner = inner

    def detector_group(self, ruleset: str, group: str, fired: bool) -> None:
        if fired:
            self.session.fired.append((ruleset, group))
        if self.inner is not None:
            self.inner.detector_group(ruleset, group, fired)

    def action(self, ruleset, plugin, ret) -> None:
        if self.inner is not None:
            self.inner.action(ruleset, plugin, ret)

    def kill(self, ruleset, plugin, outcome, fire_to_kill_seconds) -> None:
        if self.inner is not None:
            self.inner.kill(ruleset, plugin, outcome, fire_to_kill_seconds)

    def kill_event(self, ruleset, plugin, event, seconds) -> None:
        if self.inner is not None:
            self.inner.kill_event(ruleset, plugin, event, seconds)

    def decision(self, record: dict) -> None:
        self.session.decision(record)
        inner = getattr(self.inner, "decision", None)
        if inner is not None:
            inner(record)


class RecordSession:
    """``recorder``: an ``oomd.record.writer.Recorder`` (or None); ``ring``: a
    ``TickRing`` (or None); both get every tick snapshot (and encode it at once: the snapshot
    holds views of the live columns). Decisions go to the recorder, which encodes them at once
    (none is kept here: a record of 10,000 candidates is megabytes of Python objects).
    ``last``: this tick's snapshot, valid until the next tick."""

    def __init__(self, recorder=None, ring=None, log=None) -> None:
        self.recorder = recorder
        self.ring = ring
        self.capturer = Capturer()
        self.fired: list[tuple[str, str]] = []
        self.last: TickSnapshot | None = None
        self._log = log or logs.log
        self._failed = False

    def observer(self, inner: EngineObserver | None) -> RecordingObserver:
        return RecordingObserver(self, inner)

    def after_tick(self, ctx) -> None:
        fired, self.fired = self.fired, []
        try:
            # views of the live columns: both sinks encode before returning
            snap = self.capturer.capture(ctx, fired, copy=False)
            self.last = snap
            if self.recorder is not None:
                self.recorder.tick(snap)
            if self.ring is not None:
                self.ring.add(snap)
        except Exception as e:  # noqa: BLE001 - a recording never fails a tick
            if not self._failed:
                self._failed = True
                self._log(f"[record] could not record a tick: {type(e).__name__}: {e} "
                          "(logged once)", logs.ERR)

    def decision(self, record: dict) -> None:
        if self.recorder is not None:
            self.recorder.decision(record)

    def config_event(self, tick: int, op: str, tag: str, path: str | None) -> None:
        """A drop-in added/removed (``op`` "add"/"remove") or the base config reloaded
        ("reload"), taking effect at ``tick``; the file's text is kept so replay can apply it."""
        if self.recorder is None:
            return
        text = None
        if path is not None and op != "remove":
            try:
                with open(path, "rb") as f:
                    text = f.read(4 << 20).decode("utf-8", "surrogateescape")
            except OSError:
                text = None
        self.recorder.config_event({"tick": tick, "op": op, "tag": tag,
                                    "file": None if path is None else os.fspath(path),
                                    "text": text})

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
