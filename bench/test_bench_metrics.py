"""Per-tick cost of the metrics API, and the off-tick cost of rendering/writing the textfile.

Run: python -m pytest bench/test_bench_metrics.py --benchmark-only
The tick pays only the first group; the second runs in the writer thread after the tick.
"""

from __future__ import annotations

import pytest

from oomd.metrics import Metrics
from oomd.stats import Stats


def quiet(msg, priority=6):
    pass


def populated(n_rulesets: int, **kw) -> Metrics:
    stats = Stats()
    stats.init_core()
    m = Metrics(stats=stats, log=quiet, **kw)
    for i in range(n_rulesets):
        m.detector_state(f"ruleset {i}", "group", bool(i % 2))
        m.kill(f"ruleset {i}", "kill_by_memory_size_or_growth", "dry_run", 1.0)
    m.observe_tick(0.01, {"files_read": 1000, "vanished": 1}, 1000)
    return m


@pytest.mark.benchmark(group="metrics-per-tick")
def test_bench_observe_tick(benchmark):
    m = populated(10)
    benchmark(m.observe_tick, 0.004, {"files_read": 5000, "vanished": 2}, 1000)


@pytest.mark.benchmark(group="metrics-per-tick")
def test_bench_detector_state(benchmark):
    m = populated(10)
    benchmark(m.detector_state, "ruleset 3", "group", True)


@pytest.mark.benchmark(group="metrics-per-tick")
def test_bench_kill(benchmark):
    m = populated(10)
    benchmark(m.kill, "ruleset 3", "kill_by_memory_size_or_growth", "killed", 2.0)


@pytest.mark.benchmark(group="metrics-off-tick")
@pytest.mark.parametrize("n_rulesets", [10, 100])
def test_bench_render(benchmark, n_rulesets):
    m = populated(n_rulesets)
    benchmark(m.render)


@pytest.mark.benchmark(group="metrics-off-tick")
@pytest.mark.parametrize("n_rulesets", [10, 100])
def test_bench_textfile_write(benchmark, tmp_path, n_rulesets):
    m = populated(n_rulesets, textfile=str(tmp_path / "pyoomd.prom"))
    m.start()
    m.wait_written()
    benchmark(m.write_textfile_now)
    m.stop()
