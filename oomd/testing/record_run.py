"""A live pyoomd run on a ``Scenario`` with ``--record``'s machinery attached, for the replay
round-trip tests and benches (docs/replay.md).

``run_recorded(scenario, record_dir)`` drives ticks as ``oomd.testing.pyoomd_run`` does (a
fake clock advancing ``interval`` a tick, step k applied before tick k, dry kills written to a
kmsg file), with a ``RecordSession`` fed after every tick exactly as the daemon feeds it, and
drop-ins added or removed before given ticks (recorded as the daemon records them). It returns
what happened live: the detector groups that fired and the decisions, per tick.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from oomd import logs, plugin
from oomd.config.compiler import Compiler
from oomd.config.parser import parse_string
from oomd.dropins import DropIns
from oomd.kmsg import Kmsg
from oomd.record.session import RecordSession, decision_metrics
from oomd.record.writer import Recorder, base_meta
from oomd.stats import Stats
from oomd.testing.scenario import Scenario


@dataclass
class LiveRun:
    firings: list[tuple[int, str, str]] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    kmsg: list[str] = field(default_factory=list)
    cgroup_fs: str = ""


def run_recorded(scenario: Scenario, record_dir: str | os.PathLike | None, workdir,
                 *, interval: float = 1.0, dropins: dict | None = None,
                 record_max_bytes: int = 512 << 20) -> LiveRun:
    """``dropins``: {tick: (tag, config dict or None to remove)} applied before that tick.
    ``record_dir`` None: the same live run without recording (for comparisons)."""
    scenario.validate()
    plugin.load_builtin_plugins()
    logs.setup(inline=True)
    work = Path(workdir)
    tree = work / "tree"
    scenario.write_tree(tree)
    cgroup_fs = str(tree)
    kmsg_path = work / "kmsg"
    from oomd.context import OomdContext

    clock_now = [time.monotonic()]

    def clock() -> float:
        return clock_now[0]

    stats = Stats()
    stats.init_core()
    pctx = plugin.PluginConstructionContext(cgroup_fs=cgroup_fs, stats=stats,
                                            kmsg_path=str(kmsg_path), force_dry=True)
    text = json.dumps(scenario.config)
    root = parse_string(text, "config.json")
    engine = Compiler(pctx, "config.json", clock).compile(root)
    drops = DropIns(Compiler(pctx, "config.json", clock), root)
    session = None
    if record_dir is not None:
        meta = base_meta(cgroup_fs=cgroup_fs, interval=interval, config_file="config.json",
                         config=text, dry_run=True, compat="0.5.0", devices=[])
        recorder = Recorder(str(record_dir), meta, max_bytes=record_max_bytes,
                            queue_ticks=1 << 30)
        session = RecordSession(recorder)
        engine.extra_monitored = decision_metrics
    observer = _LiveObserver(session)
    engine.observer = observer
    ctx = OomdContext(cgroup_fs, stats=stats, interval=interval, cache_files=False)
    kmsg = Kmsg(str(kmsg_path))
    ctx.kmsg = kmsg
    run = LiveRun(cgroup_fs=cgroup_fs)
    dropin_dir = Path(tempfile.mkdtemp(prefix="dropins-", dir=work))
    try:
        for number in range(1, scenario.ticks + 1):
            if number > 1:
                scenario.apply_step(tree, number)
                clock_now[0] += interval
            for tag, cfg in _dropins_at(dropins, number):
                path = dropin_dir / tag
                if cfg is None:
                    if session is not None:
                        session.config_event(number, "remove", tag, None)
                    drops.remove(engine, tag)
                else:
                    path.write_text(json.dumps(cfg))
                    if session is not None:
                        session.config_event(number, "add", tag, str(path))
                    drops.add(engine, tag, str(path))
            with logs.capture():
                engine.tick(ctx)
            for r, g in observer.fired:
                run.firings.append((number, r, g))
            run.decisions.extend(observer.decisions)
            if session is not None:
                session.fired = list(observer.fired)
                session.after_tick(ctx)
            observer.fired, observer.decisions = [], []
        run.kmsg = kmsg_path.read_text().splitlines() if kmsg_path.exists() else []
    finally:
        kmsg.close()
        ctx.close()
        if session is not None:
            session.close()
    return run


def _dropins_at(dropins: dict | None, tick: int):
    if not dropins or tick not in dropins:
        return []
    v = dropins[tick]
    return v if isinstance(v, list) else [v]


class _LiveObserver:
    """The engine's observer in a recorded run: firings and decisions, handed to the session
    (as the daemon's ``RecordingObserver`` does)."""

    def __init__(self, session) -> None:
        self.session = session
        self.fired: list[tuple[str, str]] = []
        self.decisions: list[dict] = []

    def detector_group(self, ruleset, group, fired) -> None:
        if fired:
            self.fired.append((ruleset, group))

    def action(self, *a) -> None:
        pass

    def kill(self, *a) -> None:
        pass

    def kill_event(self, *a) -> None:
        pass

    def decision(self, record: dict) -> None:
        self.decisions.append(record)
        if self.session is not None:
            self.session.decision(record)
