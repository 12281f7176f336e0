"""``pyoomd explain``: reports and "why not" answers rendered from decision records made by the
kill plugins on fake trees (oomd.explain reads the record only)."""

from __future__ import annotations

import json

from killfakes import MB
from test_decision_record import Run, bad, tree
from oomd import explain
from oomd.commands import explain as explain_cmd


def memory_run(**levels):
    name = "kill_by_memory_size_or_growth"
    return Run(name, tree(name, **levels), args={"size_threshold": "90"})


def test_why_not_protected_by_memory_low():
    run = memory_run(**{
        "workload.slice/b": {"current_usage": 80 * MB, "effective_usage": 10 * MB,
                             "memory_protection": 70 * MB},
        "workload.slice/c": {"current_usage": 50 * MB, "effective_usage": 50 * MB}})
    (record,) = run.tick()
    assert record["victim"] == "workload.slice/c"
    assert explain.why_not(record, "workload.slice/b") == (
        "protected by memory.low: 70.0 MiB of its 80.0 MiB is protected, leaving 10.0 MiB "
        'effective usage; "workload.slice/c" had 50.0 MiB')


def test_why_not_avoided_by_trusted_xattr():
    run = Run("kill_by_pressure", tree("kill_by_pressure",
                                       **{"workload.slice/b": {"kill_preference": -1}}))
    (record,) = run.tick()
    assert record["victim"] == "workload.slice/c"
    assert explain.why_not(record, "workload.slice/b") == (
        'avoided by xattr trusted.oomd_avoid (kill preference AVOID); "workload.slice/c" was '
        "NORMAL")


def test_why_not_outside_the_candidate_pattern():
    run = Run("kill_by_pressure", tree("kill_by_pressure"))
    (record,) = run.tick()
    assert explain.why_not(record, "system.slice/decoy") == (
        "not a candidate: outside the kill plugin's cgroup pattern 'workload.slice/*'")


def test_why_not_lost_on_a_key_component_and_on_a_tie():
    run = Run("kill_by_io_cost", tree("kill_by_io_cost",
                                      **{"workload.slice/c": bad("kill_by_io_cost", 30)}))
    (record,) = run.tick()
    assert explain.why_not(record, "workload.slice/a") == (
        'lost to "workload.slice/b" on io cost rate (10 cost/s < 30 cost/s)')
    assert explain.why_not(record, "workload.slice/c").startswith(
        'lost to "workload.slice/b" on a tie (equal on every key): equal keys: the smallest path')
    assert explain.why_not(record, "/workload.slice/b/") == "it was killed"


def test_why_not_skipped_and_parent_of_victim():
    name = "kill_by_swap_usage"
    t = tree(name, **{"workload.slice/b/x": bad(name, 5),
                      "workload.slice/c": {"is_populated": False}})
    run = Run(name, t, args={"recursive": "true"})
    (record,) = run.tick()
    assert record["victim"] == "workload.slice/b/x"
    assert explain.why_not(record, "workload.slice/b") == (
        'its child "workload.slice/b/x" was killed instead (the ranking descended into it)')
    t2 = tree(name, **{"workload.slice/b": {"is_populated": False}})
    (record,) = Run(name, t2).tick()
    assert explain.why_not(record, "workload.slice/b") == (
        "skipped: unpopulated (cgroup.events: populated 0)")


def test_report_starts_with_the_verdict_and_aligns_the_table():
    run = Run("kill_by_pressure", tree("kill_by_pressure"))
    (record,) = run.tick()
    text = explain.render(record)
    lines = text.splitlines()
    assert lines[0] == (
        'killed "workload.slice/b" because ruleset "rs" fired and "workload.slice/b" had the '
        'largest pressure (30%) among 3 candidates; 2nd was "workload.slice/c", 10 points '
        "lower (20%)")
    table = lines[lines.index(next(x for x in lines if x.strip().startswith("#"))):][:4]
    assert [x.split()[1] for x in table[1:]] == ["workload.slice/b", "workload.slice/c",
                                                 "workload.slice/a"]
    # the value columns are right-aligned: every row ends its pressure at the same column
    col = table[0].index("pressure") + len("pressure")
    assert all(row[col - 1] == "%" for row in table[1:])


def test_explain_command_json_and_why_not(tmp_path, capsys):
    run = Run("kill_by_pressure", tree("kill_by_pressure"))
    (record,) = run.tick()
    path = tmp_path / "decisions.json"
    path.write_text(json.dumps([record]))
    assert explain_cmd.main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == record
    assert explain_cmd.main([str(path), "--cgroup", "system.slice/decoy"]) == 0
    assert capsys.readouterr().out == (
        "kill 1 (tick 1, victim workload.slice/b): not a candidate: outside the kill plugin's "
        "cgroup pattern 'workload.slice/*'\n")
    assert explain_cmd.main([str(path), "--kill", "2"]) == 1
    assert "there is no kill 2: the file has 1 kill(s)" in capsys.readouterr().err
