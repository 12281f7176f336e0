# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The hot path of pyoomd: cgroupfs reading and parsing in C (reference §5, §6).

A ``Reader`` owns a table of rows (one per opened cgroup directory) and, per row, numpy columns
for every counter oomd reads. ``load(rows, kinds)`` reads and parses the requested files of many
rows in one nogil loop; the ``compute_*`` methods derive oomd's temporal and hierarchical metrics
over the arrays. Python (``oomd.context``) owns path names, pattern resolution and policy.

This module is the reader's face: the Python API (``Reader``, the constants, the pure parsers
the Python side uses) over the Cython modules of ``oomd/_reader`` that do the work, each
cimported, so that a tick's loops run in C from end to end (docs/design.md, "Reading"):

- ``table``: the rows, the numpy columns, the fds they hold, the fd budget and parking;
- ``watch``: inotify (listings to redo, configuration values kept across ticks);
- ``listing``: directory listings and their generations;
- ``load``: reading files into columns, the per-tick hot loop;
- ``derived``: the derived-metric kernels (average, rates, protection, effective swap);
- ``sysfiles``: /proc/meminfo, vmstat, swaps, swappiness, the root's PSI;
- ``problems``: outcome counters and the queue of read problems;
- ``parse.pxd``: the file parsers, inline, following oomd 0.5.0's rules exactly
  (``src/oomd/util/Fs.cpp``); where oomd aborts or has undefined behaviour on a malformed
  file, the value is marked invalid and the row's status says ``malformed`` instead.

