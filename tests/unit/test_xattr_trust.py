"""The trust rule for ``user.`` xattrs (oomd.xattr_trust, docs/compat.md): ``user.oomd_avoid``
counts only on a cgroup owned by root or by the owner of the anchor of its ranking;
``user.oomd_prefer`` and ``trusted.`` xattrs always count; ``--trust-user-xattrs`` is oomd.

Real OomdContext on fake trees in tmp_path (the tests run as root, so they chown directories to
make them another user's), a recording killer, kill records to a file."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from killfakes import RecordingKiller
from support import FakeClock
from oomd import logs
from oomd.cgpath import CgroupPatterns
from oomd.compat import Compat
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.context import OomdContext
from oomd.kmsg import Kmsg
from oomd.plugin import PluginConstructionContext
from oomd.stats import Stats
from oomd.testing import faketree as ft
from oomd.xattr_trust import IGNORED_STAT, XattrTrust, anchor_path

GB = 1 << 30
USER = 4242          # someone else's uid
OTHER = 4343
AVOID_U, AVOID_T, PREFER_U = "user.oomd_avoid", "trusted.oomd_avoid", "user.oomd_prefer"


class Rig:
    """The engine over a fake tree: one ruleset whose ``exists`` detector always fires and one
    kill plugin (``action`` args) over ``cgroup``."""

    def __init__(self, tmp_path, tree: dict, *, cgroup="s/*", trust=False, action=None,
                 cache_files=False, rulesets=None, compat="0.5.0"):
        self.root = ft.write_tree(tmp_path / "cg", {"": ft.cgroup(), **tree})
        proc = ft.write_proc(tmp_path / "proc")
        self.stats = Stats()
        self.killer = RecordingKiller()
        self.ctx = OomdContext(str(self.root), proc_root=str(proc), cache_files=cache_files,
                               stats=self.stats)
        self.kmsg_path = tmp_path / "kmsg"
        self.ctx.kmsg = Kmsg(str(self.kmsg_path))
        self.clock = FakeClock()
        act = {"name": "kill_by_memory_size_or_growth", "args": {"cgroup": cgroup}}
        if action:
            act["args"].update(action)
        config = {"rulesets": rulesets or [{
            "name": "rs", "detectors": [["dg", {"name": "exists", "args": {"cgroup": "/"}}]],
            "actions": [act]}]}
        pctx = PluginConstructionContext(cgroup_fs=str(self.root), proc_root=str(proc),
                                         stats=self.stats, killer=self.killer,
                                         compat=Compat.for_mode(compat),
                                         xattr_trust=XattrTrust(trust))
        self.engine = compile_config(parse_string(json.dumps(config), "t.json"), pctx,
                                     self.clock)

    def own(self, rel: str, uid: int) -> None:
        os.chown(self.root / rel, uid, uid)

    def mark(self, rel: str, name: str) -> None:
        os.setxattr(self.root / rel, name, b"1")

    def tick(self) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        self.clock.advance(60)   # past the post_action_delay (15 s by default)
        return logs.messages(lines)

    @property
    def killed(self) -> list[str]:
        return [os.path.relpath(p, self.root) for p in self.killer.killed]


def tree(**sizes_gb) -> dict:
    out = {"s": ft.cgroup(sum(sizes_gb.values()) * GB)}
    for name, gb in sizes_gb.items():
        out[f"s/{name}"] = ft.cgroup(gb * GB)
    return out


def ignoring(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("Ignoring user.oomd_avoid")]


# -- the anchor --------------------------------------------------------------------------------


@pytest.mark.parametrize("patterns, anchor", [
    ("system.slice/*", "system.slice"),
    ("user.slice/user-1000.slice/user@1000.service/*", "user.slice/user-1000.slice/user@1000.service"),
    ("*/*", ""),
    ("*", ""),
    ("/", ""),
    ("a/x,a/y", "a"),                  # literal candidates: their common parent
    ("a/x", "a"),
    ("a/[bc]/*", "a"),
    ("a/b/*,a/c/*", "a"),              # several patterns: the prefix they share
    ("a/b*/c", "a"),
    (r"u/a\.b/*", "u/a.b"),            # an escaped literal (a per-cgroup ruleset's clone)
    ("x/*,y/*", ""),
])
def test_anchor_is_the_deepest_wildcard_free_prefix_shared_by_the_patterns(patterns, anchor):
    assert anchor_path(CgroupPatterns.parse(patterns)) == anchor


# -- user.oomd_avoid ---------------------------------------------------------------------------


@pytest.mark.parametrize("cache_files", [False, True])
def test_user_avoid_on_another_users_cgroup_is_ignored_and_logged_once(tmp_path, cache_files):
    rig = Rig(tmp_path, tree(big=3, small=1), cache_files=cache_files)
    rig.own("s/big", USER)
    rig.mark("s/big", AVOID_U)
    lines = rig.tick()
    assert rig.killed == ["s/big"]
    assert ignoring(lines) == [
        'Ignoring user.oomd_avoid on "s/big": its directory is owned by uid 4242, neither root '
        "nor the owner (uid 0) of the cgroups it is ranked among (--trust-user-xattrs honours it)"]
    assert any(ln.startswith('Picked "s/big"') and ln.endswith("with kill preference NORMAL")
               for ln in lines)
    assert "  kill_preference=NORMAL" in lines
    assert rig.stats.get(IGNORED_STAT) == 1
    again = rig.tick()
    assert rig.killed == ["s/big", "s/big"] and ignoring(again) == []
    assert rig.stats.get(IGNORED_STAT) == 1


def test_user_avoid_on_a_root_owned_cgroup_is_honoured(tmp_path):
    rig = Rig(tmp_path, tree(big=3, small=1))
    rig.mark("s/big", AVOID_U)
    lines = rig.tick()
    assert rig.killed == ["s/small"]
    assert ignoring(lines) == [] and rig.stats.get(IGNORED_STAT) is None


def test_trust_user_xattrs_honours_user_avoid_from_anyone(tmp_path):
    rig = Rig(tmp_path, tree(big=3, small=1), trust=True)
    rig.own("s/big", USER)
    rig.mark("s/big", AVOID_U)
    lines = rig.tick()
    assert rig.killed == ["s/small"] and ignoring(lines) == []


def test_user_avoid_counts_when_the_user_owns_the_anchor(tmp_path):
    """In a user's own delegated subtree the user orders their own cgroups."""
    rig = Rig(tmp_path, tree(big=3, small=1))
    for rel in ("s", "s/big", "s/small"):
        rig.own(rel, USER)
    rig.mark("s/big", AVOID_U)
    assert ignoring(rig.tick()) == []
    assert rig.killed == ["s/small"]


