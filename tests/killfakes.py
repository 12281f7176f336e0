"""Fakes for kill-plugin tests: a context with injected values and a killer that only records.

``FakeContext`` implements the ``OomdContext`` contract of docs/design.md over a dict
``{relpath: {metric: value}}`` (like oomd's ``TestHelper::setCgroupData``): rows are numbered in
insertion order (which is also the children's "directory order"), ``resolve`` globs each
component, and a metric that is not given is invalid. ``RecordingKiller`` has the ``Killer.kill``
signature and never touches the kernel.
"""

from __future__ import annotations

import fnmatch
import json
from types import SimpleNamespace

import numpy as np

from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.kill import KillResult
from oomd.plugin import PluginConstructionContext
from oomd.stats import Stats
from support import FakeClock

# Every killer with the arguments it needs besides ``cgroup``.
KILLERS = {
    "kill_by_memory_size_or_growth": {},
    "kill_by_swap_usage": {},
    "kill_by_pressure": {"resource": "memory"},
    "kill_by_pg_scan": {},
    "kill_by_io_cost": {},
}


PRESSURES = {"mem_pressure", "mem_pressure_some", "io_pressure", "io_pressure_some"}
FLOATS = {"io_cost_cumulative", "io_cost_rate", "memory_growth", "effective_swap_util_pct"}
BOOLS = {"is_populated", "oom_group"}
MB = 1 << 20


def _dtype(metric: str):
    if metric in PRESSURES:
        return np.float32
    if metric in FLOATS:
        return np.float64
    if metric in BOOLS:
        return np.bool_
    if metric == "kill_preference":
        return np.int8
    if metric == "id":
        return np.uint64
    return np.int64


class FakeContext:
    def __init__(self, cgroups: dict[str, dict], *, cgroup_fs: str = "/fake", stats=None,
                 meminfo=None, kmsg=None) -> None:
        self.cgroup_fs = cgroup_fs
        self.paths: list[str] = []
        self.data: list[dict] = []
        self.ids: list[int] = []
        self.gone: set[int] = set()
        for rel, metrics in cgroups.items():
            self.add(rel, metrics)
        self.stats = stats or Stats()
        self.system = SimpleNamespace(meminfo=meminfo or {"MemTotal": 1 << 40, "SwapTotal": 0})
        self.kmsg = kmsg
        self.tick = 0
        self.now = 0.0
        self.action_context = None
        self.invoking_ruleset = None
        self.engine = None
        self.gets: list[tuple[str, tuple[str, ...]]] = []
        self.on_refresh = []

    # -- building ------------------------------------------------------------------------------

    def add(self, rel: str, metrics: dict) -> int:
        self.paths.append(rel)
        self.data.append(dict(metrics))
        self.ids.append(metrics.get("id", 1000 + len(self.ids)))
        return len(self.paths) - 1

    def set(self, rel: str, **metrics) -> None:
        self.data[self.row_of(rel)].update(metrics)

    def remove(self, rel: str) -> None:
        """The cgroup vanished (its directory was removed)."""
        self.gone.add(self.paths.index(rel))

    def recreate(self, rel: str, metrics: dict) -> None:
        """Removed and made again under the same name: a new inode."""
        self.remove(rel)
        self.add(rel, {**metrics, "id": 5000 + len(self.ids)})

    # -- engine hooks --------------------------------------------------------------------------

    def set_monitored(self, entries) -> None:
        self.monitored = list(entries)

    def refresh(self, now: float) -> None:
        self.tick += 1
        self.now = now
        for fn in self.on_refresh:
            fn(self)

    # -- the contract --------------------------------------------------------------------------

    def _live(self):
        return [i for i in range(len(self.paths)) if i not in self.gone]

    def resolve(self, patterns) -> np.ndarray:
        hits = set()
        for pat in patterns:
            for i in self._live():
                comps = tuple(c for c in self.paths[i].split("/") if c)
                if len(comps) == len(pat) and all(fnmatch.fnmatchcase(c, p)
                                                  for c, p in zip(comps, pat)):
                    hits.add(i)
        return np.asarray(sorted(hits, key=lambda i: self.paths[i]), dtype=np.int32)

    def children(self, row: int) -> np.ndarray:
        me = self.paths[row]
        kids = [i for i in self._live()
                if self.paths[i] != me and self.paths[i].rsplit("/", 1)[0] == me
                and (me or "/" not in self.paths[i])]
        return np.asarray(kids, dtype=np.int32)

    def parent(self, row: int) -> int:
        rel = self.paths[row]
        if not rel:
            return -1
        up = rel.rsplit("/", 1)[0] if "/" in rel else ""
        r = self.row_of(up)
        return -1 if r is None else r

    def relpath(self, row: int) -> str:
        return self.paths[row]

    def abspath(self, row: int) -> str:
        rel = self.paths[row]
        return f"{self.cgroup_fs}/{rel}" if rel else self.cgroup_fs

    def cgroup_id(self, row: int) -> int:
        return self.ids[row]

    def dir_fd(self, row: int) -> int:
        return -1

    def row_of(self, relpath: str):
        for i in reversed(self._live()):
            if self.paths[i] == relpath:
                return i
        return None

    def get(self, metric: str, rows):
        rows = [int(r) for r in rows]
        self.gets.append((metric, tuple(self.paths[r] for r in rows)))
        dtype = _dtype(metric)
        shape = (len(rows), 3) if metric in PRESSURES else (len(rows),)
        values = np.zeros(shape, dtype=dtype)
        valid = np.zeros(len(rows), dtype=bool)
        for k, r in enumerate(rows):
            if metric == "id":
                values[k], valid[k] = self.ids[r], True
                continue
            v = self.data[r].get(metric)
            if v is not None and r not in self.gone:
                values[k] = v
                valid[k] = True
        return values, valid

    def value(self, metric: str, row: int):
        values, valid = self.get(metric, [row])
        if not valid[0]:
            return None
        return values[0] if metric in PRESSURES else values[0].item()

    logged_value = value  # a value only a log line prints (OomdContext.logged_value)

    def computed(self, metric: str) -> set[str]:
        """Paths for which ``metric`` was asked."""
        return {p for m, paths in self.gets if m == metric for p in paths}


