"""Test helpers shared by test modules (import with ``from support import ...``).

Fixtures live in conftest.py; plain helpers live here, because several conftest.py files
exist and ``from conftest import`` would pick whichever was imported first.
"""

from __future__ import annotations

import json

from oomd import plugin
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.stats import Stats


class FakeClock:
    """A monotonic clock the test steps by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StubContext:
    """Just what the engine needs from OomdContext (engine tests do not read cgroups)."""

    def __init__(self, stats: Stats | None = None) -> None:
        self.tick = 0
        self.now = 0.0
        self.stats = stats or Stats()
        self.action_context = None
        self.invoking_ruleset = None
        self.engine = None
        self.kmsg = None
        self.monitored = []

    def set_monitored(self, entries) -> None:
        self.monitored = list(entries)

    def refresh(self, now: float) -> None:
        self.tick += 1
        self.now = now


def engine_from(config: dict | str, clock=None, stats=None, file="test.json"):
    text = config if isinstance(config, str) else json.dumps(config)
    ctx = plugin.PluginConstructionContext(cgroup_fs="/sys/fs/cgroup", stats=stats or Stats())
    return compile_config(parse_string(text, file), ctx, clock or FakeClock())
