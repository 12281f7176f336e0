# The C library and Linux calls the reader makes, in one place (each module of the reader
# cimports the ones it uses by name).

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "<fcntl.h>" nogil:
    int c_openat "openat"(int dirfd, const char* path, int flags, ...)
    int c_open "open"(const char* path, int flags, ...)
    int O_RDONLY, O_DIRECTORY, O_CLOEXEC, O_NONBLOCK

cdef extern from "<unistd.h>" nogil:
    ssize_t c_pread "pread"(int fd, void* buf, size_t n, long off)
    ssize_t c_read "read"(int fd, void* buf, size_t n)
    int c_close "close"(int fd)
    long c_lseek "lseek"(int fd, long off, int whence)
    int c_faccessat "faccessat"(int dirfd, const char* path, int mode, int flags)
    int F_OK, SEEK_SET

cdef extern from "<dirent.h>" nogil:
    ssize_t c_getdents64 "getdents64"(int fd, void* buf, size_t n)

cdef extern from "<sys/xattr.h>" nogil:
    ssize_t c_flistxattr "flistxattr"(int fd, char* lst, size_t size)
    ssize_t c_fgetxattr "fgetxattr"(int fd, const char* name, void* value, size_t size)

cdef extern from "<sys/stat.h>" nogil:
    cdef struct stat:
        unsigned long st_ino
        unsigned int st_mode
        unsigned long st_nlink
        unsigned int st_uid
    int c_fstat "fstat"(int fd, stat* st)

cdef extern from "<sys/vfs.h>" nogil:
    cdef struct statfs:
        long f_type
    int c_fstatfs "fstatfs"(int fd, statfs* st)

cdef extern from "<sys/inotify.h>" nogil:
    int c_inotify_init1 "inotify_init1"(int flags)
    int c_inotify_add_watch "inotify_add_watch"(int fd, const char* path, uint32_t mask)
    int c_inotify_rm_watch "inotify_rm_watch"(int fd, int wd)
    int IN_NONBLOCK, IN_CLOEXEC, IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO
    int IN_DELETE_SELF, IN_MOVE_SELF, IN_ONLYDIR, IN_Q_OVERFLOW, IN_IGNORED, IN_MODIFY, IN_ATTRIB
    cdef struct inotify_event:
        int wd
        uint32_t mask
        uint32_t cookie
        uint32_t len

cdef extern from "<fnmatch.h>" nogil:
    int c_fnmatch "fnmatch"(const char* pattern, const char* name, int flags)
    int FNM_PERIOD

cdef extern from * nogil:
    """
    #ifndef PYOOMD_SYSCALLS_H
    #define PYOOMD_SYSCALLS_H
    #ifndef ENODATA
    #define ENODATA 61
    #endif
    #ifndef ESTALE
    #define ESTALE 116
    #endif
    #ifndef EOPNOTSUPP
    #define EOPNOTSUPP 95
    #endif
    #ifndef ENOTSUP
    #define ENOTSUP EOPNOTSUPP
    #endif
    #include <errno.h>
    #include <stdint.h>
    static inline int pyoomd_errno(void) { return errno; }
    static inline void pyoomd_set_errno(int e) { errno = e; }
    #define PYOOMD_I64MAX_U ((uint64_t)INT64_MAX)
    #endif
    """
    int ENODATA, ESTALE, EOPNOTSUPP, ENOTSUP, EMFILE, ENFILE, ENOSPC
    int errno "pyoomd_errno"()
    void set_errno "pyoomd_set_errno"(int e)
    uint64_t I64MAX_U "PYOOMD_I64MAX_U"
