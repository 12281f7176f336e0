"""Real cgroups and real memory pressure on this host's kernel, for end-to-end tests and soaks.

The kernel these tests run on has a hybrid layout: v1 controllers (``memory`` among them) under
``/sys/fs/cgroup/<ctrl>`` and a cgroup2 tree with PSI files but no memory controller. Memory
pressure is made like this: a *hog* process joins a v1 memory cgroup with a small limit
(64 MiB) and a cgroup2 test cgroup, writes a file four times that size itself (so its page cache
is charged to it), then maps the file and touches every page in a loop. Each pass refaults pages
the memcg limit just evicted; the kernel accounts the wait as a memory stall of the hog's cgroup2
cgroup, whose ``memory.pressure`` ``some``/``full`` avg10 then climbs past 10 within seconds.
(A plain ``read()`` loop over the same file stays near 2 on this kernel: readahead hides most of
the refault time. Mapped, sequential touches do not.)

Everything lives under one parent per harness, ``<cgroup2>/pyoomd-test-<pid>-<random>`` (and the
same name under the v1 memory mount). ``RealCgroups.cleanup()`` (also the context manager exit)
kills what the harness started and anything left in its own cgroups, then removes its cgroups
bottom-up and its temporary directories. It never touches a cgroup or process it did not create.

``skip_reason()`` says why a host cannot run these tests (not root, no cgroup2, no PSI, no v1
memory controller, no disk-backed temporary directory), or returns None.
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from oomd.fs import cgroup2_mount  # noqa: F401 - part of this harness's API (tests, scripts)

PREFIX = "pyoomd-test"
MiB = 1 << 20
HOG_LIMIT = 64 * MiB
HOG_FILE = 256 * MiB
# File systems whose pages cannot be reclaimed without swap: a hog file there is OOM, not pressure.
_MEMORY_BACKED_FS = frozenset({"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"})

# The children run these with ``python -c``: no dependency on this package's import path. Each
# one first asks the kernel to SIGKILL it when its parent dies (a crashed test leaves no orphan),
# then moves itself into its cgroups (writing "0" to cgroup.procs moves the writer) before it
# allocates anything, then says so on stdout.
_CHILD_PRELUDE = r"""
import ctypes, os, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass
if os.getppid() != PARENT:
    os._exit(70)
for procs in PROCS:
    with open(procs, "w") as f:
        f.write("0")
print("joined", flush=True)
deadline = time.monotonic() + MAX_SECONDS
"""

HOG_SOURCE = _CHILD_PRELUDE + r"""
import mmap
path = os.path.join(WORKDIR, "hog.dat")
chunk = b"\xa5" * (1 << 20)
with open(path, "wb") as f:
    for _ in range(FILE_BYTES >> 20):
        f.write(chunk)
    f.flush()
    os.fsync(f.fileno())
print("written", flush=True)
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, FILE_BYTES, prot=mmap.PROT_READ)
page = mmap.PAGESIZE
while time.monotonic() < deadline:
    for off in range(0, FILE_BYTES, page):
        m[off]
"""

SLEEPER_SOURCE = _CHILD_PRELUDE + r"""
while time.monotonic() < deadline:
    time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
"""


_OCTAL = re.compile(r"\\([0-7]{3})")


class RealCgError(RuntimeError):
    """The harness could not set something up or tear it down."""


# -- what the host offers -----------------------------------------------------------------------


def _mounts(mounts: str = "/proc/mounts") -> list[tuple[str, str, str, str]]:
    """(device, mount point, fs type, options) of each mount; octal escapes decoded."""
    out = []
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4:
                    point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), parts[1])
                    out.append((parts[0], point, parts[2], parts[3]))
    except OSError:
        pass
    return out


def v1_memory_mount(mounts: str = "/proc/mounts") -> str | None:
    for _dev, point, fstype, opts in _mounts(mounts):
        if fstype == "cgroup" and "memory" in opts.split(","):
            return point
    return None


def fs_type(path: str, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system holding ``path`` (longest mount-point prefix)."""
    path = os.path.realpath(path)
    best, best_type = "", None
    for _dev, point, fstype, _opts in _mounts(mounts):
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, best_type = point, fstype
    return best_type


