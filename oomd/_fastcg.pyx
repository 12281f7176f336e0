# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The hot path of pyoomd: cgroupfs reading and parsing in C.

This first piece holds the PSI line parser; the per-tick reader grows here.
"""

from libc.stdlib cimport strtof


cdef int parse_psi_avgs(const char* s, float* out) noexcept nogil:
    """Parse 'some avg10=a avg60=b avg300=c total=t' into out[0..2]. 0 on success."""
    cdef int i = 0
    cdef char* end
    while s[0] != 0 and i < 3:
        if s[0] == b'=':
            out[i] = strtof(s + 1, &end)
            if end == s + 1:
                return -1
            i += 1
            s = end
        else:
            s += 1
    return 0 if i == 3 else -1


def psi_line_avgs(bytes line):
    """(avg10, avg60, avg300) of one PSI line as float32-rounded floats, or None."""
    cdef float out[3]
    if parse_psi_avgs(line, out) != 0:
        return None
    return (out[0], out[1], out[2])