def test_user_avoid_never_steers_the_kill_to_another_users_subtree(tmp_path):
    """Candidates from two users' subtrees: their anchor is the root's, so neither user's
    user.oomd_avoid counts."""
    t = {"u1": ft.cgroup(), "u2": ft.cgroup(), "u1/big": ft.cgroup(3 * GB),
         "u2/small": ft.cgroup(1 * GB)}
    rig = Rig(tmp_path, t, cgroup="u1/*,u2/*")
    rig.own("u1", USER)
    rig.own("u1/big", USER)
    rig.own("u2", OTHER)
    rig.own("u2/small", OTHER)
    rig.mark("u1/big", AVOID_U)
    assert len(ignoring(rig.tick())) == 1
    assert rig.killed == ["u1/big"]


def test_trusted_avoid_counts_whoever_owns_the_cgroup(tmp_path):
    rig = Rig(tmp_path, tree(big=3, small=1))
    rig.own("s/big", USER)
    rig.mark("s/big", AVOID_T)
    rig.mark("s/big", AVOID_U)
    assert ignoring(rig.tick()) == []
    assert rig.killed == ["s/small"]


def test_user_prefer_from_any_owner_still_makes_its_cgroup_the_victim(tmp_path):
    rig = Rig(tmp_path, tree(big=3, small=1))
    rig.own("s/small", USER)
    rig.mark("s/small", PREFER_U)
    rig.tick()
    assert rig.killed == ["s/small"]


def test_recursive_step_anchors_at_the_parent(tmp_path):
    """With ``recursive`` the children of a chosen cgroup are ranked among themselves: their
    parent's owner may order them."""
    t = {"s": ft.cgroup(), "s/u": ft.cgroup(4 * GB), "s/u/x": ft.cgroup(3 * GB),
         "s/u/y": ft.cgroup(1 * GB), "s/v": ft.cgroup(1 * GB)}
    rig = Rig(tmp_path, t, action={"recursive": "true"})
    for rel in ("s/u", "s/u/x", "s/u/y"):
        rig.own(rel, USER)
    rig.mark("s/u/x", AVOID_U)
    assert ignoring(rig.tick()) == []
    assert rig.killed == ["s/u/y"]


def test_compat_head_applies_the_same_rule(tmp_path):
    rig = Rig(tmp_path, tree(big=3, small=1), compat="head")
    rig.own("s/big", USER)
    rig.mark("s/big", AVOID_U)
    rig.tick()
    assert rig.killed == ["s/big"]


def test_a_chown_is_seen_at_the_next_tick_where_values_are_kept(tmp_path):
    """On a tree read like cgroup2 (kept configuration values), the owner is kept with the
    xattr and read again after inotify reports the chown."""
    rig = Rig(tmp_path, tree(big=3, small=1), cache_files=True)
    rig.mark("s/big", AVOID_U)
    rig.tick()
    assert rig.killed == ["s/small"]
    rig.own("s/big", USER)
    rig.tick()
    assert rig.killed == ["s/small", "s/big"]
    os.chown(rig.root / "s/big", 0, 0)
    rig.tick()
    assert rig.killed == ["s/small", "s/big", "s/small"]


