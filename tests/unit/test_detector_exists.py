"""``exists`` (reference §4.3): CONTINUE when any pattern resolves to a cgroup directory,
inverted by ``negate``; patterns are oomd's globs (§3)."""

from __future__ import annotations

import os

import pytest

from detectorfakes import Rig, args_path, rejection
from oomd.testing import faketree as ft

TREE = {
    "system.slice": ft.cgroup(0),
    "system.slice/sshd.service": ft.cgroup(0),
    "workload.slice": ft.cgroup(0),
    "workload.slice/job-1.scope": ft.cgroup(0),
    ".hidden": ft.cgroup(0),
}


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path, TREE)


def test_detects_existing_cgroup(rig):
    rig.add("exists", cgroup="system.slice/sshd.service")
    assert rig.run(2) == "CC"


def test_no_detect_missing_cgroup(rig):
    rig.add("exists", cgroup="system.slice/cron.service")
    assert rig.run(2) == "SS"


def test_negate_detects_missing_cgroup(rig):
    rig.add("exists", cgroup="system.slice/cron.service", negate="true")
    assert rig.run(1) == "C"


def test_negate_no_detect_existing_cgroup(rig):
    rig.add("exists", cgroup="system.slice/sshd.service", negate="True")
    assert rig.run(1) == "S"


@pytest.mark.parametrize("negate", ["false", "False", "0"])
def test_negate_false_spellings_keep_plain_meaning(rig, negate):
    rig.add("exists", cgroup="workload.slice", negate=negate)
    assert rig.run(1) == "C"


def test_debug_is_accepted_and_logs_nothing(rig):
    rig.add("exists", cgroup="workload.slice", debug="1")
    assert rig.run(1) == "C"
    assert rig.log == []


def test_detects_when_any_of_several_patterns_exists(rig):
    rig.add("exists", cgroup="nope.slice,other.slice/x,workload.slice/job-1.scope")
    assert rig.run(1) == "C"


def test_no_detect_when_none_of_several_patterns_exists(rig):
    rig.add("exists", cgroup="nope.slice,other.slice/x")
    assert rig.run(1) == "S"


@pytest.mark.parametrize("pattern", ["workload.slice/job-*", "*/sshd.service", "*/*.scope",
                                     "system.slice/ssh?.service", "workload.slice/job-[0-9].scope",
                                     "{system}.slice"])
def test_detects_wildcard_match(rig, pattern):
    rig.add("exists", cgroup=pattern)
    assert rig.run(1) == "C"


@pytest.mark.parametrize("pattern", ["workload.slice/job-2*", "*/cron.service", "*.service",
                                     "system.slice/sshd.service/*"])
def test_no_detect_wildcard_without_match(rig, pattern):
    rig.add("exists", cgroup=pattern)
    assert rig.run(1) == "S"


def test_star_skips_dot_directories_but_a_literal_name_finds_them(rig):
    rig.add("exists", cgroup="*idden")
    rig.add("exists", cgroup=".hidden")
    assert rig.run_all(1) == ["S", "C"]


def test_brace_list_cannot_hold_a_comma(rig):
    # the argument is split on commas before globbing: "{system" and "other}.slice" (§3)
    rig.add("exists", cgroup="{system,other}.slice")
    assert rig.run(1) == "S"


def test_file_is_not_a_cgroup(rig):
    rig.add("exists", cgroup="system.slice/memory.current")
    assert rig.run(1) == "S"


def test_symlink_to_a_cgroup_directory_counts(rig):
    os.symlink(rig.root / "workload.slice", rig.root / "link.slice")
    rig.add("exists", cgroup="link.slice")
    assert rig.run(1) == "C"


def test_directory_without_controllers_file_still_exists(rig):
    (rig.root / "bare.slice").mkdir()
    rig.add("exists", cgroup="bare.slice")
    assert rig.run(2) == "CC"


@pytest.mark.parametrize("pattern", ["/", "///"])
def test_root_always_exists(rig, pattern):
    rig.add("exists", cgroup=pattern)
    assert rig.run(1) == "C"


def test_slashes_around_components_do_not_matter(rig):
    rig.add("exists", cgroup="/workload.slice//job-1.scope/")
    assert rig.run(1) == "C"


def test_empty_pattern_matches_nothing(rig):
    rig.add("exists", cgroup=",")
    assert rig.run(1) == "S"


def test_space_after_comma_is_part_of_the_name(rig):
    rig.add("exists", cgroup="nope.slice, workload.slice")
    assert rig.run(1) == "S"


def test_follows_cgroup_vanishing_and_returning_between_ticks(rig):
    rig.add("exists", cgroup="workload.slice/job-1.scope")

    def world(tick):
        if tick == 2:
            rig.remove("workload.slice/job-1.scope")
        if tick == 4:
            rig.cgroup("workload.slice/job-1.scope", current=0)

    assert rig.run(4, between=world) == "CSSC"


def test_negate_follows_new_cgroup_appearing(rig):
    rig.add("exists", cgroup="workload.slice/job-2.scope", negate="true")

    def appear(tick):
        if tick == 3:
            rig.cgroup("workload.slice/job-2.scope")

    assert rig.run(3, between=appear) == "CCS"


def test_rejects_missing_cgroup():
    assert rejection("exists", negate="true") == (
        f'test.json: at {args_path()}: Plugin=exists failed to init() with code=1: '
        'Required arg "cgroup" missing in plugin "exists"')


@pytest.mark.parametrize("arg,value", [("negate", "yes"), ("debug", "TRUE"), ("negate", "1.0")])
def test_rejects_unparsable_bool(arg, value):
    assert rejection("exists", cgroup="a", **{arg: value}) == (
        f'test.json: at {args_path(arg)}: Plugin=exists failed to init() with code=1: '
        f'Failed to parse argument "{arg}" of plugin "exists": '
        f"{value!r} is not a bool (true/True/1/false/False/0)")


def test_rejects_unknown_argument():
    assert rejection("exists", cgroup="a", count="1") == (
        f'test.json: at {args_path("count")}: Plugin=exists failed to init() with code=1: '
        'Unknown arg "count" in plugin "exists"')
