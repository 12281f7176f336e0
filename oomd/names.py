"""How a cgroup name is written out: one rule for every output (docs/compat.md).

A cgroup name is whatever bytes the owner of its parent chose: any byte but ``/`` (and ``\\n``
on a real cgroupfs). pyoomd holds names as ``os.fsdecode`` text, a ``str`` that gives the
exact bytes back with ``os.fsencode`` (bytes that are not UTF-8 become lone surrogates), and
uses those bytes for every system call (``openat``, ``setxattr``, the prekill hook's
environment). Anything written for people or parsers goes through ``shown``:

* a character that is not printable (``str.isprintable``: control characters such as ESC, CR,
  TAB and newline, DEL and the C1 controls, format characters such as bidi overrides, line and
  paragraph separators, unusual spaces), and the space itself, is written as ``\\xNN`` per byte
  of its UTF-8 encoding;
* a byte that is not part of valid UTF-8 is written as ``\\xNN``;
* everything else, backslash included, is written as it is.

This is systemd's escaping of unit names (``\\x20`` for a space, ``\\x2d`` for ``-``): real names
such as ``system-systemd\\x2dcryptsetup.slice`` already contain such text and are unchanged, and
a rendered name is one field without spaces, so a kill record or a log line always splits into
the fields it was meant to have. The rendering is one-way (a literal ``\\x20`` in a name looks
like an escaped space, as in systemd); code that must find the cgroup again keeps the name.

``printable`` applies the same rule to a whole line of text, spaces kept: the log writer and the
kill-record file run every line through it, so nothing that reaches them (an exception's text,
a ruleset name) can carry a control character or a byte that is not UTF-8.
"""

from __future__ import annotations

import os

__all__ = ["shown", "printable", "as_bytes"]

_LO, _HI = 0xDC80, 0xDCFF   # os.fsdecode's surrogates for the bytes 0x80..0xFF


def as_bytes(name: str | bytes) -> bytes:
    """The bytes of a name held as ``os.fsdecode`` text (or already bytes). Never raises: a
    surrogate that ``fsdecode`` cannot have produced is kept as its UTF-8-like encoding."""
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name)
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:
        out = bytearray()
        for ch in name:
            o = ord(ch)
            out += bytes((o - 0xDC00,)) if _LO <= o <= _HI else ch.encode("utf-8", "surrogatepass")
        return bytes(out)


def _escape(raw: bytes, keep_space: bool) -> str:
    text = raw.decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        o = ord(ch)
        if _LO <= o <= _HI:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == " ":
            out.append(" " if keep_space else "\\x20")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def shown(name: str | bytes) -> str:
    """A cgroup name or path for any output (log line, kill record, JSON, metrics label):
    non-printable characters, space and bytes that are not UTF-8 as ``\\xNN`` (module doc).
    Never raises."""
    if isinstance(name, str) and name.isprintable() and " " not in name:
        return name   # the common case: nothing to escape (no surrogate is printable)
    return _escape(as_bytes(name), keep_space=False)


def printable(text: str) -> str:
    """A line of output with ``shown``'s escapes except for spaces. Never raises."""
    if text.isprintable():
        return text
    return _escape(as_bytes(text), keep_space=True)
