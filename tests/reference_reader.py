"""A deliberately plain pure-Python reader: the oracle for the Cython one.

Written straight from the reference (§3, §5, §6) the way oomd 0.5.0 does it: one lazily
filled cache per cgroup, per-file reads through the cgroup's directory fd, recursion for
protection and swap. Slow on purpose and never used at runtime. Where oomd aborts on a
malformed file this reader returns None (unavailable), as pyoomd does.

API (shared with tests' adapter around OomdContext): ``refresh(now)``,
``value(metric, relpath)``, ``resolve(pattern_text) -> [relpath]``, ``children(relpath)``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import re
import stat

import numpy as np

DEFAULT_SSD = (1.21e-2, 6.25e-7, 1.07e-3, 2.61e-7, 2.37e-2, 9.10e-10)
DEFAULT_HDD = (1.31e-3, 1.13e-7, 2.58e-1, 5.04e-7, 0.0, 0.0)
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
FLT_MAX = 3.4028234663852886e38

# ---------------------------------------------------------------------------------------------
# C++ value parsing


def lines(data: bytes) -> list[bytes]:
    """std::getline over the whole file."""
    if not data:
        return []
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def cstr(b: bytes) -> bytes:
    """What a C function sees of std::string::c_str(): up to the first NUL."""
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def split(b: bytes, delim: bytes) -> list[bytes]:
    return [p for p in b.split(delim) if p]


_INT = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(\d+)")


def stoll(b: bytes) -> int | None:
    m = _INT.match(cstr(b))
    if not m:
        return None
    v = int(m.group(2))
    if m.group(1) == b"-":
        v = -v
    if not INT64_MIN <= v <= INT64_MAX:
        return None
    return v


def stoi(b: bytes) -> int | None:
    """std::stoi: as stoll, but a value outside int32 throws (None)."""
    v = stoll(b)
    return v if v is not None and -(1 << 31) <= v < (1 << 31) else None


def to_int32(v: int) -> int:
    """C's conversion of a long to int (scanf's %d): the low 32 bits, two's complement."""
    v &= (1 << 32) - 1
    return v - (1 << 32) if v >= 1 << 31 else v


def stoull(b: bytes) -> int | None:
    m = _INT.match(cstr(b))
    if not m:
        return None
    v = int(m.group(2))
    if v > (1 << 64) - 1:
        return None
    if m.group(1) == b"-":
        v = (-v) % (1 << 64)
    return v


def to_int64(u: int) -> int:
    u %= 1 << 64
    return u - (1 << 64) if u >= 1 << 63 else u


_FLOAT = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
    rb"(?:[pP][+-]?\d+)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))",
    re.IGNORECASE)


def stof(b: bytes):
    """std::stof: the longest float prefix, as float32; None where stof throws."""
    m = _FLOAT.match(cstr(b))
    if not m:
        return None
    text = m.group(1).decode()
    low = text.lower().lstrip("+-")
    if low.startswith("0x"):
        sign = -1.0 if text.startswith("-") else 1.0
        body = low[2:]
        mant, _, exp = body.partition("p")
        v = sign * float.fromhex("0x" + (mant or "0") + "p" + (exp or "0"))
    else:
        v = float(text)
        if math.isinf(v) and "inf" not in low:
            return None  # beyond a double: stof throws out_of_range
    if math.isfinite(v) and (abs(v) > FLT_MAX or (v != 0 and abs(v) < 1.1754943508222875e-38)):
        return None
    return np.float32(v)


def scanf_ulong(b: bytes) -> tuple[int, bytes] | None:
    """%lu: whitespace, sign, digits; returns (value mod 2^64, rest)."""
    m = _INT.match(b)
    if not m:
        return None
    v = int(m.group(2))
    if v > (1 << 64) - 1:
        v = (1 << 64) - 1
    elif m.group(1) == b"-":
        v = (-v) % (1 << 64)
    return v, b[m.end():]


