"""OomdContext: the per-tick view of the monitored cgroups that plugins read.

The contract is docs/design.md ("OomdContext (what plugins see)"); the behaviour it reproduces is
reference §3 (pattern resolution), §5 (context model and derived metrics) and §6 (files).

The numbers live in ``oomd._fastcg.Reader`` (numpy columns filled in C). This module owns the
names: which row is which path, directory listings, pattern resolution, and the per-tick policy
(what to read when). Steady state costs no Python object per cgroup per tick: resolutions and
child lists are cached and only rebuilt when a directory listing changed.
"""

from __future__ import annotations

import errno as _errno
import math
import os
import resource
import stat as _stat
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import numpy.ma  # noqa: F401 - numpy imports it lazily inside the first tick, which may be out of fds

from oomd import _fastcg, logs
from oomd.cgpath import CgroupPatterns, split_components
from oomd.stats import Stats

# oomd's default io cost coefficients (src/oomd/Main.cpp): read_iops, readbw, write_iops,
# writebw, trim_iops, trimbw.
DEFAULT_SSD = (1.21e-2, 6.25e-7, 1.07e-3, 2.61e-7, 2.37e-2, 9.10e-10)
DEFAULT_HDD = (1.31e-3, 1.13e-7, 2.58e-1, 5.04e-7, 0.0, 0.0)

PREFER, NORMAL, AVOID = 1, 0, -1
STATUS_OK, STATUS_MALFORMED, STATUS_UNREADABLE, STATUS_VANISHED = 0, 1, 2, 3
STATUS_NAMES = _fastcg.STATUS_NAMES

INT64_MAX = (1 << 63) - 1
_K = _fastcg.K
_V = _fastcg.V
_D = _fastcg.D
_DT_DIR, _DT_LNK, _DT_UNKNOWN = 4, 10, 0
_GLOB_MAGIC = frozenset("*?[\\")

def _log(msg: str) -> None:
    logs.log(msg, logs.WARNING, depth=2)


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True)
class Metric:
    name: str
    kinds: int            # file kinds to load (bitmask of _fastcg.K values)
    bit: int              # validity bit in the `valid` column (-1: always valid)
    column: str | None    # reader column (None: computed here)
    index: int | None = None   # second-axis index for 2-D columns
    derive: str | None = None  # reader computation needed first
    dtype: str = "int64"


def _k(*names: str) -> int:
    m = 0
    for n in names:
        m |= 1 << _K[n]
    return m


def _metric_table() -> dict[str, Metric]:
    t: dict[str, Metric] = {}

    def add(name, kinds, bit, column, index=None, derive=None, dtype="int64"):
        t[name] = Metric(name, kinds, bit, column, index, derive, dtype)

    add("current_usage", _k("current"), _V["current"], "current")
    add("memory_min", _k("min"), _V["min"], "memory_min")
    add("memory_low", _k("low"), _V["low"], "memory_low")
    add("memory_high", _k("high"), _V["high"], "memory_high")
    add("memory_high_tmp", _k("high_tmp"), _V["high_tmp"], "memory_high_tmp")
    add("memory_max", _k("max"), _V["max"], "memory_max")
    add("swap_usage", _k("swap_cur"), _V["swap_cur"], "swap_current")
    add("swap_max", _k("swap_max"), _V["swap_max"], "swap_max")
    add("mem_pressure", _k("mem_psi"), _V["mem_full"], "mem_full", dtype="float32x3")
    add("mem_pressure_some", _k("mem_psi"), _V["mem_some"], "mem_some", dtype="float32x3")
    add("io_pressure", _k("io_psi"), _V["io_full"], "io_full", dtype="float32x3")
    add("io_pressure_some", _k("io_psi"), _V["io_some"], "io_some", dtype="float32x3")
    add("mem_pressure_some_total", _k("mem_psi"), _V["mem_some_total"], "psi_total", 0)
    add("mem_pressure_full_total", _k("mem_psi"), _V["mem_full_total"], "psi_total", 1)
    add("io_pressure_some_total", _k("io_psi"), _V["io_some_total"], "psi_total", 2)
    add("io_pressure_full_total", _k("io_psi"), _V["io_full_total"], "psi_total", 3)
    stat_names = {
        "anon": "anon_usage", "file": "file_usage", "shmem": "shmem_usage",
    }
    for i, key in enumerate(_fastcg.STAT_KEYS):
        add(stat_names.get(key, key), _k("mem_stat"), _V["stat0"] + i, "memory_stat", i)
    # oomd's anon_usage is 0 (not missing) when memory.stat or its anon key is missing
    t["anon_usage"] = Metric("anon_usage", _k("mem_stat"), -1, "memory_stat", 0)
    # oomd HEAD's: missing (not 0) when memory.stat or its anon key is missing
    add("anon_usage_strict", _k("mem_stat"), _V["stat0"], "memory_stat", 0)
    add("io_cost_cumulative", _k("io_stat"), _V["iocost"], "io_cost_cumulative",
        derive="iocost", dtype="float64")
    add("io_cost_rate", _k("io_stat"), _V["iorate"], "io_cost_rate", derive="iocost",
        dtype="float64")
    add("pg_scan_cumulative", _k("mem_stat"), _V["pgscan"], "pg_scan_cumulative",
        derive="pgscan")
    add("pg_scan_rate", _k("mem_stat"), _V["pgrate"], "pg_scan_rate", derive="pgscan")
    add("average_usage", _k("current"), _V["avg"], "average_usage", derive="avg")
    add("memory_growth", _k("current"), -1, None, derive="avg", dtype="float64")
    add("memory_protection", _k("current", "min", "low"), _V["prot"], "memory_protection",
        derive="prot")
    add("effective_usage", _k("current", "min", "low"), -1, None, derive="prot")
    add("is_populated", _k("events"), _V["populated"], "populated", dtype="bool")
    add("nr_dying_descendants", _k("cg_stat"), _V["dying"], "nr_dying_descendants")
    add("oom_group", _k("oom_group"), _V["oom_group"], "oom_group", dtype="bool")
    add("kill_preference", _k("xattr"), _V["kill_pref"], "kill_preference", dtype="int8")
    add("effective_swap_max", _k("swap_cur", "swap_max"), _V["eswap_max"],
        "effective_swap_max", derive="eswap")
    add("effective_swap_free", _k("swap_cur", "swap_max"), _V["eswap_free"],
        "effective_swap_free", derive="eswap")
    add("effective_swap_util_pct", _k("swap_cur", "swap_max"), _V["eswap_util"],
        "effective_swap_util_pct", derive="eswap", dtype="float64")
    add("id", 0, -1, "cgid", dtype="uint64")
    return t


