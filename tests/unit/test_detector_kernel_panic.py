"""``kernel_panic`` (reference §4.20, oomd HEAD only): refuses to load without the explicit
confirmation; dry (or ``--dry-run``) only logs. The real trigger is never touched here: every
test runs with a guard that fails any open of /proc/sysrq-trigger, and non-dry runs write to a
stand-in file."""

from __future__ import annotations

import os

import pytest

from detectorfakes import Rig, args_path, rejection
from oomd.plugin import MonitoredResources, PluginConstructionContext, create
from oomd.plugins.kernel_panic import CONFIRMATION

REAL_TRIGGER = os.path.realpath("/proc/sysrq-trigger")


@pytest.fixture(autouse=True)
def never_the_real_trigger(monkeypatch):
    real_open = os.open

    def guarded(path, *args, **kwargs):
        if os.path.realpath(path) == REAL_TRIGGER:
            raise AssertionError("a test tried to open /proc/sysrq-trigger")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


@pytest.fixture
def trigger(tmp_path):
    path = tmp_path / "sysrq-trigger"
    path.write_text("")
    return path


def test_refuses_to_load_without_confirmation():
    assert rejection("kernel_panic", dry="true") == (
        f"test.json: at {args_path('confirm')}: Plugin=kernel_panic failed to init() with "
        f'code=1: kernel_panic crashes the host; set "confirm": "{CONFIRMATION}" to allow it')


def test_refuses_a_confirmation_that_is_not_exact():
    assert "kernel_panic crashes the host" in rejection("kernel_panic", confirm="yes", dry="1")


def test_rejects_unknown_arg():
    assert rejection("kernel_panic", confirm=CONFIRMATION, cgroup="/") == (
        f"test.json: at {args_path('cgroup')}: Plugin=kernel_panic failed to init() with "
        'code=1: Unknown arg "cgroup" in plugin "kernel_panic"')


def test_dry_only_logs_and_stops(tmp_path, trigger):
    rig = Rig(tmp_path, {})
    rig.add("kernel_panic", confirm=CONFIRMATION, dry="true", sysrq_trigger=str(trigger))
    assert rig.run(1) == "S"
    assert rig.log == [f"DRY-RUN: would trigger a kernel panic through {trigger}"]
    assert trigger.read_text() == ""


def test_dry_run_flag_makes_it_dry(tmp_path, trigger):
    p = create("kernel_panic")
    ctx = PluginConstructionContext(force_dry=True)
    assert p.init(MonitoredResources(), {"confirm": CONFIRMATION,
                                         "sysrq_trigger": str(trigger)}, ctx) == 0
    rig = Rig(tmp_path, {})
    rig.plugins.append(p)
    assert rig.run(1) == "S"
    assert trigger.read_text() == ""


def test_writes_c_to_the_trigger_and_stops(tmp_path, trigger):
    rig = Rig(tmp_path, {})
    rig.add("kernel_panic", confirm=CONFIRMATION, sysrq_trigger=str(trigger))
    assert rig.run(1) == "S"
    assert trigger.read_text() == "c"
    assert rig.log == ["Triggering a kernel panic"]


def test_unopenable_trigger_logs_and_continues(tmp_path):
    missing = tmp_path / "no" / "sysrq-trigger"
    rig = Rig(tmp_path, {})
    rig.add("kernel_panic", confirm=CONFIRMATION, sysrq_trigger=str(missing))
    assert rig.run(1) == "C"
    assert rig.log == ["Triggering a kernel panic", f"Failed to open {missing}"]


def test_failed_write_logs_and_continues(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full to make a write fail")
    rig = Rig(tmp_path, {})
    rig.add("kernel_panic", confirm=CONFIRMATION, sysrq_trigger="/dev/full")
    assert rig.run(1) == "C"
    assert rig.log == ["Triggering a kernel panic", "Failed to trigger kernel panic"]
