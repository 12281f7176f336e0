"""pyoomd lint: one test per finding on a fake tree, each asserting every finding of the run.

The tree (lintfakes.tree_spec) has every controller and file; the base config watches
system.slice and kills in system.slice/*, and lints clean. Each test changes one thing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from lintfakes import (Lint, act, bare, config, det, full, lint_as_nobody, ruleset, tree_spec,
                       watch, world_readable)
from oomd.lint.findings import ERROR, NOTE, WARNING, Finding

CHECK_PATTERN = ("Check the pattern against the tree (it is relative to {root}), or ignore this "
                 "if such cgroups appear only later.")


@pytest.fixture
def L(tmp_path):
    return Lint(tmp_path)


def F(lnt, code, severity, path, message, fix, file=None):
    return Finding(code, severity, file or lnt.file, path, message, fix)


def test_base_config_lints_clean(L):
    assert L.run() == []


# ---- the config itself -----------------------------------------------------------------------

def test_config_that_does_not_compile_is_an_error_with_the_compilers_reason(L):
    cfg = config(ruleset(detectors=[["g", det("no_such_plugin", cgroup="system.slice")]]))
    assert L.run(cfg) == [F(
        L, "config-error", ERROR, "$.rulesets[0].detectors[0][1].name",
        "Could not locate plugin=no_such_plugin in plugin registry.",
        "Fix this element: the daemon refuses to start with a config that does not compile.")]


def test_unreadable_config_is_an_error(L):
    from oomd.lint import Host, lint

    report = lint(L.file, [], Host(str(L.root)))    # c.json never written
    assert report.findings == [F(L, "config-error", ERROR, "$",
                                 "cannot read the file: No such file or directory.",
                                 "Give the path of a readable config file.")]


def test_drop_in_that_does_not_compile_is_an_error_in_its_file(L):
    cfg = config(ruleset(**{"drop-in": {"detectors": True}}))
    bad = {"rulesets": [{"name": "r", "detectors": [
        ["g", det("pressure_above", cgroup="system.slice", resource="cpu", threshold=1,
                  duration=0)]]}]}
    findings = L.run(cfg, [("d.json", bad)])
    assert findings == [F(
        L, "dropin-error", ERROR, "$.rulesets[0].detectors[0][1].args.resource",
        'Plugin=pressure_above failed to init() with code=1: Failed to parse argument "resource" '
        "of plugin \"pressure_above\": 'cpu' is not a resource (io or memory).",
        "Fix this element: the daemon rejects a drop-in that does not compile.",
        file=str(L.tmp / "d.json"))]


def test_drop_in_naming_a_missing_ruleset_is_an_error(L):
    cfg = config(ruleset("first"), ruleset("second", actions=[act("continue")]))
    dropin = {"rulesets": [{"name": "thrid", "actions": [act("continue")]}]}
    assert L.run(cfg, [("d.json", dropin)]) == [F(
        L, "dropin-unknown-ruleset", ERROR, "$.rulesets[0].name",
        'drop-in ruleset "thrid" matches no ruleset of the base config, so the daemon rejects '
        "the whole drop-in.",
        'Name one of the base config\'s rulesets: "first", "second".', file=str(L.tmp / "d.json"))]


def test_drop_in_replacing_what_its_ruleset_does_not_open_is_an_error(L):
    cfg = config(ruleset(**{"drop-in": {"detectors": True}}))
    dropin = {"rulesets": [{"name": "r", "actions": [act("continue")]}]}
    assert L.run(cfg, [("d.json", dropin)]) == [F(
        L, "dropin-not-allowed", ERROR, "$.rulesets[0].actions",
        'ruleset "r" does not accept drop-in actions, so the daemon rejects the whole drop-in.',
        'Set "drop-in": {"actions": true} on ruleset "r" in the base config, or leave actions '
        "out of the drop-in.", file=str(L.tmp / "d.json"))]


def test_a_good_drop_ins_own_elements_are_linted_in_its_file(L):
    cfg = config(ruleset(**{"drop-in": {"actions": True}}))
    dropin = {"rulesets": [{"name": "r", "actions": [
        act("kill_by_pressure", cgroup="system.slice/*", resource="memory", dry=True)]}]}
    assert L.run(cfg, [("d.json", dropin)]) == [F(
        L, "dry-left-on", WARNING, "$.rulesets[0].actions[0].args.dry",
        "dry is on, so kill_by_pressure only logs and records what it would do.",
        'Remove "dry" once the config is tested (pyoomd --dry-run makes every action dry for a '
        "trial run).", file=str(L.tmp / "d.json"))]


# ---- the host --------------------------------------------------------------------------------

def test_missing_cgroup_tree_is_an_error(L, tmp_path):
    gone = tmp_path / "nowhere"
    assert L.run(cgroup_fs=gone) == [F(
        L, "cgroup-fs-unreadable", ERROR, "$",
        f"the cgroup tree at {gone} cannot be opened, so no cgroup check could be made.",
        "Pass --cgroup-fs with the cgroup2 mount point the daemon will use.")]


def test_no_psi_is_an_error(tmp_path):
    lnt = Lint(tmp_path, mem_pressure=None)
    assert lnt.run() == [F(
        lnt, "psi-unavailable", ERROR, "$",
        f"{lnt.proc}/pressure/memory cannot be read: this kernel gives no pressure stall "
        "information, and pyoomd refuses to start without it.",
        "Boot a kernel built with CONFIG_PSI, without psi=0 on its command line.")]


def test_no_swap_with_swap_rules_is_a_warning_for_each(tmp_path):
    lnt = Lint(tmp_path, swap_devices=[])
    cfg = config(ruleset(detectors=[["low swap", det("swap_free", threshold_pct=10)]],
                         actions=[act("kill_by_swap_usage", cgroup="system.slice/*")]))
    fix = ("Add swap (a swap file, partition or zram), or leave this ruleset out on hosts "
           "without swap.")
    assert lnt.run(cfg) == [
        F(lnt, "no-swap", WARNING, "$.rulesets[0].actions[0]",
          f"kill_by_swap_usage acts on swap, and this host has none ({lnt.proc}/swaps lists no "
          "swap area), so it never finds a cgroup to kill.", fix),
        F(lnt, "no-swap", WARNING, "$.rulesets[0].detectors[0][1]",
          f"swap_free acts on swap, and this host has none ({lnt.proc}/swaps lists no swap "
          "area), so it never fires.", fix),
    ]


def test_kill_by_io_cost_without_device_is_an_error(L):
    cfg = config(ruleset(actions=[act("kill_by_io_cost", cgroup="system.slice/*")]))
    assert L.run(cfg) == [F(
        L, "io-cost-without-device", ERROR, "$.rulesets[0].actions[0]",
        "kill_by_io_cost weighs io.stat by the devices given with --device, and none is given, "
        "so every io cost is 0 and it kills the first candidate by path.",
        "Start the daemon (and lint) with --device MAJOR:MINOR[,...] for the disks to weigh "
        "(lsblk shows the numbers).")]
    assert L.run(cfg, devices=[(8, 0, False)]) == []


# ---- patterns and the files behind them -------------------------------------------------------

def test_pattern_matching_nothing_is_a_warning(L):
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth", cgroup="system.slcie/*")]))
    assert L.run(cfg) == [
        F(L, "kills-elsewhere", WARNING, "$.rulesets[0].actions[0].args.cgroup",
          'kill_by_memory_size_or_growth can kill in "system.slcie/*", which is neither inside '
          'nor above a cgroup this ruleset\'s detectors watch ("system.slice"), so such a kill '
          "need not relieve what fired.",
          'Kill within the watched cgroups (such as "system.slice/*"), or ignore this if killing '
          "elsewhere is intended."),
        F(L, "pattern-matches-nothing", WARNING, "$.rulesets[0].actions[0].args.cgroup",
          f'"system.slcie/*" matches no cgroup under {L.root}, so kill_by_memory_size_or_growth '
          "has nothing to kill.", CHECK_PATTERN.format(root=L.root)),
    ]


def test_detector_patterns_matching_nothing_say_it_has_nothing_to_watch(L):
    cfg = config(ruleset(detectors=[["g", det("pressure_above", cgroup="nope.slice,gone.slice",
                                              resource="io", threshold=60, duration=30)]],
                         actions=[act("continue")]))
    assert L.run(cfg) == [F(
        L, "pattern-matches-nothing", WARNING, "$.rulesets[0].detectors[0][1].args.cgroup",
        f'none of "nope.slice", "gone.slice" matches a cgroup under {L.root}, so pressure_above '
        "has nothing to watch.", CHECK_PATTERN.format(root=L.root))]


def test_one_empty_pattern_among_others_is_a_note(L):
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth",
                                      cgroup="system.slice/*,system.slice/*/*.scope")]))
    assert L.run(cfg) == [F(
        L, "pattern-matches-nothing", NOTE, "$.rulesets[0].actions[0].args.cgroup",
        f'"system.slice/*/*.scope" matches no cgroup under {L.root} (the other patterns of '
        "this argument do).", CHECK_PATTERN.format(root=L.root))]


def test_exists_may_name_what_is_not_there(L):
    cfg = config(ruleset(detectors=[["g", det("exists", cgroup="maintenance.slice", negate=True)]]))
    assert L.run(cfg) == []


def test_controller_missing_from_cgroup2_is_an_error_naming_it(tmp_path):
    spec = {rel: full(controllers="cpu io pids") for rel in tree_spec()}
    lnt = Lint(tmp_path, spec)
    fix = ("Give cgroup2 the memory controller: boot with systemd.unified_cgroup_hierarchy=1, "
           "or with cgroup_no_v1=memory on a hybrid host.")
    assert lnt.run() == [
        F(lnt, "controller-unavailable", ERROR, "$.rulesets[0].actions[0].args.cgroup",
          "kill_by_memory_size_or_growth reads memory.current, memory.min and memory.low, which "
          f"the memory controller provides, and the cgroup2 hierarchy at {lnt.root} does not "
          "have that controller (its cgroup.controllers lists cpu io pids), so "
          "kill_by_memory_size_or_growth has no data for any cgroup but the root.", fix),
        F(lnt, "controller-unavailable", ERROR, "$.rulesets[0].detectors[0][2].args.cgroup",
          "memory_reclaim reads memory.stat, which the memory controller provides, and the "
          f"cgroup2 hierarchy at {lnt.root} does not have that controller (its "
          "cgroup.controllers lists cpu io pids), so memory_reclaim has no data for any cgroup "
          "but the root.", fix),
    ]


def test_controller_not_enabled_for_the_candidates_names_the_parent_to_enable_it_in(tmp_path):
    spec = tree_spec()
    spec["system.slice"] = full(extra={"cgroup.subtree_control": "io\n"})
    spec["system.slice/a.service"] = bare("io")
    spec["system.slice/b.service"] = bare("io")
    lnt = Lint(tmp_path, spec)
    assert lnt.run() == [F(
        lnt, "cgroup-files-missing", ERROR, "$.rulesets[0].actions[0].args.cgroup",
        'all 2 cgroups matched by "system.slice/*" lack memory.current, memory.min and '
        "memory.low because the memory controller is not enabled for them, so "
        "kill_by_memory_size_or_growth has no data for them.",
        f"Enable it top-down by writing +memory to cgroup.subtree_control in "
        f"{lnt.at('system.slice')} (with systemd: MemoryAccounting=yes).")]


def test_controller_not_enabled_for_some_is_a_warning_naming_every_level(tmp_path):
    spec = tree_spec()
    spec["workload.slice"] = full(extra={"cgroup.subtree_control": "io\n"})
    spec["workload.slice/job"] = bare("io")
    spec["workload.slice/job/t1"] = bare("io")
    lnt = Lint(tmp_path, spec)
    cfg = config(ruleset(detectors=[watch("/")],
                         actions=[act("kill_by_pg_scan", cgroup="workload.slice/*/*,other.slice")]))
    assert lnt.run(cfg) == [F(
        lnt, "cgroup-files-missing", WARNING, "$.rulesets[0].actions[0].args.cgroup",
        '1 of 3 cgroups matched by "workload.slice/*/*,other.slice" lacks memory.stat because '
        "the memory controller is not enabled for it, so kill_by_pg_scan has no data for it.",
        "Enable it top-down by writing +memory to cgroup.subtree_control in "
        f"{lnt.at('workload.slice')}, {lnt.at('workload.slice/job')} (with systemd: "
        "MemoryAccounting=yes).")]


def test_pressure_switched_off_in_a_cgroup_says_where_to_switch_it_on(tmp_path):
    spec = tree_spec()
    del spec["system.slice"]["memory.pressure"]
    spec["system.slice"]["cgroup.pressure"] = "0\n"
    lnt = Lint(tmp_path, spec)
    cfg = config(ruleset(detectors=[["g", det("pressure_above", cgroup="system.slice",
                                              resource="memory", threshold=60, duration=30)]]))
    assert lnt.run(cfg) == [F(
        lnt, "cgroup-files-missing", ERROR, "$.rulesets[0].detectors[0][1].args.cgroup",
        'the cgroup matched by "system.slice" lacks memory.pressure because pressure files are '
        "switched off there (cgroup.pressure is 0), so pressure_above has no data for it.",
        f"Write 1 to cgroup.pressure in {lnt.at('system.slice')}.")]


def test_swap_files_missing_with_memory_enabled_points_at_swap_accounting(tmp_path):
    spec = tree_spec()
    for rel in ("system.slice/a.service", "system.slice/b.service"):
        del spec[rel]["memory.swap.current"]
    lnt = Lint(tmp_path, spec)
    cfg = config(ruleset(detectors=[["g", det("swap_free", threshold_pct=10)]],
                         actions=[act("kill_by_swap_usage", cgroup="system.slice/*")]))
    assert lnt.run(cfg) == [F(
        lnt, "cgroup-files-missing", ERROR, "$.rulesets[0].actions[0].args.cgroup",
        'all 2 cgroups matched by "system.slice/*" lack memory.swap.current although their '
        "controllers are enabled, so kill_by_swap_usage has no data for them.",
        "Turn on swap accounting (boot with swapaccount=1 where the kernel has the option).")]


# ---- thresholds and durations ----------------------------------------------------------------

def test_pressure_threshold_of_100_can_never_be_met(L):
    cfg = config(ruleset(detectors=[["g", det("pressure_above", cgroup="system.slice",
                                              resource="memory", threshold=100, duration=30)]]))
    assert L.run(cfg) == [F(
        L, "threshold-never-met", ERROR, "$.rulesets[0].detectors[0][1].args.threshold",
        "pressure_above's threshold 100 can never be met: pressure must exceed it, and pressure "
        "is a percentage that never exceeds 100.", "Use a threshold below 100.")]


def test_negative_pressure_threshold_is_always_met(L):
    cfg = config(ruleset(detectors=[["g", det("pressure_rising_beyond", cgroup="system.slice",
                                              resource="io", threshold=-1, duration=30)]]))
    assert L.run(cfg) == [F(
        L, "threshold-always-met", WARNING, "$.rulesets[0].detectors[0][1].args.threshold",
        "pressure_rising_beyond's threshold -1 is always met: any pressure, 0 included, "
        "exceeds it.", "Use a threshold between 0 and 99.")]


def test_memory_above_over_memtotal_can_never_be_met(L):
    cfg = config(ruleset(detectors=[["g", det("memory_above", cgroup="system.slice",
                                              threshold="20G", duration=30)]]))
    assert L.run(cfg) == [F(
        L, "threshold-never-met", ERROR, "$.rulesets[0].detectors[0][1].args.threshold",
        "memory_above's threshold 20G (20480 MiB) can never be met: it is not below this host's "
        "MemTotal (16384 MiB).",
        'Use a threshold below MemTotal, or a percentage of it (such as "80%").')]


def test_memory_above_zero_is_always_met(L):
    cfg = config(ruleset(detectors=[["g", det("memory_above", cgroup="system.slice",
                                              threshold_anon=0, duration=30)]]))
    assert L.run(cfg) == [F(
        L, "threshold-always-met", WARNING, "$.rulesets[0].detectors[0][1].args.threshold_anon",
        "memory_above's threshold_anon 0 is always met: any memory usage exceeds it.",
        "Use a positive threshold.")]


def test_swap_free_at_0_never_and_at_100_always(L):
    cfg = config(ruleset("none", detectors=[["g", det("swap_free", threshold_pct=0)]]),
                 ruleset("all", detectors=[["g", det("swap_free", threshold_pct=100)]],
                         actions=[act("kill_by_memory_size_or_growth", cgroup="workload.slice/*/*")]))
    assert L.run(cfg) == [
        F(L, "threshold-never-met", ERROR, "$.rulesets[0].detectors[0][1].args.threshold_pct",
          "swap_free's threshold_pct 0 can never be met: free swap is never below 0 % of swap.",
          "Use a percentage between 1 and 99."),
        F(L, "threshold-always-met", WARNING, "$.rulesets[1].detectors[0][1].args.threshold_pct",
          "swap_free's threshold_pct 100 is met whenever any swap is in use: free swap is below "
          "100 % of swap as soon as one page is swapped out.",
          "Use a percentage between 1 and 99."),
    ]


def test_kill_by_swap_usage_threshold_over_the_swap_size_never_kills(L):
    cfg = config(ruleset(detectors=[["g", det("swap_free", threshold_pct=10)]],
                         actions=[act("kill_by_swap_usage", cgroup="system.slice/*",
                                      threshold="8G")]))
    assert L.run(cfg) == [F(
        L, "threshold-never-met", ERROR, "$.rulesets[0].actions[0].args.threshold",
        "kill_by_swap_usage's threshold 8G (8192 MiB) can never be met: it is above this host's "
        "swap (4096 MiB), so no cgroup ever qualifies.",
        'Use a threshold below the swap size, or a percentage of it (such as "10%").')]


def test_durations_shorter_than_the_interval_are_warnings(L):
    cfg = config(ruleset(detectors=[["g", det("pressure_above", cgroup="system.slice",
                                              resource="memory", threshold=60, duration=3)]],
                         post_action_delay=2))
    fix = "Use at least the interval, or a shorter --interval."
    assert L.run(cfg, interval=5) == [
        F(L, "duration-below-interval", WARNING, "$.rulesets[0].detectors[0][1].args.duration",
          "pressure_above's duration 3 s is shorter than the interval (5 s): it is checked once "
          "per tick, so it acts as 5 s.", fix),
        F(L, "duration-below-interval", WARNING, "$.rulesets[0].post_action_delay",
          "ruleset post_action_delay 2 s is shorter than the interval (5 s): it is checked once "
          "per tick, so it acts as 5 s.", fix),
    ]
    assert L.run(cfg, interval=1) == []


def test_no_pause_after_a_real_kill_is_a_warning(L):
    cfg = config(ruleset(post_action_delay=0))
    assert L.run(cfg) == [F(
        L, "no-post-action-delay", WARNING, "$.rulesets[0].post_action_delay",
        'post_action_delay is 0 after kill_by_memory_size_or_growth acts, so ruleset "r" can '
        "kill again at the next tick, before the first one has taken effect.",
        "Set post_action_delay to a few seconds or more (the default is 15).")]


def test_kill_plugins_own_zero_delay_is_reported_on_the_plugin_and_dry_is_exempt(L):
    own = config(ruleset(actions=[act("kill_by_memory_size_or_growth", cgroup="system.slice/*",
                                      post_action_delay=0)]))
    assert L.run(own) == [F(
        L, "no-post-action-delay", WARNING, "$.rulesets[0].actions[0].args.post_action_delay",
        'post_action_delay is 0 after kill_by_memory_size_or_growth acts, so ruleset "r" can '
        "kill again at the next tick, before the first one has taken effect.",
        "Set post_action_delay to a few seconds or more (the default is 15).")]
    dry = config(ruleset(post_action_delay=0, actions=[
        act("kill_by_memory_size_or_growth", cgroup="system.slice/*", dry=True)]))
    assert [f.code for f in L.run(dry)] == ["dry-left-on"]


# ---- kill candidates -------------------------------------------------------------------------

def test_kill_outside_the_watched_cgroups_is_a_warning(L):
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth",
                                      cgroup="system.slice/*,workload.slice/*/*")]))
    assert L.run(cfg) == [F(
        L, "kills-elsewhere", WARNING, "$.rulesets[0].actions[0].args.cgroup",
        'kill_by_memory_size_or_growth can kill in "workload.slice/*/*", which is neither inside '
        'nor above a cgroup this ruleset\'s detectors watch ("system.slice"), so such a kill '
        "need not relieve what fired.",
        'Kill within the watched cgroups (such as "system.slice/*"), or ignore this if killing '
        "elsewhere is intended.")]


def test_kill_above_or_below_the_watched_cgroup_is_fine(L):
    cfg = config(ruleset(detectors=[watch("workload.slice/job")],
                         actions=[act("kill_by_memory_size_or_growth",
                                      cgroup="workload.slice,workload.slice/*/t1")]))
    assert L.run(cfg) == []


def test_overlapping_candidate_sets_of_two_rulesets_are_a_note(L):
    cfg = config(ruleset("pressure"),
                 ruleset("swap", detectors=[["g", det("swap_free", threshold_pct=10)]],
                         actions=[act("kill_by_swap_usage", cgroup="system.slice/a.service")]))
    assert L.run(cfg) == [F(
        L, "candidates-overlap", NOTE, "$.rulesets[1].actions[0].args.cgroup",
        'kill_by_swap_usage\'s candidates "system.slice/a.service" overlap those of '
        'kill_by_memory_size_or_growth in ruleset "pressure" ("system.slice/*"; 1 cgroup in '
        "both now), so one incident can make both rulesets kill.",
        "Make the candidate sets disjoint, or keep them if one incident may call for a kill by "
        "each ruleset.")]


def test_disjoint_candidate_sets_do_not_overlap(L):
    cfg = config(ruleset("user", detectors=[watch("user.slice")],
                         actions=[act("kill_by_memory_size_or_growth",
                                      cgroup="user.slice/user-*.slice/*")]),
                 ruleset("system"))
    assert [f.code for f in L.run(cfg)] == ["pattern-matches-nothing"] * 3


def test_every_candidate_avoid_marked_is_a_warning(L):
    for name in ("a.service", "b.service"):
        try:
            os.setxattr(L.root / "system.slice" / name, "user.oomd_avoid", b"")
        except OSError as e:
            pytest.skip(f"xattrs not supported on {L.root}: {e}")
    assert L.run() == [F(
        L, "candidates-all-avoid", WARNING, "$.rulesets[0].actions[0].args.cgroup",
        'all 2 cgroups kill_by_memory_size_or_growth can pick from "system.slice/*" are marked '
        "AVOID, so the mark decides nothing: one of them is still killed.",
        "Remove the oomd_avoid xattr from the cgroups that may be killed, or mark the intended "
        "victims with oomd_prefer instead.")]


def test_daemons_own_cgroup_among_candidates_is_an_error(L):
    assert L.run(daemon_cgroup="system.slice/b.service") == [F(
        L, "daemon-cgroup-candidate", ERROR, "$.rulesets[0].actions[0].args.cgroup",
        'the daemon\'s own cgroup "system.slice/b.service" is among '
        'kill_by_memory_size_or_growth\'s candidates ("system.slice/*"), so pyoomd can kill '
        "itself.",
        "Exclude it from the pattern, or at least mark it AVOID (ManagedOOMPreference=avoid in "
        "its unit sets user.oomd_avoid).")]


def test_daemon_inside_a_candidate_is_an_error_and_avoid_makes_it_a_note(L):
    cfg = config(ruleset(detectors=[watch("workload.slice")],
                         actions=[act("kill_by_memory_size_or_growth", cgroup="workload.slice/*")]))
    head = ('the daemon\'s own cgroup "workload.slice/job/t2" is inside candidate '
            '"workload.slice/job" of kill_by_memory_size_or_growth ("workload.slice/*")')
    assert L.run(cfg, daemon_cgroup="/workload.slice/job/t2") == [F(
        L, "daemon-cgroup-candidate", ERROR, "$.rulesets[0].actions[0].args.cgroup",
        f"{head}, so pyoomd can kill itself.",
        "Exclude it from the pattern, or at least mark it AVOID (ManagedOOMPreference=avoid in "
        "its unit sets user.oomd_avoid).")]
    try:
        os.setxattr(L.root / "workload.slice/job/t2", "user.oomd_avoid", b"")
    except OSError as e:
        pytest.skip(f"xattrs not supported on {L.root}: {e}")
    assert L.run(cfg, daemon_cgroup="workload.slice/job/t2") == [F(
        L, "daemon-cgroup-candidate", NOTE, "$.rulesets[0].actions[0].args.cgroup",
        f"{head}, marked AVOID, so it is killed only when no other candidate is left.",
        "Exclude it from the pattern to be sure pyoomd never kills itself.")]


def test_dry_left_on_is_a_warning(L):
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth", cgroup="system.slice/*",
                                      dry="true")]))
    assert L.run(cfg) == [F(
        L, "dry-left-on", WARNING, "$.rulesets[0].actions[0].args.dry",
        "dry is on, so kill_by_memory_size_or_growth only logs and records what it would do.",
        'Remove "dry" once the config is tested (pyoomd --dry-run makes every action dry for a '
        "trial run).")]


@pytest.fixture
def shared_tmp():
    """A temporary directory outside pytest's (which only root may enter)."""
    d = Path(tempfile.mkdtemp(prefix="pyoomd-lint-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unprivileged_lint_reads_what_it_may_and_says_what_it_could_not(shared_tmp):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the child as an unprivileged user")
    lnt = Lint(shared_tmp)
    world_readable(shared_tmp)
    assert lint_as_nobody(lnt) == []
    os.chmod(lnt.root / "system.slice" / "b.service", 0o700)
    assert lint_as_nobody(lnt) == [F(
        lnt, "tree-incomplete", WARNING, "$",
        "1 cgroup directory or file could not be opened while lint read the tree (out of file "
        "descriptors, or not readable), so these findings may have missed cgroups.",
        "Run lint with a higher open-file limit (ulimit -n) and read access to the whole tree."
    ).to_json()]


# ---- reading only ----------------------------------------------------------------------------

def _snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_mtime_ns, st.st_size, tuple(sorted(os.listxattr(p))))
        st = os.lstat(dirpath)
        out[dirpath] = (st.st_mode, st.st_mtime_ns, st.st_size)
    return out


