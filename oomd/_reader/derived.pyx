# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The derived metrics (reference §5.3-§5.5) as plain nogil kernels over the row table's
columns (a ``Columns`` of raw pointers): the decaying average, io cost and its rate, the pg
scan rate, raw and hierarchical memory protection, effective swap; and, at the tick boundary,
the archive of last tick's temporal values.

A kernel reads no file. The Reader first loads what a kernel needs (``Loader.load_rows``)
and hands it any system value (the root's swap totals); a kernel computes each row once a
tick (its ``D_*`` bit of ``loaded``) and marks each value it sets in ``valid``.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from oomd._reader.defs cimport *


cdef inline uint64_t kept_valid_bits(uint32_t k) noexcept nogil:
    """The `valid` bits of the values behind the kept kinds `k` (CONFIG_KINDS bits)."""
    cdef uint64_t v = 0
    if (k >> K_MIN) & 1:
        v |= (<uint64_t>1) << V_MIN
    if (k >> K_LOW) & 1:
        v |= (<uint64_t>1) << V_LOW
    if (k >> K_HIGH) & 1:
        v |= (<uint64_t>1) << V_HIGH
    if (k >> K_HIGH_TMP) & 1:
        v |= (<uint64_t>1) << V_HIGH_TMP
    if (k >> K_MAX) & 1:
        v |= (<uint64_t>1) << V_MAX
    if (k >> K_SWAP_MAX) & 1:
        v |= (<uint64_t>1) << V_SWAP_MAX
    if (k >> K_OOM_GROUP) & 1:
        v |= (<uint64_t>1) << V_OOM_GROUP
    if (k >> K_XATTR) & 1:
        v |= (<uint64_t>1) << V_KILL_PREF
    return v


cdef void start_tick(Columns* c, int capacity) noexcept nogil:
    """Archive the temporal values computed last tick (reference §5.4): a rate needs last
    tick's cumulative value, the average last tick's average. Then every live row starts the
    tick with nothing loaded or valid but its kept configuration values, and status ok."""
    cdef int r
    cdef uint64_t v
    cdef uint32_t ld
    cdef uint8_t a
    for r in range(capacity):
        if not c.live[r]:
            continue
        v = c.valid[r]
        ld = c.loaded[r]
        a = 0
        if (ld >> D_AVG) & 1 and (v >> V_AVG) & 1:
            a |= A_AVG
            c.arch_avg[r] = c.avg[r]
        if (ld >> D_IOCOST) & 1 and (v >> V_IOCOST) & 1:
            a |= A_IOCOST
            c.arch_iocost[r] = c.iocost[r]
        if (ld >> D_PGSCAN) & 1 and (v >> V_PGSCAN) & 1:
            a |= A_PGSCAN
            c.arch_pgscan[r] = c.pgscan[r]
        c.archived[r] = a
        ld = c.keep[r]
        c.valid[r] = (v & kept_valid_bits(ld)) if ld else 0
        c.loaded[r] = ld
        c.status[r] = ST_OK
        c.alive_checked[r] = 0


# ---------------------------------------------------------------------------------------------

cdef void average(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil:
    """average_usage = int64(prev × 3/4 + current / 4), prev = last tick's value or 0."""
    cdef Py_ssize_t i
    cdef int r
    for i in range(n):
        r = rows[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_AVG) & 1:
            continue
        c.loaded[r] |= 1u << D_AVG
        if (c.valid[r] >> V_CURRENT) & 1:
            c.avg[r] = <int64_t>(
                <double>(c.arch_avg[r] if c.archived[r] & A_AVG else 0) * 0.75
                + <double>c.current[r] / 4.0)
            c.valid[r] |= (<uint64_t>1) << V_AVG


# ---------------------------------------------------------------------------------------------

cdef void iocost(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil:
    """io_cost_cumulative (computed with io.stat) and io_cost_rate (0.0 without archive)."""
    cdef Py_ssize_t i
    cdef int r
    for i in range(n):
        r = rows[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_IOCOST) & 1:
            continue
        c.loaded[r] |= 1u << D_IOCOST
        if (c.valid[r] >> V_IO_STAT) & 1:
            c.valid[r] |= ((<uint64_t>1) << V_IOCOST) | ((<uint64_t>1) << V_IORATE)
            if c.archived[r] & A_IOCOST:
                c.iorate[r] = c.iocost[r] - c.arch_iocost[r]
            else:
                c.iorate[r] = 0.0


# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t pgscan(Columns* c, const int32_t* rows, Py_ssize_t n,
                       int32_t* missing) noexcept nogil:
    """pg_scan_cumulative (memory.stat pgscan) and pg_scan_rate (needs last tick's). The rows
    whose memory.stat has no pgscan (oomd aborts: "Bad memory.stat format: missing pgscan
    entry") go to `missing` (room for n), in order, for the caller to note as malformed;
    returns how many."""
    cdef Py_ssize_t i, nmissing = 0
    cdef int r
    for i in range(n):
        r = rows[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_PGSCAN) & 1:
            continue
        c.loaded[r] |= 1u << D_PGSCAN
        if not (c.valid[r] >> V_MEM_STAT) & 1:
            continue
        if not (c.valid[r] >> (V_STAT0 + S_PGSCAN)) & 1:
            missing[nmissing] = r
            nmissing += 1
            continue
        c.pgscan[r] = c.mstat[r * NSTAT + S_PGSCAN]
        c.valid[r] |= (<uint64_t>1) << V_PGSCAN
        if c.archived[r] & A_PGSCAN:
            c.pgrate[r] = c.pgscan[r] - c.arch_pgscan[r]
            c.valid[r] |= (<uint64_t>1) << V_PGRATE
    return nmissing


# ---------------------------------------------------------------------------------------------

cdef void rawprot(Columns* c, const int32_t* rows, Py_ssize_t n) noexcept nogil:
    """R(c) = min(current, max(memory.min, memory.low)); invalid unless all three are."""
    cdef Py_ssize_t i
    cdef int r
    cdef uint64_t need = ((<uint64_t>1) << V_CURRENT) | ((<uint64_t>1) << V_MIN) | \
        ((<uint64_t>1) << V_LOW)
    cdef int64_t m
    for i in range(n):
        r = rows[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_RAWPROT) & 1:
            continue
        c.loaded[r] |= 1u << D_RAWPROT
        if (c.valid[r] & need) == need:
            m = c.mem_min[r] if c.mem_min[r] > c.mem_low[r] else c.mem_low[r]
            c.rawprot[r] = c.current[r] if c.current[r] < m else m
            c.valid[r] |= (<uint64_t>1) << V_RAWPROT


cdef void protection(Columns* c, const int32_t* order, Py_ssize_t n, const int32_t* sib_rows,
                     const int32_t* sib_parent, Py_ssize_t ns, int64_t* sums) noexcept nogil:
    """memory_protection for `order` (rows sorted by depth, every row's parent before it when
    the parent is needed), from R of every row and of every sibling (sib_rows, with its parent
    in sib_parent): depth 0 is its current, depth 1 its R, below R × min(1, P(parent) / sum of
    R over the siblings). O(N) (reference §5.3). sums: zeroed scratch, one per row (capacity).
    R must be computed for order and sib_rows, and current loaded for the root."""
    cdef Py_ssize_t i
    cdef int r, p
    cdef double ratio
    cdef int64_t s
    for i in range(ns):
        r = sib_rows[i]
        if (c.valid[r] >> V_RAWPROT) & 1:
            sums[sib_parent[i]] += c.rawprot[r]
    for i in range(n):
        r = order[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_PROT) & 1:
            continue
        c.loaded[r] |= 1u << D_PROT
        if c.depth[r] == 0:
            if (c.valid[r] >> V_CURRENT) & 1:
                c.prot[r] = c.current[r]
                c.valid[r] |= (<uint64_t>1) << V_PROT
        elif c.depth[r] == 1:
            if (c.valid[r] >> V_RAWPROT) & 1:
                c.prot[r] = c.rawprot[r]
                c.valid[r] |= (<uint64_t>1) << V_PROT
        else:
            p = c.parent[r]
            if p < 0:
                continue
            s = sums[p]
            if s == 0:
                c.prot[r] = 0
                c.valid[r] |= (<uint64_t>1) << V_PROT
            elif (c.valid[r] >> V_RAWPROT) & 1 and (c.valid[p] >> V_PROT) & 1:
                ratio = 1.0 * <double>c.prot[p] / <double>s
                if ratio > 1.0:
                    ratio = 1.0
                c.prot[r] = <int64_t>(<double>c.rawprot[r] * ratio)
                c.valid[r] |= (<uint64_t>1) << V_PROT


# ---------------------------------------------------------------------------------------------

cdef void eswap(Columns* c, const int32_t* order, Py_ssize_t n, int64_t swap_total,
                int64_t swap_used) noexcept nogil:
    """effective_swap_max/free/util_pct for `order` (ancestors first, root included when
    needed), reference §5.5: the root's from /proc/swaps (swap_total, swap_used), a child's
    the tighter of its parent's and its own memory.swap.max/current."""
    cdef Py_ssize_t i
    cdef int r, p
    cdef bint vmax, vcur
    cdef int64_t local
    cdef double lu
    for i in range(n):
        r = order[i]
        if r < 0 or not c.live[r] or (c.loaded[r] >> D_ESWAP) & 1:
            continue
        c.loaded[r] |= 1u << D_ESWAP
        if c.depth[r] == 0:
            c.eswap_max[r] = swap_total
            c.eswap_free[r] = swap_total - swap_used
            c.eswap_util[r] = 0.0 if swap_total == 0 else \
                <double>swap_used / <double>swap_total
            c.valid[r] |= ((<uint64_t>1) << V_ESWAP_MAX) | \
                ((<uint64_t>1) << V_ESWAP_FREE) | ((<uint64_t>1) << V_ESWAP_UTIL)
            continue
        p = c.parent[r]
        vmax = (c.valid[r] >> V_SWAP_MAX) & 1
        vcur = (c.valid[r] >> V_SWAP_CUR) & 1
        if p < 0:
            continue
        if vmax and (c.valid[p] >> V_ESWAP_MAX) & 1:
            c.eswap_max[r] = c.eswap_max[p] if c.eswap_max[p] < c.swap_max[r] else c.swap_max[r]
            c.valid[r] |= (<uint64_t>1) << V_ESWAP_MAX
        if vmax and vcur and (c.valid[p] >> V_ESWAP_FREE) & 1:
            local = c.swap_max[r] - c.swap_cur[r]
            c.eswap_free[r] = c.eswap_free[p] if c.eswap_free[p] < local else local
            c.valid[r] |= (<uint64_t>1) << V_ESWAP_FREE
        if vmax and c.swap_max[r] == 0:
            c.eswap_util[r] = 0.0
            c.valid[r] |= (<uint64_t>1) << V_ESWAP_UTIL
        elif vmax and vcur and (c.valid[p] >> V_ESWAP_UTIL) & 1:
            lu = <double>c.swap_cur[r] / <double>c.swap_max[r]
            c.eswap_util[r] = c.eswap_util[p] if c.eswap_util[p] > lu else lu
            c.valid[r] |= (<uint64_t>1) << V_ESWAP_UTIL
