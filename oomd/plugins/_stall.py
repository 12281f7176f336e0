"""Stall share over a window from PSI ``total=`` counters (µs), for many cgroups at once.

Shared by ``stall_above`` and ``kill_by_stall`` (the leading underscore keeps this module
unregistered). Every tick the plugin adds one sample per cgroup (the tick's time and the
cgroup's ``total``); a sample is keyed by the cgroup's id (directory inode), so a cgroup
re-created under the same name starts with no history. The samples of one tick are kept as
arrays (ids sorted), never as one Python object per cgroup.

What the share of the last ``window`` seconds is, from the samples read (nothing is guessed
between two samples):

* **span share**: the growth of ``total`` from the cgroup's newest sample at least ``window``
  old to now, divided by the time between the two samples. With ticks closer together than the
  window (fast ticks after a PSI trigger) that span is the window, give or take one tick; with
  sparser ticks it is the time since the last sample that old (``--interval 5`` and a 2 s window:
  the last 5 s).
* **proven share**: the growth from the cgroup's oldest sample inside the window to now, divided
  by the window. That stall certainly fell within the window, so the window's share is at least
  this much; it lets a burst be seen before a whole window of samples exists.

The share reported is the larger of the two (a cgroup with only one sample has none).
Counters are unsigned 64-bit: a delta is taken modulo 2**64 (a wrap is an ordinary delta). A
counter that moved back, or grew more than the elapsed time allows (a reset: the cgroup was
re-created and its id reused), restarts the cgroup's history at that sample.
"""

from __future__ import annotations

from collections import deque

import numpy as np

US = 1_000_000
# A PSI total grows at most as fast as the clock (it is a weighted average of per-CPU stall
# times); growth beyond twice the elapsed time plus a second is a reset, not stall.
RESET_FACTOR = 2.0
RESET_SLACK_US = 1_000_000

_EMPTY_IDS = np.empty(0, dtype=np.uint64)


def total_metric(resource: str, line: str) -> str:
    """The context metric holding that PSI line's ``total=`` (µs)."""
    prefix = "mem" if resource == "memory" else "io"
    return f"{prefix}_pressure_{line}_total"


def avgs_metric(resource: str, line: str) -> str:
    """The context metric of the same file's averages (valid when the file was parsed)."""
    base = "mem_pressure" if resource == "memory" else "io_pressure"
    return base + ("_some" if line == "some" else "")


class _Tick:
    __slots__ = ("t", "ids", "totals")

    def __init__(self, t: float, ids: np.ndarray, totals: np.ndarray) -> None:
        self.t = t
        self.ids = ids          # uint64, sorted, unique
        self.totals = totals    # uint64, in the order of ids

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(totals, found) for ids."""
        if len(self.ids) == 0:
            return np.zeros(len(ids), dtype=np.uint64), np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(self.ids, ids)
        pos[pos >= len(self.ids)] = 0
        found = self.ids[pos] == ids
        return self.totals[pos], found

    def drop(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self.ids, ids)
        self.ids, self.totals = self.ids[keep], self.totals[keep]


class StallWindow:
    """Samples of one PSI total for a set of cgroups over the last ``window`` seconds."""

    def __init__(self, window: float) -> None:
        self.window = float(window)
        self._ticks: deque[_Tick] = deque()

    def __len__(self) -> int:
        return len(self._ticks)

    def add(self, now: float, ids, totals) -> np.ndarray:
        """This tick's samples (``totals`` as read: int64 bit patterns of the kernel's u64).
        Returns the ids whose counter was reset (their older samples are forgotten)."""
        ids = np.asarray(ids, dtype=np.uint64)
        totals = np.asarray(totals)
        totals = totals.view(np.uint64) if totals.dtype == np.int64 else totals.astype(np.uint64)
        order = np.argsort(ids, kind="stable")
        ids, totals = ids[order], totals[order]
        if len(ids) > 1:
            first = np.concatenate(([True], ids[1:] != ids[:-1]))
            ids, totals = ids[first], totals[first]
        reset = _EMPTY_IDS
        if self._ticks:
            last = self._ticks[-1]
            if now <= last.t:  # a second sample at the same time replaces the first
                self._ticks.pop()
            # each id against its newest earlier sample (it may be missing from the last tick)
            need = np.ones(len(ids), dtype=bool)
            bad = np.zeros(len(ids), dtype=bool)
            for tick in reversed(self._ticks):
                if not need.any():
                    break
                prev, found = tick.lookup(ids)
                found &= need
                grew = totals - prev  # modulo 2**64
                limit = (now - tick.t) * US * RESET_FACTOR + RESET_SLACK_US
                bad |= found & (grew > np.uint64(max(0, int(limit))))
                need &= ~found
            if bad.any():
                reset = ids[bad]
                for tick in self._ticks:
                    tick.drop(reset)
        self._ticks.append(_Tick(now, ids, totals))
        # keep the newest sample at least `window` old (the span's start) and everything newer
        while len(self._ticks) >= 2 and self._ticks[1].t <= now - self.window:
            self._ticks.popleft()
        return reset

    def share(self, ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each id: (share of the window stalled as a fraction, the seconds of samples
        that share was measured over, known). Unknown entries hold 0. The newest sample must be
        this tick's (``add`` first)."""
        ids = np.asarray(ids, dtype=np.uint64)
        n = len(ids)
        share = np.zeros(n, dtype=np.float64)
        basis = np.zeros(n, dtype=np.float64)
        known = np.zeros(n, dtype=bool)
        if not self._ticks or n == 0:
            return share, basis, known
        ticks = self._ticks
        cur = ticks[-1]
        now = cur.t
        cur_tot, present = cur.lookup(ids)
        if not present.any():
            return share, basis, known
        start = now - self.window
        # span: the newest sample at least `window` old (only ticks[0] can be that old)
        if len(ticks) >= 2 and ticks[0].t <= start:
            ref = ticks[0]
            ref_tot, ok = ref.lookup(ids)
            ok &= present
            span = now - ref.t
            s = (cur_tot - ref_tot).astype(np.float64) / (span * US)
            share = np.where(ok, s, 0.0)
            basis = np.where(ok, span, 0.0)
            known |= ok
        # proven: the oldest sample inside the window, per cgroup
        need = present.copy()
        inside_tot = np.zeros(n, dtype=np.uint64)
        inside = np.zeros(n, dtype=bool)
        for tick in ticks:
            if tick is cur or not need.any():
                break
            if tick.t <= start:
                continue
            tot, found = tick.lookup(ids)
            found &= need
            inside_tot = np.where(found, tot, inside_tot)
            inside |= found
            need &= ~found
        if inside.any():
            proven = (cur_tot - inside_tot).astype(np.float64) / (self.window * US)
            better = inside & (~known | (proven > share))
            share = np.where(better, proven, share)
            basis = np.where(better, self.window, basis)
            known |= inside
        return share, basis, known
