"""Every way a config can be wrong gives one message: file, JSON path, reason (reference §2.3).

The reasons are oomd's log texts where oomd has one; where oomd aborts, ours (docs/compat.md).
"""

from __future__ import annotations

import json

import pytest
from support import engine_from

from oomd.errors import ConfigError

GOOD_GROUP = ["g", {"name": "mock", "args": {"id": "d"}}]
GOOD_ACTION = {"name": "mock", "args": {"id": "a"}}


def rs(**kw):
    base = {"name": "r", "detectors": [GOOD_GROUP], "actions": [GOOD_ACTION]}
    base.update(kw)
    return {"rulesets": [base]}


def detector(args):
    return rs(detectors=[["g", {"name": "mock", "args": args}]])


CASES = [
    # (id, config text or dict, expected message)
    ("syntax", '{"rulesets": [}', "bad.json: at $.rulesets[0]: invalid JSON: unexpected character '}' at line 1, column 15"),
    ("empty file", "", "bad.json: at $: invalid JSON: the document is empty"),
    ("only a comment", "// nothing\n", "bad.json: at $: invalid JSON: the document is empty"),
    ("unterminated string", '{"rulesets": [{"name": "r', "bad.json: at $.rulesets[0].name: invalid JSON: unterminated string at line 1, column 26"),
    ("single quotes", "{'rulesets': []}", "bad.json: at $: invalid JSON: expected a string key or '}' at line 1, column 2"),
    ("top level array", "[]", "bad.json: at $: the config must be a JSON object, got an array"),
    ("ruleset is a string", {"rulesets": ["r"]}, "bad.json: at $.rulesets[0]: a ruleset must be an object, got a string"),
    ("name is an object", rs(name={"x": 1}), "bad.json: at $.rulesets[0].name: expected a string, number or bool, got an object"),
    ("missing ruleset name", rs(name=None), "bad.json: at $.rulesets[0]: Ruleset is missing name"),
    ("bad silence-logs", rs(**{"silence-logs": "engine,everything"}),
     'bad.json: at $.rulesets[0]["silence-logs"]: Unrecognized log source=everything'),
    ("no actions", rs(actions=[]), "bad.json: at $.rulesets[0]: Ruleset is missing DetectorGroups or missing Actions"),
    ("no detectors", rs(detectors=[]), "bad.json: at $.rulesets[0]: Ruleset is missing DetectorGroups or missing Actions"),
    ("non-numeric post_action_delay", rs(post_action_delay="soon"),
     "bad.json: at $.rulesets[0].post_action_delay: Ruleset post_action_delay must be an integer number of seconds, got 'soon'"),
    ("negative post_action_delay", rs(post_action_delay=-1),
     "bad.json: at $.rulesets[0].post_action_delay: Ruleset post_action_delay must be non-negative"),
    ("negative prekill_hook_timeout", rs(prekill_hook_timeout="-5"),
     "bad.json: at $.rulesets[0].prekill_hook_timeout: Ruleset prekill_hook_timeout must be non-negative"),
    ("array prekill_hook_timeout", rs(prekill_hook_timeout=[5]),
     "bad.json: at $.rulesets[0].prekill_hook_timeout: expected a string, number or bool, got an array"),
    ("drop-in is a string", rs(**{"drop-in": "yes"}),
     'bad.json: at $.rulesets[0]["drop-in"]: drop-in must be an object, got a string'),
    ("drop-in flag is a string", rs(**{"drop-in": {"detectors": "yes"}}),
     'bad.json: at $.rulesets[0]["drop-in"].detectors: expected a bool, got a string'),
    ("group without name", rs(detectors=[[{"name": "mock", "args": {"id": "d"}}]]),
     "bad.json: at $.rulesets[0].detectors[0]: DetectorGroup is missing name"),
    ("group that is not an array", rs(detectors=[{"name": "mock"}]),
     "bad.json: at $.rulesets[0].detectors[0]: DetectorGroup is missing name"),
    ("group without detectors", rs(detectors=[["g"]]),
     "bad.json: at $.rulesets[0].detectors[0]: DetectorGroup is missing Detectors"),
    ("plugin without name", rs(detectors=[["g", {"args": {}}]]),
     "bad.json: at $.rulesets[0].detectors[0][1]: Plugin is missing name"),
    ("plugin name not a string", rs(actions=[{"name": 5}]),
     "bad.json: at $.rulesets[0].actions[0]: Plugin is missing name"),
    ("unknown plugin", rs(actions=[{"name": "kill_everything"}]),
     "bad.json: at $.rulesets[0].actions[0].name: Could not locate plugin=kill_everything in plugin registry"),
    ("missing required arg", detector({}),
     'bad.json: at $.rulesets[0].detectors[0][1].args: Plugin=mock failed to init() with code=1: '
     'Required arg "id" missing in plugin "mock"'),
    ("unknown arg", detector({"id": "d", "colour": "red"}),
     'bad.json: at $.rulesets[0].detectors[0][1].args.colour: Plugin=mock failed to init() with code=1: '
     'Unknown arg "colour" in plugin "mock"'),
    ("unparsable arg", detector({"id": "d", "pause": "later"}),
     'bad.json: at $.rulesets[0].detectors[0][1].args.pause: Plugin=mock failed to init() with code=1: '
     "Failed to parse argument \"pause\" of plugin \"mock\": 'later' is not an integer"),
    ("array-valued arg", detector({"id": "d", "cgroup": ["a", "b"]}),
     "bad.json: at $.rulesets[0].detectors[0][1].args.cgroup: argument value must be a string, number or bool, not an array"),
    ("null arg", detector({"id": None}),
     "bad.json: at $.rulesets[0].detectors[0][1].args.id: argument value must be a string, number or bool, not null"),
    ("arg name needing quotes", detector({"id": "d", "my-arg": "1"}),
     'bad.json: at $.rulesets[0].detectors[0][1].args["my-arg"]: Plugin=mock failed to init() with code=1: '
     'Unknown arg "my-arg" in plugin "mock"'),
    ("error in the second ruleset", {"rulesets": [rs()["rulesets"][0], {"name": "r2", "detectors": [GOOD_GROUP], "actions": [{"name": "nope"}]}]},
     "bad.json: at $.rulesets[1].actions[0].name: Could not locate plugin=nope in plugin registry"),
    ("unknown prekill hook", {**rs(), "prekill_hooks": [{"name": "nope", "args": {"cgroup": "/"}}]},
     "bad.json: at $.prekill_hooks[0].name: Could not locate plugin=nope in plugin registry"),
]


