"""Replay: the real engine and plugins over a recording (docs/replay.md).

``replay(path, config)`` compiles the config as the daemon would, with every kill plugin dry,
prekill hooks off and no killer, and runs ``Engine.tick`` on a ``ReplayContext`` for each
recorded tick, at the recorded times (the engine's clock is the recorded monotonic time), with
the recorded drop-ins applied at their ticks (and, when it runs the recorded config, the
recorded SIGHUP reloads). Before anything runs, one pass over
the recording checks that every tick has what the config monitors (the metrics of every cgroup
its patterns match, and the cgroups themselves): the first gap stops the replay with an error
naming the metric, the cgroup pattern and the tick. A recording made of several daemon runs
(a restart: a new run id) starts a fresh engine at each run, as the daemon did.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import closing
from dataclasses import dataclass, field

from oomd import plugin
from oomd.compat import Compat
from oomd.config.compiler import Compiler
from oomd.config.parser import parse_string
from oomd.dropins import DropIns
from oomd.engine import PLUGIN_ERRORS_STAT, EngineObserver
from oomd.errors import ConfigError
from oomd.record.format import RecordingError
from oomd.record.reader import Recording
from oomd.record.replay_ctx import ReplayContext, ReplayGap
from oomd.record.session import decision_metrics
from oomd.stats import Stats


class ReplayError(RecordingError):
    """Replay cannot run (bad config, or the recording lacks what the config needs)."""


@dataclass
class ReplayResult:
    recording: str
    config: str
    ticks: int = 0
    first_tick: int | None = None
    last_tick: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    first_wall: float | None = None
    last_wall: float | None = None
    runs: int = 0
    firings: list[tuple[int, str, str]] = field(default_factory=list)   # (tick, ruleset, group)
    decisions: list[dict] = field(default_factory=list)
    recorded_firings: list[tuple[int, str, str]] = field(default_factory=list)
    recorded_decisions: list[dict] = field(default_factory=list)
    plugin_errors: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        by_rs: dict[str, int] = {}
        for d in self.decisions:
            by_rs[d.get("ruleset", "")] = by_rs.get(d.get("ruleset", ""), 0) + 1
        return {"ticks": self.ticks, "first_tick": self.first_tick, "last_tick": self.last_tick,
                "seconds": (None if self.first_time is None
                            else round(self.last_time - self.first_time, 3)),
                "runs": self.runs, "firings": len(self.firings), "kills": len(self.decisions),
                "kills_by_ruleset": by_rs, "recorded_kills": len(self.recorded_decisions),
                "plugin_errors": self.plugin_errors, "problems": list(self.problems)}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _NoKiller:
    """Replay never kills: every kill plugin is dry, and nothing is ever held."""

    def kill(self, *a, **k):
        raise RecordingError("replay never kills (kill plugins are dry)")

    def holding(self, *a, **k):
        return None


class _Kmsg:
    """Kill records go to the result, not to a file."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> bool:
        self.lines.append(text)
        return True

    def kill_record(self, body: str) -> bool:
        return self.write("oomd kill: " + body)


class _Observer(EngineObserver):
    def __init__(self) -> None:
        self.fired: list[tuple[str, str]] = []
        self.decisions: list[dict] = []

    def detector_group(self, ruleset: str, group: str, fired: bool) -> None:
        if fired:
            self.fired.append((ruleset, group))

    def decision(self, record: dict) -> None:
        self.decisions.append(record)


