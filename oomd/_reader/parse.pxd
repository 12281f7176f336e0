# The parsers of the files the reader reads, as inline nogil functions over byte ranges [s, e)
# (cimported by oomd._reader.load, oomd._reader.sysfiles and oomd._fastcg; no state, no I/O).
#
# They follow oomd 0.5.0's rules exactly (src/oomd/util/Fs.cpp): C++ number parsing (stoll,
# stoull, stof, scanf), std::getline lines and Util::split tokens, then each file's format. Each
# file parser returns 0 on success and -1 when the content is malformed.

from libc.errno cimport ERANGE
from libc.stdint cimport INT64_MAX, INT64_MIN, UINT64_MAX, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, strtof
from libc.string cimport memchr, memcmp, memcpy, strlen

from oomd._reader.defs cimport NSTAT
from oomd._reader.syscalls cimport I64MAX_U, errno, set_errno

cdef extern from *:
    """
    #ifndef PYOOMD_PARSE_H
    #define PYOOMD_PARSE_H
    static const double pyoomd_pow10[9] = {1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0,
                                           1000000.0, 10000000.0, 100000000.0};
    /* memory.stat keys kept, by column of memory_stat (S_* in defs.pxd) */
    static const char *const pyoomd_cstat[12] = {
        "anon", "file", "shmem", "pgscan", "active_file", "inactive_file", "active_anon",
        "inactive_anon", "workingset_refault_anon", "workingset_refault_file",
        "workingset_refault", "pgsteal"};
    static const size_t pyoomd_cstatlen[12] = {4, 4, 5, 6, 11, 13, 11, 13, 23, 23, 18, 7};
    #endif
    """
    const double* POW10 "pyoomd_pow10"
    const char** CSTAT "pyoomd_cstat"
    const size_t* CSTATLEN "pyoomd_cstatlen"


# ---------------------------------------------------------------------------------------------
# C++-compatible number parsing on byte ranges [s, e)

cdef inline bint is_space(char c) noexcept nogil:
    return c == b' ' or c == b'\t' or c == b'\n' or c == b'\v' or c == b'\f' or c == b'\r'


