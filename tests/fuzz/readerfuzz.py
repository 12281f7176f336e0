"""Differential fuzzing of the cgroupfs and procfs parsers (issue 7 item 3): the Cython reader
(``OomdContext`` over ``oomd._fastcg``) against the plain reference reader
(``tests/reference_reader.py``), on the same mutated file contents.

A ``Bench`` holds one fake tree (the root and one cgroup ``c``) and one fake proc root, and both
readers over them. Each input rewrites one file (a cgroup control file or a /proc file) with
content derived from a valid sample by byte-level mutations (or raw bytes), refreshes both
readers, and compares every metric that file feeds: both readers must give the same value, or
both none, and neither may raise. Shared by tests/fuzz/test_fuzz_readers.py (CI) and
scripts/fuzz_readers.py (the long run), driven by either chooser of ``fuzzgen``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from oomd.testing.faketree import write_proc, write_tree
from reference_reader import READERS

UP = (b"some avg10=0.22 avg60=0.17 avg300=1.11 total=58761459\n"
      b"full avg10=0.12 avg60=0.07 avg300=0.51 total=38464525\n")
LEGACY = b"aggr 316016073\nsome 0.00 0.03 0.05\nfull 0.01 0.02 0.04\n"
MEMSTAT = (b"anon 1000\nfile 2000\nkernel 5\nshmem 30\npgscan 77\npgsteal 66\nactive_file 1\n"
           b"inactive_file 2\nactive_anon 3\ninactive_anon 4\nworkingset_refault_anon 5\n"
           b"workingset_refault_file 6\nworkingset_refault 11\n")
IOSTAT = (b"8:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0\n"
          b"8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=5 dios=1\n"
          b"253:0 rbytes=5 wbytes=5 rios=5 wios=5 dbytes=5 dios=5\n")
DEVICES = [(8, 0, False), (8, 16, True)]
MEMINFO = (b"MemTotal:       16318464 kB\nMemFree:         8159232 kB\n"
           b"MemAvailable:    9000000 kB\nSwapTotal:       2097148 kB\n"
           b"SwapFree:        1048574 kB\nHugePages_Total:       0\n")
SWAPS = (b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
         b"/dev/dm-1                               partition\t2097148\t\t1048574\t\t-2\n")
VMSTAT = b"nr_free_pages 2039808\npswpin 10\npswpout 20\npgscan_kswapd 5\npgscan_direct 6\n"

PSI_METRICS = ("{r}_pressure", "{r}_pressure_some", "{r}_pressure_some_total",
               "{r}_pressure_full_total")
STAT_METRICS = ("anon_usage", "file_usage", "shmem_usage", "pgscan", "pgsteal", "active_file",
                "inactive_file", "active_anon", "inactive_anon", "workingset_refault_anon",
                "workingset_refault_file", "pg_scan_cumulative", "pg_scan_rate")
PROTECTION = ("memory_protection", "effective_usage")

# cgroup file -> (valid samples, metrics of cgroup "c" it feeds)
CGROUP_FILES = {
    "memory.current": ([b"1048576\n", b"42", b"0\n"],
                       ("current_usage", "average_usage", "memory_growth") + PROTECTION),
    "memory.swap.current": ([b"4096\n"], ("swap_usage", "effective_swap_util_pct")),
    "memory.min": ([b"1024\n", b"max\n"], ("memory_min",) + PROTECTION),
    "memory.low": ([b"2048\n", b"max\n"], ("memory_low",) + PROTECTION),
    "memory.high": ([b"1024\n", b"max\n"], ("memory_high",)),
    "memory.max": ([b"1024\n", b"max\n"], ("memory_max",)),
    "memory.swap.max": ([b"1024\n", b"max\n"], ("swap_max", "effective_swap_max",
                                                 "effective_swap_free")),
    "memory.high.tmp": ([b"max 0\n", b"1048576 20000000\n"], ("memory_high_tmp",)),
    "memory.pressure": ([UP, LEGACY], tuple(m.format(r="mem") for m in PSI_METRICS)),
    "io.pressure": ([UP, LEGACY], tuple(m.format(r="io") for m in PSI_METRICS)),
    "memory.stat": ([MEMSTAT], STAT_METRICS),
    "io.stat": ([IOSTAT], ("io_cost_cumulative", "io_cost_rate")),
    "cgroup.events": ([b"populated 1\nfrozen 0\n", b"populated 0\n"], ("is_populated",)),
    "cgroup.stat": ([b"nr_descendants 1\nnr_dying_descendants 3\n"], ("nr_dying_descendants",)),
    "memory.oom.group": ([b"1\n", b"0\n"], ("oom_group",)),
}
# /proc file -> valid samples; compared through the system values and the root cgroup
PROC_FILES = {
    "meminfo": [MEMINFO],
    "swaps": [SWAPS, SWAPS.split(b"\n")[0] + b"\n"],
    "vmstat": [VMSTAT],
    "sys/vm/swappiness": [b"60\n", b"0\n"],
    "pressure/memory": [UP],
    "pressure/io": [UP],
}
ROOT_METRICS = ("current_usage", "mem_pressure", "mem_pressure_some", "io_pressure",
                "io_pressure_some", "mem_pressure_some_total", "mem_pressure_full_total")
TARGETS = sorted(CGROUP_FILES) + [f"/proc/{p}" for p in sorted(PROC_FILES)]

_PIECES = [b"0", b"1", b"9", b"-", b"+", b".", b" ", b"  ", b"\t", b"\n", b"=", b":", b"e", b"x",
           b"\x00", b"\xff", b"max", b"some ", b"full ", b"avg10=", b"avg60=", b"avg300=",
           b"total=", b"anon ", b"pgscan ", b"populated ", b"nr_dying_descendants ", b"8:0 ",
           b"rbytes=", b"kB", b"MemTotal:", b"SwapTotal:", b"pswpout ", b"inf", b"nan",
           b"99999999999999999999", b"-9223372036854775809", b"18446744073709551615",
           b"1e39", b"0x10"]


class FuzzMismatch(AssertionError):
    """The two readers disagree (or one raised)."""


def mutate(c, data: bytes) -> bytes:
    """A few byte-level edits: insert or replace a piece, delete, truncate, duplicate a line."""
    for _ in range(c.integer(0, 4)):
        pos = c.integer(0, len(data))
        op = c.integer(0, 5)
        piece = c.choice(_PIECES)
        if op == 0:
            data = data[:pos] + piece + data[pos:]
        elif op == 1:
            data = data[:pos] + piece + data[pos + len(piece):]
        elif op == 2:
            data = data[:pos] + data[pos + c.integer(1, 8):]
        elif op == 3:
            data = data[:pos]
        elif op == 4:
            lines = data.split(b"\n")
            i = c.integer(0, max(0, len(lines) - 1))
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        else:
            lines = data.split(b"\n")
            c_i, c_j = c.integer(0, len(lines) - 1), c.integer(0, len(lines) - 1)
            lines[c_i], lines[c_j] = lines[c_j], lines[c_i]
            data = b"\n".join(lines)
    return data


def gen_content(c, samples: list[bytes]) -> bytes:
    kind = c.integer(0, 9)
    if kind == 0:
        return c.text(64, "".join(chr(i) for i in range(256))).encode("latin-1")
    if kind == 1:
        return b""
    return mutate(c, c.choice(samples))


def gen_case(c) -> tuple[str, bytes]:
    target = c.choice(TARGETS)
    samples = (PROC_FILES[target[6:]] if target.startswith("/proc/") else CGROUP_FILES[target][0])
    return target, gen_content(c, samples)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (tuple, list, np.ndarray)) or isinstance(b, (tuple, list, np.ndarray)):
        a, b = list(a), list(b)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            _same(a[k], b[k]) for k in a)
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return fa == fb or math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return a == b and bool(a) == bool(b)


class Bench:
    """One fake tree and proc root, both readers over them; ``check`` runs one input."""

    def __init__(self, parent: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pyoomd-readerfuzz-", dir=parent))
        self.root = self.dir / "cg"
        self.proc = write_proc(self.dir / "proc")
        write_tree(self.root, {"": {"cgroup.controllers": "memory io\n"},
                               "c": {"cgroup.controllers": "memory io\n"}})
        self.cg = self.root / "c"
        self.readers = {kind: cls(str(self.root), proc_root=str(self.proc), devices=DEVICES,
                                  cache_files=False)
                        for kind, cls in READERS.items()}
        self.now = 1.0

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, target: str, content: bytes) -> None:
        path = self.proc / target[6:] if target.startswith("/proc/") else self.cg / target
        path.write_bytes(content)

    def _values(self, kind: str, target: str) -> dict:
        r = self.readers[kind]
        if target.startswith("/proc/"):
            out = {f"root.{m}": r.value(m, "") for m in ROOT_METRICS}
            out.update(self._system(kind))
            return out
        return {m: r.value(m, "c") for m in CGROUP_FILES[target][1]}

    def _system(self, kind: str) -> dict:
        r = self.readers[kind]
        if kind == "reference":
            s = r.sys
            return {"meminfo": s["meminfo"], "vmstat": s["vmstat"], "swap_total": s["swap_total"],
                    "swap_used": s["swap_used"], "swappiness": s["swappiness"] or 0}
        s = r.ctx.system
        return {"meminfo": s.meminfo, "vmstat": s.vmstat, "swap_total": s.swap_total,
                "swap_used": s.swap_used, "swappiness": s.swappiness}

    def check(self, target: str, content: bytes) -> str:
        """Write, refresh both, compare; returns "same" or raises FuzzMismatch."""
        self.write(target, content)
        self.now += 1.0
        got = {}
        for kind in sorted(self.readers):
            try:
                self.readers[kind].refresh(self.now)
                got[kind] = self._values(kind, target)
            except Exception as e:  # noqa: BLE001 - an escape is the finding
                raise FuzzMismatch(f"{kind} reader raised {type(e).__name__}: {e} on {target} "
                                   f"= {content!r}") from e
        a, b = got["cython"], got["reference"]
        bad = [k for k in a if not _same(a[k], b[k])]
        if bad:
            raise FuzzMismatch(f"{target} = {content!r}: " + "; ".join(
                f"{k}: cython {a[k]!r} reference {b[k]!r}" for k in bad))
        return "same"

    def reset(self, target: str) -> None:
        """Put a valid file back (the next input starts from a sane neighbour state)."""
        samples = PROC_FILES[target[6:]] if target.startswith("/proc/") else CGROUP_FILES[target][0]
        self.write(target, samples[0])
