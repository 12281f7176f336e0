"""Per-cgroup rulesets (oomd HEAD, reference §10): the ruleset keys ``cgroup`` and
``xattr_filter``, clones added and dropped as cgroups come and go, ``ruleset_cgroup``.

The rig runs the real engine and OomdContext on a small fake tree in tmp_path, one second per
tick; kills go to a recording killer, kill records to a list.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from mock_plugins import PRERUNS, RUNS
from support import FakeClock
from oomd import logs
from oomd.compat import Compat
from oomd.config.compiler import Compiler, compile_config
from oomd.config.parser import parse_string
from oomd.context import OomdContext
from oomd.kill import KillResult
from oomd.plugin import PluginConstructionContext, PrekillHook, PrekillHookInvocation, \
    register_prekill_hook
from oomd.rulesets import PerCgroupRuleset
from oomd.stats import Stats
from oomd.testing import faketree as ft

MB = 1 << 20
HOT, COLD = (80.0, 70.0, 60.0), (1.0, 1.0, 1.0)
FIRED = re.compile(r"has fired for Ruleset=(.*?)(?: with ruleset cgroup `(.*)`)?\. Running")


class Killer:
    """Records (abspath, kwargs) and succeeds, except for paths in ``fail``."""

    def __init__(self, fail=()):
        self.killed: list[str] = []
        self.kwargs: list[dict] = []
        self.fail = set(fail)

    def kill(self, abspath, dir_fd=None, *, reap_memory=True, **kw):
        self.killed.append(abspath)
        self.kwargs.append(kw)
        if abspath in self.fail:
            return KillResult(False, reason="recorded failure")
        return KillResult(True, killed=1, method="recorded", verified=True)


class Kmsg:
    def __init__(self):
        self.lines: list[str] = []

    def kill_record(self, body):
        self.lines.append("oomd kill: " + body)

    def write(self, text):
        self.lines.append(text)


class Rig:
    def __init__(self, tmp_path, tree: dict, config: dict, *, compat="head", killer=None):
        self.root = ft.write_tree(tmp_path / "cg", {"": {"cgroup.controllers": "memory io\n"},
                                                   **tree})
        proc = ft.write_proc(tmp_path / "proc")
        self.clock = FakeClock()
        self.stats = Stats()
        self.killer = killer or Killer()
        self.ctx = OomdContext(str(self.root), proc_root=str(proc), cache_files=False, interval=1,
                               stats=self.stats)
        self.ctx.kmsg = self.kmsg = Kmsg()
        self.pctx = PluginConstructionContext(cgroup_fs=str(self.root), proc_root=str(proc),
                                              stats=self.stats, killer=self.killer,
                                              compat=Compat.for_mode(compat))
        self.engine = compile_config(parse_string(json.dumps(config), "t.json"), self.pctx,
                                     self.clock)

    def abs(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def tick(self) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        self.clock.advance(1)
        return [re.sub(r"^\[[^]]*\] ", "", ln) for ln in lines]

    def write(self, rel: str, **kw) -> None:
        ft.write_tree(self.root, {rel: ft.cgroup(**kw)})

    def remove(self, rel: str) -> None:
        shutil.rmtree(self.root / rel)

    def added(self, lines):
        return [ln.split(": ", 1)[1][len(str(self.root)) + 1:] for ln in lines
                if ln.startswith("Adding runnable ruleset")]

    def dropped(self, lines):
        return [ln.split(": ", 1)[1][len(str(self.root)) + 1:] for ln in lines
                if ln.startswith("Dropping runnable ruleset")]

    def fired(self, lines):
        """(ruleset, ruleset cgroup relative path or None) of each chain started."""
        out = []
        for ln in lines:
            m = FIRED.search(ln)
            if m:
                cg = m[2]
                out.append((m[1], cg[len(str(self.root)) + 1:] if cg else cg))
        return out


def cg(pressure=COLD, current=10 * MB, **kw):
    return ft.cgroup(current, mem_pressure=pressure, **kw)


def per_cgroup(cgroup="work/*", detectors=None, actions=None, **extra):
    rs = {"name": "rs", "cgroup": cgroup,
          "detectors": detectors or [["hot", {"name": "pressure_above", "args": {
              "ruleset_cgroup": "/", "resource": "memory", "threshold": "50", "duration": "0"}}]],
          "actions": actions or [{"name": "kill_by_pressure", "args": {
              "ruleset_cgroup": "*", "resource": "memory"}}]}
    rs.update(extra)
    return {"rulesets": [rs]}


def victims(rig):
    return [p[len(str(rig.root)) + 1:] for p in rig.killer.killed]


# -- clones come and go ------------------------------------------------------------------------


def test_one_clone_per_matching_cgroup_added_then_dropped_when_it_goes(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(), "work/b": cg(), "other": cg(),
                         "other/c": cg()}, per_cgroup())
    first = rig.tick()
    assert rig.added(first) == ["work/a", "work/b"]
    assert sorted(rig.engine.rulesets[0].ruleset.clones) == ["work/a", "work/b"]
    rig.remove("work/b")
    rig.write("work/d")
    second = rig.tick()
    assert rig.added(second) == ["work/d"] and rig.dropped(second) == ["work/b"]
    assert rig.added(rig.tick()) == [] and rig.dropped(rig.tick()) == []


def test_cgroup_recreated_under_the_same_name_keeps_its_clone(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg()}, per_cgroup())
    rig.tick()
    clone = rig.engine.rulesets[0].ruleset.clones["work/a"]
    rig.remove("work/a")
    rig.write("work/a")
    lines = rig.tick()
    assert rig.added(lines) == [] and rig.dropped(lines) == []  # keyed by path, as oomd HEAD
    assert rig.engine.rulesets[0].ruleset.clones["work/a"] is clone


def test_xattr_filter_keeps_only_cgroups_with_the_attribute(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(), "work/b": cg()},
              per_cgroup(xattr_filter="user.oomd_rs"))
    os.setxattr(rig.root / "work/a", "user.oomd_rs", b"")
    assert rig.added(rig.tick()) == ["work/a"]
    os.setxattr(rig.root / "work/b", "user.oomd_rs", b"1")
    os.removexattr(rig.root / "work/a", "user.oomd_rs")
    lines = rig.tick()
    assert rig.added(lines) == ["work/b"] and rig.dropped(lines) == ["work/a"]


def test_new_clone_is_prerun_at_once_and_existing_clones_every_tick(tmp_path):
    mock = {"name": "mock", "args": {"id": "d", "ret": "stop"}}
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(), "work/b": cg()},
              per_cgroup(detectors=[["g", mock]], actions=[{"name": "continue"}]))
    rig.tick()
    assert (PRERUNS["d"], RUNS["d"]) == (2, 2)  # each clone: built, prerun, run
    rig.tick()
    assert (PRERUNS["d"], RUNS["d"]) == (4, 4)


# -- each clone is a ruleset of its own ----------------------------------------------------------


def test_each_clone_keeps_its_own_detector_timer(tmp_path):
    detectors = [["hot 2s", {"name": "pressure_above", "args": {
        "ruleset_cgroup": "/", "resource": "memory", "threshold": "50", "duration": "2"}}]]
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(HOT), "work/a/x": cg(),
                         "work/b": cg(), "work/b/y": cg()}, per_cgroup(detectors=detectors))
    assert rig.fired(rig.tick()) == []                     # t=0: a hot
    rig.write("work/b", mem_pressure=HOT, current=10 * MB)
    assert rig.fired(rig.tick()) == []                     # t=1: b hot too
    assert rig.fired(rig.tick()) == [("rs", "work/a")]     # t=2: a for 2 s
    assert rig.fired(rig.tick()) == [("rs", "work/b")]     # t=3: b for 2 s (a paused: 15 s)
    assert victims(rig) == ["work/a/x", "work/b/y"]


def test_a_kill_pauses_only_the_clone_that_killed(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(HOT), "work/a/x": cg(),
                         "work/b": cg(), "work/b/y": cg()},
              per_cgroup(post_action_delay="10"))
    rig.tick()
    rig.write("work/b", mem_pressure=HOT, current=10 * MB)
    rig.tick()
    assert victims(rig) == ["work/a/x", "work/b/y"]
    assert rig.stats.get("oomd.kills") == 2  # a new clone does not reset the count


def test_has_fired_line_names_the_ruleset_cgroup_with_compat_head_only(tmp_path):
    tree = {"work": cg(), "work/a": cg(HOT), "work/a/x": cg()}
    head = Rig(tmp_path / "h", tree, per_cgroup())
    lines = head.tick()
    assert any(ln == f"DetectorGroup=hot has fired for Ruleset=rs with ruleset cgroup "
                     f"`{head.abs('work/a')}`. Running action chain." for ln in lines)
    old = Rig(tmp_path / "o", tree, per_cgroup(), compat="0.5.0")
    assert "DetectorGroup=hot has fired for Ruleset=rs. Running action chain." in old.tick()
    assert victims(old) == ["work/a/x"]


def test_plain_ruleset_says_empty_ruleset_cgroup_with_compat_head(tmp_path):
    cfg = {"rulesets": [{"name": "plain", "detectors": [["g", {"name": "continue"}]],
                         "actions": [{"name": "continue"}]}]}
    rig = Rig(tmp_path, {"work": cg()}, cfg)
    assert ("DetectorGroup=g has fired for Ruleset=plain with ruleset cgroup ``. Running "
            "action chain.") in rig.tick()


# -- ruleset_cgroup stays inside the ruleset cgroup ----------------------------------------------


def test_a_cgroup_named_star_only_reaches_its_own_children(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/*": cg(HOT), "work/*/mine": cg(current=MB),
                         "work/a": cg(), "work/a/big": cg(HOT, current=900 * MB)}, per_cgroup())
    rig.tick()
    assert victims(rig) == ["work/*/mine"]  # oomd HEAD would glob "work/*/*" and find work/a/big


@pytest.mark.parametrize("name", ["[ab]", "{a,b}", "a?", "x\\y"])
def test_glob_characters_in_a_cgroup_name_are_matched_literally(tmp_path, name):
    rig = Rig(tmp_path, {"work": cg(), f"work/{name}": cg(HOT), f"work/{name}/own": cg(),
                         "work/a": cg(), "work/a/other": cg(HOT, current=900 * MB),
                         "work/b": cg(), "work/b/other": cg(HOT, current=900 * MB)},
              per_cgroup(cgroup=f"work/*", actions=[{"name": "kill_by_pressure", "args": {
                  "ruleset_cgroup": "*", "resource": "memory", "dry": "true"}}]))
    rig.tick()
    # oomd HEAD builds the clone's pattern by globbing "work/<name>/*", which would reach
    # work/a/other and work/b/other (hotter) for some of these names
    assert len(rig.kmsg.lines) == 1 and f" work/{name}/own " in rig.kmsg.lines[0]


def test_kills_in_random_trees_stay_inside_the_clone_that_fired(tmp_path):
    import random

    rng = random.Random(7)
    tree = {"work": cg(), "batch": cg()}
    for top in ("work", "batch"):
        for name in ("a", "b", "*", "[a]", "x{y"):
            tree[f"{top}/{name}"] = cg(rng.choice([HOT, COLD]))
            for child in ("x", "y", "*"):
                tree[f"{top}/{name}/{child}"] = cg((rng.randrange(1, 99), 1.0, 1.0),
                                                   current=rng.randrange(1, 999) * MB)
                tree[f"{top}/{name}/{child}/leaf"] = cg((rng.randrange(1, 99), 1.0, 1.0))
    rig = Rig(tmp_path, tree, per_cgroup(cgroup="*/*", post_action_delay="0", actions=[{
        "name": "kill_by_pressure", "args": {"ruleset_cgroup": "*", "resource": "memory",
                                             "recursive": "true"}}]))
    kills = 0
    for _ in range(3):
        seen = len(rig.killer.killed)
        owner = None
        for line in rig.tick():
            m = FIRED.search(line)
            if m:
                owner = m[2]
            if line.startswith("Picked"):
                assert owner is not None
        for path in rig.killer.killed[seen:]:
            kills += 1
            assert any(path.startswith(rig.abs(c) + "/")
                       for c in rig.engine.rulesets[0].ruleset.clones), path
    assert kills >= 3


def test_each_chain_picks_only_under_its_own_cgroup(tmp_path):
    tree = {"work": cg()}
    for name in ("a", "b", "*"):
        tree[f"work/{name}"] = cg(HOT)
        tree[f"work/{name}/x"] = cg(current=(ord(name[0]) % 7 + 1) * MB)
    rig = Rig(tmp_path, tree, per_cgroup())
    owner = None
    for line in rig.tick():
        m = FIRED.search(line)
        if m:
            owner = m[2][len(str(rig.root)) + 1:]
        k = re.match(r'Picked "([^"]*)"', line)
        if k:
            assert k[1].startswith(owner + "/"), (owner, k[1])
    assert sorted(victims(rig)) == ["work/*/x", "work/a/x", "work/b/x"]


# -- a clone whose cgroup vanishes ---------------------------------------------------------------


class _Pending(PrekillHookInvocation):
    cancelled: list[str] = []

    def __init__(self, rel):
        self.rel = rel

    def finished(self):
        return False

    def cancel(self):
        _Pending.cancelled.append(self.rel)


@register_prekill_hook("test_never_finishing_hook")
class NeverFinishing(PrekillHook):
    def fire(self, relpath, abspath, action_context):
        return _Pending(relpath)


def test_clone_dropped_while_its_prekill_hook_runs_cancels_it_and_kills_nothing(tmp_path):
    cfg = per_cgroup(prekill_hook_timeout="30")
    cfg["prekill_hooks"] = [{"name": "test_never_finishing_hook", "args": {"cgroup": "/"}}]
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(HOT), "work/a/x": cg()}, cfg)
    _Pending.cancelled.clear()
    lines = rig.tick()
    assert "Action=kill_by_pressure returned ASYNC. Yielding action chain." in lines
    rig.tick()  # still waiting
    rig.remove("work/a")
    lines = rig.tick()
    assert rig.dropped(lines) == ["work/a"]
    assert _Pending.cancelled == ["work/a/x"]
    assert rig.killer.killed == []
    assert rig.engine.rulesets[0].ruleset.clones == {}


def test_victim_gone_when_the_hook_finishes_is_not_replaced_by_another_cgroup(tmp_path):
    cfg = per_cgroup(prekill_hook_timeout="1")
    cfg["prekill_hooks"] = [{"name": "test_never_finishing_hook", "args": {"cgroup": "/"}}]
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(HOT), "work/a/x": cg(current=5 * MB),
                         "work/a/y": cg(current=MB), "work/b": cg(), "work/b/z": cg(HOT)}, cfg)
    rig.tick()
    rig.remove("work/a/x")
    rig.tick()
    rig.tick()  # the hook timed out: the saved victim is gone, someone else did the job
    assert rig.killer.killed == []


def test_failed_kill_moves_on_only_within_the_clone(tmp_path):
    tree = {"work": cg(), "work/a": cg(HOT), "work/a/x": cg((90.0, 90.0, 1.0)),
            "work/a/y": cg((20.0, 20.0, 1.0)), "work/b": cg(), "work/b/z": cg((99.0, 99.0, 1.0))}
    killer = Killer()
    rig = Rig(tmp_path, tree, per_cgroup(), killer=killer)
    killer.fail = {rig.abs("work/a/x")}
    rig.tick()
    assert victims(rig) == ["work/a/x", "work/a/y"]


# -- the reader reads a file once a tick, however many clones ask ---------------------------------


def _reads_per_tick(tmp_path, shared: bool) -> int:
    tree = {"work": cg(), "shared": cg(COLD)}
    for i in range(40):
        tree[f"work/c{i}"] = cg(COLD)
    args = {"ruleset_cgroup": "/", "resource": "memory", "threshold": "50", "duration": "0"}
    if shared:
        args["cgroup"] = "shared"
    rig = Rig(tmp_path, tree, per_cgroup(detectors=[["g", {"name": "pressure_above",
                                                            "args": args}]]))
    rig.tick()
    before = rig.ctx.read_stats["ok"]
    rig.tick()
    return rig.ctx.read_stats["ok"] - before


def test_forty_clones_asking_for_one_shared_cgroup_read_it_once(tmp_path):
    alone = _reads_per_tick(tmp_path / "a", shared=False)
    together = _reads_per_tick(tmp_path / "b", shared=True)
    per_cgroup_files = alone // 40   # memory.pressure of each clone's cgroup (its usage is
    assert alone == 40 * per_cgroup_files and per_cgroup_files == 1   # read only to log a fire)
    assert together - alone == per_cgroup_files  # shared's file, once for all 40 clones


def test_template_monitors_every_clones_cgroups(tmp_path):
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg()}, per_cgroup())
    patterns = {str(p) for p in rig.engine.monitored()}
    assert {"work/*", "work/*/*"} <= patterns


# -- drop-ins ------------------------------------------------------------------------------------


def test_drop_in_actions_reach_the_clones(tmp_path):
    cfg = per_cgroup(**{"drop-in": {"actions": True}})
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg(HOT), "work/a/x": cg()}, cfg)
    dropin = {"rulesets": [{"name": "rs", "actions": [
        {"name": "mock", "args": {"id": "dropped-in", "ret": "stop"}}]}]}
    unit = Compiler(rig.pctx, "d.json", rig.clock).compile_drop_in(
        parse_string(json.dumps(cfg), "t.json"), parse_string(json.dumps(dropin), "d.json"))
    assert isinstance(unit.rulesets[0], PerCgroupRuleset)
    rig.engine.add_drop_in("d.json", unit)
    rig.tick()
    assert RUNS["dropped-in"] == 1           # the drop-in's clone for work/a
    assert victims(rig) == ["work/a/x"]      # the base's clone, still enabled, killed


def test_clone_whose_plugin_no_longer_initialises_is_not_built_and_said_once(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        1048576 kB\n")
    det = {"name": "memory_above", "args": {"ruleset_cgroup": "/", "threshold": "1%",
                                            "duration": "0", "meminfo_location": str(meminfo)}}
    rig = Rig(tmp_path, {"work": cg(), "work/a": cg()}, per_cgroup(detectors=[["g", det]]))
    meminfo.unlink()
    first, second = rig.tick(), rig.tick()
    failed = [ln for ln in first + second if ln.startswith("Could not build the runnable ruleset")]
    assert failed == [f"Could not build the runnable ruleset for cgroup {rig.abs('work/a')}: "
                      f"Plugin=memory_above failed to init() with code=1: Could not read meminfo "
                      f"{meminfo}: No such file or directory"]
    assert rig.engine.rulesets[0].ruleset.clones == {}
    meminfo.write_text("MemTotal:        1048576 kB\n")
    rig.tick()
    assert list(rig.engine.rulesets[0].ruleset.clones) == ["work/a"]
