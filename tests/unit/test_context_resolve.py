"""Pattern resolution (reference §3): glob semantics per component, ordering by relative path,
rows that come and go, and resolution work done only when a directory changed."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from oomd.cgpath import CgroupPatterns
from oomd.context import OomdContext, brace_expand
from oomd.testing.faketree import cgroup, write_proc, write_tree
from tests.reference_reader import PlainReader, PyoomdReader

NAMES = ["a", "b", "ab", "abc.service", ".hidden", "{a}", "c*d", "x y", "z9", "Zed"]


@pytest.fixture
def globtree(tmp_path):
    spec = {"": cgroup(0)}
    for n in NAMES:
        spec[n] = cgroup(1)
        spec[f"{n}/k1"] = cgroup(1)
        spec[f"{n}/k2.scope"] = cgroup(1)
    root = write_tree(tmp_path / "cg", spec)
    (root / "a" / "plainfile").write_text("")
    os.symlink(root / "b", root / "link-to-b")
    return root, write_proc(tmp_path / "proc")


PATTERNS = ["*", "*/*", "a", "a/*", "/", "a,b", "a, b", "{a}", "{a}/k1", "\\{a}", "[ab]",
            "[!a]*", "?", ".*", "a/../b", "nonexistent/*", "*/nonexistent", "a//k1", "//a/",
            "\\a", "c\\*d", "c*d", "*.service", "a/k?", "*/k2.*", "{a", "x y", "link-to-b/*",
            "a/plainfile", "*/*,*", "", ",,"]


@pytest.mark.parametrize("cache_files", [False, True])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_resolution_matches_glibc_glob(globtree, pattern, cache_files):
    root, proc = globtree
    oracle = PlainReader(str(root), proc_root=str(proc))
    ours = PyoomdReader(str(root), proc_root=str(proc), cache_files=cache_files)
    oracle.refresh(0.0)
    ours.refresh(0.0)
    assert ours.resolve(pattern) == oracle.resolve(pattern)


def test_resolution_is_sorted_byte_wise(globtree):
    root, proc = globtree
    r = PyoomdReader(str(root), proc_root=str(proc))
    r.refresh(0.0)
    got = r.resolve("*")
    assert got == sorted(got, key=os.fsencode)
    assert got[:2] == ["Zed", "a"]


def test_brace_expansion_follows_glibc():
    assert brace_expand("a/{b}/c") == ["a/b/c"]
    assert brace_expand("{x,y}z") == ["xz", "yz"]
    assert brace_expand("{a") == ["{a"]
    assert brace_expand("\\{a}") == ["\\{a}"]
    assert brace_expand("{{a}}") == ["a"]


def make(tmp_path, cache_files, spec=None):
    spec = spec or {"": cgroup(0), "s": cgroup(0), "s/a": cgroup(1), "s/b": cgroup(2)}
    root = write_tree(tmp_path / "cg", spec)
    proc = write_proc(tmp_path / "proc")
    ctx = OomdContext(str(root), proc_root=str(proc), cache_files=cache_files, fd_budget=1000)
    return ctx, root


@pytest.mark.parametrize("cache_files", [False, True])
def test_new_cgroups_appear_and_removed_ones_disappear(tmp_path, cache_files):
    ctx, root = make(tmp_path, cache_files)
    p = CgroupPatterns.parse("s/*")
    ctx.set_monitored([(p, ["current_usage"])])
    ctx.refresh(0.0)
    assert [ctx.relpath(r) for r in ctx.resolve(p)] == ["s/a", "s/b"]
    write_tree(root, {"s/c": cgroup(3)})
    shutil.rmtree(root / "s" / "a")
    ctx.refresh(1.0)
    rows = ctx.resolve(p)
    assert [ctx.relpath(r) for r in rows] == ["s/b", "s/c"]
    assert list(ctx.get("current_usage", rows)[0]) == [2, 3]


@pytest.mark.parametrize("cache_files", [False, True])
def test_steady_tick_does_not_resolve_again(tmp_path, cache_files):
    ctx, root = make(tmp_path, cache_files)
    p = CgroupPatterns.parse("s/*")
    ctx.set_monitored([(p, ["current_usage"])])
    ctx.refresh(0.0)
    before = ctx.read_stats["resolutions"]
    rows = ctx.resolve(p)
    for t in range(1, 4):
        ctx.refresh(float(t))
        assert ctx.resolve(p) is rows
    assert ctx.read_stats["resolutions"] == before
    if cache_files:
        listings = ctx.read_stats["listings"]
        ctx.refresh(9.0)
        assert ctx.read_stats["listings"] == listings      # inotify: nothing changed


def test_monitored_metrics_are_read_at_refresh(tmp_path):
    ctx, root = make(tmp_path, False)
    p = CgroupPatterns.parse("s/*")
    ctx.set_monitored([(p, ["current_usage", "mem_pressure"])])
    ctx.refresh(0.0)
    reads = ctx.read_stats["reads"]
    rows = ctx.resolve(p)
    ctx.get("current_usage", rows)
    assert ctx.read_stats["reads"] == reads
    ctx.get("memory_low", rows)                              # not monitored: read lazily
    assert ctx.read_stats["reads"] == reads + 2


def test_unmonitored_pattern_resolves_lazily(tmp_path):
    ctx, root = make(tmp_path, False)
    ctx.refresh(0.0)
    rows = ctx.resolve(CgroupPatterns.parse("s/b"))
    assert [ctx.relpath(r) for r in rows] == ["s/b"]
    assert rows.dtype == np.int32 and not rows.flags.writeable


def test_missing_cgroup_fs_resolves_nothing_and_does_not_raise(tmp_path):
    proc = write_proc(tmp_path / "proc")
    ctx = OomdContext(str(tmp_path / "nowhere"), proc_root=str(proc))
    ctx.refresh(0.0)
    assert len(ctx.resolve(CgroupPatterns.parse("*"))) == 0
    assert ctx.row_of("") is None
    (tmp_path / "nowhere").mkdir()
    ctx.refresh(1.0)
    assert ctx.row_of("") is not None
