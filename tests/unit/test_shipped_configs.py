"""Our shipped configs and oomd's own configs pass --check-config unmodified."""

from __future__ import annotations

from pathlib import Path

import pytest

from oomd.cli import main
from oomd.testing.oomd_bin import find_oomd_binary, why_missing

REPO = Path(__file__).resolve().parents[2]


def check(capsys, tmp_path, config: Path) -> tuple[int, str]:
    code = main(["--kmsg-override", str(tmp_path / "kmsg"), "-c", str(config)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["desktop.json", "server.json"])
def test_shipped_config_is_valid(capsys, tmp_path, name):
    code, err = check(capsys, tmp_path, REPO / "configs" / name)
    assert code == 0, err


def oomd_package_root() -> Path:
    binary = find_oomd_binary()
    if binary is None:
        pytest.skip(f"oomd 0.5.0 package unavailable: {why_missing()}")
    return binary.parents[2]  # <root>/usr/bin/oomd


def test_debian_packages_etc_oomd_json_is_valid_unmodified(capsys, tmp_path):
    config = oomd_package_root() / "etc" / "oomd" / "oomd.json"
    code, err = check(capsys, tmp_path, config)
    assert code == 0, err


def test_oomds_desktop_json_decides_like_ours(capsys, tmp_path):
    """Debian installs oomd's src/oomd/etc/desktop.json as /etc/oomd/oomd.json; ours must
    compile to the same rulesets, detectors and actions (group names are our own)."""
    from oomd.config.parser import parse_file

    theirs = parse_file(str(oomd_package_root() / "etc" / "oomd" / "oomd.json"))
    ours = parse_file(str(REPO / "configs" / "desktop.json"))

    def shape(root):
        return [(rs.name, rs.silence_logs,
                 [[(d.name, d.args) for d in dg.detectors] for dg in rs.detector_groups],
                 [(a.name, a.args) for a in rs.actions]) for rs in root.rulesets]

    assert shape(ours) == shape(theirs)


def doc_json_blocks():
    import re

    for doc in sorted((REPO / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```json\n(.*?)```", doc.read_text(), re.S)):
            if '"rulesets"' in block:
                yield pytest.param(block, id=f"{doc.name}[{i}]")


@pytest.mark.parametrize("text", list(doc_json_blocks()))
def test_config_examples_in_the_docs_compile(text):
    """Base configs compile; drop-in examples compile against configs/server.json."""
    from oomd.config.compiler import Compiler
    from oomd.config.parser import parse_file, parse_string
    from oomd.plugin import PluginConstructionContext

    root = parse_string(text, "example.json")
    comp = Compiler(PluginConstructionContext(), "example.json")
    if all(rs.detector_groups and rs.actions for rs in root.rulesets):
        comp.compile(root)
    else:
        base = parse_file(str(REPO / "configs" / "server.json"))
        assert comp.compile_drop_in(base, root).rulesets
