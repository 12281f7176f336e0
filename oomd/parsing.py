"""Value parsers with the semantics of the C++ helpers oomd uses (reference §0, §2.3, §4.0).

Every parser takes the argument text and returns the value or raises ``ValueError`` with a short
reason. The C library's quirks are kept where they change which configs are accepted (trailing
garbage after an integer is ignored, ``"1.9"`` reads as 1); where oomd would crash instead, we
raise.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from oomd.cgpath import CgroupPatterns, parse_relative

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_WS = " \t\n\v\f\r"

_INT_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
_FLOAT_PREFIX = re.compile(
    r"[ \t\n\v\f\r]*([+-]?)("
    r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?"
    r")",
    re.IGNORECASE,
)


def _int_prefix(text: str, what: str) -> tuple[int, int]:
    """strtol-like: (value, characters consumed). Raises when no digit is found."""
    m = _INT_PREFIX.match(text)
    if not m:
        raise ValueError(f"{text!r} is not {what}")
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > 20:  # beyond any 64-bit value; int() would refuse more than 4300 digits
        raise ValueError(f"{text!r} is out of range")
    value = int(digits)
    return (-value if m.group(1) == "-" else value), m.end()


def int_parse(text: str) -> int:
    """``std::stoi``: leading digits (trailing garbage ignored), int32 range."""
    value, _ = _int_prefix(text, "an integer")
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{text!r} is out of range for an int")
    return value


def int64_parse(text: str) -> int:
    """``std::stoll``: leading digits, int64 range."""
    value, _ = _int_prefix(text, "an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{text!r} is out of range for an int64")
    return value


def uint64_parse(text: str) -> int:
    """``std::stoull`` stored in an int64: a leading ``-`` wraps modulo 2^64."""
    m = _INT_PREFIX.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an integer")
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > 20:
        raise ValueError(f"{text!r} is out of range for a uint64")
    magnitude = int(digits)
    if magnitude > (1 << 64) - 1:
        raise ValueError(f"{text!r} is out of range for a uint64")
    value = (-magnitude if m.group(1) == "-" else magnitude) & ((1 << 64) - 1)
    return value - (1 << 64) if value > INT64_MAX else value


def non_negative_int(text: str) -> int:
    value = int_parse(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _float_prefix(text: str) -> tuple[float, str]:
    """The value of the leading number and its text (without sign)."""
    m = _FLOAT_PREFIX.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a number")
    body = m.group(2)
    if body[:2].lower() == "0x":
        try:
            value = float.fromhex(body if "p" in body.lower() else body + "p0")
        except OverflowError:
            raise ValueError(f"{text!r} is out of range for a double") from None
    else:
        value = float(body)
    return (-value if m.group(1) == "-" else value), body


FLT_MAX, FLT_MIN, DBL_MIN = 3.4028234663852886e38, 1.1754943508222875e-38, 2.2250738585072014e-308


def _out_of_range(value: float, body: str, largest: float, smallest: float) -> bool:
    """strtod/strtof report ERANGE, so stod/stof throw, on overflow and on underflow (a
    number that is not zero but below the smallest normal value)."""
    if math.isnan(value) or body[:1] in "iI":
        return False
    if abs(value) > largest:
        return True
    if value != 0:
        return abs(value) < smallest
    mantissa = re.split(r"[eEpP]", body[2:] if body[:2].lower() == "0x" else body)[0]
    return bool(re.search(r"[1-9a-fA-F]", mantissa))


def double_parse(text: str) -> float:
    """``std::stod``: a leading decimal/hex float, ``inf`` or ``nan``; trailing garbage ignored."""
    value, body = _float_prefix(text)
    if _out_of_range(value, body, 1.7976931348623157e308, DBL_MIN):
        raise ValueError(f"{text!r} is out of range for a double")
    return value


def float_parse(text: str) -> float:
    """``std::stof``: as ``double_parse`` but the value must fit a float32."""
    value, body = _float_prefix(text)
    if _out_of_range(value, body, FLT_MAX, FLT_MIN):
        raise ValueError(f"{text!r} is out of range for a float")
    return value


def positive_seconds(text: str) -> float:
    """A duration in seconds: a number (``double_parse``) above 0 and finite."""
    value = double_parse(text)
    if not 0 < value < float("inf"):
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def bool_parse(text: str) -> bool:
    """Exactly ``true``/``True``/``1`` or ``false``/``False``/``0``."""
    if text in ("true", "True", "1"):
        return True
    if text in ("false", "False", "0"):
        return False
    raise ValueError(f"{text!r} is not a bool (true/True/1/false/False/0)")


def milliseconds(text: str) -> int:
    return int64_parse(text)


def resource(text: str) -> str:
    if text not in ("io", "memory"):
        raise ValueError(f"{text!r} is not a resource (io or memory)")
    return text


def cgroup_patterns(text: str) -> CgroupPatterns:
    """Never fails (reference §3)."""
    return CgroupPatterns.parse(text)


def ruleset_cgroup_patterns(text: str) -> CgroupPatterns:
    """``ruleset_cgroup`` (oomd HEAD): patterns relative to the ruleset cgroup; ``.`` and
    ``..`` components are refused."""
    return parse_relative(text)


XATTR_NAMESPACES = ("user.", "trusted.", "security.", "system.")
XATTR_NAME_MAX = 255


def xattr_name(text: str) -> str:
    """An extended attribute name the kernel can look up: a namespace prefix (``user.``,
    ``trusted.``, ``security.``, ``system.``) and a non-empty name, at most 255 bytes, no NUL.
    Anything else makes every lookup fail (``EOPNOTSUPP``, ``ERANGE``...)."""
    raw = text.encode("utf-8", "surrogateescape")
    if not raw:
        raise ValueError("an xattr name is empty")
    if b"\0" in raw:
        raise ValueError(f"xattr name {text!r} contains a NUL byte")
    if len(raw) > XATTR_NAME_MAX:
        raise ValueError(f"xattr name {text[:40]!r}... is {len(raw)} bytes long, "
                         f"more than {XATTR_NAME_MAX}")
    for ns in XATTR_NAMESPACES:
        if text.startswith(ns):
            if len(text) == len(ns):
                raise ValueError(f"xattr name {text!r} has no name after its namespace")
            return text
    raise ValueError(f"xattr name {text!r} has no namespace prefix "
                     f"({', '.join(XATTR_NAMESPACES)}): the kernel would never find it")


_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# One term of a size as std::stold must consume it whole (ASCII digits only; inf/nan rejected).
_SIZE_TERM = re.compile(
    r"[+-]?(?:0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)\Z"
)
_LDBL_MAX_10_EXP = 4932  # x86 long double; beyond it std::stold throws out_of_range


def parse_size(text: str) -> int:
    """oomd's ``parseSize``: ``"1.5M 32K 512"`` = 1606144, ``""`` = 0 (reference §4.0)."""
    s = "".join(ch for ch in text.lower() if ch not in _WS)
    negative = False
    pos = 0
    if s[:1] == "+":
        pos = 1
    elif s[:1] == "-":
        negative, pos = True, 1
    total = 0
    while pos < len(s):
        unit_pos = min((i for i in (s.find(u, pos) for u in _UNITS) if i >= 0), default=len(s))
        if unit_pos == pos:
            raise ValueError(f"{text!r} is not a size")
        term = s[pos:unit_pos]
        if not _SIZE_TERM.match(term):
            raise ValueError(f"{text!r} is not a size")
        try:
            number = Decimal(term) if "x" not in term else Decimal(float.fromhex(term))
        except (InvalidOperation, ValueError):
            raise ValueError(f"{text!r} is not a size") from None
        except OverflowError:
            raise ValueError(f"{text!r} is out of range for a size") from None
        if number < 0:
            raise ValueError(f"{text!r} is not a size")
        if number and abs(number.adjusted()) > _LDBL_MAX_10_EXP:
            raise ValueError(f"{text!r} is out of range for a size")  # stold: out_of_range
        unit = s[unit_pos] if unit_pos < len(s) else ""
        total = (total + int(number * _UNITS.get(unit, 1))) & ((1 << 64) - 1)
        pos = unit_pos + 1
    value = (-total if negative else total) & ((1 << 64) - 1)
    return value - (1 << 64) if value > INT64_MAX else value


def parse_size_or_percent(text: str, total: int) -> int:
    """``N%`` of ``total``; a bare integer is MiB; otherwise a size (reference §4.0)."""
    if text.endswith("%"):
        pct = int_parse(text[:-1])
        if not 0 <= pct <= 100:
            raise ValueError(f"{text!r}: percentage must be within 0..100")
        product = total * pct
        return product // 100 if product >= 0 else -(-product // 100)  # C truncation
    value, consumed = _int_prefix(text, "a size")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{text!r} is out of range")
    if consumed == len(text):
        shifted = (value << 20) & ((1 << 64) - 1)
        return shifted - (1 << 64) if shifted > INT64_MAX else shifted
    return parse_size(text)
