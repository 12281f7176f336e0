"""``senpai`` (reference §4.18) on a fake tree read by the real OomdContext: what it writes to
memory.high / memory.high.tmp / memory.reclaim, tick by tick."""

from __future__ import annotations

import shutil

import pytest

from oomd import logs, plugin
from oomd.context import OomdContext
from oomd.plugin import MonitoredResources, PluginConstructionContext
from oomd.testing.faketree import cgroup, psi, update_files, write_proc, write_tree

GIB = 1 << 30
MB = 1 << 20


def senpai_cgroup(current=GIB, *, total_us=0, high="max", tmp=False, reclaim=False, **kw):
    files = cgroup(current, memory_high=high,
                   memory_stat={"anon": 0, "file": 0, "active_file": 512 * MB, "inactive_file": 0,
                                "active_anon": 0, "inactive_anon": 0, "pgscan": 0},
                   mem_pressure=psi(some=(0, 0, 0), some_total=total_us),
                   io_pressure=(0, 0, 0), **kw)
    if tmp:
        files["memory.high.tmp"] = "max 0\n"
    if reclaim:
        files["memory.reclaim"] = ""
    return files


class Senpai:
    def __init__(self, tmp_path, args=None, tree=None, proc=None):
        self.root = tmp_path / "cg"
        write_tree(self.root, tree or {"": {"cgroup.controllers": "memory\n"},
                                       "w": senpai_cgroup(), "other": senpai_cgroup(2 * GIB)})
        self.proc = write_proc(tmp_path / "proc", **(proc or {}))
        self.ctx = OomdContext(str(self.root), proc_root=str(self.proc), cache_files=False)
        self.plugin = plugin.create("senpai")
        assert self.plugin.init(MonitoredResources(), {"cgroup": "w", **(args or {})},
                                PluginConstructionContext(proc_root=str(self.proc))) == 0
        self.now = 0.0

    def tick(self) -> list[str]:
        self.now += 1
        self.ctx.refresh(self.now)
        with logs.capture() as lines:
            assert self.plugin.run(self.ctx) == plugin.PluginRet.CONTINUE
        return logs.messages(lines)

    def read(self, rel: str, name: str) -> str:
        return (self.root / rel / name).read_text()

    def set(self, rel: str, **files):
        update_files(self.root, {rel: {k.replace("_", "."): v for k, v in files.items()}})


def test_new_cgroup_gets_memory_high_at_current_usage(tmp_path):
    s = Senpai(tmp_path)
    s.tick()
    assert s.read("w", "memory.high") == str(GIB)
    assert s.read("other", "memory.high") == "max\n"  # outside the pattern


def test_pressure_above_target_backs_off(tmp_path):
    s = Senpai(tmp_path)
    s.tick()
    s.set("w", memory_pressure=psi(some=(0, 0, 0), some_total=50_000))
    msgs = s.tick()
    # error = 50000us // 10000us = 5; factor = (5/20)^2 = 0.0625
    assert s.read("w", "memory.high") == str(int(GIB * 1.0625) & ~0xFFF)
    assert msgs == [f"cgroup {s.root}/w limitgb 1.000 totalus 50000 deltaus 50000 cumus 50000 "
                    "ticks 6 adjust 0.0625"]


def test_quiet_cgroup_is_probed_after_interval_ticks(tmp_path):
    s = Senpai(tmp_path, {"interval": "2", "log_interval": "4"})
    s.tick()
    s.tick()
    s.tick()
    assert s.read("w", "memory.high") == str(GIB)
    s.tick()  # ticks ran out: probe by max_probe (1%)
    probed = int(GIB * 0.99) & ~0xFFF
    assert s.read("w", "memory.high") == str(probed)
    # the 4th run is a log run: one probe since the last one
    assert s.plugin.tracked and next(iter(s.plugin.tracked.values())).probe_count == 0


def test_probe_is_clamped_to_unreclaimable_plus_limit_min(tmp_path):
    # 1 GiB current, 512 MiB reclaimable: the floor is 512 MiB + limit_min_bytes (600 MiB)
    s = Senpai(tmp_path, {"interval": "0", "max_probe": "0.9", "limit_min_bytes": str(600 * MB)})
    s.tick()
    s.tick()
    assert s.read("w", "memory.high") == str((GIB - 512 * MB + 600 * MB) & ~0xFFF)


def test_changed_memory_high_resets_the_cgroup(tmp_path):
    s = Senpai(tmp_path)
    s.tick()
    s.set("w", memory_high="123456789\n")
    msgs = s.tick()
    assert msgs == [f"cgroup {s.root}/w memory.high 123456789 does not match recorded state "
                    f"{GIB}. Resetting cgroup"]
    assert s.read("w", "memory.high") == str(GIB)


