"""The context's problem log: what went wrong while reading, counted and logged, never raised.

Each problem with a cgroup file is logged once per row and file (the reader remembers which it
reported), at most ``MAX_LOGS_PER_TICK`` lines a tick; a problem with a system file or a
directory that cannot be opened once per kind; running out of file descriptors once a tick,
and it marks the tick ``starved`` (what the context shows may be incomplete). Lines go through
``oomd.logs`` (``[context] <path>: <problem>``).
"""

from __future__ import annotations

import os
from typing import Mapping

from oomd import _fastcg, logs
from oomd.names import shown

MAX_LOGS_PER_TICK = 64


def _log(msg: str) -> None:
    logs.log(msg, logs.WARNING, depth=2)


class ProblemLog:
    """Counters (``counts``, merged into ``OomdContext.read_stats``) and the log lines of one
    context's reads. ``begin_tick`` starts a tick's budget of lines and clears ``starved``."""

    def __init__(self, reader: _fastcg.Reader, cgroup_fs: str, proc_root: str) -> None:
        self._r = reader
        self.cgroup_fs = cgroup_fs
        self.proc_root = proc_root
        self.counts = {"evicted": 0, "rows_opened": 0, "resolutions": 0,
                       "listings_parsed": 0, "system_malformed": 0,
                       "system_unreadable": 0, "logs_dropped": 0,
                       "fd_exhausted": 0, "dir_vanished": 0, "dir_unopenable": 0}
        self.starved = False  # a read or open failed this tick for lack of fds/memory
        self._logged_once: set[tuple[str, str]] = set()
        self._fd_logged = False
        self._logged_this_tick = 0

    def begin_tick(self) -> None:
        self.starved = False
        self._fd_logged = False
        self._logged_this_tick = 0

    def once(self, key: tuple[str, str], msg: str) -> None:
        """Log ``msg`` the first time ``key`` is seen in this context's life."""
        if key not in self._logged_once:
            self._logged_once.add(key)
            _log(msg)

    def system_problem(self, fname: str, problem: str, err: int) -> None:
        """A system file (``proc_root/fname``) was ``malformed`` or ``unreadable``."""
        self.counts["system_" + problem] += 1
        why = f" ({os.strerror(err)})" if err else ""
        self.once((fname, problem), f"[context] {os.path.join(self.proc_root, fname)}: "
                                    f"{problem}{why}")

    def fd_problem(self, n: int) -> None:
        """n reads or directory opens failed for lack of fds: counted, one log line a tick, and
        the tick's view is marked incomplete (``starved``)."""
        self.starved = True
        self.counts["fd_exhausted"] += n
        if not self._fd_logged:
            self._fd_logged = True
            _log(f"[context] out of file descriptors: reads or cgroup directories failed this "
                 f"tick (fd budget {self._r.fd_budget}, {self._r.open_fds} open)")

    def drain(self, paths: Mapping[int, str]) -> None:
        """Take the problems the reader queued (``paths``: row -> relative path, for the
        lines) and count and log them."""
        for fname, problem, err in self._r.drain_system_problems():
            self.system_problem(fname, problem, err)
        pending, dropped, exhausted = self._r.drain_logs()
        if dropped:
            self.counts["logs_dropped"] += dropped
        if exhausted:
            self.fd_problem(exhausted)
        for row, kind, err, errnum in pending:
            self._logged_this_tick += 1
            if self._logged_this_tick > MAX_LOGS_PER_TICK:
                self.counts["logs_dropped"] += 1
                continue
            path = paths.get(row, f"<row {row}>")
            fname = _fastcg.FILE_NAMES[kind]
            why = f" ({os.strerror(errnum)})" if errnum else ""
            where = f"{self.cgroup_fs}/{path}" if path else self.cgroup_fs
            _log(f"[context] {shown(where)}/{fname}: {_fastcg.ERROR_NAMES[err]}{why}")
