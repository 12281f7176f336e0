"""Each killer's own ranking and log line (reference §4.12–4.16), on injected values."""

from __future__ import annotations

import numpy as np
import pytest

from killfakes import MB, FakeContext, RecordingKiller, kill_engine, one_action
from support import FakeClock
from oomd import logs, plugin
from oomd.plugin import MonitoredResources, PluginConstructionContext, PluginRet


def make(name: str, args: dict, tmp_path=None, proc_root="/proc"):
    p = plugin.create(name)
    ret = p.init(MonitoredResources(), {"cgroup": "w/*", **args},
                 PluginConstructionContext(killer=RecordingKiller(), proc_root=proc_root))
    return p, ret


def ranked(p, ctx) -> list[str]:
    return [ctx.relpath(int(r)) for r in p.rank(ctx, ctx.resolve(p.cgroup))]


def picked_line(p, ctx, rel: str) -> str:
    rows = p.rank(ctx, ctx.resolve(p.cgroup))
    with logs.capture() as lines:
        p.log_kill_target(ctx, ctx.row_of(rel), rows)
    (msg,) = logs.messages(lines)
    return msg


def mem(cur_mb, eff_mb=None, growth=1.0, **kw):
    return {"current_usage": cur_mb * MB, "effective_usage": (cur_mb if eff_mb is None else eff_mb) * MB,
            "memory_growth": growth, **kw}


# -- kill_by_memory_size_or_growth --------------------------------------------------------------

def test_memory_size_phase_beats_growth():
    p, _ = make("kill_by_memory_size_or_growth", {})
    ctx = FakeContext({"w/big": mem(60), "w/grow": mem(30, growth=3.0), "w/small": mem(10)})
    assert ranked(p, ctx) == ["w/big", "w/grow", "w/small"]
    assert picked_line(p, ctx, "w/big") == (
        'Picked "w/big" (60MB) based on size > 50% of total 100MB with kill preference NORMAL')


def test_memory_growth_phase_among_largest():
    # nobody reaches 50% of the total; the growing one among the top 80% by size wins
    p, _ = make("kill_by_memory_size_or_growth", {})
    ctx = FakeContext({"w/a": mem(30), "w/b": mem(25, growth=2.5), "w/c": mem(25),
                       "w/d": mem(20, growth=9.0)})
    # n=4: index ceil(4*0.2)-1 = 0 -> growth threshold is the largest effective usage (30MB)
    assert ranked(p, ctx) == ["w/a", "w/b", "w/c", "w/d"]
    p2, _ = make("kill_by_memory_size_or_growth", {"growing_size_percentile": "50"})
    # index ceil(4*0.5)-1 = 1 -> threshold 25MB: w/b grows and is large enough, w/d is too small
    assert ranked(p2, ctx) == ["w/b", "w/a", "w/c", "w/d"]
    p3, _ = make("kill_by_memory_size_or_growth", {"size_threshold": "90",
                                                   "growing_size_percentile": "50"})
    assert picked_line(p3, ctx, "w/b") == (
        'Picked "w/b" (25MB) based on growth rate 2.50 (min growth rate 1.25) among P50 largest, '
        "with kill preference NORMAL")
    assert picked_line(p3, ctx, "w/c") == (
        'Picked "w/c" (25MB) based on size > 90% of total 100MB (size threshold overridden) '
        "with kill preference NORMAL")


def test_min_growth_ratio_keeps_its_fraction():
    ctx = FakeContext({"w/a": mem(30), "w/b": mem(30, growth=1.4)})
    strict, _ = make("kill_by_memory_size_or_growth", {"size_threshold": "90",
                                                       "min_growth_ratio": "1.5"})
    loose, _ = make("kill_by_memory_size_or_growth", {"size_threshold": "90",
                                                      "min_growth_ratio": "1.3"})
    # oomd 0.5.0 would read both as 1 and pick w/b for both
    assert ranked(strict, ctx)[0] == "w/a"
    assert ranked(loose, ctx)[0] == "w/b"


def test_memory_ranks_by_effective_not_current_usage():
    p, _ = make("kill_by_memory_size_or_growth", {})
    ctx = FakeContext({"w/protected": mem(60, eff_mb=5), "w/open": mem(40, eff_mb=40)})
    # both are size-eligible (>= 50MB of 100MB only for protected) -> protected first by phase
    assert ranked(p, ctx) == ["w/protected", "w/open"]
    p2, _ = make("kill_by_memory_size_or_growth", {"size_threshold": "30"})
    assert ranked(p2, ctx) == ["w/open", "w/protected"]


