# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Loading: read a row's files and parse them into the row table's columns, in one nogil loop
over many rows (``load_rows``), the per-tick hot path.

A file is read through its cached fd with ``pread(fd, 0)`` when there is one, else ``openat``
on the row's directory fd, ``read``, ``close`` (and the fd is kept if the row may cache and the
fd budget allows). The root row's memory.current and PSI come from /proc (SystemFiles); the
kill preference from the directory's xattrs. Every outcome goes to the ProblemLog (a failed
read raises the row's status, never an exception); a configuration value read fine on a
watched row is kept across ticks (Watcher.keep_value).
"""

from libc.errno cimport ENODEV, ENOENT, ERANGE
from libc.stdint cimport int64_t, int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, strlen

from oomd._reader.defs cimport *
from oomd._reader.parse cimport (
    iostat_line, line_end, memstat_lookup, parse_events, parse_first_line_ll, parse_high_tmp,
    parse_limit, parse_memstat, parse_psi)
from oomd._reader.syscalls cimport (
    EMFILE, ENFILE, ENOTSUP, EOPNOTSUPP, ESTALE, F_OK, O_CLOEXEC, O_NONBLOCK, O_RDONLY, c_close,
    c_faccessat, c_fgetxattr, c_flistxattr, c_fstat, c_openat, c_pread, c_read, errno, set_errno,
    stat)

cdef size_t MAX_FILE_BYTES = 1 << 24   # 16 MiB: far beyond any cgroup control file


cdef class Loader:
    """Reads rows' files into the columns."""

    def __cinit__(self):
        self.buf = NULL
        self.dev_major = NULL
        self.dev_minor = NULL
        self.dev_hdd = NULL

    def __init__(self, RowTable t, Watcher watch, SystemFiles sysf, ProblemLog problems,
                 devices, ssd_coeffs, hdd_coeffs):
        self.t = t
        self.watch = watch
        self.sysf = sysf
        self.problems = problems
        self.cache_row = True
        self.bufcap = 65536
        self.buf = <char*>malloc(self.bufcap)
        if self.buf == NULL:
            raise MemoryError()
        self.n_reads = self.n_preads = self.n_opens = 0
        self.set_devices(devices, ssd_coeffs, hdd_coeffs)

    def __dealloc__(self):
        free(self.buf)
        free(self.dev_major)
        free(self.dev_minor)
        free(self.dev_hdd)

    def set_devices(self, devices, ssd_coeffs, hdd_coeffs):
        """devices: iterable of (major, minor, is_hdd); coefficients: 6 floats each (read_iops,
        readbw, write_iops, writebw, trim_iops, trimbw)."""
        devices = list(devices)
        free(self.dev_major)
        free(self.dev_minor)
        free(self.dev_hdd)
        self.ndev = len(devices)
        self.dev_major = <int*>malloc(max(1, self.ndev) * sizeof(int))
        self.dev_minor = <int*>malloc(max(1, self.ndev) * sizeof(int))
        self.dev_hdd = <uint8_t*>malloc(max(1, self.ndev))
        for i, (ma, mi, hdd) in enumerate(devices):
            self.dev_major[i] = ma
            self.dev_minor[i] = mi
            self.dev_hdd[i] = 1 if hdd else 0
        ssd_coeffs = list(ssd_coeffs)
        hdd_coeffs = list(hdd_coeffs)
        if len(ssd_coeffs) != 6 or len(hdd_coeffs) != 6:
            raise ValueError("io cost coefficients need 6 values each")
        for i in range(6):
            self.ssd[i] = ssd_coeffs[i]
            self.hdd[i] = hdd_coeffs[i]

    cdef int _ensure_buf(self, size_t need) noexcept nogil:
        cdef char* nb
        if need <= self.bufcap:
            return 0
        nb = <char*>realloc(self.buf, need)
        if nb == NULL:
            return -1
        self.buf = nb
        self.bufcap = need
        return 0

    cdef int _vanished_or_missing(self, int row) noexcept nogil:
        """A file was not found: did the whole cgroup go away (its cgroup.controllers is gone
        and, off cgroup2, the directory is unlinked) or is just this file absent?"""
        cdef stat st
        if c_faccessat(self.t.dirfd[row], b"cgroup.controllers", F_OK, 0) == 0:
            return E_MISSING
        if self.t.is_cgroup2:
            return ST_VANISHED
        if c_fstat(self.t.dirfd[row], &st) != 0 or st.st_nlink == 0:
            return ST_VANISHED
        return E_MISSING

    cdef Py_ssize_t _read_kind(self, int row, int kind) noexcept nogil:
        """Read one file of a row into self.buf (NUL-terminated). Returns its length, or
        -(1 + error kind) after noting the error."""
        cdef int fd = self.t.ffd[row, kind]
        cdef bint cached = fd >= 0
        cdef ssize_t got
        cdef size_t tot = 0
        cdef int e
        if not cached:
            self.n_opens += 1
            fd = c_openat(self.t.dirfd[row], self.t.fname[kind], O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            if fd < 0:
                e = errno()
                if e == ENOENT:
                    e = self._vanished_or_missing(row)
                    if e == E_MISSING and self.t.remember_absent and self.t.cache_files \
                            and self.watch.keepable(row, K_XATTR):
                        # absent while its directory is alive (its controller is not enabled):
                        # not tried again until inotify reports a change that can bring it
                        # back (Watcher.poll) or the slow safety retry (Reader.begin_tick)
                        self.t.absent[row] |= 1u << kind
                    self.problems.note(row, kind, e, ENOENT)
                    return -(1 + e)
                if e == ENODEV or e == ESTALE:
                    self.problems.note(row, kind, ST_VANISHED, e)
                    return -(1 + ST_VANISHED)
                self.problems.note(row, kind, ST_UNREADABLE, e)
                return -(1 + ST_UNREADABLE)
        self.n_reads += 1
        while True:
            if self.bufcap - tot < 4096:
                if self.bufcap >= MAX_FILE_BYTES:
                    # no control file is this big: an endless file (a fake tree's link to
                    # /dev/zero) must not grow the buffer without bound
                    if not cached:
                        c_close(fd)
                    self.problems.note(row, kind, ST_MALFORMED, 0)
                    return -(1 + ST_MALFORMED)
                if self._ensure_buf(self.bufcap * 2) != 0:
                    got = -1
                    set_errno(12)
                    break
            if cached:
                self.n_preads += 1
                got = c_pread(fd, self.buf + tot, self.bufcap - 1 - tot, <long>tot)
            else:
                got = c_read(fd, self.buf + tot, self.bufcap - 1 - tot)
            if got < 0:
                break
            tot += got
            if got == 0 or tot < self.bufcap - 1:
                break                    # a short read is the end of a kernfs/proc file
        e = errno() if got < 0 else 0
        if got < 0:
            c_close(fd)
            if cached:
                # never read through this fd again: the file or the whole cgroup is gone
                self.t.ffd[row, kind] = -1
                self.t.open_fds -= 1
            if e == ENODEV or e == ESTALE or e == ENOENT:
                if self.t.dfd(row) >= 0:
                    e = self._vanished_or_missing(row)
                elif self.t.dfd_err == EMFILE or self.t.dfd_err == ENFILE:
                    e = ST_UNREADABLE
                else:
                    e = ST_VANISHED
                self.problems.note(row, kind, e, ENODEV)
                return -(1 + e)
            self.problems.note(row, kind, ST_UNREADABLE, e)
            return -(1 + ST_UNREADABLE)
        if not cached:
            if self.t.cache_files and self.cache_row and (self.t.cacheable >> kind) & 1 and not (
                    (CONFIG_KINDS >> kind) & 1 and self.watch.keepable(row, kind)):
                # (a configuration file of a watched row is kept as a value, not as an fd)
                if self.t.open_fds < self.t.fd_budget:
                    self.t.ffd[row, kind] = fd
                    self.t.open_fds += 1
                else:
                    self.t.refused_now = True      # the budget is tight: start parking
                    self.t.fd_tight = True
                    c_close(fd)
            else:
                c_close(fd)
        self.buf[tot] = 0
        self.problems.ok(kind)
        return <Py_ssize_t>tot

    cdef void _read_xattr(self, int row) noexcept nogil:
        """kill_preference from the directory's xattrs (§5.3): presence of
        trusted./user.oomd_prefer → 1, else trusted./user.oomd_avoid → -1, else 0.
        One flistxattr; fgetxattr probes if listing is not possible. When the AVOID comes
        only from ``user.oomd_avoid`` (anyone who owns the directory can set it), avoid_uid
        is the directory's owner (one fstat, kept with the value), else -1: whether such an
        AVOID counts is the kill plugins' trust rule (oomd.xattr_trust)."""
        cdef ssize_t n
        cdef const char* p
        cdef const char* e
        cdef bint prefer = False
        cdef bint avoid = False
        cdef bint trusted_avoid = False
        cdef int fd = self.t.dirfd[row]
        cdef int err
        cdef stat st
        self.n_reads += 1
        n = c_flistxattr(fd, self.buf, self.bufcap - 1)
        if n < 0 and errno() == ERANGE:
            n = c_flistxattr(fd, NULL, 0)
            if n >= 0 and self._ensure_buf(<size_t>n + 4097) == 0:
                n = c_flistxattr(fd, self.buf, self.bufcap - 1)
        if n >= 0:
            p = self.buf
            e = p + n
            while p < e:
                if strlen(p) == 19 and (memcmp(p, b"trusted.oomd_prefer", 19) == 0):
                    prefer = True
                elif strlen(p) == 16 and memcmp(p, b"user.oomd_prefer", 16) == 0:
                    prefer = True
                elif strlen(p) == 18 and memcmp(p, b"trusted.oomd_avoid", 18) == 0:
                    avoid = True
                    trusted_avoid = True
                elif strlen(p) == 15 and memcmp(p, b"user.oomd_avoid", 15) == 0:
                    avoid = True
                p += strlen(p) + 1
        else:
            err = errno()
            if err == ENOTSUP or err == EOPNOTSUPP:
                n = 0
            elif err == ENODEV or err == ENOENT or err == ESTALE:
                self.problems.note(row, K_XATTR, ST_VANISHED, err)
                return
            else:
                # listing refused: probe each name as oomd does
                prefer = self._has_xattr(fd, b"trusted.oomd_prefer") == 1 or \
                    self._has_xattr(fd, b"user.oomd_prefer") == 1
                if not prefer:
                    trusted_avoid = self._has_xattr(fd, b"trusted.oomd_avoid") == 1
                    avoid = trusted_avoid or self._has_xattr(fd, b"user.oomd_avoid") == 1
        self.t.kill_pref[row] = 1 if prefer else (-1 if avoid else 0)
        self.t.avoid_uid[row] = -1
        if avoid and not prefer and not trusted_avoid:
            # unknown owner (fstat failed): a uid no anchor has, so the AVOID does not count
            self.t.avoid_uid[row] = st.st_uid if c_fstat(fd, &st) == 0 else 0xFFFFFFFF
        self.t.valid[row] |= (<uint64_t>1) << V_KILL_PREF
        self.problems.ok(K_XATTR)
        if self.watch.keepable(row, K_XATTR):
            self.watch.keep_value(row, K_XATTR)

    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil:
        if c_fgetxattr(fd, name, NULL, 0) >= 0:
            return 1
        return 0

    cdef void _load_one(self, int row, int kind) noexcept nogil:
        cdef Py_ssize_t n
        cdef const char* s
        cdef const char* e
        cdef int64_t v
        cdef float some[3]
        cdef float full[3]
        cdef uint64_t st, ft
        cdef int got
        cdef uint32_t have
        cdef int64_t sv[NSTAT]
        cdef int i, j
        cdef uint8_t b
        cdef int major, minor
        cdef int64_t f[6]
        cdef double cost
        cdef double* c
        cdef const char* le
        cdef uint64_t vbits = 0
        cdef int tbase

        if row == self.t.root_row and (kind == K_CURRENT or kind == K_MEM_PSI or kind == K_IO_PSI):
            self._load_root(row, kind)
            return
        if kind == K_XATTR:
            self._read_xattr(row)
            return
        n = self._read_kind(row, kind)
        if n < 0:
            return
        s = self.buf
        e = s + n
        if kind == K_CURRENT or kind == K_SWAP_CUR:
            if parse_first_line_ll(s, e, &v) == 0:
                if kind == K_CURRENT:
                    self.t.current[row] = v
                    vbits = (<uint64_t>1) << V_CURRENT
                else:
                    self.t.swap_cur[row] = v
                    vbits = (<uint64_t>1) << V_SWAP_CUR
            else:
                self.problems.note(row, kind, ST_MALFORMED, 0)
        elif kind == K_MIN or kind == K_LOW or kind == K_HIGH or kind == K_MAX \
                or kind == K_SWAP_MAX:
            if parse_limit(s, e, &v) == 0:
                if kind == K_MIN:
                    self.t.mem_min[row] = v
                    vbits = (<uint64_t>1) << V_MIN
                elif kind == K_LOW:
                    self.t.mem_low[row] = v
                    vbits = (<uint64_t>1) << V_LOW
                elif kind == K_HIGH:
                    self.t.mem_high[row] = v
                    vbits = (<uint64_t>1) << V_HIGH
                elif kind == K_MAX:
                    self.t.mem_max[row] = v
                    vbits = (<uint64_t>1) << V_MAX
                else:
                    self.t.swap_max[row] = v
                    vbits = (<uint64_t>1) << V_SWAP_MAX
            else:
                self.problems.note(row, kind, ST_MALFORMED, 0)
        elif kind == K_HIGH_TMP:
            if parse_high_tmp(s, e, &v) == 0:
                self.t.mem_high_tmp[row] = v
                vbits = (<uint64_t>1) << V_HIGH_TMP
            else:
                self.problems.note(row, kind, ST_MALFORMED, 0)
        elif kind == K_MEM_PSI or kind == K_IO_PSI:
            got = parse_psi(s, e, some, full, &st, &ft)
            if got != (1 | 2 | 4 | 8):
                # legacy files have no totals: that is their format, not an error
                if got < 0 or (got & 3) != 3:
                    self.problems.note(row, kind, ST_MALFORMED, 0)
            if got > 0:
                self._store_psi(row, kind, got, some, full, st, ft)
        elif kind == K_MEM_STAT:
            have = parse_memstat(s, e, sv)
            for i in range(NSTAT):
                if (have >> i) & 1:
                    self.t.mstat[row, i] = sv[i]
                else:
                    self.t.mstat[row, i] = 0
            vbits = ((<uint64_t>1) << V_MEM_STAT) | ((<uint64_t>have) << V_STAT0)
        elif kind == K_IO_STAT:
            cost = 0.0
            got = 0
            while s < e:
                le = line_end(s, e)
                if iostat_line(s, le, &major, &minor, f) != 0:
                    got = -1
                    break
                for j in range(self.ndev):
                    if self.dev_major[j] == major and self.dev_minor[j] == minor:
                        c = &self.hdd[0] if self.dev_hdd[j] else &self.ssd[0]
                        cost += (f[2] * c[0] + f[0] * c[1] + f[3] * c[2] + f[1] * c[3]
                                 + f[5] * c[4] + f[4] * c[5])
                        break
                s = le + 1
            if got == 0:
                self.t.iocost[row] = cost
                vbits = (<uint64_t>1) << V_IO_STAT
            else:
                self.problems.note(row, kind, ST_MALFORMED, 0)
        elif kind == K_EVENTS:
            if parse_events(s, e, &b) == 0:
                self.t.populated[row] = b
                vbits = (<uint64_t>1) << V_POPULATED
            else:
                self.problems.note(row, kind, ST_MALFORMED, 0)
        elif kind == K_CG_STAT:
            if memstat_lookup(s, e, b"nr_dying_descendants", &v) != 0:
                v = 0
            self.t.dying[row] = v
            vbits = (<uint64_t>1) << V_DYING
        elif kind == K_OOM_GROUP:
            self.t.oom_group[row] = 1 if (n == 1 and s[0] == b'1') or (
                n == 2 and s[0] == b'1' and s[1] == b'\n') else 0
            vbits = (<uint64_t>1) << V_OOM_GROUP
        self.t.valid[row] |= vbits
        if vbits and (CONFIG_KINDS >> kind) & 1:
            if self.watch.keepable(row, kind):
                self.watch.keep_value(row, kind)
            elif self.t.fwd[row, kind] == WD_MISSING:
                self.t.fwd[row, kind] = WD_NONE    # the file exists now: watch it next time

    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil:
        cdef int i
        cdef int base = V_MEM_SOME if kind == K_MEM_PSI else V_IO_SOME
        cdef int tb = 0 if kind == K_MEM_PSI else 2
        cdef uint64_t vb = 0
        if got & 1:
            for i in range(3):
                if kind == K_MEM_PSI:
                    self.t.mem_some[row, i] = some[i]
                else:
                    self.t.io_some[row, i] = some[i]
            vb |= (<uint64_t>1) << base
        if got & 2:
            for i in range(3):
                if kind == K_MEM_PSI:
                    self.t.mem_full[row, i] = full[i]
                else:
                    self.t.io_full[row, i] = full[i]
            vb |= (<uint64_t>1) << (base + 1)
        if got & 4:
            self.t.psi_total[row, tb] = <int64_t>st
            vb |= (<uint64_t>1) << (base + 2)
        if got & 8:
            self.t.psi_total[row, tb + 1] = <int64_t>ft
            vb |= (<uint64_t>1) << (base + 3)
        self.t.valid[row] |= vb

    cdef void _load_root(self, int row, int kind) noexcept nogil:
        """Root-cgroup values come from proc (reference §5.5)."""
        cdef int got = 0
        cdef float some[3]
        cdef float full[3]
        cdef int i
        if kind == K_CURRENT:
            self.sysf.ensure(SYS_MEMINFO)
            if self.sysf.sys.meminfo_ok and (self.sysf.sys.meminfo_have & 3) == 3:
                self.t.current[row] = self.sysf.sys.mem_total - self.sysf.sys.mem_free
                self.t.valid[row] |= (<uint64_t>1) << V_CURRENT
            return
        self.sysf.ensure(SYS_PSI_MEM if kind == K_MEM_PSI else SYS_PSI_IO)
        cdef uint32_t pv = self.sysf.sys.psi_valid
        if kind == K_MEM_PSI:
            got = pv & 15
            for i in range(3):
                some[i] = self.sysf.sys.mem_some[i]
                full[i] = self.sysf.sys.mem_full[i]
            self._store_psi(row, kind, got, some, full,
                            <uint64_t>self.sysf.sys.mem_some_total,
                            <uint64_t>self.sysf.sys.mem_full_total)
        else:
            got = (pv >> 4) & 15
            for i in range(3):
                some[i] = self.sysf.sys.io_some[i]
                full[i] = self.sysf.sys.io_full[i]
            self._store_psi(row, kind, got, some, full,
                            <uint64_t>self.sysf.sys.io_some_total,
                            <uint64_t>self.sysf.sys.io_full_total)

    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil:
        cdef int k
        if (need >> K_XATTR) & 1:
            return True
        if r == self.t.root_row:
            return True
        for k in range(NFILE):
            if (need >> k) & 1 and self.t.ffd[r, k] < 0:
                return True
        return False

    cdef void load_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) noexcept nogil:
        """Read the file kinds `kinds` (K_* bits) of every row not yet loaded this tick (kept
        configuration values count as loaded), into the columns; park what can be parked."""
        cdef Py_ssize_t i
        cdef int r, k, missing
        cdef uint32_t need
        for i in range(n):
            r = rows[i]
            if r < 0 or not self.t.live[r]:
                continue
            need = kinds & ~self.t.loaded[r] & ((1u << NKIND) - 1)
            if need == 0:
                continue
            self.t.loaded[r] |= need
            if need & self.t.absent[r]:
                # known absent: missing, exactly as a failed open would say, without the open
                for k in range(NFILE):
                    if (need & self.t.absent[r]) >> k & 1:
                        self.problems.note(r, k, E_MISSING, ENOENT)
                need &= ~self.t.absent[r]
                if need == 0:
                    if self.t.parkable(r):
                        self.t.park(r)
                    continue
            # Cache a row's files all or nothing: a row with some files cached still holds its
            # directory fd for the others, so the budget goes further on whole rows (parked).
            self.cache_row = True
            if self.t.cache_files and r != self.t.root_row:
                missing = 0
                for k in range(NFILE):
                    if (need >> k) & 1 and (self.t.cacheable >> k) & 1 and self.t.ffd[r, k] < 0 \
                            and not ((CONFIG_KINDS >> k) & 1 and self.watch.keepable(r, k)):
                        missing += 1
                if missing and self.t.open_fds + missing > self.t.fd_budget:
                    self.cache_row = False
                    self.t.refused_now = True      # the budget is tight: start parking
                    self.t.fd_tight = True
            if self.t.dirfd[r] < 0 and self._needs_dir(r, need) and self.t.dfd(r) < 0:
                if self.t.dfd_err == EMFILE or self.t.dfd_err == ENFILE:
                    self.problems.note(r, K_CURRENT, ST_UNREADABLE, self.t.dfd_err)
                else:
                    self.problems.note(r, K_CURRENT, ST_VANISHED, ENOENT)
                continue
            for k in range(NKIND):
                if (need >> k) & 1:
                    if self.t.status[r] == ST_VANISHED:
                        break
                    self._load_one(r, k)
            if self.t.parkable(r) or self.t.over_budget_leaf(r) or (
                    not self.cache_row and self.t.nkids[r] == 0 and self.t.dirfd[r] >= 0):
                # (a leaf the budget refused to cache gives its directory fd back too: the
                # budget goes to files, and next tick it may cache what this one freed)
                self.t.park(r)
            elif not self.t.fd_tight and self.t.cache_files and self.t.dirfd[r] >= 0 \
                    and r != self.t.root_row:
                self.t.n_unparked_cached += 1      # may be parkable once the budget is tight
