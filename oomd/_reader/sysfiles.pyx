# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The system files (reference §5.5): /proc/meminfo, /proc/vmstat, /proc/swaps,
/proc/sys/vm/swappiness and the root's PSI (/proc/pressure/memory or /proc/mempressure,
/proc/pressure/io), read into a ``SysState`` at most once a tick.

vmstat is read every tick (the swap-out rates need each sample); the others on first use in a
tick (the root row's values, effective swap, ``OomdContext.system``). A file that cannot be read
or parsed is queued as a problem for ``drain_system_problems`` and never raises.
"""

import numpy as np

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from oomd._reader.defs cimport *
from oomd._reader.parse cimport (
    count_lines, cstr_end, find_key_line, line_end, meminfo_line, parse_psi, parse_stoll,
    split_tokens, tok_eq, vmstat_line)
from oomd._reader.syscalls cimport O_CLOEXEC, O_RDONLY, c_close, c_open, c_read, errno


cdef class SystemFiles:
    """This tick's system values, and the raw meminfo and vmstat for the Python dicts."""

    def __cinit__(self):
        self.buf = NULL
        self.meminfo_raw = NULL
        self.vmstat_raw = NULL

    def __init__(self, bytes proc_root):
        self.proc_root = proc_root
        self.bufcap = 65536
        self.buf = <char*>malloc(self.bufcap)
        if self.buf == NULL:
            raise MemoryError()
        self.nsysprob = 0
        self.sys_have = 0
        self.set_proc_paths()

    def __dealloc__(self):
        free(self.buf)
        free(self.meminfo_raw)
        free(self.vmstat_raw)

    cdef void begin_tick(self) noexcept nogil:
        """Forget last tick's values; read vmstat."""
        self.sys_have = 0
        self.ensure(SYS_VMSTAT)

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

    cdef Py_ssize_t _read_path(self, const char* path) noexcept nogil:
        """open/read/close a proc file into self.buf; length or -errno."""
        cdef int fd = c_open(path, O_RDONLY | O_CLOEXEC)
        cdef ssize_t got
        cdef size_t tot = 0
        cdef int e
        if fd < 0:
            return -errno()
        while True:
            if self.bufcap - tot < 4096 and self._ensure_buf(self.bufcap * 2) != 0:
                c_close(fd)
                return -12
            got = c_read(fd, self.buf + tot, self.bufcap - 1 - tot)
            if got < 0:
                e = errno()
                c_close(fd)
                return -e
            if got == 0:
                break
            tot += got
        c_close(fd)
        self.buf[tot] = 0
        return <Py_ssize_t>tot

    # System files: vmstat every tick (swap-out rates need each sample); meminfo, swaps,
    # swappiness and root PSI on first use in a tick (reference §5.5).

    def set_proc_paths(self):
        root = self.proc_root.rstrip(b"/") if self.proc_root != b"/" else b""
        self._sys_paths = [root + b"/meminfo", root + b"/vmstat", root + b"/swaps",
                           root + b"/sys/vm/swappiness", root + b"/pressure/memory",
                           root + b"/mempressure", root + b"/pressure/io"]
        for i in range(7):
            self.sys_path[i] = <const char*>self._sys_paths[i]

    cdef void _sys_problem(self, int which, int kind, int err) noexcept nogil:
        if self.nsysprob < 32:
            self.sysprob[self.nsysprob].row = which
            self.sysprob[self.nsysprob].kind = 0
            self.sysprob[self.nsysprob].err = kind
            self.sysprob[self.nsysprob].errnum = err
            self.nsysprob += 1

    cdef void ensure(self, uint32_t need) noexcept nogil:
        cdef uint32_t todo = need & ~self.sys_have
        cdef Py_ssize_t n
        cdef const char* s
        cdef const char* e
        cdef const char* le
        cdef const char* ks
        cdef const char* ke
        cdef const char* ts[4]
        cdef const char* te[4]
        cdef uint64_t u, st, ft
        cdef int64_t v, a, b
        cdef int bad, got, i
        cdef float some[3]
        cdef float full[3]
        if todo == 0:
            return
        self.sys_have |= todo
        if todo & SYS_MEMINFO:
            self.sys.meminfo_ok = False
            self.sys.meminfo_have = 0
            n = self._read_path(self.sys_path[0])
            if n >= 0:
                self.sys.meminfo_ok = True
                self._keep_raw(0, n)
                s = self.buf
                e = s + n
                while s < e:
                    le = line_end(s, e)
                    if meminfo_line(s, le, &ks, &ke, &u) == 0:
                        v = <int64_t>(u * 1024)
                        if tok_eq(ks, ke, b"MemTotal"):
                            self.sys.mem_total = v
                            self.sys.meminfo_have |= 1
                        elif tok_eq(ks, ke, b"MemFree"):
                            self.sys.mem_free = v
                            self.sys.meminfo_have |= 2
                        elif tok_eq(ks, ke, b"SwapTotal"):
                            self.sys.swap_total_mi = v
                            self.sys.meminfo_have |= 4
                        elif tok_eq(ks, ke, b"SwapFree"):
                            self.sys.swap_free_mi = v
                            self.sys.meminfo_have |= 8
                    s = le + 1
            else:
                self._keep_raw(0, -1)
                self._sys_problem(0, ST_UNREADABLE, <int>-n)
        if todo & SYS_VMSTAT:
            self.sys.vmstat_ok = False
            self.sys.pswpout_ok = False
            n = self._read_path(self.sys_path[1])
            if n >= 0:
                self.sys.vmstat_ok = True
                self._keep_raw(1, n)
                s = find_key_line(self.buf, self.buf + n, b"pswpout ")
                if s != NULL and vmstat_line(s, line_end(s, self.buf + n), &ks, &ke, &v) == 0:
                    self.sys.pswpout = v
                    self.sys.pswpout_ok = True
            else:
                self._keep_raw(1, -1)
                self._sys_problem(1, ST_UNREADABLE, <int>-n)
        if todo & SYS_SWAPS:
            self.sys.swaps_ok = False
            self.sys.swap_total = 0
            self.sys.swap_used = 0
            n = self._read_path(self.sys_path[2])
            if n >= 0:
                self.sys.swaps_ok = True
                s = self.buf
                e = s + n
                s = line_end(s, e) + 1          # header
                bad = 0
                while s < e:
                    le = line_end(s, e)
                    if split_tokens(s, le, b'\t', ts, te, 4) == 4 and \
                            parse_stoll(ts[1], cstr_end(ts[1], te[1]), &a) == 0 and \
                            parse_stoll(ts[2], cstr_end(ts[2], te[2]), &b) == 0:
                        self.sys.swap_total += a * 1024
                        self.sys.swap_used += b * 1024
                    else:
                        bad += 1
                    s = le + 1
                if bad:
                    self._sys_problem(2, ST_MALFORMED, 0)
            else:
                self._sys_problem(2, ST_UNREADABLE, <int>-n)
        if todo & SYS_SWAPPINESS:
            self.sys.swappiness_ok = False
            n = self._read_path(self.sys_path[3])
            if n >= 0:
                s = self.buf
                e = s + n
                if count_lines(s, e) == 1 and parse_stoll(s, cstr_end(s, line_end(s, e)),
                                                          &v) == 0 \
                        and -2147483648 <= v <= 2147483647:
                    self.sys.swappiness = <int>v
                    self.sys.swappiness_ok = True
                else:
                    self._sys_problem(3, ST_MALFORMED, 0)
            else:
                self._sys_problem(3, ST_UNREADABLE, <int>-n)
        if todo & SYS_PSI_MEM:
            self.sys.psi_valid &= ~(<uint32_t>15)
            n = self._read_path(self.sys_path[4])
            if n < 0:
                n = self._read_path(self.sys_path[5])
            if n >= 0:
                got = parse_psi(self.buf, self.buf + n, some, full, &st, &ft)
                if got > 0:
                    self.sys.psi_valid |= <uint32_t>got
                    for i in range(3):
                        self.sys.mem_some[i] = some[i]
                        self.sys.mem_full[i] = full[i]
                    self.sys.mem_some_total = <int64_t>st
                    self.sys.mem_full_total = <int64_t>ft
                if got < 0 or (got & 3) != 3:
                    self._sys_problem(4, ST_MALFORMED, 0)
            else:
                self._sys_problem(4, ST_UNREADABLE, <int>-n)
        if todo & SYS_PSI_IO:
            self.sys.psi_valid &= ~(<uint32_t>(15 << 4))
            n = self._read_path(self.sys_path[6])
            if n >= 0:
                got = parse_psi(self.buf, self.buf + n, some, full, &st, &ft)
                if got > 0:
                    self.sys.psi_valid |= (<uint32_t>got) << 4
                    for i in range(3):
                        self.sys.io_some[i] = some[i]
                        self.sys.io_full[i] = full[i]
                    self.sys.io_some_total = <int64_t>st
                    self.sys.io_full_total = <int64_t>ft
                if got < 0 or (got & 3) != 3:
                    self._sys_problem(6, ST_MALFORMED, 0)
            else:
                self._sys_problem(6, ST_UNREADABLE, <int>-n)

    def drain_problems(self):
        """[(file, error kind (ST_*), errno)] since the last call."""
        names = ("meminfo", "vmstat", "swaps", "sys/vm/swappiness", "pressure/memory",
                 "mempressure", "pressure/io")
        out = [(names[self.sysprob[i].row], self.sysprob[i].err, self.sysprob[i].errnum)
               for i in range(self.nsysprob)]
        self.nsysprob = 0
        return out

    cdef void _keep_raw(self, int which, Py_ssize_t n) noexcept nogil:
        cdef char* p
        if which == 0:
            free(self.meminfo_raw)
            self.meminfo_raw = NULL
            self.meminfo_len = 0
        else:
            free(self.vmstat_raw)
            self.vmstat_raw = NULL
            self.vmstat_len = 0
        if n < 0:
            return
        p = <char*>malloc(n + 1)
        if p == NULL:
            return
        memcpy(p, self.buf, n)
        p[n] = 0
        if which == 0:
            self.meminfo_raw = p
            self.meminfo_len = n
        else:
            self.vmstat_raw = p
            self.vmstat_len = n

    def system(self):
        """This tick's system values as a dict (None where a file or key was missing); reads
        the lazily-read files first."""
        self.ensure(SYS_ALL)
        cdef SysState* sy = &self.sys
        cdef uint32_t pv = sy.psi_valid
        mem_some = tuple(np.float32(sy.mem_some[i]) for i in range(3)) if pv & 1 else None
        mem_full = tuple(np.float32(sy.mem_full[i]) for i in range(3)) if pv & 2 else None
        io_some = tuple(np.float32(sy.io_some[i]) for i in range(3)) if pv & 16 else None
        io_full = tuple(np.float32(sy.io_full[i]) for i in range(3)) if pv & 32 else None
        return {
            "mem_total": sy.mem_total if sy.meminfo_have & 1 else None,
            "mem_free": sy.mem_free if sy.meminfo_have & 2 else None,
            "swap_total_meminfo": sy.swap_total_mi if sy.meminfo_have & 4 else None,
            "swap_free_meminfo": sy.swap_free_mi if sy.meminfo_have & 8 else None,
            "vmstat_ok": bool(sy.vmstat_ok),
            "pswpout": sy.pswpout if sy.pswpout_ok else None,
            "swaps_ok": bool(sy.swaps_ok),
            "swap_total": sy.swap_total,
            "swap_used": sy.swap_used,
            "swappiness": sy.swappiness if sy.swappiness_ok else None,
            "mem_some": mem_some,
            "mem_full": mem_full,
            "mem_some_total": sy.mem_some_total if pv & 4 else None,
            "mem_full_total": sy.mem_full_total if pv & 8 else None,
            "io_some": io_some,
            "io_full": io_full,
            "io_some_total": sy.io_some_total if pv & 64 else None,
            "io_full_total": sy.io_full_total if pv & 128 else None,
        }

    def vmstat_sample(self):
        """(vmstat readable, pswpout or None) of this tick."""
        return bool(self.sys.vmstat_ok), (self.sys.pswpout if self.sys.pswpout_ok else None)

    def meminfo_bytes(self):
        return None if self.meminfo_raw == NULL else self.meminfo_raw[:self.meminfo_len]

    def vmstat_bytes(self):
        return None if self.vmstat_raw == NULL else self.vmstat_raw[:self.vmstat_len]