def disk_temp_parent() -> str | None:
    """A directory on a disk-backed file system for the hog's file, or None."""
    for cand in (os.environ.get("PYOOMD_HOG_DIR"), "/var/tmp", tempfile.gettempdir(), os.getcwd()):
        if cand and os.path.isdir(cand) and os.access(cand, os.W_OK):
            if fs_type(cand) not in _MEMORY_BACKED_FS:
                return cand
    return None


def skip_reason(need_pressure: bool = True) -> str | None:
    """Why this host cannot run real-cgroup tests, or None if it can."""
    if os.geteuid() != 0:
        return "real cgroup tests need root (to create cgroups and move processes)"
    if not os.path.exists("/proc/pressure/memory"):
        return "the kernel has no PSI (/proc/pressure/memory is missing)"
    cg2 = cgroup2_mount()
    if cg2 is None:
        return "no cgroup2 file system in /proc/mounts"
    if not os.path.exists(os.path.join(cg2, "memory.pressure")):
        return f"{cg2} has no memory.pressure (PSI for cgroups disabled?)"
    if not os.access(cg2, os.W_OK):
        return f"{cg2} is not writable"
    if need_pressure:
        if v1_memory_mount() is None:
            return ("no cgroup v1 memory controller mounted: the pressure recipe needs a v1 memory "
                    "limit on the hog (this kernel's cgroup2 has no memory controller)")
        if disk_temp_parent() is None:
            return "no disk-backed writable directory for the hog's file (only tmpfs found)"
    return None


# -- small readers (independent of pyoomd's own, on purpose) -------------------------------------


@dataclass(frozen=True)
class Psi:
    some: tuple[float, float, float]
    full: tuple[float, float, float]
    some_total: int
    full_total: int


def parse_psi(text: str) -> Psi:
    lines = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        fields = dict(p.split("=", 1) for p in parts[1:])
        lines[parts[0]] = (
            (float(fields["avg10"]), float(fields["avg60"]), float(fields["avg300"])),
            int(fields["total"]),
        )
    some, full = lines["some"], lines.get("full", ((0.0, 0.0, 0.0), 0))
    return Psi(some[0], full[0], some[1], full[1])


def read_psi(cgroup_dir: str, resource: str = "memory") -> Psi:
    with open(os.path.join(cgroup_dir, f"{resource}.pressure")) as f:
        return parse_psi(f.read())


def read_keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.oom_control, memory.events, cgroup.events, /proc/vmstat)."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                try:
                    out[parts[0]] = int(parts[1])
                except ValueError:
                    continue
    return out


def cgroup_pids(cgroup_dir: str) -> list[int]:
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def global_oom_kills() -> int | None:
    """``oom_kill`` of /proc/vmstat: every kernel OOM kill on the host (any cgroup)."""
    try:
        return read_keyed("/proc/vmstat").get("oom_kill")
    except OSError:
        return None


