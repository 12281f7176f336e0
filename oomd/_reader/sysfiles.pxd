# The system files (sysfiles.pyx): read at most once a tick into a SysState.

from libc.stdint cimport uint32_t

from oomd._reader.defs cimport PendingLog, SysState


cdef class SystemFiles:
    cdef readonly bytes proc_root
    cdef SysState sys                # this tick's values (see the *_ok / *_have fields)
    cdef uint32_t sys_have           # SYS_* files read this tick
    cdef char* buf
    cdef size_t bufcap
    cdef char* meminfo_raw
    cdef size_t meminfo_len
    cdef char* vmstat_raw
    cdef size_t vmstat_len
    cdef const char* sys_path[7]
    cdef list _sys_paths
    cdef PendingLog sysprob[32]      # row = index of the file in sys_path
    cdef int nsysprob

    cdef void begin_tick(self) noexcept nogil
    cdef void ensure(self, uint32_t need) noexcept nogil
    cdef int _ensure_buf(self, size_t need) noexcept nogil
    cdef Py_ssize_t _read_path(self, const char* path) noexcept nogil
    cdef void _sys_problem(self, int which, int kind, int err) noexcept nogil
    cdef void _keep_raw(self, int which, Py_ssize_t n) noexcept nogil
