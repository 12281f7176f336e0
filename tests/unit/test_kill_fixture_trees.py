"""Every killer on its committed fixture tree (tests/fixtures/cgroups/kill_by_*/basic), read by
the real OomdContext: the worst cgroup in ``workload.slice/*`` dies, never the decoy
``system.slice/decoy`` whose numbers are the worst of all. Variants edit a copy of the tree
(memory.oom.group, xattrs, cgroup.events, removed directories). The killer only records."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import mock_plugins
from killfakes import KILLERS, VanishAwareKiller, kill_engine
from support import FakeClock
from oomd import logs
from oomd.context import OomdContext
from oomd.kmsg import Kmsg
from oomd.plugin import PrekillHook, PrekillHookInvocation, register_prekill_hook
from oomd.stats import Stats
from oomd.testing.faketree import kv, update_files, write_proc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cgroups"
MB = 1 << 20


@register_prekill_hook("test_rmtree_hook")
class RemoveVictimHook(PrekillHook):
    """Removes the victim's directory when fired, as if the cgroup went away right after it
    was chosen."""

    def fire(self, relpath, abspath, action_context):
        shutil.rmtree(abspath)
        return PrekillHookInvocation()


class TreeRun:
    def __init__(self, tmp_path: Path, killer: str, *, args=None, hook=None, ruleset_extra=None,
                 kill_with: VanishAwareKiller | None = None):
        self.name = killer
        self.root = tmp_path / "cg"
        shutil.copytree(FIXTURES / killer / "basic", self.root)
        proc = write_proc(tmp_path / "proc")
        self.stats = Stats()
        self.ctx = OomdContext(str(self.root), proc_root=str(proc), devices=[(8, 0, False)],
                               cache_files=False, stats=self.stats)
        self.kmsg_path = tmp_path / "kmsg"
        self.ctx.kmsg = Kmsg(str(self.kmsg_path))
        self.killer = kill_with or VanishAwareKiller()
        self.clock = FakeClock()
        # io cost rates exist from the second tick on: let the detector fire then
        detector = ({"name": "mock", "args": {"id": "det", "ret": "stop,continue"}}
                    if killer == "kill_by_io_cost" else {"name": "continue"})
        rs = {"name": "rs", "detectors": [["dg", detector]],
              "actions": [{"name": killer, "args": {"cgroup": "workload.slice/*",
                                                    **KILLERS[killer], **(args or {})}},
                          {"name": "mock", "args": {"id": "after"}}]}
        rs.update(ruleset_extra or {})
        config = {"rulesets": [rs]}
        if hook:
            config["prekill_hooks"] = [{"name": hook, "args": {"cgroup": "/"}}]
        self.engine = kill_engine(config, killer=self.killer, clock=self.clock, stats=self.stats,
                                  cgroup_fs=str(self.root))
        self.ruleset = self.engine.rulesets[0].ruleset

    def path(self, rel: str) -> Path:
        return self.root / rel

    def run(self) -> list[str]:
        tick2 = FIXTURES / self.name / "basic.tick2.json"
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
            self.clock.advance(1)
            if tick2.exists():
                spec = {rel: files for rel, files in json.loads(tick2.read_text()).items()
                        if self.path(rel).is_dir()}
                update_files(self.root, spec)
                self.engine.tick(self.ctx)
                self.clock.advance(1)
        return logs.messages(lines)

    @property
    def killed(self) -> list[str]:
        return [os.path.relpath(p, self.root) for p in self.killer.killed]

    @property
    def records(self) -> list[str]:
        return self.kmsg_path.read_text().splitlines()


@pytest.fixture(params=sorted(KILLERS))
def killer(request):
    return request.param


def expected_record(killer: str, rel: str, level: int, dry: bool = False) -> str:
    pressure = f"{level:.2f} {level:.2f} {level:.2f}" if killer == "kill_by_pressure" else "0.00 0.00 0.00"
    current = level * MB if killer == "kill_by_memory_size_or_growth" else MB
    return (f"oomd kill: {pressure} {rel} {current} ruleset:[rs] detectorgroup:[dg] "
            f"killer:{'(dry)' if dry else ''}{killer} v2")


def test_kills_worst_in_pattern_and_spares_decoy(tmp_path, killer):
    run = TreeRun(tmp_path, killer)
    run.run()
    assert run.killed == ["workload.slice/b"]
    assert run.records == [expected_record(killer, "workload.slice/b", 30)]
    assert run.stats.get("oomd.kills") == 1
    assert mock_plugins.RUNS["after"] == 0


def test_dry_kills_nothing(tmp_path, killer):
    run = TreeRun(tmp_path, killer, args={"dry": "true"})
    run.run()
    assert run.killed == []
    assert run.records == [expected_record(killer, "workload.slice/b", 30, dry=True)]
    assert run.stats.get("oomd.kills") == 0


def test_recursive_kills_worst_leaf(tmp_path, killer):
    run = TreeRun(tmp_path, killer, args={"recursive": "true"})
    msgs = run.run()
    assert run.killed == ["workload.slice/b/y/z"]
    assert any(m.startswith('Picked "workload.slice/b" ') for m in msgs)
    assert any(m.startswith('Picked "workload.slice/b/y" ') for m in msgs)


def test_recursive_stops_at_oom_group(tmp_path, killer):
    run = TreeRun(tmp_path, killer, args={"recursive": "true"})
    run.path("workload.slice/b/memory.oom.group").write_text("1\n")
    run.run()
    assert run.killed == ["workload.slice/b"]


@pytest.mark.parametrize("ns", ["trusted", "user"])
def test_prefer_xattr_wins(tmp_path, killer, ns):
    run = TreeRun(tmp_path, killer)
    try:
        os.setxattr(run.path("workload.slice/a"), f"{ns}.oomd_prefer", b"")
    except OSError as e:
        pytest.skip(f"{ns}. xattrs not supported on {tmp_path}: {e.strerror}")
    run.run()
    assert run.killed == ["workload.slice/a"]


@pytest.mark.parametrize("ns", ["trusted", "user"])
def test_avoid_xattr_loses(tmp_path, killer, ns):
    run = TreeRun(tmp_path, killer)
    try:
        os.setxattr(run.path("workload.slice/b"), f"{ns}.oomd_avoid", b"1")
    except OSError as e:
        pytest.skip(f"{ns}. xattrs not supported on {tmp_path}: {e.strerror}")
    run.run()
    assert run.killed == ["workload.slice/c"]


def test_vanished_before_tick_is_not_a_candidate(tmp_path, killer):
    run = TreeRun(tmp_path, killer)
    shutil.rmtree(run.path("workload.slice/b"))
    run.run()
    assert run.killed == ["workload.slice/c"]


def test_vanished_after_choice_fails_and_next_is_killed(tmp_path, killer):
    run = TreeRun(tmp_path, killer, hook="test_rmtree_hook")
    run.run()
    # the hook removes every victim it is fired on: b vanishes, then c, then a
    assert run.killed == ["workload.slice/b", "workload.slice/c", "workload.slice/a"]
    assert run.records == []
    assert mock_plugins.RUNS["after"] == 1


def test_empty_cgroup_is_skipped(tmp_path, killer):
    run = TreeRun(tmp_path, killer)
    update_files(run.root, {"workload.slice/b": {"cgroup.events": kv({"populated": 0, "frozen": 0})}})
    run.run()
    assert run.killed == ["workload.slice/c"]


def test_post_action_delay_pauses_ruleset(tmp_path, killer):
    run = TreeRun(tmp_path, killer, args={"post_action_delay": "33"})
    run.run()
    assert run.ruleset.pause_actions_until == run.clock.now - 1 + 33


def test_always_continue_runs_rest_of_chain(tmp_path, killer):
    run = TreeRun(tmp_path, killer, args={"always_continue": "true"})
    run.run()
    assert run.killed == ["workload.slice/b"]
    assert mock_plugins.RUNS["after"] == 1


class EmptyingKiller(VanishAwareKiller):
    """Empties the victim's counters as it kills, and notes what had been logged by then."""

    def __init__(self, logged: list[str]) -> None:
        super().__init__()
        self.logged = logged
        self.logged_before_kill: list[str] = []

    def kill(self, abspath, dir_fd=None, *, reap_memory=True, kill_uuid=None, **_follow):
        self.logged_before_kill = logs.messages(self.logged)
        update_files(Path(abspath), {".": {"memory.current": "0\n", "memory.swap.current": "0\n",
                                           "memory.stat": kv({"anon": 0, "file": 0})}})
        return super().kill(abspath, dir_fd, reap_memory=reap_memory, kill_uuid=kill_uuid)


def test_the_dump_comes_after_the_kill_with_the_victims_values_from_before_it(tmp_path, killer):
    with logs.capture() as logged:
        # debug: every candidate is dumped, the small ones too
        run = TreeRun(tmp_path, killer, args={"debug": "true"}, kill_with=EmptyingKiller(logged))
        msgs = run.run()
    assert run.killed == ["workload.slice/b"]
    before = run.killer.logged_before_kill
    assert any(m.startswith('Picked "workload.slice/b" ') for m in before)
    assert "Dumping OomdContext: " not in before
    assert msgs.index("Dumping OomdContext: ") > next(
        i for i, m in enumerate(msgs) if m.startswith('Picked "workload.slice/b" '))
    victim = msgs.index("name=workload.slice/b")
    mb = 30 if killer == "kill_by_memory_size_or_growth" else 1
    assert msgs[victim + 2].startswith(f"  mem={mb}MB ")
    assert " anon=1MB " in msgs[victim + 2]  # memory.stat: read for the dump only (but pg_scan)
    assert run.records == [expected_record(killer, "workload.slice/b", 30)]
