"""ReplayContext serves, for a recorded tick, what the live OomdContext gave that tick: every
metric's values and validity, the rows, their paths, children and parents, the resolution of
patterns, the system values; and says what the recording lacks."""

from __future__ import annotations

import numpy as np
import pytest

from oomd.cgpath import CgroupPatterns
from oomd.context import METRICS, OomdContext
from oomd.record.replay_ctx import ReplayContext, ReplayGap
from oomd.record.ticks import Capturer, TickDecoder, TickEncoder
from oomd.testing import faketree

MB = 1 << 20


def _tree(tmp_path):
    return faketree.write_tree(tmp_path / "t", {
        "": faketree.cgroup(),
        "work.slice": faketree.cgroup(900 * MB, memory_low=100 * MB,
                                      mem_pressure=(10, 5, 1)),
        "work.slice/a": faketree.cgroup(300 * MB, memory_min=50 * MB, mem_pressure=(1, 2, 3),
                                        io_pressure=(4, 5, 6), swap_current=MB, swap_max=None,
                                        memory_stat={"anon": 100, "file": 200, "pgscan": 7},
                                        nr_dying_descendants=2, oom_group=1),
        "work.slice/b\udcff": faketree.cgroup(200 * MB, memory_low=300 * MB,
                                             memory_stat={"file": 5}, populated=0),
        "other.slice": faketree.cgroup(10 * MB),
        "other.slice/x": faketree.cgroup(10 * MB),
    })


def test_every_metric_replays_as_it_was_read_live(tmp_path):
    tree = _tree(tmp_path)
    ctx = OomdContext(str(tree), cache_files=False)
    pats = CgroupPatterns.parse("work.slice,work.slice/*")
    ctx.set_monitored([(pats, ["current_usage"])])
    cap, enc, dec = Capturer(), TickEncoder(), TickDecoder()
    replay = ReplayContext(str(tree))
    for tick in range(1, 4):
        if tick == 3:
            (tree / "work.slice" / "a" / "memory.current").write_text(f"{400 * MB}\n")
        ctx.refresh(100.0 + tick)
        rows = np.asarray(ctx.resolve(pats), dtype=np.int32)
        live = {m: ctx.get(m, rows) for m in METRICS}      # every metric read, derived too
        frame = dec.decode(enc.encode(cap.capture(ctx)))
        replay.load(frame)
        replay.refresh(0.0)
        assert (replay.tick, replay.now) == (tick, 100.0 + tick)
        got_rows = replay.resolve(pats)
        assert got_rows.tolist() == rows.tolist()
        assert [replay.relpath(r) for r in rows] == [ctx.relpath(r) for r in rows]
        assert [replay.parent(r) for r in rows] == [ctx.parent(r) for r in rows]
        assert replay.children(int(rows[0])).tolist() == ctx.children(int(rows[0])).tolist()
        assert replay.cgroup_id(int(rows[1])) == ctx.cgroup_id(int(rows[1]))
        for m, (vals, valid) in live.items():
            rvals, rvalid = replay.get(m, rows)
            assert rvalid.tolist() == np.asarray(valid).tolist(), m
            assert np.asarray(rvals)[rvalid].tobytes() == np.asarray(vals)[valid].tobytes(), m
            for r in rows:
                assert replay.value(m, int(r)) == ctx.value(m, int(r)), m
        assert replay.system.mem_total == ctx.system.mem_total
        assert replay.system.meminfo == ctx.system.meminfo
        assert replay.system.vmstat == ctx.system.vmstat
        assert replay.system.mem_pressure == ctx.system.mem_pressure
    assert replay.value("current_usage", int(rows[1])) == 400 * MB
    ctx.close()


def test_what_the_recording_lacks_is_a_gap(tmp_path):
    tree = _tree(tmp_path)
    ctx = OomdContext(str(tree), cache_files=False)
    pats = CgroupPatterns.parse("work.slice/*")
    ctx.set_monitored([(pats, ["current_usage"])])
    ctx.refresh(1.0)
    rows = ctx.resolve(pats)
    frame = TickDecoder().decode(TickEncoder().encode(Capturer().capture(ctx)))
    replay = ReplayContext(str(tree))
    replay.load(frame)
    replay.refresh(1.0)
    assert replay.get("current_usage", rows)[1].all()
    with pytest.raises(ReplayGap, match="value not recorded, metric io_pressure, cgroup "
                                        r"work.slice/a"):
        replay.get("io_pressure", rows)
    assert replay.value("is_populated", int(rows[0])) is None      # lenient: unknown
    with pytest.raises(ReplayGap, match="cgroup not recorded, cgroup pattern other.slice/x, "
                                        "cgroup other.slice"):
        replay.resolve(CgroupPatterns.parse("other.slice/x"))
    assert replay.resolve(CgroupPatterns.parse("missing.slice")).tolist() == []
    with pytest.raises(ReplayGap, match="children not recorded, cgroup work.slice/a"):
        replay.children(int(rows[0]))
    assert replay.dir_fd(int(rows[0])) == -1
    ctx.close()