def test_memory_missing_values_count_as_zero():
    p, _ = make("kill_by_memory_size_or_growth", {})
    ctx = FakeContext({"w/unknown": {}, "w/known": mem(1)})
    assert ranked(p, ctx) == ["w/known", "w/unknown"]


def test_memory_prerun_keeps_average_for_candidates_and_descendants():
    p, _ = make("kill_by_memory_size_or_growth", {"recursive": "true"})
    ctx = FakeContext({"w/a": mem(1), "w/a/x": mem(1), "w/g": {**mem(1), "oom_group": True},
                       "w/g/hidden": mem(1), "other": mem(1)})
    p.prerun(ctx)
    assert ctx.computed("average_usage") == {"w/a", "w/a/x", "w/g"}


@pytest.mark.parametrize("args, reason", [
    ({"growing_size_percentile": "100"}, "must be below 100"),
    ({"min_growth_ratio": "-1"}, "must be a non-negative number"),
    ({"size_threshold": "-5"}, "is negative"),
])
def test_memory_bad_args_rejected(args, reason):
    p, ret = make("kill_by_memory_size_or_growth", args)
    assert ret == 1 and reason in p.init_error.reason


# -- kill_by_swap_usage --------------------------------------------------------------------------

def meminfo(tmp_path, swap_total_kb: int):
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       16000000 kB\nSwapTotal:      {swap_total_kb} kB\n")
    return str(path)


def test_swap_default_threshold_is_one_byte(tmp_path):
    p, _ = make("kill_by_swap_usage", {"meminfo_location": meminfo(tmp_path, 0)})
    ctx = FakeContext({"w/none": {"swap_usage": 0}, "w/some": {"swap_usage": 1},
                       "w/more": {"swap_usage": 2 * MB}})
    assert ranked(p, ctx) == ["w/more", "w/some"]
    assert picked_line(p, ctx, "w/more") == 'Picked "w/more" (0MB) based on swap usage at 2MB'


def test_swap_bare_number_threshold_is_megabytes(tmp_path):
    p, _ = make("kill_by_swap_usage", {"threshold": "2", "meminfo_location": meminfo(tmp_path, 0)})
    ctx = FakeContext({"w/a": {"swap_usage": 2 * MB - 1}, "w/b": {"swap_usage": 2 * MB}})
    assert ranked(p, ctx) == ["w/b"]


def test_swap_percent_threshold_uses_full_64bit_swap_total(tmp_path):
    # 8 GiB of swap: oomd 0.5.0 truncates SwapTotal to 32 bits (0), so 10% would be 0 bytes
    p, _ = make("kill_by_swap_usage", {"threshold": "10%",
                                       "meminfo_location": meminfo(tmp_path, 8 << 20)})
    assert p.threshold == (8 << 30) // 10
    ctx = FakeContext({"w/a": {"swap_usage": 100 * MB}, "w/b": {"swap_usage": 900 * MB}})
    assert ranked(p, ctx) == ["w/b"]


def test_swap_unreadable_meminfo_means_no_swap_total(tmp_path):
    p, ret = make("kill_by_swap_usage", {"threshold": "50%",
                                         "meminfo_location": str(tmp_path / "missing")})
    assert ret == 0 and p.threshold == 0


def test_swap_bad_threshold_rejected(tmp_path):
    p, ret = make("kill_by_swap_usage", {"threshold": "lots"})
    assert ret == 1
    assert p.init_error.reason.startswith(
        'Failed to parse argument "threshold" of plugin "kill_by_swap_usage"')


def test_swap_default_meminfo_comes_from_proc_root(tmp_path):
    (tmp_path / "meminfo").write_text("SwapTotal:      1024 kB\n")
    p, _ = make("kill_by_swap_usage", {"threshold": "50%"}, proc_root=str(tmp_path))
    assert p.threshold == 512 * 1024


# -- kill_by_pressure ----------------------------------------------------------------------------

def test_pressure_key_is_truncated_half_sum_so_close_values_tie():
    p, _ = make("kill_by_pressure", {"resource": "memory"})
    # 10.9/2 + 10.9/2 = 10.9 -> 10 ; 10.1 -> 10: a tie, broken by path
    ctx = FakeContext({"w/b": {"mem_pressure": (10.9, 10.9, 0)},
                       "w/a": {"mem_pressure": (10.1, 10.1, 0)},
                       "w/c": {"mem_pressure": (4, 30, 0)}})
    assert ranked(p, ctx) == ["w/c", "w/a", "w/b"]
    assert picked_line(p, ctx, "w/b") == (
        'Picked "w/b" (0MB) based on pressure generation at 10s=10.9 60s=10.9')


