"""The shipped unit's ``SystemCallFilter=`` allows every system call pyoomd makes (issue 20).

The daemon runs the real-kernel kill scenario (``slowkill``: a victim and a sleeping bystander,
exists → kill_by_pressure, not dry) under ``strace -f -c``, with what the unit's command line
and environment bring and what operators add: memory reaping (process_mrelease), a prekill hook
that runs a command, a drop-in directory, the stats socket and the metrics endpoint (both
queried during the run), a metrics textfile, sd_notify with a watchdog, self-protection
(mlockall, oom_score_adj), a SIGHUP reload and a SIGTERM stop. Every system call strace
counted, for the daemon, its threads and the hook's command (a unit's seccomp filter binds its
children too), plus the kill-path calls this kernel may not take (``pidfd_send_signal`` is used
only without cgroup.kill), must be in the unit's filter as ``systemd-analyze syscall-filter``
expands it. The same check on the unit without ``process_mrelease`` must name it.
"""

from __future__ import annotations

import configparser
import http.client
import io
import os
import re
import shutil
import signal
import socket
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from oomd.stats_socket import dump_stats
from oomd.testing import realcg, slowkill

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pyoomd.service"
# Calls of code paths the scenario cannot take on this kernel (cgroup.kill makes the pidfd
# signalling path a fallback) or may not reach in its few seconds.
KILL_PATH_CALLS = {"pidfd_open", "pidfd_send_signal", "process_mrelease", "kill",
                   "getxattr", "setxattr", "fgetxattr", "fsetxattr", "flistxattr",
                   "inotify_init1", "inotify_add_watch", "inotify_rm_watch"}

_why = (realcg.skip_reason(need_pressure=False)
        or next((f"{tool} is not installed (Debian packages strace, systemd)"
                 for tool in ("strace", "systemd-analyze") if shutil.which(tool) is None), None))
pytestmark = pytest.mark.skipif(_why is not None, reason=f"syscall filter test: {_why}")


# -- the unit's filter -------------------------------------------------------------------------

def filter_entries(unit_text: str) -> list[str]:
    """Every ``SystemCallFilter=`` item of [Service], in order (an empty assignment resets)."""
    entries: list[str] = []
    section = None
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1].strip()
        if not value:
            entries = []
            continue
        if value.startswith("~"):
            raise AssertionError(f"deny-list SystemCallFilter={value} is not handled here")
        entries += value.split()
    return entries


