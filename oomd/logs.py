"""Logging that never blocks the tick (oomd's ``OLOG``, reference §0).

``log(msg)`` tags the line with the caller's file and line, ``[engine.py:120] msg``, like oomd's
``[Ruleset.cpp:120]``, and hands it to a writer thread through a queue: a write to stderr can
stall for seconds on a host under memory pressure, and the loop must not wait for it. With
``INLINE_LOGGING`` set in the environment, or after ``setup(inline=True)`` (tests), lines are
written synchronously.

``log_block(render)`` logs many lines under one tag (a kill plugin's candidate dump: six lines
per candidate, 60,000 at 10,000 candidates). The caller gathers the values; the writer thread
calls ``render`` to format them and writes the block at once, so the tick, and the kill that
follows the dump, does not wait for the formatting. The queue keeps every line in order.

The engine wraps a silenced plugin's ``run`` in ``plugin_logs_silenced()``; silencing is per
thread, so lines from other threads (drop-in watcher, stats server) still appear.

Every line is one line of printable text: ``oomd.names.printable`` escapes control characters
(newlines included) and bytes that are not UTF-8 as ``\\xNN``, whatever the message carries
(an exception's text, a path). Cgroup names in messages are rendered by ``oomd.names.shown``
where the message is built (that also escapes spaces, so a name stays one field).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from typing import Callable, Iterable, Iterator, TextIO

from oomd.names import printable

# syslog priorities, used for journald's "<N>" prefixes
ERR, WARNING, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7

_state = threading.local()
_lock = threading.Lock()
_queue: queue.SimpleQueue | None = None
_writer: threading.Thread | None = None
_stream: TextIO | None = None
_inline = True
_journal_prefix = False
_sinks: list[Callable[[str], None]] = []


def _silenced() -> bool:
    return getattr(_state, "silenced", 0) > 0


@contextlib.contextmanager
def plugin_logs_silenced(enabled: bool = True):
    """Drop this thread's log lines while the block runs (``silence-logs: plugins``)."""
    if not enabled:
        yield
        return
    _state.silenced = getattr(_state, "silenced", 0) + 1
    try:
        yield
    finally:
        _state.silenced -= 1


def _caller_tag(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def log(msg: str, level: int = INFO, *, depth: int = 1, force: bool = False) -> None:
    """Log one line. ``force`` bypasses plugin silencing (kill records, like oomd's kmsg copy)."""
    if _silenced() and not force:
        return
    line = f"[{_caller_tag(depth)}] {printable(msg)}"
    if _journal_prefix:
        line = f"<{level}>{line}"
    for sink in _sinks:
        sink(line)
    if _inline or _queue is None:
        _write(line)
    else:
        _queue.put(line)


class _Block:
    """Lines yet to be formatted: ``render()`` returns them, each gets ``head`` in front."""

    __slots__ = ("render", "head")

    def __init__(self, render: Callable[[], Iterable[str]], head: str) -> None:
        self.render = render
        self.head = head

    def lines(self) -> list[str]:
        return [line for chunk in self.chunks() for line in chunk]

    def chunks(self, size: int = 256) -> Iterator[list[str]]:
        """The lines a few hundred at a time: a candidate dump of 10,000 cgroups is 60,000
        lines, which the writer should not hold all at once (peak RSS)."""
        head = self.head
        buf: list[str] = []
        try:
            for msg in self.render():
                buf.append(head + printable(msg))
                if len(buf) >= size:
                    yield buf
                    buf = []
        except Exception as e:  # noqa: BLE001 - a formatting bug must not kill the writer
            buf = [f"{head}(could not format these lines: {e!r})"]  # for the unwritten ones
        if buf:
            yield buf


def log_block(render: Callable[[], Iterable[str]], level: int = INFO, *, depth: int = 1) -> None:
    """Log every line ``render()`` returns, in order, under the caller's tag. ``render`` must
    only use values it owns (copies, not live context state): with the writer thread it runs
    later, there. Inline, or while lines are captured, it runs now."""
    if _silenced():
        return
    head = f"[{_caller_tag(depth)}] "
    if _journal_prefix:
        head = f"<{level}>{head}"
    block = _Block(render, head)
    if _inline or _queue is None or _sinks:
        for lines in block.chunks():
            for sink in _sinks:
                for line in lines:
                    sink(line)
            _write_block(lines)
    else:
        _queue.put(block)


def _write_block(lines: list[str]) -> None:
    if lines:
        _write("\n".join(lines))


def _write(line: str) -> None:
    stream = _stream or sys.stderr
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def setup(*, inline: bool | None = None, stream: TextIO | None = None,
          journal: bool = False) -> None:
    """Choose inline or threaded writing. ``inline=None`` follows ``$INLINE_LOGGING``."""
    global _inline, _queue, _writer, _stream, _journal_prefix
    shutdown()
    _stream = stream
    _journal_prefix = journal
    _inline = bool(os.environ.get("INLINE_LOGGING")) if inline is None else inline
    if not _inline:
        _queue = queue.SimpleQueue()
        _writer = threading.Thread(target=_writer_loop, args=(_queue,), name="oomd-log",
                                   daemon=True)
        _writer.start()


def flush(timeout: float = 2.0) -> None:
    """Wait until the writer thread has written what was queued (at exit, in tests)."""
    if _queue is None or _writer is None:
        return
    done = threading.Event()
    marker = _Marker(done)
    _queue.put(marker)
    done.wait(timeout)


class _Marker(str):
    """A queue item that signals instead of being written."""

    def __new__(cls, event: threading.Event):
        obj = super().__new__(cls, "")
        obj.event = event
        return obj


def _writer_loop(q: queue.SimpleQueue) -> None:
    while True:
        line = q.get()
        if line is None:
            return
        if isinstance(line, _Marker):
            line.event.set()
            continue
        if isinstance(line, _Block):
            for lines in line.chunks():
                _write_block(lines)
            continue
        _write(line)


def shutdown() -> None:
    global _queue, _writer
    with _lock:
        if _queue is not None and _writer is not None:
            _queue.put(None)
            _writer.join(timeout=2.0)
        _queue, _writer = None, None


@contextlib.contextmanager
def capture():
    """Collect every line logged while the block runs (tests): ``with capture() as lines:``."""
    lines: list[str] = []
    _sinks.append(lines.append)
    try:
        yield lines
    finally:
        _sinks.remove(lines.append)


def messages(lines: list[str]) -> list[str]:
    """Strip the ``[file:line] `` tag (and any journald prefix) from captured lines."""
    out = []
    for line in lines:
        if line.startswith("<") and ">" in line[:4]:
            line = line[line.index(">") + 1 :]
        out.append(line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line)
    return out
