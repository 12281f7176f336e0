"""oomd.names: the one rendering of a cgroup name for output (docs/compat.md)."""

from __future__ import annotations

import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from oomd.names import as_bytes, printable, shown

# what a rendered name may contain: printable text, no space, and \xNN escapes
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


def unescape(text: str) -> bytes:
    """The bytes a rendered name stands for (a literal ``\\xNN`` in a name reads the same)."""
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode()
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode()
    return bytes(out)


def test_real_names_are_unchanged():
    for name in ("system.slice", "user@1000.service", r"system-systemd\x2dcryptsetup.slice",
                 "app-gnome-org.gnome.Terminal-1234.scope", "caf\u00e9.service", "\u6f22\u5b57",
                 "a\\b", "..", "-", "[x]*?{y}"):
        assert shown(name) == name


def test_bytes_that_are_not_utf8_are_escaped():
    assert shown(os.fsdecode(b"bad\xff\xfe.service")) == r"bad\xff\xfe.service"
    assert shown(b"bad\xff\xfe.service") == r"bad\xff\xfe.service"
    # a truncated sequence and an encoded surrogate are not UTF-8 either
    assert shown(b"a\xc3") == r"a\xc3"
    assert shown(b"\xed\xa0\x80") == r"\xed\xa0\x80"


def test_control_characters_and_spaces_are_escaped():
    assert shown("esc\x1b[31mred\r\t\n") == r"esc\x1b[31mred\x0d\x09\x0a"
    assert shown("a b ruleset:[forged] v2") == r"a\x20b\x20ruleset:[forged]\x20v2"
    assert shown(".. ") == r"..\x20"
    assert shown("\x7f\x00") == r"\x7f\x00"


def test_unicode_controls_separators_and_format_characters_are_escaped():
    # C1 CSI, line separator, right-to-left override, ideographic space, no-break space
    assert shown("a\u009bb") == r"a\xc2\x9bb"
    assert shown("a\u2028b") == r"a\xe2\x80\xa8b"
    assert shown("a\u202eb") == r"a\xe2\x80\xaeb"
    assert shown("a\u3000b") == r"a\xe3\x80\x80b"
    assert shown("a\u00a0b") == r"a\xc2\xa0b"


def test_printable_keeps_spaces_and_escapes_the_rest():
    assert printable("Picked a b") == "Picked a b"
    assert printable("x " + os.fsdecode(b"\xff") + "\r\n") == r"x \xff\x0d\x0a"


def test_a_lone_surrogate_fsdecode_cannot_make_never_raises():
    assert shown("\ud800x") == r"\xed\xa0\x80x"
    assert as_bytes("\ud800\udcff") == b"\xed\xa0\x80\xff"


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=1, max_size=255).filter(lambda b: b"/" not in b))
def test_any_name_renders_as_one_printable_field_that_stands_for_its_bytes(raw):
    text = shown(os.fsdecode(raw))
    assert text == shown(raw)
    assert text.isprintable() and " " not in text
    text.encode("utf-8")                  # never a surrogate: encodes strictly
    assert len(text.split()) == 1
    if b"\\x" not in raw:                 # a literal "\xNN" in a name reads as an escape
        assert unescape(text) == raw


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_becomes_one_printable_line(text):
    line = printable(text)
    assert line.isprintable()
    assert len(line.splitlines()) <= 1
    line.encode("utf-8")