class RecordingKiller:
    """``Killer.kill``'s signature; records what it was asked to kill and never signals."""

    def __init__(self, fail=()) -> None:
        self.killed: list[str] = []
        self.fail = set(fail)  # absolute paths whose kill fails

    def kill(self, abspath, dir_fd=None, *, reap_memory=True, kill_uuid=None,
             **_follow) -> KillResult:
        self.killed.append(abspath)
        if abspath in self.fail:
            return KillResult(False, reason="recorded failure")
        return KillResult(True, killed=1, method="recorded", verified=True)


def kill_engine(config: dict, *, killer=None, clock=None, stats=None, force_dry=False,
                cgroup_fs="/fake"):
    """An engine compiled from ``config`` whose kill plugins use ``killer``."""
    ctx = PluginConstructionContext(cgroup_fs=cgroup_fs, stats=stats or Stats(),
                                    force_dry=force_dry, killer=killer)
    return compile_config(parse_string(json.dumps(config), "test.json"), ctx, clock or FakeClock())


def one_action(action: dict, *, detector=None, ruleset_extra=None) -> dict:
    rs = {"name": "rs", "detectors": [["dg", detector or {"name": "continue"}]],
          "actions": [action, {"name": "mock", "args": {"id": "after"}}]}
    rs.update(ruleset_extra or {})
    return {"rulesets": [rs]}


class VanishAwareKiller(RecordingKiller):
    """A recording killer that, like the real one, fails on a cgroup whose directory was
    removed after it was chosen (its directory fd then has no links)."""

    def kill(self, abspath, dir_fd=None, *, reap_memory=True, kill_uuid=None,
             **_follow) -> KillResult:
        import os

        if dir_fd is not None and dir_fd >= 0 and os.fstat(dir_fd).st_nlink == 0:
            self.killed.append(abspath)
            return KillResult(False, reason="vanished")
        return super().kill(abspath, dir_fd, reap_memory=reap_memory, kill_uuid=kill_uuid)
