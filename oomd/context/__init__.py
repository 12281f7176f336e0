"""OomdContext: the per-tick view of the monitored cgroups that plugins read.

The contract is docs/design.md ("OomdContext (what plugins see)"); the behaviour it reproduces is
reference §3 (pattern resolution), §5 (context model and derived metrics) and §6 (files).

``OomdContext`` is a facade: it wires the parts, starts each tick (``refresh``: what to read
when) and hands every other call to the part that owns it. Each part imports only the ones
listed before it:

* ``oomd._fastcg.Reader``: the numbers (numpy columns filled in C), fds, inotify, parsing;
* ``metric_table``: what a metric name is (its files, validity bit, column and dtype);
* ``problems``: problems with files, counted and logged, never raised;
* ``tree``: the names: which row is which path, listings, liveness, pattern resolution;
* ``values``: a metric's values for rows, derived metrics computed on demand;
* ``views``: ``CgroupView`` and ``SystemContext``, read through the context.

Steady state costs no Python object per cgroup per tick: resolutions and child lists are
cached and only rebuilt when a directory listing changed.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import numpy.ma  # noqa: F401 - numpy imports it lazily inside the first tick, which may be out of fds

from oomd import _fastcg
from oomd.cgpath import CgroupPatterns, brace_expand
from oomd.context.metric_table import (
    AVOID, INT64_MAX, METRICS, NORMAL, PREFER, STATUS_MALFORMED, STATUS_NAMES, STATUS_OK,
    STATUS_UNREADABLE, STATUS_VANISHED, Metric, scalar)
from oomd.context.problems import ProblemLog
from oomd.context.tree import CgroupTree
from oomd.context.values import MetricValues, as_rows
from oomd.context.views import CgroupView, SwapOutRate, SystemContext
from oomd.stats import Stats

__all__ = [
    "OomdContext", "CgroupView", "SystemContext", "fd_budget_from_rlimit", "brace_expand",
    "METRICS", "Metric", "DEFAULT_SSD", "DEFAULT_HDD", "PREFER", "NORMAL", "AVOID", "INT64_MAX",
    "STATUS_OK", "STATUS_MALFORMED", "STATUS_UNREADABLE", "STATUS_VANISHED", "STATUS_NAMES",
]

# oomd's default io cost coefficients (src/oomd/Main.cpp): read_iops, readbw, write_iops,
# writebw, trim_iops, trimbw.
DEFAULT_SSD = (1.21e-2, 6.25e-7, 1.07e-3, 2.61e-7, 2.37e-2, 9.10e-10)
DEFAULT_HDD = (1.31e-3, 1.13e-7, 2.58e-1, 5.04e-7, 0.0, 0.0)


def fd_budget_from_rlimit() -> int:
    """How many fds the reader may hold: RLIMIT_NOFILE's soft limit, first raised to the hard
    limit, minus a reserve of max(256, 2 %) for everything else the daemon opens (kill
    procedure, logging, sockets, drop-ins): 19,600 of the usual 20,000."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    return max(0, limit - max(256, limit // 50))


@dataclass
class _Monitored:
    patterns: CgroupPatterns
    kinds: int
    derived: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# The context


