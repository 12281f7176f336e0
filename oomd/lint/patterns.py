"""Whether two cgroup patterns can ever name related cgroups, whatever the tree holds.

Two patterns are *related* when some cgroup one can match is the same as, an ancestor of or a
descendant of some cgroup the other can match: killing one then touches the other (a kill
takes the whole subtree). Component by component up to the shorter pattern, each pair must be
able to match a common name. Braces are expanded first, as resolution does (reference §3). A
literal against a glob is decided by ``fnmatch`` (with ``FNM_PERIOD``, as resolution); two
globs are decided by their literal beginnings and ends (``user-*.slice`` never meets
``system-*.slice``), else assumed to meet: lint then stays silent rather than guess.
"""

from __future__ import annotations

import os

from oomd import _fastcg
from oomd.cgpath import CgroupPatterns
from oomd.cgpath import compile_patterns

_MAGIC = frozenset("*?[\\")
_STOP = frozenset("*?[]\\")


def _is_glob(component: str) -> bool:
    return any(ch in _MAGIC for ch in component)


def _literal_prefix(glob: str) -> str:
    for i, ch in enumerate(glob):
        if ch in _STOP:
            return glob[:i]
    return glob


def _literal_suffix(glob: str) -> str:
    for i in range(len(glob) - 1, -1, -1):
        if glob[i] in _STOP:
            return glob[i + 1:]
    return glob


def components_meet(a: str, b: str) -> bool:
    """Whether some directory name can match both pattern components."""
    ga, gb = _is_glob(a), _is_glob(b)
    if not ga and not gb:
        return a == b
    if not ga:
        return _fastcg.fnmatch_name(os.fsencode(b), os.fsencode(a))
    if not gb:
        return _fastcg.fnmatch_name(os.fsencode(a), os.fsencode(b))
    pa, pb = _literal_prefix(a), _literal_prefix(b)
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return False
    sa, sb = _literal_suffix(a), _literal_suffix(b)
    return sa.endswith(sb) or sb.endswith(sa)


def _expanded(comps: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return compile_patterns(CgroupPatterns((comps,)))


def related(p: tuple[str, ...], q: tuple[str, ...]) -> bool:
    """Some cgroup matched by ``p`` is, contains or is inside some cgroup matched by ``q``."""
    for a in _expanded(p):
        for b in _expanded(q):
            if all(components_meet(x, y) for x, y in zip(a, b)):
                return True
    return False
