"""Decision records beyond the five oomd killers: ``kill_by_stall`` (its key is the stall share
its ranking computed), and a kill cycle suspended by a prekill hook (the record, frozen while
the hook runs, is completed by the resumed search: one record, the hook's wait in its visits)."""

from __future__ import annotations

import numpy as np

import test_kill_by_stall as stall
import test_prekill_in_kill as hooks
from oomd.decision import SKIPS


def test_kill_by_stall_record_holds_the_shares_it_ranked_by(tmp_path):
    run = stall.Run(tmp_path, {"workload.slice/a": 100_000, "workload.slice/b": 400_000,
                               "workload.slice/c": 200_000, "system.slice/decoy": 900_000})
    run.ctx.decisions = []
    plugin = run.engine.rulesets[0].ruleset.actions[0]
    seen = []
    rank_set = plugin.rank_set

    def spy(ctx, rows, anchor=None):
        ps = rank_set(ctx, rows, anchor)
        seen.append(([ctx.relpath(int(r)) for r in ps.rows], plugin.rank_keys(ctx, ps.rows)))
        return ps

    plugin.rank_set = spy
    stall.fire_from_tick(run, 3)
    assert run.tick(3) == ["workload.slice/b"]
    (record,) = run.ctx.decisions
    (ps,) = record["peer_sets"]
    names, (shares,) = seen[-1]
    assert ps["names"] == names == ["workload.slice/b", "workload.slice/c", "workload.slice/a"]
    assert ps["key"] == ["kill_preference", "stall_share"]
    np.testing.assert_allclose(ps["components"]["stall_share"], np.asarray(shares) * 100.0)
    assert ps["components"]["stall_share"] == [40.0, 20.0, 10.0]
    assert record["victim"] == "workload.slice/b"
    assert ps["decided_by"] == [None, "stall_share", "stall_share"]


def test_prekill_hook_wait_is_one_record_completed_after_the_hook():
    hooks.setup_function()
    s = hooks.Setup(fail=["w/b"])
    s.ctx.decisions = []
    s.tick()
    assert s.ctx.decisions == []          # suspended: the record waits for the hook
    hooks.GATE["open"] = True
    s.tick()
    assert s.killed == ["w/b", "w/c"]
    (record,) = s.ctx.decisions
    assert [(v["cgroup"], v["result"]) for v in record["visits"]] == [
        ("w/b", "prekill_hook"), ("w/b", "kill_failed"), ("w/c", "killed")]
    assert all(v["set"] == 0 for v in record["visits"])
    assert record["victim"] == "w/c" and record["outcome"] == "killed"
    assert record["peer_sets"][0]["names"] == ["w/b", "w/c", "w/a"]
    first = next(v for v in record["visits"]
                 if v["result"] not in SKIPS + ("prekill_hook", "descended"))
    assert first["cgroup"] == record["victim"]
