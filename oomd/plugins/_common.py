"""Helpers shared by several plugins (the leading underscore keeps this module unregistered)."""

from __future__ import annotations

import numpy as np

from oomd import _fastcg

ZERO_PRESSURE = (np.float32(0), np.float32(0), np.float32(0))


def c_div(a: int, b: int) -> int:
    """C's integer division, truncating toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def mb(value: int) -> int:
    """oomd's ``value / 1024 / 1024`` in log lines."""
    return c_div(int(value), 1 << 20)


def whole_seconds(now: float, since: float) -> int:
    """``duration_cast<seconds>(now - since).count()``: truncation toward zero."""
    return int(now - since)


class HoldTimer:
    """How long a condition has held without interruption, as oomd's ``hit_thres_at_``: set
    on the first run the condition holds, reset on the first run it does not."""

    def __init__(self) -> None:
        self.since: float | None = None

    def held_for(self, holding: bool, now: float) -> int | None:
        """Whole seconds the condition has held (0 on its first run), None if it does not."""
        if not holding:
            self.since = None
            return None
        if self.since is None:
            self.since = now
        return whole_seconds(now, self.since)

    def seconds(self, now: float) -> float | None:
        """How long the condition has held so far (seconds, not truncated), None if not."""
        return None if self.since is None else now - self.since


def pressure_metric(resource: str) -> str:
    return "mem_pressure" if resource == "memory" else "io_pressure"


def pick_pressure(ctx, rows: np.ndarray, resource: str):
    """oomd's choice among matched cgroups (PressureAbove.cpp): the highest float32 score
    ``3*avg10 + 2*avg60 + avg300`` strictly above the running best, starting from an all-zero
    record; unreadable pressure counts as zeros. Ties keep the first row (rows are in path order).

    Returns ``((avg10, avg60, avg300) as float32, that cgroup's row or -1)``: its usage only
    goes into a log line, so it is read when the line is written (``usage_of``).
    """
    if rows.size == 0:
        return ZERO_PRESSURE, -1
    values, valid = ctx.get(pressure_metric(resource), rows)
    values = np.ascontiguousarray(values, dtype=np.float32)
    best = _fastcg.pick_psi(values, np.ascontiguousarray(valid, dtype=bool).view(np.uint8))
    if best < 0:
        return ZERO_PRESSURE, -1
    return (values[best, 0], values[best, 1], values[best, 2]), int(rows[best])


def usage_of(ctx, row: int) -> int:
    """current_usage of the row pick_pressure chose, 0 when none or unreadable (oomd prints
    the usage of its all-zero record then)."""
    if row < 0:
        return 0
    return int(ctx.logged_value("current_usage", row) or 0)


def relpath_or_none(ctx, row: int) -> str | None:
    """The cgroup of ``row`` for an observation (None for no row)."""
    return None if row < 0 else ctx.relpath(row)


def wake_triggers(plugin) -> list:
    """``psi_triggers()`` of a pressure detector with ``wake``: a full-line trigger at its
    threshold over oomd.wakeup.WAKE_WINDOW (none without ``wake``)."""
    from oomd.wakeup import WAKE_WINDOW, TriggerWant

    if not plugin.wake:
        return []
    return [TriggerWant(plugin.cgroup, plugin.resource, "full", float(plugin.threshold),
                        WAKE_WINDOW, plugin.name)]
