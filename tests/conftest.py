"""Shared fixtures: inline logging, a steppable clock, a minimal context, engines from dicts."""

from __future__ import annotations

import json

import pytest

import mock_plugins
from oomd import logs, plugin
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.stats import Stats

plugin.load_builtin_plugins()


@pytest.fixture(autouse=True)
def inline_logging():
    logs.setup(inline=True)
    mock_plugins.reset()
    yield


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
        self.monitored = []

    def set_monitored(self, entries) -> None:
        self.monitored = list(entries)

    def refresh(self, now: float) -> None:
        self.tick += 1
        self.now = now


@pytest.fixture
def clock():
    return FakeClock()


def engine_from(config: dict | str, clock=None, stats=None, file="test.json"):
    text = config if isinstance(config, str) else json.dumps(config)
    ctx = plugin.PluginConstructionContext(cgroup_fs="/sys/fs/cgroup", stats=stats or Stats())
    return compile_config(parse_string(text, file), ctx, clock or FakeClock())
