# The per-tick cgroupfs reader: the Reader's fields (see _fastcg.pyx). Constants and structs
# are in oomd/_reader/defs.pxd.

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.defs cimport *
from oomd._reader.sysfiles cimport SystemFiles


cdef class Reader:
    cdef readonly bytes cgroup_fs
    cdef readonly int capacity
    cdef readonly int nrows
    cdef readonly int root_row
    cdef readonly int64_t tick
    cdef readonly bint cache_files
    cdef readonly bint is_cgroup2
    cdef readonly int fd_budget
    cdef readonly int open_fds
    cdef public uint32_t cacheable
    cdef readonly dict cols
    cdef readonly SystemFiles sysf   # /proc files (meminfo, vmstat, swaps, root PSI)

    cdef list _free
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
    cdef const char* fname[NFILE]
    cdef size_t fnamelen[NFILE]
    cdef list _fname_refs
    cdef object _cache_arg
    cdef char* buf
    cdef size_t bufcap
    cdef char* dbuf
    cdef size_t dbufcap
    cdef char** lst
    cdef size_t* lstlen
    cdef int ndev
    cdef int* dev_major
    cdef int* dev_minor
    cdef uint8_t* dev_hdd
    cdef double ssd[6]
    cdef double hdd[6]
    cdef int64_t counts[NERR][NKIND]
    cdef int64_t n_reads, n_preads, n_opens, n_listings, n_alive_checks
    cdef PendingLog* plog
    cdef int nplog
    cdef int64_t plog_dropped
    cdef int64_t n_fd_exhausted

    # columns (views of the numpy arrays in `cols`)
    cdef int32_t[::1] dirfd
    cdef uint8_t[::1] live
    cdef int32_t[::1] nkids
    cdef char** rname
    cdef readonly int64_t n_parks, n_unparks
    cdef readonly bint fd_tight
    cdef bint refused_now
    cdef int64_t n_unparked_cached
    cdef bint cache_row          # _load_rows: the row being loaded may cache file fds
    cdef int dfd_err
    cdef int32_t[::1] parent
    cdef int32_t[::1] depth
    cdef int32_t[:, ::1] ffd
    cdef uint64_t[::1] cgid
    cdef uint64_t[::1] valid
    cdef uint32_t[::1] loaded
    cdef uint32_t[::1] logged
    cdef uint8_t[::1] status
    cdef uint8_t[::1] alive_checked
    cdef int64_t[::1] scanned
    cdef uint32_t[::1] gen
    cdef int32_t[::1] wd
    cdef uint8_t[::1] dirty
    cdef uint32_t[::1] keep
    cdef int32_t[:, ::1] fwd
    cdef uint8_t[::1] dirty_attr
    cdef int64_t[::1] current
    cdef int64_t[::1] mem_min
    cdef int64_t[::1] mem_low
    cdef int64_t[::1] mem_high
    cdef int64_t[::1] mem_high_tmp
    cdef int64_t[::1] mem_max
    cdef int64_t[::1] swap_cur
    cdef int64_t[::1] swap_max
    cdef float[:, ::1] mem_some
    cdef float[:, ::1] mem_full
    cdef float[:, ::1] io_some
    cdef float[:, ::1] io_full
    cdef int64_t[:, ::1] psi_total
    cdef int64_t[:, ::1] mstat
    cdef uint8_t[::1] populated
    cdef int64_t[::1] dying
    cdef uint8_t[::1] oom_group
    cdef int8_t[::1] kill_pref
    cdef int64_t[::1] avg
    cdef int64_t[::1] arch_avg
    cdef double[::1] iocost
    cdef double[::1] arch_iocost
    cdef double[::1] iorate
    cdef int64_t[::1] pgscan
    cdef int64_t[::1] arch_pgscan
    cdef int64_t[::1] pgrate
    cdef uint8_t[::1] archived
    cdef int64_t[::1] rawprot
    cdef int64_t[::1] prot
    cdef int64_t[::1] eswap_max
    cdef int64_t[::1] eswap_free
    cdef double[::1] eswap_util

    cdef void _bind(self)
    cdef int _grow(self) except -1
    cdef int _new_row(self) except -1
    cdef int _ensure_buf(self, size_t need) noexcept nogil
    cdef void _note(self, int row, int kind, int err, int errnum) noexcept nogil
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
    cdef int _dfd(self, int row) noexcept nogil
    cdef void _park(self, int row) noexcept nogil
    cdef int _make_room(self) noexcept nogil
    cdef bint _over_budget_leaf(self, int r) noexcept nogil
    cdef bint _parkable(self, int row) noexcept nogil
    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil
    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil
    cdef void _load_root(self, int row, int kind) noexcept nogil
    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil
