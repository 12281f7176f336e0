"""oomd.logs: tagged lines, the writer thread, and blocks formatted by the writer."""

from __future__ import annotations

import io
import threading

import pytest

from oomd import logs


def _into_buffer(inline: bool):
    """Logging into a buffer (threaded or inline); the test default, inline, again after."""
    out = io.StringIO()
    logs.setup(inline=inline, stream=out)
    yield out
    logs.setup(inline=True)


@pytest.fixture
def threaded():
    yield from _into_buffer(inline=False)


@pytest.fixture
def inline():
    yield from _into_buffer(inline=True)


def bodies(text: str) -> list[str]:
    return logs.messages(text.splitlines())


def test_a_block_keeps_its_place_among_single_lines_and_is_formatted_by_the_writer(threaded):
    rendered_in = []

    def render():
        rendered_in.append(threading.current_thread().name)
        return ["first of block", "second of block"]

    logs.log("before")
    logs.log_block(render)
    logs.log("after")
    logs.flush()
    assert bodies(threaded.getvalue()) == ["before", "first of block", "second of block", "after"]
    assert rendered_in == ["oomd-log"]


def test_inline_a_block_is_formatted_at_once_and_every_line_carries_the_callers_tag(inline):
    logs.log_block(lambda: ["a", "b"])
    lines = inline.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("[test_logs.py:") for line in lines)
    assert lines[0].split("] ")[0] == lines[1].split("] ")[0]
    assert bodies(inline.getvalue()) == ["a", "b"]


def test_a_block_that_cannot_be_formatted_becomes_one_line_and_the_writer_goes_on(threaded):
    def broken():
        yield "partial"
        raise ValueError("bad value")

    logs.log_block(broken)
    logs.log("still writing")
    logs.flush()
    assert bodies(threaded.getvalue()) == [
        "(could not format these lines: ValueError('bad value'))", "still writing"]


def test_silenced_plugins_blocks_are_dropped_without_formatting(inline):
    called = []
    with logs.plugin_logs_silenced():
        logs.log_block(lambda: called.append(1) or ["x"])
    assert called == [] and inline.getvalue() == ""


def test_captured_blocks_reach_the_capture_line_by_line_even_when_threaded(threaded):
    with logs.capture() as lines:
        logs.log_block(lambda: ["one", "two"])
    assert logs.messages(lines) == ["one", "two"]


def test_journal_priority_prefixes_every_line_of_a_block():
    out = io.StringIO()
    logs.setup(inline=True, stream=out, journal=True)
    try:
        logs.log_block(lambda: ["x", "y"], logs.WARNING)
    finally:
        logs.setup(inline=True)
    assert [line[:3] for line in out.getvalue().splitlines()] == ["<4>", "<4>"]
    assert bodies(out.getvalue()) == ["x", "y"]
