"""``pyoomd lint`` as a command: exit status, text and JSON output, the documented JSON schema,
and the shipped configs on a tree that has every controller."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lintfakes import (Lint, act, bare, config, det, full, lint_as_nobody, ruleset, tree_spec,
                       world_readable)
from oomd.commands.lint import DEFAULT_DAEMON_CGROUP, EXIT_USAGE, main
from oomd.lint import CODES
from schemacheck import errors

REPO = Path(__file__).resolve().parents[2]


def lint_main(capsys, lnt: Lint, cfg, *args, drop_ins=(), fs=None):
    lnt.write("c.json", cfg)
    paths = [lnt.write(name, content) for name, content in drop_ins]
    code = main(["--cgroup-fs", str(fs or lnt.root), "--proc-root", str(lnt.proc), *args,
                 lnt.file, *paths])
    out, err = capsys.readouterr()
    return code, out, err


def json_main(capsys, lnt, cfg, *args, **kw):
    code, out, err = lint_main(capsys, lnt, cfg, "--json", *args, **kw)
    assert err == ""
    doc = json.loads(out)
    assert doc["exit_status"] == code
    return doc


def schema() -> dict:
    text = (REPO / "docs" / "lint.md").read_text()
    section = text[text.index("### JSON (`--json`), for CI"):]
    return json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))


# ---- exit status and output -----------------------------------------------------------------

def test_clean_config_exits_0_even_when_strict(capsys, tmp_path):
    lnt = Lint(tmp_path)
    code, out, err = lint_main(capsys, lnt, config(), "--strict")
    assert (code, out, err) == (0, f"{lnt.file}: no findings\n", "")


def test_warnings_exit_0_and_2_with_strict(capsys, tmp_path):
    lnt = Lint(tmp_path)
    cfg = config(ruleset(actions=[act("kill_by_memory_size_or_growth", cgroup="system.slice/*",
                                      dry=True)]))
    code, out, _ = lint_main(capsys, lnt, cfg)
    assert code == 0
    assert out == (
        f"{lnt.file}: $.rulesets[0].actions[0].args.dry: warning: dry is on, so "
        "kill_by_memory_size_or_growth only logs and records what it would do. [dry-left-on]\n"
        '    fix: Remove "dry" once the config is tested (pyoomd --dry-run makes every action dry '
        "for a trial run).\n"
        f"{lnt.file}: 0 errors, 1 warning, 0 notes\n")
    assert lint_main(capsys, lnt, cfg, "--strict")[0] == 2
    assert lint_main(capsys, lnt, cfg, "--strict", "--ignore", "dry-left-on")[0] == 0


def test_errors_exit_1_with_or_without_strict(capsys, tmp_path):
    lnt = Lint(tmp_path)
    cfg = config(ruleset(actions=[act("kill_by_io_cost", cgroup="system.slice/*", dry=True)]))
    assert lint_main(capsys, lnt, cfg)[0] == 1
    assert lint_main(capsys, lnt, cfg, "--strict")[0] == 1
    assert lint_main(capsys, lnt, cfg, "--ignore", "io-cost-without-device,dry-left-on")[0] == 0


@pytest.mark.parametrize("args,message", [
    (["--no-such-option"], "pyoomd lint: unrecognized arguments: --no-such-option\n"),
    (["--ignore", "nope"], "pyoomd lint: unknown finding code(s) for --ignore: nope\n"),
    (["--interval", "0"], "pyoomd lint: Interval not a >0 number: 0\n"),
    (["--device", "999:999"], "pyoomd lint: Invalid devices: 999:999: No such file or directory\n"),
])
def test_usage_errors_exit_64(capsys, tmp_path, args, message):
    lnt = Lint(tmp_path)
    code, out, err = lint_main(capsys, lnt, config(), *args)
    assert (code, out) == (EXIT_USAGE, "")
    assert err == message + "Try 'pyoomd lint --help'.\n"


def test_missing_config_argument_is_a_usage_error(capsys):
    assert main([]) == EXIT_USAGE
    assert capsys.readouterr().err == ("pyoomd lint: the following arguments are required: CONFIG\n"
                                       "Try 'pyoomd lint --help'.\n")


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pyoomd lint [-h] [--cgroup-fs FS] [--json] [--strict]")
    assert "exit status: 0 no errors, 1 errors, 2 warnings (no errors) with --strict" in out


def test_the_verb_follows_the_command_contract():
    from oomd.commands import VERBS

    assert VERBS["lint"] == "oomd.commands.lint"
    module = importlib.import_module(VERBS["lint"])
    assert isinstance(module.HELP, str) and "\n" not in module.HELP
    assert module.main is main


def test_runs_as_a_module_from_the_command_line(tmp_path):
    lnt = Lint(tmp_path)
    lnt.write("c.json", config())
    done = subprocess.run(
        [sys.executable, "-m", "oomd.commands.lint", "--json", "--cgroup-fs", str(lnt.root),
         "--proc-root", str(lnt.proc), lnt.file], cwd=REPO, capture_output=True, text=True,
        timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["findings"] == []


# ---- the shipped configs --------------------------------------------------------------------

def systemd_tree() -> dict:
    """A systemd host's slices, every controller enabled everywhere, plus workload.slice."""
    spec = tree_spec()
    for rel in ("user.slice", "user.slice/user-1000.slice",
                "user.slice/user-1000.slice/session-2.scope",
                "user.slice/user-1000.slice/user@1000.service",
                "user.slice/user-1000.slice/user@1000.service/app.slice"):
        spec[rel] = full()
    return spec


