"""Inputs the config fuzzer found that escaped as something other than a ConfigError/ValueError.

Each case is one "shared:" fix in the config code; the test pins the clear error it now gives.
"""

from __future__ import annotations

import pytest

from oomd import parsing
from oomd.config import jsonc
from oomd.config.parser import parse_string
from oomd.errors import ConfigError


@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
def test_json_nested_past_the_depth_limit_is_a_config_error(opener, closer):
    depth = jsonc.MAX_DEPTH + 1
    with pytest.raises(ConfigError) as e:
        parse_string(opener * depth + closer * depth, "deep.json")
    assert e.value.file == "deep.json"
    assert e.value.reason.startswith(
        f"invalid JSON: arrays and objects nested deeper than {jsonc.MAX_DEPTH} levels "
        "at line 1, column ")


def test_json_nested_to_the_depth_limit_parses():
    value = jsonc.loads("[" * jsonc.MAX_DEPTH + "]" * jsonc.MAX_DEPTH)
    levels = 0
    while value is not None:
        levels += 1
        value = value[0] if value else None
    assert levels == jsonc.MAX_DEPTH


@pytest.mark.parametrize("number", ["1" * 400, "1" * 5000, "-" + "9" * 400, "1e999", "-1e999",
                                    "1" * 400 + ".5"])
def test_json_number_beyond_a_double_is_a_config_error(number):
    text = '{"rulesets": [{"name": ' + number + "}]}"
    with pytest.raises(ConfigError) as e:
        parse_string(text, "big.json")
    assert str(e.value) == (f"big.json: at $.rulesets[0].name: invalid JSON: '{number}' is not "
                            "a number at line 1, column 24")


@pytest.mark.parametrize("number, value", [("18446744073709551615", 18446744073709551615),
                                           ("18446744073709551616", 1.8446744073709552e19),
                                           ("-9223372036854775809", -9.223372036854776e18),
                                           ("1" * 300, float("1" * 300)), ("1e308", 1e308)])
def test_json_numbers_within_a_double_still_parse(number, value):
    assert jsonc.loads(number) == value


# -- value parsers --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1e999999", "1e999999M", "1e99999999", "1e4933k", "1e-5000",
                                  "0x1p99999", "0x1p99999k"])
def test_size_far_beyond_long_double_is_rejected_at_once(text):
    with pytest.raises(ValueError, match="out of range for a size"):
        parsing.parse_size(text)


@pytest.mark.parametrize("text", ["1_000", "1_0M", "\u0661", "\u0661M", "Infinity", "snan", "1e",
                                  "0x"])
def test_size_terms_that_std_stold_would_not_consume_whole_are_rejected(text):
    with pytest.raises(ValueError, match="is not a size"):
        parsing.parse_size(text)


@pytest.mark.parametrize("text, value", [("0x10k", 16 << 10), ("0e99999999", 0), (".5k", 512),
                                         ("5.m", 5 << 20), ("1e3", 1000)])
def test_sizes_within_range_still_parse(text, value):
    assert parsing.parse_size(text) == value


def test_size_near_the_long_double_limit_wraps_modulo_2_64_like_other_huge_sizes():
    wrapped = 10**4000 % (1 << 64)
    assert parsing.parse_size("1e4000") == (wrapped - (1 << 64) if wrapped >= 1 << 63 else wrapped)


@pytest.mark.parametrize("fn", [parsing.double_parse, parsing.float_parse])
def test_hex_float_beyond_a_double_is_a_value_error(fn):
    with pytest.raises(ValueError, match="out of range for a double"):
        fn("0x1p99999")


@pytest.mark.parametrize("fn", [parsing.int_parse, parsing.int64_parse, parsing.uint64_parse,
                                parsing.milliseconds, parsing.non_negative_int])
def test_integer_with_thousands_of_digits_is_out_of_range_not_a_python_limit(fn):
    with pytest.raises(ValueError, match="out of range") as e:
        fn("9" * 5000)
    assert "4300" not in str(e.value)


