# Directory listings (listing.pyx).

from libc.stdint cimport int32_t, int64_t

from oomd._reader.problems cimport ProblemLog
from oomd._reader.table cimport RowTable
from oomd._reader.watch cimport Watcher


cdef class Lister:
    cdef RowTable t
    cdef Watcher watch
    cdef ProblemLog problems             # a listing that fails for lack of fds is counted there
    cdef char* dbuf                      # getdents64 output of the row being listed
    cdef size_t dbufcap
    cdef int64_t n_listings

    cdef Py_ssize_t scan(self, const int32_t* rows, Py_ssize_t n, int32_t* changed) except -1
    cdef Py_ssize_t unlisted(self, int32_t* out) noexcept nogil
