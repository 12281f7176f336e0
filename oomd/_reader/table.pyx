# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The row table: one row per opened cgroup directory, and per row the numpy columns every
other module of the reader reads and writes (``cols``; the typed views are in table.pxd).

A row holds its directory fd for its life, and, when ``cache_files`` is set (cgroup2: files
are never replaced), the fds of its per-tick files for ``pread(fd, 0)``. Every fd the rows hold
counts against ``fd_budget``. Once the budget refuses a cache (``fd_tight``), a leaf whose
per-tick files are all cached gives its directory fd back ("parks"); ``dfd()`` re-opens it
through the parent's and checks its inode, so a directory re-created under the same name reads
as gone. Past the budget, any leaf parks after use (a transient fd instead of a held one).
"""

import numpy as np
cimport numpy as cnp

from libc.errno cimport ENOENT
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, strlen

from oomd._reader.defs cimport *
from oomd._reader.syscalls cimport (
    EMFILE, ENFILE, F_OK, O_CLOEXEC, O_DIRECTORY, O_RDONLY, c_close, c_faccessat,
    c_fstat, c_fstatfs, c_open, c_openat, errno, stat, statfs)

cnp.import_array()

cdef unsigned long CGROUP2_SUPER_MAGIC = 0x63677270

cdef const char* CFILE[15]
CFILE[:] = [b"memory.current", b"memory.min", b"memory.low", b"memory.high", b"memory.high.tmp",
            b"memory.max", b"memory.swap.current", b"memory.swap.max", b"memory.pressure",
            b"io.pressure", b"memory.stat", b"io.stat", b"cgroup.events", b"cgroup.stat",
            b"memory.oom.group"]


cdef class RowTable:
    """Rows of open cgroup directories, their columns and fds."""

    def __cinit__(self):
        self.lst = NULL
        self.lstlen = NULL
        self.rname = NULL

    def __init__(self, *, int fd_budget, cache_files, dict file_names, int capacity,
                 remember_absent=None):
        """cache_files: None = decide from the filesystem at open_root_dir (cgroup2: cache).
        remember_absent: None = on cgroup2 (a control file comes and goes only with its
        controller, which inotify reports), else as given.
        file_names: {kind number: file name} read instead of the kernel's name."""
        self.fd_budget = fd_budget
        self.capacity = 0
        self.nrows = 0
        self.root_row = -1
        self.tick = 0
        self.open_fds = 0
        self.cacheable = 0
        self.is_cgroup2 = False
        self._cache_arg = cache_files
        self.cache_files = bool(cache_files)
        self._absent_arg = remember_absent
        self.remember_absent = bool(remember_absent)
        self._fname_refs = []
        for k in range(NFILE):
            self.fname[k] = CFILE[k]
        for k, fn in file_names.items():
            self._fname_refs.append(fn)
            self.fname[k] = <const char*>fn
        for k in range(NFILE):
            self.fnamelen[k] = strlen(self.fname[k])
        self._free = []
        self.cols = {}
        self.n_alive_checks = 0
        self.n_born_parked = 0
        self._alloc(max(capacity, 16))

    def __dealloc__(self):
        cdef int r, k
        if self.capacity > 0 and self.lst != NULL:
            for r in range(self.capacity):
                if self.live[r]:
                    for k in range(NFILE):
                        if self.ffd[r, k] >= 0:
                            c_close(self.ffd[r, k])
                    if self.dirfd[r] >= 0:
                        c_close(self.dirfd[r])
                if self.lst[r] != NULL:
                    free(self.lst[r])
                if self.rname[r] != NULL:
                    free(self.rname[r])
        free(self.lst)
        free(self.rname)
        free(self.lstlen)

    # ---- storage ----------------------------------------------------------------------------

    cdef int _alloc(self, int cap) except -1:
        old = self.cols
        oldcap = self.capacity
        spec = {
            "dirfd": (np.int32, ()), "live": (np.uint8, ()), "nkids": (np.int32, ()),
            "parent": (np.int32, ()), "depth": (np.int32, ()),
            "ffd": (np.int32, (NFILE,)), "cgid": (np.uint64, ()), "valid": (np.uint64, ()),
            "loaded": (np.uint32, ()), "logged": (np.uint32, ()), "status": (np.uint8, ()),
            "alive_checked": (np.uint8, ()), "scanned": (np.int64, ()), "gen": (np.uint32, ()),
            "wd": (np.int32, ()), "dirty": (np.uint8, ()), "keep": (np.uint32, ()),
            "fwd": (np.int32, (NFILE,)), "dirty_attr": (np.uint8, ()),
            "absent": (np.uint32, ()), "recheck": (np.uint8, ()),
            "current": (np.int64, ()), "memory_min": (np.int64, ()), "memory_low": (np.int64, ()),
            "memory_high": (np.int64, ()), "memory_high_tmp": (np.int64, ()),
            "memory_max": (np.int64, ()), "swap_current": (np.int64, ()),
            "swap_max": (np.int64, ()), "mem_some": (np.float32, (3,)),
            "mem_full": (np.float32, (3,)), "io_some": (np.float32, (3,)),
            "io_full": (np.float32, (3,)), "psi_total": (np.int64, (4,)),
            "memory_stat": (np.int64, (NSTAT,)), "populated": (np.uint8, ()),
            "nr_dying_descendants": (np.int64, ()), "oom_group": (np.uint8, ()),
            "kill_preference": (np.int8, ()), "avoid_uid": (np.int64, ()),
            "average_usage": (np.int64, ()),
            "arch_avg": (np.int64, ()), "io_cost_cumulative": (np.float64, ()),
            "arch_iocost": (np.float64, ()), "io_cost_rate": (np.float64, ()),
            "pg_scan_cumulative": (np.int64, ()), "arch_pgscan": (np.int64, ()),
            "pg_scan_rate": (np.int64, ()), "archived": (np.uint8, ()),
            "raw_protection": (np.int64, ()), "memory_protection": (np.int64, ()),
            "effective_swap_max": (np.int64, ()), "effective_swap_free": (np.int64, ()),
            "effective_swap_util_pct": (np.float64, ()),
        }
        new = {}
        for name, (dt, shape) in spec.items():
            a = np.zeros((cap,) + shape, dtype=dt)
            if name in ("dirfd", "ffd", "parent", "wd", "fwd"):
                a.fill(-1)
            if oldcap:
                a[:oldcap] = old[name]
            new[name] = a
        self.cols = new
        cdef char** nl = <char**>realloc(self.lst, cap * sizeof(char*))
        if nl == NULL:
            raise MemoryError()
        self.lst = nl
        cdef size_t* nll = <size_t*>realloc(self.lstlen, cap * sizeof(size_t))
        if nll == NULL:
            raise MemoryError()
        self.lstlen = nll
        cdef char** nn = <char**>realloc(self.rname, cap * sizeof(char*))
        if nn == NULL:
            raise MemoryError()
        self.rname = nn
        for r in range(oldcap, cap):
            self.lst[r] = NULL
            self.lstlen[r] = 0
            self.rname[r] = NULL
        self._free.extend(range(cap - 1, oldcap - 1, -1))
        self.capacity = cap
        self._bind()
        return 0

    cdef void _bind(self):
        c = self.cols
        self.dirfd = c["dirfd"]
        self.live = c["live"]
        self.nkids = c["nkids"]
        self.parent = c["parent"]
        self.depth = c["depth"]
        self.ffd = c["ffd"]
        self.cgid = c["cgid"]
        self.valid = c["valid"]
        self.loaded = c["loaded"]
        self.logged = c["logged"]
        self.status = c["status"]
        self.alive_checked = c["alive_checked"]
        self.scanned = c["scanned"]
        self.gen = c["gen"]
        self.wd = c["wd"]
        self.dirty = c["dirty"]
        self.keep = c["keep"]
        self.fwd = c["fwd"]
        self.dirty_attr = c["dirty_attr"]
        self.absent = c["absent"]
        self.recheck = c["recheck"]
        self.current = c["current"]
        self.mem_min = c["memory_min"]
        self.mem_low = c["memory_low"]
        self.mem_high = c["memory_high"]
        self.mem_high_tmp = c["memory_high_tmp"]
        self.mem_max = c["memory_max"]
        self.swap_cur = c["swap_current"]
        self.swap_max = c["swap_max"]
        self.mem_some = c["mem_some"]
        self.mem_full = c["mem_full"]
        self.io_some = c["io_some"]
        self.io_full = c["io_full"]
        self.psi_total = c["psi_total"]
        self.mstat = c["memory_stat"]
        self.populated = c["populated"]
        self.dying = c["nr_dying_descendants"]
        self.oom_group = c["oom_group"]
        self.kill_pref = c["kill_preference"]
        self.avoid_uid = c["avoid_uid"]
        self.avg = c["average_usage"]
        self.arch_avg = c["arch_avg"]
        self.iocost = c["io_cost_cumulative"]
        self.arch_iocost = c["arch_iocost"]
        self.iorate = c["io_cost_rate"]
        self.pgscan = c["pg_scan_cumulative"]
        self.arch_pgscan = c["arch_pgscan"]
        self.pgrate = c["pg_scan_rate"]
        self.archived = c["archived"]
        self.rawprot = c["raw_protection"]
        self.prot = c["memory_protection"]
        self.eswap_max = c["effective_swap_max"]
        self.eswap_free = c["effective_swap_free"]
        self.eswap_util = c["effective_swap_util_pct"]
        cdef Columns* p = &self.c
        p.live = &self.live[0]
        p.parent = &self.parent[0]
        p.depth = &self.depth[0]
        p.valid = &self.valid[0]
        p.loaded = &self.loaded[0]
        p.keep = &self.keep[0]
        p.status = &self.status[0]
        p.alive_checked = &self.alive_checked[0]
        p.archived = &self.archived[0]
        p.current = &self.current[0]
        p.mem_min = &self.mem_min[0]
        p.mem_low = &self.mem_low[0]
        p.swap_cur = &self.swap_cur[0]
        p.swap_max = &self.swap_max[0]
        p.mstat = &self.mstat[0, 0]
        p.avg = &self.avg[0]
        p.arch_avg = &self.arch_avg[0]
        p.iocost = &self.iocost[0]
        p.arch_iocost = &self.arch_iocost[0]
        p.iorate = &self.iorate[0]
        p.pgscan = &self.pgscan[0]
        p.arch_pgscan = &self.arch_pgscan[0]
        p.pgrate = &self.pgrate[0]
        p.rawprot = &self.rawprot[0]
        p.prot = &self.prot[0]
        p.eswap_max = &self.eswap_max[0]
        p.eswap_free = &self.eswap_free[0]
        p.eswap_util = &self.eswap_util[0]

    cdef int new_row(self) except -1:
        if not self._free:
            # x1.5, not x2: the columns are ~600 bytes a row and growing copies them, so the
            # peak (old + new) and the slack both stay smaller at 10,000s of rows
            self._alloc(self.capacity + max(16, self.capacity // 2))
        cdef int r = self._free.pop()
        self.nrows += 1
        return r

    # ---- rows -------------------------------------------------------------------------------

    cdef int open_root_dir(self, bytes cgroup_fs) except? -1:
        """Open cgroup-fs itself (the caller makes it a row with setup_row) and learn its
        filesystem: on cgroup2, file fds are cached unless the Reader was told otherwise.
        Returns the fd, or -errno."""
        cdef int fd = c_open(cgroup_fs, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0:
            return -errno()
        cdef statfs sfs
        if c_fstatfs(fd, &sfs) == 0:
            self.is_cgroup2 = (<unsigned long>sfs.f_type & 0xffffffff) == CGROUP2_SUPER_MAGIC
        if self._cache_arg is None:
            self.cache_files = self.is_cgroup2
        if self._absent_arg is None:
            self.remember_absent = self.is_cgroup2
        return fd

    cdef int open_child(self, int parent_row, bytes name) except? -1:
        """Open directory `name` below the parent row. Returns the new row, or -errno (EMFILE
        or ENFILE: out of fds, which says nothing about the directory). At the fd budget,
        leaves whose per-tick files are all cached are parked first, to make room."""
        cdef int pfd = self.dfd(parent_row)
        cdef const char* cname = name
        cdef int fd
        if pfd < 0:
            return -self.dfd_err
        if self.open_fds >= self.fd_budget:
            with nogil:
                self.make_room()
        with nogil:
            fd = c_openat(pfd, cname, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0:
            return -errno()
        return self.setup_row(fd, parent_row, self.depth[parent_row] + 1, name)

    cdef int setup_row(self, int fd, int parent_row, int depth, bytes name) except? -1:
        """A new row for the directory fd (taken over). Returns the row, or -errno."""
        cdef stat st
        cdef int e
        if c_fstat(fd, &st) != 0:
            e = errno()
            c_close(fd)
            return -e
        cdef int r = self.new_row()
        cdef int k
        cdef char* nm = <char*>malloc(len(name) + 1)
        if nm == NULL:
            c_close(fd)
            self.close_row(r)
            raise MemoryError()
        memcpy(nm, <const char*>name, len(name))
        nm[len(name)] = 0
        if self.rname[r] != NULL:
            free(self.rname[r])
        self.rname[r] = nm
        if parent_row >= 0 and self.open_fds >= self.fd_budget:
            # past the budget a new row does not keep its directory fd (it is re-opened
            # through the parent's, inode checked, when needed): the budget goes to files
            c_close(fd)
            self.dirfd[r] = -1
            self.n_born_parked += 1
        else:
            self.dirfd[r] = fd
            self.open_fds += 1
        self.live[r] = 1
        self.nkids[r] = 0
        if parent_row >= 0:
            self.nkids[parent_row] += 1
        self.parent[r] = parent_row
        self.depth[r] = depth
        self.cgid[r] = st.st_ino
        for k in range(NFILE):
            self.ffd[r, k] = -1
        self.valid[r] = 0
        self.loaded[r] = 0
        self.logged[r] = 0
        self.status[r] = ST_OK
        self.alive_checked[r] = 0
        self.scanned[r] = -1
        self.gen[r] = 0
        self.wd[r] = WD_NONE
        for k in range(NFILE):
            self.fwd[r, k] = WD_NONE
        self.dirty[r] = 0
        self.keep[r] = 0
        self.absent[r] = 0
        self.recheck[r] = 0
        self.archived[r] = 0
        self.avg[r] = 0
        if self.lst[r] != NULL:
            free(self.lst[r])
            self.lst[r] = NULL
        self.lstlen[r] = 0
        return r

    cdef int close_row(self, int r) except -1:
        """Close the row's fds and free its slot (the Reader releases its watches first)."""
        cdef int k
        if not self.live[r]:
            return 0
        for k in range(NFILE):
            if self.ffd[r, k] >= 0:
                c_close(self.ffd[r, k])
                self.ffd[r, k] = -1
                self.open_fds -= 1
        self.keep[r] = 0
        self.absent[r] = 0
        if self.dirfd[r] >= 0:
            c_close(self.dirfd[r])
            self.open_fds -= 1
        self.dirfd[r] = -1
        self.live[r] = 0
        if self.parent[r] >= 0 and self.live[self.parent[r]]:
            self.nkids[self.parent[r]] -= 1
        self.parent[r] = -1
        if self.rname[r] != NULL:
            free(self.rname[r])
            self.rname[r] = NULL
        if self.lst[r] != NULL:
            free(self.lst[r])
            self.lst[r] = NULL
        self.lstlen[r] = 0
        self.status[r] = ST_VANISHED
        self.valid[r] = 0
        if r == self.root_row:
            self.root_row = -1
        self.nrows -= 1
        self._free.append(r)
        return 0

    cdef void set_parent(self, int r, int p) noexcept:
        """Re-link a row (-2: detached, its parent was evicted)."""
        cdef int old = self.parent[r]
        if old >= 0 and self.live[old]:
            self.nkids[old] -= 1
        if p >= 0:
            self.nkids[p] += 1
        self.parent[r] = p

    # ---- parking: under a tight fd budget a leaf whose per-tick files all have cached fds
    # gives up its directory fd; it is re-opened (and its inode checked) when needed.

    cdef int dfd(self, int r) noexcept nogil:
        """The row's directory fd, re-opened through its parent's if it was parked; -1 (and
        dfd_err) if it is gone, replaced by another directory, or out of fds."""
        cdef int pfd, fd
        cdef stat st
        if self.dirfd[r] >= 0:
            return self.dirfd[r]
        self.dfd_err = ENOENT
        if not self.live[r] or self.parent[r] < 0 or self.rname[r] == NULL:
            return -1
        pfd = self.dfd(self.parent[r])
        if pfd < 0:
            return -1
        fd = c_openat(pfd, self.rname[r], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0:
            self.dfd_err = errno()   # EMFILE/ENFILE: out of fds, not gone
            return -1
        if c_fstat(fd, &st) != 0 or st.st_ino != self.cgid[r]:
            c_close(fd)              # a different directory now has this name
            self.dfd_err = ENOENT
            return -1
        self.dirfd[r] = fd
        self.open_fds += 1
        self.n_unparks += 1
        return fd

    cdef bint parkable(self, int r) noexcept nogil:
        cdef int k
        cdef uint32_t need
        if not self.cache_files or r == self.root_row or self.nkids[r] != 0 \
                or self.dirfd[r] < 0:
            return False
        if not (self.is_cgroup2 or self.fd_tight):
            # On cgroup2 a directory's inode is its cgroup id, never reused, so a leaf's fd
            # is given back as soon as its files are cached (the budget goes to files). On
            # other filesystems a held fd is what keeps a re-created directory from getting
            # the same inode: park only once the budget is tight.
            return False
        # kept configuration values are read through the directory only after an event, and
        # files known to be absent only after one too
        need = self.cacheable & self.loaded[r] & ((1u << NFILE) - 1)
        if need == 0:
            return False
        need &= ~self.keep[r] & ~self.absent[r]
        for k in range(NFILE):
            if (need >> k) & 1 and self.ffd[r, k] < 0:
                return False
        return True

    cdef bint over_budget_leaf(self, int r) noexcept nogil:
        """Past the budget, a leaf gives its directory fd back even though some of its files
        are read through it (it is re-opened, and its inode checked, when next needed): a
        transient fd per such row instead of one held per row, which would run the process
        out of fds."""
        return (self.open_fds >= self.fd_budget and r != self.root_row
                and self.nkids[r] == 0 and self.dirfd[r] >= 0)

    cdef void park(self, int r) noexcept nogil:
        c_close(self.dirfd[r])
        self.dirfd[r] = -1
        self.open_fds -= 1
        self.n_parks += 1

    cdef int make_room(self) noexcept nogil:
        """The budget is reached while rows are being opened: park every leaf that can be (the
        budget is tight from now on). Scans the rows only if some were loaded with all their
        files cached while the budget was not yet tight (the others parked right away)."""
        cdef int r, n = 0
        self.fd_tight = True
        self.refused_now = True
        if self.n_unparked_cached == 0:
            return 0
        self.n_unparked_cached = 0
        for r in range(self.capacity):
            if self.live[r] and self.parkable(r):
                self.park(r)
                n += 1
        return n

    cdef void close_file_fds(self, uint32_t kinds) noexcept:
        """Close cached file fds of the given kinds in every row (e.g. after set_monitored)."""
        cdef int r, k
        for r in range(self.capacity):
            if not self.live[r]:
                continue
            for k in range(NFILE):
                if (kinds >> k) & 1 and self.ffd[r, k] >= 0:
                    c_close(self.ffd[r, k])
                    self.ffd[r, k] = -1
                    self.open_fds -= 1

    cdef void check_alive(self, const int32_t* rows, Py_ssize_t n, uint8_t* out) noexcept nogil:
        """faccessat(dir, "cgroup.controllers") per row (oomd's eviction rule, §5.2): out[i]
        = keep row i."""
        cdef Py_ssize_t i
        cdef int r, fd
        for i in range(n):
            r = rows[i]
            self.n_alive_checks += 1
            fd = self.dfd(r)
            if fd < 0:
                # out of fds says nothing about the cgroup: keep it
                out[i] = self.dfd_err == EMFILE or self.dfd_err == ENFILE
            else:
                out[i] = c_faccessat(fd, b"cgroup.controllers", F_OK, 0) == 0
            self.recheck[r] = 0
            if self.parkable(r) or self.over_budget_leaf(r):
                self.park(r)

    cdef int file_fd_count(self) noexcept:
        cdef int r, k, n = 0
        for r in range(self.capacity):
            if self.live[r]:
                for k in range(NFILE):
                    if self.ffd[r, k] >= 0:
                        n += 1
        return n
