"""Self-protection of the OOM killer process, and a start-up report of what it got.

An OOM killer that is itself swapped out, reclaimed or OOM-killed under the pressure it is
meant to resolve is worse than none (oomd's production guide; earlyoom and Android's lmkd do
the same). At start-up the daemon calls :func:`protect`, which

* locks its memory with ``mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT)`` (without
  ``MCL_ONFAULT`` on kernels before 4.4), but only where locking cannot make later allocations
  fail: with CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK;
* sets ``oom_score_adj`` to -1000 when allowed (lowering it needs CAP_SYS_RESOURCE);
* raises the RLIMIT_NOFILE soft limit to the hard limit (the reader caches one fd per file);

and logs one line saying what protection it has, including its own cgroup's ``memory.min``
and ``memory.low``. After the first tick the daemon calls :func:`freeze_gc`, so the garbage
collector no longer walks the start-up objects (config, plugins, numpy) on every collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import os
import resource
from dataclasses import dataclass, field
from typing import Callable

from oomd.fs import cgroup2_mount
from oomd.logs_journal import SD_INFO, SD_WARNING, stderr_log

MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
CAP_IPC_LOCK, CAP_SYS_RESOURCE = 14, 24
OOM_SCORE_ADJ_MIN = -1000


def _flag_names(flags: int) -> str:
    names = [n for n, f in (("MCL_CURRENT", MCL_CURRENT), ("MCL_FUTURE", MCL_FUTURE),
                            ("MCL_ONFAULT", MCL_ONFAULT)) if flags & f]
    return "|".join(names)


@dataclass(frozen=True)
class MlockResult:
    locked: bool
    flags: int = 0          # what mlockall() accepted
    reason: str = ""        # why not, when not locked

    def describe(self) -> str:
        return _flag_names(self.flags) if self.locked else f"no ({self.reason})"


@dataclass(frozen=True)
class SettingResult:
    ok: bool
    value: int | None       # the value in force afterwards (None if unreadable)
    reason: str = ""


@dataclass(frozen=True)
class ProtectionReport:
    cgroup: str | None                  # own cgroup2 path ("/system.slice/pyoomd.service")
    memory_min: str | None              # file content ("67108864", "max"); None: unreadable
    memory_low: str | None
    mlock: MlockResult
    locked_kib: int | None              # VmLck from /proc/self/status
    oom_score_adj: int | None
    nofile_soft: int
    nofile_hard: int
    open_fds: int | None
    problems: tuple[str, ...] = field(default=())

    def log_line(self) -> str:
        def show(v):
            return "unavailable" if v is None else str(v)

        return (
            f"Protection: cgroup={show(self.cgroup)} memory.min={show(self.memory_min)} "
            f"memory.low={show(self.memory_low)} mlock={self.mlock.describe()} "
            f"VmLck={show(self.locked_kib)}kB oom_score_adj={show(self.oom_score_adj)} "
            f"fds={show(self.open_fds)}/{self.nofile_soft} (hard {self.nofile_hard})"
        )


# ---------------------------------------------------------------------------------------------
# /proc helpers (proc_root is redirectable for tests)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _status_field(status: str | None, name: str) -> str | None:
    if status is None:
        return None
    for line in status.splitlines():
        key, sep, value = line.partition(":")
        if sep and key == name:
            return value.strip()
    return None


def has_capability(cap: int, proc_root: str = "/proc") -> bool:
    """Whether the process has ``cap`` in its effective set (``CapEff`` of /proc/self/status)."""
    eff = _status_field(_read(f"{proc_root}/self/status"), "CapEff")
    try:
        return bool(int(eff, 16) >> cap & 1) if eff else False
    except ValueError:
        return False


def own_cgroup(proc_root: str = "/proc") -> str | None:
    """The cgroup2 path of this process (the ``0::`` line of /proc/self/cgroup)."""
    text = _read(f"{proc_root}/self/cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


# ---------------------------------------------------------------------------------------------
# Actions


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def lock_memory(proc_root: str = "/proc") -> MlockResult:
    """mlockall with MCL_ONFAULT, falling back to MCL_CURRENT|MCL_FUTURE on older kernels.

    Skipped when neither CAP_IPC_LOCK nor an unlimited RLIMIT_MEMLOCK is there: with
    MCL_FUTURE every later mapping would count against the limit and allocations would start
    failing, which is worse than not locking.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if not has_capability(CAP_IPC_LOCK, proc_root) and soft != resource.RLIM_INFINITY:
        return MlockResult(False, 0, f"no CAP_IPC_LOCK and RLIMIT_MEMLOCK={soft}")
    libc = _libc()
    reason = ""
    for flags in (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT, MCL_CURRENT | MCL_FUTURE):
        if libc.mlockall(flags) == 0:
            return MlockResult(True, flags)
        err = ctypes.get_errno()
        reason = f"mlockall({_flag_names(flags)}): {os.strerror(err)}"
        if err != errno.EINVAL:  # EINVAL: MCL_ONFAULT unknown to this kernel, retry without
            break
    return MlockResult(False, 0, reason)


def set_oom_score_adj(value: int = OOM_SCORE_ADJ_MIN, proc_root: str = "/proc") -> SettingResult:
    """Write ``oom_score_adj``; lowering it needs CAP_SYS_RESOURCE. Reports the value after."""
    path = f"{proc_root}/self/oom_score_adj"
    reason = ""
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        reason = f"writing {path}: {e.strerror}"
    current = _read(path)
    try:
        now = int(current) if current is not None else None
    except ValueError:
        now = None
    return SettingResult(now == value and not reason, now, reason)


def raise_nofile_limit() -> SettingResult:
    """Raise the RLIMIT_NOFILE soft limit to the hard limit; value is the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return SettingResult(True, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as e:
        return SettingResult(False, soft, f"setrlimit(RLIMIT_NOFILE, {hard}): {e}")
    return SettingResult(True, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


M_MMAP_THRESHOLD = -3          # glibc's mallopt parameter
MMAP_THRESHOLD = 128 << 10     # glibc's default, made fixed


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more from a mapping of its
    own, which ``free`` gives back. By default glibc raises the threshold to the size of any
    mapped block freed (up to 32 MiB); from then on the row table's columns, a tick's arrays
    over 10,000s of rows and the flight recorder's frames come from the heap, and the holes they
    leave stay resident (a heap shrinks only from its top): ~1.5-2 MiB of peak RSS at 10,000
    cgroups (bench/daemon_rss.py). Returns whether mallopt took it (False off glibc)."""
    try:
        return bool(_libc().mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def freeze_gc() -> int:
    """Collect once, then move every live object to the permanent generation.

    The cyclic collector still runs for garbage made after this, but no longer traverses the
    start-up objects, so a collection that happens to fall inside a tick stays short.
    Returns the number of frozen objects.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# ---------------------------------------------------------------------------------------------
# Report


def protection_report(
    mlock: MlockResult | None = None,
    *,
    proc_root: str = "/proc",
    cgroup_fs: str | None = None,
) -> ProtectionReport:
    """What protection the process has now. ``mlock``: the result of :func:`lock_memory` if it
    was called (otherwise derived from VmLck). ``cgroup_fs``: the cgroup2 mount point
    (default: from /proc/mounts) under which the own cgroup's memory.min/low are read."""
    status = _read(f"{proc_root}/self/status")
    vmlck = _status_field(status, "VmLck")
    try:
        locked_kib = int(vmlck.split()[0]) if vmlck else None
    except ValueError:
        locked_kib = None
    if mlock is None:
        mlock = (MlockResult(True, 0) if locked_kib else
                 MlockResult(False, 0, "mlockall not called"))

    cg = own_cgroup(proc_root)
    mount = cgroup_fs if cgroup_fs is not None else cgroup2_mount(f"{proc_root}/mounts")
    mem_min = mem_low = None
    if cg is not None and mount is not None:
        base = mount.rstrip("/") + (cg if cg != "/" else "")
        raw_min = _read(f"{base}/memory.min")
        raw_low = _read(f"{base}/memory.low")
        mem_min = raw_min.strip() if raw_min is not None else None
        mem_low = raw_low.strip() if raw_low is not None else None

    adj_text = _read(f"{proc_root}/self/oom_score_adj")
    try:
        adj = int(adj_text) if adj_text is not None else None
    except ValueError:
        adj = None

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        open_fds = len(os.listdir(f"{proc_root}/self/fd"))
    except OSError:
        open_fds = None

    problems = []
    if not mlock.locked:
        problems.append(f"memory not locked: {mlock.reason}; pages may be reclaimed under "
                        "the pressure pyoomd must act on")
    if adj is None or adj > OOM_SCORE_ADJ_MIN:
        problems.append(f"oom_score_adj is {adj}, not {OOM_SCORE_ADJ_MIN}: the kernel OOM "
                        "killer may pick pyoomd")
    if mem_min in (None, "0") and mem_low in (None, "0"):
        problems.append("no memory.min/memory.low on own cgroup: set MemoryMin=/MemoryLow= "
                        "(the shipped unit does) so reclaim spares pyoomd")
    return ProtectionReport(cg, mem_min, mem_low, mlock, locked_kib, adj, soft, hard, open_fds,
                            tuple(problems))


def protect(
    *,
    lock: bool = True,
    oom_score_adj: int | None = OOM_SCORE_ADJ_MIN,
    log: Callable[[str, int], None] | None = None,
    proc_root: str = "/proc",
    cgroup_fs: str | None = None,
) -> ProtectionReport:
    """Apply every protection, log the report line and each problem, return the report."""
    log = log or stderr_log
    mlock = lock_memory(proc_root) if lock else MlockResult(False, 0, "disabled")
    if oom_score_adj is not None:
        adj = set_oom_score_adj(oom_score_adj, proc_root)
        if not adj.ok:
            log(f"Could not set oom_score_adj to {oom_score_adj}: {adj.reason or adj.value}",
                SD_WARNING)
    nofile = raise_nofile_limit()
    if not nofile.ok:
        log(f"Could not raise the open file limit: {nofile.reason}", SD_WARNING)
    report = protection_report(mlock, proc_root=proc_root, cgroup_fs=cgroup_fs)
    log(report.log_line(), SD_INFO)
    for p in report.problems:
        log(f"Protection warning: {p}", SD_WARNING)
    return report
