# The derived-metric kernels (derived.pyx): plain nogil functions over the row table's columns.

from libc.stdint cimport int32_t, int64_t

from oomd._reader.defs cimport Columns


cdef void start_tick(Columns* c, int capacity) noexcept nogil
cdef void average(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil
cdef void iocost(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil
cdef Py_ssize_t pgscan(Columns* c, const int32_t* rows, Py_ssize_t n,
                       int32_t* missing) noexcept nogil
cdef void rawprot(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil
cdef void protection(Columns* c, const int32_t* order, Py_ssize_t n, const int32_t* sib_rows,
                     const int32_t* sib_parent, Py_ssize_t ns, int64_t* sums) noexcept nogil
cdef void eswap(Columns* c, const int32_t* order, Py_ssize_t n, int64_t swap_total,
                int64_t swap_used) noexcept nogil
