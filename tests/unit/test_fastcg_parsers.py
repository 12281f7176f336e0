"""Every cgroup file format, against both readers (the Cython one and the plain reference).

Cases per format: good, empty, truncated, garbage, ``max``, missing, plus format-specific edges
(legacy PSI, trailing garbage, NUL bytes). Where oomd 0.5.0 aborts (non-numeric counters,
empty memory.current, memory.stat without pgscan) both readers say "unavailable" (None).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from oomd.testing.faketree import write_proc, write_tree
from tests.reference_reader import READERS

INT64_MAX = (1 << 63) - 1
f32 = np.float32

UP = (b"some avg10=0.22 avg60=0.17 avg300=1.11 total=58761459\n"
      b"full avg10=0.12 avg60=0.07 avg300=0.51 total=38464525\n")
LEGACY = b"aggr 316016073\nsome 0.00 0.03 0.05\nfull 0.01 0.02 0.04\n"
MS = (b"anon 1000\nfile 2000\nkernel 5\nshmem 30\npgscan 77\npgsteal 66\nactive_file 1\n"
      b"inactive_file 2\nactive_anon 3\ninactive_anon 4\nworkingset_refault_anon 5\n"
      b"workingset_refault_file 6\nworkingset_refault 11\n")
MISSING = None  # the file is left out

# (case id, file name, content, metric, expected)
CASES = [
    # memory.current
    ("current-good", "memory.current", b"1048576\n", "current_usage", 1048576),
    ("current-no-newline", "memory.current", b"42", "current_usage", 42),
    ("current-empty", "memory.current", b"", "current_usage", None),
    ("current-truncated", "memory.current", b"10485", "current_usage", 10485),
    ("current-garbage", "memory.current", b"garbage\n", "current_usage", None),
    ("current-trailing-garbage", "memory.current", b"10abc\n", "current_usage", 10),
    ("current-leading-space", "memory.current", b"  7\n", "current_usage", 7),
    ("current-negative", "memory.current", b"-5\n", "current_usage", -5),
    ("current-overflow", "memory.current", b"9223372036854775808\n", "current_usage", None),
    ("current-max", "memory.current", b"max\n", "current_usage", None),
    ("current-second-line-ignored", "memory.current", b"5\nxyz\n", "current_usage", 5),
    ("current-newline-only", "memory.current", b"\n", "current_usage", None),
    ("current-nul", "memory.current", b"\x0012\n", "current_usage", None),
    ("current-missing", "memory.current", MISSING, "current_usage", None),
    ("swap-current-good", "memory.swap.current", b"4096\n", "swap_usage", 4096),
    ("swap-current-garbage", "memory.swap.current", b"x\n", "swap_usage", None),
    ("swap-current-empty", "memory.swap.current", b"", "swap_usage", None),
    ("swap-current-missing", "memory.swap.current", MISSING, "swap_usage", None),
]

for fname, metric in (("memory.min", "memory_min"), ("memory.low", "memory_low"),
                      ("memory.high", "memory_high"), ("memory.max", "memory_max"),
                      ("memory.swap.max", "swap_max")):
    tag = fname.replace("memory.", "")
    CASES += [
        (f"{tag}-good", fname, b"1024\n", metric, 1024),
        (f"{tag}-max", fname, b"max\n", metric, INT64_MAX),
        (f"{tag}-max-no-newline", fname, b"max", metric, INT64_MAX),
        (f"{tag}-max-trailing-space", fname, b"max \n", metric, None),
        (f"{tag}-int64-max", fname, b"9223372036854775807\n", metric, INT64_MAX),
        (f"{tag}-empty", fname, b"", metric, None),
        (f"{tag}-two-lines", fname, b"1\n2\n", metric, None),
        (f"{tag}-newline-only", fname, b"\n", metric, None),
        (f"{tag}-garbage", fname, b"lots\n", metric, None),
        (f"{tag}-trailing-garbage", fname, b"12x\n", metric, 12),
        (f"{tag}-truncated", fname, b"10", metric, 10),
        (f"{tag}-missing", fname, MISSING, metric, None),
    ]

CASES += [
    # memory.high.tmp: "<max|bytes> <duration>"
    ("high-tmp-max", "memory.high.tmp", b"max 0\n", "memory_high_tmp", INT64_MAX),
    ("high-tmp-good", "memory.high.tmp", b"1048576 20000000\n", "memory_high_tmp", 1048576),
    ("high-tmp-one-token", "memory.high.tmp", b"max\n", "memory_high_tmp", None),
    ("high-tmp-three-tokens", "memory.high.tmp", b"1 2 3\n", "memory_high_tmp", None),
    ("high-tmp-double-space", "memory.high.tmp", b"5  6\n", "memory_high_tmp", 5),
    ("high-tmp-empty", "memory.high.tmp", b"", "memory_high_tmp", None),
    ("high-tmp-garbage", "memory.high.tmp", b"abc def\n", "memory_high_tmp", None),
    ("high-tmp-two-lines", "memory.high.tmp", b"1 2\n3 4\n", "memory_high_tmp", None),
    ("high-tmp-missing", "memory.high.tmp", MISSING, "memory_high_tmp", None),
    ("high-tmp-truncated", "memory.high.tmp", b"1048576 ", "memory_high_tmp", None),
]

for fname, full, some, stot, ftot in (
        ("memory.pressure", "mem_pressure", "mem_pressure_some", "mem_pressure_some_total",
         "mem_pressure_full_total"),
        ("io.pressure", "io_pressure", "io_pressure_some", "io_pressure_some_total",
         "io_pressure_full_total")):
    tag = fname.split(".")[0] + "-psi"
    CASES += [
        (f"{tag}-good-full", fname, UP, full, (f32(0.12), f32(0.07), f32(0.51))),
        (f"{tag}-good-some", fname, UP, some, (f32(0.22), f32(0.17), f32(1.11))),
        (f"{tag}-good-some-total", fname, UP, stot, 58761459),
        (f"{tag}-good-full-total", fname, UP, ftot, 38464525),
        (f"{tag}-legacy-full", fname, LEGACY, full, (f32(0.01), f32(0.02), f32(0.04))),
        (f"{tag}-legacy-some", fname, LEGACY, some, (f32(0.0), f32(0.03), f32(0.05))),
        (f"{tag}-legacy-no-total", fname, LEGACY, stot, None),
        (f"{tag}-legacy-truncated", fname, b"aggr 1\nsome 0.00 0.03 0.05\n", full, None),
        (f"{tag}-empty", fname, b"", full, None),
        (f"{tag}-one-line", fname, UP.split(b"\n")[0] + b"\n", some, None),
        (f"{tag}-truncated-full", fname, UP.split(b"\n")[0] + b"\nfull avg10=0.12 avg60",
         full, None),
        (f"{tag}-truncated-full-some-ok", fname,
         UP.split(b"\n")[0] + b"\nfull avg10=0.12 avg60", some,
         (f32(0.22), f32(0.17), f32(1.11))),
        (f"{tag}-garbage", fname, b"hello world\nfoo\n", full, None),
        (f"{tag}-lines-swapped", fname, b"\n".join(UP.split(b"\n")[::-1][1:]) + b"\n", full,
         None),
        (f"{tag}-non-numeric", fname, UP.replace(b"avg10=0.12", b"avg10=abc"), full, None),
        (f"{tag}-non-numeric-other-line-ok", fname, UP.replace(b"avg10=0.12", b"avg10=abc"),
         some, (f32(0.22), f32(0.17), f32(1.11))),
        (f"{tag}-wrong-key", fname, UP.replace(b"avg60=0.07", b"avg61=0.07"), full, None),
        (f"{tag}-empty-value", fname, UP.replace(b"avg300=0.51", b"avg300="), full, None),
        (f"{tag}-extra-token", fname, UP.replace(b"total=38464525", b"total=38464525 x=1"),
         full, (f32(0.12), f32(0.07), f32(0.51))),
        (f"{tag}-exponent", fname, UP.replace(b"avg10=0.12", b"avg10=1e1"), full,
         (f32(10.0), f32(0.07), f32(0.51))),
        (f"{tag}-many-decimals", fname, UP.replace(b"avg10=0.12", b"avg10=12.345678"), full,
         (f32(12.345678), f32(0.07), f32(0.51))),
        (f"{tag}-trailing-garbage", fname, UP.replace(b"avg10=0.12", b"avg10=0.12xyz"), full,
         (f32(0.12), f32(0.07), f32(0.51))),
        (f"{tag}-total-negative-wraps", fname, UP.replace(b"total=38464525", b"total=-1"),
         ftot, -1),
        (f"{tag}-max", fname, b"max\n", full, None),
        (f"{tag}-max-value", fname, UP.replace(b"avg10=0.12", b"avg10=max"), full, None),
        (f"{tag}-missing", fname, MISSING, full, None),
    ]

CASES += [
    # memory.stat
    ("stat-anon", "memory.stat", MS, "anon_usage", 1000),
    ("stat-file", "memory.stat", MS, "file_usage", 2000),
    ("stat-shmem", "memory.stat", MS, "shmem_usage", 30),
    ("stat-pgscan", "memory.stat", MS, "pgscan", 77),
    ("stat-pgsteal", "memory.stat", MS, "pgsteal", 66),
    ("stat-active-file", "memory.stat", MS, "active_file", 1),
    ("stat-inactive-file", "memory.stat", MS, "inactive_file", 2),
    ("stat-active-anon", "memory.stat", MS, "active_anon", 3),
    ("stat-inactive-anon", "memory.stat", MS, "inactive_anon", 4),
    ("stat-ws-anon", "memory.stat", MS, "workingset_refault_anon", 5),
    ("stat-ws-file", "memory.stat", MS, "workingset_refault_file", 6),
    ("stat-ws-legacy", "memory.stat", MS, "workingset_refault", 11),
    ("stat-pg-scan-cumulative", "memory.stat", MS, "pg_scan_cumulative", 77),
    ("stat-no-anon-is-zero", "memory.stat", b"file 5\n", "anon_usage", 0),
    ("stat-key-missing", "memory.stat", b"anon 5\n", "file_usage", None),
    ("stat-empty-anon", "memory.stat", b"", "anon_usage", 0),
    ("stat-empty-file", "memory.stat", b"", "file_usage", None),
    ("stat-without-pgscan", "memory.stat", b"anon 5\n", "pg_scan_cumulative", None),
    ("stat-garbage-line-skipped", "memory.stat", b"garbage\nanon 5\n", "anon_usage", 5),
    ("stat-garbage", "memory.stat", b"\x01\x02 zz\n", "file_usage", None),
    ("stat-negative-wraps", "memory.stat", b"anon -1\n", "anon_usage", -1),
    ("stat-truncated", "memory.stat", b"anon 10\nfile", "anon_usage", 10),
    ("stat-truncated-key", "memory.stat", b"anon 10\nfile", "file_usage", None),
    ("stat-duplicate-last-wins", "memory.stat", b"anon 1\nanon 2\n", "anon_usage", 2),
    ("stat-leading-space", "memory.stat", b"  anon 3\n", "anon_usage", 3),
    ("stat-missing-anon", "memory.stat", MISSING, "anon_usage", 0),
    ("stat-missing-pgscan", "memory.stat", MISSING, "pg_scan_cumulative", None),
    ("stat-max-value", "memory.stat", b"anon max\nfile 3\n", "anon_usage", 0),
    ("stat-max-value-other-key", "memory.stat", b"anon max\nfile 3\n", "file_usage", 3),
    # cgroup.events
    ("events-populated", "cgroup.events", b"populated 1\nfrozen 0\n", "is_populated", True),
    ("events-unpopulated", "cgroup.events", b"populated 0\nfrozen 0\n", "is_populated", False),
    ("events-second-line", "cgroup.events", b"frozen 0\npopulated 1\n", "is_populated", True),
    ("events-bad-value", "cgroup.events", b"populated 2\n", "is_populated", None),
    ("events-no-key", "cgroup.events", b"frozen 0\n", "is_populated", None),
    ("events-double-space", "cgroup.events", b"populated  1\n", "is_populated", True),
    ("events-three-tokens", "cgroup.events", b"populated 1 x\n", "is_populated", None),
    ("events-empty", "cgroup.events", b"", "is_populated", None),
    ("events-truncated", "cgroup.events", b"populated", "is_populated", None),
    ("events-missing", "cgroup.events", MISSING, "is_populated", None),
    ("events-garbage", "cgroup.events", b"\x01\x02\x03\n", "is_populated", None),
    ("events-max", "cgroup.events", b"populated max\n", "is_populated", None),
    # cgroup.stat
    ("cgstat-good", "cgroup.stat", b"nr_descendants 1\nnr_dying_descendants 3\n",
     "nr_dying_descendants", 3),
    ("cgstat-no-key", "cgroup.stat", b"nr_descendants 1\n", "nr_dying_descendants", 0),
    ("cgstat-empty", "cgroup.stat", b"", "nr_dying_descendants", 0),
    ("cgstat-garbage", "cgroup.stat", b"nr_dying_descendants x\n", "nr_dying_descendants", 0),
    ("cgstat-truncated", "cgroup.stat", b"nr_dying_descendants", "nr_dying_descendants", 0),
    ("cgstat-missing", "cgroup.stat", MISSING, "nr_dying_descendants", None),
    ("cgstat-max", "cgroup.stat", b"nr_dying_descendants max\n", "nr_dying_descendants", 0),
    # memory.oom.group
    ("oomgroup-one", "memory.oom.group", b"1\n", "oom_group", True),
    ("oomgroup-one-no-newline", "memory.oom.group", b"1", "oom_group", True),
    ("oomgroup-zero", "memory.oom.group", b"0\n", "oom_group", False),
    ("oomgroup-extra-line", "memory.oom.group", b"1\n\n", "oom_group", False),
    ("oomgroup-garbage", "memory.oom.group", b"yes\n", "oom_group", False),
    ("oomgroup-empty", "memory.oom.group", b"", "oom_group", False),
    ("oomgroup-missing", "memory.oom.group", MISSING, "oom_group", None),
    ("oomgroup-truncated", "memory.oom.group", b"\n", "oom_group", False),
    ("oomgroup-max", "memory.oom.group", b"max\n", "oom_group", False),
]

DEVICES = [(8, 0, False), (8, 16, True)]
SSD = (1.21e-2, 6.25e-7, 1.07e-3, 2.61e-7, 2.37e-2, 9.10e-10)
HDD = (1.31e-3, 1.13e-7, 2.58e-1, 5.04e-7, 0.0, 0.0)


def _cost(c, rbytes, wbytes, rios, wios, dbytes, dios):
    return rios * c[0] + rbytes * c[1] + wios * c[2] + wbytes * c[3] + dios * c[4] + dbytes * c[5]


IOSTAT = (b"8:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0\n"
          b"8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=5 dios=1\n"
          b"253:0 rbytes=5 wbytes=5 rios=5 wios=5 dbytes=5 dios=5\n")
IOCOST = 0.0 + _cost(SSD, 1000, 2000, 10, 20, 0, 0)
IOCOST += _cost(HDD, 10, 20, 1, 2, 5, 1)

CASES += [
    ("iostat-good", "io.stat", IOSTAT, "io_cost_cumulative", IOCOST),
    ("iostat-extra-fields", "io.stat",
     b"8:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0 cost.vrate=100.00\n",
     "io_cost_cumulative", 0.0 + _cost(SSD, 1000, 2000, 10, 20, 0, 0)),
    ("iostat-other-device", "io.stat", b"253:0 rbytes=5 wbytes=5 rios=5 wios=5 dbytes=5 dios=5\n",
     "io_cost_cumulative", 0.0),
    ("iostat-empty", "io.stat", b"", "io_cost_cumulative", 0.0),
    ("iostat-truncated", "io.stat", b"8:0 rbytes=1000 wbytes=2000 rios=10\n",
     "io_cost_cumulative", None),
    ("iostat-garbage", "io.stat", b"hello\n", "io_cost_cumulative", None),
    ("iostat-blank-line", "io.stat", IOSTAT + b"\n", "io_cost_cumulative", None),
    ("iostat-first-rate-zero", "io.stat", IOSTAT, "io_cost_rate", 0.0),
    ("iostat-missing", "io.stat", MISSING, "io_cost_cumulative", None),
    ("iostat-max", "io.stat", b"8:0 rbytes=max wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n",
     "io_cost_cumulative", None),
    ("iostat-missing-rate", "io.stat", MISSING, "io_cost_rate", None),
]


@pytest.fixture(params=sorted(READERS))
def reader_kind(request):
    return request.param


def make(kind, tmp_path, files: dict[str, bytes | None], **kw):
    root = tmp_path / "cg"
    proc = write_proc(tmp_path / "proc")
    spec = {"": {"cgroup.controllers": "memory io\n"},
            "c": {"cgroup.controllers": "memory io\n"}}
    write_tree(root, spec)
    for name, content in files.items():
        if content is not None:
            (root / "c" / name).write_bytes(content)
    reader = READERS[kind](str(root), proc_root=str(proc), devices=DEVICES, **kw)
    reader.refresh(1.0)
    return reader, root


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_file_parses_like_oomd(reader_kind, tmp_path, case):
    _, fname, content, metric, expected = case
    reader, _ = make(reader_kind, tmp_path, {fname: content})
    got = reader.value(metric, "c")
    if isinstance(expected, tuple):
        assert got is not None
        assert tuple(np.float32(x) for x in got) == expected
        assert all(isinstance(x, np.float32) for x in got)
    else:
        assert got == expected
        assert type(got) is type(expected)


VANISH = [("memory.current", b"5\n", "current_usage"), ("memory.low", b"5\n", "memory_low"),
          ("memory.min", b"5\n", "memory_min"), ("memory.high", b"max\n", "memory_high"),
          ("memory.max", b"max\n", "memory_max"),
          ("memory.high.tmp", b"max 0\n", "memory_high_tmp"),
          ("memory.pressure", UP, "mem_pressure"), ("io.pressure", UP, "io_pressure"),
          ("memory.stat", MS, "file_usage"), ("io.stat", IOSTAT, "io_cost_cumulative"),
          ("cgroup.events", b"populated 1\n", "is_populated"),
          ("cgroup.stat", b"nr_dying_descendants 1\n", "nr_dying_descendants"),
          ("memory.oom.group", b"1\n", "oom_group"),
          ("memory.swap.current", b"1\n", "swap_usage"), ("memory.swap.max", b"1\n", "swap_max")]


@pytest.mark.parametrize("fname,content,metric", VANISH, ids=[v[0] for v in VANISH])
def test_cgroup_vanished_mid_tick_reads_as_unavailable(reader_kind, tmp_path, fname, content,
                                                       metric):
    reader, root = make(reader_kind, tmp_path, {fname: content})
    assert reader.value("id", "c") is not None          # the cgroup is open
    shutil.rmtree(root / "c")
    assert reader.value(metric, "c") is None
    reader.refresh(2.0)
    assert reader.value(metric, "c") is None


def test_unreadable_file_reads_as_unavailable(reader_kind, tmp_path):
    reader, root = make(reader_kind, tmp_path, {})
    (root / "c" / "memory.current").mkdir()           # read() fails with EISDIR
    reader.refresh(2.0)
    assert reader.value("current_usage", "c") is None


def test_kill_preference_from_xattrs(reader_kind, tmp_path):
    import os

    root = tmp_path / "cg"
    dirs = {"p": [("user.oomd_prefer", b"")], "a": [("user.oomd_avoid", b"1")],
            "both": [("user.oomd_avoid", b""), ("trusted.oomd_prefer", b"")],
            "t": [("trusted.oomd_avoid", b"x")], "n": [("user.other", b"1")]}
    write_tree(root, {name: {"cgroup.controllers": "\n"} for name in dirs})
    try:
        for name, attrs in dirs.items():
            for k, v in attrs:
                os.setxattr(root / name, k, v)
    except OSError as e:
        pytest.skip(f"xattrs not supported on {tmp_path}: {e}")
    proc = write_proc(tmp_path / "proc")
    reader = READERS[reader_kind](str(root), proc_root=str(proc))
    reader.refresh(1.0)
    got = {name: reader.value("kill_preference", name) for name in dirs}
    assert got == {"p": 1, "a": -1, "both": 1, "t": -1, "n": 0}
