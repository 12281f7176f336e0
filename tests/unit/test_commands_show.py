"""``pyoomd show-config`` and ``pyoomd show-unit``: the shipped files, byte for byte, from
package data (tests/integration/test_release_artifacts.py runs them from an installed wheel)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oomd.cli import main as pyoomd
from oomd.commands import VERBS, show_config, show_unit

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.json"))


def test_shipped_package_data_links_every_config_and_the_unit():
    """oomd/shipped/ mirrors configs/*.json and systemd/pyoomd.service through symlinks
    (one copy in git; sdist and wheel carry the contents): a config added to configs/
    without its link would not be installed."""
    shipped = REPO / "oomd" / "shipped"
    expected = {f"{n}.json": REPO / "configs" / f"{n}.json" for n in CONFIGS}
    expected["pyoomd.service"] = REPO / "systemd" / "pyoomd.service"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(expected)
    in_git = (REPO / ".git").exists()   # an unpacked sdist has copies instead of the links
    for name, target in expected.items():
        assert (shipped / name).read_bytes() == target.read_bytes(), name
        if in_git:
            assert (shipped / name).is_symlink(), name
            assert (shipped / name).resolve() == target.resolve(), name


def test_verbs_follow_the_command_contract():
    assert {"show-config", "show-unit"} <= set(VERBS)
    for verb in ("show-config", "show-unit"):
        module_name = VERBS[verb]
        module = importlib.import_module(module_name)
        assert module_name == "oomd.commands." + verb.replace("-", "_")
        assert isinstance(module.HELP, str) and module.HELP and "\n" not in module.HELP
        assert callable(module.main)


@pytest.mark.parametrize("name", ["desktop", "server"])
def test_show_config_prints_the_shipped_config_byte_for_byte(capsysbinary, name):
    assert show_config.main([name]) == 0
    out, err = capsysbinary.readouterr()
    assert (out, err) == ((REPO / "configs" / f"{name}.json").read_bytes(), b"")


@pytest.mark.parametrize("name", ["desktop", "server"])
def test_show_config_output_passes_check_config(capsysbinary, tmp_path, name):
    show_config.main([name])
    config = tmp_path / "pyoomd.json"
    config.write_bytes(capsysbinary.readouterr().out)
    assert pyoomd(["--kmsg-override", str(tmp_path / "kmsg"), "-c", str(config)]) == 0


def test_show_config_takes_the_file_name_too(capsysbinary):
    assert show_config.main(["server.json"]) == 0
    assert capsysbinary.readouterr().out == (REPO / "configs" / "server.json").read_bytes()


def test_show_config_unknown_name_lists_the_shipped_ones_and_exits_2(capsys):
    assert show_config.main(["laptop"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("pyoomd show-config: no shipped config named 'laptop'; "
                   f"available: {', '.join(CONFIGS)}\n")


def test_show_config_without_a_name_is_a_usage_error_naming_the_configs(capsys):
    with pytest.raises(SystemExit) as e:
        show_config.main([])
    assert e.value.code == 2
    assert "NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        show_config.main(["-h"])
    assert "one of: " + ", ".join(CONFIGS) in capsys.readouterr().out


def test_show_unit_prints_the_shipped_unit_byte_for_byte(capsysbinary):
    assert show_unit.main([]) == 0
    out, err = capsysbinary.readouterr()
    assert (out, err) == ((REPO / "systemd" / "pyoomd.service").read_bytes(), b"")


def test_show_unit_rejects_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        show_unit.main(["desktop"])
    assert e.value.code == 2


def test_show_config_into_a_closed_pipe_exits_quietly():
    """``pyoomd show-config server | head -0``: a reader gone early is no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run(
            [sys.executable, "-c",
             "import sys; from oomd.commands import show_config; "
             "sys.exit(show_config.main(['server']))"],
            stdout=write_end, stderr=subprocess.PIPE, cwd=REPO, timeout=60)
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (0, b"")