def scanf_long(b: bytes) -> tuple[int, bytes] | None:
    m = _INT.match(b)
    if not m:
        return None
    v = int(m.group(2)) * (-1 if m.group(1) == b"-" else 1)
    v = max(INT64_MIN, min(INT64_MAX, v))
    return v, b[m.end():]


# ---------------------------------------------------------------------------------------------
# File formats (reference §6, src/oomd/util/Fs.cpp)


def parse_first_line(data: bytes):
    ls = lines(data)
    return stoll(ls[0]) if ls else None


def parse_limit(data: bytes):
    ls = lines(data)
    if len(ls) != 1:
        return None
    if ls[0] == b"max":
        return INT64_MAX
    return stoll(ls[0])


def parse_high_tmp(data: bytes):
    ls = lines(data)
    if len(ls) != 1:
        return None
    toks = split(ls[0], b" ")
    if len(toks) != 2:
        return None
    return INT64_MAX if toks[0] == b"max" else stoll(toks[0])


def parse_psi(data: bytes, kind: str):
    """(avg10, avg60, avg300, total or None) of the some/full line, or None."""
    ls = lines(data)
    if not ls:
        return None
    idx = 0 if kind == "some" else 1
    if ls[0].startswith(b"some") and len(ls) >= 2:
        toks = split(ls[idx], b" ")
        if len(toks) < 5 or toks[0] != kind.encode():
            return None
        vals = []
        for tok, key in zip(toks[1:4], (b"avg10", b"avg60", b"avg300")):
            kv = split(tok, b"=")
            if len(kv) < 2 or kv[0] != key:
                return None
            f = stof(kv[1])
            if f is None:
                return None
            vals.append(f)
        kv = split(toks[4], b"=")
        if len(kv) < 2 or kv[0] != b"total":
            return None
        total = stoull(kv[1])
        if total is None:
            return None
        return (vals[0], vals[1], vals[2], to_int64(total))
    if ls[0].startswith(b"aggr") and len(ls) >= 3:
        toks = split(ls[idx + 1], b" ")
        if len(toks) < 4 or toks[0] != kind.encode():
            return None
        vals = [stof(t) for t in toks[1:4]]
        if any(v is None for v in vals):
            return None
        return (vals[0], vals[1], vals[2], None)
    return None


def parse_memstat(data: bytes) -> dict[bytes, int]:
    out = {}
    for line in lines(data):
        s = cstr(line).lstrip(b" \t\n\v\f\r")
        if not s:
            continue
        m = re.match(rb"[^ \t\n\v\f\r]{1,255}", s)
        key = m.group(0)
        got = scanf_ulong(s[len(key):])
        if got is None:
            continue
        out[key] = to_int64(got[0])
    return out


def parse_iostat(data: bytes):
    """[(major, minor, rbytes, wbytes, rios, wios, dbytes, dios)] or None."""
    out = []
    for line in lines(data):
        s = cstr(line)
        vals = []
        got = scanf_long(s)  # %d: strtol, then the long is stored in an int
        if got is None:
            return None
        vals.append(to_int32(got[0]))
        s = got[1]
        if not s.startswith(b":"):
            return None
        got = scanf_long(s[1:])
        if got is None:
            return None
        vals.append(to_int32(got[0]))
        s = got[1]
        for key in (b"rbytes=", b"wbytes=", b"rios=", b"wios=", b"dbytes=", b"dios="):
            s = s.lstrip(b" \t\n\v\f\r")
            if not s.startswith(key):
                return None
            got = scanf_long(s[len(key):])
            if got is None:
                return None
            vals.append(got[0])
            s = got[1]
        out.append(tuple(vals))
    return out


def parse_events(data: bytes):
    for line in lines(data):
        toks = split(line, b" ")
        if len(toks) == 2 and toks[0] == b"populated":
            if toks[1] == b"1":
                return True
            if toks[1] == b"0":
                return False
            return None
    return None


def parse_meminfo(data: bytes) -> dict[str, int]:
    out = {}
    for line in lines(data):
        s = cstr(line)
        m = re.match(rb"([^:]{1,255}):[ \t]+", s)
        if not m:
            continue
        got = scanf_ulong(s[m.end():])
        if got is None:
            continue
        out[m.group(1).decode("utf-8", "surrogateescape")] = to_int64(got[0] * 1024)
    return out


