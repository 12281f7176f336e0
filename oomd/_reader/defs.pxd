# Constants and plain structs shared by the reader's Cython modules (see oomd/_fastcg.pyx and
# docs/design.md, "Reading"). No code: every module of the reader cimports this one.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

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

# Configuration-like kinds: they change only when someone writes the file (or sets an xattr on
# the directory), so on cgroup2 a watched row keeps them across ticks (`keep`) and re-reads one
# only after inotify reports a change to it.
cdef enum:
    CONFIG_KINDS = ((1 << K_MIN) | (1 << K_LOW) | (1 << K_HIGH) | (1 << K_HIGH_TMP) | (1 << K_MAX)
                    | (1 << K_SWAP_MAX) | (1 << K_OOM_GROUP) | (1 << K_XATTR))

# Watch states (`wd` column: the row's directory; `fwd`: its configuration files) besides a
# watch descriptor >= 0.
cdef enum:
    WD_NONE = -1        # not watched (yet)
    WD_REFUSED = -2     # the kernel or the watch budget refused: retried when a watch frees
    WD_SHARED = -3      # another row watches the same inode: never watched
    WD_MISSING = -4     # the file does not exist: tried again once a read finds it
    WATCH_DIR = 31      # the kind of a directory watch (file watches use the file's kind)

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



# Raw pointers to the row table's columns (RowTable.c, rebound when capacity grows): what the
# derived-metric kernels of derived.pyx read and write. Indexed by row; mstat is (N, NSTAT).
cdef struct Columns:
    uint8_t* live
    int32_t* parent
    int32_t* depth
    uint64_t* valid
    uint32_t* loaded
    uint32_t* keep
    uint8_t* status
    uint8_t* alive_checked
    uint8_t* archived
    int64_t* current
    int64_t* mem_min
    int64_t* mem_low
    int64_t* swap_cur
    int64_t* swap_max
    int64_t* mstat
    int64_t* avg
    int64_t* arch_avg
    double* iocost
    double* arch_iocost
    double* iorate
    int64_t* pgscan
    int64_t* arch_pgscan
    int64_t* pgrate
    int64_t* rawprot
    int64_t* prot
    int64_t* eswap_max
    int64_t* eswap_free
    double* eswap_util
