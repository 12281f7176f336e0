# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The inotify watches of the reader, and the map from watch descriptor to row and kind.

A listed directory is watched (IN_CREATE, IN_DELETE, IN_MOVED_*: its listing is dirty and it is
listed again; unwatched directories are listed every tick). With ``keep_config``, the watches
also report writes to configuration files and xattr changes: a row keeps its configuration
values (``keep``, CONFIG_KINDS) across ticks while its parent directory is watched and, for a
file, the file or its own directory is watched; an event for a value drops it (``invalidate``)
and the next tick that needs it reads it again. Watches count against ``watch_budget``; a
refused watch (budget or kernel) is retried once one is released.
"""

from libc.errno cimport ENOENT
from libc.stdint cimport int32_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, strcmp, strlen

from oomd._reader.defs cimport *
from oomd._reader.syscalls cimport (
    ENOSPC, IN_ATTRIB, IN_CLOEXEC, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED,
    IN_MODIFY, IN_MOVE_SELF, IN_MOVED_FROM, IN_MOVED_TO, IN_NONBLOCK, IN_ONLYDIR, IN_Q_OVERFLOW,
    c_close, c_inotify_add_watch, c_inotify_init1, c_inotify_rm_watch, c_read, errno,
    inotify_event)


cdef class Watcher:
    """The inotify fd, its watches and what they say about the rows."""

    def __cinit__(self):
        self.wmap_keys = NULL
        self.wmap_vals = NULL
        self.wmap_cap = 0
        self.ino_fd = -1

    def __init__(self, RowTable t, *, keep_config, int watch_budget):
        """keep_config: None = keep configuration values when file fds are cached."""
        self.t = t
        self._keep_arg = keep_config
        self.keep_config = False
        self.watch_budget = watch_budget
        self.n_watches = 0
        self.watch_full = False
        self.n_watch_refused = 0
        self.n_invalidations = 0
        self.wmap_used = 0
        self.wmap_n = 0
        if self._wmap_resize(64) != 0:
            raise MemoryError()
        self.n_events = 0
        self.n_overflows = 0

    def __dealloc__(self):
        if self.ino_fd >= 0:
            c_close(self.ino_fd)
        free(self.wmap_keys)
        free(self.wmap_vals)

    cdef int start(self, bint cache_files) except -1:
        """cgroup-fs was opened: inotify when file fds are cached (cgroup2), and whether
        configuration values are kept."""
        if cache_files and self.ino_fd < 0:
            self.ino_fd = c_inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self.keep_config = self.ino_fd >= 0 and (
            cache_files if self._keep_arg is None else bool(self._keep_arg))
        return 0

    cdef void close(self) noexcept:
        """Close the inotify fd and forget every watch (the rows were closed first)."""
        cdef int r
        if self.ino_fd >= 0:
            c_close(self.ino_fd)
            self.ino_fd = -1
        for r in range(self.wmap_cap):
            self.wmap_keys[r] = -1
        self.wmap_used = 0
        self.wmap_n = 0
        self.n_watches = 0
        self.watch_full = False

    cdef int add(self, int r, int kind) except -2:
        """Add an inotify watch for row r: its directory (kind WATCH_DIR) or one of its files.
        Returns 1 if watched. Refusals by the budget or the kernel (ENOSPC: the user's
        max_user_watches is used up) are retried once a watch has been released."""
        cdef int w, fd, e, cur
        cdef uint32_t mask
        cdef bytes path
        cur = self.t.wd[r] if kind == WATCH_DIR else self.t.fwd[r, kind]
        if cur >= 0:
            return 1
        if self.ino_fd < 0 or cur == WD_SHARED or cur == WD_MISSING or (
                cur == WD_REFUSED and self.watch_full):
            return 0
        if self.n_watches >= self.watch_budget:
            self.watch_full = True
            self._set_wd(r, kind, WD_REFUSED)
            self.n_watch_refused += 1
            return 0
        fd = self.t.dfd(r)
        if fd < 0:
            return 0
        if kind == WATCH_DIR:
            path = b"/proc/self/fd/%d" % fd
            mask = (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF
                    | IN_MOVE_SELF | IN_ONLYDIR)
            if self.keep_config:
                # its own files' writes (IN_MODIFY + name), its own and its children's xattrs
                # (IN_ATTRIB, + name for a child); this makes every read of a file of this
                # directory take the kernel's slower fsnotify path, so leaves are not watched
                # this way unless they are listed
                mask |= IN_MODIFY | IN_ATTRIB
        else:
            path = b"/proc/self/fd/%d/%s" % (fd, <bytes>self.t.fname[kind])
            mask = IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
        w = c_inotify_add_watch(self.ino_fd, path, mask)
        if w < 0:
            e = errno()
            if e == ENOENT and kind != WATCH_DIR:
                self._set_wd(r, kind, WD_MISSING)    # tried again once the file is read
                return 0
            if e == ENOSPC:
                self.watch_full = True
            self._set_wd(r, kind, WD_REFUSED)
            self.n_watch_refused += 1
            return 0
        if self._wmap_get(w) >= 0:
            self._set_wd(r, kind, WD_SHARED)   # the same inode as another row's (a symlink)
            return 0
        if self._wmap_put(w, (r << 5) | kind) != 0:
            c_inotify_rm_watch(self.ino_fd, w)
            raise MemoryError()
        self._set_wd(r, kind, w)
        self.n_watches += 1
        if kind == WATCH_DIR and self.t.gen[r] != 0:
            self.t.dirty[r] = 1            # listed before it was watched: list it again
        return 1

    cdef void _set_wd(self, int r, int kind, int w) noexcept nogil:
        if kind == WATCH_DIR:
            self.t.wd[r] = w
        else:
            self.t.fwd[r, kind] = w

    cdef void unwatch(self, int r, int kind) noexcept nogil:
        """Release row r's watch of `kind` (WATCH_DIR or a file kind)."""
        cdef int w = self.t.wd[r] if kind == WATCH_DIR else self.t.fwd[r, kind]
        if w >= 0 and self._wmap_get(w) == (r << 5) | kind:
            self._wmap_del(w)
            c_inotify_rm_watch(self.ino_fd, w)
            self.n_watches -= 1
            self.watch_full = False
        self._set_wd(r, kind, WD_NONE)

    cdef void unwatch_row(self, int r) noexcept nogil:
        """Release every watch of row r (it is being closed)."""
        cdef int k
        self.unwatch(r, WATCH_DIR)
        for k in range(NFILE):
            self.unwatch(r, k)

    cdef bint keepable(self, int row, int kind) noexcept nogil:
        """Whether a change of this value would be reported: the parent directory is watched
        (controller changes, and the row's xattrs as IN_ATTRIB + name) and, for a file, the
        file itself or the row's own directory is watched."""
        cdef int p
        if not self.keep_config:
            return False
        p = self.t.parent[row]
        if p < 0 or self.t.wd[p] < 0:
            return False
        return kind == K_XATTR or self.t.fwd[row, kind] >= 0 or self.t.wd[row] >= 0

    cdef void keep_value(self, int row, int kind) noexcept nogil:
        """A configuration value read fine on a watched row: keep it until an event."""
        self.t.keep[row] |= 1u << kind
        if kind < NFILE and self.t.ffd[row, kind] >= 0:
            c_close(self.t.ffd[row, kind])     # never pread again: re-read only after an event
            self.t.ffd[row, kind] = -1
            self.t.open_fds -= 1

    cdef void invalidate(self, int row, uint32_t kinds) noexcept nogil:
        """Drop the row's kept values of `kinds` (an event, or a new parent)."""
        if self.t.keep[row] & kinds:
            self.t.keep[row] &= ~kinds
            self.n_invalidations += 1

    cdef int _event_kind(self, const char* name) noexcept nogil:
        """The configuration kind read from file `name`, -2 for a file whose write can make
        the row's (or its children's) control files appear or vanish, else -1."""
        cdef size_t L = strlen(name)
        cdef int k
        for k in range(NFILE):
            if (CONFIG_KINDS >> k) & 1 and L == self.t.fnamelen[k] and \
                    memcmp(name, self.t.fname[k], L) == 0:
                return k
        if (L == 22 and memcmp(name, b"cgroup.subtree_control", 22) == 0) or (
                L == 11 and memcmp(name, b"cgroup.type", 11) == 0):
            return -2
        return -1

    cdef int poll(self) except -1:
        """Drain inotify.

        A directory watch: entries added, removed or moved mark the row's listing dirty; with
        keep_config, an event naming one of its configuration files (a write, or a create,
        delete or rename of that name) drops that kept value, IN_ATTRIB names a child whose
        xattrs changed (or, without a name, the row's own), and a write to its
        cgroup.subtree_control or cgroup.type drops every kept value of the row and its
        children (controller files may come or go). A file watch: any event drops the value.
        A queue overflow drops everything and marks every listing dirty.
        Returns the number of events."""
        cdef char buf[16384]
        cdef ssize_t n
        cdef size_t off
        cdef inotify_event* ev
        cdef int r, k, c, kind, count = 0, nscan = 0
        cdef bint attr_all = False
        cdef uint32_t m
        cdef const char* name
        cdef uint32_t structure = (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
                                   | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)
        while True:
            n = c_read(self.ino_fd, buf, sizeof(buf))
            if n <= 0:
                break
            off = 0
            while off + sizeof(inotify_event) <= <size_t>n:
                ev = <inotify_event*>(buf + off)
                off += sizeof(inotify_event) + ev.len
                count += 1
                m = ev.mask
                if m & IN_Q_OVERFLOW:
                    self.n_overflows += 1
                    for r in range(self.t.capacity):
                        if self.t.live[r]:
                            self.t.dirty[r] = 1
                            self.t.recheck[r] = 1
                            self.t.absent[r] = 0
                            self.invalidate(r, CONFIG_KINDS)
                    continue
                c = self._wmap_get(ev.wd)
                if c < 0:
                    continue
                r = c >> 5
                kind = c & 31
                if kind != WATCH_DIR:
                    self.invalidate(r, 1u << kind)
                    if m & IN_IGNORED:
                        self._wmap_del(ev.wd)
                        self.t.fwd[r, kind] = WD_NONE
                        self.n_watches -= 1
                        self.watch_full = False
                    continue
                if m & structure:
                    self.t.dirty[r] = 1
                name = <char*>ev + sizeof(inotify_event)
                if ev.len > 0 and name[0] != 0:
                    if self.t.absent[r]:
                        self._forget_absent(r, name)
                    k = self._event_kind(name)
                    if k >= 0:
                        self.invalidate(r, 1u << k)
                    elif k == -2 and m & IN_MODIFY:
                        self._invalidate_family(r)
                    elif m & IN_ATTRIB:
                        # a child's xattrs (or an entry's mode): find the child by name; past
                        # 64 such events in one drain, every child of the row instead
                        if nscan < 64:
                            nscan += 1
                            k = self._child_named(r, name)
                            if k >= 0:
                                self.invalidate(k, 1u << K_XATTR)
                        else:
                            self.t.dirty_attr[r] = 1
                            attr_all = True
                elif m & IN_ATTRIB:
                    self.invalidate(r, 1u << K_XATTR)
                if m & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                    self._invalidate_family(r)
                    self.t.recheck[r] = 1      # its liveness is checked at the next tick
                if m & IN_IGNORED:
                    self._wmap_del(ev.wd)
                    self.t.wd[r] = WD_NONE
                    self.n_watches -= 1
                    self.watch_full = False
        if attr_all:
            for r in range(self.t.capacity):
                if self.t.live[r] and self.t.parent[r] >= 0 and \
                        self.t.dirty_attr[self.t.parent[r]]:
                    self.invalidate(r, 1u << K_XATTR)
            for r in range(self.t.capacity):
                self.t.dirty_attr[r] = 0
        self.n_events += count
        return count

    cdef void _forget_absent(self, int r, const char* name) noexcept nogil:
        """An event in row r's own directory named `name`: a file of r known to be absent
        with that name, or any of them for cgroup.controllers, is tried again."""
        cdef size_t L = strlen(name)
        cdef int k
        if L == 18 and memcmp(name, b"cgroup.controllers", 18) == 0:
            self.t.absent[r] = 0
            return
        for k in range(NFILE):
            if L == self.t.fnamelen[k] and memcmp(name, self.t.fname[k], L) == 0:
                self.t.absent[r] &= ~(1u << k)
                return

    cdef int _child_named(self, int p, const char* name) noexcept nogil:
        """The live row below row p called `name`, or -1."""
        cdef int r
        for r in range(self.t.capacity):
            if self.t.live[r] and self.t.parent[r] == p and self.t.rname[r] != NULL and \
                    strcmp(self.t.rname[r], name) == 0:
                return r
        return -1

    cdef void _invalidate_family(self, int r) noexcept nogil:
        """Drop the kept values of row r and of its children, and what they know to be absent
        (a controller enabled in r's cgroup.subtree_control makes its files appear below)."""
        cdef int k
        self.invalidate(r, CONFIG_KINDS)
        self.t.absent[r] = 0
        for k in range(self.t.capacity):
            if self.t.live[k] and self.t.parent[k] == r:
                self.invalidate(k, CONFIG_KINDS)
                self.t.absent[k] = 0

    cdef int watch_rows(self, const int32_t* rows, Py_ssize_t n, uint32_t kinds) except -1:
        """Before rows read configuration kinds (`kinds`) they have not read this tick: watch
        each such file of a row that has no watched directory of its own (Reader.load does
        this itself). Rows whose parent directory is not watched keep nothing. Returns how many
        watches were added."""
        cdef Py_ssize_t i
        cdef int r, k, p, got = 0
        cdef uint32_t need
        cdef bint parked
        kinds &= CONFIG_KINDS & ((1u << NFILE) - 1)
        if not self.keep_config or kinds == 0:
            return 0
        for i in range(n):
            r = rows[i]
            if r < 0 or r >= self.t.capacity or not self.t.live[r] or self.t.wd[r] >= 0:
                continue
            need = kinds & ~self.t.loaded[r]
            if need == 0:
                continue
            p = self.t.parent[r]
            if p < 0 or self.t.wd[p] < 0:
                continue
            parked = self.t.dirfd[r] < 0
            for k in range(NFILE):
                if (need >> k) & 1 and self.t.fwd[r, k] < 0:
                    if self.t.fwd[r, k] == WD_REFUSED and self.watch_full:
                        continue
                    got += self.add(r, k)
            if parked and self.t.dirfd[r] >= 0:
                # add() re-opened the directory to name the file: give it back, or a
                # pass over many parked rows would hold one fd per row past the budget
                self.t.park(r)
        return got

    # ---- wd -> (row << 5 | kind): open addressing, no Python object per watch --------------

    cdef int _wmap_resize(self, int cap) noexcept:
        cdef int32_t* ok = self.wmap_keys
        cdef int32_t* ov = self.wmap_vals
        cdef int ocap = self.wmap_cap, i
        cdef int32_t* nk = <int32_t*>malloc(cap * sizeof(int32_t))
        cdef int32_t* nv = <int32_t*>malloc(cap * sizeof(int32_t))
        if nk == NULL or nv == NULL:
            free(nk)
            free(nv)
            return -1
        for i in range(cap):
            nk[i] = -1
        self.wmap_keys = nk
        self.wmap_vals = nv
        self.wmap_cap = cap
        self.wmap_used = 0
        self.wmap_n = 0
        for i in range(ocap):
            if ok[i] >= 0:
                self._wmap_put(ok[i], ov[i])
        free(ok)
        free(ov)
        return 0

    cdef inline int _wmap_slot(self, int32_t key) noexcept nogil:
        return <int>((<uint32_t>key * <uint32_t>2654435761u) & <uint32_t>(self.wmap_cap - 1))

    cdef int _wmap_get(self, int32_t key) noexcept nogil:
        cdef int i = self._wmap_slot(key)
        while self.wmap_keys[i] != -1:
            if self.wmap_keys[i] == key:
                return self.wmap_vals[i]
            i = (i + 1) & (self.wmap_cap - 1)
        return -1

    cdef int _wmap_put(self, int32_t key, int32_t val) noexcept:
        """Insert an absent key (watch descriptors are unique while they live)."""
        cdef int i
        if 2 * (self.wmap_used + 1) > self.wmap_cap:
            if self._wmap_resize(self.wmap_cap * 2 if 2 * (self.wmap_n + 1) > self.wmap_cap // 2
                                 else self.wmap_cap) != 0:
                return -1
        i = self._wmap_slot(key)
        while self.wmap_keys[i] != -1 and self.wmap_keys[i] != -2:
            if self.wmap_keys[i] == key:
                self.wmap_vals[i] = val
                return 0
            i = (i + 1) & (self.wmap_cap - 1)
        if self.wmap_keys[i] == -1:
            self.wmap_used += 1
        self.wmap_keys[i] = key
        self.wmap_vals[i] = val
        self.wmap_n += 1
        return 0

    cdef void _wmap_del(self, int32_t key) noexcept nogil:
        cdef int i = self._wmap_slot(key)
        while self.wmap_keys[i] != -1:
            if self.wmap_keys[i] == key:
                self.wmap_keys[i] = -2           # tombstone
                self.wmap_n -= 1
                return
            i = (i + 1) & (self.wmap_cap - 1)
