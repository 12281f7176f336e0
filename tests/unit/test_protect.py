"""Self-protection: real calls in a child process (nothing leaks into the test runner), and the
report read from a fake /proc and cgroup tree."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oomd.protect import (
    CAP_IPC_LOCK,
    MCL_CURRENT,
    MCL_FUTURE,
    MCL_ONFAULT,
    MlockResult,
    protection_report,
)

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import dataclasses, gc, json, resource, sys
from oomd.protect import freeze_gc, protect
logged = []
r = protect(log=lambda msg, priority=6: logged.append(msg))
d = dataclasses.asdict(r)
d["logged"] = logged
d["oom_score_adj_file"] = int(open("/proc/self/oom_score_adj").read())
d["nofile_now"] = resource.getrlimit(resource.RLIMIT_NOFILE)
d["frozen"] = freeze_gc()
d["freeze_count"] = gc.get_freeze_count()
json.dump(d, sys.stdout)
"""


def run_child(preexec=None, prefix=()) -> dict:
    out = subprocess.run([*prefix, sys.executable, "-c", CHILD], cwd=REPO, capture_output=True,
                         text=True, timeout=60, preexec_fn=preexec,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def cap_effective(cap: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to lower oom_score_adj and mlock")
def test_root_child_gets_locked_memory_and_minimum_oom_score():
    if not cap_effective(CAP_IPC_LOCK):
        pytest.skip("this container dropped CAP_IPC_LOCK: mlockall cannot be tested")
    r = run_child()
    assert r["mlock"]["locked"] is True
    assert r["mlock"]["flags"] & (MCL_CURRENT | MCL_FUTURE) == MCL_CURRENT | MCL_FUTURE
    assert r["locked_kib"] > 0
    assert r["frozen"] == r["freeze_count"] > 1000  # every start-up object moved out of gc
    assert r["oom_score_adj"] == r["oom_score_adj_file"]
    assert r["nofile_now"][0] == r["nofile_now"][1] == r["nofile_soft"]
    line = next(m for m in r["logged"] if m.startswith("Protection: cgroup="))
    assert "mlock=MCL_CURRENT|MCL_FUTURE" in line
    if may_lower_oom_score_adj():
        assert r["oom_score_adj"] == -1000 and "oom_score_adj=-1000" in line
    else:
        # Some sandboxes deny it even to root: the report must say so, not pretend.
        assert r["logged"][0] == ("Could not set oom_score_adj to -1000: writing "
                                  "/proc/self/oom_score_adj: Permission denied")
        assert any(p.startswith("oom_score_adj is 0,") for p in r["problems"])


def may_lower_oom_score_adj() -> bool:
    """Probe in a throw-away shell whether this machine lets root go below 0."""
    probe = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"],
                           capture_output=True)
    return probe.returncode == 0


def _limit_memlock():
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_child_without_ipc_lock_capability_skips_mlock_and_reports_why():
    # Root minus CAP_IPC_LOCK and CAP_SYS_RESOURCE, with an 8 MiB memlock limit.
    r = run_child(_limit_memlock,
                  prefix=["setpriv", "--bounding-set", "-ipc_lock,-sys_resource"])
    assert r["mlock"]["locked"] is False
    assert r["mlock"]["reason"] == f"no CAP_IPC_LOCK and RLIMIT_MEMLOCK={8 << 20}"
    assert r["oom_score_adj"] == r["oom_score_adj_file"] != -1000
    problems = "\n".join(r["problems"])
    assert "memory not locked" in problems and "oom_score_adj is" in problems
    assert any(line.startswith("Protection warning: memory not locked") for line in r["logged"])


def fake_proc(tmp: Path, *, cgroup="0::/system.slice/pyoomd.service\n", vmlck="  1234 kB",
              adj="-1000\n") -> Path:
    proc = tmp / "proc"
    (proc / "self" / "fd").mkdir(parents=True)
    for i in range(3):
        (proc / "self" / "fd" / str(i)).write_text("")
    (proc / "self" / "status").write_text(f"Name:\tpyoomd\nVmLck:\t{vmlck}\nCapEff:\t0\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "oom_score_adj").write_text(adj)
    (proc / "mounts").write_text(f"cgroup2 {tmp}/cg cgroup2 rw 0 0\n")
    return proc


def test_report_reads_own_cgroup_protection(tmp_path):
    proc = fake_proc(tmp_path)
    cg = tmp_path / "cg" / "system.slice" / "pyoomd.service"
    cg.mkdir(parents=True)
    (cg / "memory.min").write_text("67108864\n")
    (cg / "memory.low").write_text("max\n")
    r = protection_report(MlockResult(True, MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT),
                          proc_root=str(proc))
    assert (r.cgroup, r.memory_min, r.memory_low) == ("/system.slice/pyoomd.service",
                                                      "67108864", "max")
    assert r.locked_kib == 1234 and r.oom_score_adj == -1000 and r.open_fds == 3
    assert r.problems == ()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert r.log_line() == (
        "Protection: cgroup=/system.slice/pyoomd.service memory.min=67108864 memory.low=max "
        f"mlock=MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT VmLck=1234kB oom_score_adj=-1000 "
        f"fds=3/{soft} (hard {hard})")


def test_report_flags_missing_protection(tmp_path):
    proc = fake_proc(tmp_path, vmlck="0 kB", adj="0\n")
    r = protection_report(proc_root=str(proc))
    assert r.memory_min is None and r.memory_low is None
    assert r.mlock.locked is False and r.mlock.reason == "mlockall not called"
    assert len(r.problems) == 3
    assert "memory.min=unavailable memory.low=unavailable mlock=no (mlockall not called)" \
        in r.log_line()


def test_report_without_cgroup2_line(tmp_path):
    proc = fake_proc(tmp_path, cgroup="4:memory:/x\n")
    r = protection_report(proc_root=str(proc))
    assert r.cgroup is None and "cgroup=unavailable" in r.log_line()


def test_the_mmap_threshold_is_fixed_on_glibc():
    """Large allocations keep their own mappings (given back on free) in the daemon."""
    import platform

    code = "from oomd.protect import fix_mmap_threshold; print(fix_mmap_threshold())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(Path(__file__).resolve().parents[2]))
    expect = "True" if platform.libc_ver()[0] == "glibc" else out.stdout.strip()
    assert out.stdout.strip() == expect
