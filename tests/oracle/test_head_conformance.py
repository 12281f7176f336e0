"""pyoomd ``--compat head`` against oomd HEAD (88c28fd) on per-cgroup ruleset scenarios.

``fixtures/head_88c28fd.jsonl`` holds what oomd HEAD (built as docs/reliability.md says) did on
120 scenarios of ``oomd.testing.headgen`` in which cgroups appear, vanish and gain or lose the
filter xattr between ticks: clones added and dropped, action chains, prekill hooks, kill records.
Each is replayed here through pyoomd; no binary is needed. Re-record with
``scripts/head_conformance.py --save`` (which also compares both live).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oomd.testing import head
from oomd.testing.oracle import LogLine, Tick, _is_end_marker, parse_log_line
from oomd.testing.pyoomd_run import run_pyoomd

FIXTURES = head.load_fixtures(Path(__file__).parent / "fixtures" / "head_88c28fd.jsonl")


def test_fixtures_cover_clones_coming_and_going():
    totals = {k: sum(len(t[k]) for fx in FIXTURES for t in fx["events"]) for k in head.KEYS}
    assert len(FIXTURES) >= 100
    assert all(fx["returncode"] is None for fx in FIXTURES)  # oomd HEAD survived every one
    assert totals["adds"] > 300 and totals["drops"] > 100
    assert totals["chains"] > 500 and totals["kmsg"] > 300
    resumed = [line for fx in FIXTURES for t in fx["events"] for c in t["chains"] for line in c
               if line.endswith("Running action chain from state.")]
    assert resumed  # kill_by_pg_scan's first tick suspends a clone's chain


@pytest.mark.parametrize("fx", FIXTURES, ids=[f"seed{fx['seed']}" for fx in FIXTURES])
def test_pyoomd_compat_head_decides_as_oomd_head(fx):
    scenario = head.fixture_scenario(fx)
    ours = head.run_events(run_pyoomd(scenario, compat="head"))
    diff = head.diff_events(fx["events"], ours)
    assert not diff, f"{scenario.name}:\n" + "\n".join(diff)


# -- reading oomd HEAD's output ---------------------------------------------------------------


def test_head_log_lines_lose_their_timestamp():
    line = "(inl) 1202 07:43:49 [Ruleset.cpp:174] Adding runnable ruleset for cgroup: /x/a\n"
    assert parse_log_line(line) == LogLine("Ruleset.cpp:174",
                                           "Adding runnable ruleset for cgroup: /x/a")


def test_head_end_marker_is_recognised_in_both_forms():
    assert _is_end_marker("DetectorGroup=__oracle_end__ has fired for Ruleset=__oracle_end__. "
                          "Running action chain.")
    assert _is_end_marker("DetectorGroup=__oracle_end__ has fired for Ruleset=__oracle_end__ "
                          "with ruleset cgroup ``. Running action chain.")
    assert not _is_end_marker("DetectorGroup=__oracle_end__ has fired for Ruleset=other "
                              "with ruleset cgroup ``. Running action chain.")


def test_tick_events_group_chains_by_clone_and_ignore_clone_order():
    fs = "/sys/fs/cgroup/unified/../../t/tree"

    def tick(order):
        log = []
        for name in order:
            log += [f"Adding runnable ruleset for cgroup: {fs}/work/{name}",
                    f"DetectorGroup=g has fired for Ruleset=r with ruleset cgroup `{fs}/work/{name}`. "
                    "Running action chain.",
                    "Running Action=kill_by_pressure",
                    f"Prekill hook fired on work/{name}/c1",
                    "Action=kill_by_pressure returned STOP. Terminating action chain."]
        log.append(f"Dropping runnable ruleset for cgroup: {fs}/batch/z")
        return Tick(1, log=[LogLine("x", m) for m in log], kmsg=[f"k {n}" for n in order],
                    complete=True)

    a, b = head.tick_events(tick("ab"), fs), head.tick_events(tick("ba"), fs)
    assert a == b
    assert a["adds"] == ["@/work/a", "@/work/b"] and a["drops"] == ["@/batch/z"]
    assert a["chains"][0] == [
        "DetectorGroup=g has fired for Ruleset=r with ruleset cgroup `@/work/a`. Running action chain.",
        "Running Action=kill_by_pressure", "Prekill hook fired on work/a/c1",
        "Action=kill_by_pressure returned STOP. Terminating action chain."]


def test_changed_generator_is_caught_by_the_digest():
    fx = dict(FIXTURES[0], digest="0" * 16)
    with pytest.raises(ValueError, match="no longer generates"):
        head.fixture_scenario(fx)
