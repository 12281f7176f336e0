"""Read-only questions about the cgroup tree, asked through the daemon's own context.

Patterns are resolved by ``OomdContext.resolve`` (the daemon's resolution, reference §3) and
kill preferences read by ``OomdContext.get`` (its xattr reader); the few files lint needs
beyond what the context reads (``cgroup.controllers``, ``cgroup.subtree_control``,
``cgroup.pressure`` and whether a control file exists) are opened read-only here. Nothing is
ever written.
"""

from __future__ import annotations

import os

import numpy as np

from oomd.cgpath import CgroupPatterns
from oomd.names import shown
from oomd.xattr_trust import XattrTrust

MEMORY, IO, PSI = "memory", "io", "psi"
AVOID = -1

# the name a controller has on a cgroup v1 hierarchy (cgroup_no_v1=<name>)
V1_NAMES = {MEMORY: "memory", IO: "blkio"}


def controller_of(fname: str) -> str | None:
    """What gives a cgroup this control file: a controller, PSI, or the core (None)."""
    if fname.endswith(".pressure"):
        return PSI
    if fname.startswith("memory."):
        return MEMORY
    if fname.startswith("io."):
        return IO
    return None


def parent_of(rel: str) -> str:
    return rel.rpartition("/")[0]


def pattern_text(comps: tuple[str, ...]) -> str:
    return shown("/".join(comps)) if comps else "/"


class Tree:
    """The live (or given) tree under the context's cgroup-fs, read-only, cached for one run."""

    def __init__(self, ctx, trust_user_xattrs: bool = False) -> None:
        self.ctx = ctx
        self.trust = XattrTrust(trust_user_xattrs)
        self.fs = ctx.cgroup_fs
        self._rows: dict[CgroupPatterns, np.ndarray] = {}
        self._words: dict[tuple[str, str], frozenset[str] | None] = {}
        self._has: dict[tuple[str, str], bool] = {}
        self.readable = ctx.row_of("") is not None
        self.root_controllers = self.words("", "cgroup.controllers") if self.readable else None
        self._unopened_before = self._unopened_total()

    # -- resolution (the daemon's) -------------------------------------------------------------

    def rows(self, patterns: CgroupPatterns) -> np.ndarray:
        got = self._rows.get(patterns)
        if got is None:
            got = self._rows[patterns] = np.asarray(self.ctx.resolve(patterns), dtype=np.int32)
        return got

    def piece_rows(self, comps: tuple[str, ...]) -> np.ndarray:
        return self.rows(CgroupPatterns((comps,)))

    def relpaths(self, rows: np.ndarray) -> list[str]:
        return [self.ctx.relpath(int(r)) for r in rows]

    def row_of(self, rel: str) -> int | None:
        return self.ctx.row_of(rel)

    def kill_preference(self, rows: np.ndarray,
                        patterns: CgroupPatterns | None = None) -> np.ndarray:
        """PREFER 1, NORMAL 0, AVOID -1 per row as a kill plugin over ``patterns`` ranks them:
        unreadable counts as NORMAL, and so does a ``user.oomd_avoid`` the trust rule ignores
        (oomd.xattr_trust)."""
        if len(rows) == 0:
            return np.empty(0, dtype=np.int8)
        return self.trust.preference(self.ctx, rows, None, patterns, report=False)[0]

    # -- files ---------------------------------------------------------------------------------

    def abspath(self, rel: str) -> str:
        if not rel:
            return self.fs
        return f"{self.fs}/{rel}" if self.fs != "/" else f"/{rel}"

    def words(self, rel: str, fname: str) -> frozenset[str] | None:
        """The whitespace-separated words of a small control file, None if unreadable."""
        key = (rel, fname)
        if key not in self._words:
            try:
                with open(os.path.join(self.abspath(rel), fname), "rb") as f:
                    self._words[key] = frozenset(f.read(65536).decode("ascii", "replace").split())
            except OSError:
                self._words[key] = None
        return self._words[key]

    def has_file(self, rel: str, fname: str) -> bool:
        key = (rel, fname)
        got = self._has.get(key)
        if got is None:
            try:
                os.stat(os.path.join(self.abspath(rel), fname))
                got = True
            except OSError:
                got = False
            self._has[key] = got
        return got

    def enable_chain(self, rel: str, controller: str) -> list[str] | None:
        """The cgroups, top-down, whose ``cgroup.subtree_control`` must gain ``controller`` for
        cgroup ``rel`` to get it; None if ``rel`` already has it (or is the root)."""
        own = self.words(rel, "cgroup.controllers")
        if not rel or own is None or controller in own:
            return None
        chain = []
        d = parent_of(rel)
        while True:
            chain.append(d)
            if not d:
                break
            have = self.words(d, "cgroup.controllers")
            if have is not None and controller in have:
                break
            d = parent_of(d)
        return chain[::-1]

    def psi_switched_off(self, rel: str) -> bool:
        """``cgroup.pressure`` reads 0: PSI files are hidden in this cgroup (Linux 6.5+)."""
        return self.words(rel, "cgroup.pressure") == frozenset({"0"})

    # -- completeness ----------------------------------------------------------------------------

    def _unopened_total(self) -> int:
        stats = self.ctx.read_stats
        return int(stats.get("fd_exhausted", 0)) + int(stats.get("dir_unopenable", 0))

    def unopened(self) -> int:
        """Cgroup directories or files the context could not open since this Tree was made
        (out of fds, or not accessible): what lint saw may be incomplete."""
        return self._unopened_total() - self._unopened_before
