""".ci/run installs strace and systemd (for systemd-analyze) only when they are missing, with
apt-get and without questions, then runs the README's test command. Run with a PATH of stubs
that record their arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"
REAL = ("dirname", "id")


def stub_path(tmp_path: Path, present: tuple[str, ...]) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in REAL:
        found = shutil.which(tool)
        if found is None:
            pytest.skip(f"{tool} is not installed")
        (bin_dir / tool).symlink_to(found)
    for name in ("apt-get", "pip", "python", *present):
        stub = bin_dir / name
        stub.write_text(f'#!{shutil.which("bash")}\necho "{name} $* [$DEBIAN_FRONTEND]" >> {log}\n')
        stub.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}, log


@pytest.mark.skipif(os.geteuid() != 0, reason="the install branch runs only as root")
@pytest.mark.parametrize("present,installs", [
    ((), "strace systemd"),
    (("systemd-analyze",), "strace"),
    (("strace",), "systemd"),
    (("strace", "systemd-analyze"), None),
])
def test_installs_only_what_is_missing(tmp_path, present, installs):
    env, log = stub_path(tmp_path, present)
    r = subprocess.run([shutil.which("bash"), str(CI_RUN)], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    apt = [c for c in calls if c.startswith("apt-get ")]
    if installs is None:
        assert apt == []
    else:
        assert apt == ["apt-get update -qq [noninteractive]",
                       f"apt-get install -y -qq --no-install-recommends {installs} "
                       "[noninteractive]"]
    assert calls[-2:] == ["pip install -e .[test] [" + ("noninteractive" if installs else "") + "]",
                          "python -m pytest [" + ("noninteractive" if installs else "") + "]"]
