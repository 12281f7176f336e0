"""Hostile names and ``user.`` xattrs on the real cgroup2 mount (issue 13).

* The daemon kills a real hog thrashing in a cgroup whose name is not UTF-8 (and carries ESC,
  TAB and a space): ``realcg.run_pressure_kill`` with ``hog_name``. The record names it escaped
  (``oomd.names.shown``) and has exactly oomd's fields; no log line carries a control character.
* The trust rule for ``user.oomd_avoid`` on cgroupfs, whose directories a delegated user owns:
  an in-process engine over real test cgroups with a sleeper each, ``kill_by_pressure`` dry
  (every key 0, so only the kill preference and then the path decide).
"""

from __future__ import annotations

import json
import os
import re
import signal

import pytest

from killfakes import RecordingKiller
from support import FakeClock
from oomd import logs
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.context import OomdContext
from oomd.names import shown
from oomd.plugin import PluginConstructionContext
from oomd.stats import Stats
from oomd.testing import realcg
from oomd.xattr_trust import IGNORED_STAT, XattrTrust

HOG_NAME = os.fsdecode(b"hog \xff\xfe\x1b[31m\t.service")
RECORD = re.compile(r"oomd kill: (\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\S+) (\d+) "
                    r"ruleset:\[memory pressure\] detectorgroup:\[workload under pressure\] "
                    r"killer:kill_by_pressure v2")
USER = 4242

_why = realcg.skip_reason()


@pytest.fixture(scope="module")
def run():
    if _why is not None:
        pytest.skip(f"real cgroups: {_why}")
    return realcg.run_pressure_kill(hog_name=HOG_NAME)


def test_hog_in_a_non_utf8_cgroup_is_killed(run):
    assert run.problems() == [], run.daemon_log[-20:]
    assert run.hog_returncode == -signal.SIGKILL and run.bystander_alive_at_end
    assert run.t_empty is not None


def test_its_record_names_it_escaped_in_oomds_fields(run):
    (record,) = run.kmsg
    m = RECORD.fullmatch(record)
    assert m is not None, record
    assert m[4] == run.hog_cgroup
    assert run.hog_cgroup.endswith(r"/workload/hog\x20\xff\xfe\x1b[31m\x09.service")
    assert float(m[1]) > 0                       # the hog's own memory PSI avg10


def test_daemon_log_is_clean_text(run):
    lines = [line for _, line in run.daemon_log]
    assert [ln for ln in lines if not ln.isprintable() or "\ufffd" in ln] == []
    assert any(f'Picked "{run.hog_cgroup}"' in ln for ln in lines)


# -- the trust rule on cgroupfs ----------------------------------------------------------------


class Trust:
    """Test cgroups ``<parent>/a`` and ``<parent>/b``, a sleeper in each, and an engine whose
    ``exists`` detector fires every tick and whose dry ``kill_by_pressure`` ranks them."""

    def __init__(self, cg: realcg.RealCgroups, trust: bool) -> None:
        self.cg = cg
        for name in ("a", "b"):
            cg.start_sleeper(name)
        self.stats = Stats()
        self.killer = RecordingKiller()
        self.ctx = OomdContext(cg.cgroup2, stats=self.stats)   # cgroup2: values kept
        config = {"rulesets": [{
            "name": "rs", "post_action_delay": 0,
            "detectors": [["dg", {"name": "exists", "args": {"cgroup": cg.name}}]],
            "actions": [{"name": "kill_by_pressure", "args": {
                "cgroup": f"{cg.name}/*", "resource": "memory", "dry": "true"}}]}]}
        pctx = PluginConstructionContext(cgroup_fs=cg.cgroup2, stats=self.stats,
                                         killer=self.killer, xattr_trust=XattrTrust(trust))
        self.clock = FakeClock()
        self.engine = compile_config(parse_string(json.dumps(config), "t.json"), pctx,
                                     self.clock)

    def victim(self) -> str:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        self.clock.advance(1)
        self.lines = logs.messages(lines)
        picked = [ln for ln in self.lines if ln.startswith('Picked "')]
        assert len(picked) == 1, self.lines
        return picked[0].split('"')[1].rsplit("/", 1)[-1]

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def cgroups():
    why = realcg.skip_reason(need_pressure=False)
    if why is not None:
        pytest.skip(f"real cgroups: {why}")
    with realcg.RealCgroups() as cg:
        yield cg


def test_user_avoid_on_a_cgroup_chowned_to_a_user_is_ignored(cgroups):
    t = Trust(cgroups, trust=False)
    assert t.victim() == "a"                      # every key is 0: the first path
    os.setxattr(cgroups.path("a"), "user.oomd_avoid", b"1")
    assert t.victim() == "b"                      # root-owned: honoured
    os.chown(cgroups.path("a"), USER, USER)       # a delegated user's cgroup now
    assert t.victim() == "a"                      # ignored (seen through inotify: kept values)
    assert [ln for ln in t.lines if ln.startswith("Ignoring user.oomd_avoid")] == [
        f'Ignoring user.oomd_avoid on "{shown(cgroups.name)}/a": its directory is owned by uid '
        f"{USER}, neither root nor the owner (uid 0) of the cgroups it is ranked among "
        "(--trust-user-xattrs honours it)"]
    assert t.stats.get(IGNORED_STAT) == 1
    os.setxattr(cgroups.path("a"), "trusted.oomd_avoid", b"1")
    assert t.victim() == "b"                      # trusted. counts whoever owns it
    t.close()


def test_trust_user_xattrs_honours_a_users_avoid(cgroups):
    t = Trust(cgroups, trust=True)
    os.setxattr(cgroups.path("a"), "user.oomd_avoid", b"1")
    os.chown(cgroups.path("a"), USER, USER)
    assert t.victim() == "b"
    assert not any(ln.startswith("Ignoring") for ln in t.lines)
    t.close()


def test_users_own_subtree_orders_its_own_cgroups(cgroups):
    """The parent (the anchor of ``<parent>/*``) chowned to the user as systemd delegates."""
    t = Trust(cgroups, trust=False)
    for rel in ("", "a", "b"):
        os.chown(cgroups.path(rel), USER, USER)
    os.setxattr(cgroups.path("a"), "user.oomd_avoid", b"1")
    assert t.victim() == "b"
    t.close()
