"""Cgroup path patterns as plugins take them in their ``cgroup`` argument.

Mirrors oomd's ``CgroupPath`` and ``PluginArgParser::parseCgroup`` (reference §3): the argument
is split on ``,`` (empty pieces dropped, no trimming), each piece on ``/`` (empty components
dropped, so ``/`` is the root), duplicates collapse. ``compile_patterns`` expands braces as
glob(3)'s GLOB_BRACE does. Resolution against the filesystem lives in ``oomd.context.tree``.
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


def brace_expand(path: str) -> list[str]:
    """glob(3)'s GLOB_BRACE on one pattern: the first unescaped ``{...}`` with a matching close
    is replaced by each comma-separated alternative (recursively); an unterminated brace is
    left literal, as glibc does."""
    i = 0
    n = len(path)
    while i < n:
        c = path[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth = 0
            j = i
            alts_start = i + 1
            alts = []
            while j < n:
                cj = path[j]
                if cj == "\\":
                    j += 2
                    continue
                if cj == "{":
                    depth += 1
                elif cj == "}":
                    depth -= 1
                    if depth == 0:
                        alts.append(path[alts_start:j])
                        break
                elif cj == "," and depth == 1:
                    alts.append(path[alts_start:j])
                    alts_start = j + 1
                j += 1
            if j >= n:
                return [path]
            out = []
            for a in alts:
                out.extend(brace_expand(path[:i] + a + path[j + 1:]))
            return out
        i += 1
    return [path]


def compile_patterns(patterns: CgroupPatterns) -> tuple[tuple[str, ...], ...]:
    """Each pattern after brace expansion, as component tuples (the root is ``()``)."""
    out: dict[tuple[str, ...], None] = {}
    for comps in patterns:
        if not comps:
            out.setdefault((), None)
            continue
        for expanded in brace_expand("/".join(comps)):
            out.setdefault(split_components(expanded), None)
    return tuple(out)
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
