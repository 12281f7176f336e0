"""Release artifacts as a packager makes and a user installs them.

One build for the whole module: the git-tracked files are copied into a temporary directory,
``python -m build`` makes the sdist there and the wheel from that sdist, and the wheel is
installed into a fresh venv. The checks then read the two archives and run the installed
``pyoomd`` from outside any checkout. The build needs the package index (isolated build env,
the wheel's dependencies), as ``pip install -e '.[test]'`` does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
NAME, VERSION = PROJECT["name"], PROJECT["version"]
SHIPPED_CONFIGS = ["desktop", "server"]
TIMEOUT = 600


def run(cmd: list, log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command with an environment that cannot reach the checkout's sources."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_NO_INPUT"] = "1"
    r = subprocess.run([str(c) for c in cmd], capture_output=True, env=env, timeout=TIMEOUT, **kw)
    if log is not None:
        log.write_bytes(r.stdout + r.stderr)
    return r


def must(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, f"{' '.join(map(str, r.args))} exited {r.returncode}:\n{out[-4000:]}"
    return r


def git_tracked() -> list[str]:
    def git(*args) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)

    top = git("rev-parse", "--show-toplevel") if shutil.which("git") else None
    if top is None or top.returncode != 0 or Path(top.stdout.decode().strip()).resolve() != REPO:
        pytest.skip("not a git checkout (an unpacked sdist?): the build is made from "
                    "the tracked files and compared with `git ls-files`")
    r = must(git("ls-files", "-z"))
    # a tracked file deleted in the work tree is not part of what we build
    return sorted(p for p in r.stdout.decode().split("\0")
                  if p and os.path.lexists(REPO / p))


@dataclass
class Artifacts:
    tracked: list[str]
    sdist: Path
    wheel: Path
    venv: Path
    work: Path     # cwd for the installed pyoomd: holds no oomd/ package

    def pyoomd(self, *args) -> subprocess.CompletedProcess:
        return run([self.venv / "bin" / "pyoomd", *args], cwd=self.work)

    def python(self, code: str) -> subprocess.CompletedProcess:
        return run([self.venv / "bin" / "python", "-c", code], cwd=self.work)


@pytest.fixture(scope="module")
def artifacts():
    tracked = git_tracked()
    with tempfile.TemporaryDirectory(prefix="pyoomd-release-") as tmp:
        tmp = Path(tmp)
        src, dist, work = tmp / "src", tmp / "dist", tmp / "work"
        work.mkdir()
        for rel in tracked:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel, follow_symlinks=False)
        must(run([sys.executable, "-m", "build", "--outdir", dist, src], tmp / "build.log",
                 cwd=src))
        sdist, = dist.glob("*.tar.gz")
        wheel, = dist.glob("*.whl")
        venv = tmp / "venv"
        must(run([sys.executable, "-m", "venv", venv]))
        must(run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=work))
        yield Artifacts(tracked, sdist, wheel, venv, work)


def sdist_names(a: Artifacts) -> dict[str, tarfile.TarInfo]:
    prefix = f"{NAME}-{VERSION}/"
    with tarfile.open(a.sdist) as tf:
        members = tf.getmembers()
    assert all(m.name.startswith(prefix) or m.name + "/" == prefix for m in members)
    return {m.name[len(prefix):]: m for m in members if not m.isdir()}


def wheel_names(a: Artifacts) -> list[str]:
    with zipfile.ZipFile(a.wheel) as zf:
        return zf.namelist()


def wheel_read(a: Artifacts, name: str) -> bytes:
    with zipfile.ZipFile(a.wheel) as zf:
        return zf.read(name)


# -- the sdist ------------------------------------------------------------------------------

SDIST_GENERATED = re.compile(rf"^(PKG-INFO|setup\.cfg|{NAME}\.egg-info/.*)$")


def test_sdist_holds_exactly_the_tracked_files(artifacts):
    """Everything to build, test and deploy (oomd/ with its .pyx/.pxd/.pyi, configs/,
    systemd/, docs/, tests/, bench/, scripts/, LICENSE), and nothing a build generates
    (Cython's .c, .so, caches) beyond setuptools' metadata."""
    names = sdist_names(artifacts)
    shipped = {n for n in names if not SDIST_GENERATED.match(n)}
    tracked = set(artifacts.tracked)
    assert sorted(tracked - shipped) == [], "tracked but not in the sdist: add to MANIFEST.in"
    assert sorted(shipped - tracked) == [], "in the sdist but not tracked"
    for top in ("oomd/", "configs/", "systemd/", "docs/", "tests/", "bench/", "scripts/"):
        assert any(n.startswith(top) for n in shipped), top
    assert {"PKG-INFO", "LICENSE", "setup.py", "pyproject.toml", "MANIFEST.in"} <= set(names)


def test_sdist_carries_cython_sources_and_no_generated_c(artifacts):
    names = sdist_names(artifacts)
    pyx = [n for n in names if n.endswith(".pyx")]
    assert pyx and all(n.startswith("oomd/") for n in pyx)
    assert not [n for n in names if n.endswith(".c") and n not in artifacts.tracked]


def test_sdist_resolves_the_shipped_symlinks_to_regular_files(artifacts):
    """oomd/shipped/* are symlinks in git; the sdist must carry their contents."""
    names = sdist_names(artifacts)
    links = [n for n in artifacts.tracked if n.startswith("oomd/shipped/")]
    assert links
    with tarfile.open(artifacts.sdist) as tf:
        for n in links:
            assert names[n].isfile(), n
            data = tf.extractfile(names[n]).read()
            assert data == (REPO / n).resolve().read_bytes(), n


# -- the wheel ------------------------------------------------------------------------------

def test_wheel_holds_the_package_and_metadata_only(artifacts):
    tops = {n.split("/", 1)[0] for n in wheel_names(artifacts)}
    assert tops == {"oomd", f"{NAME}-{VERSION}.dist-info"}


def test_wheel_has_a_compiled_module_per_cython_source(artifacts):
    """Each tracked .pyx is an extension module in the wheel, unless another .pyx
    ``include``s it; its .pxd and .pyi come along for cimport and type checkers."""
    names = wheel_names(artifacts)
    so = {n.split(".", 1)[0] for n in names if n.endswith(".so")}
    assert so, "no compiled extension in the wheel"
    pyx = [n for n in artifacts.tracked if n.endswith(".pyx")]
    included = {Path(inc).name for n in pyx for inc in
                re.findall(r"""^\s*include\s+["']([^"']+\.pyx)["']""",
                           (REPO / n).read_text(), re.M)}
    expected = {n.removesuffix(".pyx") for n in pyx if Path(n).name not in included}
    assert expected <= so
    typing = {n for n in artifacts.tracked if n.startswith("oomd/") and n.endswith((".pxd", ".pyi"))}
    assert typing <= set(names)
    assert not [n for n in names if n.endswith(".c")]


def test_extension_needs_no_glibc_newer_than_the_manylinux_image(artifacts, tmp_path):
    """cibuildwheel builds in the manylinux image pyproject.toml names (not runnable here:
    no docker); a libc function newer than that image's glibc would not even compile there.
    Conservative: the versions are this machine's, and a symbol glibc re-versioned later
    (fstat64 became GLIBC_2.33) links to its older version in the image."""
    linux = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["cibuildwheel"]["linux"]
    image = linux["manylinux-x86_64-image"]
    assert image == linux["manylinux-aarch64-image"]
    allowed = tuple(map(int, re.fullmatch(r"manylinux_(\d+)_(\d+)", image).groups()))
    with zipfile.ZipFile(artifacts.wheel) as zf:
        sos = [Path(zf.extract(n, tmp_path)) for n in zf.namelist() if n.endswith(".so")]
    for so in sos:
        symbols = must(run(["objdump", "-T", so])).stdout.decode()
        needed = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", symbols)}
        assert needed and max(needed) <= allowed, (so.name, sorted(needed)[-3:])


def test_wheel_ships_the_configs_and_unit_as_package_data(artifacts):
    for name in SHIPPED_CONFIGS:
        assert wheel_read(artifacts, f"oomd/shipped/{name}.json") == \
            (REPO / "configs" / f"{name}.json").read_bytes()
    assert wheel_read(artifacts, "oomd/shipped/pyoomd.service") == \
        (REPO / "systemd" / "pyoomd.service").read_bytes()


def test_wheel_metadata_declares_the_license_pep639(artifacts):
    info = f"{NAME}-{VERSION}.dist-info"
    meta = wheel_read(artifacts, f"{info}/METADATA").decode()
    assert "\nLicense-Expression: GPL-2.0-only\n" in meta
    assert "\nLicense-File: LICENSE\n" in meta
    assert "\nLicense: " not in meta  # the legacy field is gone with PEP 639
    assert wheel_read(artifacts, f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()


# -- the installed wheel ----------------------------------------------------------------------

def test_installed_wheel_imports_from_the_venv_not_the_checkout(artifacts):
    compiled = sorted(n.split(".", 1)[0].replace("/", ".")
                      for n in wheel_names(artifacts) if n.endswith(".so"))
    r = must(artifacts.python(
        "import importlib, oomd\n"
        f"for m in {compiled!r}:\n"
        "    mod = importlib.import_module(m)\n"
        "    assert mod.__file__.endswith('.so'), mod.__file__\n"
        "print(oomd.__file__)"))
    where = Path(r.stdout.decode().strip())
    assert where.is_relative_to(artifacts.venv) and "site-packages" in where.parts


def test_installed_pyoomd_prints_its_version(artifacts):
    assert must(artifacts.pyoomd("--version")).stdout.decode() == f"v{VERSION}\n"


def test_installed_pyoomd_lists_the_builtin_plugins(artifacts):
    """The same list as the checkout's (the in-process registry also holds the tests' mocks)."""
    checkout = must(run([sys.executable, "-m", "oomd", "-l"], cwd=REPO)).stderr
    installed = must(artifacts.pyoomd("-l")).stderr
    assert installed == checkout and b" kill_by_pressure\n" in installed


def show(artifacts: Artifacts, verb: str, *args: str) -> subprocess.CompletedProcess:
    return artifacts.pyoomd(verb, *args)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_installed_show_config_output_passes_check_config(artifacts, name, tmp_path):
    config = tmp_path / f"{name}.json"
    config.write_bytes(must(show(artifacts, "show-config", name)).stdout)
    assert config.read_bytes() == (REPO / "configs" / f"{name}.json").read_bytes()
    must(artifacts.pyoomd("--kmsg-override", tmp_path / "kmsg", "-c", config))


def test_installed_show_unit_prints_the_shipped_unit(artifacts):
    out = must(show(artifacts, "show-unit")).stdout
    assert out == (REPO / "systemd" / "pyoomd.service").read_bytes()
