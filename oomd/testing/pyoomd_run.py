"""Run pyoomd in-process on a ``Scenario`` and report it as an ``OomdRun``, so that
``oracle.compare(run_oomd(s), run_pyoomd(s))`` is one call (docs/design.md, differential testing).

Ticks are driven directly (no sleeping): a fake monotonic clock starts at the real
``time.monotonic()`` (so "seconds since the clock's origin", e.g. ``memory_reclaim`` before any
reclaim, is the uptime as in oomd) and advances by ``interval`` per tick; step k of the
trajectory is applied before tick k, and each tick's log lines and kmsg lines are collected. The
tree is written at the same place oomd's would be (pass the same ``workdir``) and the cgroup-fs
string is built the same way; the root cgroup's metrics come from the real /proc, as in oomd.
A config that does not compile ends the run like oomd's daemon: no ticks, exit status 3.

Runs share the process's logging (lines are captured through ``oomd.logs.capture``), so run
scenarios one after another, not from several threads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from oomd import logs, plugin
from oomd.compat import Compat
from oomd.config.compiler import Compiler
from oomd.config.parser import parse_string
from oomd.errors import ConfigError
from oomd.kmsg import Kmsg
from oomd.stats import Stats
from oomd.testing.oracle import (
    OomdRun,
    Tick,
    cgroup2_mount,
    fake_cgroup_fs,
    parse_log_line,
    scratch_dir,
)
from oomd.testing.scenario import Scenario

IMPLEMENTATION = "pyoomd"


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _devices(ids) -> tuple:
    if not ids:
        return ()
    from oomd.cli import parse_devices

    return parse_devices(",".join(ids))


def run_pyoomd(scenario: Scenario, *, workdir: str | os.PathLike | None = None,
               interval: float = 1.0, keep: bool = False,
               compat: str | Compat = "0.5.0") -> OomdRun:
    """``compat``: ``--compat`` (``"head"`` to compare with oomd HEAD), or a ``Compat``."""
    scenario.validate()
    plugin.load_builtin_plugins()
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="pyoomd-run-", dir=scratch_dir())) if own else Path(workdir)
    try:
        tree = work / "tree"
        kmsg_path = work / "kmsg.pyoomd"
        if not own:
            work.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tree, ignore_errors=True)
            kmsg_path.unlink(missing_ok=True)
        scenario.write_tree(tree)
        mount = cgroup2_mount()
        cgroup_fs = fake_cgroup_fs(tree, mount) if mount else str(tree)
        run = OomdRun(scenario=scenario.name, implementation=IMPLEMENTATION, cgroup_fs=cgroup_fs,
                      argv=["run_pyoomd", cgroup_fs], started_at=time.monotonic())
        _drive(scenario, run, cgroup_fs, tree, kmsg_path, interval, compat if isinstance(compat, Compat) else Compat.for_mode(compat))
        return run
    finally:
        if own and not keep:
            shutil.rmtree(work, ignore_errors=True)


def _drive(scenario: Scenario, run: OomdRun, cgroup_fs: str, tree: Path, kmsg_path: Path,
           interval: float, compat: Compat) -> None:
    from oomd.context import OomdContext

    logs.setup(inline=True)
    clock = _Clock(time.monotonic())
    stats = Stats()
    stats.init_core()
    devices = _devices(scenario.devices)
    pctx = plugin.PluginConstructionContext(cgroup_fs=cgroup_fs, stats=stats,
                                            kmsg_path=str(kmsg_path), devices=devices,
                                            compat=compat)
    text = scenario.config if isinstance(scenario.config, str) else json.dumps(scenario.config)
    kmsg = Kmsg(str(kmsg_path))
    try:
        with logs.capture() as startup:
            try:
                config = parse_string(text, "config.json")
                engine = Compiler(pctx, "config.json", clock).compile(config)
            except ConfigError as e:
                logs.log(str(e), logs.ERR)
                logs.log("Config failed to compile", logs.ERR)
                engine = None
        run.startup = [parse_log_line(line) for line in startup]
        if engine is None:
            run.returncode = 3
            return
        ctx = OomdContext(cgroup_fs, devices=devices, stats=stats, interval=interval)
        ctx.kmsg = kmsg
        seen = 0
        for number in range(1, scenario.ticks + 1):
            if number > 1:
                scenario.apply_step(tree, number)
                clock.now += interval
            with logs.capture() as lines:
                engine.tick(ctx)
            written = kmsg_path.read_text().splitlines()
            run.ticks.append(Tick(number=number, log=[parse_log_line(line) for line in lines],
                                  kmsg=written[seen:], complete=True,
                                  observed_at=time.monotonic()))
            seen = len(written)
    finally:
        kmsg.close()

