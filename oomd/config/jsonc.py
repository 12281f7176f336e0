"""JSON in the dialect oomd's jsoncpp reader accepts (reference §2.1).

Differences from ``json``: ``//`` and ``/* */`` comments, trailing commas in arrays and objects,
anything after the top-level value is ignored, control characters inside strings are kept.
Duplicate keys: the last one wins. Integers that do not fit 64 bits become floats, as jsoncpp
turns them into reals; a number beyond the range of a double is a syntax error, as in jsoncpp.
A syntax error raises ``JsoncError`` with the JSON path of the value being read and the line
and column. Arrays and objects nest at most ``MAX_DEPTH`` deep (jsoncpp's limit is 1000; ours
keeps the recursive reader inside Python's default recursion limit). Unpaired UTF-16
surrogates (``"\\ud800"``) are rejected: they are no character, and plugins that pass a value
to the OS could not encode them.
"""

from __future__ import annotations

import math
import re

INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_DEPTH = 256
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsoncError(ValueError):
    def __init__(self, json_path: str, reason: str) -> None:
        self.json_path = json_path
        self.reason = reason
        super().__init__(f"{json_path}: {reason}")


def key_path(parent: str, key: str) -> str:
    """``$.a`` for identifier-like keys, ``$["drop-in"]`` otherwise."""
    if _IDENT.match(key):
        return f"{parent}.{key}"
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{parent}["{escaped}"]'


def index_path(parent: str, index: int) -> str:
    return f"{parent}[{index}]"


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.depth = 0

    def where(self) -> str:
        line = self.s.count("\n", 0, self.i) + 1
        col = self.i - (self.s.rfind("\n", 0, self.i) + 1) + 1
        return f"line {line}, column {col}"

    def fail(self, path: str, what: str):
        raise JsoncError(path, f"invalid JSON: {what} at {self.where()}")

    def skip(self, path: str) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            ch = s[self.i]
            if ch in " \t\r\n":
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    self.fail(path, "unterminated comment")
                self.i = end + 2
            else:
                return

    def value(self, path: str):
        self.skip(path)
        if self.i >= len(self.s):
            self.fail(path, "unexpected end of input, expected a value")
        ch = self.s[self.i]
        if ch in "{[":
            if self.depth >= MAX_DEPTH:
                self.fail(path, f"arrays and objects nested deeper than {MAX_DEPTH} levels")
            self.depth += 1
            value = self.obj(path) if ch == "{" else self.arr(path)
            self.depth -= 1
            return value
        if ch == '"':
            return self.string(path)
        if ch == "-" or ch.isdigit():
            return self.number(path)
        for word, val in (("true", True), ("false", False), ("null", None)):
            if self.s.startswith(word, self.i):
                self.i += len(word)
                return val
        self.fail(path, f"unexpected character {ch!r}")

    def obj(self, path: str) -> dict:
        self.i += 1
        out: dict = {}
        while True:
            self.skip(path)
            if self.i < len(self.s) and self.s[self.i] == "}":
                self.i += 1
                return out
            if self.i >= len(self.s) or self.s[self.i] != '"':
                self.fail(path, "expected a string key or '}'")
            key = self.string(path)
            self.skip(path)
            if self.i >= len(self.s) or self.s[self.i] != ":":
                self.fail(key_path(path, key), "expected ':' after the key")
            self.i += 1
            out.pop(key, None)  # last duplicate wins
            out[key] = self.value(key_path(path, key))
            self.skip(path)
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1
                continue
            if self.i < len(self.s) and self.s[self.i] == "}":
                self.i += 1
                return out
            self.fail(path, "expected ',' or '}'")

    def arr(self, path: str) -> list:
        self.i += 1
        out: list = []
        while True:
            self.skip(path)
            if self.i < len(self.s) and self.s[self.i] == "]":
                self.i += 1
                return out
            out.append(self.value(index_path(path, len(out))))
            self.skip(path)
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1
                continue
            if self.i < len(self.s) and self.s[self.i] == "]":
                self.i += 1
                return out
            self.fail(path, "expected ',' or ']'")

    def string(self, path: str) -> str:
        s, n = self.s, len(self.s)
        self.i += 1
        parts = []
        start = self.i
        while True:
            if self.i >= n:
                self.fail(path, "unterminated string")
            ch = s[self.i]
            if ch == '"':
                parts.append(s[start:self.i])
                self.i += 1
                return "".join(parts)
            if ch == "\\":
                parts.append(s[start:self.i])
                esc = s[self.i + 1 : self.i + 2]
                if esc in _ESCAPES:
                    parts.append(_ESCAPES[esc])
                    self.i += 2
                elif esc == "u":
                    parts.append(self.unicode_escape(path))
                else:
                    self.fail(path, f"bad escape \\{esc}")
                start = self.i
            else:
                self.i += 1

    def unicode_escape(self, path: str) -> str:
        def four(at: int) -> int:
            digits = self.s[at : at + 4]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.fail(path, "bad \\u escape")
            return int(digits, 16)

        start = self.i
        code = four(self.i + 2)
        self.i += 6
        if 0xD800 <= code < 0xDC00 and self.s.startswith("\\u", self.i):
            low = four(self.i + 2)
            if 0xDC00 <= low < 0xE000:
                self.i += 6
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        if 0xD800 <= code < 0xE000:
            self.i = start
            self.fail(path, f"lone surrogate \\u{code:04x} (no character; not valid in UTF-8)")
        return chr(code)

    def number(self, path: str):
        m = _NUMBER.match(self.s, self.i)
        if not m:
            self.fail(path, "bad number")
        self.i = m.end()
        text = m.group(0)
        if m.group(1) is None and m.group(2) is None and len(text) <= 21:
            value = int(text)
            if INT64_MIN <= value <= UINT64_MAX:
                return value
        real = float(text)
        if math.isinf(real):
            self.i = m.start()
            self.fail(path, f"'{text}' is not a number")  # jsoncpp: beyond a double
        return real


def loads(text: str):
    """Parse ``text``; raises ``JsoncError`` (path ``$`` for the top level)."""
    p = _Parser(text)
    m = _SURROGATE.search(text)
    if m:  # only reachable through the API: a UTF-8 file cannot hold one
        p.i = m.start()
        p.fail("$", "lone surrogate character (not valid in UTF-8)")
    p.skip("$")
    if p.i >= len(p.s):
        raise JsoncError("$", "invalid JSON: the document is empty")
    return p.value("$")