def readable(fd, timeout: float) -> bool:
    """Whether ``fd`` (an int or a file object) has data (or EOF) within ``timeout`` seconds.
    poll(2), not select(2): a test process that holds many fds gets pipes past FD_SETSIZE."""
    po = select.poll()
    po.register(fd, select.POLLIN | select.POLLHUP)
    return bool(po.poll(max(0.0, timeout) * 1000))


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """Stop a process as systemd would: SIGTERM, then SIGKILL after ``timeout`` seconds.
    Returns its exit status if it ended on SIGTERM, None if it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_for(cond: Callable[[], object], timeout: float, interval: float = 0.25):
    """Poll ``cond`` until it returns a true value (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# -- the harness ----------------------------------------------------------------------------------


@dataclass
class Child:
    """A process the harness started; ``name`` is for messages."""

    name: str
    proc: subprocess.Popen
    cgroups: tuple[str, ...]
    memcg_v1: str | None = None
    _lines: list = field(default_factory=list)
    _partial: bytes = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_line(self, want: str, timeout: float) -> bool:
        """Wait until the child has printed the line ``want``; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while want not in self._lines:
            left = deadline - time.monotonic()
            if left <= 0 or not readable(fd, left):
                return False
            data = os.read(fd, 4096)
            if not data:
                return False
            *complete, self._partial = (self._partial + data).split(b"\n")
            self._lines += [line.decode(errors="replace") for line in complete]
        return True

    def cgroup_lines(self) -> str:
        try:
            with open(f"/proc/{self.pid}/cgroup") as f:
                return f.read()
        except OSError:
            return ""


class RealCgroups:
    """One test's cgroups and processes; ``with RealCgroups() as cg: ...`` cleans up on any exit.

    ``cg.create("hog")`` makes ``<parent>/hog`` under the cgroup2 mount and returns its path;
    ``cg.memory_v1("hog", limit)`` makes a v1 memory cgroup with a hard limit;
    ``cg.start_hog(...)``, ``cg.start_sleeper(...)`` start children that join cgroups themselves.
    """

    def __init__(self, prefix: str = PREFIX, cgroup2: str | None = None,
                 memory_mount: str | None = None) -> None:
        self.cgroup2 = cgroup2 or cgroup2_mount()
        if self.cgroup2 is None:
            raise RealCgError("no cgroup2 mount")
        self.memory_mount = memory_mount if memory_mount is not None else v1_memory_mount()
        self.name = f"{prefix}-{os.getpid()}-{os.urandom(4).hex()}"
        self.parent = os.path.join(self.cgroup2, self.name)
        self.relparent = "/" + self.name
        self._dirs: list[str] = []  # every cgroup dir we made, in creation order
        self._children: list[Child] = []
        self._tmpdirs: list[str] = []
        self.cleanup_problems: list[str] = []
        os.mkdir(self.parent)
        self._dirs.append(self.parent)

    def __enter__(self) -> RealCgroups:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- making things ----------------------------------------------------------------------

    def path(self, rel: str = "") -> str:
        return os.path.join(self.parent, rel) if rel else self.parent

    def relpath(self, rel: str = "") -> str:
        """The cgroup's path relative to the cgroup2 mount, with a leading ``/``."""
        return f"{self.relparent}/{rel}" if rel else self.relparent

    def create(self, rel: str) -> str:
        """Create ``<parent>/<rel>`` (and missing intermediate cgroups); returns its path."""
        path = self.parent
        for comp in (c for c in rel.split("/") if c):
            if comp in (".", ".."):
                raise RealCgError(f"bad cgroup component {comp!r} in {rel!r}")
            path = os.path.join(path, comp)
            if not os.path.isdir(path):
                os.mkdir(path)
                self._dirs.append(path)
        return path

    def remove(self, rel: str) -> None:
        """Remove one empty cgroup the harness made (for churn); not an error if it is gone."""
        path = self.path(rel)
        if path not in self._dirs:
            raise RealCgError(f"{path} was not created by this harness")
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        self._dirs.remove(path)

    def memory_v1(self, rel: str, limit_bytes: int) -> str:
        """A v1 memory cgroup ``<memory mount>/<name>/<rel>`` with ``limit_in_bytes``."""
        if self.memory_mount is None:
            raise RealCgError("no cgroup v1 memory controller mounted")
        base = os.path.join(self.memory_mount, self.name)
        if not os.path.isdir(base):
            os.mkdir(base)
            self._dirs.append(base)
        path = os.path.join(base, rel)
        os.mkdir(path)
        self._dirs.append(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit_bytes))
        return path

    def tempdir(self) -> str:
        parent = disk_temp_parent()
        if parent is None:
            raise RealCgError("no disk-backed temporary directory")
        d = tempfile.mkdtemp(prefix=f"{self.name}-", dir=parent)
        self._tmpdirs.append(d)
        return d

    def _spawn(self, name: str, source: str, cgroups: Iterable[str], max_seconds: float,
               **consts) -> Child:
        cgroups = tuple(cgroups)
        for cg in cgroups:
            if not any(cg == d for d in self._dirs):
                raise RealCgError(f"{cg} was not created by this harness")
        header = "".join(f"{k} = {v!r}\n" for k, v in consts.items())
        procs = [os.path.join(c, "cgroup.procs") for c in cgroups]
        header += f"PARENT = {os.getpid()}\nPROCS = {procs!r}\n"
        header += f"MAX_SECONDS = {float(max_seconds)!r}\n"
        proc = subprocess.Popen([sys.executable, "-c", header + source], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
        child = Child(name, proc, cgroups)
        self._children.append(child)
        if not child.wait_line("joined", 30.0):
            err = self._stderr_of(child)
            raise RealCgError(f"{name} (pid {child.pid}) did not join {cgroups}: {err}")
        return child

    @staticmethod
    def _stderr_of(child: Child) -> str:
        if child.proc.poll() is None:
            return "still running"
        return child.proc.stderr.read().decode(errors="replace").strip()[-500:]

    def start_sleeper(self, rel: str, max_seconds: float = 600.0) -> Child:
        """A process that only sleeps (a bystander), in cgroup2 ``<parent>/<rel>``."""
        return self._spawn(f"sleeper {rel}", SLEEPER_SOURCE, [self.create(rel)], max_seconds)

    def start_hog(self, rel: str, limit_bytes: int = HOG_LIMIT, file_bytes: int = HOG_FILE,
                  max_seconds: float = 600.0, written_timeout: float = 120.0,
                  wait_written: bool = True) -> Child:
        """The memory hog in cgroup2 ``<parent>/<rel>`` and a v1 memcg limited to ``limit_bytes``.

        Returns once the hog has written its file; from then on it thrashes on it. Writing the
        file already stalls the hog (reclaim under the limit): with ``wait_written=False`` it
        returns as soon as the hog is in its cgroups.
        """
        if file_bytes % MiB:
            raise RealCgError("file_bytes must be a whole number of MiB")
        v1 = self.memory_v1(rel.replace("/", "_"), limit_bytes)
        child = self._spawn(f"hog {rel}", HOG_SOURCE, [v1, self.create(rel)], max_seconds,
                            WORKDIR=self.tempdir(), FILE_BYTES=file_bytes)
        child.memcg_v1 = v1
        if wait_written and not child.wait_line("written", written_timeout):
            raise RealCgError(f"hog (pid {child.pid}) did not write its file: "
                              f"{self._stderr_of(child)}")
        return child

    def start(self, argv: list[str], name: str | None = None, **popen) -> subprocess.Popen:
        """Start any command (e.g. the daemon under test); it is killed at cleanup if alive."""
        proc = subprocess.Popen(argv, **popen)
        self._children.append(Child(name or os.path.basename(argv[0]), proc, ()))
        return proc

    # -- checks -------------------------------------------------------------------------------

    def oom_kills(self) -> dict[str, int]:
        """Kernel OOM kills charged to the harness's own memcgs and cgroups, by path."""
        out = {}
        for d in self._dirs:
            for name in ("memory.oom_control", "memory.events"):
                path = os.path.join(d, name)
                if os.path.exists(path):
                    out[path] = read_keyed(path).get("oom_kill", 0)
        return out

    # -- tearing down -------------------------------------------------------------------------

    def _cgroup2_dirs(self) -> list[str]:
        return [d for d in self._dirs if d == self.parent or d.startswith(self.parent + "/")]

    def kill_all(self) -> None:
        """SIGKILL every process the harness started and every process in its cgroups."""
        for child in self._children:
            if child.proc.poll() is None:
                try:
                    child.proc.kill()
                except ProcessLookupError:
                    pass
        for d in reversed(self._dirs):
            kill_file = os.path.join(d, "cgroup.kill")
            if d in self._cgroup2_dirs() and os.path.exists(kill_file):
                try:
                    with open(kill_file, "w") as f:
                        f.write("1")
                    continue
                except OSError:
                    pass
            for pid in cgroup_pids(d):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for child in self._children:
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.cleanup_problems.append(f"{child.name} (pid {child.pid}) did not exit")
            for stream in (child.proc.stdout, child.proc.stderr):
                if stream is not None:
                    stream.close()

    def cleanup(self) -> None:
        """Kill, then remove every cgroup (deepest first) and temporary directory. Idempotent."""
        self.kill_all()
        for d in sorted(self._dirs, key=lambda p: p.count("/"), reverse=True):
            if not os.path.isdir(d):
                continue
            if not wait_for(lambda d=d: not cgroup_pids(d), 10.0, 0.05):
                self.cleanup_problems.append(f"{d} still has processes {cgroup_pids(d)}")
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        self.cleanup_problems.append(f"rmdir {d}: {e.strerror}")
                        break
                    time.sleep(0.05)
            else:
                self.cleanup_problems.append(f"rmdir {d}: still busy")
        self._dirs = [d for d in self._dirs if os.path.isdir(d)]
        for t in self._tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        self._tmpdirs = [t for t in self._tmpdirs if os.path.exists(t)]
        self._children = [c for c in self._children if c.proc.poll() is None]

    def leftovers(self) -> list[str]:
        """Anything of ours still present (for tests of the cleanup itself)."""
        left = [d for d in self._dirs if os.path.exists(d)]
        for top in (self.parent, os.path.join(self.memory_mount or "/nonexistent", self.name)):
            if os.path.exists(top) and top not in left:
                left.append(top)
        left += [t for t in self._tmpdirs if os.path.exists(t)]
        left += [f"pid {c.pid}" for c in self._children if c.proc.poll() is None]
        return left


# -- the end-to-end scenario: the pyoomd daemon against a real hog ------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
XATTRS = ("trusted.oomd_ooms", "trusted.oomd_kill", "trusted.oomd_kill_uuid")
FIRED = "has fired for Ruleset="


def stall_kill_config(relparent: str, threshold: float = 10, window: float = 2,
                      duration: float = 0, line: str = "full") -> dict:
    """stall_above on ``<relparent>/workload/*``; kill_by_stall over the same cgroups."""
    return {"rulesets": [{
        "name": "memory stall",
        "detectors": [["a workload child stalls", {"name": "stall_above", "args": {
            "cgroup": f"{relparent}/workload/*", "resource": "memory", "line": line,
            "threshold": str(threshold), "window": str(window), "duration": str(duration)}}]],
        "actions": [{"name": "kill_by_stall", "args": {
            "cgroup": f"{relparent}/workload/*", "resource": "memory", "line": line,
            "window": str(window)}}],
    }]}


def first_window_over(samples: list[tuple[float, int]], window: float, percent: float
                      ) -> float | None:
    """The first sample time ``t`` at which the stall between the newest sample at least
    ``window`` seconds older and ``t`` exceeded ``percent`` of that span; samples are
    ``(monotonic seconds, total µs)`` in time order."""
    j = -1
    for i, (t, total) in enumerate(samples):
        while j + 1 < i and samples[j + 1][0] <= t - window:
            j += 1
        if j >= 0:
            t0, total0 = samples[j]
            if (total - total0) / ((t - t0) * 1e6) * 100.0 > percent:
                return t
    return None


def pressure_kill_config(relparent: str, threshold: int = 10, duration: int = 1) -> dict:
    """pressure_above on ``<relparent>/workload``; kill_by_pressure over its children."""
    return {"rulesets": [{
        "name": "memory pressure",
        "detectors": [["workload under pressure", {"name": "pressure_above", "args": {
            "cgroup": f"{relparent}/workload", "resource": "memory",
            "threshold": str(threshold), "duration": str(duration)}}]],
        "actions": [{"name": "kill_by_pressure", "args": {
            "cgroup": f"{relparent}/workload/*", "resource": "memory"}}],
    }]}


@dataclass
class PressureKillRun:
    """What one end-to-end run saw. Times are ``time.monotonic()`` seconds; None = never."""

    hog_pid: int = 0
    hog_cgroup: str = ""   # relative to the cgroup2 mount, as pyoomd writes it (oomd.names.shown)
    bystander_alive_at_end: bool = False
    hog_returncode: int | None = None
    t_hog_started: float | None = None  # the hog has written its file and thrashes (or, with
    #                                     early_hog, has joined its cgroups and starts writing)
    t_over_threshold: float | None = None  # the harness first read hog avg10 > threshold
    t_window_over: float | None = None  # end of the first window whose full stall > threshold
    # (hog's memory.pressure sampled every 20 ms from before it started: t, some total, full
    # total, some avg10)
    psi_samples: list[tuple[float, int, int, float]] = field(default_factory=list)
    killer: str = "kill_by_pressure"
    oomd_binary: bool = False  # the daemon was oomd 0.5.0, not pyoomd
    t_fired: float | None = None  # the "has fired" line reached the harness (inline logging)
    t_empty: float | None = None  # the harness first saw the hog's cgroup without processes
    kmsg: list[str] = field(default_factory=list)
    xattrs: dict[str, bytes | None] = field(default_factory=dict)
    # the flight recorder's files (<runtime-dir>/kills/, oomd.flight): name -> content
    flight_files: dict[str, bytes] = field(default_factory=dict)
    memcg_oom_kills: dict[str, int] = field(default_factory=dict)
    host_oom_kill_delta: int | None = None
    daemon_alive_at_end: bool = False
    daemon_exit: int | None = None
    daemon_log: list[tuple[float, str]] = field(default_factory=list)

    @property
    def detection_to_kill(self) -> float | None:
        if self.t_fired is None or self.t_empty is None:
            return None
        return self.t_empty - self.t_fired

    @property
    def pressure_to_kill(self) -> float | None:
        if self.t_over_threshold is None or self.t_empty is None:
            return None
        return self.t_empty - self.t_over_threshold

    @property
    def window_to_kill(self) -> float | None:
        """From the end of the first window in which the hog's full stall exceeded the
        threshold (computed from the harness's samples) to the hog's cgroup being empty."""
        if self.t_window_over is None or self.t_empty is None:
            return None
        return self.t_empty - self.t_window_over

    def log_lines(self, needle: str) -> list[str]:
        return [line for _, line in self.daemon_log if needle in line]

    def problems(self) -> list[str]:
        """Everything that makes this run a failure (empty = passed)."""
        out = []
        if self.t_empty is None:
            out.append("the hog's cgroup was never emptied")
        if self.hog_returncode != -signal.SIGKILL:
            out.append(f"hog exit status {self.hog_returncode}, not SIGKILL")
        if not self.bystander_alive_at_end:
            out.append("the bystander died")
        records = [r for r in self.kmsg if r.startswith("oomd kill: ")]
        if len(records) != 1 or f" {self.hog_cgroup} " not in records[0] or \
                not records[0].endswith(f" killer:{self.killer} v2"):
            out.append(f"kmsg records {self.kmsg!r}, not one kill record for {self.hog_cgroup}")
        if self.xattrs.get("trusted.oomd_ooms") != b"1" or (
                not self.oomd_binary and not self.xattrs.get("trusted.oomd_kill_uuid")):
            out.append(f"xattrs {self.xattrs!r}")
        if not self.xattrs.get("trusted.oomd_kill") or int(self.xattrs["trusted.oomd_kill"]) < 1:
            out.append(f"trusted.oomd_kill is {self.xattrs.get('trusted.oomd_kill')!r}")
        if not any(f" {self.hog_pid}(" in line for line in self.log_lines("Killed ")):
            out.append(f"the daemon did not log killing the hog (pid {self.hog_pid})")
        if any(self.memcg_oom_kills.values()):
            out.append(f"kernel OOM kills in the test's memcgs: {self.memcg_oom_kills}")
        # oomd 0.5.0 dies on SIGTERM (reference §9.2); pyoomd exits 0
        clean = (0, -signal.SIGTERM) if self.oomd_binary else (0,)
        if not self.daemon_alive_at_end or self.daemon_exit not in clean:
            out.append(f"daemon alive at end: {self.daemon_alive_at_end}, exit {self.daemon_exit}")
        bad = self.log_lines("tick failed") + self.log_lines("Traceback")
        if bad:
            out.append(f"the daemon logged failures: {bad[:3]}")
        return out


def run_pressure_kill(deadline: float = 90.0, threshold: int = 10, duration: int = 1,
                      interval: float = 1.0, settle: float = 2.0, poll: float = 0.02,
                      extra_args: Iterable[str] = (), config_for: Callable | None = None,
                      killer: str = "kill_by_pressure", early_hog: bool = False,
                      window: float = 2.0, oomd_binary: str | None = None,
                      hog_leaf: bool = False, hog_name: str = "hog") -> PressureKillRun:
    """Start the pyoomd daemon watching a test cgroup, then a hog and a bystander in it; wait
    until the hog's cgroup is empty (or ``deadline`` seconds), ``settle`` more seconds, stop
    the daemon with SIGTERM and collect what happened. Cleans up everything on any exit.

    ``config_for(relparent)`` replaces the default config (``pressure_kill_config``) and
    ``killer`` names its kill plugin. With ``early_hog`` the clock starts when the hog joins
    its cgroups, before it writes its file (which already stalls it), and the daemon may kill
    it then. ``oomd_binary`` runs that binary (oomd 0.5.0) instead of pyoomd. The hog's
    memory.pressure is sampled every ``poll`` seconds from before it starts; ``t_window_over``
    is the end of the first ``window`` in which its full stall exceeded ``threshold`` %.

    With ``hog_leaf`` the hog's process runs in ``workload/hog/task`` (the daemon still sees and
    kills ``workload/hog``) and the harness samples that leaf. Reading a cgroup's pressure file
    when its 2 s averages are due makes the kernel skip that period's check of unprivileged
    PSI triggers on the cgroup: sampling ``workload/hog`` itself every 20 ms would starve the
    trigger the daemon put there. The leaf's stall is the hog's, as is its parent's.

    ``hog_name`` names the hog's cgroup (``workload/<hog_name>``): any bytes but ``/`` and
    ``\n``, as ``os.fsdecode`` text."""
    from oomd.names import shown

    run = PressureKillRun(killer=killer, oomd_binary=oomd_binary is not None)
    oom_before = global_oom_kills()
    with RealCgroups() as cg:
        cg.create(f"workload/{hog_name}")
        cg.create("workload/bystander")
        work = cg.tempdir()
        config = os.path.join(work, "pyoomd.json")
        with open(config, "w") as f:
            body = config_for(cg.name) if config_for else \
                pressure_kill_config(cg.name, threshold, duration)
            json.dump(body, f, indent=2)
        kmsg = os.path.join(work, "kmsg")
        common = ["--config", config, "--interval", f"{interval:g}", "--cgroup-fs", cg.cgroup2,
                  "--runtime-dir", os.path.join(work, "run"), "--kmsg-override", kmsg]
        if oomd_binary is None:
            argv = [sys.executable, "-m", "oomd", *common, *extra_args]
            # Each log line is written before the tick goes on, so the "has fired" line is on
            # the pipe before the kill starts and its arrival time bounds the detection.
            env = {**os.environ, "INLINE_LOGGING": "1"}
            started = "Running pyoomd"
        else:
            from oomd.testing.oomd_bin import oomd_env

            argv = [oomd_binary, *common, *extra_args]
            env = oomd_env(oomd_binary)
            started = "Running oomd"
        daemon = cg.start(argv, name="daemon", cwd=REPO, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        reader = threading.Thread(target=_collect_lines, args=(daemon.stdout, run.daemon_log),
                                  daemon=True)
        reader.start()
        if not wait_for(lambda: run.log_lines(started) or daemon.poll() is not None, 60.0):
            raise RealCgError("the daemon did not start within 60 s")
        if daemon.poll() is not None:
            reader.join(5)
            raise RealCgError(f"the daemon exited with {daemon.returncode}: "
                              f"{[line for _, line in run.daemon_log][-5:]}")
        bystander = cg.start_sleeper("workload/bystander")
        hog_rel = f"workload/{hog_name}/task" if hog_leaf else f"workload/{hog_name}"
        hog_dir = cg.path(hog_rel)
        if hog_leaf:
            cg.create(hog_rel)
        stop_sampling = threading.Event()
        sampler = threading.Thread(target=_sample_psi, daemon=True,
                                   args=(hog_dir, poll, stop_sampling, run.psi_samples))
        sampler.start()
        try:
            hog = cg.start_hog(hog_rel, wait_written=not early_hog)
            run.t_hog_started = time.monotonic()
            run.hog_pid = hog.pid
            run.hog_cgroup = shown(cg.relpath(f"workload/{hog_name}").lstrip("/"))
            end = run.t_hog_started + deadline
            while time.monotonic() < end:
                if not cgroup_pids(hog_dir):
                    run.t_empty = time.monotonic()
                    break
                time.sleep(poll)
        finally:
            stop_sampling.set()
            sampler.join(5)
        run.t_over_threshold = next((t for t, _, _, avg in run.psi_samples
                                     if t >= run.t_hog_started and avg > threshold), None)
        run.t_window_over = first_window_over([(t, full) for t, _, full, _ in run.psi_samples],
                                              window, threshold)
        time.sleep(settle)
        fired = [t for t, line in run.daemon_log if FIRED in line]
        run.t_fired = fired[0] if fired else None
        hog.proc.poll()
        run.hog_returncode = hog.proc.returncode
        run.bystander_alive_at_end = bystander.alive()
        run.daemon_alive_at_end = daemon.poll() is None
        run.xattrs = kill_xattrs(cg.path(f"workload/{hog_name}"))  # the killed cgroup, not its leaf
        run.memcg_oom_kills = cg.oom_kills()
        run.daemon_exit = terminate(daemon, 15.0)
        reader.join(5)
        try:
            with open(kmsg) as f:
                run.kmsg = f.read().splitlines()
        except OSError:
            run.kmsg = []
        run.flight_files = _read_dir(os.path.join(work, "run", "kills"))
    after = global_oom_kills()
    if oom_before is not None and after is not None:
        run.host_oom_kill_delta = after - oom_before
    return run


def _read_dir(path: str) -> dict[str, bytes]:
    """Every regular file of ``path`` (none if it does not exist)."""
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(path, name), "rb") as f:
                out[name] = f.read()
        except OSError:
            pass
    return out


def _sample_psi(cgroup_dir: str, every: float, stop: threading.Event, out: list) -> None:
    """(time, some total, full total, some avg10) of the cgroup's memory.pressure, every
    ``every`` seconds until ``stop`` is set or the file is gone."""
    while not stop.is_set():
        try:
            p = read_psi(cgroup_dir)
        except (OSError, ValueError, KeyError):
            return
        out.append((time.monotonic(), p.some_total, p.full_total, p.some[0]))
        stop.wait(every)


def kill_xattrs(cgroup_dir: str) -> dict[str, bytes | None]:
    """oomd's kill xattrs on a cgroup (None where absent)."""
    out: dict[str, bytes | None] = {}
    for name in XATTRS:
        try:
            out[name] = os.getxattr(cgroup_dir, name)
        except OSError:
            out[name] = None
    return out


def _collect_lines(stream, out: list) -> None:
    try:
        for raw in stream:
            out.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
    except (OSError, ValueError):
        pass  # the harness closed the stream (cleanup after a failure)


def main(argv: list[str] | None = None) -> int:
    """``python -m oomd.testing.realcg [seconds]``: run the pressure recipe and print PSI."""
    argv = sys.argv[1:] if argv is None else argv
    seconds = float(argv[0]) if argv else 20.0
    why = skip_reason()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    before = global_oom_kills()
    with RealCgroups() as cg:
        hog = cg.start_hog("workload/hog")
        cg.start_sleeper("workload/bystander")
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            time.sleep(1.0)
            h, b = read_psi(cg.path("workload/hog")), read_psi(cg.path("workload/bystander"))
            print(f"t={time.monotonic() - start:5.1f}s hog some={h.some[0]:6.2f} "
                  f"full={h.full[0]:6.2f}  bystander some={b.some[0]:5.2f}  "
                  f"hog alive={hog.alive()}", flush=True)
        print(f"memcg oom kills: {cg.oom_kills()}; host oom_kill delta: "
              f"{(global_oom_kills() or 0) - (before or 0)}")
    print(f"left behind: {cg.leftovers() or 'nothing'}; "
          f"cleanup problems: {cg.cleanup_problems or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
