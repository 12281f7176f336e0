# The inotify watches (watch.pyx): directory and configuration-file watches of the rows, the
# map from watch descriptor to row, and the kept configuration values they make possible.

from libc.stdint cimport int32_t, int64_t, uint32_t

from oomd._reader.table cimport RowTable


cdef class Watcher:
    cdef RowTable t
    cdef int ino_fd                      # -1: no inotify (not caching file fds)
    cdef object _keep_arg
    cdef bint keep_config                # configuration values of watched rows are kept
    cdef int watch_budget                # most watches held
    cdef int n_watches
    cdef bint watch_full                 # the budget or the kernel refused a watch
    cdef int64_t n_watch_refused, n_invalidations, n_events, n_overflows
    cdef int32_t* wmap_keys              # inotify wd -> (row << 5) | kind (WATCH_DIR or a file)
    cdef int32_t* wmap_vals
    cdef int wmap_cap, wmap_used, wmap_n

    cdef int start(self, bint cache_files) except -1
    cdef void close(self) noexcept
    cdef int add(self, int r, int kind) except -2
    cdef void _set_wd(self, int r, int kind, int w) noexcept nogil
    cdef void unwatch(self, int r, int kind) noexcept nogil
    cdef void unwatch_row(self, int r) noexcept nogil
    cdef bint keepable(self, int row, int kind) noexcept nogil
    cdef void keep_value(self, int row, int kind) noexcept nogil
    cdef void invalidate(self, int row, uint32_t kinds) noexcept nogil
    cdef int _event_kind(self, const char* name) noexcept nogil
    cdef int poll(self) except -1
    cdef void _forget_absent(self, int r, const char* name) noexcept nogil
    cdef int _child_named(self, int p, const char* name) noexcept nogil
    cdef void _invalidate_family(self, int r) noexcept nogil
    cdef int watch_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) except -1
    cdef int _wmap_resize(self, int cap) noexcept
    cdef int _wmap_slot(self, int32_t key) noexcept nogil
    cdef int _wmap_get(self, int32_t key) noexcept nogil
    cdef int _wmap_put(self, int32_t key, int32_t val) noexcept
    cdef void _wmap_del(self, int32_t key) noexcept nogil
