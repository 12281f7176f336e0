"""``swap_free`` (reference §4.8): CONTINUE while free swap (from /proc/swaps) is below
``threshold_pct`` percent of total swap, in oomd's unsigned 64-bit arithmetic."""

from __future__ import annotations

import pytest

from detectorfakes import MB, Rig, args_path, rejection

GIB_KB = 1 << 20


def swaps(*used_kb, size_kb=GIB_KB):
    return [(f"/dev/swap{i}", size_kb, used) for i, used in enumerate(used_kb)]


def test_detects_low_free_swap(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(900 << 10, size_kb=1000 << 10))
    rig.add("swap_free", threshold_pct="50")
    assert rig.run(2) == "CC"
    assert rig.log == [("SwapFree 100MB is smaller than the threshold of 500MB, "
                       "total swap is 1000MB")] * 2


def test_no_detect_plenty_of_free_swap(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(100 << 10, size_kb=1000 << 10))
    rig.add("swap_free", threshold_pct="50")
    assert rig.run(1) == "S"
    assert rig.log == []


def test_no_detect_at_exactly_threshold(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(500 << 10, size_kb=1000 << 10))
    rig.add("swap_free", threshold_pct="50")
    assert rig.run(1) == "S"


@pytest.mark.parametrize("pct", ["0", "50", "100"])
def test_no_swap_never_detects(tmp_path, pct):
    rig = Rig(tmp_path, {}, swap_devices=[])
    rig.add("swap_free", threshold_pct=pct)
    assert rig.run(1) == "S"


def test_sums_every_swap_device(tmp_path):
    # 2 GiB in total, 1.75 GiB used: 256 MiB free < 20% = 409 MiB
    rig = Rig(tmp_path, {}, swap_devices=swaps(GIB_KB, 3 * GIB_KB // 4))
    rig.add("swap_free", threshold_pct="20")
    assert rig.run(1) == "C"
    assert rig.log == [("SwapFree 256MB is smaller than the threshold of 409MB, "
                        "total swap is 2048MB")]


def test_zero_percent_never_and_hundred_percent_once_any_is_used(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(1))
    rig.add("swap_free", threshold_pct="0")
    rig.add("swap_free", threshold_pct="100")
    assert rig.run_all(1) == ["S", "C"]


def test_negative_percent_wraps_and_always_detects(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(0))
    rig.add("swap_free", threshold_pct="-1")
    assert rig.run(1) == "C"
    threshold = ((1 << 64) - (1 << 30)) // 100  # 2^30 * (2^64 - 1) mod 2^64, then / 100
    assert rig.log == [(f"SwapFree 1024MB is smaller than the threshold of {threshold // MB}MB, "
                        "total swap is 1024MB")]


def test_follows_swap_usage_between_ticks(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=swaps(0))
    rig.add("swap_free", threshold_pct="10")
    steps = {2: swaps(GIB_KB - 1024), 3: swaps(0), 4: []}
    assert rig.run(4, between=lambda t: rig.set_proc(swap_devices=steps[t])) == "SCSS"


def test_rejects_missing_threshold_pct():
    assert rejection("swap_free") == (
        f"test.json: at {args_path()}: Plugin=swap_free failed to init() with code=1: "
        'Required arg "threshold_pct" missing in plugin "swap_free"')


def test_rejects_unparsable_threshold_pct():
    assert rejection("swap_free", threshold_pct="half") == (
        f"test.json: at {args_path('threshold_pct')}: Plugin=swap_free failed to init() with "
        "code=1: Failed to parse argument \"threshold_pct\" of plugin \"swap_free\": "
        "'half' is not an integer")


def test_rejects_cgroup_which_it_does_not_take():
    assert rejection("swap_free", threshold_pct="10", cgroup="/") == (
        f"test.json: at {args_path('cgroup')}: Plugin=swap_free failed to init() with code=1: "
        'Unknown arg "cgroup" in plugin "swap_free"')
