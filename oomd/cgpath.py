"""Cgroup path patterns as plugins take them in their ``cgroup`` argument.

Mirrors oomd's ``CgroupPath`` and ``PluginArgParser::parseCgroup`` (reference §3): the argument
is split on ``,`` (empty pieces dropped, no trimming), each piece on ``/`` (empty components
dropped, so ``/`` is the root), duplicates collapse. Resolution against the filesystem lives in
``oomd.context``.
"""

from __future__ import annotations

from dataclasses import dataclass

GLOB_CHARS = frozenset("*?[{")


def split_components(path: str) -> tuple[str, ...]:
    """``"/a//b/"`` -> ``("a", "b")``; the root is ``()``."""
    return tuple(c for c in path.split("/") if c)


def is_glob(component: str) -> bool:
    return any(ch in GLOB_CHARS for ch in component)


@dataclass(frozen=True)
class CgroupPatterns:
    """An ordered, de-duplicated set of patterns; each pattern is a tuple of components."""

    patterns: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> CgroupPatterns:
        seen: dict[tuple[str, ...], None] = {}
        for piece in text.split(","):
            if piece:
                seen.setdefault(split_components(piece), None)
        return cls(tuple(seen))

    def __iter__(self):
        return iter(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def __str__(self) -> str:
        return ",".join("/".join(p) if p else "/" for p in self.patterns)

    def matches_path(self, relpath: str) -> bool:
        """The prekill-hook match rule (reference §2.6): pairwise components up to the shorter
        length, ``*`` matches any single component; no other wildcard syntax."""
        comps = split_components(relpath)
        for pat in self.patterns:
            if all(p == "*" or p == c for p, c in zip(pat, comps)):
                return True
        return False


# -- oomd HEAD: patterns relative to a ruleset cgroup (reference §10) ----------------------------

_ESCAPE = str.maketrans({c: "\\" + c for c in "\\*?[{"})


def glob_escape(component: str) -> str:
    """A cgroup name as a pattern component that matches only that name: glob's special
    characters are backslash-escaped (fnmatch(3) honours the escapes, brace expansion skips
    them). Cgroup names are chosen by whoever owns the parent, so a name such as ``*`` must
    never widen a pattern built from it."""
    return component.translate(_ESCAPE)


def literal_prefix(relpath: str) -> tuple[str, ...]:
    """The escaped components of a concrete cgroup path, to prefix patterns with."""
    return tuple(glob_escape(c) for c in split_components(relpath))


def parse_relative(text: str) -> CgroupPatterns:
    """A ``ruleset_cgroup`` argument: ``cgroup``'s syntax, but no ``.`` or ``..`` component,
    so that no pattern can leave the ruleset cgroup. Raises ValueError."""
    patterns = CgroupPatterns.parse(text)
    for pat in patterns:
        for comp in pat:
            if comp in (".", ".."):
                raise ValueError(
                    f"pattern {'/'.join(pat)!r} has a {comp!r} component: ruleset_cgroup "
                    "patterns are relative to the ruleset cgroup and may not leave it")
    return patterns


def prefixed(prefixes: CgroupPatterns, patterns: CgroupPatterns) -> list[tuple[str, ...]]:
    """Every prefix joined with every pattern (``<ruleset cgroup>/<pattern>``)."""
    return [pre + pat for pre in prefixes for pat in patterns]