def test_memory_high_tmp_is_preferred_when_present(tmp_path):
    s = Senpai(tmp_path, tree={"": {"cgroup.controllers": "memory\n"},
                               "w": senpai_cgroup(tmp=True)})
    s.tick()
    assert s.read("w", "memory.high.tmp") == f"{GIB} 20000000"
    assert s.read("w", "memory.high") == "max\n"


def test_vanished_cgroup_is_forgotten_and_recreated_one_starts_fresh(tmp_path):
    s = Senpai(tmp_path)
    s.tick()
    assert len(s.plugin.tracked) == 1
    shutil.rmtree(s.root / "w")
    s.tick()
    assert s.plugin.tracked == {}
    write_tree(s.root, {"w": senpai_cgroup(2 * GIB)})
    s.tick()
    assert s.read("w", "memory.high") == str(2 * GIB)


def test_immediate_backoff_reclaims_through_memory_reclaim(tmp_path):
    s = Senpai(tmp_path, {"immediate_backoff": "true", "interval": "0"},
               tree={"": {"cgroup.controllers": "memory\n"}, "w": senpai_cgroup(reclaim=True)})
    s.tick()  # tracked
    s.tick()  # pressure low: reclaim 1% of what is above the floor
    floor = GIB - 512 * MB + 100 * MB
    assert s.read("w", "memory.reclaim") == str(int((GIB - floor) * 0.01) & ~0xFFF)
    assert s.read("w", "memory.high") == "max\n"


def test_immediate_backoff_waits_while_pressure_is_high(tmp_path):
    s = Senpai(tmp_path, {"immediate_backoff": "true", "interval": "0"},
               tree={"": {"cgroup.controllers": "memory\n"}, "w": senpai_cgroup(reclaim=True)})
    s.set("w", memory_pressure=psi(some=(5, 5, 5), some_total=0))
    s.tick()
    s.tick()
    assert s.read("w", "memory.reclaim") == ""


def test_immediate_backoff_without_memory_reclaim_pokes_memory_high(tmp_path):
    s = Senpai(tmp_path, {"immediate_backoff": "true", "interval": "0"})
    s.tick()
    s.tick()
    assert s.read("w", "memory.high") == str((1 << 63) - 1)  # set low, then back to max


def test_modulate_swappiness_lowers_it_during_reclaim_and_restores_it(tmp_path, monkeypatch):
    s = Senpai(tmp_path, {"immediate_backoff": "true", "interval": "0",
                          "modulate_swappiness": "true"},
               tree={"": {"cgroup.controllers": "memory\n"},
                     "w": senpai_cgroup(reclaim=True, swap_current=400 * MB, swap_max=1000 * MB)},
               proc={"swappiness": 60, "swap_devices": [("/swapfile", 4 << 20, 0)]})
    writes = []
    real = s.plugin._set_swappiness
    monkeypatch.setattr(s.plugin, "_set_swappiness", lambda v: (writes.append(v), real(v)))
    s.tick()
    s.tick()
    # no swap-out; 40% of the cgroup's swap used of a 80% threshold: factor 1 - 0.4/0.8
    assert writes == [30, 60]
    assert s.read("w", "memory.reclaim") != ""


def test_missing_pressure_total_is_logged_not_fatal(tmp_path):
    s = Senpai(tmp_path)
    s.set("w", memory_pressure="aggr 0\nsome 0.00 0.00 0.00\nfull 0.00 0.00 0.00\n")  # legacy
    msgs = s.tick()
    assert s.plugin.tracked == {}
    assert s.plugin.problems == 1
    assert any("memory.pressure has no total=" in m for m in msgs)


def test_unreadable_meminfo_fails_init(tmp_path):
    p = plugin.create("senpai")
    assert p.init(MonitoredResources(), {"cgroup": "w"},
                  PluginConstructionContext(proc_root=str(tmp_path / "nothing"))) == 1
    assert p.init_error.reason == "Cannot read host MemTotal"


@pytest.mark.parametrize("value", ["0", "-5"])
def test_non_positive_pressure_ms_rejected(tmp_path, value):
    write_proc(tmp_path)
    p = plugin.create("senpai")
    assert p.init(MonitoredResources(), {"cgroup": "w", "pressure_ms": value},
                  PluginConstructionContext(proc_root=str(tmp_path))) == 1
    assert "must be positive" in p.init_error.reason
