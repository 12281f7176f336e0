"""The command dispatcher: ``pyoomd VERB [ARG]...`` runs a command module, and every path of
oomd's own command line (``pyoomd [OPTION]...``) is what it was before commands existed.

The verbs used here live in a throw-away package (``demo_verbs``) that the tests put in
``oomd.commands.VERBS``: the mechanism is under test, not any one command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_cli import files  # noqa: F401 - the fixture: good/bad configs, kmsg and runtime paths

from oomd import __version__, cli, commands
from oomd.cli import USAGE, main, parse_options

REPO = Path(__file__).resolve().parents[2]
REAL_VERBS = dict(commands.VERBS)

ECHO_ARGS = '''\
"""A demo verb: prints its arguments as JSON."""
import argparse
import json

HELP = "Print the arguments as JSON (a demo verb)"


def main(argv):
    p = argparse.ArgumentParser(prog="pyoomd echo-args", description=HELP)
    p.add_argument("words", nargs="*")
    p.add_argument("--loud", action="store_true")
    p.add_argument("--exit", type=int, default=0)
    a = p.parse_args(argv)
    print(json.dumps({"words": a.words, "loud": a.loud}))
    return a.exit
'''


@pytest.fixture
def demo_verbs(tmp_path, monkeypatch):
    """``echo-args`` (a working verb) and ``broken-verb`` (its module fails to import)."""
    pkg = tmp_path / "demo_verbs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "echo_args.py").write_text(ECHO_ARGS)
    (pkg / "broken_verb.py").write_text("raise RuntimeError('no such luck')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    verbs = {"echo-args": "demo_verbs.echo_args", "broken-verb": "demo_verbs.broken_verb"}
    monkeypatch.setattr(commands, "VERBS", verbs)
    yield verbs
    for name in ("demo_verbs", "demo_verbs.echo_args", "demo_verbs.broken_verb"):
        sys.modules.pop(name, None)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- verbs -------------------------------------------------------------------------------------


def test_verb_runs_its_module_with_the_arguments_after_it(capsys, demo_verbs):
    code, out, err = run(capsys, "echo-args", "a", "b", "--loud")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"words": ["a", "b"], "loud": True}


def test_verb_exit_status_is_what_its_main_returns(capsys, demo_verbs):
    assert run(capsys, "echo-args", "--exit", "5")[0] == 5


def test_verb_help_is_its_own_argparse_help(capsys, demo_verbs):
    code, out, err = run(capsys, "echo-args", "--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: pyoomd echo-args [-h] [--loud]")
    assert "Print the arguments as JSON (a demo verb)" in out


def test_verb_usage_error_exits_two_with_argparse_message(capsys, demo_verbs):
    code, out, err = run(capsys, "echo-args", "--no-such-flag")
    assert (code, out) == (2, "")
    assert "pyoomd echo-args: error: unrecognized arguments: --no-such-flag" in err


def test_a_dash_word_after_the_verb_belongs_to_the_verb(capsys, demo_verbs):
    """oomd's flags are parsed only when the first argument is one: ``-h`` after a verb is the
    verb's."""
    code, out, _ = run(capsys, "echo-args", "-h")
    assert code == 0 and out.startswith("usage: pyoomd echo-args")


def test_unknown_verb_lists_the_verbs_and_exits_two(capsys, demo_verbs):
    assert run(capsys, "frobnicate", "--config", "x") == (2, "", (
        "pyoomd: unknown command 'frobnicate'\n"
        "commands: broken-verb, echo-args (pyoomd COMMAND --help for each)\n"
        "oomd's options start with '-' (pyoomd --help)\n"))


def test_unknown_verb_without_any_verbs_says_so(capsys, monkeypatch):
    monkeypatch.setattr(commands, "VERBS", {})
    assert run(capsys, "extra", "words") == (2, "", (
        "pyoomd: unknown command 'extra'\n"
        "commands: none in this build\n"
        "oomd's options start with '-' (pyoomd --help)\n"))


def test_help_lists_each_verb_after_oomds_options(capsys, demo_verbs):
    code, out, err = run(capsys, "--help")
    assert (code, out) == (0, "")
    assert err == USAGE + (
        "\ncommands (pyoomd COMMAND [ARG]...; pyoomd COMMAND --help for its arguments):\n"
        "  broken-verb                (cannot be loaded: RuntimeError: no such luck)\n"
        "  echo-args                  Print the arguments as JSON (a demo verb)\n")


