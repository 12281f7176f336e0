# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Directory listings: each listed row's last ``getdents64`` output is kept (RowTable.lst), and
a row's listing generation (``gen``) goes up when a new listing differs byte for byte, so the
Python side re-resolves patterns and re-reads children only then. A watched directory is listed
again only after inotify marked it dirty; others are listed each tick they are asked for.
"""

from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset, strlen

from oomd._reader.defs cimport *
from oomd._reader.problems cimport ProblemLog
from oomd._reader.syscalls cimport EMFILE, ENFILE, SEEK_SET, c_getdents64, c_lseek


cdef void zero_dirent_padding(char* p, ssize_t n) noexcept nogil:
    """getdents64 writes each name and its NUL but not the record's alignment padding: clear
    it so that two listings of an unchanged directory compare equal byte for byte."""
    cdef char* e = p + n
    cdef unsigned short reclen
    cdef size_t L
    while p + 19 < e:
        memcpy(&reclen, p + 16, 2)
        if reclen < 20 or p + reclen > e:
            return
        L = strlen(p + 19)
        if 19 + L + 1 < reclen:
            memset(p + 19 + L + 1, 0, reclen - (19 + L + 1))
        p += reclen


cdef class Lister:
    """Lists rows' directories (and keeps the listings in the row table)."""

    def __cinit__(self):
        self.dbuf = NULL

    def __init__(self, RowTable t, Watcher watch, ProblemLog problems):
        self.t = t
        self.watch = watch
        self.problems = problems
        self.n_listings = 0
        self.dbufcap = 65536
        self.dbuf = <char*>malloc(self.dbufcap)
        if self.dbuf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.dbuf)

    cdef Py_ssize_t scan(self, const int32_t* rows, Py_ssize_t n, int32_t* changed) except -1:
        """List each row's directory (once per tick) and compare with the previous listing.
        The rows whose listing changed (their `gen` was bumped) go to `changed` (room for
        n); returns how many."""
        cdef Py_ssize_t i, nch = 0
        cdef int r, fd
        cdef ssize_t got
        cdef size_t tot
        cdef char* nb
        if self.watch.ino_fd >= 0:
            # watch a directory before its first listing, so no change can fall between
            for i in range(n):
                r = rows[i]
                if self.t.live[r] and self.t.gen[r] == 0 and self.t.wd[r] < 0:
                    self.watch.add(r, WATCH_DIR)
        with nogil:
            for i in range(n):
                r = rows[i]
                if self.t.scanned[r] == self.t.tick or not self.t.live[r]:
                    continue
                self.t.scanned[r] = self.t.tick
                if self.t.wd[r] >= 0 and not self.t.dirty[r] and self.t.gen[r] != 0:
                    continue             # watched and no event since the last listing
                fd = self.t.dfd(r)
                if fd < 0 and (self.t.dfd_err == EMFILE or self.t.dfd_err == ENFILE):
                    # out of fds says nothing about the directory: keep its last listing
                    # (still dirty: listed again next tick), the tick is starved
                    self.problems.n_fd_exhausted += 1
                    continue
                self.t.dirty[r] = 0
                self.n_listings += 1
                tot = 0
                if fd < 0 or c_lseek(fd, 0, SEEK_SET) < 0:
                    got = -1
                else:
                    while True:
                        if self.dbufcap - tot < 32768:
                            nb = <char*>realloc(self.dbuf, self.dbufcap * 2)
                            if nb == NULL:
                                got = -1
                                break
                            self.dbuf = nb
                            self.dbufcap *= 2
                        got = c_getdents64(fd, self.dbuf + tot, self.dbufcap - tot)
                        if got <= 0:
                            break
                        zero_dirent_padding(self.dbuf + tot, got)
                        tot += got
                if got < 0:
                    tot = 0          # an unreadable directory lists as empty
                if self.t.gen[r] != 0 and tot == self.t.lstlen[r] and (
                        tot == 0 or memcmp(self.t.lst[r], self.dbuf, tot) == 0):
                    continue
                nb = <char*>realloc(self.t.lst[r], tot if tot > 0 else 1)
                if nb == NULL:
                    continue
                self.t.lst[r] = nb
                memcpy(nb, self.dbuf, tot)
                self.t.lstlen[r] = tot
                self.t.gen[r] += 1
                changed[nch] = r
                nch += 1
        return nch

    cdef Py_ssize_t unlisted(self, int32_t* out) noexcept nogil:
        """Live rows other than the root whose liveness nothing else vouches for, into `out`
        (room for nrows); returns how many. Cache mode: a row whose parent was listed this tick
        is alive iff that listing shows it, and a row whose parent's watch reported nothing
        since its last listing (no IN_DELETE, no IN_DELETE_SELF of the row's own watch, no
        overflow) is alive; the others (parents without a watch: the watch budget) are
        checked."""
        cdef int r, p
        cdef Py_ssize_t n = 0
        for r in range(self.t.capacity):
            if not self.t.live[r] or r == self.t.root_row:
                continue
            p = self.t.parent[r]
            if p >= 0 and self.t.scanned[p] == self.t.tick:
                continue
            if p >= 0 and self.t.wd[p] >= 0 and not self.t.dirty[p] and not self.t.recheck[p] \
                    and not self.t.recheck[r]:
                continue                 # its parent's watch reported no removal since listing
            out[n] = r
            n += 1
        return n

    def raw(self, int r):
        """The row's last raw getdents64 output (for diagnostics)."""
        return b"" if self.t.lst[r] == NULL else self.t.lst[r][:self.t.lstlen[r]]

    def entries(self, int r):
        """The row's last listing: [(name bytes, inode, d_type)], without "." and ".."."""
        out = []
        cdef const char* p = self.t.lst[r]
        cdef const char* e = p + self.t.lstlen[r]
        cdef uint64_t ino
        cdef unsigned short reclen
        cdef unsigned char dtype
        cdef const char* name
        if p == NULL:
            return out
        while p + 19 < e:
            memcpy(&ino, p, 8)
            memcpy(&reclen, p + 16, 2)
            dtype = <unsigned char>p[18]
            name = p + 19
            if reclen == 0:
                break
            if not (name[0] == b'.' and (name[1] == 0 or (name[1] == b'.' and name[2] == 0))):
                out.append((<bytes>name, ino, dtype))
            p += reclen
        return out
