"""Benchmarks of the core (issue 3), side by side in one run. Not part of the default test run:

    python -m pytest bench/ [--bench-sizes 1000,10000] [--benchmark-columns=min,median,max]

Trees are generated under /dev/shm (removed at the end) by oomd.testing.gentree, shaped like a
server: system.slice/* and workload.slice/*/*. The reader uses ``cache_files=True`` (the tree is
not rewritten, as on cgroup2) and the fd budget derived from this machine's RLIMIT_NOFILE, like
the daemon. At the end a table compares, per size: our CPU per tick, the raw read loops over
the same files, the plain Python reader and oomd 0.5.0's CPU per tick on the same tree and an
equivalent config, with the issue's acceptance ratios.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # no idle BLAS threads in CPU numbers

import pytest  # noqa: E402

from oomd.testing import gentree  # noqa: E402
from benchlib import RESULTS  # noqa: E402



def pytest_addoption(parser):
    parser.addoption("--bench-sizes", default="1000,10000",
                     help="comma-separated tree sizes (leaf cgroups)")
    parser.addoption("--bench-oomd-ticks", type=int, default=0,
                     help="ticks to measure oomd 0.5.0 over (0: 20 at 1k, 8 at 10k)")


def pytest_generate_tests(metafunc):
    if "size" in metafunc.fixturenames:
        sizes = [int(s) for s in metafunc.config.getoption("--bench-sizes").split(",") if s]
        metafunc.parametrize("size", sizes, ids=[f"{s // 1000}k" for s in sizes],
                             scope="session")


@pytest.fixture(scope="session")
def bench_root():
    d = Path(tempfile.mkdtemp(prefix="pyoomd-bench-", dir="/dev/shm"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


_TREES: dict[int, gentree.GeneratedTree] = {}


@pytest.fixture(scope="session")
def tree(bench_root, size):
    if size not in _TREES:
        _TREES[size] = gentree.generate(bench_root / f"tree-{size}", size)
    return _TREES[size]


# ---- the report ---------------------------------------------------------------------------

def _fmt(v, unit="ms"):
    if v is None:
        return "-"
    return f"{v * 1e3:.2f} {unit}" if unit == "ms" else f"{v:.2f}{unit}"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("pyoomd core: side by side (CPU seconds per tick, medians)")
    sizes = sorted(RESULTS, key=int)
    rows = [
        ("ours: tick (refresh + detector access)", "tick_cpu"),
        ("ours: tick, minimum", "tick_cpu_min"),
        ("ours: refresh only", "refresh_cpu"),
        ("raw loop, same fd limit (pread kept fds, rest open/read/close)", "raw_limit"),
        ("raw loop, same fd limit, minimum", "raw_limit_min"),
        ("raw loop, openat on dir fds + read + close", "raw_openat"),
        ("raw loop, open(path) + read + close", "raw_open"),
        ("plain Python reader (tests/reference_reader.py)", "python_reader"),
        ("oomd 0.5.0 (same tree and config)", "oomd_cpu"),
        ("ranking all candidates, cold (reads incl.)", "rank_cold"),
        ("ranking all candidates, columns loaded", "rank_warm"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    tr.write_line("".ljust(width) + "".join(f"{s:>16}" for s in sizes))
    for label, key in rows:
        tr.write_line(label.ljust(width) + "".join(
            f"{_fmt(RESULTS[s].get(key)):>16}" for s in sizes))
    for s in sizes:
        r = RESULTS[s]
        facts = [f"{k}={v}" for k, v in r.items() if k.startswith("n_") or k in (
            "fd_budget", "parked", "open_fds", "oomd_ticks", "oomd_skipped", "peak_rss_mib")]
        tr.write_line(f"[{s}] " + " ".join(facts))
    tr.write_line("")
    tr.write_line("acceptance:")

    def check(label, value, limit):
        if value is None:
            tr.write_line(f"  {label}: not measured")
            return
        tr.write_line(f"  {label}: {value:.3f} (target <= {limit}) "
                      f"{'OK' if value <= limit else 'MISSED'}")

    for s in sizes:
        r = RESULTS[s]
        t = r.get("tick_cpu")
        if t and r.get("oomd_cpu"):
            check(f"{s}: tick / oomd 0.5.0", t / r["oomd_cpu"], 0.25)
        if r.get("tick_cpu_min") and r.get("raw_limit_min"):
            check(f"{s}: tick / raw loop (same fd limit), minimums",
                  r["tick_cpu_min"] / r["raw_limit_min"], 1.5)
        if t and r.get("raw_limit"):
            check(f"{s}: tick / raw loop (same fd limit), medians", t / r["raw_limit"], 1.5)
        if r.get("ratio_interleaved"):
            check(f"{s}: tick / raw loop, measured in turn", r["ratio_interleaved"], 1.5)
        if r.get("rank_cold") is not None:
            check(f"{s}: ranking cold, seconds", r["rank_cold"], 0.050)
        if r.get("rank_warm") is not None:
            check(f"{s}: ranking warm, seconds", r["rank_warm"], 0.050)
        if r.get("peak_rss_mib") is not None:
            check(f"{s}: peak RSS MiB", r["peak_rss_mib"], 64)
    if "1000" in RESULTS and "10000" in RESULTS:
        a, b = RESULTS["1000"].get("tick_cpu"), RESULTS["10000"].get("tick_cpu")
        if a and b:
            check("cost(10k)/cost(1k)", b / a, 11)
        a, b = RESULTS["1000"].get("raw_limit"), RESULTS["10000"].get("raw_limit")
        if a and b:
            tr.write_line(f"  (the raw loop itself: cost(10k)/cost(1k) = {b / a:.2f})")
