"""pyoomd lint on this host's real cgroup2 tree and /proc (read-only: it creates nothing).

This host's cgroup2 hierarchy has no memory controller (hybrid layout: memory is bound to v1),
which is exactly what makes the shipped desktop config useless here although ``-c`` passes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from oomd.commands.lint import main
from oomd.fs import cgroup2_mount

REPO = Path(__file__).resolve().parents[2]


def controllers(mount: str) -> list[str] | None:
    try:
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return None


def test_shipped_desktop_config_reports_the_missing_memory_controller(capsys):
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount in /proc/mounts")
    have = controllers(mount)
    if have is None:
        pytest.skip(f"{mount}/cgroup.controllers is not readable")
    if "memory" in have:
        pytest.skip(f"this host's cgroup2 ({mount}) has the memory controller: nothing to report")
    code = main(["--json", "--daemon-cgroup", "", str(REPO / "configs" / "desktop.json")])
    out, err = capsys.readouterr()
    assert err == ""
    doc = json.loads(out)
    assert code == doc["exit_status"] == 1
    assert doc["cgroup_fs"] == mount
    listed = " ".join(sorted(have)) or "nothing"
    fix = ("Give cgroup2 the memory controller: boot with systemd.unified_cgroup_hierarchy=1, or "
           "with cgroup_no_v1=memory on a hybrid host.")

    def finding(path, plugin, files):
        return {"code": "controller-unavailable", "severity": "error",
                "file": str(REPO / "configs" / "desktop.json"), "path": path,
                "message": f"{plugin} reads {files}, which the memory controller provides, and the "
                           f"cgroup2 hierarchy at {mount} does not have that controller (its "
                           f"cgroup.controllers lists {listed}), so {plugin} has no data for any "
                           "cgroup but the root.",
                "fix": fix}

    assert [f for f in doc["findings"] if f["code"] == "controller-unavailable"] == [
        finding("$.rulesets[1].actions[0].args.cgroup", "kill_by_memory_size_or_growth",
                "memory.current, memory.min and memory.low"),
        finding("$.rulesets[1].detectors[0][2].args.cgroup", "memory_reclaim", "memory.stat"),
        finding("$.rulesets[1].detectors[1][2].args.cgroup", "memory_reclaim", "memory.stat"),
        finding("$.rulesets[2].actions[0].args.cgroup", "kill_by_swap_usage",
                "memory.swap.current"),
    ]
