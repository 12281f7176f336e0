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


def meminfo(values_kb: Mapping[str, int]) -> str:
    """/proc/meminfo lines: ``Name:<padding>value kB``."""
    return "".join(f"{k + ':':<16}{v:>8} kB\n" for k, v in values_kb.items())


def swaps(devices: list[tuple[str, int, int]] = ()) -> str:
    """/proc/swaps with (path, size KiB, used KiB) rows, padded like the kernel."""
    out = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    for path, size, used in devices:
        out += f"{path:<40}partition\t{size}\t\t{used}\t\t-2\n"
    return out


def write_proc(
    root: str | os.PathLike,
    *,
    mem_total_kb: int = 16 << 20,
    mem_free_kb: int = 8 << 20,
    swap_devices: list[tuple[str, int, int]] = (),
    vmstat: Mapping[str, int] | None = None,
    swappiness: int | None = 60,
    mem_pressure=(0.0, 0.0, 0.0),
    io_pressure=(0.0, 0.0, 0.0),
    extra: Mapping[str, str] | None = None,
) -> Path:
    """A fake proc root (``OomdContext(proc_root=...)``): meminfo, swaps, vmstat,
    sys/vm/swappiness and pressure/{memory,io}. ``None`` leaves a file out; ``extra`` maps
    relative paths to raw contents (e.g. ``{"mempressure": ...}``)."""
    root = Path(root)
    (root / "sys" / "vm").mkdir(parents=True, exist_ok=True)
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    swap_total = sum(s for _, s, _ in swap_devices)
    swap_used = sum(u for _, _, u in swap_devices)
    files = {
        "meminfo": meminfo({"MemTotal": mem_total_kb, "MemFree": mem_free_kb,
                            "MemAvailable": mem_free_kb, "SwapTotal": swap_total,
                            "SwapFree": swap_total - swap_used}),
        "swaps": swaps(list(swap_devices)),
        "vmstat": kv(vmstat if vmstat is not None else {"pswpin": 0, "pswpout": 0,
                                                        "pgscan_kswapd": 0,
                                                        "pgscan_direct": 0}),
    }
    if swappiness is not None:
        files["sys/vm/swappiness"] = f"{swappiness}\n"
    if mem_pressure is not None:
        files["pressure/memory"] = _psi_arg(mem_pressure)
    if io_pressure is not None:
        files["pressure/io"] = _psi_arg(io_pressure)
    if extra:
        files.update(extra)
    for rel, content in files.items():
        (root / rel).write_text(content)
    return root
