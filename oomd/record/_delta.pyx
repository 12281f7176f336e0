# cython: language_level=3
"""The tick encoder's inner loop (oomd.record.ticks.TickEncoder): which rows of a column changed
since the previous frame, byte for byte, and their values, in one pass of C per column.

``delta(cur, prev, n)`` compares the first ``n`` rows of ``cur`` with those of ``prev`` (same
dtype and row shape, both C-contiguous), copies the changed rows into ``prev`` and returns
``(count, mask, values)``: ``mask`` is the row bitmap as ``numpy.packbits`` writes it (most
significant bit first, ``(n + 7) // 8`` bytes) and ``values`` the changed rows' bytes in row
order (when every row changed, a byte view of ``cur`` itself: use it before ``cur`` changes);
both are ``None`` when nothing changed. The comparison is on bytes: NaN, -0.0 and padding compare as what they are.

In numpy the same takes six calls and as many temporaries per column (compare, any, count,
packbits, a gather, a scatter), which at a thousand rows cost more than the tick's reads of
the values themselves; here an unchanged column is one ``memcmp``.
"""

from libc.string cimport memcmp, memcpy, memset
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

cimport numpy as cnp
import numpy as np

cnp.import_array()


cdef inline bint _row_differs(const uint8_t* a, const uint8_t* b, Py_ssize_t w) noexcept nogil:
    if w == 8:
        return (<const uint64_t*>a)[0] != (<const uint64_t*>b)[0]
    if w == 4:
        return (<const uint32_t*>a)[0] != (<const uint32_t*>b)[0]
    if w == 1:
        return a[0] != b[0]
    return memcmp(a, b, w) != 0


def delta(cnp.ndarray cur, cnp.ndarray prev, Py_ssize_t n):
    """See the module's docstring. Raises ValueError on arrays that do not fit."""
    return _delta(cur, prev, n)


cdef tuple _delta(cnp.ndarray cur, cnp.ndarray prev, Py_ssize_t n):
    if n <= 0:
        return 0, None, None
    if not cnp.PyArray_IS_C_CONTIGUOUS(cur) or not cnp.PyArray_IS_C_CONTIGUOUS(prev):
        raise ValueError("delta: arrays must be C-contiguous")
    cdef int d, nd = cnp.PyArray_NDIM(cur)
    if (cnp.PyArray_ITEMSIZE(cur) != cnp.PyArray_ITEMSIZE(prev)
            or nd != cnp.PyArray_NDIM(prev) or nd < 1):
        raise ValueError("delta: arrays differ in row layout")
    cdef cnp.npy_intp* cd = cnp.PyArray_DIMS(cur)
    cdef cnp.npy_intp* pd = cnp.PyArray_DIMS(prev)
    if cd[0] < n or pd[0] < n:
        raise ValueError("delta: fewer rows than n")
    cdef Py_ssize_t w = cnp.PyArray_ITEMSIZE(cur)
    for d in range(1, nd):
        if cd[d] != pd[d]:
            raise ValueError("delta: arrays differ in row layout")
        w *= cd[d]
    cdef const uint8_t* c = <const uint8_t*>cnp.PyArray_DATA(cur)
    cdef uint8_t* p = <uint8_t*>cnp.PyArray_DATA(prev)
    if memcmp(c, p, n * w) == 0:
        return 0, None, None
    cdef Py_ssize_t nbytes = (n + 7) >> 3, i, count = 0, k = 0
    mask = PyBytes_FromStringAndSize(NULL, nbytes)
    cdef uint8_t* m = <uint8_t*>PyBytes_AS_STRING(mask)
    memset(m, 0, nbytes)
    with nogil:
        for i in range(n):
            if _row_differs(c + i * w, p + i * w, w):
                m[i >> 3] |= <uint8_t>(0x80 >> (i & 7))
                count += 1
    if count == n:
        # every row: the column itself (a key frame at 10k cgroups is megabytes; the caller
        # compresses it before the column changes again), not a copy
        memcpy(p, c, n * w)
        return count, mask, memoryview(cur).cast("B")[:n * w]
    values = PyBytes_FromStringAndSize(NULL, count * w)
    cdef uint8_t* v = <uint8_t*>PyBytes_AS_STRING(values)
    with nogil:
        for i in range(n):
            if m[i >> 3] & (0x80 >> (i & 7)):
                memcpy(v + k * w, c + i * w, w)
                memcpy(p + i * w, c + i * w, w)
                k += 1
    return count, mask, values


cdef class _Column:
    """What ``ColumnDeltas`` keeps of one column: its layout, the start of its header entry,
    and the previous frame's values."""
    cdef object dtype
    cdef int ndim
    cdef Py_ssize_t inner        # elements per row
    cdef str lead                # '["name","<f4",[3],'
    cdef object prev             # ndarray, C-contiguous, rows first


cdef class ColumnDeltas:
    """The previous frame's columns, and the column part of the next frame: ``encode(columns,
    n, skip)`` runs ``delta`` over every column of ``columns`` (name -> array, rows first) against
    the copy kept from the previous call, and returns ``(entries, blobs)``: the header entry of
    each column as JSON text, ``["name","<f4",[3],count,mask bytes,value bytes]``, and the
    mask and value buffers of the changed ones in order. Names in ``skip`` are written as
    unchanged without a comparison (the caller knows). ``reset()``: the next call compares
    against zeros (a key frame). Column names and dtypes are ASCII: the entries need no
    escaping."""

    cdef dict _cols      # name -> _Column

    def __cinit__(self):
        self._cols = {}

    def reset(self):
        cdef _Column c
        for c in self._cols.values():
            c.prev = None

    def encode(self, dict columns, Py_ssize_t n, skip=()):
        cdef list entries = []
        cdef list blobs = []
        cdef _Column c
        cdef cnp.ndarray a
        cdef Py_ssize_t inner, rows
        cdef int d, nd
        for name, arr in columns.items():
            a = <cnp.ndarray?>arr
            nd = cnp.PyArray_NDIM(a)
            inner = 1
            for d in range(1, nd):
                inner *= cnp.PyArray_DIMS(a)[d]
            c = <_Column>self._cols.get(name)
            if (c is None or c.ndim != nd or c.inner != inner
                    or (c.dtype is not arr.dtype and c.dtype != arr.dtype)):
                c = _Column()
                c.dtype = arr.dtype
                c.ndim = nd
                c.inner = inner
                tail = arr.shape[1:]
                c.lead = '["%s","%s",[%s],' % (name, c.dtype.str, ",".join([str(x) for x in tail]))
                c.prev = None
                self._cols[name] = c
            if name in skip:
                entries.append(c.lead + "0,0,0]")
                continue
            if c.prev is None:
                c.prev = np.zeros((max(n, 1),) + arr.shape[1:], dtype=c.dtype)
            else:
                rows = cnp.PyArray_DIMS(<cnp.ndarray>c.prev)[0]
                if rows < n:
                    grown = np.zeros((max(n, 2 * rows),) + arr.shape[1:], dtype=c.dtype)
                    grown[:rows] = c.prev
                    c.prev = grown
            if not cnp.PyArray_IS_C_CONTIGUOUS(a):
                arr = np.ascontiguousarray(arr)
            count, mask, values = _delta(<cnp.ndarray>arr, <cnp.ndarray>c.prev, n)
            if not count:
                entries.append(c.lead + "0,0,0]")
                continue
            entries.append("%s%d,%d,%d]" % (c.lead, count, len(mask), len(values)))
            blobs.append(mask)
            blobs.append(values)
        return entries, blobs