class OomdContext:
    """The per-tick view plugins read (docs/design.md).

    Problems with files are never raised: each is counted (``read_stats``) and logged once
    per row and file, a bounded number of lines a tick (``oomd.context.problems``).

    ``devices``: (major, minor, is_hdd) triples whose io.stat lines count for io cost, with
    ``ssd_coeffs``/``hdd_coeffs`` (6 floats each, oomd's order). ``interval``: the tick interval
    in seconds (swap-out rate, as oomd's ``--interval``). ``cache_files``: None decides from
    the filesystem of ``cgroup_fs``: on cgroup2 the kernel never replaces a control file and a
    cgroup's ``cgroup.controllers`` exists exactly as long as its directory, so file fds are
    kept open (pread at offset 0) and liveness comes from the parent listings; True asserts
    the same of a fake tree (benches); False re-opens every file and checks every row's
    ``cgroup.controllers`` each tick (fake trees that tests rewrite). ``fd_budget``: None
    derives it from RLIMIT_NOFILE (``fd_budget_from_rlimit``).

    ``keep_config``: None follows ``cache_files``. When on, configuration-like values
    (memory.min/low/high/high.tmp/max, memory.swap.max, memory.oom.group, the kill-preference
    xattrs) of a row with an inotify watch on its directory are read once and kept across
    ticks; the kernel reports every write to such a file (IN_MODIFY with its name) and every
    xattr change (IN_ATTRIB on the directory), and the value is read again at the next tick
    that needs it. A queue overflow drops every kept value. ``watch_budget``: most inotify
    watches to hold (None: half of fs.inotify.max_user_watches); a row that gets no watch reads
    its files every tick.

    ``remember_absent``: None = on cgroup2. A file absent from a live cgroup whose parent
    directory is watched (its controller is not enabled there) is remembered as absent and
    not opened again until inotify reports a change that can bring it back (a write to the
    parent's ``cgroup.subtree_control``, an event naming the file or ``cgroup.controllers`` in
    the cgroup's own watched directory, a queue overflow) or the slow safety retry
    (``_fastcg.ABSENT_RETRY``, a minute); plugins see it missing exactly as when it is opened.
    True asserts this of a fake tree (``--assume-cgroup2``).
    """

    def __init__(
        self,
        cgroup_fs: str,
        *,
        proc_root: str = "/proc",
        devices: Iterable[tuple[int, int, bool]] = (),
        ssd_coeffs=DEFAULT_SSD,
        hdd_coeffs=DEFAULT_HDD,
        stats: Stats | None = None,
        interval: float = 5,
        cache_files: bool | None = None,
        fd_budget: int | None = None,
        keep_config: bool | None = None,
        watch_budget: int | None = None,
        remember_absent: bool | None = None,
    ) -> None:
        if cgroup_fs != "/" and cgroup_fs.endswith("/"):
            cgroup_fs = cgroup_fs[:-1]
        self.cgroup_fs = cgroup_fs
        self.proc_root = proc_root
        self.devices = tuple((int(a), int(b), bool(h)) for a, b, h in devices)
        self.stats = stats if stats is not None else Stats()
        self.interval = interval
        self.tick = 0
        self.now = 0.0
        self.action_context = None
        self.invoking_ruleset = None
        self.engine = None
        budget = fd_budget_from_rlimit() if fd_budget is None else fd_budget
        self._r = _fastcg.Reader(
            os.fsencode(cgroup_fs), os.fsencode(proc_root), fd_budget=budget,
            cache_files=cache_files, devices=self.devices, ssd_coeffs=ssd_coeffs,
            hdd_coeffs=hdd_coeffs, keep_config=keep_config, watch_budget=watch_budget,
            remember_absent=remember_absent)
        self._problems = ProblemLog(self._r, cgroup_fs, proc_root)
        self._tree = CgroupTree(self._r, cgroup_fs, self._problems)
        self._values = MetricValues(self._r, self._tree)
        self._monitored: list[_Monitored] = []
        self._swapout = SwapOutRate(interval)
        self.system = SystemContext(self)
        self._tree.open_root()

    # ---- configuration ----------------------------------------------------------------------

    def set_monitored(self, entries: Iterable[tuple[CgroupPatterns, Iterable[str]]]) -> None:
        """What every plugin put in MonitoredResources: these metrics are read for the
        matching rows at the start of every tick, in one batch."""
        mon: dict[CgroupPatterns, tuple[int, set[str]]] = {}
        for patterns, metrics in entries:
            kinds, derived = mon.get(patterns, (0, set()))
            for name in metrics:
                m = METRICS.get(name)
                if m is None:
                    raise KeyError(f"unknown metric {name!r}")
                kinds |= m.kinds
                if m.derive:
                    derived.add(name)
            mon[patterns] = (kinds, derived)
        self._monitored = [_Monitored(p, k, tuple(sorted(d))) for p, (k, d) in mon.items()]
        self._tree.set_monitored([m.patterns for m in self._monitored])
        cacheable = 0
        for m in self._monitored:
            cacheable |= m.kinds
        cacheable &= (1 << _fastcg.NFILE_) - 1
        dropped = self._r.cacheable & ~cacheable
        self._r.cacheable = cacheable
        if dropped:
            self._r.close_file_fds(dropped)

    @property
    def monitored(self) -> list[tuple[CgroupPatterns, int]]:
        return [(m.patterns, m.kinds) for m in self._monitored]

    # ---- the tick -----------------------------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Start a tick: archive temporal values, drop cached values, evict vanished rows,
        re-read the system context, re-resolve the monitored patterns and read their metrics.
        Never raises for a file problem."""
        self.tick += 1
        self.now = now
        self._problems.begin_tick()
        r = self._r
        tree = self._tree
        tree.in_refresh = True
        try:
            tree.close_deferred()
            r.begin_tick()
            tree.begin_tick()
            self._values.begin_tick()
            self._read_system()
            tree.evict_vanished()
            for m in self._monitored:
                rows = self.resolve(m.patterns)
                if len(rows):
                    r.load(rows, m.kinds)
                    self._values.loaded(rows, m.kinds)
                    for name in m.derived:
                        self._values.ensure(METRICS[name], rows)
        finally:
            tree.in_refresh = False
        self._drain_logs()
        if r.fd_tight or r.watch_full:
            self._budget_notes()

    def _budget_notes(self) -> None:
        """Past a budget reads get slower, they do not fail: said once (counted in
        read_stats: ``opens``, ``born_parked``, ``watch_refused``)."""
        r = self._r
        if r.fd_tight:
            self._problems.once(("budget", "fd"), (
                f"[context] fd budget {r.fd_budget} reached: files of cgroups past it are read "
                f"with open, read, close each tick, directories re-opened when needed"))
        if r.watch_full:
            self._problems.once(("budget", "watch"), (
                f"[context] inotify watch budget {r.watch_budget} reached: directories without "
                f"a watch are listed and checked every tick"))

    def _read_system(self) -> None:
        """This tick's SystemContext, with the swap-out rates of this tick's vmstat sample
        (read by the reader's begin_tick)."""
        vmstat_ok, pswpout = self._r.vmstat_sample()
        if vmstat_ok and pswpout is None:
            self._problems.system_problem("vmstat", "malformed", 0)
        self.system = SystemContext(self, self._swapout.sample(vmstat_ok, pswpout))

    # ---- names (oomd.context.tree) ---------------------------------------------------------

    def resolve(self, patterns: CgroupPatterns) -> np.ndarray:
        """Rows matching the patterns this tick, sorted by relative path (byte-wise)."""
        return self._tree.resolve(patterns)

    def children(self, row: int) -> np.ndarray:
        """Child rows (every child directory, names not starting with '.'), sorted by name."""
        return self._tree.children(row)

    def parent(self, row: int) -> int:
        """The parent row, -1 for the root."""
        return self._tree.parent(row)

    def relpath(self, row: int) -> str:
        return self._tree.paths[row]

    def abspath(self, row: int) -> str:
        return self._tree.abspath(row)

    def row_of(self, relpath: str) -> int | None:
        """The row of a cgroup path, opening it (and its ancestors) if it exists."""
        return self._tree.row_of(relpath)

    def cgroup_id(self, row: int) -> int:
        return int(self._r.cols["cgid"][row])

    def dir_fd(self, row: int) -> int:
        """The row's open directory fd (kill code only; do not read the directory through it:
        the reader lists directories with it)."""
        return self._r.dirfd_of(row)

    def status(self, rows) -> np.ndarray:
        """Per-row status of this tick: STATUS_OK / MALFORMED / UNREADABLE / VANISHED."""
        return self._r.cols["status"][as_rows(rows)]

    def cgroup(self, row: int) -> CgroupView:
        return CgroupView(self, int(row))

    # ---- values (oomd.context.values) ------------------------------------------------------

    def prefetch(self, metrics: Iterable[str], rows) -> None:
        """Read the files behind several metrics for rows in one pass (one directory visit per
        row), e.g. every column a kill ranking needs before it asks for them one by one."""
        self._values.prefetch(metrics, rows)
        self._drain_logs()

    def get(self, metric: str, rows) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) of a metric for rows, reading whatever is not yet read this tick
        in one batch. Invalid entries hold 0 (or stale data): always mask with `valid`."""
        got = self._values.get(metric, rows)
        self._drain_logs()
        return got

    def logged_value(self, metric: str, row: int):
        """A value read only to be written in a log line (pressure_above's "total usage"):
        live it is ``value``; a replay that did not record it gives None instead of stopping."""
        return self.value(metric, row)

    def value(self, metric: str, row: int):
        """One metric of one row, or None when unavailable (``metric_table.scalar``)."""
        return scalar(metric, *self.get(metric, np.array([row], dtype=np.int32)))

    # ---- recording (oomd.record) ------------------------------------------------------------

    def reader_columns(self) -> dict[str, np.ndarray]:
        """The reader's columns as they are (read-only use: a recording copies them)."""
        return self._r.cols

    def rows_key(self) -> tuple[int, int]:
        """Changes whenever a row is opened or forgotten."""
        return (self._tree._epoch, self._tree.registered)

    def row_paths(self) -> dict[int, str]:
        """Row -> relative path of every row (the live dict: copy what you keep)."""
        return self._tree.paths

    def listing_counts(self) -> dict[int, int]:
        return self._tree.listing_counts()

    def unopened_children(self) -> dict[int, list[str]]:
        return self._tree.unopened_children()

    # ---- accounting -----------------------------------------------------------------------

    @property
    def starved(self) -> bool:
        """True if, this tick, a cgroup could not be opened or read for lack of file descriptors
        or memory: what the context shows may then be incomplete (a cgroup may be missing)."""
        self._drain_logs()
        return self._problems.starved

    def _drain_logs(self) -> None:
        if self._r.pending:
            self._problems.drain(self._tree.paths)

    @property
    def read_stats(self) -> dict[str, int]:
        """Counters: per problem kind (vanished, unreadable, malformed, missing) in total and
        per file (``"malformed:memory.stat"``), I/O totals, rows and fds."""
        c = self._r.counters()
        out: dict[str, int] = {}
        for kind in ("vanished", "unreadable", "malformed", "missing"):
            per = c[kind]
            out[kind] = sum(per.values())
            for fname, n in per.items():
                out[f"{kind}:{fname}"] = n
        for key in ("ok", "reads", "preads", "opens", "listings", "alive_checks", "dir_events",
                    "dir_event_overflows", "watches", "watch_refused", "config_invalidations",
                    "kept_values", "parks", "unparks", "parked", "born_parked",
                    "absent_files"):
            out[key] = c[key]
        out.update(self._problems.counts)
        out["rows"] = self._r.nrows
        out["open_fds"] = self._r.open_fds
        out["fd_budget"] = self._r.fd_budget
        return out

    def close(self) -> None:
        """Close every fd the context holds (rows, cached files, inotify). The context can
        refresh again afterwards (it re-opens what it needs)."""
        self._r.close()
        self._tree.clear()

    def watch_fd(self) -> int:
        """The reader's inotify fd (-1 if none), for a wait between ticks (oomd.wakeup)."""
        return self._r.ino_fd

    def drain_watches(self) -> int:
        """Take pending inotify events now instead of at the next refresh (so the kernel's
        queue does not overflow during a long interval). Returns the number of events."""
        return self._r.poll_watches() if self._r.ino_fd >= 0 else 0

    @property
    def nrows(self) -> int:
        return self._r.nrows

    @property
    def cache_files(self) -> bool:
        return bool(self._r.cache_files)

    @property
    def keep_config(self) -> bool:
        """Whether configuration-like values are kept across ticks (see the class doc)."""
        return bool(self._r.keep_config)
