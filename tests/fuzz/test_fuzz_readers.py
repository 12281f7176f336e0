"""Differential fuzzing of every cgroupfs and procfs parser: the Cython reader and the plain
reference reader read the same mutated files the same way, and neither raises (issue 7 item 3).

CI runs a derandomized, modest number of inputs (``PYOOMD_FUZZ_EXAMPLES`` scales it);
``scripts/fuzz_readers.py`` is the long run (>= 100,000 inputs).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzgen
import readerfuzz

EXAMPLES = int(os.environ.get("PYOOMD_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def bench():
    b = readerfuzz.Bench()
    yield b
    b.close()


def test_every_reader_file_is_a_fuzz_target():
    from reference_reader import parse_iostat  # noqa: F401 - the reference reader is importable

    assert {"memory.current", "memory.pressure", "io.pressure", "memory.stat", "io.stat",
            "cgroup.events", "cgroup.stat", "memory.oom.group", "memory.high.tmp",
            "/proc/meminfo", "/proc/vmstat", "/proc/swaps", "/proc/pressure/memory"} <= set(
        readerfuzz.TARGETS)


def test_valid_samples_read_the_same_in_both_readers(bench):
    for target in readerfuzz.TARGETS:
        samples = (readerfuzz.PROC_FILES[target[6:]] if target.startswith("/proc/")
                   else readerfuzz.CGROUP_FILES[target][0])
        for content in samples:
            assert bench.check(target, content) == "same"
        bench.reset(target)


@pytest.mark.parametrize("target", readerfuzz.TARGETS)
@settings(max_examples=max(10, EXAMPLES // 4), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_file_reads_the_same_in_both_readers(bench, target, data):
    chooser = fuzzgen.HypothesisChooser(data)
    samples = (readerfuzz.PROC_FILES[target[6:]] if target.startswith("/proc/")
               else readerfuzz.CGROUP_FILES[target][0])
    content = readerfuzz.gen_content(chooser, samples)
    try:
        with fuzzgen.time_limit(10.0):
            bench.check(target, content)
    finally:
        bench.reset(target)
