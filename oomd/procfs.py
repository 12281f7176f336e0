"""Cold-path reads of /proc files that plugins need at init (reference §6).

``parse_meminfo`` turns ``/proc/meminfo`` text into bytes per key, as oomd's ``Fs::getMeminfo``:
``Name:<spaces or tabs><number>[ unit]``, every value times 1024 (oomd multiplies even the
unit-less ``HugePages_*`` counts). Lines that do not parse are skipped.
"""

from __future__ import annotations

MEMINFO_MAX_CHARS = 1 << 20  # /proc/meminfo is about 1.5 KiB


def parse_meminfo(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or not rest[:1] in (" ", "\t"):
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        out[name] = value * 1024
    return out


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int] | None:
    """The parsed file, or None if it cannot be read. Bytes that are not UTF-8 spoil only their
    line; at most 1 MiB is read (a config may point ``meminfo_location`` anywhere)."""
    try:
        with open(path, errors="replace") as f:
            return parse_meminfo(f.read(MEMINFO_MAX_CHARS))
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