Syscall economy: directory fds stay open for the life of a row; file fds are kept open and
re-read with ``pread(fd, 0)`` when ``cache_files`` is set (files that are never replaced, as on
cgroup2) and the reader's own fd count is under ``fd_budget``; otherwise ``openat`` on the
directory fd, ``read``, ``close``.
"""

import time

import numpy as np
cimport numpy as cnp

from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

from oomd._reader cimport derived
from oomd._reader.parse cimport (
    line_end, meminfo_line, psi_upstream_line, split_tokens, vmstat_line)
from oomd._reader.syscalls cimport FNM_PERIOD, c_fnmatch

from oomd._reader.baseline import RawFds, RawPaths, raw_read_loop  # noqa: F401 (bench)

cnp.import_array()


CGROUP2_SUPER_MAGIC = 0x63677270
CONFIG_KINDS_ = CONFIG_KINDS
MAX_USER_WATCHES = b"/proc/sys/fs/inotify/max_user_watches"

FILE_NAMES = (
    "memory.current", "memory.min", "memory.low", "memory.high", "memory.high.tmp",
    "memory.max", "memory.swap.current", "memory.swap.max", "memory.pressure", "io.pressure",
    "memory.stat", "io.stat", "cgroup.events", "cgroup.stat", "memory.oom.group", "xattr",
)
STAT_KEYS = (
    "anon", "file", "shmem", "pgscan", "active_file", "inactive_file", "active_anon",
    "inactive_anon", "workingset_refault_anon", "workingset_refault_file",
    "workingset_refault", "pgsteal",
)
STATUS_NAMES = ("ok", "malformed", "unreadable", "vanished")
ERROR_NAMES = ("ok", "malformed", "unreadable", "vanished", "missing")

# Exported constants (the Python side names them; values come from oomd/_reader/defs.pxd).
K = dict(current=K_CURRENT, min=K_MIN, low=K_LOW, high=K_HIGH, high_tmp=K_HIGH_TMP, max=K_MAX,
         swap_cur=K_SWAP_CUR, swap_max=K_SWAP_MAX, mem_psi=K_MEM_PSI, io_psi=K_IO_PSI,
         mem_stat=K_MEM_STAT, io_stat=K_IO_STAT, events=K_EVENTS, cg_stat=K_CG_STAT,
         oom_group=K_OOM_GROUP, xattr=K_XATTR)
V = dict(current=V_CURRENT, min=V_MIN, low=V_LOW, high=V_HIGH, high_tmp=V_HIGH_TMP, max=V_MAX,
         swap_cur=V_SWAP_CUR, swap_max=V_SWAP_MAX, mem_some=V_MEM_SOME, mem_full=V_MEM_FULL,
         mem_some_total=V_MEM_SOME_TOTAL, mem_full_total=V_MEM_FULL_TOTAL, io_some=V_IO_SOME,
         io_full=V_IO_FULL, io_some_total=V_IO_SOME_TOTAL, io_full_total=V_IO_FULL_TOTAL,
         mem_stat=V_MEM_STAT, stat0=V_STAT0, io_stat=V_IO_STAT, populated=V_POPULATED,
         dying=V_DYING, oom_group=V_OOM_GROUP, kill_pref=V_KILL_PREF, avg=V_AVG,
         iocost=V_IOCOST, iorate=V_IORATE, pgscan=V_PGSCAN, pgrate=V_PGRATE,
         rawprot=V_RAWPROT, prot=V_PROT, eswap_max=V_ESWAP_MAX, eswap_free=V_ESWAP_FREE,
         eswap_util=V_ESWAP_UTIL)
D = dict(avg=D_AVG, iocost=D_IOCOST, pgscan=D_PGSCAN, rawprot=D_RAWPROT, prot=D_PROT,
         eswap=D_ESWAP)
ST_OK_ = ST_OK
ST_MALFORMED_ = ST_MALFORMED
ST_UNREADABLE_ = ST_UNREADABLE
ST_VANISHED_ = ST_VANISHED
SYS = dict(meminfo=SYS_MEMINFO, vmstat=SYS_VMSTAT, swaps=SYS_SWAPS, swappiness=SYS_SWAPPINESS,
           psi_mem=SYS_PSI_MEM, psi_io=SYS_PSI_IO, all=SYS_ALL)
NFILE_ = NFILE
# Files found absent in a live directory (a controller not enabled) are tried again after an
# inotify event that can bring them back, and at least this often (seconds) whatever happens.
ABSENT_RETRY = 60.0


# ---------------------------------------------------------------------------------------------
# Pure parsers exposed to Python (used by OomdContext for the lazily-built system dicts, by
# pattern matching, and by tests that feed bytes directly).

def psi_line_avgs(bytes line):
    """(avg10, avg60, avg300) of one upstream PSI line as float32-rounded floats, or None."""
    cdef float a[3]
    cdef uint64_t t
    cdef const char* s = line
    cdef const char* e = s + len(line)
    e = line_end(s, e)
    cdef const char* ts[1]
    cdef const char* te[1]
    if split_tokens(s, e, b' ', ts, te, 1) < 1:
        return None
    cdef bytes label = line[:te[0] - s]
    if label not in (b"some", b"full"):
        return None
    if psi_upstream_line(s, e, label, a, &t) != 0:
        return None
    return (a[0], a[1], a[2])


cdef inline int _system_line(bint meminfo, const char* s, const char* le, const char** ks,
                             const char** ke, int64_t* out) noexcept nogil:
    """One line of /proc/meminfo (value * 1024) or /proc/vmstat; 0 if it parses."""
    cdef uint64_t mv
    if not meminfo:
        return vmstat_line(s, le, ks, ke, out)
    if meminfo_line(s, le, ks, ke, &mv) != 0:
        return -1
    out[0] = <int64_t>(mv * 1024)
    return 0


cdef tuple _system_dict(bytes data, bint meminfo):
    cdef const char* s = data
    cdef const char* e = s + len(data)
    cdef const char* le
    cdef const char* ks
    cdef const char* ke
    cdef int64_t v
    cdef int bad = 0
    out = {}
    while s < e:
        le = line_end(s, e)
        if _system_line(meminfo, s, le, &ks, &ke, &v) == 0:
            out[ks[:ke - ks].decode("utf-8", "surrogateescape")] = v
        else:
            bad += 1
        s = le + 1
    return out, bad


def parse_meminfo_dict(bytes data):
    """/proc/meminfo as oomd reads it: {name: value * 1024} for lines that parse."""
    return _system_dict(data, True)[0]


def parse_vmstat_dict(bytes data):
    """/proc/vmstat: ({key: value}, number of malformed lines)."""
    return _system_dict(data, False)


def system_values(bytes data, bint meminfo):
    """/proc/meminfo (``meminfo``) or /proc/vmstat as ``(names, values)``: the names of the
    lines that parse, each followed by a NUL, as one bytes object (compare it with the last
    one to know whether the names changed), and their values as int64 in file order, as
    ``parse_meminfo_dict`` / ``parse_vmstat_dict`` give them. For a recording, every tick:
    no Python object per line."""
    cdef const char* s = data
    cdef const char* e = s + len(data)
    cdef const char* le
    cdef const char* ks
    cdef const char* ke
    cdef Py_ssize_t lines = 0, k = 0, nb = 0
    cdef const char* p = s
    while p < e:
        le = line_end(p, e)
        lines += 1
        p = le + 1
    cdef cnp.ndarray vals = np.empty(lines, dtype=np.int64)
    cdef int64_t* vp = <int64_t*>cnp.PyArray_DATA(vals)
    cdef char* nbuf = <char*>malloc(len(data) + 1)
    if nbuf == NULL:
        raise MemoryError()
    try:
        while s < e:
            le = line_end(s, e)
            if _system_line(meminfo, s, le, &ks, &ke, &vp[k]) == 0:
                memcpy(nbuf + nb, ks, ke - ks)
                nb += ke - ks
                nbuf[nb] = 0
                nb += 1
                k += 1
            s = le + 1
        names = nbuf[:nb]
    finally:
        free(nbuf)
    return names, vals[:k]


def pick_psi(const float[:, ::1] values, const unsigned char[::1] valid):
    """The row index oomd's pressure detectors watch among ``values`` (n x 3 float32 avg10,
    avg60, avg300; ``valid`` n bools): the highest float32 score ``3*avg10 + 2*avg60 + avg300``,
    an invalid row scoring as zeros, ties to the first, -1 unless the best is above 0 (and -1
    if a score is NaN, as numpy's argmax would pick it and fail that test).
    oomd.plugins._common.pick_pressure's kernel: one pass instead of six array operations."""
    cdef Py_ssize_t n = values.shape[0], i, best = -1
    cdef float s, a, b, best_s = 0
    if values.shape[1] != 3 or valid.shape[0] != n:
        raise ValueError("pick_psi: values must be n x 3 and valid n long")
    for i in range(n):
        if not valid[i]:
            s = 0
        else:
            a = values[i, 0] * <float>3
            b = values[i, 1] * <float>2
            a = a + b
            s = a + values[i, 2]
        if s != s:
            return -1
        if best < 0 or s > best_s:
            best = i
            best_s = s
    if best < 0 or not best_s > 0:
        return -1
    return best


def fnmatch_name(bytes pattern, bytes name):
    """fnmatch(3) with FNM_PERIOD, the rule glob(3) applies to each path component."""
    return c_fnmatch(pattern, name, FNM_PERIOD) == 0


# ---------------------------------------------------------------------------------------------
# The reader

def default_watch_budget():
    """Half of /proc/sys/fs/inotify/max_user_watches (the limit is shared by every process of
    the user, root's included: leave the other half to them); 0 if it cannot be read."""
    try:
        with open(MAX_USER_WATCHES, "rb") as f:
            return max(0, int(f.read().split()[0]) // 2)
    except (OSError, ValueError, IndexError):
        return 0


cdef class Reader:
    """Rows of open cgroup directories and their per-tick columns: the Python API over the
    reader's parts (their C fields are in _fastcg.pxd), each call handed to the part that
    owns it, in C."""

    def __init__(self, bytes cgroup_fs, bytes proc_root, *, int fd_budget, cache_files=None,
                 devices=(), ssd_coeffs=(0, 0, 0, 0, 0, 0), hdd_coeffs=(0, 0, 0, 0, 0, 0),
                 int capacity=64, keep_config=None, watch_budget=None, file_names=None,
                 remember_absent=None):
        """cache_files: None = decide from the filesystem (cgroup2 → cache file fds).
        keep_config: None = with cache_files; keep configuration-like values (CONFIG_KINDS)
        across ticks for rows with an inotify watch, re-reading one after an event for it.
        watch_budget: most inotify watches to hold (None: default_watch_budget()).
        file_names: {kind name: file name} read instead of the kernel's name for that kind
        (tests on hosts whose cgroup2 lacks the memory controller).
        remember_absent: None = on cgroup2; a file found absent in a live directory of a
        watched parent (its controller is not enabled) is not tried again until inotify
        reports a change that can bring it back, or absent_retry seconds passed."""
        self.cgroup_fs = cgroup_fs
        self.sysf = SystemFiles(proc_root)
        names = {}
        for name, fn in (file_names or {}).items():
            k = K[name]
            if k >= NFILE:
                raise ValueError(f"{name!r} is not read from a file")
            fn = bytes(fn)
            if not fn or b"/" in fn or b"\0" in fn:
                raise ValueError(f"bad file name {fn!r} for {name!r}")
            names[k] = fn
        self.t = RowTable(fd_budget=fd_budget, cache_files=cache_files, file_names=names,
                          capacity=capacity, remember_absent=remember_absent)
        self.problems = ProblemLog(self.t)
        self.watch = Watcher(self.t, keep_config=keep_config, watch_budget=(
            default_watch_budget() if watch_budget is None else watch_budget))
        self.lister = Lister(self.t, self.watch, self.problems)
        self.loader = Loader(self.t, self.watch, self.sysf, self.problems, devices, ssd_coeffs,
                             hdd_coeffs)
        self.absent_retry = ABSENT_RETRY
        self._absent_cleared = time.monotonic()

    def set_devices(self, devices, ssd_coeffs, hdd_coeffs):
        """devices: iterable of (major, minor, is_hdd); coefficients: 6 floats each (read_iops,
        readbw, write_iops, writebw, trim_iops, trimbw)."""
        self.loader.set_devices(devices, ssd_coeffs, hdd_coeffs)

    # ---- the row table (oomd._reader.table) -------------------------------------------------

    @property
    def capacity(self):
        return self.t.capacity

    @property
    def nrows(self):
        return self.t.nrows

    @property
    def root_row(self):
        """-1 while cgroup-fs cannot be opened."""
        return self.t.root_row

    @property
    def tick(self):
        return self.t.tick

    @property
    def cols(self):
        """Columns, indexed by row; rebuilt when capacity grows."""
        return self.t.cols

    @property
    def cache_files(self):
        return self.t.cache_files

    @property
    def is_cgroup2(self):
        return self.t.is_cgroup2

    @property
    def fd_budget(self):
        return self.t.fd_budget

    @property
    def open_fds(self):
        """Directory + cached file fds held."""
        return self.t.open_fds

    @property
    def fd_tight(self):
        """The budget refused a cache last tick: leaves park."""
        return self.t.fd_tight

    @property
    def cacheable(self):
        """File kinds whose fds may be kept (the monitored ones)."""
        return self.t.cacheable

    @cacheable.setter
    def cacheable(self, uint32_t kinds):
        self.t.cacheable = kinds

    @property
    def n_parks(self):
        return self.t.n_parks

    @property
    def n_unparks(self):
        return self.t.n_unparks

    # ---- inotify (oomd._reader.watch) ------------------------------------------------------

    @property
    def ino_fd(self):
        return self.watch.ino_fd

    @property
    def keep_config(self):
        """Configuration values of watched rows are kept across ticks."""
        return self.watch.keep_config

    @property
    def watch_budget(self):
        """Most inotify watches held."""
        return self.watch.watch_budget

    @property
    def n_watches(self):
        return self.watch.n_watches

    @property
    def watch_full(self):
        """The budget or the kernel refused a watch; retried when one frees."""
        return self.watch.watch_full

    @property
    def n_watch_refused(self):
        return self.watch.n_watch_refused

    @property
    def n_invalidations(self):
        """Kept values dropped by an event."""
        return self.watch.n_invalidations

    @property
    def n_events(self):
        return self.watch.n_events

    @property
    def n_overflows(self):
        return self.watch.n_overflows

    # ---- rows -------------------------------------------------------------------------------

    def open_root(self):
        """Open cgroup-fs itself as a row. Returns the row, or -errno."""
        cdef int fd = self.t.open_root_dir(self.cgroup_fs)
        if fd < 0:
            return fd
        self.watch.start(self.t.cache_files)
        cdef int r = self.t.setup_row(fd, -1, 0, b"")
        if r < 0:
            return r
        self.t.root_row = r
        return r

    def open_child(self, int parent_row, bytes name):
        """Open directory `name` below the parent row. Returns the new row, or -errno (EMFILE
        or ENFILE: out of fds, which says nothing about the directory). At the fd budget,
        leaves whose per-tick files are all cached are parked first, to make room."""
        return self.t.open_child(parent_row, name)

    def close_row(self, int r):
        """Close the row's fds and free its slot."""
        if not self.t.live[r]:
            return
        self.watch.unwatch_row(r)
        self.t.close_row(r)

    def close(self):
        """Close every row and the inotify fd (the reader stays usable: rows can be opened
        again)."""
        cdef int r
        for r in range(self.t.capacity):
            if self.t.live[r]:
                self.close_row(r)
        self.watch.close()

    def set_parent(self, int r, int p):
        """Re-link a row (-2: detached, its parent was evicted)."""
        self.t.set_parent(r, p)
        self.watch.invalidate(r, CONFIG_KINDS)    # kept only under a watched parent

    def dirfd_of(self, int r):
        """The row's directory fd, re-opened if it was parked (-1 if it is gone)."""
        return self.t.dfd(r)

    def close_file_fds(self, uint32_t kinds):
        """Close cached file fds of the given kinds in every row (e.g. after set_monitored)."""
        self.t.close_file_fds(kinds)

    # ---- the tick boundary ------------------------------------------------------------------

    def begin_tick(self):
        """Archive the temporal values computed last tick (reference §5.4), drop the cache."""
        self.t.tick += 1
        self.sysf.begin_tick()
        self.t.fd_tight = self.t.refused_now
        self.t.refused_now = False
        if self.watch.ino_fd >= 0:
            self.watch.poll()
        cdef double now = time.monotonic()
        if now - self._absent_cleared >= self.absent_retry:
            self._absent_cleared = now
            self.t.cols["absent"].fill(0)          # the slow safety retry
        with nogil:
            derived.start_tick(&self.t.c, self.t.capacity)

    def root_alive_known(self):
        """Whether the root row's liveness needs no check this tick: its directory watch
        exists and reported no deletion or move since (cache mode)."""
        cdef int r = self.t.root_row
        return r >= 0 and self.t.wd[r] >= 0 and not self.t.recheck[r]

    def check_alive(self, const int32_t[::1] rows):
        """faccessat(dir, "cgroup.controllers") per row (oomd's eviction rule, §5.2).
        Returns a bool array: True = keep."""
        cdef Py_ssize_t n = rows.shape[0]
        out = np.zeros(n, dtype=np.bool_)
        cdef uint8_t[::1] o = out.view(np.uint8)
        if n:
            with nogil:
                self.t.check_alive(&rows[0], n, &o[0])
        return out

    def unlisted_rows(self):
        """Live rows other than the root whose parent was not listed this tick (cache mode:
        the others' liveness comes from that listing), as int32."""
        out = np.empty(max(1, self.t.nrows), dtype=np.int32)
        cdef int32_t[::1] o = out
        cdef Py_ssize_t n
        with nogil:
            n = self.lister.unlisted(&o[0])
        return out[:n]

    def take_valid(self, const int32_t[::1] rows, uint64_t mask):
        """(valid[rows] & mask) == mask, as a bool array."""
        cdef Py_ssize_t i, n = rows.shape[0]
        out = np.empty(n, dtype=np.bool_)
        cdef uint8_t[::1] o = out.view(np.uint8)
        with nogil:
            for i in range(n):
                o[i] = (self.t.valid[rows[i]] & mask) == mask
        return out

    def same_gens(self, const int32_t[::1] rows, const uint32_t[::1] gens):
        """Whether every row's listing generation still equals `gens` (a cached resolution
        is still valid)."""
        cdef Py_ssize_t i, n = rows.shape[0]
        if gens.shape[0] != n:
            return False
        for i in range(n):
            if self.t.gen[rows[i]] != gens[i]:
                return False
        return True

    @property
    def pending(self):
        """Whether drain_logs()/drain_system_problems() have anything to report."""
        return bool(self.problems.pending or self.sysf.nsysprob)

    # ---- directory listings -----------------------------------------------------------------

    def scan_dirs(self, const int32_t[::1] rows):
        """List each row's directory (once per tick) and compare with the previous listing.
        Returns the rows whose listing changed (their `gen` was bumped)."""
        cdef Py_ssize_t n = rows.shape[0]
        changed = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] ch = changed
        if n == 0:
            return changed
        return changed[:self.lister.scan(&rows[0], n, &ch[0])]

    def poll_watches(self):
        """Drain inotify (see oomd._reader.watch). Returns the number of events."""
        return self.watch.poll()

    def watch_rows(self, const int32_t[::1] rows, uint32_t kinds):
        """Before rows read configuration kinds (`kinds`) they have not read this tick: watch
        each such file of a row that has no watched directory of its own (load() does this
        itself). Rows whose parent directory is not watched keep nothing. Returns how many
        watches were added."""
        if rows.shape[0] == 0:
            return 0
        return self.watch.watch_rows(&rows[0], rows.shape[0], kinds)

    def dir_listing_raw(self, int r):
        """The row's last raw getdents64 output (for diagnostics)."""
        return self.lister.raw(r)

    def dir_entries(self, int r):
        """The row's last listing: [(name bytes, inode, d_type)], without "." and ".."."""
        return self.lister.entries(r)

    def load(self, const int32_t[::1] rows, uint32_t kinds):
        """Read the given file kinds (bitmask of K_*) for every row not yet loaded this tick
        (kept configuration values count as loaded). A row about to read a configuration kind
        for the first time gets its inotify watch first."""
        if rows.shape[0] == 0:
            return
        if self.watch.keep_config and kinds & CONFIG_KINDS:
            self.watch.watch_rows(&rows[0], rows.shape[0], kinds)
        with nogil:
            self.loader.load_rows(&rows[0], rows.shape[0], kinds)

    # ---- derived metrics --------------------------------------------------------------------

    def compute_average(self, const int32_t[::1] rows):
        """average_usage = int64(prev × 3/4 + current / 4), prev = last tick's value or 0."""
        cdef Py_ssize_t n = rows.shape[0]
        if n == 0:
            return
        with nogil:
            self.loader.load_rows(&rows[0], n, 1u << K_CURRENT)
            derived.average(&self.t.c, &rows[0], n)

    def compute_iocost(self, const int32_t[::1] rows):
        """io_cost_cumulative (parsed with io.stat) and io_cost_rate (0.0 without archive)."""
        cdef Py_ssize_t n = rows.shape[0]
        if n == 0:
            return
        with nogil:
            self.loader.load_rows(&rows[0], n, 1u << K_IO_STAT)
            derived.iocost(&self.t.c, &rows[0], n)

    def compute_pgscan(self, const int32_t[::1] rows):
        """pg_scan_cumulative (memory.stat pgscan) and pg_scan_rate (needs last tick's)."""
        cdef Py_ssize_t i, nmissing, n = rows.shape[0]
        cdef int32_t* missing
        if n == 0:
            return
        missing = <int32_t*>malloc(n * sizeof(int32_t))
        if missing == NULL:
            raise MemoryError()
        with nogil:
            self.loader.load_rows(&rows[0], n, 1u << K_MEM_STAT)
            nmissing = derived.pgscan(&self.t.c, &rows[0], n, missing)
            for i in range(nmissing):
                # oomd aborts ("Bad memory.stat format: missing pgscan entry")
                self.problems.note(missing[i], K_MEM_STAT, ST_MALFORMED, 0)
        free(missing)

    def compute_rawprot(self, const int32_t[::1] rows):
        """R(c) = min(current, max(memory.min, memory.low)); invalid unless all three are."""
        if rows.shape[0]:
            self._rawprot(&rows[0], rows.shape[0])

    cdef int _rawprot(self, const int32_t* rows, Py_ssize_t n) except -1:
        self.watch.watch_rows(rows, n, (1u << K_MIN) | (1u << K_LOW))
        with nogil:
            self.loader.load_rows(rows, n, (1u << K_CURRENT) | (1u << K_MIN) | (1u << K_LOW))
            derived.rawprot(&self.t.c, rows, n)
        return 0

    def compute_protection(self, const int32_t[::1] order, const int32_t[::1] sib_rows,
                           const int32_t[::1] sib_parent):
        """memory_protection for `order` (rows sorted by depth, every row's parent before it
        when the parent is needed). sib_rows/sib_parent: every child of every parent whose
        children share protection, with that parent. O(N) (reference §5.3)."""
        cdef Py_ssize_t i, n = order.shape[0], ns = sib_rows.shape[0]
        cdef int r
        # sums of R over siblings, per parent row
        cdef int64_t* sums = <int64_t*>calloc(self.t.capacity, sizeof(int64_t))
        if sums == NULL:
            raise MemoryError()
        try:
            if ns:
                self._rawprot(&sib_rows[0], ns)
            if n:
                self._rawprot(&order[0], n)
            with nogil:
                for i in range(n):
                    r = order[i]         # a root still to compute: its protection is current
                    if r >= 0 and self.t.live[r] and not (self.t.loaded[r] >> D_PROT) & 1 \
                            and self.t.depth[r] == 0:
                        self.loader.load_rows(&order[i], 1, 1u << K_CURRENT)
                derived.protection(&self.t.c, &order[0] if n else NULL, n,
                                   &sib_rows[0] if ns else NULL,
                                   &sib_parent[0] if ns else NULL, ns, sums)
        finally:
            free(sums)

    def compute_eswap(self, const int32_t[::1] order):
        """effective_swap_max/free/util_pct for `order` (ancestors first, root included when
        needed), reference §5.5."""
        cdef Py_ssize_t i, n = order.shape[0]
        cdef int r
        if n == 0:
            return
        self.watch.watch_rows(&order[0], n, 1u << K_SWAP_MAX)
        with nogil:
            self.loader.load_rows(&order[0], n, (1u << K_SWAP_CUR) | (1u << K_SWAP_MAX))
            for i in range(n):
                r = order[i]             # a root still to compute: it needs /proc/swaps
                if r >= 0 and self.t.live[r] and not (self.t.loaded[r] >> D_ESWAP) & 1 \
                        and self.t.depth[r] == 0:
                    self.sysf.ensure(SYS_SWAPS)
                    break
            derived.eswap(&self.t.c, &order[0], n, self.sysf.sys.swap_total,
                          self.sysf.sys.swap_used)

    # ---- system files (oomd._reader.sysfiles) ----------------------------------------------

    @property
    def proc_root(self):
        return self.sysf.proc_root

    def set_proc_paths(self):
        self.sysf.set_proc_paths()

    def ensure_system(self, uint32_t need=SYS_ALL):
        """Read the system files of `need` (SYS_* bits) not yet read this tick."""
        self.sysf.ensure(need)

    def drain_system_problems(self):
        """[(file, "unreadable"|"malformed", errno)] since the last call."""
        return [(f, ERROR_NAMES[e], n) for f, e, n in self.sysf.drain_problems()]

    def system(self):
        """This tick's system values as a dict (None where a file or key was missing); reads
        the lazily-read files first."""
        return self.sysf.system()

    def vmstat_sample(self):
        """(vmstat readable, pswpout or None) of this tick."""
        return self.sysf.vmstat_sample()

    def meminfo_bytes(self):
        return self.sysf.meminfo_bytes()

    def vmstat_bytes(self):
        return self.sysf.vmstat_bytes()

    # ---- accounting -------------------------------------------------------------------------

    def drain_logs(self):
        """[(row, file kind, error kind, errno)] queued since the last call, how many were
        dropped because the queue was full, and how many reads failed for lack of fds."""
        return self.problems.drain()

    def counters(self):
        """Per error kind and file: {"malformed": {"memory.stat": 3}, ...} plus I/O totals."""
        out, ok = self.problems.by_outcome(FILE_NAMES, ERROR_NAMES)
        out["ok"] = ok
        out["reads"] = self.loader.n_reads
        out["preads"] = self.loader.n_preads
        out["opens"] = self.loader.n_opens
        out["listings"] = self.lister.n_listings
        out["alive_checks"] = self.t.n_alive_checks
        out["dir_events"] = self.watch.n_events
        out["dir_event_overflows"] = self.watch.n_overflows
        out["watches"] = self.watch.wmap_n
        out["watch_refused"] = self.watch.n_watch_refused
        out["config_invalidations"] = self.watch.n_invalidations
        live = self.t.cols["live"] != 0
        out["kept_values"] = int(np.unpackbits(self.t.cols["keep"][live].view(np.uint8)).sum())
        out["parks"] = self.t.n_parks
        out["unparks"] = self.t.n_unparks
        out["parked"] = int(np.count_nonzero(live & (self.t.cols["dirfd"] < 0)))
        out["born_parked"] = self.t.n_born_parked
        out["absent_files"] = int(np.unpackbits(self.t.cols["absent"][live].view(np.uint8)).sum())
        return out

    def file_fd_count(self):
        return self.t.file_fd_count()