cdef inline bint is_digit(char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline int parse_stoll(const char* s, const char* e, int64_t* out) noexcept nogil:
    """std::stoll: leading whitespace, sign, decimal digits, trailing garbage ignored.
    0 ok, -1 no digits, -2 out of range."""
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef uint64_t lim
    cdef int d
    cdef bint over = False
    while s < e and is_space(s[0]):
        s += 1
    if s < e and (s[0] == b'+' or s[0] == b'-'):
        neg = s[0] == b'-'
        s += 1
    if s >= e or not is_digit(s[0]):
        return -1
    lim = I64MAX_U
    if neg:
        lim += 1
    while s < e and is_digit(s[0]):
        d = s[0] - 48
        if acc > (lim - d) // 10:
            over = True
        else:
            acc = acc * 10 + d
        s += 1
    if over:
        return -2
    out[0] = <int64_t>(0 - acc) if neg else <int64_t>acc
    return 0


cdef inline int parse_stoull(const char* s, const char* e, uint64_t* out) noexcept nogil:
    """std::stoull / strtoull base 10: a leading '-' negates modulo 2^64."""
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef int d
    while s < e and is_space(s[0]):
        s += 1
    if s < e and (s[0] == b'+' or s[0] == b'-'):
        neg = s[0] == b'-'
        s += 1
    if s >= e or not is_digit(s[0]):
        return -1
    while s < e and is_digit(s[0]):
        d = s[0] - 48
        if acc > (UINT64_MAX - d) // 10:
            return -2
        acc = acc * 10 + d
        s += 1
    out[0] = (0 - acc) if neg else acc
    return 0


cdef inline int scan_ulong(const char** ps, const char* e, uint64_t* out) noexcept nogil:
    """scanf %lu: whitespace, sign, digits; overflow saturates (glibc stores ULONG_MAX)."""
    cdef const char* s = ps[0]
    cdef bint neg = False
    cdef bint over = False
    cdef uint64_t acc = 0
    cdef int d
    while s < e and is_space(s[0]):
        s += 1
    if s < e and (s[0] == b'+' or s[0] == b'-'):
        neg = s[0] == b'-'
        s += 1
    if s >= e or not is_digit(s[0]):
        return -1
    while s < e and is_digit(s[0]):
        d = s[0] - 48
        if not over and acc > (UINT64_MAX - d) // 10:
            over = True
        elif not over:
            acc = acc * 10 + d
        s += 1
    ps[0] = s
    if over:
        out[0] = UINT64_MAX
    else:
        out[0] = (0 - acc) if neg else acc
    return 0


cdef inline int scan_long(const char** ps, const char* e, int64_t* out) noexcept nogil:
    """scanf %ld / %d: whitespace, sign, digits; overflow saturates like strtol."""
    cdef const char* s = ps[0]
    cdef bint neg = False
    cdef bint over = False
    cdef uint64_t acc = 0
    cdef uint64_t lim
    cdef int d
    while s < e and is_space(s[0]):
        s += 1
    if s < e and (s[0] == b'+' or s[0] == b'-'):
        neg = s[0] == b'-'
        s += 1
    if s >= e or not is_digit(s[0]):
        return -1
    lim = I64MAX_U
    if neg:
        lim += 1
    while s < e and is_digit(s[0]):
        d = s[0] - 48
        if not over and acc > (lim - d) // 10:
            over = True
        elif not over:
            acc = acc * 10 + d
        s += 1
    ps[0] = s
    if over:
        out[0] = INT64_MIN if neg else INT64_MAX
    else:
        out[0] = <int64_t>(0 - acc) if neg else <int64_t>acc
    return 0


cdef inline int parse_stof(const char* s, const char* e, float* out) noexcept nogil:
    """std::stof on the token [s, e). Fast path for plain decimals as the kernel prints them
    ("12.34"): n / 10^k in double is correctly rounded, and with at most 15 digits and 8
    decimals rounding that double to float gives the same float as strtof. Otherwise strtof on
    a NUL-terminated copy; ERANGE is an error, as in std::stof."""
    cdef const char* p = s
    cdef uint64_t n = 0
    cdef int nd = 0
    cdef int nf = 0
    cdef char tmp[128]
    cdef char* heap = NULL
    cdef char* t
    cdef char* end
    cdef size_t L
    cdef float v
    while p < e and is_digit(p[0]):
        n = n * 10 + <uint64_t>(p[0] - 48)
        nd += 1
        p += 1
        if nd > 15:
            break
    if nd > 0 and nd <= 15:
        if p < e and p[0] == b'.':
            p += 1
            while p < e and is_digit(p[0]) and nd <= 15 and nf <= 8:
                n = n * 10 + <uint64_t>(p[0] - 48)
                nd += 1
                nf += 1
                p += 1
        if nd <= 15 and nf <= 8 and (p >= e or not (is_digit(p[0]) or p[0] == b'e'
                                                    or p[0] == b'E' or p[0] == b'x'
                                                    or p[0] == b'X')):
            out[0] = <float>(<double>n / POW10[nf])
            return 0
    L = <size_t>(e - s)
    if L < sizeof(tmp):
        t = tmp
    else:
        heap = <char*>malloc(L + 1)
        if heap == NULL:
            return -1
        t = heap
    memcpy(t, s, L)
    t[L] = 0
    set_errno(0)
    v = strtof(t, &end)
    cdef int rc = 0
    if end == t:
        rc = -1
    elif errno() == ERANGE:
        rc = -2
    else:
        out[0] = v
    if heap != NULL:
        free(heap)
    return rc


# ---------------------------------------------------------------------------------------------
# Lines and tokens (std::getline / Util::split semantics)

cdef inline const char* line_end(const char* s, const char* e) noexcept nogil:
    cdef const char* p = <const char*>memchr(s, b'\n', <size_t>(e - s))
    return p if p != NULL else e


cdef inline const char* find_key_line(const char* s, const char* e, const char* key) noexcept nogil:
    """Start of the first line that begins with `key`, or NULL."""
    cdef size_t L = strlen(key)
    cdef const char* p = s
    while p + L <= e:
        if memcmp(p, key, L) == 0:
            return p
        p = <const char*>memchr(p, b'\n', <size_t>(e - p))
        if p == NULL:
            return NULL
        p += 1
    return NULL


cdef inline int count_lines(const char* s, const char* e) noexcept nogil:
    """Number of lines getline yields: a final newline does not start an empty line."""
    cdef int n = 0
    while s < e:
        s = line_end(s, e) + 1
        n += 1
    return n


cdef inline const char* cstr_end(const char* s, const char* e) noexcept nogil:
    """Where a C function reading line.c_str() stops: the first NUL, else e."""
    cdef const char* p = <const char*>memchr(s, 0, <size_t>(e - s))
    return p if p != NULL else e


cdef inline int split_tokens(const char* s, const char* e, char delim, const char** ts,
                             const char** te, int maxtok) noexcept nogil:
    """Util::split: pieces between `delim`, empty pieces dropped. Returns the number of
    pieces (may exceed maxtok; only the first maxtok are stored)."""
    cdef int n = 0
    cdef const char* p
    while s < e:
        p = <const char*>memchr(s, delim, <size_t>(e - s))
        if p == NULL:
            p = e
        if p > s:
            if n < maxtok:
                ts[n] = s
                te[n] = p
            n += 1
        s = p + 1
    return n


cdef inline bint tok_eq(const char* s, const char* e, const char* lit) noexcept nogil:
    cdef size_t L = strlen(lit)
    return <size_t>(e - s) == L and memcmp(s, lit, L) == 0


# ---------------------------------------------------------------------------------------------
# File-format parsers. Each returns 0 on success, -1 when the content is malformed.

cdef inline int parse_first_line_ll(const char* s, const char* e, int64_t* out) noexcept nogil:
    """memory.current, memory.swap.current: std::stoll of the first line."""
    if s >= e:
        return -1                    # empty file: oomd dereferences lines[0] of nothing
    cdef const char* le = line_end(s, e)
    return 0 if parse_stoll(s, cstr_end(s, le), out) == 0 else -1


cdef inline int parse_limit(const char* s, const char* e, int64_t* out) noexcept nogil:
    """memory.min/low/high/max, memory.swap.max: exactly one line, "max" or a number."""
    if count_lines(s, e) != 1:
        return -1
    cdef const char* le = line_end(s, e)
    if tok_eq(s, le, b"max"):
        out[0] = INT64_MAX
        return 0
    return 0 if parse_stoll(s, cstr_end(s, le), out) == 0 else -1


cdef inline int parse_high_tmp(const char* s, const char* e, int64_t* out) noexcept nogil:
    """memory.high.tmp: one line of exactly two space-separated tokens, "max"/number first."""
    cdef const char* ts[2]
    cdef const char* te[2]
    if count_lines(s, e) != 1:
        return -1
    cdef const char* le = line_end(s, e)
    if split_tokens(s, le, b' ', ts, te, 2) != 2:
        return -1
    if tok_eq(ts[0], te[0], b"max"):
        out[0] = INT64_MAX
        return 0
    return 0 if parse_stoll(ts[0], cstr_end(ts[0], te[0]), out) == 0 else -1


cdef inline int psi_kv(const char* s, const char* e, const char* key, const char** vs,
                       const char** ve) noexcept nogil:
    """Split a token on '=' (empty pieces dropped): the first piece must be `key` and a second
    piece must exist (oomd indexes [1] without checking: undefined, here malformed)."""
    cdef const char* ps[2]
    cdef const char* pe[2]
    cdef int n = split_tokens(s, e, b'=', ps, pe, 2)
    if n < 1 or not tok_eq(ps[0], pe[0], key) or n < 2:
        return -1
    vs[0] = ps[1]
    ve[0] = pe[1]
    return 0


cdef inline int psi_upstream_line(const char* s, const char* e, const char* label, float* avgs,
                                  uint64_t* total) noexcept nogil:
    """'<label> avg10=a avg60=b avg300=c total=t' (extra tokens ignored)."""
    cdef const char* ts[5]
    cdef const char* te[5]
    cdef const char* vs
    cdef const char* ve
    if split_tokens(s, e, b' ', ts, te, 5) < 5:
        return -1
    if not tok_eq(ts[0], te[0], label):
        return -1
    if psi_kv(ts[1], te[1], b"avg10", &vs, &ve) != 0 or parse_stof(vs, ve, &avgs[0]) != 0:
        return -1
    if psi_kv(ts[2], te[2], b"avg60", &vs, &ve) != 0 or parse_stof(vs, ve, &avgs[1]) != 0:
        return -1
    if psi_kv(ts[3], te[3], b"avg300", &vs, &ve) != 0 or parse_stof(vs, ve, &avgs[2]) != 0:
        return -1
    if psi_kv(ts[4], te[4], b"total", &vs, &ve) != 0:
        return -1
    if parse_stoull(vs, cstr_end(vs, ve), total) != 0:
        return -1
    return 0


cdef inline int psi_legacy_line(const char* s, const char* e, const char* label,
                                float* avgs) noexcept nogil:
    """'<label> a b c' of the experimental format (no total)."""
    cdef const char* ts[4]
    cdef const char* te[4]
    if split_tokens(s, e, b' ', ts, te, 4) < 4:
        return -1
    if not tok_eq(ts[0], te[0], label):
        return -1
    cdef int i
    for i in range(3):
        if parse_stof(ts[i + 1], te[i + 1], &avgs[i]) != 0:
            return -1
    return 0


cdef inline int scan_lit(const char** ps, const char* e, const char* lit) noexcept nogil:
    """A run of ordinary characters in a scanf format: each must match exactly."""
    cdef const char* s = ps[0]
    while lit[0] != 0:
        if s >= e or s[0] != lit[0]:
            return -1
        s += 1
        lit += 1
    ps[0] = s
    return 0


cdef inline void scan_ws(const char** ps, const char* e) noexcept nogil:
    while ps[0] < e and is_space(ps[0][0]):
        ps[0] += 1


cdef inline int psi_fast_num(const char** ps, const char* e, float* out) noexcept nogil:
    """'<digits>.<two digits>' exactly as the kernel prints an average."""
    cdef const char* p = ps[0]
    cdef uint64_t n = 0
    cdef int nd = 0
    while p < e and is_digit(p[0]) and nd < 10:
        n = n * 10 + <uint64_t>(p[0] - 48)
        p += 1
        nd += 1
    if nd == 0 or p + 3 > e or p[0] != b'.' or not is_digit(p[1]) or not is_digit(p[2]):
        return -1
    n = n * 100 + <uint64_t>((p[1] - 48) * 10 + (p[2] - 48))
    out[0] = <float>(<double>n / 100.0)
    ps[0] = p + 3
    return 0


cdef inline int psi_fast_line(const char** ps, const char* e, const char* label, float* avgs,
                              uint64_t* total) noexcept nogil:
    cdef const char* p = ps[0]
    cdef uint64_t t = 0
    cdef int nd = 0
    if scan_lit(&p, e, label) != 0 or scan_lit(&p, e, b" avg10=") != 0 \
            or psi_fast_num(&p, e, &avgs[0]) != 0 or scan_lit(&p, e, b" avg60=") != 0 \
            or psi_fast_num(&p, e, &avgs[1]) != 0 or scan_lit(&p, e, b" avg300=") != 0 \
            or psi_fast_num(&p, e, &avgs[2]) != 0 or scan_lit(&p, e, b" total=") != 0:
        return -1
    while p < e and is_digit(p[0]) and nd < 19:
        t = t * 10 + <uint64_t>(p[0] - 48)
        p += 1
        nd += 1
    if nd == 0 or p >= e or p[0] != b'\n':
        return -1
    total[0] = t
    ps[0] = p + 1
    return 0


cdef inline int parse_psi(const char* s, const char* e, float* some, float* full, uint64_t* some_t,
                          uint64_t* full_t) noexcept nogil:
    """A PSI file. Returns a bitmask: 1 some avgs, 2 full avgs, 4 some total, 8 full total;
    -1 when the format is not recognised at all. The kernel's exact output takes a fast path
    that gives the same values as the general parser below."""
    cdef const char* q = s
    if psi_fast_line(&q, e, b"some", some, some_t) == 0 and \
            psi_fast_line(&q, e, b"full", full, full_t) == 0 and q == e:
        return 1 | 2 | 4 | 8
    cdef const char* l0 = s
    cdef const char* l0e
    cdef const char* l1
    cdef const char* l1e
    cdef const char* l2
    cdef const char* l2e
    cdef int n = count_lines(s, e)
    cdef int got = 0
    if n == 0:
        return -1
    l0e = line_end(l0, e)
    if n >= 2 and (l0e - l0) >= 4 and memcmp(l0, b"some", 4) == 0:
        l1 = l0e + 1
        l1e = line_end(l1, e)
        if psi_upstream_line(l0, l0e, b"some", some, some_t) == 0:
            got |= 1 | 4
        if psi_upstream_line(l1, l1e, b"full", full, full_t) == 0:
            got |= 2 | 8
        return got
    if n >= 3 and (l0e - l0) >= 4 and memcmp(l0, b"aggr", 4) == 0:
        l1 = l0e + 1
        l1e = line_end(l1, e)
        l2 = l1e + 1
        l2e = line_end(l2, e)
        if psi_legacy_line(l1, l1e, b"some", some) == 0:
            got |= 1
        if psi_legacy_line(l2, l2e, b"full", full) == 0:
            got |= 2
        return got
    return -1


cdef inline int memstat_line(const char* s, const char* e, const char** ks, const char** ke,
                             uint64_t* val) noexcept nogil:
    """sscanf(line, "%255s %lu") == 2."""
    e = cstr_end(s, e)
    while s < e and is_space(s[0]):
        s += 1
    if s >= e:
        return -1
    ks[0] = s
    while s < e and not is_space(s[0]) and s - ks[0] < 255:
        s += 1
    ke[0] = s
    return scan_ulong(&s, e, val)


cdef inline uint32_t parse_memstat(const char* s, const char* e, int64_t* vals) noexcept nogil:
    """memory.stat: the keys of CSTAT found (bitmask), values into vals[NSTAT]."""
    cdef uint32_t have = 0
    cdef const char* le
    cdef const char* ks
    cdef const char* ke
    cdef uint64_t v
    cdef size_t L
    cdef int i
    while s < e:
        le = line_end(s, e)
        if memstat_line(s, le, &ks, &ke, &v) == 0:
            L = <size_t>(ke - ks)
            for i in range(NSTAT):
                if L == CSTATLEN[i] and memcmp(ks, CSTAT[i], L) == 0:
                    vals[i] = <int64_t>v
                    have |= 1u << i
                    break
        s = le + 1
    return have


cdef inline int memstat_lookup(const char* s, const char* e, const char* key,
                               int64_t* out) noexcept nogil:
    """Value of one key of a memory.stat-like file; 0 found, -1 absent."""
    cdef const char* le
    cdef const char* ks
    cdef const char* ke
    cdef uint64_t v
    cdef int found = -1
    while s < e:
        le = line_end(s, e)
        if memstat_line(s, le, &ks, &ke, &v) == 0 and tok_eq(ks, ke, key):
            out[0] = <int64_t>v
            found = 0
        s = le + 1
    return found


cdef inline int iostat_line(const char* s, const char* e, int* major, int* minor,
                            int64_t* f) noexcept nogil:
    """sscanf("%d:%d rbytes=%ld wbytes=%ld rios=%ld wios=%ld dbytes=%ld dios=%ld") == 8;
    f = [rbytes, wbytes, rios, wios, dbytes, dios]."""
    cdef int64_t a
    cdef int i
    cdef const char* names[6]
    names[0] = b"rbytes="
    names[1] = b"wbytes="
    names[2] = b"rios="
    names[3] = b"wios="
    names[4] = b"dbytes="
    names[5] = b"dios="
    e = cstr_end(s, e)
    if scan_long(&s, e, &a) != 0:
        return -1
    major[0] = <int>a
    if scan_lit(&s, e, b":") != 0 or scan_long(&s, e, &a) != 0:
        return -1
    minor[0] = <int>a
    for i in range(6):
        scan_ws(&s, e)
        if scan_lit(&s, e, names[i]) != 0 or scan_long(&s, e, &f[i]) != 0:
            return -1
    return 0


cdef inline int parse_events(const char* s, const char* e, uint8_t* out) noexcept nogil:
    """cgroup.events: the first line that splits into exactly `populated` + value decides."""
    cdef const char* ts[2]
    cdef const char* te[2]
    cdef const char* le
    while s < e:
        le = line_end(s, e)
        if split_tokens(s, le, b' ', ts, te, 2) == 2 and tok_eq(ts[0], te[0], b"populated"):
            if tok_eq(ts[1], te[1], b"1"):
                out[0] = 1
                return 0
            if tok_eq(ts[1], te[1], b"0"):
                out[0] = 0
                return 0
            return -1
        s = le + 1
    return -1


cdef inline int meminfo_line(const char* s, const char* e, const char** ks, const char** ke,
                             uint64_t* val) noexcept nogil:
    """sscanf(line, "%255[^:]:%*[ \\t]%lu%*s") == 2."""
    e = cstr_end(s, e)
    ks[0] = s
    while s < e and s[0] != b':' and s - ks[0] < 255:
        s += 1
    if s == ks[0]:
        return -1
    ke[0] = s
    if s >= e or s[0] != b':':
        return -1
    s += 1
    if s >= e or not (s[0] == b' ' or s[0] == b'\t'):
        return -1
    while s < e and (s[0] == b' ' or s[0] == b'\t'):
        s += 1
    return scan_ulong(&s, e, val)


cdef inline int vmstat_line(const char* s, const char* e, const char** ks, const char** ke,
                            int64_t* val) noexcept nogil:
    """'key value': key up to the first space, value up to the next (std::stoll)."""
    cdef const char* sp = <const char*>memchr(s, b' ', <size_t>(e - s))
    cdef const char* ve
    if sp == NULL:
        return -1
    ks[0] = s
    ke[0] = sp
    ve = <const char*>memchr(sp + 1, b' ', <size_t>(e - sp - 1))
    if ve == NULL:
        ve = e
    return 0 if parse_stoll(sp + 1, cstr_end(sp + 1, ve), val) == 0 else -1