@pytest.mark.parametrize("config, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_is_rejected_with_file_path_and_reason(config, message):
    text = config if isinstance(config, str) else json.dumps(config)
    with pytest.raises(ConfigError) as e:
        engine_from(text, file="bad.json")
    assert str(e.value) == message


def test_there_are_at_least_twenty_malformed_cases():
    assert len(CASES) >= 20


def test_fractional_post_action_delay_is_truncated_like_oomd():
    e = engine_from(rs(post_action_delay=2.9))
    assert e.rulesets[0].ruleset.post_action_delay == 2


def test_numeric_strings_with_trailing_garbage_read_their_leading_digits():
    e = engine_from(rs(post_action_delay="10s", prekill_hook_timeout=" 7"))
    r = e.rulesets[0].ruleset
    assert (r.post_action_delay, r.prekill_hook_timeout) == (10, 7)


# -- drop-in compile errors (§2.5) ----------------------------------------------------------


def compile_drop_in(base: dict, dropin: dict):
    from oomd.config.compiler import Compiler
    from oomd.config.parser import parse_string
    from oomd.plugin import PluginConstructionContext

    comp = Compiler(PluginConstructionContext(), "d.json")
    return comp.compile_drop_in(parse_string(json.dumps(base), "base.json"),
                                parse_string(json.dumps(dropin), "d.json"))


def test_drop_in_for_an_unknown_ruleset_is_rejected():
    with pytest.raises(ConfigError) as e:
        compile_drop_in(rs(), {"rulesets": [{"name": "other", "actions": [GOOD_ACTION]}]})
    assert str(e.value) == "d.json: at $.rulesets[0].name: Could not locate targeted ruleset=other"


def test_drop_in_detectors_are_rejected_when_the_base_disables_them():
    with pytest.raises(ConfigError) as e:
        compile_drop_in(rs(), {"rulesets": [{"name": "r", "detectors": [GOOD_GROUP]}]})
    assert str(e.value) == ("d.json: at $.rulesets[0]: Error: DetectorGroup drop-in configs disabled; "
                            "Could not merge drop in ruleset=r")


def test_drop_in_actions_are_rejected_when_the_base_disables_them():
    with pytest.raises(ConfigError) as e:
        compile_drop_in(rs(), {"rulesets": [{"name": "r", "actions": [GOOD_ACTION]}]})
    assert str(e.value) == ("d.json: at $.rulesets[0]: Error: Action drop-in configs disabled; "
                            "Could not merge drop in ruleset=r")


def test_drop_in_may_omit_detectors_or_actions():
    base = rs(**{"drop-in": {"actions": True}})
    unit = compile_drop_in(base, {"rulesets": [{"name": "r", "actions": [{"name": "stop"}]}]})
    (merged,) = unit.rulesets
    assert [a.name for a in merged.actions] == ["stop"]
    assert [d.name for d in merged.detector_groups[0].detectors] == ["mock"]