def test_integer_with_many_leading_zeros_still_parses():
    assert parsing.int_parse("0" * 5000 + "42") == 42
    assert parsing.uint64_parse("0" * 5000 + "18446744073709551615") == -1


def test_huge_hex_coefficient_on_the_command_line_is_a_usage_error():
    from oomd.cli import UsageExit, parse_coeffs

    with pytest.raises(UsageExit) as e:
        parse_coeffs("1,0x1p99999", "SSD")
    assert e.value.code == 1


@pytest.mark.parametrize("escape", ["\\udfff", "\\ud800", "\\ud800x", "\\ud800\\u0041"])
def test_lone_surrogate_escape_is_a_config_error(escape):
    text = ('{"prekill_hooks": [{"name": "exec_prekill_hook", "args": {"cmd": "/bin/'
            + escape + '"}}]}')
    with pytest.raises(ConfigError) as e:
        parse_string(text, "s.json")
    assert e.value.json_path == "$.prekill_hooks[0].args.cmd"
    assert e.value.reason.startswith(f"invalid JSON: lone surrogate {escape[:6]} (no character")


def test_surrogate_pair_escape_is_one_character():
    assert jsonc.loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_lone_surrogate_character_in_the_text_is_a_config_error():
    with pytest.raises(ConfigError, match="lone surrogate character"):
        parse_string('{"rulesets": [{"name": "\ud800"}]}', "s.json")


# -- plugins reading meminfo at init --------------------------------------------------------------


def test_meminfo_that_is_not_utf8_spoils_only_its_line(tmp_path):
    from oomd import fs

    path = tmp_path / "meminfo"
    path.write_bytes(b"MemTotal:       16000 kB\n\xd0\xff garbage:  12 kB\nSwapTotal:  8 kB\n")
    meminfo = fs.read_meminfo(str(path))
    assert meminfo["MemTotal"] == 16000 * 1024 and meminfo["SwapTotal"] == 8 * 1024


def test_meminfo_location_pointing_at_an_endless_file_reads_a_bounded_prefix():
    from oomd import fs

    assert "MemTotal" not in fs.read_meminfo("/dev/zero")


def _actions_config(action: dict) -> str:
    import json

    return json.dumps({"rulesets": [{"name": "r", "detectors": [["g", {"name": "continue"}]],
                                     "actions": [action]}]})


def test_memory_above_with_meminfo_location_at_a_binary_file_says_memtotal_is_missing():
    from support import engine_from

    config = {"name": "memory_above", "args": {"cgroup": "/", "meminfo_location": "/bin/sh",
                                               "threshold": "10%", "duration": "1"}}
    with pytest.raises(ConfigError) as e:
        engine_from(_actions_config(config), file="m.json")
    assert e.value.reason == ("Plugin=memory_above failed to init() with code=1: "
                              "meminfo does not contain MemTotal")


def test_kill_by_swap_usage_with_meminfo_location_at_a_binary_file_sees_no_swap():
    from support import engine_from

    config = {"name": "kill_by_swap_usage", "args": {"cgroup": "/", "meminfo_location": "/bin/sh",
                                                     "threshold": "10%"}}
    engine = engine_from(_actions_config(config), file="m.json")
    (killer,) = engine.rulesets[0].ruleset.actions
    assert killer.swap_total == 0


@pytest.mark.parametrize("plugin_name", ["kill_by_swap_usage", "memory_above"])
def test_meminfo_location_with_a_nul_byte_is_a_clear_config_error_or_no_swap(plugin_name):
    from support import engine_from

    args = {"cgroup": "/", "meminfo_location": "/proc/mem\u0000info", "threshold": "10%"}
    if plugin_name == "memory_above":
        args["duration"] = "1"
        with pytest.raises(ConfigError) as e:
            engine_from(_actions_config({"name": plugin_name, "args": args}), file="m.json")
        assert e.value.reason == ("Plugin=memory_above failed to init() with code=1: Could not "
                                  "read meminfo /proc/mem\x00info: path contains a NUL byte")
    else:
        engine = engine_from(_actions_config({"name": plugin_name, "args": args}), file="m.json")
        assert engine.rulesets[0].ruleset.actions[0].swap_total == 0