class _Run:
    """One daemon run's worth of replay: engine, drop-ins, context."""

    def __init__(self, meta: dict, config_text: str, config_name: str, plugin_kw: dict,
                 follow_reloads: bool = False) -> None:
        self.follow_reloads = follow_reloads
        self.clock = _Clock()
        self.stats = Stats()
        self.stats.init_core()
        self.cgroup_fs = str(meta.get("cgroup_fs") or "/sys/fs/cgroup")
        compat = Compat.for_mode(str(meta.get("compat") or "0.5.0"))
        devices = tuple(tuple(d) for d in meta.get("devices") or ())
        self.pctx = plugin.PluginConstructionContext(
            cgroup_fs=self.cgroup_fs, stats=self.stats, force_dry=True, kmsg_path=os.devnull,
            devices=devices, compat=compat, killer=_NoKiller(), **plugin_kw)
        self.config_name = config_name
        self.observer = _Observer()
        self.root, self.engine = self._compile(config_text)
        self.dropins = DropIns(Compiler(self.pctx, config_name, self.clock), self.root)
        self.ctx = ReplayContext(self.cgroup_fs, interval=float(meta.get("interval") or 5),
                                 stats=self.stats)
        self.ctx.kmsg = _Kmsg()
        self._tmp = tempfile.TemporaryDirectory(prefix="pyoomd-replay-")

    def _compile(self, text: str):
        try:
            root = parse_string(text, self.config_name)
            engine = Compiler(self.pctx, self.config_name, self.clock).compile(root)
        except ConfigError as e:
            raise ReplayError(str(e)) from None
        _refuse_unreplayable(engine)
        engine.observer = self.observer
        engine.extra_monitored = decision_metrics
        engine.fire_prekill_hook = lambda *a, **k: None   # hooks never run in replay
        return root, engine

    def config_event(self, ev: dict, with_dropins: bool) -> None:
        op, tag = ev.get("op"), str(ev.get("tag") or "")
        if op == "reload":
            # the recorded config (no --config): the reloaded text, as the daemon's SIGHUP
            # (a new engine, the drop-ins attached again); a config given to replay stays
            text = ev.get("text")
            if self.follow_reloads and isinstance(text, str):
                try:
                    root, engine = self._compile(text)
                except ReplayError:
                    return          # the daemon kept the old config too
                self.dropins.reattach(engine, Compiler(self.pctx, self.config_name, self.clock),
                                      root)
                self.root, self.engine = root, engine
            return
        if not with_dropins or op not in ("add", "remove") or not tag:
            return
        if op == "remove":
            self.dropins.remove(self.engine, tag)
            return
        text = ev.get("text")
        if not isinstance(text, str):
            return
        path = os.path.join(self._tmp.name, os.path.basename(tag) or "drop-in")
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
        self.dropins.add(self.engine, tag, path)

    def monitored(self):
        return self.engine.monitored().entries()

    def close(self) -> None:
        self._tmp.cleanup()


def _refuse_unreplayable(engine) -> None:
    for base in engine.rulesets:
        for rs in [base.ruleset] + [d.ruleset for d in base.dropins]:
            if getattr(rs, "xattr_filter", None):
                raise ReplayError(f"ruleset {rs.name!r} has an xattr_filter: recordings hold no "
                                  "xattrs but the kill preference, so it cannot be replayed")


def _config_text(config: str | None, meta: dict) -> tuple[str, str]:
    if config is None:
        text = meta.get("config")
        if not isinstance(text, str):
            raise ReplayError("the recording holds no config text: pass --config")
        return text, str(meta.get("config_file") or "<recorded config>")
    try:
        with open(config, encoding="utf-8", errors="surrogateescape") as f:
            return f.read(), config
    except OSError as e:
        raise ReplayError(f"{config}: cannot read: {e.strerror}") from None