@lru_cache(maxsize=None)
def expand_group(group: str) -> frozenset[str]:
    """``systemd-analyze syscall-filter @group``, nested groups expanded."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand_group(item) if item.startswith("@") else {item}
    return frozenset(names)


def allowed_calls(unit_text: str) -> set[str]:
    allowed: set[str] = set()
    for entry in filter_entries(unit_text):
        name = entry.split(":", 1)[0]  # "name:errno" sets a per-call error, still a filter
        allowed |= expand_group(name) if name.startswith("@") else {name}
    return allowed


def refused(calls: set[str], unit_text: str) -> list[str]:
    return sorted(calls - allowed_calls(unit_text))


# -- the strace'd run --------------------------------------------------------------------------

def strace_summary(path: Path) -> dict[str, int]:
    """``strace -c`` table: syscall name -> calls."""
    counts: dict[str, int] = {}
    rows = False
    for line in path.read_text().splitlines():
        if line.startswith("------"):
            rows = not rows
            continue
        parts = line.split()
        if rows and len(parts) >= 5 and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    return counts


def notify_socket(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.1)
    return s


def query_endpoints(run, daemon_pid: int, work: str) -> None:
    """Talk to the running daemon as an operator would: stats, metrics, a reload."""
    out = io.StringIO()
    assert dump_stats(os.path.join(work, "run"), out=out, err=io.StringIO()) == 0
    run.stats_dump = out.getvalue()
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.settimeout(5)
    conn.sock.connect(os.path.join(work, "run", "metrics.sock"))
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    run.http_status, run.http_body = resp.status, resp.read()
    conn.close()
    try:
        os.kill(daemon_pid, signal.SIGHUP)
    except ProcessLookupError:
        raise AssertionError(f"the daemon (pid {daemon_pid}) is gone: "
                             f"{[line for _, line in run.daemon_log][-15:]}") from None
    realcg.wait_for(lambda: run.log_lines("SIGHUP: reloaded"), 10.0, 0.05)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strace")
    summary = tmp / "strace.txt"
    notify = notify_socket(str(tmp / "notify.sock"))

    def config(relparent: str) -> dict:
        c = slowkill.slow_kill_config(relparent)
        c["prekill_hooks"] = [{"name": "exec_prekill_hook",
                               "args": {"cgroup": f"{relparent}/*", "command": "/bin/true"}}]
        return c

    def dropins(cg, work: str) -> None:
        os.mkdir(os.path.join(work, "pyoomd.d"))

    try:
        run = slowkill.run_slow_kill(
            "mapped", 1 << 30, wrap=("strace", "-f", "-qq", "-c", "-o", str(summary)),
            config_factory=config, before_daemon=dropins, during=query_endpoints,
            extra_args=("--drop-in-dir", "{work}/pyoomd.d",
                        "--metrics-listen", "unix:{work}/run/metrics.sock"),
            env={"NOTIFY_SOCKET": str(tmp / "notify.sock"), "WATCHDOG_USEC": "2000000"},
            deadline=60.0, settle=1.0)
        notes = []
        while True:
            try:
                notes.append(notify.recv(4096).decode())
            except (TimeoutError, socket.timeout):
                break
    finally:
        notify.close()
    run.notify = notes
    return run, strace_summary(summary)


def test_the_traced_run_did_the_whole_job(traced):
    run, calls = traced
    assert run.problems() == [], [line for _, line in run.daemon_log][-40:]
    assert '"oomd.kills" : 1' in run.stats_dump
    assert run.http_status == 200 and b"pyoomd_kills_total" in run.http_body
    assert any(n.startswith("READY=1") for n in run.notify)
    assert any("WATCHDOG=1" in n for n in run.notify)
    assert run.log_lines("pre-kill hook finished")
    # the calls this test exists for were made for real
    assert {"process_mrelease", "pidfd_open", "mlockall", "inotify_add_watch",
            "fsetxattr", "execve", "accept4"} <= set(calls), sorted(calls)


def test_the_shipped_unit_allows_every_call_pyoomd_made(traced):
    _, calls = traced
    bad = refused(set(calls) | KILL_PATH_CALLS, UNIT.read_text())
    assert bad == [], (f"systemd/pyoomd.service's SystemCallFilter= refuses {bad} "
                       f"(with EPERM): add them to the unit")


def test_the_check_names_process_mrelease_when_the_unit_lacks_it(traced):
    _, calls = traced
    text = UNIT.read_text()
    without = re.sub(r"(?m)^(SystemCallFilter=.*?)\s+process_mrelease\b", r"\1", text)
    assert without != text, "the unit no longer lists process_mrelease after @system-service"
    assert refused(set(calls) | KILL_PATH_CALLS, without) == ["process_mrelease"]


def test_filter_entries_reads_every_line_and_resets():
    text = ("[Unit]\nSystemCallFilter=ignored\n[Service]\nSystemCallFilter=@a b\n"
            "SystemCallFilter=c\nSystemCallFilter=\nSystemCallFilter=@d e:EPERM\n")
    assert filter_entries(text) == ["@d", "e:EPERM"]


def test_the_unit_parses_as_systemd_reads_it():
    cp = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read_string(UNIT.read_text())
    assert "process_mrelease" in cp["Service"]["SystemCallFilter"].split()


def test_expansion_includes_nested_groups():
    allowed = allowed_calls("[Service]\nSystemCallFilter=@system-service\n")
    assert {"read", "openat", "kill", "setxattr", "inotify_add_watch", "mlockall",
            "pidfd_send_signal", "pidfd_open"} <= allowed
