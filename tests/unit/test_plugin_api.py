"""The plugin API of the seed: registry, argument spec, third-party modules, the docs example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import StubContext, engine_from

from oomd import parsing
from oomd.errors import PluginArgError, PluginRegistryError
from oomd.plugin import (
    REGISTRY,
    Arg,
    BasePlugin,
    MonitoredResources,
    PluginConstructionContext,
    PluginRet,
    parse_args,
    register,
    register_plugin,
)

REPO = Path(__file__).resolve().parents[2]


def test_registering_a_name_twice_raises_naming_both():
    class First(BasePlugin):
        pass

    class Second(BasePlugin):
        pass

    registry: dict = {}
    register_plugin("dup", First, registry)
    with pytest.raises(PluginRegistryError) as e:
        register_plugin("dup", Second, registry)
    assert str(e.value) == (
        "plugin name 'dup' registered twice: by "
        "test_plugin_api.test_registering_a_name_twice_raises_naming_both.<locals>.First and by "
        "test_plugin_api.test_registering_a_name_twice_raises_naming_both.<locals>.Second"
    )


def test_builtin_registration_collision_is_refused():
    with pytest.raises(PluginRegistryError, match="'continue' registered twice"):

        @register("continue")
        class Impostor(BasePlugin):
            pass

    assert REGISTRY["continue"].__name__ == "ContinuePlugin"


SPEC = (
    Arg("cgroup", parsing.cgroup_patterns, required=True),
    Arg("threshold", parsing.int_parse, required=True),
    Arg("debug", parsing.bool_parse, default=False),
)


def test_arg_spec_fills_defaults_and_parses_values():
    values = parse_args("p", SPEC, {"cgroup": "a/*,b", "threshold": "60abc"})
    assert values["threshold"] == 60 and values["debug"] is False
    assert str(values["cgroup"]) == "a/*,b"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"threshold": "1"}, 'Required arg "cgroup" missing in plugin "p"'),
        ({"cgroup": "/", "threshold": "1", "bogus": "x"}, 'Unknown arg "bogus" in plugin "p"'),
        ({"cgroup": "/", "threshold": "1", "debug": "yes"},
         "Failed to parse argument \"debug\" of plugin \"p\": 'yes' is not a bool (true/True/1/false/False/0)"),
        ({"cgroup": "/", "threshold": "x"}, "Failed to parse argument \"threshold\" of plugin \"p\": 'x' is not an integer"),
    ],
)
def test_arg_spec_rejects_like_oomd(args, message):
    with pytest.raises(PluginArgError) as e:
        parse_args("p", SPEC, args)
    assert e.value.reason == message


def test_required_args_are_checked_before_unknown_ones():
    with pytest.raises(PluginArgError, match="Required arg"):
        parse_args("p", SPEC, {"zzz": "1"})


def test_default_init_adds_the_cgroup_patterns_with_the_plugin_metrics():
    class Watcher(BasePlugin):
        ARGS = SPEC
        METRICS = ("mem_pressure",)

    res = MonitoredResources()
    w = Watcher()
    assert w.init(res, {"cgroup": "system.slice/*", "threshold": "5"}, PluginConstructionContext()) == 0
    assert "system.slice/*" in res
    assert res.entries()[0][1] == frozenset({"mem_pressure"})


def test_init_failure_returns_one_and_keeps_the_reason():
    class Watcher(BasePlugin):
        ARGS = SPEC

    w = Watcher()
    assert w.init(MonitoredResources(), {}, PluginConstructionContext()) == 1
    assert w.init_error.reason == 'Required arg "cgroup" missing in plugin ""'


# -- the docs/writing_a_plugin.md example ------------------------------------------------------


def docs_example_source() -> str:
    text = (REPO / "docs" / "writing_a_plugin.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "the walk-through has exactly one Python block, the whole module"
    return blocks[0]


@pytest.fixture
def my_plugins(tmp_path, monkeypatch):
    (tmp_path / "my_plugins.py").write_text(docs_example_source())
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_docs_continue_example_runs_as_a_real_plugin(my_plugins):
    import importlib

    from oomd.plugin import load_plugin_module

    if "my_continue" not in REGISTRY:
        load_plugin_module("my_plugins")
    importlib.import_module("my_plugins")
    config = {"rulesets": [{"name": "always",
                            "detectors": [["always fires", {"name": "my_continue", "args": {"any": "thing"}}]],
                            "actions": [{"name": "mock", "args": {"id": "after"}}]}]}
    engine = engine_from(config)
    engine.tick(StubContext())
    from mock_plugins import RUNS

    assert RUNS["after"] == 1
    plugin = engine.rulesets[0].ruleset.detector_groups[0].detectors[0]
    assert plugin.run(StubContext()) is PluginRet.CONTINUE


def test_third_party_module_is_listed_and_its_config_checks(my_plugins, tmp_path):
    config = tmp_path / "that.json"
    config.write_text('{"rulesets": [{"name": "always", "detectors": [["always fires", '
                      '{"name": "my_continue"}]], "actions": [{"name": "continue"}]}]}')
    env = {"PYTHONPATH": f"{my_plugins}:{REPO}", "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([sys.executable, "-m", "oomd", "-l", "--plugin-module", "my_plugins"],
                            capture_output=True, text=True, env=env, cwd=REPO)
    assert listed.returncode == 0
    assert " my_continue" in listed.stderr.splitlines()
    checked = subprocess.run(
        [sys.executable, "-m", "oomd", "--plugin-module", "my_plugins", "--kmsg-override",
         str(tmp_path / "kmsg"), "-c", str(config)],
        capture_output=True, text=True, env=env, cwd=REPO)
    assert checked.returncode == 0, checked.stderr


def test_entry_point_plugins_load_and_metadata_is_imported_only_for_them(tmp_path):
    """Entry points in ``pyoomd.plugins`` are loaded; without any on the path the daemon does
    not import importlib.metadata (1.5 MiB of resident memory with email, zipfile, csv)."""
    (tmp_path / "ep_plugin_mod.py").write_text("LOADED = True\n")
    dist = tmp_path / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pyoomd.plugins]\nmine = ep_plugin_mod\n")
    code = ("import sys; from oomd import plugin; print(plugin.load_entry_point_plugins(), "
            "'importlib.metadata' in sys.modules, 'ep_plugin_mod' in sys.modules)")
    repo = str(Path(__file__).resolve().parents[2])

    def run(*path):
        env = {"PYTHONPATH": ":".join((repo,) + path), "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()

    assert run(str(tmp_path)) == "['mine'] True True"
    assert run() == "[] False False"
