"""The daemon process, not the tick (issue 14): the pyoomd process and the oomd 0.5.0 process
side by side, at the same time, on the same tree and config, measured from outside (whole-process
CPU per second over ``--daemon-seconds`` after 3 ticks of warm-up, at ``--interval 1``; peak RSS).

    python -m pytest bench/test_bench_daemon.py -p no:cacheprovider \\
        [--bench-sizes 1000,10000] [--daemon-seconds 20]

(a) real cgroup2: trees of N empty cgroups made under the cgroup2 mount (removed afterwards), the
    PSI-only config (pressure_above memory and io on every leaf, kill_by_pressure dry); pyoomd
    reads it as any user's daemon would (statfs says cgroup2);
(b) fake trees (oomd.testing.gentree under /dev/shm) with ``--assume-cgroup2`` and the typical
    config (benchlib.typical_config);
(c) at the largest size on real cgroup2, a kill plugin ranking every leaf every tick (``exists``
    detector, post_action_delay 0, dry, sleeping processes in four leaves);
(d) an idle pyoomd with an empty config.
Next to each, the C pread loop over the files that config needs (RawPaths: kept fds up to its
fd budget, open/read/close past it), a third process measured in the same window, one pass a
second like a tick. The
table is printed at the end (bench/conftest.py); the in-process benches stay where they are.
"""

from __future__ import annotations

import shutil
import time

import pytest

import daemonbench as db
from benchlib import DAEMON_RESULTS, per_tick_files, typical_config
from oomd.testing.oracle import fake_cgroup_fs
from oomd.testing.realcg import RealCgroups, skip_reason

PSI_FILES = ("memory.pressure", "io.pressure")
SYSTEM = ["/proc/pressure/memory", "/proc/meminfo", "/proc/vmstat"]  # the tick counter's, swap-out


@pytest.fixture(scope="module")
def seconds(request):
    return float(request.config.getoption("--daemon-seconds"))


def real_tree(n: int) -> RealCgroups:
    why = skip_reason(need_pressure=False)
    if why:
        pytest.skip(f"real cgroup2: {why}")
    cg = RealCgroups(prefix="pyoomd-bench-daemon")
    try:
        for i in range(n):
            cg.create(f"c{i:05d}")
    except OSError:
        cg.cleanup()
        raise
    return cg


def side_by_side(cgroup_fs_ours: str, cgroup_fs_oomd: str, config: dict, seconds: float,
                 extra: tuple[str, ...] = (), files: list[str] | None = None,
                 startup_timeout: float = 300) -> dict:
    """pyoomd, oomd 0.5.0 and (with ``files``) the C pread loop, measured over the same
    window; ``loop_ms``: the loop's CPU per second."""
    work = db.tmpdir("pyoomd-bench-daemon-")
    daemons = [db.start_pyoomd(cgroup_fs_ours, config, work / "pyoomd", extra=extra)]
    if files is not None:
        daemons.append(db.start_loop(files, work / "loop"))
    oomd = db.start_oomd(cgroup_fs_oomd, config, work / "oomd")
    if isinstance(oomd, str):
        out = {"oomd": {"error": oomd}}
    else:
        daemons.append(oomd)
        out = {}
    try:
        out.update(db.measure(daemons, seconds, startup_timeout=startup_timeout))
    finally:
        db.stop(daemons)
        shutil.rmtree(work, ignore_errors=True)
    loop = out.pop("loop", None)
    if loop is not None:
        out["loop_ms"] = loop.get("cpu_ms_per_s")
    return out


def test_daemon_real_cgroup2_psi_config(size, seconds):
    cg = real_tree(size)
    try:
        files = [f"{cg.path(f'c{i:05d}')}/{f}" for i in range(size) for f in PSI_FILES] + SYSTEM
        got = side_by_side(cg.cgroup2, cg.cgroup2, db.psi_config(cg.relpath("*")), seconds,
                           files=files)
        DAEMON_RESULTS[f"real cgroup2, {size} leaves, PSI config"] = got
    finally:
        cg.cleanup()
    assert "cpu_ms_per_s" in got["pyoomd"], got["pyoomd"]


def test_daemon_fake_tree_typical_config(tree, size, seconds):
    files = per_tick_files(tree)
    got = side_by_side(str(tree.root), fake_cgroup_fs(tree.root), typical_config(), seconds,
                       extra=("--assume-cgroup2",), files=files["cgroup"] + files["system"])
    DAEMON_RESULTS[f"fake tree --assume-cgroup2, {size} leaves, typical config"] = got
    assert "cpu_ms_per_s" in got["pyoomd"], got["pyoomd"]


def test_daemon_kill_every_tick_real_cgroup2(request, seconds):
    size = max(int(s) for s in request.config.getoption("--bench-sizes").split(",") if s)
    cg = real_tree(size)
    try:
        for i in range(0, size, size // 4):
            cg.start_sleeper(f"c{i:05d}")
        config = db.kill_every_tick_config(cg.relpath(), cg.relpath("*"))
        # oomd 0.5.0 may not finish its 3 warm-up ticks in a minute here: measured anyway
        got = side_by_side(cg.cgroup2, cg.cgroup2, config, seconds, startup_timeout=60)
        DAEMON_RESULTS[f"real cgroup2, {size} leaves, kill plugin ranking every tick"] = got
    finally:
        cg.cleanup()
    assert "cpu_ms_per_s" in got["pyoomd"], got["pyoomd"]


def test_daemon_idle_empty_config(seconds):
    work = db.tmpdir("pyoomd-bench-daemon-")
    d = db.start_pyoomd("/sys/fs/cgroup/unified", db.empty_config(), work / "pyoomd")
    try:
        time.sleep(3)                      # start-up (no tick line to count with no rulesets)
        got = {"pyoomd": db.measure([d], seconds, warmup=0)["pyoomd"]}
    finally:
        db.stop([d])
        shutil.rmtree(work, ignore_errors=True)
    DAEMON_RESULTS["idle, empty config"] = got
    assert "cpu_ms_per_s" in got["pyoomd"], got["pyoomd"]