def parse_vmstat(data: bytes) -> dict[str, int]:
    out = {}
    for line in lines(data):
        if b" " not in line:
            continue
        key, _, rest = line.partition(b" ")
        v = stoll(rest.split(b" ")[0])
        if v is not None:
            out[key.decode("utf-8", "surrogateescape")] = v
    return out


def parse_swaps(data: bytes) -> tuple[int, int]:
    total = used = 0
    for line in lines(data)[1:]:
        parts = split(line, b"\t")
        if len(parts) != 4:
            continue
        a, b = stoll(parts[1]), stoll(parts[2])
        if a is None or b is None:
            continue
        total += a * 1024
        used += b * 1024
    return total, used


# ---------------------------------------------------------------------------------------------
# glob(3), as oomd resolves patterns

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class _GlobT(ctypes.Structure):
    _fields_ = [("gl_pathc", ctypes.c_size_t), ("gl_pathv", ctypes.POINTER(ctypes.c_char_p)),
                ("gl_offs", ctypes.c_size_t), ("gl_flags", ctypes.c_int),
                ("_pad", ctypes.c_void_p * 8)]


_GLOB_ERR, _GLOB_NOSORT, _GLOB_BRACE, _GLOB_ONLYDIR = 1, 4, 1 << 10, 1 << 13


def glibc_glob(pattern: bytes) -> list[bytes]:
    g = _GlobT()
    rc = _libc.glob(pattern, _GLOB_ERR | _GLOB_NOSORT | _GLOB_BRACE | _GLOB_ONLYDIR, None,
                    ctypes.byref(g))
    try:
        if rc != 0:
            return []
        return [g.gl_pathv[i] for i in range(g.gl_pathc)]
    finally:
        _libc.globfree(ctypes.byref(g))


# ---------------------------------------------------------------------------------------------
# The reader


FILES = {
    "current_usage": "memory.current", "memory_min": "memory.min", "memory_low": "memory.low",
    "memory_high": "memory.high", "memory_max": "memory.max",
    "memory_high_tmp": "memory.high.tmp", "swap_usage": "memory.swap.current",
    "swap_max": "memory.swap.max",
}
STAT_METRICS = {
    "file_usage": b"file", "shmem_usage": b"shmem", "pgscan": b"pgscan",
    "active_file": b"active_file", "inactive_file": b"inactive_file",
    "active_anon": b"active_anon", "inactive_anon": b"inactive_anon",
    "workingset_refault_anon": b"workingset_refault_anon",
    "workingset_refault_file": b"workingset_refault_file",
    "workingset_refault": b"workingset_refault", "pgsteal": b"pgsteal",
}


class _Cgroup:
    def __init__(self, rel: str, fd: int):
        self.rel = rel
        self.fd = fd
        self.data: dict = {}
        self.archive: dict = {}


