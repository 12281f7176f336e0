# The per-tick cgroupfs reader: constants and the Reader's fields (see _fastcg.pyx).

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t

# File kinds: one bit each in `loaded`, one fd slot each (except K_XATTR, read via the dir fd).
cdef enum:
    K_CURRENT = 0      # memory.current
    K_MIN = 1          # memory.min
    K_LOW = 2          # memory.low
    K_HIGH = 3         # memory.high
    K_HIGH_TMP = 4     # memory.high.tmp
    K_MAX = 5          # memory.max
    K_SWAP_CUR = 6     # memory.swap.current
    K_SWAP_MAX = 7     # memory.swap.max
    K_MEM_PSI = 8      # memory.pressure
    K_IO_PSI = 9       # io.pressure
    K_MEM_STAT = 10    # memory.stat
    K_IO_STAT = 11     # io.stat
    K_EVENTS = 12      # cgroup.events
    K_CG_STAT = 13     # cgroup.stat
    K_OOM_GROUP = 14   # memory.oom.group
    K_XATTR = 15       # trusted./user. oomd_prefer / oomd_avoid
    NFILE = 15         # kinds that are files (fd slots)
    NKIND = 16

# Derived values computed this tick (more bits of `loaded`).
cdef enum:
    D_AVG = 16
    D_IOCOST = 17
    D_PGSCAN = 18
    D_RAWPROT = 19
    D_PROT = 20
    D_ESWAP = 21

# memory.stat keys kept in the `memory_stat` column (index = column).
cdef enum:
    S_ANON = 0
    S_FILE = 1
    S_SHMEM = 2
    S_PGSCAN = 3
    S_ACTIVE_FILE = 4
    S_INACTIVE_FILE = 5
    S_ACTIVE_ANON = 6
    S_INACTIVE_ANON = 7
    S_WS_REFAULT_ANON = 8
    S_WS_REFAULT_FILE = 9
    S_WS_REFAULT = 10
    S_PGSTEAL = 11
    NSTAT = 12

# Bits of the per-row `valid` mask: one per value.
cdef enum:
    V_CURRENT = 0
    V_MIN = 1
    V_LOW = 2
    V_HIGH = 3
    V_HIGH_TMP = 4
    V_MAX = 5
    V_SWAP_CUR = 6
    V_SWAP_MAX = 7
    V_MEM_SOME = 8
    V_MEM_FULL = 9
    V_MEM_SOME_TOTAL = 10
    V_MEM_FULL_TOTAL = 11
    V_IO_SOME = 12
    V_IO_FULL = 13
    V_IO_SOME_TOTAL = 14
    V_IO_FULL_TOTAL = 15
    V_MEM_STAT = 16
    V_STAT0 = 17        # V_STAT0 + S_* : the key was present
    V_IO_STAT = 29
    V_POPULATED = 30
    V_DYING = 31
    V_OOM_GROUP = 32
    V_KILL_PREF = 33
    V_AVG = 34
    V_IOCOST = 35
    V_IORATE = 36
    V_PGSCAN = 37
    V_PGRATE = 38
    V_RAWPROT = 39
    V_PROT = 40
    V_ESWAP_MAX = 41
    V_ESWAP_FREE = 42
    V_ESWAP_UTIL = 43

# Per-row status (the worst outcome of this tick's reads) and error kinds for counters.
cdef enum:
    ST_OK = 0
    ST_MALFORMED = 1
    ST_UNREADABLE = 2
    ST_VANISHED = 3
    E_MISSING = 4       # counter only: the file does not exist (normal for optional files)
    NERR = 5

# System files (bits of Reader.sys_have)
cdef enum:
    SYS_MEMINFO = 1
    SYS_VMSTAT = 2
    SYS_SWAPS = 4
    SYS_SWAPPINESS = 8
    SYS_PSI_MEM = 16
    SYS_PSI_IO = 32
    SYS_ALL = 63

# Archive flags: the value was computed in the previous tick (reference §5.4).
cdef enum:
    A_AVG = 1
    A_IOCOST = 2
    A_PGSCAN = 4


cdef struct PendingLog:
    int32_t row
    uint8_t kind
    uint8_t err
    int errnum


cdef struct SysState:
    bint meminfo_ok
    int64_t mem_total, mem_free, swap_total_mi, swap_free_mi
    uint32_t meminfo_have        # bit 0 MemTotal, 1 MemFree, 2 SwapTotal, 3 SwapFree
    bint vmstat_ok
    bint pswpout_ok
    int64_t pswpout
    bint swaps_ok
    int64_t swap_total, swap_used
    bint swappiness_ok
    int swappiness
    uint32_t psi_valid           # V_MEM_SOME.. V_IO_FULL_TOTAL bits, shifted by -8
    float mem_some[3]
    float mem_full[3]
    float io_some[3]
    float io_full[3]
    int64_t mem_some_total, mem_full_total, io_some_total, io_full_total


cdef class Reader:
    cdef readonly bytes cgroup_fs
    cdef readonly bytes proc_root
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

    cdef list _free
    cdef readonly int ino_fd
    cdef dict _wd_rows
    cdef readonly int64_t n_events, n_overflows
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
    cdef SysState sys
    cdef char* meminfo_raw
    cdef size_t meminfo_len
    cdef char* vmstat_raw
    cdef size_t vmstat_len
    cdef uint32_t sys_have
    cdef const char* sys_path[7]
    cdef list _sys_paths
    cdef PendingLog sysprob[32]
    cdef int nsysprob

    # columns (views of the numpy arrays in `cols`)
    cdef int32_t[::1] dirfd
    cdef uint8_t[::1] live
    cdef int32_t[::1] nkids
    cdef char** rname
    cdef readonly int64_t n_parks, n_unparks
    cdef readonly bint fd_tight
    cdef bint refused_now
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
    cdef Py_ssize_t _read_path(self, const char* path) noexcept nogil
    cdef int _dfd(self, int row) noexcept nogil
    cdef void _park(self, int row) noexcept nogil
    cdef bint _parkable(self, int row) noexcept nogil
    cdef bint _needs_dir(self, int r, uint32_t need) noexcept nogil
    cdef void _store_psi(self, int row, int kind, int got, float* some, float* full,
                         uint64_t st, uint64_t ft) noexcept nogil
    cdef void _load_root(self, int row, int kind) noexcept nogil
    cdef int _has_xattr(self, int fd, const char* name) noexcept nogil
    cdef void _sys_problem(self, int which, int kind, int err) noexcept nogil
    cdef void _ensure_sys(self, uint32_t need) noexcept nogil
    cdef void _keep_raw(self, int which, Py_ssize_t n) noexcept nogil
