"""Memory protection, effective usage and effective swap (reference §5.3, §5.5): computed for
all siblings at once in C, checked against the plain recursive oracle on random trees."""

from __future__ import annotations

import random

import pytest

from oomd.testing.faketree import cgroup, write_proc, write_tree
from tests.reference_reader import READERS, PlainReader, PyoomdReader

MIB = 1 << 20
HIERARCHICAL = ("memory_protection", "effective_usage", "effective_swap_max",
                "effective_swap_free", "effective_swap_util_pct")


def random_tree(rng: random.Random, max_depth: int = 4) -> dict:
    spec = {"": cgroup(0)}

    def grow(rel, depth):
        if depth >= max_depth:
            return
        for i in range(rng.randrange(0, 5 if depth < 2 else 4)):
            child = f"{rel}/c{i}" if rel else f"s{i}"
            limit = lambda: rng.choice([0, 0, 64 * MIB, 256 * MIB, 1 << 40, "max", None])
            spec[child] = cgroup(
                rng.choice([rng.randrange(0, 1024) * MIB, 0, None]),
                memory_min=limit(), memory_low=limit(),
                swap_current=rng.choice([None, 0, rng.randrange(0, 64) * MIB]),
                swap_max=rng.choice([None, "max", 0, 32 * MIB, 1 << 30]))
            grow(child, depth + 1)

    grow("", 0)
    return spec


@pytest.mark.parametrize("seed", range(25))
def test_hierarchical_metrics_match_the_oracle_on_random_trees(tmp_path, seed):
    rng = random.Random(seed)
    spec = random_tree(rng)
    root = write_tree(tmp_path / "cg", spec)
    proc = write_proc(tmp_path / "proc", swap_devices=[("/dev/sdz", 1 << 20, 12345)])
    ours = PyoomdReader(str(root), proc_root=str(proc))
    oracle = PlainReader(str(root), proc_root=str(proc))
    paths = sorted(spec)
    rng.shuffle(paths)                   # ask in random order: caching must not matter
    for t in range(2):
        ours.refresh(float(t))
        oracle.refresh(float(t))
        for metric in HIERARCHICAL:
            for rel in paths:
                assert ours.value(metric, rel) == oracle.value(metric, rel), (metric, rel)


def test_hierarchical_metrics_vectorized_equal_one_by_one(tmp_path):
    from oomd.cgpath import CgroupPatterns

    spec = random_tree(random.Random(7))
    root = write_tree(tmp_path / "cg", spec)
    proc = write_proc(tmp_path / "proc")
    a = PyoomdReader(str(root), proc_root=str(proc))
    b = PyoomdReader(str(root), proc_root=str(proc))
    a.refresh(0.0)
    b.refresh(0.0)
    rows = a.ctx.resolve(CgroupPatterns.parse("*/*,*/*/*,*"))
    vals, valid = a.ctx.get("effective_usage", rows)
    for row, v, ok in zip(rows, vals, valid):
        one = b.value("effective_usage", a.ctx.relpath(int(row)))
        assert (int(v) if ok else None) == one


@pytest.fixture(params=sorted(READERS))
def reader_kind(request):
    return request.param


def make(kind, tmp_path, spec, **proc):
    root = write_tree(tmp_path / "cg", {"": cgroup(0), **spec})
    p = write_proc(tmp_path / "proc", **proc)
    r = READERS[kind](str(root), proc_root=str(p))
    r.refresh(0.0)
    return r


def test_top_level_protection_is_raw(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {"a": cgroup(100 * MIB, memory_low=30 * MIB,
                                                 memory_min=10 * MIB)})
    assert r.value("memory_protection", "a") == 30 * MIB
    assert r.value("effective_usage", "a") == 70 * MIB


def test_top_level_without_memory_low_has_no_effective_usage(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {"a": cgroup(100 * MIB, memory_low=None)})
    assert r.value("memory_protection", "a") is None
    assert r.value("effective_usage", "a") is None


def test_siblings_share_the_parent_protection(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {
        "p": cgroup(300 * MIB, memory_low=100 * MIB),
        "p/a": cgroup(200 * MIB, memory_low=150 * MIB),
        "p/b": cgroup(100 * MIB, memory_low=50 * MIB),
    })
    # S = 150 + 50 = 200 MiB > P(p) = 100 MiB: each gets half its claim
    assert r.value("memory_protection", "p/a") == 75 * MIB
    assert r.value("memory_protection", "p/b") == 25 * MIB
    assert r.value("effective_usage", "p/a") == 125 * MIB


def test_unprotected_siblings_get_zero_protection(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {
        "p": cgroup(300 * MIB, memory_low=100 * MIB),
        "p/a": cgroup(200 * MIB, memory_low=None, memory_min=None),
        "p/b": cgroup(100 * MIB, memory_low=None, memory_min=None),
    })
    assert r.value("memory_protection", "p/a") == 0
    assert r.value("effective_usage", "p/a") == 200 * MIB


def test_root_protection_is_root_usage(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {}, mem_total_kb=1000, mem_free_kb=400)
    assert r.value("current_usage", "") == 600 * 1024
    assert r.value("memory_protection", "") == 600 * 1024


def test_effective_swap_takes_the_tightest_ancestor(reader_kind, tmp_path):
    r = make(reader_kind, tmp_path, {
        "p": cgroup(1, swap_current=10 * MIB, swap_max=100 * MIB),
        "p/a": cgroup(1, swap_current=5 * MIB, swap_max="max"),
        "p/z": cgroup(1, swap_current=0, swap_max=0),
    }, swap_devices=[("/dev/sdz", 1 << 20, 1 << 18)])
    assert r.value("effective_swap_max", "p/a") == 100 * MIB
    assert r.value("effective_swap_free", "p/a") == 90 * MIB
    assert r.value("effective_swap_util_pct", "p/a") == 0.25    # the root's used / total
    assert r.value("effective_swap_util_pct", "p/z") == 0.0     # swap.max 0: 0, whatever above


def test_children_are_sorted_by_name_and_skip_dot_dirs(reader_kind, tmp_path):
    spec = {"p": cgroup(1), "p/b": cgroup(1), "p/a": cgroup(1), "p/B": cgroup(1),
            "p/.hidden": cgroup(1), "p/a/x": cgroup(1)}
    r = make(reader_kind, tmp_path, spec)
    (tmp_path / "cg" / "p" / "file-not-dir").write_text("")
    assert r.children("p") == ["p/B", "p/a", "p/b"]
    assert r.children("p/a/x") == []


def test_parent_evicted_child_keeps_its_state(tmp_path):
    """oomd evicts each context on its own: a parent directory without cgroup.controllers is
    re-created every tick, its children keep their averages."""
    import os

    root = write_tree(tmp_path / "cg", {"": cgroup(0), "p/c": cgroup(1000)})
    assert not os.path.exists(root / "p" / "cgroup.controllers")
    proc = write_proc(tmp_path / "proc")
    r = PyoomdReader(str(root), proc_root=str(proc))
    avgs = []
    for t in range(3):
        r.refresh(float(t))
        avgs.append(r.value("average_usage", "p/c"))
        assert r.value("memory_protection", "p/c") == 0
        row = r.ctx.row_of("p/c")
        assert r.ctx.relpath(r.ctx.parent(row)) == "p"
    assert avgs == [250, 437, 577]
