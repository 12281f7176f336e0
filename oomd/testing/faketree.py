"""Write fake cgroup2 trees in the kernel's file formats (reference §6).

``write_tree(root, {"system.slice/foo.service": cgroup(current=2 << 20, mem_pressure=(1, 2, 3))})``
creates the directories and the control files. Every fake cgroup gets a ``cgroup.controllers``
(oomd evicts contexts without one, reference §5.2) and ``memory.min``/``memory.low``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

MAX = "max"


def psi(some=(0.0, 0.0, 0.0), full=(0.0, 0.0, 0.0), some_total=0, full_total=0) -> str:
    """Upstream PSI format: a ``some`` and a ``full`` line with avg10/60/300 and total."""

    def line(kind, avgs, total):
        a10, a60, a300 = avgs
        return f"{kind} avg10={a10:.2f} avg60={a60:.2f} avg300={a300:.2f} total={total}\n"

    return line("some", some, some_total) + line("full", full, full_total)


def kv(pairs: Mapping[str, object]) -> str:
    """``key value`` lines (memory.stat, cgroup.stat, cgroup.events)."""
    return "".join(f"{k} {v}\n" for k, v in pairs.items())


def limit(value) -> str:
    return f"{MAX if value is None or value == MAX else int(value)}\n"


def cgroup(
    current: int | None = 0,
    *,
    mem_pressure=None,
    io_pressure=None,
    memory_min: int = 0,
    memory_low: int = 0,
    memory_high=MAX,
    memory_max=MAX,
    swap_current: int | None = None,
    swap_max=None,
    memory_stat: Mapping[str, int] | None = None,
    populated: int | None = 1,
    nr_dying_descendants: int | None = None,
    oom_group: int | None = None,
    procs: list[int] | None = None,
    controllers: str = "memory io",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The control files of one fake cgroup. ``None`` leaves a file out."""
    files: dict[str, str] = {"cgroup.controllers": controllers + "\n"}
    if current is not None:
        files["memory.current"] = f"{int(current)}\n"
    if memory_min is not None:
        files["memory.min"] = limit(memory_min)
    if memory_low is not None:
        files["memory.low"] = limit(memory_low)
    if memory_high is not None:
        files["memory.high"] = limit(memory_high)
    if memory_max is not None:
        files["memory.max"] = limit(memory_max)
    if mem_pressure is not None:
        files["memory.pressure"] = _psi_arg(mem_pressure)
    if io_pressure is not None:
        files["io.pressure"] = _psi_arg(io_pressure)
    if swap_current is not None:
        files["memory.swap.current"] = f"{int(swap_current)}\n"
    if swap_max is not None:
        files["memory.swap.max"] = limit(swap_max)
    if memory_stat is not None:
        files["memory.stat"] = kv(memory_stat)
    if populated is not None:
        files["cgroup.events"] = kv({"populated": populated, "frozen": 0})
    if nr_dying_descendants is not None:
        files["cgroup.stat"] = kv({"nr_descendants": 0, "nr_dying_descendants": nr_dying_descendants})
    if oom_group is not None:
        files["memory.oom.group"] = f"{oom_group}\n"
    if procs is not None:
        files["cgroup.procs"] = "".join(f"{p}\n" for p in procs)
    if extra:
        files.update(extra)
    return files


def _psi_arg(value) -> str:
    """A PSI spec: a ready string, or a (avg10, avg60, avg300) triple used for both lines."""
    if isinstance(value, str):
        return value
    return psi(some=value, full=value)


def write_tree(root: str | os.PathLike, spec: Mapping[str, Mapping[str, str]]) -> Path:
    """Create ``root`` and, for each relative cgroup path, its directory and files.

    The root cgroup is ``""``. Parent directories are created as needed (without files unless
    listed themselves). Returns ``root`` as a Path.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel, files in spec.items():
        d = root / rel if rel else root
        d.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (d / name).write_text(content)
    return root


def update_files(root: str | os.PathLike, spec: Mapping[str, Mapping[str, str]]) -> None:
    """Rewrite some files of an existing tree in place (a counter trajectory step).

    In place (same inode, one write), as the kernel updates its files: a reader that keeps
    the file open and re-reads it at offset 0 sees the new content.
    """
    root = Path(root)
    for rel, files in spec.items():
        d = root / rel if rel else root
        for name, content in files.items():
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, content.encode())
            finally:
                os.close(fd)