def test_shipped_desktop_config_lints_clean_on_a_tree_with_every_controller(capsys, tmp_path):
    lnt = Lint(tmp_path, systemd_tree())
    doc = json_main(capsys, lnt, (REPO / "configs" / "desktop.json").read_text(), "--strict",
                    "--daemon-cgroup", DEFAULT_DAEMON_CGROUP)
    assert doc["exit_status"] == 0
    assert [(f["code"], f["severity"], f["path"]) for f in doc["findings"]] == [
        ("candidates-overlap", "note", "$.rulesets[2].actions[0].args.cgroup")]
    assert doc["findings"][0]["message"] == (
        'kill_by_swap_usage\'s candidates "user.slice/user-*.slice/session-*.scope" overlap those '
        'of kill_by_memory_size_or_growth in ruleset "user session protection" '
        '("user.slice/user-*.slice/session-*.scope"; 4 cgroups in both now), so one incident can '
        "make both rulesets kill.")


def test_shipped_server_config_lints_clean_on_a_tree_with_every_controller(capsys, tmp_path):
    lnt = Lint(tmp_path, systemd_tree())
    doc = json_main(capsys, lnt, (REPO / "configs" / "server.json").read_text(), "--strict",
                    "--interval", "1")
    assert doc["exit_status"] == 0
    overlaps = [(f["path"], f["message"].split(" in ruleset ")[1].split(" (")[0])
                for f in doc["findings"]]
    assert all(f["code"] == "candidates-overlap" for f in doc["findings"])
    assert overlaps == [
        ("$.rulesets[3].actions[0].args.cgroup", '"system.slice protection"'),
        ("$.rulesets[3].actions[0].args.cgroup", '"workload protection"'),
        ("$.rulesets[4].actions[0].args.cgroup", '"host memory pressure"'),
        ("$.rulesets[4].actions[0].args.cgroup", '"system.slice protection"'),
        ("$.rulesets[4].actions[0].args.cgroup", '"workload protection"'),
    ]


# ---- the JSON schema --------------------------------------------------------------------------

def test_documented_codes_are_the_codes():
    text = (REPO / "docs" / "lint.md").read_text()
    table = re.findall(r"^\| `([a-z-]+)` \| (?:error|warning|note)", text, re.M)
    assert table == list(CODES)
    for code in CODES:
        assert re.search(rf"^### .*`{code}`", text, re.M), f"docs/lint.md has no section for {code}"


