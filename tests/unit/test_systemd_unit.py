"""The shipped systemd unit: systemd's own verifier, and the settings issue 6 requires."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pyoomd.service"
EXEC = "/usr/bin/pyoomd"


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string(UNIT.read_text())
    return cp


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_verify_reports_nothing(tmp_path):
    text = UNIT.read_text()
    if not os.access(EXEC, os.X_OK):
        # verify checks that ExecStart's binary exists: point it at a stand-in executable.
        shim = tmp_path / "pyoomd"
        shim.write_text("#!/bin/sh\nexit 0\n")
        shim.chmod(0o755)
        text = text.replace(EXEC + " ", f"{shim} ")
    (tmp_path / "pyoomd.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "pyoomd.service")],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_unit_runs_the_documented_command_as_a_notify_service():
    s = unit()["Service"]
    assert s["ExecStart"] == (f"{EXEC} --interval 1 --config /etc/pyoomd/pyoomd.json "
                              "--drop-in-dir /etc/pyoomd/pyoomd.d")
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert s["Restart"] == "always"
    assert s["WatchdogSec"] == "30s"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["RuntimeDirectory"] == "oomd"  # the CLI's default --runtime-dir, /run/oomd


def test_unit_protects_the_daemon_from_oom_and_reclaim():
    s = unit()["Service"]
    assert s["OOMScoreAdjust"] == "-1000"
    assert s["MemoryMin"] == s["MemoryLow"] == "64M"
    assert s["LimitMEMLOCK"] == "infinity"
    assert int(s["LimitNOFILE"]) >= 65536
    # The shipped configs rank system.slice/*: the daemon's own cgroup carries user.oomd_avoid.
    assert s["ManagedOOMPreference"] == "avoid"


def test_hardening_keeps_kills_xattrs_cgroup_writes_and_kmsg():
    s = unit()["Service"]
    caps = set(s["CapabilityBoundingSet"].split())
    assert {"CAP_KILL", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_IPC_LOCK"} <= caps
    for setting in ("ProtectControlGroups", "ProtectKernelTunables", "PrivateDevices",
                    "ProtectKernelLogs", "ProtectClock", "DevicePolicy", "ProtectProc",
                    "PrivateUsers", "MemoryDenyWriteExecute", "ReadOnlyPaths"):
        assert setting not in s, f"{setting} would break kills, cgroup writes or /dev/kmsg"
    assert s["ProtectSystem"] == "strict"  # leaves /sys (and so cgroupfs) and /proc writable
