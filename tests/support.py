"""Test helpers shared by test modules (import with ``from support import ...``).

Fixtures live in conftest.py; plain helpers live here, because several conftest.py files
exist and ``from conftest import`` would pick whichever was imported first.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource

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


@contextlib.contextmanager
def no_free_fds(spare: int = 0):
    """Every fd number below the soft limit taken but ``spare``: opens in the block fail with
    EMFILE once ``spare`` more are open.

    Lowering RLIMIT_NOFILE to the count of open fds is not enough: the fd table has holes
    below that count, and an open takes the lowest free number. So the limit goes just above
    the highest fd in use (plus ``spare``) and the holes are filled with /dev/null. The garbage
    collector stays off meanwhile: an unreachable object of an earlier test that owns an fd (a
    file, a context) would otherwise close it mid-block and open a hole. (A thread of an earlier
    test can still close one: tests that need none run in a forked child.)
    """
    gc.collect()
    gc.disable()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + spare, hard))
    try:
        while True:
            try:
                fd = os.open("/dev/null", os.O_RDONLY)
            except OSError:
                break
            if fd > top:
                os.close(fd)
                break
            fillers.append(fd)
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        gc.enable()
