# Loading files into columns (load.pyx).

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.problems cimport ProblemLog
from oomd._reader.sysfiles cimport SystemFiles
from oomd._reader.table cimport RowTable
from oomd._reader.watch cimport Watcher


cdef class Loader:
    cdef RowTable t
    cdef Watcher watch
    cdef SystemFiles sysf
    cdef ProblemLog problems
    cdef char* buf                       # the file being parsed (NUL-terminated)
    cdef size_t bufcap
    cdef int ndev                        # io cost: the --device list and coefficients
    cdef int* dev_major
    cdef int* dev_minor
    cdef uint8_t* dev_hdd
    cdef double ssd[6]
    cdef double hdd[6]
    cdef int64_t n_reads, n_preads, n_opens
    cdef bint cache_row                  # load_rows: the row being loaded may cache file fds

    cdef void load_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) noexcept nogil
    cdef int _ensure_buf(self, size_t need) noexcept nogil
    cdef int _vanished_or_missing(self, int row) noexcept nogil
    cdef Py_ssize_t _read_kind(self, int row, int kind) noexcept nogil
    cdef void _load_one(self, int row, int kind) noexcept nogil
    cdef void _read_xattr(self, int row) noexcept nogil
    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil
    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil
    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil
    cdef void _load_root(self, int row, int kind) noexcept nogil
