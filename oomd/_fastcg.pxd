# The per-tick cgroupfs reader: the Reader's fields (see _fastcg.pyx). Constants and structs
# are in oomd/_reader/defs.pxd.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.defs cimport *
from oomd._reader.listing cimport Lister
from oomd._reader.problems cimport ProblemLog
from oomd._reader.sysfiles cimport SystemFiles
from oomd._reader.table cimport RowTable
from oomd._reader.watch cimport Watcher


cdef class Reader:
    cdef readonly bytes cgroup_fs
    cdef RowTable t                  # rows, columns, fds and the fd budget
    cdef Watcher watch               # inotify: listings to redo, kept values to drop
    cdef Lister lister               # directory listings and their generations
    cdef ProblemLog problems         # outcome counters, the queue of read problems
    cdef SystemFiles sysf            # /proc files (meminfo, vmstat, swaps, root PSI)

    cdef char* buf
    cdef size_t bufcap
    cdef int ndev
    cdef int* dev_major
    cdef int* dev_minor
    cdef uint8_t* dev_hdd
    cdef double ssd[6]
    cdef double hdd[6]
    cdef int64_t n_reads, n_preads, n_opens
    cdef bint cache_row          # _load_rows: the row being loaded may cache file fds

    cdef int _ensure_buf(self, size_t need) noexcept nogil
    cdef int _vanished_or_missing(self, int row) noexcept nogil
    cdef Py_ssize_t _read_kind(self, int row, int kind) noexcept nogil
    cdef void _load_one(self, int row, int kind) noexcept nogil
    cdef void _load_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) noexcept nogil
    cdef void _read_xattr(self, int row) noexcept nogil
    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil
    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil
    cdef void _load_root(self, int row, int kind) noexcept nogil
    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil
