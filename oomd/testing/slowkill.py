"""A victim that takes long to exit, killed by the real daemon on the real kernel (issue 22).

The scenario of the issue: under one test parent, ``a-big`` holds one process with a lot of
memory (and ``trusted.oomd_prefer``, so it ranks first) and ``b-small`` a sleeping bystander;
the ruleset is ``exists`` on the parent → ``kill_by_pressure`` over both, not dry. The daemon
kills ``a-big`` in its first tick; freeing the memory takes the victim's exit well over the
0.5 s after which pyoomd used to count the kill as failed and kill the bystander too. A run
passes when only ``a-big`` is killed, its kill record is written once, the bystander lives,
and the daemon reports the exit (log line, metrics).

Two kinds of victims (``kind``):

* ``"anon"``: ``size`` bytes of private anonymous memory, every page touched (MAP_POPULATE):
  the issue's victim. Faulting gigabytes in is slow on this host (about 4 s/GiB), and the
  exit frees them at about 0.13 s/GiB, so 8 GiB gives an exit of about 1 s. For the scripts.
* ``"mapped"``: one small memfd (``MAPPED_FILE`` bytes) mapped ``size // MAPPED_FILE`` times,
  every page mapped (MAP_POPULATE): the exit tears down ``size / 4 KiB`` page-table entries
  (0.025-0.05 s/GiB, depending on the load) while the host lends only the memfd and the page
  tables (48 GiB of mappings: 256 MiB + 96 MiB, set up in about 4 s, exit 1.2-2.5 s). For the
  test suite.

``run_slow_kill`` may wrap the daemon's command (``wrap=("strace", "-f", ...)``): the syscall
test of the shipped unit runs this scenario under strace.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

from oomd.testing.realcg import (REPO, RealCgError, RealCgroups, _collect_lines, cgroup_pids,
                                 kill_xattrs, readable, terminate)

GiB = 1 << 30
MAPPED_FILE = 256 << 20
RULESET = "slow victim"
PREFER = "trusted.oomd_prefer"

VICTIM_SOURCE = r"""
import ctypes, mmap, os, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
except (OSError, AttributeError):
    pass
if os.getppid() != PARENT:
    os._exit(70)
with open(PROCS, "w") as f:
    f.write("0")
flags = mmap.MAP_POPULATE
if KIND == "anon":
    keep = mmap.mmap(-1, SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
else:
    fd = os.memfd_create("pyoomd-slow-victim")
    os.ftruncate(fd, FILE)
    keep = [mmap.mmap(fd, FILE, flags=mmap.MAP_SHARED | flags) for _ in range(SIZE // FILE)]
with open("/proc/self/status") as f:
    rss = [l.split()[1] for l in f if l.startswith("VmRSS:")][0]
print("ready", rss, flush=True)
deadline = time.monotonic() + MAX_SECONDS
while time.monotonic() < deadline:
    time.sleep(1.0)
"""


def slow_kill_config(relparent: str) -> dict:
    return {"rulesets": [{
        "name": RULESET,
        "detectors": [["always", {"name": "exists", "args": {"cgroup": relparent}}]],
        "actions": [{"name": "kill_by_pressure", "args": {
            "cgroup": f"{relparent}/*", "resource": "memory"}}],
    }]}


@dataclass
class SlowKillRun:
    """What one run saw. Times are ``time.monotonic()`` seconds of the harness."""

    kind: str = ""
    size: int = 0
    victim_rss_kib: int = 0
    setup_seconds: float = 0.0           # the victim's allocation
    victim_pid: int = 0
    big: str = ""                         # relative paths, as in kill records
    small: str = ""
    t_kill_logged: float | None = None    # the daemon's "Trying to kill" line arrived
    t_empty: float | None = None          # a-big's cgroup.events said populated 0
    daemon_empty_ms: int | None = None    # the daemon's own "is empty <ms>ms after the kill"
    victim_returncode: int | None = None
    bystander_alive_at_end: bool = False
    kmsg: list[str] = field(default_factory=list)
    xattrs: dict[str, bytes | None] = field(default_factory=dict)
    metrics: str = ""
    daemon_alive_at_end: bool = False
    daemon_exit: int | None = None
    daemon_log: list[tuple[float, str]] = field(default_factory=list)

    @property
    def exit_seconds(self) -> float | None:
        """Kill to empty, as the harness saw it (the log line arrives just after the write)."""
        if self.t_kill_logged is None or self.t_empty is None:
            return None
        return self.t_empty - self.t_kill_logged

    def log_lines(self, needle: str) -> list[str]:
        return [line for _, line in self.daemon_log if needle in line]

    def problems(self) -> list[str]:
        out = []
        if self.t_empty is None:
            out.append("a-big was never emptied")
        if self.victim_returncode != -9:
            out.append(f"victim exit status {self.victim_returncode}, not SIGKILL")
        if not self.bystander_alive_at_end:
            out.append("the bystander b-small died")
        tried = self.log_lines("Trying to kill ")
        if len(tried) != 1 or not tried[0].endswith(f"/{self.big}"):
            out.append(f"kill attempts {tried}, not one of a-big")
        if self.log_lines("next candidate") or self.log_lines("Failed to kill"):
            out.append("the daemon treated the kill as failed")
        records = [r for r in self.kmsg if r.startswith("oomd kill: ")]
        if len(records) != 1 or records[0].split()[5] != self.big:
            out.append(f"kmsg records {self.kmsg!r}, not one for {self.big}")
        if self.xattrs.get("trusted.oomd_ooms") != b"1" or \
                self.xattrs.get("trusted.oomd_kill") != b"1":
            out.append(f"xattrs {self.xattrs!r}")
        if self.daemon_empty_ms is None:
            out.append("the daemon did not log the time to empty")
        if self.metrics and _sample(self.metrics, "pyoomd_kill_to_empty_seconds_count") != 1:
            out.append("pyoomd_kill_to_empty_seconds_count is not 1")
        if not self.daemon_alive_at_end or self.daemon_exit != 0:
            out.append(f"daemon alive at end: {self.daemon_alive_at_end}, exit {self.daemon_exit}")
        bad = self.log_lines("tick failed") + self.log_lines("Traceback")
        if bad:
            out.append(f"the daemon logged failures: {bad[:3]}")
        return out


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(None, 1)[1])
    return None


def _wait_empty(events_path: str, timeout: float) -> float | None:
    """When ``cgroup.events`` said ``populated 0`` (kernfs wakes poll(POLLPRI) on a change)."""
    fd = os.open(events_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        po = select.poll()
        po.register(fd, select.POLLPRI | select.POLLERR)
        deadline = time.monotonic() + timeout
        while True:
            text = os.pread(fd, 4096, 0).decode(errors="replace")
            if "populated 0" in text.splitlines():
                return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            po.poll(min(left, 0.05) * 1000)
    finally:
        os.close(fd)


def _child_of(pid: int, argv_tail: tuple[str, ...], timeout: float = 10.0) -> int | None:
    """The child of ``pid`` (a wrapper such as strace) that runs a command whose arguments
    contain ``argv_tail``: strace may fork short-lived helpers of its own first."""
    want = b"\0".join(a.encode() for a in argv_tail)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if want in f.read():
                        return int(entry)
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.02)
    return None


def _stop(daemon: subprocess.Popen, daemon_pid: int, timeout: float = 15.0) -> int | None:
    """SIGTERM to the daemon itself (not a wrapper, so strace follows the shutdown too);
    the wrapper's exit status then is the daemon's."""
    if daemon_pid == daemon.pid:
        return terminate(daemon, timeout)
    try:
        os.kill(daemon_pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return terminate(daemon, 5.0)


def start_victim(cg: RealCgroups, rel: str, kind: str, size: int,
                 ready_timeout: float = 300.0) -> tuple[subprocess.Popen, int, float]:
    """The big process in ``<parent>/<rel>``: (process, VmRSS KiB, seconds to allocate)."""
    if kind not in ("anon", "mapped"):
        raise RealCgError(f"unknown victim kind {kind!r}")
    procs = os.path.join(cg.create(rel), "cgroup.procs")
    header = (f"PARENT = {os.getpid()}\nPROCS = {procs!r}\nKIND = {kind!r}\nSIZE = {int(size)}\n"
              f"FILE = {MAPPED_FILE}\nMAX_SECONDS = 900.0\n")
    start = time.monotonic()
    proc = cg.start([sys.executable, "-c", header + VICTIM_SOURCE], name=f"victim {rel}",
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = readable(proc.stdout, ready_timeout)
    line = proc.stdout.readline().decode(errors="replace").split() if ready else []
    if not line or line[0] != "ready":
        proc.kill()
        raise RealCgError(f"the victim did not allocate {size} bytes ({kind}) within "
                          f"{ready_timeout:g} s: "
                          f"{proc.stderr.read().decode(errors='replace')[-300:]!r}")
    return proc, int(line[1]), time.monotonic() - start


def run_slow_kill(kind: str = "mapped", size: int = 24 * GiB, *, interval: float = 1.0,
                  deadline: float = 60.0, settle: float = 2.0, wrap: Iterable[str] = (),
                  extra_args: Iterable[str] = (), env: dict | None = None,
                  config_factory=None, before_daemon=None, during=None) -> SlowKillRun:
    """Set up the issue's scenario, start the daemon (``wrap`` + ``python -m oomd`` ...), wait
    until a-big is empty (or ``deadline``), ``settle`` more seconds, stop the daemon with
    SIGTERM and collect what happened. Everything is removed on any exit.
    ``config_factory(relparent)`` replaces ``slow_kill_config``; ``before_daemon(cg, workdir)``
    runs just before the daemon starts, ``during(run, daemon_pid, workdir)`` once a-big is
    empty; ``{work}`` in ``extra_args`` is the work directory."""
    run = SlowKillRun(kind=kind, size=size)
    with RealCgroups(prefix="pyoomd-test-slow") as cg:
        big_dir, small_dir = cg.create("a-big"), cg.create("b-small")
        run.big = cg.relpath("a-big").lstrip("/")
        run.small = cg.relpath("b-small").lstrip("/")
        bystander = cg.start_sleeper("b-small")
        victim, run.victim_rss_kib, run.setup_seconds = start_victim(cg, "a-big", kind, size)
        run.victim_pid = victim.pid
        os.setxattr(big_dir, PREFER, b"1")
        work = cg.tempdir()
        cfg = os.path.join(work, "pyoomd.json")
        with open(cfg, "w") as f:
            json.dump((config_factory or slow_kill_config)(cg.name), f, indent=2)
        kmsg = os.path.join(work, "kmsg")
        textfile = os.path.join(work, "pyoomd.prom")
        if before_daemon is not None:
            before_daemon(cg, work)
        daemon = cg.start(
            [*wrap, sys.executable, "-m", "oomd", "--config", cfg, "--interval", f"{interval:g}",
             "--cgroup-fs", cg.cgroup2, "--runtime-dir", os.path.join(work, "run"),
             "--kmsg-override", kmsg, "--metrics-textfile", textfile,
             *[a.replace("{work}", work) for a in extra_args]],
            name="pyoomd", cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env={**os.environ, "INLINE_LOGGING": "1", **(env or {})})
        reader = threading.Thread(target=_collect_lines, args=(daemon.stdout, run.daemon_log),
                                  daemon=True)
        reader.start()
        daemon_pid = _child_of(daemon.pid, ("-m", "oomd")) if wrap else daemon.pid
        if daemon_pid is None:
            raise RealCgError(f"{list(wrap)[:1]} did not start the daemon")
        stopped = False
        try:
            run.t_empty = _wait_empty(os.path.join(big_dir, "cgroup.events"), deadline)
            tried = [t for t, line in run.daemon_log if "Trying to kill " in line]
            run.t_kill_logged = tried[0] if tried else None
            end = time.monotonic() + settle
            while time.monotonic() < end and not run.log_lines(" after the kill"):
                time.sleep(0.05)
            time.sleep(max(0.0, end - time.monotonic()))
            if during is not None and daemon.poll() is None:
                during(run, daemon_pid, work)
            victim.poll()
            run.victim_returncode = victim.returncode
            run.bystander_alive_at_end = bystander.alive() and bool(cgroup_pids(small_dir))
            run.daemon_alive_at_end = daemon.poll() is None
            run.xattrs = kill_xattrs(big_dir)
            run.daemon_exit = _stop(daemon, daemon_pid)
            stopped = True
        finally:
            if not stopped and daemon_pid != daemon.pid and daemon.poll() is None:
                # The cleanup kills the wrapper it started; the wrapped daemon would outlive it.
                # While the wrapper (its parent) lives, the pid cannot have been reused.
                try:
                    os.kill(daemon_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        reader.join(5)
        for _, line in run.daemon_log:
            if f"/{run.big} is empty " in line:
                run.daemon_empty_ms = int(line.rsplit(" is empty ", 1)[1].split("ms", 1)[0])
        for path, attr in ((kmsg, "kmsg"), (textfile, "metrics")):
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                text = ""
            setattr(run, attr, text.splitlines() if attr == "kmsg" else text)
    return run