def replay(path: str, config: str | None = None, *, drop_ins: bool = True,
           plugin_kw: dict | None = None, on_tick=None) -> ReplayResult:
    """Run ``config`` (a file; None: the config text the recording holds) over the recording
    at ``path``. Raises RecordingError/ReplayError (with the reason) before running anything
    when it cannot replay; damage inside the recording ends the affected segment and is
    listed in ``problems``. ``on_tick(frame, fired, decisions)`` is called after each tick."""
    plugin.load_builtin_plugins()
    rec = Recording.open(path)
    kw = dict(plugin_kw or {})
    result = ReplayResult(path, config or "<recorded>")
    _check(rec, config, drop_ins, kw)
    with closing(_by_run(rec, config, kw)) as events:
        for run, ev, first in events:
            if first:
                result.runs += 1
            elif ev.kind == "config":
                if isinstance(ev.data.get("tick"), int):
                    run.config_event(ev.data, drop_ins)
            elif ev.kind == "decision":
                result.recorded_decisions.append(ev.data)
            elif ev.kind == "tick":
                frame = ev.data
                for r, g in frame.fired:
                    result.recorded_firings.append((frame.tick, r, g))
                _tick(run, frame, result)
                if on_tick is not None:
                    on_tick(frame, run.observer.fired, run.observer.decisions)
                run.observer.fired = []
                run.observer.decisions = []
    result.problems = list(rec.problems)
    return result


def _tick(run: _Run, frame, result: ReplayResult) -> None:
    run.clock.now = frame.now
    run.ctx.load(frame)
    errors_before = run.stats.get(PLUGIN_ERRORS_STAT, 0)
    try:
        run.engine.tick(run.ctx)
    except RecordingError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged but well-framed tick: say so, stop
        raise ReplayError(f"replay stopped at tick {frame.tick}: the recorded tick is "
                          f"inconsistent ({type(e).__name__}: {e})") from None
    if run.ctx.gap is not None:
        raise ReplayError(f"replay stopped: {run.ctx.gap}")
    for r, g in run.observer.fired:
        result.firings.append((frame.tick, r, g))
    result.decisions.extend(run.observer.decisions)
    result.plugin_errors += run.stats.get(PLUGIN_ERRORS_STAT, 0) - errors_before
    result.ticks += 1
    if result.first_tick is None:
        result.first_tick, result.first_time, result.first_wall = frame.tick, frame.now, frame.wall
    result.last_tick, result.last_time, result.last_wall = frame.tick, frame.now, frame.wall


def _by_run(rec: Recording, config: str | None, kw: dict):
    """Each event of the recording as ``(run, event, first)``: a new _Run (``first`` True) at
    the META frame of each daemon run, events before the first META skipped; every _Run is
    closed when the next begins or the iteration ends."""
    run = None
    run_id = None
    try:
        for ev in rec.events():
            if ev.kind == "meta":
                if run is None or ev.data.get("run") != run_id:
                    if run is not None:
                        run.close()
                    run_id = ev.data.get("run")
                    text, name = _config_text(config, ev.data)
                    run = _Run(ev.data, text, name, kw, follow_reloads=config is None)
                    yield run, ev, True
            elif run is not None:
                yield run, ev, False
    finally:
        if run is not None:
            run.close()


def _check(rec: Recording, config: str | None, drop_ins: bool, kw: dict) -> None:
    """The pass before running: the config compiles, and every tick holds what it monitors."""
    entries = None
    runs = 0
    with closing(_by_run(rec, config, kw)) as events:
        for run, ev, first in events:
            if first:
                runs += 1
                entries = run.monitored()
            elif ev.kind == "config":
                run.config_event(ev.data, drop_ins)
                entries = run.monitored()
            elif ev.kind == "tick":
                try:
                    run.ctx.check_tick(ev.data, entries)
                except ReplayGap as gap:
                    raise ReplayError(f"cannot replay: {gap}") from None
                except RecordingError:
                    raise
                except Exception as e:  # noqa: BLE001 - damaged but well-framed
                    raise ReplayError(f"cannot replay: tick {ev.data.tick} is inconsistent "
                                      f"({type(e).__name__}: {e})") from None
    if not runs:
        raise ReplayError(f"{rec.path}: the recording holds no run (no META frame)")


def result_json(result: ReplayResult) -> str:
    return json.dumps({"recording": result.recording, "config": result.config,
                       "firings": [{"tick": t, "ruleset": r, "detectorgroup": g}
                                   for t, r, g in result.firings],
                       "decisions": result.decisions, "summary": result.summary()},
                      indent=1, ensure_ascii=True)
