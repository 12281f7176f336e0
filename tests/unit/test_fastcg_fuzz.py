"""Differential fuzzing: random contents built from each format's tokens must parse to the same
values in the C reader and in the plain oracle (and never raise)."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oomd.testing.faketree import cgroup, write_proc, write_tree
from tests.reference_reader import PlainReader, PyoomdReader

COMMON = [" ", "  ", "\n", "\t", "=", ":", "\x00", "-", "+", "x", "12", "0", "007", "-1",
          "9223372036854775807", "9223372036854775808", "18446744073709551616", "max"]
TOKENS = {
    "memory.current": COMMON,
    "memory.low": COMMON,
    "memory.high.tmp": COMMON + ["20000000"],
    "memory.pressure": COMMON + ["some", "full", "aggr", "avg10=", "avg60=", "avg300=",
                                 "total=", "0.12", "12.5", "1e5", "1e40", "1e-40", ".5", "5.",
                                 "inf", "nan", "0x1p3", "abc", "some avg10=0.22 avg60=0.17 "
                                 "avg300=1.11 total=58761459\n",
                                 "full avg10=0.12 avg60=0.07 avg300=0.51 total=38464525\n",
                                 "some avg10=12345.67 avg60=0.00 avg300=99.99 total=0\n",
                                 "full avg10=1.5 avg60=0.07 avg300=0.51 total=1\n",
                                 "full avg10=0.12 avg60=0.07 avg300=0.51 total=1",
                                 "99999999999999999999\n"],
    "memory.stat": COMMON + ["anon", "file", "pgscan", "shmem", "pgsteal", "anon 5\n",
                             "a" * 300],
    "io.stat": COMMON + ["8:0", "8:16", "rbytes=", "wbytes=", "rios=", "wios=", "dbytes=",
                         "dios=", "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6\n"],
    "cgroup.events": COMMON + ["populated", "frozen", "1", "populated 1\n"],
    "cgroup.stat": COMMON + ["nr_dying_descendants", "nr_descendants"],
    "memory.oom.group": COMMON + ["1"],
}
METRICS = {
    "memory.current": ["current_usage"],
    "memory.low": ["memory_low"],
    "memory.high.tmp": ["memory_high_tmp"],
    "memory.pressure": ["mem_pressure", "mem_pressure_some", "mem_pressure_some_total",
                        "mem_pressure_full_total"],
    "memory.stat": ["anon_usage", "file_usage", "pgscan", "pg_scan_cumulative"],
    "io.stat": ["io_cost_cumulative"],
    "cgroup.events": ["is_populated"],
    "cgroup.stat": ["nr_dying_descendants"],
    "memory.oom.group": ["oom_group"],
}


def same(a, b) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b and type(a) is type(b)


class Pair:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="pyoomd-fuzz-")
        root = write_tree(os.path.join(self.dir.name, "cg"), {"": cgroup(0), "c": cgroup(1)})
        proc = write_proc(os.path.join(self.dir.name, "proc"))
        self.root = root
        self.readers = [PyoomdReader(str(root), proc_root=str(proc), devices=[(8, 0, True)]),
                        PlainReader(str(root), proc_root=str(proc), devices=[(8, 0, True)])]
        self.t = 0.0


PAIR = {}


def content(fname):
    return st.lists(st.sampled_from(TOKENS[fname]), max_size=14).map(
        lambda toks: "".join(toks).encode())


def check(fname, data):
    pair = PAIR.get("p") or PAIR.setdefault("p", Pair())
    (pair.root / "c" / fname).write_bytes(data)
    pair.t += 1
    for r in pair.readers:
        r.refresh(pair.t)
    for metric in METRICS[fname]:
        ours, oracle = (r.value(metric, "c") for r in pair.readers)
        assert same(ours, oracle), (fname, data, metric, ours, oracle)
    os.unlink(pair.root / "c" / fname)


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(content("memory.current"))
def test_fuzz_memory_current(data):
    check("memory.current", data)


@FUZZ
@given(content("memory.low"))
def test_fuzz_memory_low(data):
    check("memory.low", data)


@FUZZ
@given(content("memory.high.tmp"))
def test_fuzz_memory_high_tmp(data):
    check("memory.high.tmp", data)


@FUZZ
@given(content("memory.pressure"))
def test_fuzz_pressure(data):
    check("memory.pressure", data)


@FUZZ
@given(content("memory.stat"))
def test_fuzz_memory_stat(data):
    check("memory.stat", data)


@FUZZ
@given(content("io.stat"))
def test_fuzz_io_stat(data):
    check("io.stat", data)


@FUZZ
@given(content("cgroup.events"))
def test_fuzz_cgroup_events(data):
    check("cgroup.events", data)


@FUZZ
@given(content("cgroup.stat"))
def test_fuzz_cgroup_stat(data):
    check("cgroup.stat", data)


@FUZZ
@given(content("memory.oom.group"))
def test_fuzz_oom_group(data):
    check("memory.oom.group", data)
