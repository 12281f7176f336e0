"""JSON dialect and coercions of reference §2.1-2.2."""

from __future__ import annotations

import pytest

from oomd.config.parser import format_real, parse_string
from oomd.errors import ConfigError


def one_plugin_args(args_json: str) -> dict:
    root = parse_string(
        '{"rulesets": [{"name": "r", "detectors": [["g", {"name": "x", "args": %s}]],'
        ' "actions": [{"name": "y"}]}]}' % args_json
    )
    return root.rulesets[0].detector_groups[0].detectors[0].args


def test_comments_trailing_commas_and_trailing_garbage_are_accepted():
    root = parse_string(
        """// leading comment
        { /* block */ "rulesets": [ {"name": "r", "detectors": [["g", {"name": "x"},],],
          "actions": [{"name": "y",},], }, ], } and then some garbage"""
    )
    assert [rs.name for rs in root.rulesets] == ["r"]
    assert root.rulesets[0].detector_groups[0].detectors[0].name == "x"


def test_null_document_is_an_empty_config():
    assert parse_string("null").rulesets == ()


def test_duplicate_keys_last_one_wins():
    assert one_plugin_args('{"a": "1", "a": "2"}') == {"a": "2"}


@pytest.mark.parametrize(
    "json_value, text",
    [
        ('"60"', "60"),
        ("60", "60"),
        ("-3", "-3"),
        ("18446744073709551615", "18446744073709551615"),
        ("60.0", "60.0"),
        ("0.1", "0.10000000000000001"),
        ("1e20", "1e+20"),
        ("-0.0", "-0.0"),
        ("123456789012345678901234", "1.2345678901234569e+23"),
        ("true", "true"),
        ("false", "false"),
    ],
)
def test_argument_values_are_string_coerced_like_jsoncpp(json_value, text):
    assert one_plugin_args('{"v": %s}' % json_value) == {"v": text}


def test_format_real_appends_point_zero_only_to_integral_looking_reals():
    assert (format_real(2.0), format_real(2.5), format_real(1e20)) == ("2.0", "2.5", "1e+20")


def test_group_name_is_optional_only_at_parse_time():
    root = parse_string('{"rulesets": [{"name": "r", "detectors": [[{"name": "x"}]], "actions": [{"name": "y"}]}]}')
    dg = root.rulesets[0].detector_groups[0]
    assert dg.name == "" and [d.name for d in dg.detectors] == ["x"]


def test_objects_are_iterated_in_sorted_key_order():
    root = parse_string('{"rulesets": {"b": {"name": "second"}, "a": {"name": "first"}}}')
    assert [rs.name for rs in root.rulesets] == ["first", "second"]


def test_scalar_rulesets_value_yields_no_rulesets():
    assert parse_string('{"rulesets": 5}').rulesets == ()


def test_drop_in_flags_coerce_numbers_and_null_to_bool():
    root = parse_string('{"rulesets": [{"name": "r", "drop-in": {"detectors": 1, "actions": null,'
                        ' "disable-on-drop-in": 0.5}}]}')
    d = root.rulesets[0].dropin
    assert (d.detectors, d.actions, d.disable_on_drop_in) == (True, False, True)


def test_plugin_that_is_not_an_object_gets_an_empty_name():
    root = parse_string('{"rulesets": [{"name": "r", "actions": ["kill"]}]}')
    assert root.rulesets[0].actions[0].name == ""


def test_syntax_error_points_at_line_and_column():
    with pytest.raises(ConfigError) as e:
        parse_string('{\n  "rulesets": [\n    {"name": "r",,}\n  ]\n}', "c.json")
    assert str(e.value) == (
        "c.json: at $.rulesets[0]: invalid JSON: expected a string key or '}' at line 3, column 18"
    )
