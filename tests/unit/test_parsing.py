"""C++-compatible value parsers (reference §0, §2.3, §4.0)."""

from __future__ import annotations

import pytest

from oomd import parsing as p


@pytest.mark.parametrize("text, value", [("10abc", 10), ("1.9", 1), ("60.5", 60), (" \t+7", 7), ("-3", -3),
                                         ("2147483647", 2**31 - 1)])
def test_int_parse_reads_leading_digits(text, value):
    assert p.int_parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", ".5", "+-1", "2147483648", "- 1"])
def test_int_parse_fails_without_digits_or_out_of_int32(text):
    with pytest.raises(ValueError):
        p.int_parse(text)


def test_uint64_parse_wraps_negative_values_into_int64():
    assert p.uint64_parse("-1") == -1
    assert p.uint64_parse("18446744073709551615") == -1
    assert p.uint64_parse("9223372036854775807") == 2**63 - 1
    with pytest.raises(ValueError):
        p.uint64_parse("18446744073709551616")


def test_non_negative_int_rejects_negatives():
    assert p.non_negative_int("0") == 0
    with pytest.raises(ValueError):
        p.non_negative_int("-1")


@pytest.mark.parametrize("text, value", [("30", 30.0), ("0.5", 0.5), ("1e-3", 0.001)])
def test_positive_seconds_accepts_positive_numbers(text, value):
    assert p.positive_seconds(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "inf", "nan", "x"])
def test_positive_seconds_rejects_the_rest(text):
    with pytest.raises(ValueError):
        p.positive_seconds(text)


@pytest.mark.parametrize("text, value", [("1.25", 1.25), ("1e3x", 1000.0), ("0x10", 16.0), ("0x1p3", 8.0),
                                         (" -2.5", -2.5), (".5", 0.5), ("5.", 5.0)])
def test_double_parse_is_strtod_like(text, value):
    assert p.double_parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1e999"])
def test_double_parse_fails(text):
    with pytest.raises(ValueError):
        p.double_parse(text)


def test_float_parse_rejects_values_beyond_float32():
    assert p.float_parse("0.85") == 0.85
    with pytest.raises(ValueError):
        p.float_parse("1e39")


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True),
                                         ("false", False), ("False", False), ("0", False)])
def test_bool_parse_accepts_exactly_six_spellings(text, value):
    assert p.bool_parse(text) is value


@pytest.mark.parametrize("text", ["TRUE", "yes", "1.0", "", "on"])
def test_bool_parse_rejects_everything_else(text):
    with pytest.raises(ValueError):
        p.bool_parse(text)


@pytest.mark.parametrize("text, value", [("1.5M 32K 512", 1606144), ("8K", 8192), ("", 0), ("1G", 1 << 30),
                                         ("2t", 2 << 40), ("-1k", -1024), ("+5", 5), ("1.5m", 1572864),
                                         ("1e1k", 10240)])
def test_parse_size(text, value):
    assert p.parse_size(text) == value


@pytest.mark.parametrize("text", ["1.5MK", "+-123M", "1kb", "k", "-1-k", "inf", "nan"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        p.parse_size(text)


@pytest.mark.parametrize("text, total, value", [
    ("10%", 1000, 100), ("10abc%", 1005, 100), ("0%", 5, 0), ("100%", 7, 7),
    ("5", 0, 5 << 20), ("-2", 0, -(2 << 20)), ("1.5G", 0, 1610612736), ("512K", 0, 524288),
])
def test_size_or_percent(text, total, value):
    assert p.parse_size_or_percent(text, total) == value


@pytest.mark.parametrize("text", ["101%", "-1%", ".5G", "abc", "", "%"])
def test_size_or_percent_rejects(text):
    with pytest.raises(ValueError):
        p.parse_size_or_percent(text, 1000)


def test_resource_is_io_or_memory():
    assert p.resource("io") == "io" and p.resource("memory") == "memory"
    with pytest.raises(ValueError):
        p.resource("cpu")


def test_cgroup_patterns_never_fail_and_follow_reference_section_3():
    pats = p.cgroup_patterns("a, b,,/,////,a,x//y/")
    assert pats.patterns == (("a",), (" b",), (), ("x", "y"))
    assert p.cgroup_patterns("").patterns == ()


@pytest.mark.parametrize("text", ["1e-40", "1e-300", "0x1p-200", "1e39"])
def test_float_parse_rejects_what_stof_reports_as_out_of_range(text):
    with pytest.raises(ValueError, match="out of range for a float"):
        p.float_parse(text)


def test_double_parse_rejects_underflow_but_keeps_small_normal_values():
    assert p.double_parse("1e-300") == 1e-300
    with pytest.raises(ValueError, match="out of range for a double"):
        p.double_parse("1e-320")


@pytest.mark.parametrize("text", ["0", "0.0", "0e9", "0x0p0", "0 trailing 1", "-0"])
def test_zero_is_not_an_underflow(text):
    assert p.float_parse(text) == 0.0 and p.double_parse(text) == 0.0