class ReferenceContext:
    def __init__(self, cgroup_fs: str, *, proc_root: str = "/proc", devices=(),
                 ssd_coeffs=DEFAULT_SSD, hdd_coeffs=DEFAULT_HDD, interval: float = 5):
        self.cgroup_fs = cgroup_fs.rstrip("/") if cgroup_fs != "/" else cgroup_fs
        self.proc_root = proc_root
        self.devices = {(a, b): (hdd_coeffs if h else ssd_coeffs) for a, b, h in devices}
        self.interval = interval
        self.cache: dict[str, _Cgroup] = {}
        self.tick = 0
        self.now = 0.0
        self.sys: dict = {}
        self.prev_vmstat: dict | None = None
        self.swapout = (0.0, 0.0, 0.0)

    # -- files
    def _read(self, cg: _Cgroup, name: str) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=cg.fd)
        except OSError:
            return None
        try:
            chunks = []
            while True:
                b = os.read(fd, 1 << 16)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _proc(self, name: str) -> bytes | None:
        try:
            with open(os.path.join(self.proc_root, name), "rb") as f:
                return f.read()
        except OSError:
            return None

    # -- contexts
    def _abs(self, rel: str) -> str:
        return self.cgroup_fs + ("/" + rel if rel else "")

    def _get(self, rel: str) -> _Cgroup | None:
        cg = self.cache.get(rel)
        if cg is None:
            try:
                fd = os.open(self._abs(rel), os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return None
            cg = self.cache[rel] = _Cgroup(rel, fd)
        return cg

    def refresh(self, now: float) -> None:
        self.tick += 1
        self.now = now
        for rel in list(self.cache):
            cg = self.cache[rel]
            cg.archive = {k: cg.data.get(k) for k in ("average_usage", "io_cost_cumulative",
                                                      "pg_scan_cumulative")}
            cg.data = {}
            try:
                alive = os.access("cgroup.controllers", os.F_OK, dir_fd=cg.fd)
            except OSError:
                alive = False
            if not alive:
                os.close(cg.fd)
                del self.cache[rel]
        self._system()

    def _system(self):
        sy = {}
        raw = self._proc("swaps")
        sy["swap_total"], sy["swap_used"] = parse_swaps(raw) if raw is not None else (0, 0)
        raw = self._proc("sys/vm/swappiness")
        ls = lines(raw) if raw is not None else []
        sy["swappiness"] = stoi(ls[0]) if len(ls) == 1 else None  # Fs::getSwappiness: stoi
        raw = self._proc("vmstat")
        vm = parse_vmstat(raw) if raw is not None else None
        bps = a60 = a300 = 0.0
        if vm is not None and self.prev_vmstat and "pswpout" in vm \
                and "pswpout" in self.prev_vmstat:
            bps = (vm["pswpout"] - self.prev_vmstat["pswpout"]) * 4096.0 / self.interval
            a60 = bps + math.exp(-self.interval / 60.0) * (self.swapout[1] - bps)
            a300 = bps + math.exp(-self.interval / 300.0) * (self.swapout[2] - bps)
        self.swapout = (bps, a60, a300)
        self.prev_vmstat = vm
        sy["vmstat"] = vm or {}
        raw = self._proc("meminfo")
        sy["meminfo"] = parse_meminfo(raw) if raw is not None else {}
        raw = self._proc("pressure/memory")
        if raw is None:
            raw = self._proc("mempressure")
        sy["mem_psi"] = raw
        sy["io_psi"] = self._proc("pressure/io")
        self.sys = sy

    # -- metrics
    def value(self, metric: str, rel: str):
        cg = self._get(rel)
        if cg is None:
            return None
        if metric not in cg.data:
            cg.data[metric] = self._compute(cg, metric)
        return cg.data[metric]

    def _psi(self, cg, file, kind, part):
        if cg.rel == "":
            raw = self.sys["mem_psi"] if file == "memory.pressure" else self.sys["io_psi"]
        else:
            raw = self._read(cg, file)
        got = parse_psi(raw, kind) if raw is not None else None
        if got is None:
            return None
        return got[:3] if part == "avgs" else got[3]

    def _compute(self, cg: _Cgroup, metric: str):
        rel = cg.rel
        v = self.value
        if metric == "current_usage":
            if rel == "":
                mi = self.sys["meminfo"]
                if "MemTotal" in mi and "MemFree" in mi:
                    return mi["MemTotal"] - mi["MemFree"]
                return None
            raw = self._read(cg, "memory.current")
            return parse_first_line(raw) if raw is not None else None
        if metric == "swap_usage":
            raw = self._read(cg, "memory.swap.current")
            return parse_first_line(raw) if raw is not None else None
        if metric in ("memory_min", "memory_low", "memory_high", "memory_max", "swap_max"):
            raw = self._read(cg, FILES[metric])
            return parse_limit(raw) if raw is not None else None
        if metric == "memory_high_tmp":
            raw = self._read(cg, "memory.high.tmp")
            return parse_high_tmp(raw) if raw is not None else None
        psi = {"mem_pressure": ("memory.pressure", "full", "avgs"),
               "mem_pressure_some": ("memory.pressure", "some", "avgs"),
               "io_pressure": ("io.pressure", "full", "avgs"),
               "io_pressure_some": ("io.pressure", "some", "avgs"),
               "mem_pressure_some_total": ("memory.pressure", "some", "total"),
               "mem_pressure_full_total": ("memory.pressure", "full", "total"),
               "io_pressure_some_total": ("io.pressure", "some", "total"),
               "io_pressure_full_total": ("io.pressure", "full", "total")}
        if metric in psi:
            return self._psi(cg, *psi[metric])
        if metric == "memory_stat":
            raw = self._read(cg, "memory.stat")
            return parse_memstat(raw) if raw is not None else None
        if metric == "anon_usage":
            ms = v("memory_stat", rel)
            return 0 if ms is None else ms.get(b"anon", 0)
        if metric in STAT_METRICS:
            ms = v("memory_stat", rel)
            return None if ms is None else ms.get(STAT_METRICS[metric])
        if metric == "io_cost_cumulative":
            raw = self._read(cg, "io.stat")
            st = parse_iostat(raw) if raw is not None else None
            if st is None:
                return None
            cost = 0.0
            for major, minor, rb, wb, ri, wi, db, di in st:
                c = self.devices.get((major, minor))
                if c is None:
                    continue
                cost += ri * c[0] + rb * c[1] + wi * c[2] + wb * c[3] + di * c[4] + db * c[5]
            return cost
        if metric == "io_cost_rate":
            cur = v("io_cost_cumulative", rel)
            if cur is None:
                return None
            prev = cg.archive.get("io_cost_cumulative")
            return 0.0 if prev is None else cur - prev
        if metric == "pg_scan_cumulative":
            ms = v("memory_stat", rel)
            if ms is None:
                return None
            return ms.get(b"pgscan")        # oomd aborts when absent
        if metric == "pg_scan_rate":
            cur = v("pg_scan_cumulative", rel)
            prev = cg.archive.get("pg_scan_cumulative")
            if cur is None or prev is None:
                return None
            return cur - prev
        if metric == "average_usage":
            cur = v("current_usage", rel)
            if cur is None:
                return None
            prev = cg.archive.get("average_usage") or 0
            return int(prev * 0.75 + cur / 4.0)
        if metric == "memory_growth":
            cur, avg = v("current_usage", rel), v("average_usage", rel)
            if cur is None or avg is None:
                return None
            return 0.0 if avg == 0 else cur / avg
        if metric == "raw_protection":
            cur, mn, lo = v("current_usage", rel), v("memory_min", rel), v("memory_low", rel)
            if cur is None or mn is None or lo is None:
                return None
            return min(cur, max(mn, lo))
        if metric == "memory_protection":
            if rel == "":
                return v("current_usage", rel)
            parent, _, _ = rel.rpartition("/")
            if parent == "":
                return v("raw_protection", rel)
            if self._get(parent) is None:
                return None
            total = 0
            for sib in self.children(parent):
                total += v("raw_protection", sib) or 0
            if total == 0:
                return 0
            raw = v("raw_protection", rel)
            pp = v("memory_protection", parent)
            if raw is None or pp is None:
                return None
            return int(raw * min(1.0, 1.0 * pp / total))
        if metric == "effective_usage":
            cur, prot = v("current_usage", rel), v("memory_protection", rel)
            if cur is None or prot is None:
                return None
            return cur - prot
        if metric == "is_populated":
            raw = self._read(cg, "cgroup.events")
            return parse_events(raw) if raw is not None else None
        if metric == "nr_dying_descendants":
            raw = self._read(cg, "cgroup.stat")
            return None if raw is None else parse_memstat(raw).get(b"nr_dying_descendants", 0)
        if metric == "oom_group":
            raw = self._read(cg, "memory.oom.group")
            return None if raw is None else lines(raw) == [b"1"]
        if metric == "kill_preference":
            def has(name):
                try:
                    os.getxattr(cg.fd, name)
                    return True
                except OSError:
                    return False
            if has("trusted.oomd_prefer") or has("user.oomd_prefer"):
                return 1
            if has("trusted.oomd_avoid") or has("user.oomd_avoid"):
                return -1
            return 0
        if metric == "id":
            return os.fstat(cg.fd).st_ino
        if metric in ("effective_swap_max", "effective_swap_free", "effective_swap_util_pct"):
            return self._eswap(cg, metric)
        raise KeyError(metric)

    def _eswap(self, cg, metric):
        rel = cg.rel
        v = self.value
        total, used = self.sys["swap_total"], self.sys["swap_used"]
        if rel == "":
            if metric == "effective_swap_max":
                return total
            if metric == "effective_swap_free":
                return total - used
            return 0.0 if total == 0 else used / total
        parent = rel.rpartition("/")[0]
        smax = v("swap_max", rel)
        if smax is None:
            return None
        if metric == "effective_swap_max":
            p = v("effective_swap_max", parent)
            return None if p is None else min(p, smax)
        if metric == "effective_swap_util_pct" and smax == 0:
            return 0.0
        cur = v("swap_usage", rel)
        if cur is None:
            return None
        if metric == "effective_swap_free":
            p = v("effective_swap_free", parent)
            return None if p is None else min(p, smax - cur)
        p = v("effective_swap_util_pct", parent)
        return None if p is None else max(p, cur / smax)

    # -- names
    def children(self, rel: str) -> list[str]:
        """Child directories (d_type DT_DIR, no dot names), sorted by name (bytes)."""
        cg = self._get(rel)
        if cg is None:
            return []
        out = []
        try:
            with os.scandir(self._abs(rel)) as it:
                for e in it:
                    if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
                        continue
                    out.append(e.name)
        except OSError:
            return []
        out.sort(key=os.fsencode)
        return [f"{rel}/{n}" if rel else n for n in out]

    def resolve(self, text: str) -> list[str]:
        """Relative paths matching a cgroup argument (glibc glob, directories only), sorted by
        relative path; results through '.' or '..' components are left out."""
        found = set()
        for piece in text.split(","):
            if not piece:
                continue
            comps = [c for c in piece.split("/") if c]
            if not comps:
                found.add("")
                continue
            pat = os.fsencode(self.cgroup_fs) + b"/" + os.fsencode("/".join(comps))
            for p in glibc_glob(pat):
                path = os.fsdecode(p)
                if not stat.S_ISDIR(os.stat(path).st_mode):
                    continue
                rel = path[len(self.cgroup_fs) + 1:]
                if any(c in (".", "..") for c in rel.split("/")):
                    continue
                found.add(rel)
        return sorted(found, key=os.fsencode)


# ---------------------------------------------------------------------------------------------
# Two-implementation harness: every parser test runs against both readers through this API.


class PyoomdReader:
    """OomdContext behind the reference reader's API."""

    name = "cython"

    def __init__(self, cgroup_fs: str, *, proc_root: str, devices=(), **kw):
        from oomd.context import OomdContext

        kw.setdefault("fd_budget", 4096)
        self.ctx = OomdContext(cgroup_fs, proc_root=proc_root, devices=devices, **kw)

    def refresh(self, now: float) -> None:
        self.ctx.refresh(now)

    def value(self, metric: str, rel: str):
        row = self.ctx.row_of(rel)
        return None if row is None else self.ctx.value(metric, row)

    def resolve(self, text: str) -> list[str]:
        from oomd.cgpath import CgroupPatterns

        return [self.ctx.relpath(r) for r in self.ctx.resolve(CgroupPatterns.parse(text))]

    def children(self, rel: str) -> list[str]:
        row = self.ctx.row_of(rel)
        return [] if row is None else [self.ctx.relpath(r) for r in self.ctx.children(row)]


class PlainReader(ReferenceContext):
    name = "reference"

    def __init__(self, cgroup_fs: str, *, proc_root: str, devices=(), **kw):
        kw.pop("cache_files", None)
        kw.pop("fd_budget", None)
        super().__init__(cgroup_fs, proc_root=proc_root, devices=devices, **kw)


READERS = {"cython": PyoomdReader, "reference": PlainReader}
