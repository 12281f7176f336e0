# The per-tick cgroupfs reader's face (see _fastcg.pyx): the Reader holds the parts of
# oomd/_reader. Constants and structs are in oomd/_reader/defs.pxd.

from libc.stdint cimport int32_t

from oomd._reader.defs cimport *
from oomd._reader.listing cimport Lister
from oomd._reader.load cimport Loader
from oomd._reader.problems cimport ProblemLog
from oomd._reader.sysfiles cimport SystemFiles
from oomd._reader.table cimport RowTable
from oomd._reader.watch cimport Watcher


cdef class Reader:
    cdef readonly bytes cgroup_fs
    cdef RowTable t                  # rows, columns, fds and the fd budget
    cdef Watcher watch               # inotify: listings to redo, kept values to drop
    cdef Loader loader               # files into columns: the per-tick hot path
    cdef Lister lister               # directory listings and their generations
    cdef ProblemLog problems         # outcome counters, the queue of read problems
    cdef SystemFiles sysf            # /proc files (meminfo, vmstat, swaps, root PSI)
    cdef public double absent_retry  # seconds between safety retries of files known absent
    cdef double _absent_cleared      # time.monotonic() of the last one

    cdef int _rawprot(self, const int32_t* rows, Py_ssize_t n) except -1
