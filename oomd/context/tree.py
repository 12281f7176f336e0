"""The cgroup tree as names: which row is which path, directory listings, liveness and
eviction (reference §5.2), and pattern resolution (§3).

``CgroupTree`` is the naming half of ``OomdContext``: the reader (``oomd._fastcg.Reader``)
holds the rows' fds and numbers; this module decides which directories become rows, keeps
their paths, parses the listings the reader takes, and resolves patterns to rows. Steady state
costs no Python object per cgroup per tick: resolutions and child lists are cached and
rebuilt only when a directory listing changed (the reader's per-row ``gen``) or a row was
opened or forgotten (``_epoch``).

Resolution follows reference §3: per component ``fnmatch(3)`` with ``FNM_PERIOD`` (in C,
``_fastcg.fnmatch_name``), braces expanded first (``oomd.cgpath.compile_patterns``), literal
components looked up in the listing, directories (and symlinks to directories) only.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

import numpy as np

from oomd import _fastcg
from oomd.cgpath import CgroupPatterns, compile_patterns, split_components
from oomd.context.metric_table import STATUS_VANISHED
from oomd.context.problems import ProblemLog
from oomd.names import shown

_DT_DIR, _DT_LNK, _DT_UNKNOWN = 4, 10, 0
_GLOB_MAGIC = frozenset("*?[\\")


class _DirInfo:
    """One directory's parsed listing: the entries that are directories, as ``dirs`` (name ->
    inode), and symlinks (or entries of unknown type) that resolve to a directory, as
    ``links`` (name -> inode); ``entry(name)`` gives (inode, kind), kind 1 for a directory,
    2 for a link to one, or None for anything else (files are not kept: a listing is mostly
    control files). ``bnames``/``names``: those entries' names as listed (bytes, for fnmatch)
    and decoded, in listing order. A parent of 10,000 cgroups holds ~200 bytes per child."""

    __slots__ = ("gen", "dirs", "links", "bnames", "names", "child_names")

    def __init__(self, gen, dirs, links, bnames, names, child_names):
        self.gen = gen
        self.dirs = dirs
        self.links = links
        self.bnames = bnames
        self.names = names
        self.child_names = child_names

    def entry(self, name: str) -> tuple[int, int] | None:
        ino = self.dirs.get(name)
        if ino is not None:
            return ino, 1
        ino = self.links.get(name)
        return None if ino is None else (ino, 2)


class CgroupTree:
    """Rows and their names for one context. A row's path is ``paths[row]`` (relative to the
    cgroup fs, ``""`` for the root); rows stay valid for the tick in which they were handed
    out. ``in_refresh`` is set by the context while a tick starts: rows that vanish then are
    closed at once, at other times at the next tick start (``close_deferred``)."""

    def __init__(self, reader: _fastcg.Reader, cgroup_fs: str, problems: ProblemLog) -> None:
        self._r = reader
        self.cgroup_fs = cgroup_fs
        self._problems = problems
        self.paths: dict[int, str] = {}
        self._by_path: dict[str, int] = {}
        self._kids: dict[int, dict[str, int]] = {}
        self._dirs: dict[int, _DirInfo] = {}
        self._ccache: dict[int, tuple[int, int, np.ndarray]] = {}
        self._compiled: dict[CgroupPatterns, tuple[tuple[str, ...], ...]] = {}
        self._pcache: dict[CgroupPatterns, tuple[int, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._resolved: dict[CgroupPatterns, np.ndarray] = {}
        self._monitored: list[CgroupPatterns] = []
        self._deferred: list[int] = []
        self._epoch = 0
        self._pcache_version = 0
        self._deps_key = None
        self._deps = np.empty(0, dtype=np.int32)
        self._retry_opens = False
        self.in_refresh = False
        self._open_failures = 0
        self.registered = 0   # rows opened so far (with _epoch: whether the row table changed)

    def set_monitored(self, patterns: list[CgroupPatterns]) -> None:
        """The monitored patterns: their directories are listed at every tick start (so that
        a vanished row is seen before anything reads it)."""
        self._monitored = patterns
        self._pcache_version += 1

    # ---- the tick -----------------------------------------------------------------------------

    def close_deferred(self) -> None:
        """Close the rows forgotten since the last tick started (they stayed valid until now)."""
        for row in self._deferred:
            self._r.close_row(row)
        self._deferred.clear()

    def begin_tick(self) -> None:
        """Forget this tick's resolutions; after a failed open, recompute every cached one."""
        self._resolved.clear()
        if self._retry_opens:
            self._retry_opens = False
            self._epoch += 1

    def clear(self) -> None:
        """Forget every row (the reader has closed them)."""
        self.paths.clear()
        self._by_path.clear()
        self._kids.clear()
        self._dirs.clear()
        self._ccache.clear()
        self._pcache.clear()
        self._pcache_version += 1
        self._resolved.clear()
        self._deferred.clear()
        self._epoch += 1

    # ---- liveness (reference §5.2) ------------------------------------------------------------

    def _live_rows(self) -> np.ndarray:
        return np.flatnonzero(self._r.cols["live"]).astype(np.int32)

    def evict_vanished(self) -> None:
        """Reference §5.2: a row whose directory lost ``cgroup.controllers`` is evicted. Off
        cgroup2 every row is checked with faccessat; on cgroup2 (or when the caller vouches
        for it) a row whose parent directory was listed this tick is alive iff the listing
        still shows it with the same inode, and only the other rows are checked."""
        r = self._r
        if r.root_row < 0:
            self.open_root()
            if r.root_row < 0:
                return
        if not r.cache_files:
            live = self._live_rows()
            ok = r.check_alive(live)
            for row in live[~ok]:
                if int(row) in self.paths:
                    self._evict_one(int(row))
            if r.root_row < 0:
                self.open_root()
            self._scan(self._monitored_deps())
            return
        root = r.root_row
        if not r.root_alive_known() and not r.check_alive(np.array([root], dtype=np.int32))[0]:
            self._retire(root)
            self.open_root()
            return
        self._scan(self._monitored_deps())
        check = r.unlisted_rows()
        if len(check):
            ok = r.check_alive(check)
            for row in check[~ok]:
                if int(row) in self.paths:
                    self._retire(int(row))

    def _monitored_deps(self) -> np.ndarray:
        key = (self._epoch, self._pcache_version, len(self._monitored))
        if self._deps_key == key:
            return self._deps
        deps = []
        for patterns in self._monitored:
            c = self._pcache.get(patterns)
            if c is not None and c[0] == self._epoch:
                deps.append(c[1])
        self._deps_key = key
        if not deps:
            self._deps = np.empty(0, dtype=np.int32)
        else:
            self._deps = np.unique(np.concatenate(deps)).astype(np.int32)
        return self._deps

    # ---- rows -------------------------------------------------------------------------------

    def open_root(self) -> None:
        r = self._r
        res = r.open_root()
        if res < 0:
            self._problems.once(("cgroup-fs", str(-res)),
                                f"[context] cannot open cgroup-fs {self.cgroup_fs}: "
                                f"{os.strerror(-res)}")
            return
        self._register(res, "", -1, "")

    def _register(self, row: int, path: str, prow: int, name: str) -> None:
        self.paths[row] = path
        self.registered += 1
        self._by_path[path] = row
        if prow >= 0:
            self._kids.setdefault(prow, {})[name] = row
        self._problems.counts["rows_opened"] += 1

    def _child(self, prow: int, name: str, ino: int | None = None, kind: int = 1) -> int | None:
        """The row of directory `name` under `prow`, opening it if needed."""
        r = self._r
        ppath = self.paths[prow]
        path = f"{ppath}/{name}" if ppath else name
        row = self._by_path.get(path)
        if row is not None:
            cols = r.cols
            if ino is not None and kind == 1 and int(cols["cgid"][row]) != ino:
                self._retire(row)         # the directory was removed and re-created
            else:
                if cols["parent"][row] != prow:
                    r.set_parent(row, prow)
                    self._kids.setdefault(prow, {})[name] = row
                return row
        res = r.open_child(prow, os.fsencode(name))
        if res < 0:
            # Listed but gone (a race with rmdir), or not openable (EMFILE, EACCES): the
            # cgroup is not monitored this tick. Counted; logged once per errno.
            # A vanished one changes its parent's listing; any other failure would stay cached
            # in the resolutions, so they are redone next tick and the open retried.
            gone = -res in (_errno.ENOENT, _errno.ENOTDIR)
            self._problems.counts["dir_vanished" if gone else "dir_unopenable"] += 1
            if res in (-_errno.EMFILE, -_errno.ENFILE):
                # out of fds says nothing about the cgroup: whatever lists it is incomplete
                # this tick and must not be cached (it is tried again next time)
                self._open_failures += 1
                self._problems.fd_problem(1)
            elif res == -_errno.ENOMEM:
                self._problems.starved = True
            if not gone:
                self._retry_opens = True
                self._problems.once(("open-dir", str(-res)),
                                    f"[context] cannot open cgroup "
                                    f"{shown(self.cgroup_fs + '/' + path)}: {os.strerror(-res)}")
            return None
        self._register(res, path, prow, name)
        return res

    def _retire(self, row: int) -> None:
        """Forget a row and its descendants (their directories are gone or replaced). Freed
        now during refresh, at the next refresh otherwise (rows stay valid for the tick)."""
        for child in list(self._kids.get(row, {}).values()):
            if child in self.paths:
                self._retire(child)
        self._unregister(row)
        self._problems.counts["evicted"] += 1
        if self.in_refresh:
            self._r.close_row(row)
        else:
            self._r.cols["status"][row] = STATUS_VANISHED
            self._deferred.append(row)

    def _evict_one(self, row: int) -> None:
        """oomd's eviction of one context: its children stay (they are re-linked to a fresh
        parent row when one is opened for the same path)."""
        for child in self._kids.get(row, {}).values():
            self._r.set_parent(child, -2)
        self._unregister(row)
        self._problems.counts["evicted"] += 1
        self._r.close_row(row)

    def _unregister(self, row: int) -> None:
        path = self.paths.pop(row, None)
        if path is not None and self._by_path.get(path) == row:
            del self._by_path[path]
        prow = int(self._r.cols["parent"][row])
        if prow >= 0 and path is not None:
            kids = self._kids.get(prow)
            name = path.rsplit("/", 1)[-1]
            if kids is not None and kids.get(name) == row:
                del kids[name]
        self._kids.pop(row, None)
        self._dirs.pop(row, None)
        self._ccache.pop(row, None)
        self._epoch += 1

    def _relink(self, row: int) -> int:
        """Parent row of a row whose parent was evicted (oomd looks parents up by path)."""
        path = self.paths[row]
        ppath, _, name = path.rpartition("/")
        prow = self.row_of(ppath)
        if prow is None:
            return -1
        self._r.set_parent(row, prow)
        self._kids.setdefault(prow, {})[name] = row
        return prow

    def fix_parents(self, rows: np.ndarray) -> None:
        par = self._r.cols["parent"]
        bad = rows[par[rows] == -2]
        for row in bad:
            self._relink(int(row))

    # ---- listings -----------------------------------------------------------------------------

    def _scan(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        for d in self._r.scan_dirs(np.ascontiguousarray(rows, dtype=np.int32)):
            self._parse_listing(int(d))

    def _parse_listing(self, d: int) -> None:
        r = self._r
        self._problems.counts["listings_parsed"] += 1
        dirs: dict[str, int] = {}
        links: dict[str, int] = {}
        bnames: list[bytes] = []
        names: list[str] = []
        dfd = r.dirfd_of(d)
        for bname, ino, dtype in r.dir_entries(d):
            if dtype == _DT_DIR:
                kind = 1
            elif dtype in (_DT_LNK, _DT_UNKNOWN):
                kind = 0
                try:
                    st = os.stat(bname, dir_fd=dfd, follow_symlinks=True)
                    if _stat.S_ISDIR(st.st_mode):
                        lst = os.stat(bname, dir_fd=dfd, follow_symlinks=False)
                        kind = 1 if _stat.S_ISDIR(lst.st_mode) else 2
                        ino = lst.st_ino if kind == 1 else ino
                except OSError:
                    kind = 0
            else:
                kind = 0
            name = os.fsdecode(bname)
            if kind == 1:
                dirs[name] = ino
                links.pop(name, None)
            elif kind == 2:
                links[name] = ino
                dirs.pop(name, None)
            else:
                if dirs or links:   # the same name listed twice: the last one counts
                    dirs.pop(name, None)
                    links.pop(name, None)
                continue
            bnames.append(bname)
            names.append(name)
        child_names = sorted((n for n in dirs if n[0] != "."), key=os.fsencode)
        info = self._dirs[d] = _DirInfo(int(r.cols["gen"][d]), dirs, links, bnames, names,
                                        child_names)
        cgid = r.cols["cgid"]
        for name, crow in list(self._kids.get(d, {}).items()):
            e = info.entry(name)
            if e is None or (e[1] == 1 and int(cgid[crow]) != e[0]):
                if crow in self.paths:
                    self._retire(crow)

    def listing_counts(self) -> dict[int, int]:
        """Row -> how many child directories its last listing showed (rows never listed are
        absent): a recording keeps it so that replay knows whether it has all of a row's
        children."""
        return {d: len(info.child_names) for d, info in self._dirs.items()}

    def unopened_children(self) -> dict[int, list[str]]:
        """Row -> the child directories of its last listing that are not rows (only rows that
        have some): names a recording knows exist but holds no values for."""
        out = {}
        paths = self.paths
        for d, info in self._dirs.items():
            kids = self._kids.get(d, {})
            missing = [n for n in info.child_names if kids.get(n) not in paths]
            if missing:
                out[d] = missing
        return out

    def _listing(self, d: int) -> _DirInfo | None:
        self._scan(np.array([d], dtype=np.int32))
        return self._dirs.get(d)

    # ---- pattern resolution (reference §3) ----------------------------------------------------

    def resolve(self, patterns: CgroupPatterns) -> np.ndarray:
        """Rows matching the patterns this tick, sorted by relative path (byte-wise)."""
        got = self._resolved.get(patterns)
        if got is not None:
            return got
        r = self._r
        cached = self._pcache.get(patterns)
        if cached is not None and cached[0] == self._epoch:
            epoch, deps, gens, rows = cached
            self._scan(deps)
            if self._epoch == epoch and r.same_gens(deps, gens):
                self._resolved[patterns] = rows
                return rows
        failures = self._open_failures
        rows, deps = self._resolve_uncached(patterns)
        deps = np.unique(np.asarray(deps, dtype=np.int32))
        if self._open_failures == failures:
            self._pcache[patterns] = (self._epoch, deps, r.cols["gen"][deps].copy(), rows)
        else:
            self._pcache.pop(patterns, None)      # incomplete: resolve again next time
        self._pcache_version += 1
        self._resolved[patterns] = rows
        return rows

    def _resolve_uncached(self, patterns: CgroupPatterns) -> tuple[np.ndarray, list[int]]:
        self._problems.counts["resolutions"] += 1
        compiled = self._compiled.get(patterns)
        if compiled is None:
            compiled = self._compiled[patterns] = compile_patterns(patterns)
        r = self._r
        found: dict[int, None] = {}
        deps: list[int] = []
        for comps in compiled:
            if r.root_row < 0:
                break
            level = [r.root_row]
            for comp in comps:
                if not level:
                    break
                self._scan(np.array(level, dtype=np.int32))
                deps.extend(level)
                nxt: list[int] = []
                magic = any(ch in _GLOB_MAGIC for ch in comp)
                bcomp = os.fsencode(comp)
                for d in level:
                    info = self._dirs.get(d)
                    if info is None:
                        continue
                    if not magic:
                        e = info.entry(comp)
                        if e is not None:
                            row = self._child(d, comp, e[0], e[1])
                            if row is not None:
                                nxt.append(row)
                        continue
                    for bname, name in zip(info.bnames, info.names):
                        if _fastcg.fnmatch_name(bcomp, bname):
                            e = info.entry(name)
                            if e is None:    # listed twice, the last time not as a directory
                                continue
                            row = self._child(d, name, e[0], e[1])
                            if row is not None:
                                nxt.append(row)
                level = nxt
            for row in level:
                found[row] = None
        rows = sorted(found, key=lambda x: os.fsencode(self.paths[x]))
        arr = np.array(rows, dtype=np.int32)
        arr.flags.writeable = False
        return arr, deps

    def children(self, row: int) -> np.ndarray:
        """Child rows (every child directory, names not starting with '.'), sorted by name."""
        info = self._listing(row)
        if info is None:
            return np.empty(0, dtype=np.int32)
        c = self._ccache.get(row)
        if c is not None and c[0] == info.gen and c[1] == self._epoch:
            return c[2]
        rows = []
        failures = self._open_failures
        dirs = info.dirs
        for name in info.child_names:
            cr = self._child(row, name, dirs[name], 1)
            if cr is not None:
                rows.append(cr)
        arr = np.array(rows, dtype=np.int32)
        arr.flags.writeable = False
        if self._open_failures == failures:
            self._ccache[row] = (info.gen, self._epoch, arr)
        return arr

    def parent(self, row: int) -> int:
        p = int(self._r.cols["parent"][row])
        if p == -2:
            p = self._relink(row)
        return p

    def abspath(self, row: int) -> str:
        rel = self.paths[row]
        if not rel:
            return self.cgroup_fs
        return f"{self.cgroup_fs}/{rel}" if self.cgroup_fs != "/" else f"/{rel}"

    def row_of(self, relpath: str) -> int | None:
        """The row of a cgroup path, opening it (and its ancestors) if it exists."""
        r = self._r
        row = r.root_row
        if row < 0:
            return None
        for comp in split_components(relpath):
            nxt = self._kids.get(row, {}).get(comp)
            if nxt is None or nxt not in self.paths:
                nxt = self._child(row, comp)
            if nxt is None:
                return None
            row = nxt
        return row
