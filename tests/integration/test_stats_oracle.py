"""Stats socket parity with the real oomd 0.5.0: same bytes on the wire, same -d/-r output.

Each direction is checked: oomd's server vs ours for the raw replies, our client against
oomd's daemon, and oomd's client (``oomd -d``/``-r``) against our server.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from oomd.fs import cgroup2_mount
from oomd.stats import Stats
from oomd.stats_socket import STATS_SOCKET, StatsServer, run_client
from oomd.testing import faketree
from oomd.testing.oomd_bin import find_oomd_binary, why_missing

OOMD = find_oomd_binary()
pytestmark = pytest.mark.skipif(OOMD is None,
                                reason=f"oomd 0.5.0 binary unavailable: {why_missing()}")


def raw_request(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_socket(path: str, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"oomd exited with {proc.returncode}: {proc.stderr.read()}")
        if os.path.exists(path):
            try:
                raw_request(path, b"0\n")
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"oomd did not open {path}")


@pytest.fixture
def oomd_daemon(tmp_path):
    """The real oomd on a one-cgroup fake tree with a continue/continue ruleset."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount: oomd refuses to start without one")
    if not os.path.exists("/proc/pressure/memory"):
        pytest.skip("kernel without PSI: oomd refuses to start")
    tree = faketree.write_tree(tmp_path / "tree", {"": faketree.cgroup(0), "a": faketree.cgroup(0)})
    conf = tmp_path / "oomd.json"
    conf.write_text(json.dumps({"rulesets": [{
        "name": "idle",
        "detectors": [["never", {"name": "continue", "args": {}}]],
        "actions": [{"name": "continue", "args": {}}],
    }]}))
    run = tmp_path / "oomd-run"
    cgroup_fs = mount + "/../../../.." + str(tree)
    proc = subprocess.Popen(
        [str(OOMD), "--interval", "1", "--config", str(conf), "--cgroup-fs", cgroup_fs,
         "--kmsg-override", str(tmp_path / "kmsg"), "--runtime-dir", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_socket(str(run / STATS_SOCKET), proc)
        # oomd zeroes its core stats just after the socket is up (reference §9.2 step 6)
        deadline = time.monotonic() + 10
        while "oomd.kills" not in oomd_client(run, "-d")[1] and time.monotonic() < deadline:
            time.sleep(0.02)
        yield run
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def our_daemon(tmp_path):
    run = tmp_path / "pyoomd-run"
    run.mkdir()
    stats = Stats()
    stats.init_core()
    srv = StatsServer(stats, str(run), log=lambda msg, priority=6: None)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def oomd_client(run: Path, *flags: str) -> tuple[int, str, str]:
    r = subprocess.run([str(OOMD), "-D", str(run), *flags], capture_output=True, text=True,
                       timeout=20)
    return r.returncode, r.stdout, r.stderr


def our_client(run: Path, *, dump: bool, reset: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run_client(str(run), dump=dump, reset=reset, out=out, err=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("request_bytes", [b"g\n", b"r\n", b"0\n", b"x\n", b"", b"gX\n", b"g"])
def test_server_reply_bytes_match_oomd(oomd_daemon, our_daemon, request_bytes):
    theirs = raw_request(str(oomd_daemon / STATS_SOCKET), request_bytes)
    ours = raw_request(our_daemon.path, request_bytes)
    assert ours == theirs


@pytest.mark.parametrize(("dump", "reset", "flags"),
                         [(True, False, ("-d",)), (False, True, ("-r",)),
                          (True, True, ("-d", "-r"))])
def test_our_client_against_oomd_prints_what_oomd_prints(oomd_daemon, dump, reset, flags):
    assert our_client(oomd_daemon, dump=dump, reset=reset) == oomd_client(oomd_daemon, *flags)


def test_oomd_client_reads_our_server_like_our_client(our_daemon, tmp_path):
    stats = our_daemon.stats
    stats.set("oomd.kills", 12)
    stats.set("pyoomd.plugin_errors", -4)
    stats.set("quote\"back\\slash\ttab", 2147483647)
    stats.set("unicodé 😀", -2147483648)
    stats.set("Upper", 1)
    run = Path(our_daemon.path).parent
    theirs = oomd_client(run, "-d")
    assert theirs[0] == 0
    assert our_client(run, dump=True, reset=False) == theirs


def test_oomd_reset_client_zeroes_our_stats(our_daemon):
    our_daemon.stats.set("oomd.kills", 9)
    assert oomd_client(Path(our_daemon.path).parent, "-r") == (0, "", "")
    assert our_daemon.stats.get("oomd.kills") == 0


@pytest.mark.parametrize("flags", [("-d",), ("-r",), ("-d", "-r")])
def test_clients_fail_alike_without_daemon(tmp_path, flags):
    theirs = oomd_client(tmp_path, *flags)
    ours = our_client(tmp_path, dump="-d" in flags, reset="-r" in flags)
    assert theirs[0] == 1
    assert ours == theirs