def test_reader_reports_the_owner_only_for_an_avoid_from_user_xattrs_alone(tmp_path):
    root = ft.write_tree(tmp_path / "cg", {"": ft.cgroup(), **{f"s/{n}": ft.cgroup()
                                                                for n in "abcde"}})
    marks = {"a": [AVOID_U], "b": [AVOID_U, AVOID_T], "c": [AVOID_U, PREFER_U], "d": [],
             "e": [AVOID_U]}
    for name, xattrs in marks.items():
        for x in xattrs:
            os.setxattr(root / "s" / name, x, b"")
        os.chown(root / "s" / name, USER, USER)
    os.chown(root / "s/e", 0, 0)
    ctx = OomdContext(str(root), proc_root=str(ft.write_proc(tmp_path / "proc")),
                      cache_files=False)
    ctx.refresh(1)
    rows = ctx.resolve(CgroupPatterns.parse("s/*"))
    assert ctx.get("kill_preference", rows)[0].tolist() == [-1, -1, 1, 0, -1]
    uid, valid = ctx.get("avoid_uid", rows)
    assert valid.all() and uid.tolist() == [USER, -1, -1, -1, 0]
    ctx.close()


# -- xattr_filter of per-cgroup rulesets -------------------------------------------------------


def per_cgroup_ruleset(xattr: str) -> list[dict]:
    return [{"name": "rs", "cgroup": "s/*", "xattr_filter": xattr,
             "detectors": [["dg", {"name": "exists", "args": {"ruleset_cgroup": "/"}}]],
             "actions": [{"name": "kill_by_memory_size_or_growth",
                          "args": {"ruleset_cgroup": "/", "dry": "true"}}]}]


@pytest.mark.parametrize("trust", [False, True])
def test_user_xattr_filter_selects_only_trusted_cgroups(tmp_path, trust):
    rig = Rig(tmp_path, tree(a=1, b=1), rulesets=per_cgroup_ruleset("user.oomd_managed"),
              trust=trust)
    rig.own("s/a", USER)
    rig.mark("s/a", "user.oomd_managed")
    rig.mark("s/b", "user.oomd_managed")
    lines = rig.tick()
    added = [ln.rsplit("/", 2)[-2:] for ln in lines if ln.startswith("Adding runnable")]
    assert added == ([["s", "a"], ["s", "b"]] if trust else [["s", "b"]])
    ignored = [ln for ln in lines if ln.startswith("Ignoring user.oomd_managed")]
    assert len(ignored) == (0 if trust else 1)
    assert ignored == [] or ignored[0].startswith('Ignoring user.oomd_managed on "s/a": its '
                                                  "directory is owned by uid 4242")
    assert ignoring(rig.tick()) == [] and not any(
        ln.startswith("Ignoring user.oomd_managed") for ln in rig.tick())


def test_trusted_xattr_filter_selects_any_owner(tmp_path):
    rig = Rig(tmp_path, tree(a=1), rulesets=per_cgroup_ruleset("trusted.oomd_managed"))
    rig.own("s/a", USER)
    rig.mark("s/a", "trusted.oomd_managed")
    assert any(ln.startswith("Adding runnable") for ln in rig.tick())


# -- lint --------------------------------------------------------------------------------------


def test_lint_does_not_count_an_ignored_user_avoid(tmp_path):
    from oomd.lint import Host, lint

    root = ft.write_tree(tmp_path / "cg", {"": ft.cgroup(), **tree(a=1, b=1)})
    for name in ("a", "b"):
        os.setxattr(root / "s" / name, AVOID_U, b"")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"rulesets": [{
        "name": "rs", "detectors": [["dg", {"name": "exists", "args": {"cgroup": "/"}}]],
        "actions": [{"name": "kill_by_memory_size_or_growth", "args": {"cgroup": "s/*"}}]}]}))

    def codes(trust):
        host = Host(cgroup_fs=str(root), proc_root=str(ft.write_proc(tmp_path / "proc")),
                    trust_user_xattrs=trust)
        return [f.code for f in lint(str(cfg), [], host).findings]

    assert "candidates-all-avoid" in codes(False)
    os.chown(root / "s/a", USER, USER)
    assert "candidates-all-avoid" not in codes(False)
    assert "candidates-all-avoid" in codes(True)


def test_ignored_rows_are_ranked_normal_not_dropped(tmp_path):
    rig = Rig(tmp_path, tree(a=1, b=2, c=3))
    rig.own("s/c", USER)
    rig.mark("s/c", AVOID_U)
    rig.mark("s/b", AVOID_U)
    rig.tick()
    plugin = rig.engine.rulesets[0].ruleset.actions[0]
    rows = rig.ctx.resolve(plugin.cgroup)
    ranked = [rig.ctx.relpath(r) for r in plugin.rank(rig.ctx, rows)]
    assert ranked == ["s/c", "s/a", "s/b"]
    assert np.array_equal(rig.ctx.get("kill_preference", rows)[0], [0, -1, -1])
    assert re.fullmatch(r"oomd kill: .* s/c \d+ ruleset:\[rs\] .*",
                        rig.kmsg_path.read_text().splitlines()[0])
