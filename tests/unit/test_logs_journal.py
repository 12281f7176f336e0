"""journald stream detection and priority prefixes."""

from __future__ import annotations

import logging
import os

import pytest

from oomd.logs_journal import (
    SD_ERR,
    SD_INFO,
    JournalFormatter,
    journal_prefix,
    prefix_lines,
    stderr_is_journal,
    syslog_priority,
)


@pytest.fixture
def stream_fd(tmp_path):
    fd = os.open(tmp_path / "stream", os.O_WRONLY | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def test_fd_named_by_journal_stream_is_the_journal(stream_fd):
    st = os.fstat(stream_fd)
    assert stderr_is_journal(stream_fd, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})


def test_inherited_variable_for_another_stream_is_not_the_journal(stream_fd, tmp_path):
    other = os.stat(tmp_path)
    assert not stderr_is_journal(stream_fd, {"JOURNAL_STREAM": f"{other.st_dev}:{other.st_ino}"})


@pytest.mark.parametrize("value", ["", "garbage", "1:", ":2", "a:b"])
def test_malformed_or_missing_variable_is_not_the_journal(stream_fd, value):
    assert not stderr_is_journal(stream_fd, {"JOURNAL_STREAM": value})
    assert not stderr_is_journal(stream_fd, {})


@pytest.mark.parametrize(("level", "prio"), [(logging.CRITICAL, 2), (logging.ERROR, 3),
                                             (logging.WARNING, 4), (logging.INFO, 6),
                                             (logging.DEBUG, 7)])
def test_logging_levels_map_to_syslog_priorities(level, prio):
    assert syslog_priority(level) == prio


def test_every_line_of_a_multiline_message_is_prefixed():
    assert journal_prefix(SD_ERR) == "<3>"
    assert prefix_lines("a\nb", SD_INFO) == "<6>a\n<6>b"


def test_formatter_prefixes_only_when_enabled():
    rec = logging.LogRecord("oomd", logging.ERROR, __file__, 1, "boom", None, None)
    assert JournalFormatter("%(message)s", enabled=True).format(rec) == "<3>boom"
    assert JournalFormatter("%(message)s", enabled=False).format(rec) == "boom"
