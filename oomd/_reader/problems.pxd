# The problem log (problems.pyx): outcome counters and the queue of per-row read problems.

from libc.stdint cimport int64_t

from oomd._reader.defs cimport NERR, NKIND, PendingLog
from oomd._reader.table cimport RowTable


cdef class ProblemLog:
    cdef RowTable t
    cdef int64_t counts[NERR][NKIND]     # per outcome (ST_OK .. E_MISSING) and file kind
    cdef PendingLog* plog                # one entry per row and file kind (`logged` bits)
    cdef int nplog
    cdef int64_t plog_dropped            # entries that did not fit
    cdef int64_t n_fd_exhausted          # reads that failed for lack of fds

    cdef void note(self, int row, int kind, int err, int errnum) noexcept nogil

    cdef inline void ok(self, int kind) noexcept nogil:
        """Count a read of this file kind that went fine."""
        self.counts[0][kind] += 1