def test_schema_rejects_what_it_should():
    s = schema()
    good = {"schema": "pyoomd-lint/1", "config": "c", "drop_ins": [], "cgroup_fs": "/", "strict": False,
            "exit_status": 0, "counts": {"error": 0, "warning": 0, "note": 0}, "findings": [
                {"code": "dry-left-on", "severity": "note", "file": "c",
                 "path": '$.rulesets[0]["drop-in"].detectors', "message": "m", "fix": "f"}]}
    assert errors(good, s) == []
    bad = json.loads(json.dumps(good))
    bad["findings"][0].update(severity="fatal", path="rulesets.0", extra=1)
    del bad["findings"][0]["fix"]
    assert errors(bad, s) == [
        "$.findings[0]: 'fix' is missing",
        "$.findings[0]: 'extra' is not allowed",
        "$.findings[0].severity: 'fatal' is not one of ['error', 'warning', 'note']",
        "$.findings[0].path: 'rulesets.0' does not match "
        '^\\$(\\.[A-Za-z_][A-Za-z0-9_]*|\\[[0-9]+\\]|\\["([^"\\\\]|\\\\.)*"\\])*$',
    ]


@pytest.fixture
def shared_tmp():
    d = Path(tempfile.mkdtemp(prefix="pyoomd-lint-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_every_finding_of_every_code_validates_against_the_documented_schema(capsys, tmp_path,
                                                                            shared_tmp):
    s = schema()
    docs = []
    # most codes at once: a tree where system.slice's services lack the memory controller, no swap
    spec = tree_spec()
    spec["system.slice"] = full(extra={"cgroup.subtree_control": "io\n"})
    spec["system.slice/a.service"] = bare("io")
    spec["system.slice/b.service"] = bare("io")
    lnt = Lint(tmp_path / "a", spec, swap_devices=[])
    os.setxattr(lnt.root / "workload.slice" / "job", "user.oomd_avoid", b"")
    cfg = config(
        ruleset("a", detectors=[["g", det("pressure_above", cgroup="system.slice", resource="memory",
                                          threshold=100, duration=3)]],
                actions=[act("kill_by_memory_size_or_growth", cgroup="system.slice/*",
                             post_action_delay=0),
                         act("kill_by_io_cost", cgroup="workload.slice/*/*", dry=True)],
                **{"drop-in": {"detectors": True}}),
        ruleset("b", detectors=[["g", det("swap_free", threshold_pct=100)]],
                actions=[act("kill_by_swap_usage", cgroup="system.slice/*,nope/*")]),
        ruleset("c", detectors=[["g", det("exists", cgroup="workload.slice")]],
                actions=[act("kill_by_pressure", cgroup="workload.slice/job", resource="memory")]))
    drop_ins = [
        ("d1.json", {"rulesets": [{"name": "zzz", "actions": [act("continue")]}]}),
        ("d2.json", {"rulesets": [{"name": "b", "detectors": [["g", det("continue")]]}]}),
        ("d3.json", {"rulesets": [{"name": "a", "detectors": [["g", det("nope")]]}]}),
    ]
    docs.append(json_main(capsys, lnt, cfg, "--daemon-cgroup", "workload.slice/job/t1",
                          drop_ins=drop_ins))
    # the config that does not compile, the tree that is not there, no PSI and no memory on cgroup2
    docs.append(json_main(capsys, lnt, config(ruleset(detectors=[["g", det("nope")]]))))
    docs.append(json_main(capsys, lnt, config(), fs=tmp_path / "nowhere"))
    nomem = Lint(tmp_path / "b", {rel: full(controllers="cpu io") for rel in tree_spec()},
                 mem_pressure=None)
    docs.append(json_main(capsys, nomem, config()))
    findings = [f for doc in docs for f in doc["findings"]]
    for doc in docs:
        assert errors(doc, s) == []
        assert doc["counts"] == {sev: sum(f["severity"] == sev for f in doc["findings"])
                                 for sev in ("error", "warning", "note")}
    if os.geteuid() == 0:   # an unreadable cgroup, seen by an unprivileged run
        low = Lint(shared_tmp)
        world_readable(shared_tmp)
        os.chmod(low.root / "system.slice" / "b.service", 0o700)
        extra = lint_as_nobody(low)
        assert [f["code"] for f in extra] == ["tree-incomplete"]
        findings += extra
    for f in findings:
        assert errors(f, s["$defs"]["finding"], s) == []
    codes = {f["code"] for f in findings}
    assert codes == set(CODES) - ({"tree-incomplete"} if os.geteuid() else set())
