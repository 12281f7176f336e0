"""A rig for detector tests: plugins on a small fake cgroup tree read by the real OomdContext,
with a fake proc root (the root cgroup's metrics, meminfo, swaps, vmstat) and a clock the test
steps, one second per tick as oomd's ``--interval 1``.

    rig = Rig(tmp_path, {"w/a": ft.cgroup(MB, mem_pressure=(80, 60, 40))})
    det = rig.add("pressure_above", cgroup="w/*", resource="memory", threshold="70", duration="2")
    assert rig.run(4) == "SSCC"      # one letter per tick: C = CONTINUE, S = STOP

(A plain module, like support.py: ``from conftest import`` is ambiguous across conftests.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import FakeClock
from oomd import logs, plugin
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.context import OomdContext
from oomd.errors import ConfigError
from oomd.plugin import MonitoredResources, PluginConstructionContext, PluginRet
from oomd.stats import Stats
from oomd.testing import faketree as ft

MB = 1 << 20
ROOT_FILES = {"cgroup.controllers": "memory io\n"}
LETTER = {PluginRet.CONTINUE: "C", PluginRet.STOP: "S", PluginRet.ASYNC_PAUSE: "A"}


class Rig:
    def __init__(self, tmp_path: Path, tree: dict, **proc) -> None:
        self.tmp = tmp_path
        self.root = ft.write_tree(tmp_path / "cg", {"": dict(ROOT_FILES), **tree})
        self.proc_args = proc
        self.proc = ft.write_proc(tmp_path / "proc", **proc)
        self.clock = FakeClock()
        self.ctx = OomdContext(str(self.root), proc_root=str(self.proc), cache_files=False,
                               interval=1)
        self.plugins: list[plugin.BasePlugin] = []
        self.resources = MonitoredResources()
        self.log: list[str] = []   # messages of the last run(), tags stripped

    def construction_context(self) -> PluginConstructionContext:
        return PluginConstructionContext(cgroup_fs=str(self.root), proc_root=str(self.proc))

    def create(self, name: str, **args: str) -> tuple[plugin.BasePlugin, int]:
        """A plugin and its init's return code, not added to the rig."""
        instance = plugin.create(name)
        resources = MonitoredResources()
        ret = instance.init(resources, args, self.construction_context())
        instance.resources = resources
        return instance, ret

    def add(self, name: str, **args: str) -> plugin.BasePlugin:
        instance, ret = self.create(name, **args)
        assert ret == 0, f"{name} {args}: {instance.init_error}"
        self.plugins.append(instance)
        self.resources.update(instance.resources)
        self.ctx.set_monitored(self.resources.entries())
        return instance

    # ---- changing the world between ticks --------------------------------------------------

    def write(self, rel: str, **files: str) -> None:
        """Rewrite (or create) files of a cgroup in place: ``memory_pressure=...`` names
        ``memory.pressure`` (underscores become dots)."""
        d = self.root / rel
        d.mkdir(parents=True, exist_ok=True)
        ft.update_files(d, {"": {k.replace("_", "."): v for k, v in files.items()}})

    def cgroup(self, rel: str, **kwargs) -> None:
        """(Re)write a cgroup's files as ``faketree.cgroup(**kwargs)`` makes them."""
        d = self.root / rel
        d.mkdir(parents=True, exist_ok=True)
        ft.update_files(d, {"": ft.cgroup(**kwargs)})

    def remove(self, rel: str) -> None:
        shutil.rmtree(self.root / rel)

    def set_proc(self, **changes) -> None:
        self.proc_args.update(changes)
        ft.write_proc(self.proc, **self.proc_args)

    # ---- ticks -----------------------------------------------------------------------------

    def tick(self) -> list[PluginRet]:
        """One engine tick: refresh, prerun every plugin, run every plugin; then the clock
        moves one second. Log messages are appended to ``self.log``."""
        with logs.capture() as lines:
            self.ctx.refresh(self.clock())
            for p in self.plugins:
                p.prerun(self.ctx)
            results = [p.run(self.ctx) for p in self.plugins]
        self.log += logs.messages(lines)
        self.clock.advance(1)
        return results

    def run(self, ticks: int = 1, between=None) -> str:
        """The first plugin's outcome per tick, one letter each (C, S, A); ``between(i)`` is
        called before tick i (from the second tick on)."""
        self.log = []
        out = ""
        for i in range(1, ticks + 1):
            if between is not None and i > 1:
                between(i)
            out += LETTER[self.tick()[0]]
        return out

    def run_all(self, ticks: int = 1) -> list[str]:
        """Every plugin's outcomes over ``ticks`` ticks, one string per plugin."""
        self.log = []
        per_tick = [self.tick() for _ in range(ticks)]
        return ["".join(LETTER[t[i]] for t in per_tick) for i in range(len(self.plugins))]


def rejection(name: str, **args: str) -> str:
    """The ConfigError a config with this one detector gets (file, JSON path and reason)."""
    config = {"rulesets": [{"name": "rs", "detectors": [["dg", {"name": name, "args": args}]],
                            "actions": [{"name": "continue"}]}]}
    ctx = PluginConstructionContext(cgroup_fs="/sys/fs/cgroup", stats=Stats())
    try:
        compile_config(parse_string(json.dumps(config), "test.json"), ctx, FakeClock())
    except ConfigError as e:
        return str(e)
    raise AssertionError(f"{name} {args} was accepted")


def args_path(arg: str | None = None) -> str:
    """The JSON path of the detector's args (or one arg) in ``rejection``'s config."""
    base = "$.rulesets[0].detectors[0][1].args"
    return f"{base}.{arg}" if arg else base
