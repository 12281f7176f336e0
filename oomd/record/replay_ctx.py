"""``ReplayContext``: the ``OomdContext`` interface served from a recording's tick frames, with
no cgroup fs at all (docs/replay.md).

Rows are the recorded reader slots, so a replayed plugin sees the same row numbers, the same
values and the same validity it saw live. What the recording cannot answer is a gap: a metric
no plugin read live for that row, children of a directory that was never listed, a cgroup that
was listed but never opened. A gap raises ``ReplayGap`` (inside a plugin the engine turns it
into STOP, so it can never cause a kill) and is kept in ``ctx.gap``; the replay driver stops
with it. ``dir_fd`` raises ``ReplayGap`` too: nothing in replay may touch a cgroup.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from oomd import _fastcg
from oomd.cgpath import CgroupPatterns, compile_patterns, split_components
from oomd.context.metric_table import METRICS, scalar
from oomd.context.values import derive
from oomd.context.views import CgroupView
from oomd.names import shown
from oomd.record.format import RecordingError
from oomd.record.ticks import TickFrame
from oomd.stats import Stats

_V = _fastcg.V
_GLOB_MAGIC = frozenset("*?[\\")


def _need_bits() -> dict[str, int]:
    """Metric -> the ``loaded`` bits a row must have for the recording to hold the metric."""
    out = {}
    for m in METRICS.values():
        bits = m.kinds
        if m.derive is not None:
            bits |= 1 << _fastcg.D[m.derive]
        out[m.name] = bits
    return out


NEED = _need_bits()
# metrics a recording may lack where no plugin read them live, served as invalid (unknown)
# rather than stopping the replay: a kill plugin treats an unknown is_populated as populated,
# as it treats a missing cgroup.events live (oomd.record.session.DECISION_METRICS)
LENIENT = frozenset(("is_populated",))


class ReplayGap(RecordingError):
    """The config asks for something the recording does not hold."""

    def __init__(self, tick: int, what: str, pattern: str | None = None,
                 metric: str | None = None, cgroup: str | None = None) -> None:
        self.tick, self.what, self.pattern, self.metric, self.cgroup = (
            tick, what, pattern, metric, cgroup)
        parts = [what]
        if metric is not None:
            parts.append(f"metric {metric}")
        if pattern is not None:
            parts.append(f"cgroup pattern {pattern}")
        if cgroup is not None:
            parts.append(f"cgroup {shown(cgroup)}")
        super().__init__(f"the recording does not have what the config needs at tick {tick}: "
                         + ", ".join(parts))


class ReplaySystem:
    """``SystemContext`` from a recorded tick. A part the tick did not record (the flight
    recorder leaves out what no plugin read live) is a gap when asked for: ``fail`` raises."""

    def __init__(self, system: dict, fail=None, tick: int = 0) -> None:
        self._vals = system["vals"]
        self._meminfo = system["meminfo"]
        self._vmstat = system["vmstat"]
        self._unread = system.get("unread") or frozenset()
        self._fail = fail
        self._tick = tick
        self.swapout_bps, self.swapout_bps_60, self.swapout_bps_300 = system["swapout"]

    def _gap(self, part: str, what: str) -> None:
        if part in self._unread and self._fail is not None:
            self._fail(ReplayGap(self._tick, "system value not recorded", metric=what))

    @property
    def meminfo(self) -> dict:
        self._gap("sys", "meminfo")
        return self._meminfo

    @property
    def vmstat(self) -> dict:
        self._gap("vm", "vmstat")
        return self._vmstat

    def snapshot(self, only_read: bool = False) -> dict:
        return {"vals": self._vals, "meminfo": self._meminfo, "vmstat": self._vmstat,
                "swapout": (self.swapout_bps, self.swapout_bps_60, self.swapout_bps_300),
                "unread": self._unread}

    def _v(self, key):
        self._gap("sys", key)
        return self._vals.get(key)

    swap_total = property(lambda self: self._v("swap_total"))
    swap_used = property(lambda self: self._v("swap_used"))
    swappiness = property(lambda self: self._v("swappiness") or 0)
    mem_total = property(lambda self: self._v("mem_total"))
    mem_free = property(lambda self: self._v("mem_free"))
    mem_pressure = property(lambda self: self._v("mem_full"))
    mem_pressure_some = property(lambda self: self._v("mem_some"))
    io_pressure = property(lambda self: self._v("io_full"))
    io_pressure_some = property(lambda self: self._v("io_some"))


class ReplayContext:
    """Load a frame with ``load(frame)``, then ``Engine.tick(ctx)`` runs on it (its
    ``refresh`` takes the frame's tick and time)."""

    def __init__(self, cgroup_fs: str, *, interval: float = 5, stats: Stats | None = None):
        self.cgroup_fs = cgroup_fs.rstrip("/") or "/"
        self.interval = interval
        self.stats = stats if stats is not None else Stats()
        self.tick = 0
        self.now = 0.0
        self.action_context = None
        self.invoking_ruleset = None
        self.engine = None
        self.kmsg = None
        self.gap: ReplayGap | None = None
        self.frame: TickFrame | None = None
        self.system = None
        self._next: TickFrame | None = None
        self._monitored: list[tuple[CgroupPatterns, frozenset[str]]] = []
        self._rows_version = None
        self._by_path: dict[str, int] = {}
        self._kids: dict[int, dict[str, int]] = {}
        self._sorted_kids: dict[int, np.ndarray] = {}
        self._root = -1
        self._compiled: dict[CgroupPatterns, tuple] = {}
        self._resolved: dict[CgroupPatterns, np.ndarray] = {}
        self._compiled_resolutions: dict[CgroupPatterns, np.ndarray] = {}

    # ---- driving --------------------------------------------------------------------------

    def load(self, frame: TickFrame) -> None:
        self._next = frame

    def set_monitored(self, entries: Iterable[tuple[CgroupPatterns, Iterable[str]]]) -> None:
        mon: dict[CgroupPatterns, set[str]] = {}
        for patterns, metrics in entries:
            for name in metrics:
                if name not in METRICS:
                    raise KeyError(f"unknown metric {name!r}")
            mon.setdefault(patterns, set()).update(metrics)
        self._monitored = [(p, frozenset(m)) for p, m in mon.items()]

    @property
    def monitored(self):
        return list(self._monitored)

    def refresh(self, now: float) -> None:
        frame = self._next
        if frame is None:
            raise RecordingError("replay: refresh without a loaded tick")
        self.frame = frame
        self.tick = frame.tick
        self.now = frame.now
        self.system = ReplaySystem(frame.system, self._fail, frame.tick)
        self._resolved.clear()
        if frame.rows_version != self._rows_version:
            self._index(frame)
        for patterns, metrics in self._monitored:
            rows = self.resolve(patterns)
            for name in metrics:
                self._check(name, rows, str(patterns))

    def check_tick(self, frame: TickFrame, entries) -> None:
        """Raise ``ReplayGap`` if this tick lacks what ``entries`` ((patterns, metrics), what
        a config monitors) need: the replay's check before anything runs."""
        self.frame = frame
        self.tick = frame.tick
        self._resolved.clear()
        if frame.rows_version != self._rows_version:
            self._index(frame)
        for patterns, metrics in entries:
            rows = self.resolve(patterns)
            for name in sorted(metrics):
                self._check(name, rows, str(patterns))

    def _index(self, frame: TickFrame) -> None:
        self._rows_version = frame.rows_version
        self._by_path = {p: r for r, p in frame.paths.items()}
        kids: dict[int, dict[str, int]] = {}
        for r, p in frame.paths.items():
            if not p:
                continue
            ppath, _, name = p.rpartition("/")
            prow = self._by_path.get(ppath)
            if prow is not None:
                kids.setdefault(prow, {})[name] = r
        self._kids = kids
        self._sorted_kids = {}
        self._root = self._by_path.get("", -1)
        self._compiled_resolutions = {}

    def _fail(self, gap: ReplayGap):
        if self.gap is None:
            self.gap = gap
        raise gap

    # ---- names ----------------------------------------------------------------------------

    def _listed(self, row: int) -> bool:
        nchild = self.frame.columns.get("nchild")
        return nchild is not None and row < len(nchild) and nchild[row] >= 0

    def resolve(self, patterns: CgroupPatterns) -> np.ndarray:
        got = self._resolved.get(patterns)
        if got is not None:
            return got
        cached = self._compiled_resolutions.get(patterns)
        if cached is not None:
            self._resolved[patterns] = cached
            return cached
        compiled = self._compiled.get(patterns)
        if compiled is None:
            compiled = self._compiled[patterns] = compile_patterns(patterns)
        found: dict[int, None] = {}
        unopened = self.frame.unopened
        for comps in compiled:
            if self._root < 0:
                self._fail(ReplayGap(self.tick, "no root cgroup", str(patterns)))
            level = [self._root]
            for comp in comps:
                nxt = []
                magic = any(ch in _GLOB_MAGIC for ch in comp)
                bcomp = os.fsencode(comp)
                for d in level:
                    kids = self._kids.get(d, {})
                    listed = self._listed(d)
                    if not magic:
                        row = kids.get(comp)
                        if row is not None:
                            nxt.append(row)
                        elif not listed or comp in unopened.get(d, ()):
                            self._fail(ReplayGap(self.tick, "cgroup not recorded", str(patterns),
                                                 cgroup=self._join(d, comp)))
                        continue
                    if not listed:
                        self._fail(ReplayGap(self.tick, "directory never listed", str(patterns),
                                             cgroup=self.relpath(d) or "/"))
                    for name in unopened.get(d, ()):
                        if _fastcg.fnmatch_name(bcomp, os.fsencode(name)):
                            self._fail(ReplayGap(self.tick, "cgroup not recorded",
                                                 str(patterns), cgroup=self._join(d, name)))
                    for name, row in kids.items():
                        if _fastcg.fnmatch_name(bcomp, os.fsencode(name)):
                            nxt.append(row)
                level = nxt
            for row in level:
                found[row] = None
        paths = self.frame.paths
        rows = sorted(found, key=lambda x: os.fsencode(paths[x]))
        arr = np.array(rows, dtype=np.int32)
        arr.flags.writeable = False
        self._resolved[patterns] = arr
        self._compiled_resolutions[patterns] = arr
        return arr

    def _join(self, row: int, name: str) -> str:
        p = self.frame.paths.get(row, "")
        return f"{p}/{name}" if p else name

    def children(self, row: int) -> np.ndarray:
        row = int(row)
        got = self._sorted_kids.get(row)
        if got is not None:
            return got
        if not self._listed(row) or self.frame.unopened.get(row):
            self._fail(ReplayGap(self.tick, "children not recorded",
                                 cgroup=self.relpath(row) or "/"))
        kids = self._kids.get(row, {})
        names = sorted((n for n in kids if n[0] != "."), key=os.fsencode)
        arr = np.array([kids[n] for n in names], dtype=np.int32)
        arr.flags.writeable = False
        self._sorted_kids[row] = arr
        return arr

    def parent(self, row: int) -> int:
        p = self.frame.paths.get(int(row))
        if not p:
            return -1
        return self._by_path.get(p.rpartition("/")[0], -1)

    def relpath(self, row: int) -> str:
        return self.frame.paths[int(row)]

    def abspath(self, row: int) -> str:
        rel = self.relpath(row)
        if not rel:
            return self.cgroup_fs
        return f"{self.cgroup_fs}/{rel}" if self.cgroup_fs != "/" else f"/{rel}"

    def row_of(self, relpath: str) -> int | None:
        comps = split_components(relpath)
        row = self._by_path.get("/".join(comps))
        if row is not None:
            return row
        # not a row: fine if its parent's listing says it does not exist
        for i in range(len(comps)):
            prow = self._by_path.get("/".join(comps[:i]))
            if prow is None:
                break
            nxt = self._by_path.get("/".join(comps[:i + 1]))
            if nxt is None:
                if not self._listed(prow) or comps[i] in self.frame.unopened.get(prow, ()):
                    self._fail(ReplayGap(self.tick, "cgroup not recorded",
                                         cgroup="/".join(comps)))
                return None
        return None

    def cgroup_id(self, row: int) -> int:
        return int(self.frame.columns["cgid"][int(row)])

    def dir_fd(self, row: int) -> int:
        """-1 (EBADF for anything that tries it): replay never touches a cgroup. Kill plugins
        are dry and prekill hooks off in replay, so only plugins that write to cgroups
        (senpai) get here, and fail (counted as plugin errors)."""
        return -1

    def status(self, rows) -> np.ndarray:
        return self.frame.columns["status"][_rows(rows)]

    def cgroup(self, row: int) -> CgroupView:
        return CgroupView(self, int(row))

    # ---- values ---------------------------------------------------------------------------

    def _check(self, metric: str, rows: np.ndarray, pattern: str | None = None,
               files_only: bool = False) -> None:
        need = NEED.get(metric)
        if need is None:
            raise KeyError(metric)
        if files_only:
            need = METRICS[metric].kinds
        if not need or not len(rows):
            return
        loaded = self.frame.columns["loaded"][rows]
        bad = np.flatnonzero((loaded & np.uint32(need)) != need)
        if len(bad) and metric in LENIENT:
            return
        if len(bad):
            self._fail(ReplayGap(self.tick, "value not recorded", pattern, metric,
                                 self.relpath(int(rows[bad[0]]))))

    def prefetch(self, metrics: Iterable[str], rows) -> None:
        rows = _rows(rows)
        for name in metrics:
            self._check(name, rows, files_only=True)   # as live: prefetch reads files only

    def get(self, metric: str, rows) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) as ``MetricValues.get`` gives them live, from the recorded columns."""
        rows = _rows(rows)
        self._check(metric, rows)
        return column_values(self.frame.columns, metric, rows)

    def logged_value(self, metric: str, row: int):
        """A value only a log line uses: the recorded one, or None (logged as 0) when the
        recording lacks it; a log line never stops a replay."""
        rows = np.array([row], dtype=np.int32)
        need = NEED.get(metric, 0)
        if need and (int(self.frame.columns["loaded"][rows][0]) & need) != need:
            return None
        return self.value(metric, row)

    def value(self, metric: str, row: int):
        """One metric of one row, or None when unavailable (``metric_table.scalar``)."""
        return scalar(metric, *self.get(metric, np.array([row], dtype=np.int32)))

    # ---- accounting -----------------------------------------------------------------------

    @property
    def starved(self) -> bool:
        return bool(self.frame.starved) if self.frame is not None else False

    @property
    def read_stats(self) -> dict[str, int]:
        return {"rows": self.nrows}

    @property
    def nrows(self) -> int:
        return len(self.frame.paths) if self.frame is not None else 0

    cache_files = True
    keep_config = False
    candidate_dumps = False     # kill plugins do not dump their candidates in replay

    def watch_fd(self) -> int:
        return -1

    def drain_watches(self) -> int:
        return 0

    def close(self) -> None:
        pass


def column_values(cols: dict[str, np.ndarray], metric: str,
                  rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of a metric for rows from a tick's recorded columns, by the live
    context's rule (``oomd.context.values.derive``)."""
    valid_col = cols["valid"]

    def valid_of(rows, mask):
        mask = np.uint64(mask)
        return (valid_col[rows] & mask) == mask

    return derive(METRICS[metric], cols, rows, valid_of)


def _rows(rows) -> np.ndarray:
    if isinstance(rows, np.ndarray) and rows.dtype == np.int32:
        return rows.reshape(-1)
    return np.ascontiguousarray(rows, dtype=np.int32).reshape(-1)
