"""Hostile cgroup names on fake trees (issue 13): whatever bytes a delegated user names a cgroup,
the right cgroup is killed (dry, and for real with a recording killer), every kill record
splits into exactly oomd's fields with the name rendered by ``oomd.names.shown``, and no line of
output carries a control character or a byte that is not UTF-8.

Every run also has ``dump_cgroup_overview`` (a line per candidate), the candidate dump and
``memory_above`` with ``debug`` (lines naming cgroups) in it, and the victim's prekill hook gets
its raw name in ``OOMD_CGROUP``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from killfakes import RecordingKiller
from support import FakeClock
from oomd import logs
from oomd.config.compiler import compile_config
from oomd.config.parser import parse_string
from oomd.context import OomdContext
from oomd.kmsg import Kmsg
from oomd.names import shown
from oomd.plugin import PluginConstructionContext
from oomd.stats import Stats
from oomd.testing import faketree as ft

GB = 1 << 30
PATTERN = "workload.slice/*,workload.slice/.*"   # glob's "*" skips names starting with "."

# oomd's record: three averages, the cgroup, its usage, then the three tagged fields
RECORD = re.compile(r"oomd kill: (\d+\.\d\d) (\d+\.\d\d) (\d+\.\d\d) (\S+) (\d+) "
                    r"ruleset:\[([^\]]*)\] detectorgroup:\[([^\]]*)\] killer:(\(dry\))?(\S+) v2")

HOSTILE = {
    "not_utf8": b"bad\xff\xfe.service",
    "escape_cr_tab": b"esc\x1b[31mred\x1b[0m\r\t.service",
    "forged_fields": b"a b ruleset:[forged] detectorgroup:[y] killer:z v2",
    "newline": b"two\nlines",                          # a fake tree allows it, cgroupfs does not
    "longest": b"L" * 200 + "\u00e9".encode() * 27 + b"\xff",   # 255 bytes
    "dot_dot_space": b".. ",
    "c1_and_bidi": "csi\u009b2J\u202eevil".encode(),
    "only_spaces": b"   ",
    "backslash_x": rb"looks\x2descaped",
}


def record_fields(line: str) -> list[str]:
    m = RECORD.fullmatch(line)
    assert m is not None, line
    assert len(line.split(" ")) == 11   # "oomd kill:" and oomd's nine fields
    return list(m.groups())


def clean(line: str) -> bool:
    """One printable line of UTF-8 text: no control character, no undecodable byte."""
    return line.isprintable() and "\n" not in line


class Run:
    """One tick of the engine over ``workload.slice/*`` on a fake tree whose ``names`` get the
    given sizes; ``system.slice/decoy`` is the biggest cgroup of all, outside the pattern."""

    def __init__(self, tmp: Path, sizes: dict[bytes, int], *, dry: bool, hook_out=None):
        self.root = ft.write_tree(tmp / "cg", {
            "": ft.cgroup(), "system.slice": ft.cgroup(),
            "system.slice/decoy": ft.cgroup(64 * GB), "workload.slice": ft.cgroup()})
        for name, size in sizes.items():
            d = os.fsencode(self.root / "workload.slice") + b"/" + name
            os.mkdir(d)
            for fname, content in ft.cgroup(size).items():
                with open(d + b"/" + fname.encode(), "w") as f:
                    f.write(content)
        proc = ft.write_proc(tmp / "proc")
        self.stats = Stats()
        self.killer = RecordingKiller()
        self.ctx = OomdContext(str(self.root), proc_root=str(proc), cache_files=False,
                               stats=self.stats)
        self.kmsg_path = tmp / "kmsg"
        self.ctx.kmsg = Kmsg(str(self.kmsg_path))
        detectors = [{"name": "dump_cgroup_overview",
                      "args": {"cgroup": PATTERN, "always": "true"}},
                     {"name": "memory_above", "args": {"cgroup": PATTERN, "threshold": "1M",
                                                       "duration": "0", "debug": "true"}}]
        config = {"rulesets": [{
            "name": "rs", "detectors": [["dg", *detectors]],
            "actions": [{"name": "kill_by_memory_size_or_growth",
                         "args": {"cgroup": PATTERN, "dry": str(dry).lower(),
                                  "debug": "true"}}]}]}
        if hook_out is not None:
            config["prekill_hooks"] = [{"name": "exec_prekill_hook", "args": {
                "cgroup": "/", "command": f"/bin/sh -c 'printf %s \"$OOMD_CGROUP\" > {hook_out}'"}}]
        self.pctx = PluginConstructionContext(cgroup_fs=str(self.root), proc_root=str(proc),
                                              stats=self.stats, killer=self.killer)
        self.engine = compile_config(parse_string(json.dumps(config), "t.json"), self.pctx,
                                     FakeClock())

    def tick(self) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        return lines

    @property
    def records(self) -> list[str]:
        return self.kmsg_path.read_bytes().decode("utf-8").splitlines()

    def close(self) -> None:
        self.ctx.close()
        self.ctx.kmsg.close()


@pytest.mark.parametrize("dry", [True, False], ids=["dry", "real"])
@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_hostile_name_is_killed_and_every_line_stays_one_clean_line(tmp_path, key, dry):
    name = HOSTILE[key]
    run = Run(tmp_path, {name: 3 * GB, b"normal.service": 1 * GB}, dry=dry)
    lines = run.tick()
    rel = "workload.slice/" + os.fsdecode(name)
    if dry:
        assert run.killer.killed == []
    else:
        assert [os.fsencode(p) for p in run.killer.killed] == [
            os.fsencode(run.root) + b"/workload.slice/" + name]
    [record] = run.records
    fields = record_fields(record)
    assert fields[3] == shown(rel) and fields[5:7] == ["rs", "dg"]
    assert fields[7] == ("(dry)" if dry else None)
    assert fields[8] == "kill_by_memory_size_or_growth"
    assert run.stats.get("oomd.kills") == (0 if dry else 1)
    bad = [ln for ln in lines if not clean(ln)]
    assert bad == []
    assert f'Picked "{shown(rel)}"' in "\n".join(lines)
    assert f"name={shown(rel)}" in "\n".join(lines)          # the candidate dump
    assert f"cgroup={shown(rel)} total=3072MB" in "\n".join(lines)   # dump_cgroup_overview
    run.close()


def test_every_hostile_name_at_once_ranks_by_size(tmp_path):
    sizes = {name: (i + 1) * GB for i, name in enumerate(sorted(HOSTILE.values()))}
    run = Run(tmp_path, sizes, dry=False)
    lines = run.tick()
    biggest = max(sizes, key=sizes.get)
    assert [os.fsencode(p) for p in run.killer.killed] == [
        os.fsencode(run.root) + b"/workload.slice/" + biggest]
    assert [ln for ln in lines if not clean(ln)] == []
    dumped = [ln.split("] ", 1)[1][len("name="):] for ln in lines if "] name=" in ln]
    assert sorted(dumped) == sorted(shown(b"workload.slice/" + n) for n in sizes)
    run.close()


def test_prekill_hook_gets_the_raw_name(tmp_path):
    out = tmp_path / "hook.out"
    name = HOSTILE["not_utf8"] + b" " + HOSTILE["escape_cr_tab"]
    run = Run(tmp_path, {name: 3 * GB, b"x": GB}, dry=False, hook_out=out)
    lines: list[str] = []
    for _ in range(200):                     # the chain waits for the hook, then kills
        lines += run.tick()
        if run.killer.killed:
            break
        time.sleep(0.05)
    assert out.read_bytes() == b"workload.slice/" + name
    assert [os.fsencode(p) for p in run.killer.killed] == [
        os.fsencode(run.root) + b"/workload.slice/" + name]
    assert [ln for ln in lines if not clean(ln)] == []
    fired = f"fired on {shown(b'workload.slice/' + name)} (pid "
    assert any(fired in ln for ln in lines)
    run.close()


def test_a_kill_record_file_and_log_written_by_the_daemons_writers_are_strict_utf8(tmp_path):
    """Through the threaded log writer to a real stream, as the daemon writes."""
    stream = open(tmp_path / "log", "w", encoding="utf-8", errors="strict")
    logs.setup(inline=False, stream=stream)
    try:
        run = Run(tmp_path, {HOSTILE["not_utf8"]: 3 * GB, HOSTILE["newline"]: GB}, dry=False)
        run.engine.tick(run.ctx)
        logs.flush()
    finally:
        logs.setup(inline=True)
        stream.close()
    text = (tmp_path / "log").read_bytes().decode("utf-8")   # strict: raises on a bad byte
    assert "UnicodeEncodeError" not in text and "treated as STOP" not in text
    assert all(clean(ln) for ln in text.splitlines())
    assert record_fields(run.records[0])[3] == r"workload.slice/bad\xff\xfe.service"
    run.close()


# -- property: any byte names ------------------------------------------------------------------

_NAME = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_NAME, min_size=1, max_size=5, unique=True), st.randoms(use_true_random=False))
def test_any_byte_names_the_biggest_candidate_dies_and_its_record_parses(names, rnd):
    sizes = dict(zip(names, (n << 24 for n in rnd.sample(range(1, 64), len(names)))))
    tmp = Path(tempfile.mkdtemp(prefix="i13-names-", dir="/tmp"))
    try:
        run = Run(tmp, sizes, dry=False)
        lines = run.tick()
        biggest = max(sizes, key=sizes.get)
        assert [os.fsencode(p) for p in run.killer.killed] == [
            os.fsencode(run.root) + b"/workload.slice/" + biggest]
        [record] = run.records
        assert record_fields(record)[3] == shown(b"workload.slice/" + biggest)
        assert [ln for ln in lines if not clean(ln)] == []
        run.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
