# The row table (table.pyx): one row per opened cgroup directory, the numpy columns, the fds
# the rows hold and the fd budget they are held under (parking).

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.defs cimport NFILE, Columns


cdef class RowTable:
    cdef int capacity
    cdef int nrows
    cdef int root_row                # -1 while cgroup-fs cannot be opened
    cdef int64_t tick                # the Reader's tick (marks such as `scanned` compare to it)
    cdef dict cols                   # name -> numpy column; replaced when capacity grows
    cdef list _free                  # free row slots, the next one last

    # the files of a row: the name read for each file kind (tests may rename one)
    cdef const char* fname[NFILE]
    cdef size_t fnamelen[NFILE]
    cdef list _fname_refs
    cdef char** rname                # per row: its directory name (NUL-terminated)
    cdef char** lst                  # per row: its last getdents64 listing (see listing.pyx)
    cdef size_t* lstlen

    # fds and the fd budget
    cdef object _cache_arg
    cdef bint cache_files            # file fds of `cacheable` kinds are kept for pread
    cdef uint32_t cacheable
    cdef bint is_cgroup2
    cdef object _absent_arg
    cdef bint remember_absent        # files found absent are tried again only after an event
    cdef int fd_budget
    cdef int open_fds                # directory + cached file fds held
    cdef bint fd_tight               # the budget refused a cache last tick: leaves park
    cdef bint refused_now            # ... and this tick
    cdef int64_t n_unparked_cached   # rows loaded all cached before the budget was tight
    cdef int64_t n_parks, n_unparks, n_alive_checks
    cdef int64_t n_born_parked       # rows opened past the budget: directory fd not kept
    cdef int dfd_err                 # why dfd() returned -1 (an errno)

    # columns (views of the numpy arrays in `cols`; `c` holds raw pointers to the same data)
    cdef Columns c
    cdef int32_t[::1] dirfd
    cdef uint8_t[::1] live
    cdef int32_t[::1] nkids
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
    cdef uint32_t[::1] absent        # file kinds found missing, not tried again until an event
    cdef uint8_t[::1] recheck        # its directory watch reported it deleted or moved
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
    cdef int64_t[::1] avoid_uid      # owner of a dir whose AVOID is only user.oomd_avoid, else -1
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

    # rows
    cdef int _alloc(self, int cap) except -1
    cdef void _bind(self)
    cdef int new_row(self) except -1
    cdef int open_root_dir(self, bytes cgroup_fs) except? -1
    cdef int open_child(self, int parent_row, bytes name) except? -1
    cdef int setup_row(self, int fd, int parent_row, int depth, bytes name) except? -1
    cdef int close_row(self, int r) except -1
    cdef void set_parent(self, int r, int p) noexcept

    # fds: parking under the budget, liveness
    cdef int dfd(self, int r) noexcept nogil
    cdef bint parkable(self, int r) noexcept nogil
    cdef bint over_budget_leaf(self, int r) noexcept nogil
    cdef void park(self, int r) noexcept nogil
    cdef int make_room(self) noexcept nogil
    cdef void close_file_fds(self, uint32_t kinds) noexcept
    cdef void check_alive(self, const int32_t* rows, Py_ssize_t n, uint8_t* out) noexcept nogil
    cdef int file_fd_count(self) noexcept
