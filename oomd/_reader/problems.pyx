# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The problem log of the reader: every read's outcome is counted per file kind, and a problem
(malformed, unreadable, vanished) raises the row's status for the tick and queues one entry per
row and file for the Python side to log (``drain``). Running out of fds is process-wide: it is
counted, not queued per row. Nothing here raises or blocks the tick.
"""

from libc.stdlib cimport free, malloc

from oomd._reader.defs cimport *
from oomd._reader.syscalls cimport EMFILE, ENFILE

cdef int QUEUE = 256                     # entries kept between two drains


cdef class ProblemLog:
    """Counters and the pending queue."""

    def __cinit__(self):
        self.plog = NULL

    def __init__(self, RowTable t):
        self.t = t
        self.plog = <PendingLog*>malloc(QUEUE * sizeof(PendingLog))
        if self.plog == NULL:
            raise MemoryError()
        self.nplog = 0
        self.plog_dropped = 0
        self.n_fd_exhausted = 0
        for i in range(NERR):
            for j in range(NKIND):
                self.counts[i][j] = 0

    def __dealloc__(self):
        free(self.plog)

    cdef void note(self, int row, int kind, int err, int errnum) noexcept nogil:
        """Count an outcome, raise the row's status, queue one log line per row+file."""
        self.counts[err][kind] += 1
        if err <= ST_VANISHED and err > self.t.status[row]:
            self.t.status[row] = err
        if err == E_MISSING:
            return
        if errnum == EMFILE or errnum == ENFILE:
            self.n_fd_exhausted += 1     # process-wide: one log line per tick, not per row
            return
        if (self.t.logged[row] >> kind) & 1:
            return
        self.t.logged[row] |= 1u << kind
        if self.nplog < QUEUE:
            self.plog[self.nplog].row = row
            self.plog[self.nplog].kind = kind
            self.plog[self.nplog].err = err
            self.plog[self.nplog].errnum = errnum
            self.nplog += 1
        else:
            self.plog_dropped += 1

    @property
    def pending(self):
        return bool(self.nplog or self.plog_dropped or self.n_fd_exhausted)

    def drain(self):
        """[(row, file kind, error kind, errno)] queued since the last call, how many were
        dropped because the queue was full, and how many reads failed for lack of fds."""
        out = [(self.plog[i].row, self.plog[i].kind, self.plog[i].err, self.plog[i].errnum)
               for i in range(self.nplog)]
        dropped = self.plog_dropped
        exhausted = self.n_fd_exhausted
        self.nplog = 0
        self.plog_dropped = 0
        self.n_fd_exhausted = 0
        return out, dropped, exhausted

    def by_outcome(self, file_names, error_names):
        """{error name: {file name: count}} for every problem kind, and the number of reads
        that went fine."""
        out = {}
        for e in range(1, NERR):
            out[error_names[e]] = {file_names[k]: self.counts[e][k]
                                   for k in range(NKIND) if self.counts[e][k]}
        return out, sum(self.counts[0][k] for k in range(NKIND))
