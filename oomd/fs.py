"""Cold-path reads of system files: pure ``parse_*`` functions over text plus thin ``read_*``
wrappers that take the path (tests point them at fixtures). The per-tick cgroup reads are in
``oomd/_fastcg.pyx``; these are for start-up and plugin ``init``.
"""

from __future__ import annotations

import errno
import os
import re

_MEMINFO_LINE = re.compile(r"([^:\n]{1,255}):[ \t]+([0-9]+)")
MEMINFO_MAX_CHARS = 1 << 20  # /proc/meminfo is about 1.5 KiB


def parse_meminfo(text: str) -> dict[str, int]:
    """``Name:<blanks><number>[ kB]`` lines; every value x 1024, as oomd's ``Fs::getMeminfo``."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _MEMINFO_LINE.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)) * 1024) & ((1 << 64) - 1)
    return out


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """Raises OSError when the file cannot be read. Bytes that are not UTF-8 spoil only their
    line; at most 1 MiB is read (a config may point ``meminfo_location`` anywhere)."""
    if "\0" in path:  # open() would raise ValueError
        raise OSError(errno.EINVAL, "path contains a NUL byte", path)
    with open(path, errors="replace") as f:
        return parse_meminfo(f.read(MEMINFO_MAX_CHARS))


def cgroup2_mount(mounts: str = "/proc/mounts") -> str | None:
    """The mount point of the first ``cgroup2`` entry (third field), or None (reference §9.2)."""
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        return None
    return None


def parse_vmstat(text: str) -> dict[str, int]:
    """``key value`` lines; a line whose value is not a number is skipped (oomd aborts)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.split(" ", 1)[0])
        except ValueError:
            continue
    return out


def read_vmstat(path: str = "/proc/vmstat") -> dict[str, int]:
    with open(path) as f:
        return parse_vmstat(f.read())


def psi_available(proc_root: str = "/proc") -> bool:
    """PSI at the host level: `pressure/memory` (or the legacy `mempressure`) is readable."""
    for name in ("pressure/memory", "mempressure"):
        try:
            with open(os.path.join(proc_root, name), "rb") as f:
                if f.read(1):
                    return True
        except OSError:
            continue
    return False