METRICS: dict[str, Metric] = _metric_table()


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


# ---------------------------------------------------------------------------------------------
# Patterns (reference §3)


def brace_expand(path: str) -> list[str]:
    """glob(3)'s GLOB_BRACE on one pattern: the first unescaped ``{...}`` with a matching close
    is replaced by each comma-separated alternative (recursively); an unterminated brace is
    left literal, as glibc does."""
    i = 0
    n = len(path)
    while i < n:
        c = path[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth = 0
            j = i
            alts_start = i + 1
            alts = []
            while j < n:
                cj = path[j]
                if cj == "\\":
                    j += 2
                    continue
                if cj == "{":
                    depth += 1
                elif cj == "}":
                    depth -= 1
                    if depth == 0:
                        alts.append(path[alts_start:j])
                        break
                elif cj == "," and depth == 1:
                    alts.append(path[alts_start:j])
                    alts_start = j + 1
                j += 1
            if j >= n:
                return [path]
            out = []
            for a in alts:
                out.extend(brace_expand(path[:i] + a + path[j + 1:]))
            return out
        i += 1
    return [path]


def compile_patterns(patterns: CgroupPatterns) -> tuple[tuple[str, ...], ...]:
    """Each pattern after brace expansion, as component tuples (the root is ``()``)."""
    out: dict[tuple[str, ...], None] = {}
    for comps in patterns:
        if not comps:
            out.setdefault((), None)
            continue
        for expanded in brace_expand("/".join(comps)):
            out.setdefault(split_components(expanded), None)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Views


class _DirInfo:
    """One directory's parsed listing: name -> (inode, kind) where kind is 1 for a directory,
    2 for a symlink (or unknown type) that resolves to a directory, 0 otherwise."""

    __slots__ = ("gen", "ents", "bnames", "child_names")

    def __init__(self, gen, ents, bnames, child_names):
        self.gen = gen
        self.ents = ents
        self.bnames = bnames
        self.child_names = child_names


class CgroupView:
    """One row, with oomd's accessor names as properties (None when unavailable)."""

    __slots__ = ("_ctx", "row")

    def __init__(self, ctx: "OomdContext", row: int) -> None:
        self._ctx = ctx
        self.row = row

    @property
    def relpath(self) -> str:
        return self._ctx.relpath(self.row)

    @property
    def abspath(self) -> str:
        return self._ctx.abspath(self.row)

    @property
    def is_root(self) -> bool:
        return self._ctx.relpath(self.row) == ""

    def children(self) -> list["CgroupView"]:
        return [CgroupView(self._ctx, int(r)) for r in self._ctx.children(self.row)]

    def parent(self) -> "CgroupView | None":
        p = self._ctx.parent(self.row)
        return None if p < 0 else CgroupView(self._ctx, p)

    def __repr__(self) -> str:
        return f"CgroupView({self.relpath!r}, row={self.row})"


def _view_property(metric: str):
    def get(self):
        return self._ctx.value(metric, self.row)

    get.__name__ = metric
    return property(get, doc=f"``{metric}`` of this cgroup this tick, or None.")


for _m in METRICS:
    setattr(CgroupView, _m, _view_property(_m))


class SystemContext:
    """System-wide values of this tick (reference §5.5). /proc/vmstat is read at every refresh
    (the swap-out rates need every sample); the other files on first use in the tick."""

    __slots__ = ("_ctx", "_vals", "_meminfo", "_vmstat", "swapout_bps", "swapout_bps_60",
                 "swapout_bps_300")

    def __init__(self, ctx: "OomdContext", swapout=(0.0, 0.0, 0.0)) -> None:
        self._ctx = ctx
        self._vals = None
        self._meminfo = None
        self._vmstat = None
        self.swapout_bps, self.swapout_bps_60, self.swapout_bps_300 = swapout

    def _v(self, key):
        if self._vals is None:
            self._vals = self._ctx._r.system()
            self._ctx._drain_logs()
        return self._vals[key]

    @property
    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo, values in bytes (empty if unreadable)."""
        if self._meminfo is None:
            self._v("mem_total")
            raw = self._ctx._r.meminfo_bytes()
            self._meminfo = {} if raw is None else _fastcg.parse_meminfo_dict(raw)
        return self._meminfo

    @property
    def vmstat(self) -> dict[str, int]:
        """/proc/vmstat (empty if unreadable); malformed lines are counted and skipped."""
        if self._vmstat is None:
            raw = self._ctx._r.vmstat_bytes()
            if raw is None:
                self._vmstat = {}
            else:
                self._vmstat, bad = _fastcg.parse_vmstat_dict(raw)
                if bad:
                    self._ctx._system_problem("vmstat", "malformed", 0)
        return self._vmstat

    swap_total = property(lambda self: self._v("swap_total"), doc="bytes, /proc/swaps")
    swap_used = property(lambda self: self._v("swap_used"), doc="bytes, /proc/swaps")
    swappiness = property(lambda self: self._v("swappiness") or 0)
    mem_total = property(lambda self: self._v("mem_total"))
    mem_free = property(lambda self: self._v("mem_free"))
    mem_pressure = property(lambda self: self._v("mem_full"), doc="root full PSI or None")
    mem_pressure_some = property(lambda self: self._v("mem_some"))
    io_pressure = property(lambda self: self._v("io_full"))
    io_pressure_some = property(lambda self: self._v("io_some"))


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
    per row and file, at most ``MAX_LOGS_PER_TICK`` lines a tick.

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
    """

    MAX_LOGS_PER_TICK = 64

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
            hdd_coeffs=hdd_coeffs, keep_config=keep_config, watch_budget=watch_budget)
        self._cache_arg = cache_files
        self._path: dict[int, str] = {}
        self._by_path: dict[str, int] = {}
        self._kids: dict[int, dict[str, int]] = {}
        self._dirs: dict[int, _DirInfo] = {}
        self._ccache: dict[int, tuple[int, int, np.ndarray]] = {}
        self._compiled: dict[CgroupPatterns, tuple[tuple[str, ...], ...]] = {}
        self._pcache: dict[CgroupPatterns, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._resolved: dict[CgroupPatterns, np.ndarray] = {}
        self._monitored: list[_Monitored] = []
        self._deferred: list[int] = []
        self._epoch = 0
        self._pcache_version = 0
        self._deps_key = None
        self._deps = np.empty(0, dtype=np.int32)
        self._retry_opens = False
        self.starved_tick = -1  # last tick in which a read or open failed for lack of fds/memory
        self._in_refresh = False
        self._ctx_stats = {"evicted": 0, "rows_opened": 0, "resolutions": 0,
                           "listings_parsed": 0, "system_malformed": 0,
                           "system_unreadable": 0, "logs_dropped": 0,
                           "fd_exhausted": 0, "dir_vanished": 0, "dir_unopenable": 0}
        self._sys_logged: set[tuple[str, str]] = set()
        self._fd_logged_tick = -1
        self._open_failures = 0
        self._logged_tick = -1
        self._logged_this_tick = 0
        self._prev_pswpout: int | None = None
        self._prev_vmstat_ok = False
        self._swapout = (0.0, 0.0, 0.0)
        self._f60 = math.exp(-interval / 60.0)
        self._f300 = math.exp(-interval / 300.0)
        self.system = SystemContext(self)
        self._open_root()

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
        self._pcache_version += 1
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
        r = self._r
        self._in_refresh = True
        try:
            for row in self._deferred:
                r.close_row(row)
            self._deferred.clear()
            r.begin_tick()
            self._resolved.clear()
            if self._retry_opens:
                self._retry_opens = False
                self._epoch += 1
            self._read_system()
            self._evict_vanished()
            for m in self._monitored:
                rows = self.resolve(m.patterns)
                if len(rows):
                    r.load(rows, m.kinds)
                    for name in m.derived:
                        self._ensure(METRICS[name], rows)
        finally:
            self._in_refresh = False
        self._drain_logs()

    def _system_problem(self, fname: str, problem: str, err: int) -> None:
        self._ctx_stats["system_" + problem] += 1
        if (fname, problem) not in self._sys_logged:
            self._sys_logged.add((fname, problem))
            why = f" ({os.strerror(err)})" if err else ""
            _log(f"[context] {os.path.join(self.proc_root, fname)}: {problem}{why}")

    def _read_system(self) -> None:
        """Swap-out rates from this tick's vmstat sample (read by the reader's begin_tick)."""
        vmstat_ok, pswpout = self._r.vmstat_sample()
        bps = avg60 = avg300 = 0.0
        if vmstat_ok:
            if pswpout is None:
                self._system_problem("vmstat", "malformed", 0)
            elif self._prev_vmstat_ok and self._prev_pswpout is not None:
                bps = (pswpout - self._prev_pswpout) * 4096.0 / self.interval
                avg60 = bps + self._f60 * (self._swapout[1] - bps)
                avg300 = bps + self._f300 * (self._swapout[2] - bps)
        self._prev_vmstat_ok = vmstat_ok
        self._prev_pswpout = pswpout
        self._swapout = (bps, avg60, avg300)
        self.system = SystemContext(self, self._swapout)

    def _live_rows(self) -> np.ndarray:
        return np.flatnonzero(self._r.cols["live"]).astype(np.int32)

    def _evict_vanished(self) -> None:
        """Reference §5.2: a row whose directory lost ``cgroup.controllers`` is evicted. Off
        cgroup2 every row is checked with faccessat; on cgroup2 (or when the caller vouches
        for it) a row whose parent directory was listed this tick is alive iff the listing
        still shows it with the same inode, and only the other rows are checked."""
        r = self._r
        if r.root_row < 0:
            self._open_root()
            if r.root_row < 0:
                return
        if not r.cache_files:
            live = self._live_rows()
            ok = r.check_alive(live)
            for row in live[~ok]:
                if int(row) in self._path:
                    self._evict_one(int(row))
            if r.root_row < 0:
                self._open_root()
            self._scan(self._monitored_deps())
            return
        root = r.root_row
        if not r.check_alive(np.array([root], dtype=np.int32))[0]:
            self._retire(root)
            self._open_root()
            return
        self._scan(self._monitored_deps())
        check = r.unlisted_rows()
        if len(check):
            ok = r.check_alive(check)
            for row in check[~ok]:
                if int(row) in self._path:
                    self._retire(int(row))

    def _monitored_deps(self) -> np.ndarray:
        key = (self._epoch, self._pcache_version, len(self._monitored))
        if self._deps_key == key:
            return self._deps
        deps = []
        for m in self._monitored:
            c = self._pcache.get(m.patterns)
            if c is not None and c[0] == self._epoch:
                deps.append(c[1])
        self._deps_key = key
        if not deps:
            self._deps = np.empty(0, dtype=np.int32)
        else:
            self._deps = np.unique(np.concatenate(deps)).astype(np.int32)
        return self._deps

    # ---- rows -------------------------------------------------------------------------------

    def _open_root(self) -> None:
        r = self._r
        res = r.open_root()
        if res < 0:
            key = ("cgroup-fs", str(-res))
            if key not in self._sys_logged:
                self._sys_logged.add(key)
                _log(f"[context] cannot open cgroup-fs {self.cgroup_fs}: {os.strerror(-res)}")
            return
        self._register(res, "", -1, "")

    def _register(self, row: int, path: str, prow: int, name: str) -> None:
        self._path[row] = path
        self._by_path[path] = row
        if prow >= 0:
            self._kids.setdefault(prow, {})[name] = row
        self._ctx_stats["rows_opened"] += 1

    def _child(self, prow: int, name: str, ino: int | None = None, kind: int = 1) -> int | None:
        """The row of directory `name` under `prow`, opening it if needed."""
        r = self._r
        ppath = self._path[prow]
        path = f"{ppath}/{name}" if ppath else name
        row = self._by_path.get(path)
        if row is not None:
            cols = r.cols
            if ino is not None and kind == 1 and int(cols["cgid"][row]) != ino:
                self._retire(row)         # the directory was removed and re-created
            else:
                if cols["parent"][row] != prow:
                    r.set_parent(row, prow)
                    self._kids.setdefault(prow, {})[name] = row
                return row
        res = r.open_child(prow, os.fsencode(name))
        if res < 0:
            # Listed but gone (a race with rmdir), or not openable (EMFILE, EACCES): the
            # cgroup is not monitored this tick. Counted; logged once per errno.
            # A vanished one changes its parent's listing; any other failure would stay cached
            # in the resolutions, so they are redone next tick and the open retried.
            gone = -res in (_errno.ENOENT, _errno.ENOTDIR)
            self._ctx_stats["dir_vanished" if gone else "dir_unopenable"] += 1
            if res in (-_errno.EMFILE, -_errno.ENFILE):
                # out of fds says nothing about the cgroup: whatever lists it is incomplete
                # this tick and must not be cached (it is tried again next time)
                self._open_failures += 1
                self._fd_problem(1)
            elif res == -_errno.ENOMEM:
                self.starved_tick = self.tick
            if not gone:
                self._retry_opens = True
                key = ("open-dir", str(-res))
                if key not in self._sys_logged:
                    self._sys_logged.add(key)
                    _log(f"[context] cannot open cgroup {self.cgroup_fs}/{path}: "
                         f"{os.strerror(-res)}")
            return None
        self._register(res, path, prow, name)
        return res

    def _retire(self, row: int) -> None:
        """Forget a row and its descendants (their directories are gone or replaced). Freed
        now during refresh, at the next refresh otherwise (rows stay valid for the tick)."""
        for child in list(self._kids.get(row, {}).values()):
            if child in self._path:
                self._retire(child)
        self._unregister(row)
        self._ctx_stats["evicted"] += 1
        if self._in_refresh:
            self._r.close_row(row)
        else:
            self._r.cols["status"][row] = STATUS_VANISHED
            self._deferred.append(row)

    def _evict_one(self, row: int) -> None:
        """oomd's eviction of one context: its children stay (they are re-linked to a fresh
        parent row when one is opened for the same path)."""
        for child in self._kids.get(row, {}).values():
            self._r.set_parent(child, -2)
        self._unregister(row)
        self._ctx_stats["evicted"] += 1
        self._r.close_row(row)

    def _unregister(self, row: int) -> None:
        path = self._path.pop(row, None)
        if path is not None and self._by_path.get(path) == row:
            del self._by_path[path]
        prow = int(self._r.cols["parent"][row])
        if prow >= 0 and path is not None:
            kids = self._kids.get(prow)
            name = path.rsplit("/", 1)[-1]
            if kids is not None and kids.get(name) == row:
                del kids[name]
        self._kids.pop(row, None)
        self._dirs.pop(row, None)
        self._ccache.pop(row, None)
        self._epoch += 1

    def _relink(self, row: int) -> int:
        """Parent row of a row whose parent was evicted (oomd looks parents up by path)."""
        path = self._path[row]
        ppath, _, name = path.rpartition("/")
        prow = self.row_of(ppath)
        if prow is None:
            return -1
        self._r.set_parent(row, prow)
        self._kids.setdefault(prow, {})[name] = row
        return prow

    def _fix_parents(self, rows: np.ndarray) -> None:
        par = self._r.cols["parent"]
        bad = rows[par[rows] == -2]
        for row in bad:
            self._relink(int(row))

    # ---- listings -----------------------------------------------------------------------------

    def _scan(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        for d in self._r.scan_dirs(np.ascontiguousarray(rows, dtype=np.int32)):
            self._parse_listing(int(d))

    def _parse_listing(self, d: int) -> None:
        r = self._r
        self._ctx_stats["listings_parsed"] += 1
        ents: dict[str, tuple[int, int]] = {}
        bnames: list[tuple[bytes, str]] = []
        dfd = r.dirfd_of(d)
        for bname, ino, dtype in r.dir_entries(d):
            name = os.fsdecode(bname)
            if dtype == _DT_DIR:
                kind = 1
            elif dtype in (_DT_LNK, _DT_UNKNOWN):
                kind = 0
                try:
                    st = os.stat(bname, dir_fd=dfd, follow_symlinks=True)
                    if _stat.S_ISDIR(st.st_mode):
                        lst = os.stat(bname, dir_fd=dfd, follow_symlinks=False)
                        kind = 1 if _stat.S_ISDIR(lst.st_mode) else 2
                        ino = lst.st_ino if kind == 1 else ino
                except OSError:
                    kind = 0
            else:
                kind = 0
            ents[name] = (ino, kind)
            if kind:
                bnames.append((bname, name))
        child_names = sorted((n for n, (_, k) in ents.items() if k == 1 and n[0] != "."),
                             key=os.fsencode)
        self._dirs[d] = _DirInfo(int(r.cols["gen"][d]), ents, bnames, child_names)
        cgid = r.cols["cgid"]
        for name, crow in list(self._kids.get(d, {}).items()):
            e = ents.get(name)
            if e is None or e[1] == 0 or (e[1] == 1 and int(cgid[crow]) != e[0]):
                if crow in self._path:
                    self._retire(crow)

    def _listing(self, d: int) -> _DirInfo | None:
        self._scan(np.array([d], dtype=np.int32))
        return self._dirs.get(d)

    # ---- pattern resolution (reference §3) ----------------------------------------------------

    def resolve(self, patterns: CgroupPatterns) -> np.ndarray:
        """Rows matching the patterns this tick, sorted by relative path (byte-wise)."""
        got = self._resolved.get(patterns)
        if got is not None:
            return got
        r = self._r
        cached = self._pcache.get(patterns)
        if cached is not None and cached[0] == self._epoch:
            epoch, deps, gens, rows = cached
            self._scan(deps)
            if self._epoch == epoch and r.same_gens(deps, gens):
                self._resolved[patterns] = rows
                return rows
        failures = self._open_failures
        rows, deps = self._resolve_uncached(patterns)
        deps = np.unique(np.asarray(deps, dtype=np.int32))
        if self._open_failures == failures:
            self._pcache[patterns] = (self._epoch, deps, r.cols["gen"][deps].copy(), rows)
        else:
            self._pcache.pop(patterns, None)      # incomplete: resolve again next time
        self._pcache_version += 1
        self._resolved[patterns] = rows
        return rows

    def _resolve_uncached(self, patterns: CgroupPatterns) -> tuple[np.ndarray, list[int]]:
        self._ctx_stats["resolutions"] += 1
        compiled = self._compiled.get(patterns)
        if compiled is None:
            compiled = self._compiled[patterns] = compile_patterns(patterns)
        r = self._r
        found: dict[int, None] = {}
        deps: list[int] = []
        for comps in compiled:
            if r.root_row < 0:
                break
            level = [r.root_row]
            for comp in comps:
                if not level:
                    break
                self._scan(np.array(level, dtype=np.int32))
                deps.extend(level)
                nxt: list[int] = []
                magic = any(ch in _GLOB_MAGIC for ch in comp)
                bcomp = os.fsencode(comp)
                for d in level:
                    info = self._dirs.get(d)
                    if info is None:
                        continue
                    if not magic:
                        e = info.ents.get(comp)
                        if e is not None and e[1]:
                            row = self._child(d, comp, e[0], e[1])
                            if row is not None:
                                nxt.append(row)
                        continue
                    for bname, name in info.bnames:
                        if _fastcg.fnmatch_name(bcomp, bname):
                            e = info.ents[name]
                            row = self._child(d, name, e[0], e[1])
                            if row is not None:
                                nxt.append(row)
                level = nxt
            for row in level:
                found[row] = None
        rows = sorted(found, key=lambda x: os.fsencode(self._path[x]))
        arr = np.array(rows, dtype=np.int32)
        arr.flags.writeable = False
        return arr, deps

    # ---- navigation -----------------------------------------------------------------------

    def children(self, row: int) -> np.ndarray:
        """Child rows (every child directory, names not starting with '.'), sorted by name."""
        info = self._listing(row)
        if info is None:
            return np.empty(0, dtype=np.int32)
        c = self._ccache.get(row)
        if c is not None and c[0] == info.gen and c[1] == self._epoch:
            return c[2]
        rows = []
        failures = self._open_failures
        for name in info.child_names:
            e = info.ents[name]
            cr = self._child(row, name, e[0], e[1])
            if cr is not None:
                rows.append(cr)
        arr = np.array(rows, dtype=np.int32)
        arr.flags.writeable = False
        if self._open_failures == failures:
            self._ccache[row] = (info.gen, self._epoch, arr)
        return arr

    def parent(self, row: int) -> int:
        p = int(self._r.cols["parent"][row])
        if p == -2:
            p = self._relink(row)
        return p

    def relpath(self, row: int) -> str:
        return self._path[row]

    def abspath(self, row: int) -> str:
        rel = self._path[row]
        if not rel:
            return self.cgroup_fs
        return f"{self.cgroup_fs}/{rel}" if self.cgroup_fs != "/" else f"/{rel}"

    def cgroup_id(self, row: int) -> int:
        return int(self._r.cols["cgid"][row])

    def dir_fd(self, row: int) -> int:
        """The row's open directory fd (kill code only; do not read the directory through it:
        the reader lists directories with it)."""
        return self._r.dirfd_of(row)

    def row_of(self, relpath: str) -> int | None:
        """The row of a cgroup path, opening it (and its ancestors) if it exists."""
        r = self._r
        row = r.root_row
        if row < 0:
            return None
        for comp in split_components(relpath):
            nxt = self._kids.get(row, {}).get(comp)
            if nxt is None or nxt not in self._path:
                nxt = self._child(row, comp)
            if nxt is None:
                return None
            row = nxt
        return row

    def status(self, rows) -> np.ndarray:
        """Per-row status of this tick: STATUS_OK / MALFORMED / UNREADABLE / VANISHED."""
        return self._r.cols["status"][self._rows(rows)]

    def cgroup(self, row: int) -> CgroupView:
        return CgroupView(self, int(row))

    # ---- values -------------------------------------------------------------------------------

    @staticmethod
    def _rows(rows) -> np.ndarray:
        if isinstance(rows, np.ndarray) and rows.dtype == np.int32 and rows.flags.c_contiguous:
            return rows
        return np.ascontiguousarray(rows, dtype=np.int32).reshape(-1)

    def _ensure(self, m: Metric, rows: np.ndarray) -> None:
        r = self._r
        d = m.derive
        if d is None:
            if m.kinds:
                r.load(rows, m.kinds)
        elif d == "avg":
            r.compute_average(rows)
        elif d == "iocost":
            r.compute_iocost(rows)
        elif d == "pgscan":
            r.compute_pgscan(rows)
        elif d == "prot":
            self._compute_protection(rows)
        elif d == "eswap":
            self._compute_eswap(rows)

    def prefetch(self, metrics: Iterable[str], rows) -> None:
        """Read the files behind several metrics for rows in one pass (one directory visit per
        row), e.g. every column a kill ranking needs before it asks for them one by one."""
        kinds = 0
        for name in metrics:
            kinds |= METRICS[name].kinds
        rows = self._rows(rows)
        if kinds and len(rows):
            self._r.load(rows, kinds)
            self._drain_logs()

    def get(self, metric: str, rows) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) of a metric for rows, reading whatever is not yet read this tick
        in one batch. Invalid entries hold 0 (or stale data): always mask with `valid`."""
        m = METRICS[metric]
        rows = self._rows(rows)
        self._ensure(m, rows)
        cols = self._r.cols
        if m.column is not None:
            col = cols[m.column]
            # (take: a fraction of fancy indexing's cost, 2-D columns especially)
            vals = col.take(rows, axis=0) if m.index is None else col[rows, m.index]
            if m.dtype == "bool":
                vals = vals.astype(bool)
            if m.bit < 0:
                valid = np.ones(len(rows), dtype=bool)
            else:
                valid = self._r.take_valid(rows, 1 << m.bit)
            if m.name == "anon_usage":
                have = self._r.take_valid(rows, 1 << _V["stat0"])
                vals = np.where(have, vals, 0)
        elif metric == "memory_growth":
            valid = self._r.take_valid(rows, (1 << _V["current"]) | (1 << _V["avg"]))
            cur = cols["current"][rows].astype(np.float64)
            avg = cols["average_usage"][rows]
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = np.where(avg == 0, 0.0, cur / np.where(avg == 0, 1, avg))
        else:  # effective_usage
            valid = self._r.take_valid(rows, (1 << _V["current"]) | (1 << _V["prot"]))
            vals = cols["current"][rows] - cols["memory_protection"][rows]
        self._drain_logs()
        return vals, valid

    def value(self, metric: str, row: int):
        """One metric of one row, or None when unavailable. PSI triples are tuples of
        np.float32 (so arithmetic on them stays float32, as in oomd)."""
        vals, valid = self.get(metric, np.array([row], dtype=np.int32))
        if not valid[0]:
            return None
        v = vals[0]
        dt = METRICS[metric].dtype
        if dt == "float32x3":
            return (v[0], v[1], v[2])
        if dt == "bool":
            return bool(v)
        if dt == "float64":
            return float(v)
        return int(v)

    # ---- hierarchical metrics -------------------------------------------------------------

    def _ancestor_closure(self, rows: np.ndarray, min_depth: int) -> np.ndarray:
        """rows plus their ancestors down to depth `min_depth`, sorted by depth."""
        cols = self._r.cols
        depth = cols["depth"]
        self._fix_parents(rows)
        parts = [rows]
        cur = rows[depth[rows] > min_depth]
        while len(cur):
            par = np.unique(cols["parent"][cur])
            par = par[par >= 0].astype(np.int32)
            self._fix_parents(par)
            parts.append(par)
            cur = par[depth[par] > min_depth]
        q = np.unique(np.concatenate(parts)).astype(np.int32)
        return q[np.argsort(depth[q], kind="stable")]

    def _compute_protection(self, rows: np.ndarray) -> None:
        """memory_protection for rows (reference §5.3), all siblings at once, O(N)."""
        cols = self._r.cols
        todo = rows[(cols["loaded"][rows] & np.uint32(1 << _D["prot"])) == 0]
        if len(todo) == 0:
            return
        q = self._ancestor_closure(todo, 1)
        depth = cols["depth"]
        parents = np.unique(cols["parent"][q[depth[q] >= 2]])
        sib_rows, sib_par = [], []
        for p in parents:
            ch = self.children(int(p))
            sib_rows.append(ch)
            sib_par.append(np.full(len(ch), p, dtype=np.int32))
        if sib_rows:
            sr = np.concatenate(sib_rows).astype(np.int32)
            sp = np.concatenate(sib_par).astype(np.int32)
        else:
            sr = sp = np.empty(0, dtype=np.int32)
        self._r.compute_protection(q, sr, sp)

    def _compute_eswap(self, rows: np.ndarray) -> None:
        cols = self._r.cols
        todo = rows[(cols["loaded"][rows] & np.uint32(1 << _D["eswap"])) == 0]
        if len(todo) == 0:
            return
        self._r.compute_eswap(self._ancestor_closure(todo, 0))

    # ---- accounting -----------------------------------------------------------------------

    @property
    def starved(self) -> bool:
        """True if, this tick, a cgroup could not be opened or read for lack of file descriptors
        or memory: what the context shows may then be incomplete (a cgroup may be missing)."""
        self._drain_logs()
        return self.starved_tick == self.tick

    def _drain_logs(self) -> None:
        if not self._r.pending:
            return
        for fname, problem, err in self._r.drain_system_problems():
            self._system_problem(fname, problem, err)
        pending, dropped, exhausted = self._r.drain_logs()
        if dropped:
            self._ctx_stats["logs_dropped"] += dropped
        if exhausted:
            self._fd_problem(exhausted)
        for row, kind, err, errnum in pending:
            if self._logged_tick != self.tick:
                self._logged_tick = self.tick
                self._logged_this_tick = 0
            self._logged_this_tick += 1
            if self._logged_this_tick > self.MAX_LOGS_PER_TICK:
                self._ctx_stats["logs_dropped"] += 1
                continue
            path = self._path.get(row, f"<row {row}>")
            fname = _fastcg.FILE_NAMES[kind]
            why = f" ({os.strerror(errnum)})" if errnum else ""
            where = f"{self.cgroup_fs}/{path}" if path else self.cgroup_fs
            _log(f"[context] {where}/{fname}: {_fastcg.ERROR_NAMES[err]}{why}")

    def _fd_problem(self, n: int) -> None:
        """n reads or directory opens failed for lack of fds: counted, one log line a tick, and
        the tick's view is marked incomplete (``starved``)."""
        self.starved_tick = self.tick
        self._ctx_stats["fd_exhausted"] += n
        if self._fd_logged_tick != self.tick:
            self._fd_logged_tick = self.tick
            _log(f"[context] out of file descriptors: reads or cgroup directories failed this "
                 f"tick (fd budget {self._r.fd_budget}, {self._r.open_fds} open)")

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
                    "kept_values", "parks", "unparks", "parked"):
            out[key] = c[key]
        out.update(self._ctx_stats)
        out["rows"] = self._r.nrows
        out["open_fds"] = self._r.open_fds
        out["fd_budget"] = self._r.fd_budget
        return out

    def close(self) -> None:
        """Close every fd the context holds (rows, cached files, inotify). The context can
        refresh again afterwards (it re-opens what it needs)."""
        self._r.close()
        self._path.clear()
        self._by_path.clear()
        self._kids.clear()
        self._dirs.clear()
        self._ccache.clear()
        self._pcache.clear()
        self._pcache_version += 1
        self._resolved.clear()
        self._deferred.clear()
        self._epoch += 1

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