def test_help_without_verbs_is_oomds_options_text_alone(capsys, monkeypatch):
    monkeypatch.setattr(commands, "VERBS", {})
    assert run(capsys, "-h") == (0, "", USAGE)


def test_usage_errors_print_oomds_usage_without_the_verbs(capsys, demo_verbs):
    code, _, err = run(capsys, "--bogus")
    assert code == 1
    assert err == "pyoomd: option --bogus not recognized\nUnknown option or missing argument\n" + USAGE


def test_every_verb_follows_the_contract(capsys, demo_verbs, monkeypatch):
    """Each entry of the real table (and the demo one, so the check always runs): the module
    is named after the verb, HELP is one line, and ``pyoomd VERB --help`` exits 0 with a usage
    on stdout."""
    from importlib import import_module

    table = {**REAL_VERBS, "echo-args": demo_verbs["echo-args"]}
    monkeypatch.setattr(commands, "VERBS", table)
    for verb, module in sorted(table.items()):
        if verb in REAL_VERBS:
            assert module == "oomd.commands." + verb.replace("-", "_"), verb
        help_text = import_module(module).HELP
        assert isinstance(help_text, str) and help_text.strip() and "\n" not in help_text, verb
        code, out, _ = run(capsys, verb, "--help")
        assert code == 0 and out.startswith("usage:"), verb


