"""Locate the real oomd 0.5.0 binary (the oracle), obtaining it from Debian when possible.

Order: ``$PYOOMD_OOMD_BIN``; ``<repo>/.oomd-bin/usr/bin/oomd`` (what ``.ci/obtain-oomd`` makes);
otherwise, if ``apt-get`` is available, download the package into ``<repo>/.oomd-bin`` and
extract it there (never installed system-wide). Returns None when none of this works, with the
reason in ``why_missing()``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".oomd-bin"
_why = ""


def why_missing() -> str:
    return _why


def _works(path: Path) -> bool:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except OSError as e:
        global _why
        _why = f"{path} does not run: {e}"
        return False
    return out.stdout.strip() == "v0.5.0"


def obtain(dest: Path = CACHE) -> Path | None:
    global _why
    binary = dest / "usr" / "bin" / "oomd"
    if binary.exists():
        return binary
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        _why = "apt-get/dpkg not available to fetch the oomd package"
        return None
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", "oomd"], cwd=tmp, capture_output=True, text=True)
        debs = glob.glob(os.path.join(tmp, "oomd_*.deb"))
        if r.returncode != 0 or not debs:
            _why = f"apt-get download oomd failed: {r.stderr.strip()[-300:]}"
            return None
        dest.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["dpkg", "-x", debs[0], str(dest)], capture_output=True, text=True)
        if r.returncode != 0:
            _why = f"dpkg -x failed: {r.stderr.strip()[-300:]}"
            return None
    return binary if binary.exists() else None


def find_oomd_binary(fetch: bool = True) -> Path | None:
    global _why
    env = os.environ.get("PYOOMD_OOMD_BIN")
    candidates = [Path(env)] if env else []
    candidates.append(CACHE / "usr" / "bin" / "oomd")
    for c in candidates:
        if c.exists() and _works(c):
            return c
    if fetch:
        got = obtain()
        if got and _works(got):
            return got
    _why = _why or "oomd binary not found"
    return None
