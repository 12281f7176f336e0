"""How long ``pyoomd lint`` takes on big trees (issue 18: at most 2 s at 10,000 cgroups).

Run: python -m pytest bench/test_bench_lint.py -p no:cacheprovider
[--bench-sizes 1000,10000]

The shipped server config (system.slice/*, workload.slice/*/*: every leaf of the generated tree
is a kill candidate) is linted on the generated tree: in-process (compile, resolve every
pattern, read each candidate's files and xattrs, every check), and as the whole command a user
runs (``python -m oomd.commands.lint``, interpreter and imports included). Wall-clock seconds,
the time an operator waits; the table at the end lists both per size.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchlib import record
from oomd.lint import Host, lint

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "server.json")


@pytest.mark.benchmark(group="lint")
def test_lint_in_process(benchmark, tree, size):
    host = Host(cgroup_fs=str(tree.root), interval=1)
    report = benchmark.pedantic(lint, args=(CONFIG, [], host), rounds=5, iterations=1,
                                warmup_rounds=1)
    assert report.exit_status() == 0, [f.code for f in report.findings]   # no errors
    record(size, "lint", benchmark.stats.stats.median)


def test_lint_whole_command(tree, size):
    argv = [sys.executable, "-m", "oomd.commands.lint", "--interval", "1",
            "--cgroup-fs", str(tree.root), CONFIG]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        samples.append(time.perf_counter() - t)
        assert done.returncode == 0, done.stdout + done.stderr
    record(size, "lint_cli", statistics.median(samples))
    record(size, "lint_cli_min", min(samples))
