"""The flight recorder keeps ticks only while the running rules can kill (oomd.flight.kills_possible)."""

from __future__ import annotations

from oomd.config.compiler import Compiler
from oomd.config.parser import parse_string
from oomd.flight import kills_possible
from oomd.plugin import PluginConstructionContext, load_builtin_plugins

DETECTOR = '{"name": "pressure_above", "args": {"cgroup": "workload.slice", "resource": "memory", ' \
           '"threshold": "60", "duration": "30"}}'


def engine(action: str):
    load_builtin_plugins()
    text = ('{"rulesets": [{"name": "r", "detectors": [["g", %s]], "actions": [%s]}]}'
            % (DETECTOR, action))
    return Compiler(PluginConstructionContext(), "t.json").compile(parse_string(text, "t.json"))


def test_rules_without_a_kill_plugin_keep_no_ticks():
    assert kills_possible(engine('{"name": "continue"}')) is False


def test_a_kill_plugin_makes_the_recorder_keep_ticks():
    kill = '{"name": "kill_by_memory_size_or_growth", "args": {"cgroup": "workload.slice/*"}}'
    assert kills_possible(engine(kill)) is True


def test_an_empty_config_keeps_no_ticks():
    load_builtin_plugins()
    empty = Compiler(PluginConstructionContext(), "e.json").compile(
        parse_string('{"rulesets": []}', "e.json"))
    assert kills_possible(empty) is False
