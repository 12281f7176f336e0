"""``stall_above`` (pyoomd's own): the stall share of the last ``window`` seconds, from the PSI
``total=`` counters (µs) sampled every tick, above ``threshold`` percent for ``duration``
seconds; the worst matched cgroup is watched. Arithmetic in ``oomd/plugins/_stall.py``.

The rig ticks once a second (fake clock); totals are written before each tick.
"""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection
from oomd.plugins._stall import StallWindow
from oomd.testing import faketree as ft

SA = dict(cgroup="workload.slice/*", resource="memory", threshold="10", window="2")
U64 = 1 << 64
LEGACY = "aggr 316016073\nsome 0.00 0.03 0.05\nfull 0.01 0.02 0.04\n"


def tree(*names):
    """workload.slice/<name> with zero totals, and a decoy outside the pattern that stalls
    all the time."""
    out = {"workload.slice": ft.cgroup(0)}
    for name in names:
        out[f"workload.slice/{name}"] = ft.cgroup(5 * MB, mem_pressure=ft.psi())
    out["system.slice/decoy"] = ft.cgroup(9 * MB, mem_pressure=ft.psi(full_total=0))
    return out


def feed(rig, totals_by_tick: dict[str, list[int]], *, line="full", resource="memory",
         plugin=0) -> str:
    """Write each cgroup's total before each tick; the plugin's outcome per tick."""
    n = max(len(v) for v in totals_by_tick.values())
    out = ""
    rig.log = []
    for i in range(n):
        for rel, totals in totals_by_tick.items():
            total = totals[min(i, len(totals) - 1)]
            if line == "full":
                text = ft.psi(some_total=total, full_total=total)
            else:
                text = ft.psi(some_total=total, full_total=0)
            rig.write(rel, **{f"{resource}_pressure": text})
        rig.write("system.slice/decoy", memory_pressure=ft.psi(full_total=i * 1_000_000,
                                                               some_total=i * 1_000_000))
        out += {0: "C", 1: "S"}[int(rig.tick()[plugin])]
    return out


W = "workload.slice/"


def test_detects_stall_above_threshold_over_the_window(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    # 300 ms of stall a second from the second tick on: 15 % of the first 2 s window
    assert feed(rig, {W + "a": [0, 0, 300_000, 600_000, 900_000]}) == "SSCCC"
    assert rig.log[0] == ('memory full stall of "workload.slice/a" is 15.00% of the last '
                          "2.00s, over the threshold of 10% for 0.00 seconds")


def test_no_detect_stall_below_threshold(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    # 50 ms of stall a second: 5 %
    assert feed(rig, {W + "a": [0, 50_000, 100_000, 150_000, 200_000]}) == "SSSSS"
    assert rig.log == []


def test_no_detect_at_exactly_threshold(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0, 100_000, 200_000, 300_000]}) == "SSSS"


def test_decoy_outside_pattern_is_ignored(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0]}) == "S"
    assert feed(rig, {W + "a": [0, 0, 0, 0]}) == "SSSS"


def test_fires_on_the_worst_of_several_cgroups(tmp_path):
    rig = Rig(tmp_path, tree("a", "b", "c"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0, 150_000, 300_000], W + "b": [0, 500_000, 1_000_000],
                      W + "c": [0, 0, 0]}) == "SCC"
    assert rig.log[-1].startswith('memory full stall of "workload.slice/b" is 50.00% of')


def test_proven_stall_fires_before_a_whole_window_of_samples(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "window": "4"})
    # 500 ms of stall in the first second is 12.5 % of a 4 s window at least, whatever the
    # other 3 s held: no need to wait for a sample 4 s old
    assert feed(rig, {W + "a": [0, 500_000]}) == "SC"
    assert "is 12.50% of the last 4.00s" in rig.log[0]


def test_share_spans_the_ticks_when_they_are_sparser_than_the_window(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "window": "0.5"})
    # ticks are 1 s apart: the share of a 0.5 s window is measured over the last second
    assert feed(rig, {W + "a": [0, 90_000, 290_000]}) == "SSC"
    assert "is 20.00% of the last 1.00s" in rig.log[0]


def test_duration_must_hold_before_firing(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "duration": "1.5"})
    totals = [0] + [400_000 * i for i in range(1, 6)]
    assert feed(rig, {W + "a": totals}) == "SSSCCC"
    assert rig.log[0].endswith("for 2.00 seconds")


def test_a_dip_below_threshold_restarts_the_duration(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "duration": "1"})
    # 40 % for two seconds, nothing for two, then 40 % again: the window (2 s) still holds
    # stall one second after it stopped, is clean the next, and the duration starts over
    t = [0, 400_000, 800_000, 800_000, 800_000, 1_200_000, 1_600_000, 2_000_000]
    assert feed(rig, {W + "a": t}) == "SSCCSSCC"


def test_some_line_reads_the_some_total(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "line": "some"})
    assert feed(rig, {W + "a": [0, 300_000, 600_000]}, line="some") == "SCC"
    assert rig.log[0].startswith("memory some stall of")


def test_full_line_is_the_default_and_ignores_some(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0, 300_000, 600_000]}, line="some") == "SSS"


def test_io_resource_reads_io_pressure(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0, mem_pressure=ft.psi(), io_pressure=ft.psi())})
    rig.add("stall_above", cgroup="w", resource="io", threshold="20", window="1")
    assert feed(rig, {"w": [0, 300_000, 600_000]}, resource="io") == "SCC"
    assert rig.log[0].startswith('io full stall of "w" is 30.00%')


