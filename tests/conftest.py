"""Shared fixtures: inline logging, mock plugins reset, a steppable clock."""

from __future__ import annotations

import pytest

import mock_plugins
from oomd import logs, plugin
from support import FakeClock

plugin.load_builtin_plugins()


@pytest.fixture(autouse=True)
def inline_logging():
    logs.setup(inline=True)
    mock_plugins.reset()
    yield


@pytest.fixture
def clock():
    return FakeClock()