def test_python_dash_m_oomd_dispatches_verbs(tmp_path):
    pkg = tmp_path / "demo_verbs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "echo_args.py").write_text(ECHO_ARGS)
    probe = textwrap.dedent("""\
        import runpy, sys
        from oomd import commands
        commands.VERBS["echo-args"] = "demo_verbs.echo_args"
        sys.argv = ["oomd"] + sys.argv[1:]
        runpy.run_module("oomd", run_name="__main__")
        """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    got = subprocess.run([sys.executable, "-c", probe, "echo-args", "x", "--exit", "4"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert (got.returncode, got.stderr) == (4, "")
    assert json.loads(got.stdout) == {"words": ["x"], "loud": False}
    unknown = subprocess.run([sys.executable, "-m", "oomd", "frobnicate"], capture_output=True,
                             text=True, env=env, cwd=REPO, timeout=60)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("pyoomd: unknown command 'frobnicate'\n")


# -- oomd's flags: each maps onto one command function, and says what it said before ------------


@pytest.mark.parametrize("argv, command", [
    ([], cli.run_daemon),
    (["-C", "x.json", "-i", "1"], cli.run_daemon),
    (["-c", "x.json"], cli.check_config),
    (["-l"], cli.list_plugins),
    (["-l", "-c", "x.json"], cli.list_plugins),
    (["-d"], cli.stats_client),
    (["-r"], cli.stats_client),
    (["-c", "x.json", "-l", "-r"], cli.stats_client),
])
def test_flags_map_onto_commands_in_oomds_order(argv, command):
    assert cli.flag_command(parse_options(argv)) is command


def _usage_error(first: str) -> str:
    return first + USAGE


# (argv, exit status, stdout, stderr) as pyoomd printed them before the dispatcher existed
# (recorded from main at 9423423 through ``python -m oomd``). ``{good}`` and the like are the
# fixture's files. Log lines lose their ``[file.py:line]`` prefix, which moves with any edit.
FLAG_PATHS = [
    (["-v"], 0, f"v{__version__}\n", ""),
    (["--version"], 0, f"v{__version__}\n", ""),
    (["--bogus"], 1, "", _usage_error(
        "pyoomd: option --bogus not recognized\nUnknown option or missing argument\n")),
    (["-x"], 1, "", _usage_error(
        "pyoomd: option -x not recognized\nUnknown option or missing argument\n")),
    (["-i"], 1, "", _usage_error(
        "pyoomd: option -i requires argument\nUnknown option or missing argument\n")),
    (["-C"], 1, "", _usage_error(
        "pyoomd: option -C requires argument\nUnknown option or missing argument\n")),
    (["-i", "0"], 1, "", "Interval not a >0 number: 0\n"),
    (["--interval=-1"], 1, "", "Interval not a >0 number: -1\n"),
    (["--device", "4095:4095"], 1, "", "Invalid devices: 4095:4095: No such file or directory\n"),
    (["--ssd-coeffs", "a,b"], 1, "", "Invalid SSD coefficients: stod\n"),
    (["--hdd-coeffs", "1,2,3,4,5,6,7"], 1, "", "Invalid HDD coefficients: at most 6 values\n"),
    (["--max-ticks", "x"], 1, "", "--max-ticks needs an integer, got 'x'\n"),
    (["-C", "{good}", "extra", "words"], 1, "", _usage_error(
        'Non-option argument is not supported: "extra" "words" \n')),
    (["--", "foo"], 1, "", _usage_error('Non-option argument is not supported: "foo" \n')),
    (["-"], 1, "", _usage_error('Non-option argument is not supported: "-" \n')),
    (["-D", "{rt}", "-d"], 1, "", "Error: connecting to stats socket: No such file or directory\n"
     "Socket path: {rt}/oomd-stats.socket\nFailed to retrieve stats\n"),
    (["-D", "{rt}", "-r"], 1, "", "Error: connecting to stats socket: No such file or directory\n"
     "Socket path: {rt}/oomd-stats.socket\nReset stats error: received error code= 1\n"),
    (["-dr", "--runtime-dir", "{rt}"], 1, "",
     "Error: connecting to stats socket: No such file or directory\n"
     "Socket path: {rt}/oomd-stats.socket\nFailed to retrieve stats\n"),
    (["-d", "-l", "-c", "{good}", "-D", "{rt}"], 1, "",
     "Error: connecting to stats socket: No such file or directory\n"
     "Socket path: {rt}/oomd-stats.socket\nFailed to retrieve stats\n"),
    (["--kmsg-override", "{kmsg}", "-c", "{good}"], 0, "", "Config {good} is valid\n"),
    (["--kmsg-override", "{kmsg}", "--check-config={good}"], 0, "", "Config {good} is valid\n"),
    (["--kmsg-override", "{kmsg}", "-c", "{bad}"], 1, "",
     "{bad}: at $.rulesets[0].detectors[0][1].name: Could not locate plugin=nope in plugin "
     "registry\nConfig is not valid\n"),
    (["--kmsg-override", "{kmsg}", "-c", "{tmp}/missing.json"], 1, "",
     "Could not open confg_file={tmp}/missing.json: No such file or directory\n"),
    (["--kmsg-override", "/nonexistent-dir/kmsg", "-c", "{good}"], 1, "",
     "open: No such file or directory\nUnable to open outfile /nonexistent-dir/kmsg, not "
     "logging\nLogging failed to initialize. Try running with sudo\n"),
    (["--kmsg-override", "{kmsg}", "-D", "{rt}", "-f", "{tmp}", "-C", "{good}"], 3, "",
     "{tmp} is not a valid cgroup2 filesystem\n"),
]

LOG_PREFIX = re.compile(r"^\[\w+\.py:\d+\] ", re.M)


@pytest.mark.parametrize("argv, code, out, err", FLAG_PATHS,
                         ids=[" ".join(p[0]) for p in FLAG_PATHS])
def test_oomd_flag_path_is_unchanged(capsys, files, argv, code, out, err):
    argv = [a.format(**files) for a in argv]
    got = run(capsys, *argv)
    assert (got[0], got[1], LOG_PREFIX.sub("", got[2])) == (code, out.format(**files),
                                                            err.format(**files))


def test_help_and_list_plugins_are_unchanged(capsys, monkeypatch):
    from oomd.plugin import REGISTRY

    monkeypatch.setattr(commands, "VERBS", {})
    assert run(capsys, "--help") == run(capsys, "-h") == (0, "", USAGE)
    code, out, err = run(capsys, "-l")
    assert (code, out) == (0, "")
    assert err == "List of plugins pyoomd was compiled with:\n" + "".join(
        f" {name}\n" for name in sorted(REGISTRY))


def test_python_dash_m_oomd_keeps_the_flags(files):
    """The same paths through ``python -m oomd``, the way operators and the unit start it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv, code, out, err in (FLAG_PATHS[0], FLAG_PATHS[2], FLAG_PATHS[15], FLAG_PATHS[19]):
        argv = [a.format(**files) for a in argv]
        got = subprocess.run([sys.executable, "-m", "oomd", *argv], capture_output=True,
                             text=True, env=env, cwd=REPO, timeout=60)
        assert (got.returncode, got.stdout, LOG_PREFIX.sub("", got.stderr)) == (
            code, out.format(**files), err.format(**files)), argv
