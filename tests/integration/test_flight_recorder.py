"""The flight recorder in the real daemon process on a fake tree: every (dry) kill leaves a
file in ``<runtime-dir>/kills/`` that ``pyoomd explain`` reads, the kill's log line names it,
the directory stays bounded, and a file that cannot be written never stops the daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_daemon import REPO, start  # noqa: F401 - the fixture

from oomd.record.reader import Recording


def config(post_action_delay=0) -> dict:
    return {"rulesets": [{
        "name": "pressure", "post_action_delay": post_action_delay,
        "detectors": [["high", {"name": "pressure_above", "args": {
            "cgroup": "workload/*", "resource": "memory", "threshold": "50",
            "duration": "0"}}]],
        "actions": [{"name": "kill_by_pressure",
                     "args": {"cgroup": "workload/*", "resource": "memory", "dry": True}}],
    }]}


def explain(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oomd", "explain", *map(str, args)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=60)


def kill_files(d) -> list[str]:
    kills = d.runtime / "kills"
    return sorted(os.listdir(kills)) if kills.exists() else []


def test_every_dry_kill_leaves_a_file_that_explain_reads(start):  # noqa: F811
    d = start(config(post_action_delay=3600))
    d.wait_for(d.records, "the dry kill")
    (name,) = d.wait_for(lambda: kill_files(d), "the flight-recorder file")
    path = d.runtime / "kills" / name
    line = d.wait_for(lambda: [x for x in d.lines if "[flight-recorder]" in x], "the log line")
    assert f"pyoomd explain {path}" in line[0]
    assert 'dry kill of "workload/hog" by kill_by_pressure' in line[0]
    rec = Recording.open(str(path))
    kinds = [ev.kind for ev in rec.events()]
    assert kinds[:2] == ["meta", "decision"] and "tick" in kinds
    assert not rec.problems
    got = explain(path)
    assert got.returncode == 0, got.stderr
    first = got.stdout.splitlines()[0]
    assert first.startswith('would have killed (dry run) "workload/hog" because ruleset '
                            '"pressure" fired (memory pressure (full avg10) of workload/hog '
                            "60% > 50%")
    assert '2nd was "workload/calm"' in first
    record = json.loads(explain(path, "--json").stdout)
    assert record["victim"] == "workload/hog" and record["outcome"] == "dry"
    # a torn copy (its tail lost) still explains the kill: the decision comes first
    torn = path.parent.parent / "torn.pyoomdrec"
    data = path.read_bytes()
    torn.write_bytes(data[: len(data) - 40])
    again = explain(torn)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == first


def test_kill_directory_is_bounded_and_junk_does_not_stop_the_daemon(start, tmp_path):  # noqa: F811
    kills = tmp_path / "rt" / "kills"
    kills.mkdir(parents=True)
    (kills / "kill-20000101T000000Z-t1-1.pyoomdrec.tmp999999").write_bytes(b"torn")
    (kills / "kill-20000101T000000Z-t1-1.pyoomdrec").write_bytes(b"PYOOMDR\0torn")
    (kills / "notes.txt").write_text("not ours")
    d = start(config(), extra_args=("--flight-recorder", "4"))
    # a dry kill every tick: far more than 50 kills
    d.wait_for(lambda: d.proc.poll() is None and len(d.records()) > 60, "60 dry kills",
               timeout=60)
    d.settle(2)
    names = kill_files(d)
    ours = [n for n in names if n.startswith("kill-") and n.endswith(".pyoomdrec")]
    assert 40 <= len(ours) <= 50 + 2   # the newest 50 (and one or two being written)
    assert "notes.txt" in names                                  # not ours: left alone
    assert "kill-20000101T000000Z-t1-1.pyoomdrec.tmp999999" not in names  # stale temp: removed
    assert "kill-20000101T000000Z-t1-1.pyoomdrec" not in names   # the oldest: pruned
    assert d.proc.poll() is None


def test_unwritable_kill_directory_never_stops_the_kills(start, tmp_path):  # noqa: F811
    rt = tmp_path / "rt"
    rt.mkdir()
    (rt / "kills").write_text("a file where the directory should be")
    d = start(config())
    d.wait_for(lambda: len(d.records()) >= 3, "three dry kills")
    d.wait_for(lambda: any("[flight-recorder] could not write" in x for x in d.lines),
               "the one warning")
    assert sum("[flight-recorder] could not write" in x for x in d.lines) == 1
    assert d.proc.poll() is None


def test_explain_a_recording_and_why_not_with_a_config(start, tmp_path):  # noqa: F811
    """``--record``: the recording holds the decision records (no flight-recorder file then);
    ``explain --config C RECORDING --cgroup P`` replays C and says why P was not killed."""
    rec = tmp_path / "rec"
    d = start(config(post_action_delay=3600), extra_args=("--record", str(rec)))
    d.wait_for(d.records, "the dry kill")
    d.settle(3)
    d.stop()
    assert kill_files(d) == []
    got = explain(rec)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith('would have killed (dry run) "workload/hog" because ruleset '
                                 '"pressure" fired')
    why = explain("--config", d.config, rec, "--cgroup", "workload/calm")
    assert why.returncode == 0, why.stderr
    assert why.stdout.splitlines()[0] == (
        'kill 1 (tick 1, victim workload/hog): lost to "workload/hog" on pressure (1% < 50%)')
    outside = explain("--config", d.config, rec, "--cgroup", "system.slice")
    assert outside.stdout.splitlines()[0].endswith(
        "not a candidate: outside the kill plugin's cgroup pattern 'workload/*'")