def test_pressure_io_resource_reads_io_pressure():
    p, _ = make("kill_by_pressure", {"resource": "io"})
    ctx = FakeContext({"w/mem": {"mem_pressure": (90, 90, 90), "io_pressure": (1, 1, 1)},
                       "w/io": {"mem_pressure": (0, 0, 0), "io_pressure": (50, 50, 50)}})
    assert ranked(p, ctx) == ["w/io", "w/mem"]


def test_pressure_requires_resource():
    p, ret = make("kill_by_pressure", {})
    assert ret == 1 and p.init_error.reason == 'Required arg "resource" missing in plugin "kill_by_pressure"'


# -- kill_by_io_cost -----------------------------------------------------------------------------

def test_io_cost_ranks_by_rate_and_prerun_keeps_it():
    p, _ = make("kill_by_io_cost", {})
    ctx = FakeContext({"w/a": {"io_cost_rate": 1.5}, "w/b": {"io_cost_rate": 2.25}, "w/c": {}})
    assert ranked(p, ctx) == ["w/b", "w/a", "w/c"]
    p.prerun(ctx)
    assert ctx.computed("io_cost_rate") >= {"w/a", "w/b", "w/c"}
    assert picked_line(p, ctx, "w/b") == 'Picked "w/b" (0MB) based on io cost generation at 2.25'


# -- kill_by_pg_scan -----------------------------------------------------------------------------

def test_pg_scan_waits_one_tick_then_kills_highest_rate(tmp_path):
    clock = FakeClock()
    killer = RecordingKiller()
    engine = kill_engine(one_action({"name": "kill_by_pg_scan", "args": {"cgroup": "w/*"}}),
                         killer=killer, clock=clock)
    ctx = FakeContext({"w/a": {"pg_scan_rate": 5}, "w/b": {"pg_scan_rate": 50},
                       "x/decoy": {"pg_scan_rate": 5000}})
    with logs.capture() as lines:
        engine.tick(ctx)
    assert killer.killed == []
    assert "Action=kill_by_pg_scan returned ASYNC. Yielding action chain." in logs.messages(lines)
    engine.tick(ctx)
    assert killer.killed == ["/fake/w/b"]


def test_pg_scan_gap_in_ticks_restarts_the_wait():
    p, _ = make("kill_by_pg_scan", {})
    ctx = FakeContext({"w/a": {"pg_scan_rate": 5}})
    ctx.tick = 1
    assert p.run(ctx) == PluginRet.ASYNC_PAUSE
    ctx.tick = 3
    assert p.run(ctx) == PluginRet.ASYNC_PAUSE
    ctx.tick = 4
    assert p.run(ctx) == PluginRet.STOP


def test_pg_scan_missing_rates_are_logged_and_rank_last():
    p, _ = make("kill_by_pg_scan", {})
    ctx = FakeContext({"w/a": {}, "w/b": {"pg_scan_rate": 0}, "w/c": {"pg_scan_rate": 3}})
    with logs.capture() as lines:
        order = ranked(p, ctx)
    assert order == ["w/c", "w/a", "w/b"]
    assert "couldn't read pgscan data in 1/3 cgroups" in logs.messages(lines)
    assert picked_line(p, ctx, "w/c") == (
        'Picked "w/c" (0MB) based on pg scan rate at 3 with kill preference NORMAL')


# -- shared ranking rules ------------------------------------------------------------------------

def test_ties_go_to_smallest_path():
    p, _ = make("kill_by_swap_usage", {"threshold": "0"})
    ctx = FakeContext({f"w/{n}": {"swap_usage": 7} for n in ("m", "c", "x", "a")})
    assert ranked(p, ctx) == ["w/a", "w/c", "w/m", "w/x"]


def test_preference_only_among_peers():
    """A PREFER grandchild does not make its parent win (reference §4.11)."""
    p, _ = make("kill_by_swap_usage", {"threshold": "0"})
    ctx = FakeContext({"w/a": {"swap_usage": 1}, "w/a/x": {"swap_usage": 1, "kill_preference": 1},
                       "w/b": {"swap_usage": 9}})
    assert ranked(p, ctx) == ["w/b", "w/a"]


def test_ranking_is_one_pass_over_arrays_for_many_candidates():
    p, _ = make("kill_by_swap_usage", {"threshold": "0"})
    rng = np.random.default_rng(5)
    usage = rng.permutation(2000)
    ctx = FakeContext({f"w/c{i:05d}": {"swap_usage": int(u), "kill_preference": int(i % 3 == 0) * -1}
                       for i, u in enumerate(usage)})
    order = ranked(p, ctx)
    got = [(ctx.value("kill_preference", ctx.row_of(r)), ctx.value("swap_usage", ctx.row_of(r)))
           for r in order]
    assert got == sorted(got, reverse=True)
