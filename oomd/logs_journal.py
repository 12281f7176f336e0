"""journald priority prefixes for log lines written to stderr.

When systemd connects a service's stderr to the journal it sets ``$JOURNAL_STREAM`` to
``<st_dev>:<st_ino>`` of that stream. A line that starts with ``<N>`` (N = syslog priority,
sd-daemon(3)) is then stored with that priority and the prefix is stripped, so
``journalctl -p err -u pyoomd`` finds errors. On a terminal or a file the lines stay bare.

``stderr_is_journal()`` does the detection (sd_journal_stream_fd's documented rule: compare
device and inode, because a child may inherit the variable but not the stream): the daemon
passes it to ``oomd.logs.setup(journal=...)``. ``journal_prefix(priority)`` formats a syslog
priority; ``syslog_priority(levelno)`` and ``JournalFormatter`` do the same for :mod:`logging`
records; ``stderr_log`` is the default sink of the operator-facing modules (stats socket,
sd_notify, drop-in watcher, protection), which all take ``log(msg, priority)`` callables with
syslog priorities, the signature of ``oomd.logs.log``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping

from oomd.names import printable

# sd-daemon.h
SD_EMERG, SD_ALERT, SD_CRIT, SD_ERR, SD_WARNING, SD_NOTICE, SD_INFO, SD_DEBUG = range(8)


def stderr_is_journal(fd: int = 2, environ: Mapping[str, str] | None = None) -> bool:
    """True if ``fd`` is the stream ``$JOURNAL_STREAM`` names (same device and inode)."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        want = (int(dev), int(ino))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == want


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a :mod:`logging` level number."""
    if levelno >= logging.CRITICAL:
        return SD_CRIT
    if levelno >= logging.ERROR:
        return SD_ERR
    if levelno >= logging.WARNING:
        return SD_WARNING
    if levelno >= logging.INFO:
        return SD_INFO
    return SD_DEBUG


def journal_prefix(priority: int) -> str:
    """``<N>`` for a syslog priority (``SD_ERR`` = 3, ``SD_INFO`` = 6...)."""
    return f"<{priority}>"


def prefix_lines(text: str, priority: int) -> str:
    """Prefix every line: journald splits a multi-line write into entries, one per line."""
    p = journal_prefix(priority)
    return "\n".join(p + line for line in text.split("\n"))


class JournalFormatter(logging.Formatter):
    """A Formatter that adds ``<N>`` prefixes when ``enabled`` (default: detect on fd 2)."""

    def __init__(self, *args, enabled: bool | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.enabled = stderr_is_journal() if enabled is None else enabled

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return prefix_lines(text, syslog_priority(record.levelno)) if self.enabled else text


_journal: bool | None = None


def stderr_log(msg: str, priority: int = SD_INFO) -> None:
    """Write one log line to stderr, with a priority prefix when stderr is the journal; each
    line printable (``oomd.names.printable``)."""
    global _journal
    if _journal is None:
        _journal = stderr_is_journal()
    msg = "\n".join(printable(part) for part in msg.split("\n"))
    line = prefix_lines(msg, priority) if _journal else msg
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        # stderr closed or broken: a log line is never worth stopping the daemon for.
        pass
