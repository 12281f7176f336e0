# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Benchmark baselines: the physical limit of reading the same files as the reader, with no
parsing (bench/test_bench_core.py). Exported as ``oomd._fastcg.raw_read_loop``, ``RawFds`` and
``RawPaths``; nothing in the daemon uses them."""

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from oomd._reader.syscalls cimport (
    O_CLOEXEC, O_DIRECTORY, O_RDONLY, c_close, c_open, c_openat, c_pread, c_read)



def raw_read_loop(list paths, int reps=1):
    """open/read/close each path `reps` times (no parsing). Returns bytes read."""
    cdef list enc = [p if isinstance(p, bytes) else p.encode() for p in paths]
    cdef Py_ssize_t n = len(enc), i
    cdef const char** cp = <const char**>malloc(max(1, n) * sizeof(char*))
    cdef char buf[65536]
    cdef int fd, rep
    cdef ssize_t got
    cdef int64_t tot = 0
    for i in range(n):
        cp[i] = enc[i]
    with nogil:
        for rep in range(reps):
            for i in range(n):
                fd = c_open(cp[i], O_RDONLY | O_CLOEXEC)
                if fd < 0:
                    continue
                got = c_read(fd, buf, sizeof(buf))
                if got > 0:
                    tot += got
                c_close(fd)
    free(cp)
    return tot


cdef class RawFds:
    """Pre-opened fds for the baseline loops: `pread_all` (kept file fds, the physical limit)
    and `openat_all` (openat on kept directory fds + read + close)."""
    cdef int* fds
    cdef int* dfds
    cdef const char** names
    cdef list _names
    cdef readonly Py_ssize_t n

    def __cinit__(self, list dirs, list names, bint keep_files=True):
        """dirs: directory paths; names: file names read in each directory."""
        self.n = len(dirs) * len(names)
        self.fds = <int*>malloc(max(1, self.n) * sizeof(int))
        self.dfds = <int*>malloc(max(1, self.n) * sizeof(int))
        self.names = <const char**>malloc(max(1, self.n) * sizeof(char*))
        self._names = [nm.encode() if isinstance(nm, str) else nm for nm in names]
        cdef Py_ssize_t i = 0
        cdef int dfd
        cdef bytes bd
        for d in dirs:
            bd = d.encode() if isinstance(d, str) else d
            dfd = c_open(bd, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            for nm in self._names:
                self.dfds[i] = dfd
                self.names[i] = nm
                self.fds[i] = c_openat(dfd, <const char*>nm, O_RDONLY | O_CLOEXEC) \
                    if keep_files and dfd >= 0 else -1
                i += 1

    def close(self):
        cdef Py_ssize_t i
        cdef int last = -1
        if self.fds != NULL:
            for i in range(self.n):
                if self.fds[i] >= 0:
                    c_close(self.fds[i])
                    self.fds[i] = -1
                if self.dfds[i] >= 0 and self.dfds[i] != last:
                    c_close(self.dfds[i])
                    last = self.dfds[i]
                self.dfds[i] = -1

    def __dealloc__(self):
        self.close()
        free(self.fds)
        free(self.dfds)
        free(self.names)

    def pread_all(self):
        cdef char buf[65536]
        cdef Py_ssize_t i
        cdef int64_t tot = 0
        cdef ssize_t got
        with nogil:
            for i in range(self.n):
                if self.fds[i] >= 0:
                    got = c_pread(self.fds[i], buf, sizeof(buf), 0)
                    if got > 0:
                        tot += got
        return tot

    def openat_all(self):
        cdef char buf[65536]
        cdef Py_ssize_t i
        cdef int64_t tot = 0
        cdef ssize_t got
        cdef int fd
        with nogil:
            for i in range(self.n):
                if self.dfds[i] >= 0:
                    fd = c_openat(self.dfds[i], self.names[i], O_RDONLY | O_CLOEXEC)
                    if fd >= 0:
                        got = c_read(fd, buf, sizeof(buf))
                        if got > 0:
                            tot += got
                        c_close(fd)
        return tot


cdef class RawPaths:
    """The physical limit under an fd limit: file fds kept for the first `max_fds` paths and
    pread at offset 0; the rest open(path) + read + close each time. No parsing."""
    cdef int* fds
    cdef list _paths
    cdef const char** cp
    cdef readonly Py_ssize_t n, kept

    def __cinit__(self, list paths, Py_ssize_t max_fds):
        self.n = len(paths)
        self._paths = [p.encode() if isinstance(p, str) else p for p in paths]
        self.fds = <int*>malloc(max(1, self.n) * sizeof(int))
        self.cp = <const char**>malloc(max(1, self.n) * sizeof(char*))
        self.kept = 0
        cdef Py_ssize_t i
        for i in range(self.n):
            self.cp[i] = <const char*>self._paths[i]
            self.fds[i] = -1
            if self.kept < max_fds:
                self.fds[i] = c_open(self.cp[i], O_RDONLY | O_CLOEXEC)
                if self.fds[i] >= 0:
                    self.kept += 1

    def close(self):
        cdef Py_ssize_t i
        if self.fds != NULL:
            for i in range(self.n):
                if self.fds[i] >= 0:
                    c_close(self.fds[i])
                    self.fds[i] = -1
        self.kept = 0

    def __dealloc__(self):
        self.close()
        free(self.fds)
        free(self.cp)

    def read_all(self):
        cdef char buf[65536]
        cdef Py_ssize_t i
        cdef int64_t tot = 0
        cdef ssize_t got
        cdef int fd
        with nogil:
            for i in range(self.n):
                if self.fds[i] >= 0:
                    got = c_pread(self.fds[i], buf, sizeof(buf), 0)
                else:
                    fd = c_open(self.cp[i], O_RDONLY | O_CLOEXEC)
                    if fd < 0:
                        continue
                    got = c_read(fd, buf, sizeof(buf))
                    c_close(fd)
                if got > 0:
                    tot += got
        return tot
