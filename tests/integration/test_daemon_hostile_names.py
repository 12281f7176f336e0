"""The shipped daemon on the issue's scenario (issue 13): an ``exists`` detector and
``kill_by_memory_size_or_growth`` over ``system.slice/*``, where the biggest cgroup is named
``bad\\xff\\xfe.service`` and others carry ESC, CR, spaces and forged record fields.

``python -m oomd`` runs a few ticks on a fake tree reached through the cgroup2 mount; its whole
stderr must be strict UTF-8 with one printable line per log line, every kill record must split
into oomd's fields naming the right cgroup, and no plugin may have raised.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oomd.names import shown
from oomd.testing import faketree
from oomd.testing.oracle import cgroup2_mount, fake_cgroup_fs

REPO = Path(__file__).resolve().parents[2]
GB = 1 << 30
RECORD = re.compile(r"oomd kill: \d+\.\d\d \d+\.\d\d \d+\.\d\d (\S+) \d+ ruleset:\[r\] "
                    r"detectorgroup:\[g\] killer:(\(dry\))?kill_by_memory_size_or_growth v2")

pytestmark = pytest.mark.skipif(cgroup2_mount() is None,
                                reason="the daemon checks --cgroup-fs against a cgroup2 mount; none here")

NAMES = {
    b"bad\xff\xfe.service": 3 * GB,
    b"a b ruleset:[forged] detectorgroup:[y] killer:z v2": 2 * GB,
    b"esc\x1b[31m\rred\t.service": 1 * GB,
    b"ok.service": GB // 2,
}


def test_daemon_kills_the_non_utf8_hog_and_writes_only_clean_lines(tmp_path):
    tree = faketree.write_tree(tmp_path / "tree", {"": faketree.cgroup(),
                                                   "system.slice": faketree.cgroup()})
    for name, size in NAMES.items():
        d = os.fsencode(tree / "system.slice") + b"/" + name
        os.mkdir(d)
        for fname, content in faketree.cgroup(size).items():
            with open(d + b"/" + fname.encode(), "w") as f:
                f.write(content)
    config = tmp_path / "pyoomd.json"
    config.write_text(json.dumps({"rulesets": [{
        "name": "r", "post_action_delay": 0,
        "detectors": [["g", {"name": "exists", "args": {"cgroup": "system.slice"}}]],
        "actions": [{"name": "kill_by_memory_size_or_growth",
                     "args": {"cgroup": "system.slice/*", "dry": "true"}}]}]}))
    kmsg = tmp_path / "kmsg"
    textfile = tmp_path / "metrics.prom"
    argv = [sys.executable, "-m", "oomd", "--interval", "0.2", "--max-ticks", "3",
            "--config", str(config), "--cgroup-fs", fake_cgroup_fs(tree),
            "--runtime-dir", str(tmp_path / "rt"), "--kmsg-override", str(kmsg),
            "--metrics-textfile", str(textfile), "--no-protect"]
    out = subprocess.run(argv, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    log = out.stderr.decode("utf-8")            # strict: a byte that is not UTF-8 raises here
    assert out.returncode == 0, log[-3000:]
    assert "raised" not in log and "treated as STOP" not in log, log[-3000:]
    assert [ln for ln in log.splitlines() if not ln.isprintable()] == []
    records = kmsg.read_bytes().decode("utf-8").splitlines()
    assert len(records) == 3                  # one dry kill a tick
    for record in records:
        m = RECORD.fullmatch(record)
        assert m is not None, record
        assert m[1] == r"system.slice/bad\xff\xfe.service" and m[2] == "(dry)"
    assert f'Picked "{shown(b"system.slice/bad" + bytes([0xFF, 0xFE]) + b".service")}"' in log
    assert all(ln.isprintable() for ln in textfile.read_bytes().decode("utf-8").splitlines())