def test_root_cgroup_reads_proc_pressure(tmp_path):
    rig = Rig(tmp_path, {}, mem_pressure=ft.psi(full_total=0))
    rig.add("stall_above", cgroup="/", resource="memory", threshold="10", window="1")
    out = ""
    for total in (0, 50_000, 250_000):
        rig.set_proc(mem_pressure=ft.psi(full_total=total))
        out += "C" if int(rig.tick()[0]) == 0 else "S"
    assert out == "SSC"


def test_counter_wrap_is_an_ordinary_delta(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    near = U64 - 100_000
    assert feed(rig, {W + "a": [near - 300_000, near, 200_000]}) == "SCC"
    assert "is 30.00% of the last 2.00s" in rig.log[-1]


def test_counter_going_back_restarts_the_history(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    # a total that moves back (the counter was reset) is not a huge stall, and the samples
    # before it are not mixed with the ones after it
    assert feed(rig, {W + "a": [5_000_000, 5_000_000, 0, 100_000, 200_000, 600_000]}) \
        == "SSSSSC"
    assert rig.log[0] == ('[stall_above] the memory full stall total of "workload.slice/a" '
                          "went back; its history starts again")


def test_recreated_cgroup_starts_with_no_history(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0, 0]}) == "SS"
    rig.remove(W + "a")
    rig.tick()  # the old cgroup is gone
    rig.cgroup(W + "a", current=MB, mem_pressure=ft.psi(full_total=9_000_000))
    # a larger total under the same name is a new cgroup: no stall until it has its own samples
    assert feed(rig, {W + "a": [9_000_000, 9_000_000, 9_500_000]}) == "SSC"


def test_vanishing_cgroup_is_skipped_and_the_others_still_count(tmp_path):
    rig = Rig(tmp_path, tree("a", "b"))
    rig.add("stall_above", **SA)
    assert feed(rig, {W + "a": [0, 100_000], W + "b": [0, 100_000]}) == "SS"
    rig.remove(W + "a")
    assert feed(rig, {W + "b": [400_000, 700_000]}) == "CC"
    assert 'of "workload.slice/b"' in rig.log[0]
    rig.remove(W + "b")
    assert LETTER(rig.tick()) == "S"


def LETTER(results) -> str:  # noqa: N802 - reads like the rig's letters
    return "C" if int(results[0]) == 0 else "S"


def test_legacy_format_without_total_logs_once_and_stays_quiet(tmp_path):
    rig = Rig(tmp_path, tree("a", "b"))
    rig.add("stall_above", **SA)
    rig.write(W + "a", memory_pressure=LEGACY)
    out = ""
    for i in range(4):
        rig.write(W + "b", memory_pressure=ft.psi(full_total=50_000 * i))
        out += LETTER(rig.tick())
    assert out == "SSSS"
    legacy = [m for m in rig.log if "legacy" in m]
    assert legacy == [f"[stall_above] {rig.root}/workload.slice/a/memory.pressure has no full "
                      "total= (legacy PSI format?): ignored"]


def test_missing_pressure_file_stays_quiet(tmp_path):
    rig = Rig(tmp_path, {"w": ft.cgroup(0)})
    rig.add("stall_above", cgroup="w", resource="memory", threshold="1", window="1")
    assert LETTER(rig.tick()) + LETTER(rig.tick()) == "SS"


def test_no_match_stays_quiet(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    rig.add("stall_above", **{**SA, "cgroup": "nothing/*"})
    assert LETTER(rig.tick()) == "S"


@pytest.mark.parametrize("arg,value,reason", [
    ("window", "0.4", "'0.4' is not a window between 0.5 and 10 seconds"),
    ("window", "11", "'11' is not a window between 0.5 and 10 seconds"),
    ("window", "nan", "'nan' is not a window between 0.5 and 10 seconds"),
    ("threshold", "0", "'0' is not a percentage above 0 and below 100"),
    ("threshold", "100", "'100' is not a percentage above 0 and below 100"),
    ("line", "partial", "'partial' is not a PSI line (some or full)"),
    ("duration", "-1", "'-1' is not a duration of 0 seconds or more"),
    ("resource", "cpu", "'cpu' is not a resource (io or memory)"),
])
def test_invalid_args_rejected_with_reason(arg, value, reason):
    args = {**SA, arg: value}
    assert rejection("stall_above", **args) == (
        f"test.json: at {args_path(arg)}: Plugin=stall_above failed to init() with code=1: "
        f'Failed to parse argument "{arg}" of plugin "stall_above": {reason}')


def test_required_args():
    args = {k: v for k, v in SA.items() if k != "window"}
    assert rejection("stall_above", **args).endswith(
        'Required arg "window" missing in plugin "stall_above"')


def test_fractional_window_threshold_and_duration_accepted(tmp_path):
    rig = Rig(tmp_path, tree("a"))
    p = rig.add("stall_above", **{**SA, "window": "1.5", "threshold": "7.5", "duration": "0.5"})
    assert (p.window, p.threshold, p.duration, p.line) == (1.5, 7.5, 0.5, "full")


# -- the window on its own ------------------------------------------------------------------


def test_window_forgets_samples_older_than_the_newest_one_a_window_old():
    w = StallWindow(2.0)
    for t in range(10):
        w.add(float(t), [7], [t * 100_000])
    assert len(w) == 3  # t=7 (the span's start), 8, 9
    share, basis, known = w.share([7, 8])
    assert list(known) == [True, False]
    assert share[0] == pytest.approx(0.1) and basis[0] == 2.0


def test_window_keeps_one_sample_per_id_and_time():
    w = StallWindow(1.0)
    w.add(0.0, [3, 3, 4], [0, 0, 0])
    w.add(0.0, [3, 4], [10, 10])      # the same tick again replaces it
    w.add(1.0, [3, 4], [110_010, 10])
    share, _, known = w.share([3, 4])
    assert list(known) == [True, True]
    assert share == pytest.approx([0.11, 0.0])
