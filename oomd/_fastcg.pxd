# The per-tick cgroupfs reader: the Reader's fields (see _fastcg.pyx). Constants and structs
# are in oomd/_reader/defs.pxd.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.defs cimport *
from oomd._reader.problems cimport ProblemLog
from oomd._reader.sysfiles cimport SystemFiles
from oomd._reader.table cimport RowTable


cdef class Reader:
    cdef readonly bytes cgroup_fs
    cdef RowTable t                  # rows, columns, fds and the fd budget
    cdef ProblemLog problems         # outcome counters, the queue of read problems
    cdef SystemFiles sysf            # /proc files (meminfo, vmstat, swaps, root PSI)

    cdef readonly int ino_fd
    cdef int32_t* wmap_keys         # inotify wd -> (row << 5) | kind (WATCH_DIR or a file)
    cdef int32_t* wmap_vals
    cdef int wmap_cap, wmap_used, wmap_n
    cdef readonly int64_t n_events, n_overflows
    cdef readonly bint keep_config
    cdef object _keep_arg
    cdef readonly int watch_budget
    cdef readonly int n_watches
    cdef readonly bint watch_full
    cdef readonly int64_t n_watch_refused, n_invalidations
    cdef char* buf
    cdef size_t bufcap
    cdef char* dbuf
    cdef size_t dbufcap
    cdef int ndev
    cdef int* dev_major
    cdef int* dev_minor
    cdef uint8_t* dev_hdd
    cdef double ssd[6]
    cdef double hdd[6]
    cdef int64_t n_reads, n_preads, n_opens, n_listings
    cdef bint cache_row          # _load_rows: the row being loaded may cache file fds

    cdef int _ensure_buf(self, size_t need) noexcept nogil
    cdef int _vanished_or_missing(self, int row) noexcept nogil
    cdef Py_ssize_t _read_kind(self, int row, int kind) noexcept nogil
    cdef void _load_one(self, int row, int kind) noexcept nogil
    cdef void _load_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) noexcept nogil
    cdef void _read_xattr(self, int row) noexcept nogil
    cdef void _keep(self, int row, int kind) noexcept nogil
    cdef void _invalidate(self, int row, uint32_t kinds) noexcept nogil
    cdef int _event_kind(self, const char* name) noexcept nogil
    cdef int _add_watch(self, int r, int kind) except -2
    cdef void _set_wd(self, int r, int kind, int w)
    cdef void _unwatch(self, int r, int kind)
    cdef bint _keepable(self, int row, int kind) noexcept nogil
    cdef void _invalidate_family(self, int r)
    cdef int _child_named(self, int p, const char* name) noexcept nogil
    cdef int _wmap_resize(self, int cap) noexcept
    cdef int _wmap_slot(self, int32_t key) noexcept nogil
    cdef int _wmap_get(self, int32_t key) noexcept nogil
    cdef int _wmap_put(self, int32_t key, int32_t val) noexcept
    cdef void _wmap_del(self, int32_t key) noexcept nogil
    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil
    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil
    cdef void _load_root(self, int row, int kind) noexcept nogil
    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil
