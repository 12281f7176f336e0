"""Locate the real oomd 0.5.0 binary (the oracle), obtaining it from Debian when possible.

Order: ``$PYOOMD_OOMD_BIN``; ``<repo>/.oomd-bin/usr/bin/oomd`` (what ``.ci/obtain-oomd`` makes);
otherwise, if ``apt-get`` is available, download the package into ``<repo>/.oomd-bin`` and
extract it there (never installed system-wide). Shared libraries the binary needs and the host
lacks (``libjsoncpp.so.25`` on a minimal Debian) are extracted beside it the same way, and
``oomd_env()`` points ``LD_LIBRARY_PATH`` at them. Returns None when none of this works, with
the reason in ``why_missing()``.
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
VERSION = "v0.5.0"
# Shared libraries of the oomd package that a minimal host may lack -> the Debian package
# that ships them.
LIB_PACKAGES = {"libjsoncpp.so.25": "libjsoncpp25"}
_why = ""


def why_missing() -> str:
    return _why


def _lib_dirs(root: Path) -> list[str]:
    return [d for d in glob.glob(str(root / "usr" / "lib" / "*-linux-gnu")) if os.path.isdir(d)]


def oomd_env(binary: Path | None = None, base: dict | None = None) -> dict:
    """The environment to run ``binary`` in: ``base`` (default os.environ) plus LD_LIBRARY_PATH
    for libraries extracted beside it (``<root>/usr/lib/<triplet>``)."""
    env = dict(os.environ if base is None else base)
    root = (Path(binary).resolve().parents[2]) if binary else CACHE
    dirs = _lib_dirs(root)
    if dirs:
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs + ([old] if old else []))
    return env


def _missing_libs(binary: Path) -> list[str]:
    """Names of the shared libraries ``ldd`` cannot resolve (with our extracted ones)."""
    if not shutil.which("ldd"):
        return []
    r = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=oomd_env(binary))
    return [line.split()[0] for line in r.stdout.splitlines() if "not found" in line]


def _works(path: Path) -> bool:
    global _why
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, env=oomd_env(path)
        )
    except OSError as e:
        _why = f"{path} does not run: {e}"
        return False
    except subprocess.TimeoutExpired:
        _why = f"{path} --version did not finish in 10 s"
        return False
    if out.stdout.strip() != VERSION:
        _why = (
            f"{path} --version says {out.stdout.strip()!r} (exit {out.returncode}), "
            f"not {VERSION}: {out.stderr.strip()[-300:]}"
        )
        return False
    return True


def _download_extract(package: str, dest: Path) -> str | None:
    """``apt-get download package`` and ``dpkg -x`` it into dest; None on success, else why.

    When the download fails because the package lists are missing (a fresh machine),
    ``apt-get update`` runs once and the download is retried.
    """
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in (1, 2):
            r = subprocess.run(
                ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True
            )
            debs = glob.glob(os.path.join(tmp, "*.deb"))
            if r.returncode == 0 and debs:
                break
            if attempt == 1:
                subprocess.run(["apt-get", "update"], capture_output=True, text=True)
        else:
            return f"apt-get download {package} failed: {r.stderr.strip()[-300:]}"
        dest.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["dpkg", "-x", debs[0], str(dest)], capture_output=True, text=True)
        if r.returncode != 0:
            return f"dpkg -x {os.path.basename(debs[0])} failed: {r.stderr.strip()[-300:]}"
    return None


def obtain(dest: Path = CACHE) -> Path | None:
    """Make ``dest/usr/bin/oomd`` exist and be runnable; return its path or None (see why_missing)."""
    global _why
    binary = dest / "usr" / "bin" / "oomd"
    if not binary.exists() or _missing_libs(binary):
        if not shutil.which("apt-get") or not shutil.which("dpkg"):
            _why = "apt-get/dpkg not available to fetch the oomd package"
            return None
    if not binary.exists():
        err = _download_extract("oomd", dest)
        if err:
            _why = err
            return None
        if not binary.exists():
            _why = f"the oomd package has no usr/bin/oomd (looked in {dest})"
            return None
    for lib in _missing_libs(binary):
        pkg = LIB_PACKAGES.get(lib)
        if pkg is None:
            _why = f"{binary} needs {lib}, which is missing and not known to come from a package"
            return None
        err = _download_extract(pkg, dest)
        if err:
            _why = err
            return None
    missing = _missing_libs(binary)
    if missing:
        _why = f"{binary} still misses shared libraries: {', '.join(missing)}"
        return None
    return binary


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
