"""Generate big fake cgroup2 trees shaped like a server, in the kernel's file formats.

``generate(root, n)`` writes about ``n`` leaf cgroups: a tenth as ``system.slice/<unit>.service``
and the rest as ``workload.slice/<job>.slice/<task>.scope`` (jobs ≈ √rest), plus the slices
themselves and the root. Every cgroup directory holds the control files a cgroup2 directory with
the memory and io controllers has (reference §6): the ones oomd reads carry realistic values
(low pressure, so detectors do not fire), the others are empty, so directory listings cost what
they cost on a real host. Values are deterministic for a given ``seed``.

Used by the benchmarks (``bench/``) and by tests that need a tree of some size.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

# Control files of a cgroup2 directory that oomd never reads: written empty.
QUIET_FILES = (
    "cgroup.freeze", "cgroup.kill", "cgroup.max.depth", "cgroup.max.descendants",
    "cgroup.subtree_control", "cgroup.threads", "cgroup.type", "cpu.idle", "cpu.max",
    "cpu.max.burst", "cpu.pressure", "cpu.stat", "cpu.weight", "cpu.weight.nice",
    "io.max", "io.weight", "memory.events", "memory.events.local", "memory.numa_stat",
    "memory.peak", "memory.reclaim", "memory.swap.events", "memory.swap.high",
    "memory.zswap.current", "memory.zswap.max", "pids.current", "pids.events", "pids.max",
    "pids.peak",
)

MEMORY_STAT_KEYS = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
    "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback",
    "swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon", "active_anon",
    "inactive_file", "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable",
    "slab", "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
    "workingset_nodereclaim", "pgscan", "pgsteal", "pgscan_kswapd", "pgscan_direct",
    "pgscan_khugepaged", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgfault",
    "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed",
    "zswpin", "zswpout", "thp_fault_alloc", "thp_collapse_alloc",
)


@dataclass
class GeneratedTree:
    root: Path
    system_units: list[str] = field(default_factory=list)    # relative paths
    workload_tasks: list[str] = field(default_factory=list)  # relative paths
    interior: list[str] = field(default_factory=list)        # slices and jobs

    @property
    def leaves(self) -> list[str]:
        return self.system_units + self.workload_tasks

    @property
    def all_cgroups(self) -> list[str]:
        return [""] + self.interior + self.leaves


def _psi(rng: random.Random) -> bytes:
    def line(kind):
        a10 = rng.choice((0.0, 0.0, 0.0, 0.01, 0.12, 0.5))
        a60 = a10 / 2
        a300 = a10 / 4
        total = rng.randrange(0, 10 ** 9)
        return f"{kind} avg10={a10:.2f} avg60={a60:.2f} avg300={a300:.2f} total={total}\n"

    return (line("some") + line("full")).encode()


def _memory_stat(rng: random.Random, current: int) -> bytes:
    anon = current * rng.randrange(30, 90) // 100
    file = current - anon
    out = []
    for key in MEMORY_STAT_KEYS:
        if key == "anon":
            v = anon
        elif key == "file":
            v = file
        elif key == "active_anon":
            v = anon // 2
        elif key == "inactive_anon":
            v = anon - anon // 2
        elif key == "active_file":
            v = file // 3
        elif key == "inactive_file":
            v = file - file // 3
        else:
            v = rng.randrange(0, 1 << 20)
        out.append(f"{key} {v}\n")
    return "".join(out).encode()


def _files(rng: random.Random, *, leaf: bool) -> dict[str, bytes]:
    mib = 1 << 20
    current = rng.randrange(1, 512) * mib if leaf else rng.randrange(512, 4096) * mib
    low = rng.choice((0, 0, 0, 64 * mib, 256 * mib))
    f = {
        "cgroup.controllers": b"cpu io memory pids\n",
        "cgroup.events": b"populated 1\nfrozen 0\n",
        "cgroup.stat": b"nr_descendants 0\nnr_dying_descendants 0\n",
        "cgroup.procs": b"",
        "memory.current": b"%d\n" % current,
        "memory.min": b"0\n",
        "memory.low": b"%d\n" % low,
        "memory.high": b"max\n",
        "memory.max": b"max\n",
        "memory.swap.current": b"%d\n" % rng.randrange(0, 16 * mib),
        "memory.swap.max": b"max\n",
        "memory.oom.group": b"0\n",
        "memory.pressure": _psi(rng),
        "io.pressure": _psi(rng),
        "memory.stat": _memory_stat(rng, current),
        "io.stat": (b"8:0 rbytes=%d wbytes=%d rios=%d wios=%d dbytes=0 dios=0\n"
                    % (rng.randrange(1 << 30), rng.randrange(1 << 30), rng.randrange(1 << 20),
                       rng.randrange(1 << 20))),
    }
    for name in QUIET_FILES:
        f[name] = b""
    return f


def _write_dir(path: Path, files: dict[str, bytes]) -> None:
    os.makedirs(path, exist_ok=True)
    for name, content in files.items():
        fd = os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if content:
                os.write(fd, content)
        finally:
            os.close(fd)


def shape(n: int) -> tuple[int, int, int]:
    """(system units, workload jobs, tasks per job) for about n leaves."""
    units = max(1, n // 10)
    rest = max(1, n - units)
    jobs = max(1, round(math.sqrt(rest)))
    return units, jobs, max(1, rest // jobs)


def generate(root: str | os.PathLike, n: int, *, seed: int = 0) -> GeneratedTree:
    """Write a tree of about ``n`` leaf cgroups under ``root`` (created)."""
    rng = random.Random(seed)
    root = Path(root)
    units, jobs, tasks = shape(n)
    tree = GeneratedTree(root)
    _write_dir(root, _files(rng, leaf=False))
    for rel in ("system.slice", "workload.slice"):
        _write_dir(root / rel, _files(rng, leaf=False))
        tree.interior.append(rel)
    for i in range(units):
        rel = f"system.slice/unit-{i:05d}.service"
        _write_dir(root / rel, _files(rng, leaf=True))
        tree.system_units.append(rel)
    for j in range(jobs):
        job = f"workload.slice/job-{j:04d}.slice"
        _write_dir(root / job, _files(rng, leaf=False))
        tree.interior.append(job)
        for t in range(tasks):
            rel = f"{job}/task-{t:04d}.scope"
            _write_dir(root / rel, _files(rng, leaf=True))
            tree.workload_tasks.append(rel)
    return tree