def test_lint_changes_nothing_in_the_tree(L):
    os.setxattr(L.root / "system.slice" / "a.service", "user.oomd_avoid", b"")
    before = _snapshot(L.root)
    cfg = config(ruleset(post_action_delay=0),
                 ruleset("s", detectors=[["g", det("swap_free", threshold_pct=10)]],
                         actions=[act("kill_by_swap_usage", cgroup="system.slice/*,nope/*")]))
    assert L.run(cfg, daemon_cgroup="system.slice/a.service")
    assert _snapshot(L.root) == before


def test_ignore_leaves_out_a_code(L):
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth", cgroup="system.slice/*",
                                      dry=True)]))
    assert L.run(cfg, ignore=["dry-left-on"]) == []


def test_findings_are_in_config_order_with_numeric_indices(L):
    rulesets = [ruleset(f"r{i}") for i in range(11)]
    rulesets[10]["actions"][0]["args"]["dry"] = "true"
    rulesets[2]["actions"][0]["args"]["dry"] = "true"
    paths = [f.path for f in L.run(config(*rulesets), ignore=["candidates-overlap"])]
    assert paths == ["$.rulesets[2].actions[0].args.dry", "$.rulesets[10].actions[0].args.dry"]


def test_hostile_cgroup_names_are_escaped_in_messages(tmp_path):
    spec = tree_spec()
    lnt = Lint(tmp_path, spec)
    name = b"x\xff\x1b[31m"
    os.mkdir(os.fsencode(lnt.root / "system.slice") + b"/" + name)
    assert lnt.run(daemon_cgroup=os.fsdecode(b"system.slice/" + name))[0].message.startswith(
        'the daemon\'s own cgroup "system.slice/x\\xff\\x1b[31m" is among')



def test_no_psi_anywhere_is_said_once_not_per_cgroup(tmp_path):
    spec = tree_spec()
    for files in spec.values():
        del files["memory.pressure"], files["io.pressure"]
    lnt = Lint(tmp_path, spec, mem_pressure=None, io_pressure=None)
    assert [f.code for f in lnt.run()] == ["psi-unavailable"]


def test_cgroup_without_pressure_files_on_a_psi_kernel_is_reported(tmp_path):
    spec = tree_spec()
    for rel in ("system.slice/a.service", "system.slice/b.service"):
        del spec[rel]["memory.pressure"], spec[rel]["cgroup.pressure"]
    lnt = Lint(tmp_path, spec)
    cfg = config(ruleset(detectors=[watch("system.slice/*")]))
    assert lnt.run(cfg) == [F(
        lnt, "cgroup-files-missing", ERROR, "$.rulesets[0].detectors[0][1].args.cgroup",
        'all 2 cgroups matched by "system.slice/*" lack memory.pressure: the kernel gives them '
        "no pressure files, so pressure_above has no data for them.",
        "Boot a kernel built with CONFIG_PSI, without psi=0 on its command line.")]


# ---- how patterns are compared ----------------------------------------------------------------

@pytest.mark.parametrize("p,q,expected", [
    ("system.slice", "system.slice/*", True),            # inside
    ("workload.slice/job/t1", "workload.slice", True),    # above
    ("system.slice", "user.slice/*", False),
    ("user.slice/user-*.slice", "user.slice/user-1000.slice/x", True),
    ("user.slice/user-*.slice", "user.slice/system-*.slice", False),   # two globs, prefixes
    ("*.service", "*.scope", False),                                   # two globs, suffixes
    ("a*", "*b", True),                                                # undecidable: assumed
    ("{system,user}.slice/*", "user.slice/x", True),                   # braces expanded
    ("*", ".hidden", False),                                           # FNM_PERIOD
])
def test_pattern_relations(p, q, expected):
    from oomd.cgpath import split_components
    from oomd.lint.patterns import related

    assert related(split_components(p), split_components(q)) is expected
    assert related(split_components(q), split_components(p)) is expected


# ---- the daemon's own cgroup, as the daemon sees it --------------------------------------------

@pytest.mark.parametrize("fs,own,expected", [
    ("/sys/fs/cgroup", "/system.slice/pyoomd.service", "system.slice/pyoomd.service"),
    ("/sys/fs/cgroup/system.slice", "/system.slice/pyoomd.service", "pyoomd.service"),
    ("/sys/fs/cgroup/workload.slice", "/system.slice/pyoomd.service", None),
    ("/sys/fs/cgroup", "/", ""),
    ("/elsewhere/fake-tree", "/system.slice/pyoomd.service", None),
])
def test_daemon_cgroup_is_relative_to_the_cgroup_fs(tmp_path, fs, own, expected):
    from oomd.lint.hook import daemon_cgroup

    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "cgroup").write_text(f"1:name=systemd:/x\n0::{own}\n")
    (tmp_path / "mounts").write_text("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    assert daemon_cgroup(fs, proc_root=str(tmp_path)) == expected
