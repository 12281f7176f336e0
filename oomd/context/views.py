"""What plugins hold besides arrays: ``CgroupView`` (one row with oomd's accessor names as
properties) and ``SystemContext`` (``ctx.system``: the system-wide values of this tick).

Both are views: they keep no numbers of their own and read through the context. The one
system value that needs history, the swap-out rate, is kept by ``SwapOutRate``.
"""

from __future__ import annotations

import math

from oomd import _fastcg
from oomd.context.metric_table import METRICS


class CgroupView:
    """One row, with oomd's accessor names as properties (None when unavailable)."""

    __slots__ = ("_ctx", "row")

    def __init__(self, ctx: "OomdContext", row: int) -> None:
        self._ctx = ctx
        self.row = row

    @property
    def relpath(self) -> str:
        return self._ctx.relpath(self.row)

    @property
    def abspath(self) -> str:
        return self._ctx.abspath(self.row)

    @property
    def is_root(self) -> bool:
        return self._ctx.relpath(self.row) == ""

    def children(self) -> list["CgroupView"]:
        return [CgroupView(self._ctx, int(r)) for r in self._ctx.children(self.row)]

    def parent(self) -> "CgroupView | None":
        p = self._ctx.parent(self.row)
        return None if p < 0 else CgroupView(self._ctx, p)

    def __repr__(self) -> str:
        return f"CgroupView({self.relpath!r}, row={self.row})"


def _view_property(metric: str):
    def get(self):
        return self._ctx.value(metric, self.row)

    get.__name__ = metric
    return property(get, doc=f"``{metric}`` of this cgroup this tick, or None.")


for _m in METRICS:
    setattr(CgroupView, _m, _view_property(_m))


class SystemContext:
    """System-wide values of this tick (reference §5.5). /proc/vmstat is read at every refresh
    (the swap-out rates need every sample); the other files on first use in the tick."""

    __slots__ = ("_ctx", "_vals", "_meminfo", "_vmstat", "swapout_bps", "swapout_bps_60",
                 "swapout_bps_300")

    def __init__(self, ctx: "OomdContext", swapout=(0.0, 0.0, 0.0)) -> None:
        self._ctx = ctx
        self._vals = None
        self._meminfo = None
        self._vmstat = None
        self.swapout_bps, self.swapout_bps_60, self.swapout_bps_300 = swapout

    def _v(self, key):
        if self._vals is None:
            self._vals = self._ctx._r.system()
            self._ctx._drain_logs()
        return self._vals[key]

    @property
    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo, values in bytes (empty if unreadable)."""
        if self._meminfo is None:
            self._v("mem_total")
            raw = self._ctx._r.meminfo_bytes()
            self._meminfo = {} if raw is None else _fastcg.parse_meminfo_dict(raw)
        return self._meminfo

    @property
    def vmstat(self) -> dict[str, int]:
        """/proc/vmstat (empty if unreadable); malformed lines are counted and skipped."""
        if self._vmstat is None:
            raw = self._ctx._r.vmstat_bytes()
            if raw is None:
                self._vmstat = {}
            else:
                self._vmstat, bad = _fastcg.parse_vmstat_dict(raw)
                if bad:
                    self._ctx._problems.system_problem("vmstat", "malformed", 0)
        return self._vmstat

    def snapshot(self, only_read: bool = False) -> dict:
        """Every system value of this tick (the files read now if they were not yet), for a
        recording: ``{"vals", "meminfo_raw", "vmstat_raw", "swapout", "unread"}`` (the raw
        files as read: a recording parses them only when it reads them back). ``only_read``
        (the flight recorder): nothing is read for the snapshot; the parts no plugin read this
        tick are named in ``unread`` ("sys": the values and /proc/meminfo, "vm": /proc/vmstat)
        and left out."""
        r = self._ctx._r
        swapout = (self.swapout_bps, self.swapout_bps_60, self.swapout_bps_300)
        if not only_read:
            self._v("mem_total")
        unread = set()
        if self._vals is None:
            unread.add("sys")
        if only_read and self._vmstat is None:
            unread.add("vm")
        return {"vals": None if "sys" in unread else self._vals,
                "meminfo_raw": None if "sys" in unread else r.meminfo_bytes(),
                "vmstat_raw": None if "vm" in unread else r.vmstat_bytes(),
                "swapout": swapout, "unread": unread}

    swap_total = property(lambda self: self._v("swap_total"), doc="bytes, /proc/swaps")
    swap_used = property(lambda self: self._v("swap_used"), doc="bytes, /proc/swaps")
    swappiness = property(lambda self: self._v("swappiness") or 0)
    mem_total = property(lambda self: self._v("mem_total"))
    mem_free = property(lambda self: self._v("mem_free"))
    mem_pressure = property(lambda self: self._v("mem_full"), doc="root full PSI or None")
    mem_pressure_some = property(lambda self: self._v("mem_some"))
    io_pressure = property(lambda self: self._v("io_full"))
    io_pressure_some = property(lambda self: self._v("io_some"))


class SwapOutRate:
    """The swap-out rate (reference §5.5): bytes per second of /proc/vmstat's ``pswpout``
    between two ticks (4 KiB pages, ``interval`` apart) and its decaying 60 s and 300 s
    averages. A tick without a good sample (vmstat unreadable, or no ``pswpout``) gives
    zeros and starts over."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._f60 = math.exp(-interval / 60.0)
        self._f300 = math.exp(-interval / 300.0)
        self._prev_ok = False
        self._prev: int | None = None
        self._rates = (0.0, 0.0, 0.0)

    def sample(self, vmstat_ok: bool, pswpout: int | None) -> tuple[float, float, float]:
        """This tick's (bps, avg60, avg300) from this tick's sample."""
        bps = avg60 = avg300 = 0.0
        if vmstat_ok and pswpout is not None and self._prev_ok and self._prev is not None:
            bps = (pswpout - self._prev) * 4096.0 / self.interval
            avg60 = bps + self._f60 * (self._rates[1] - bps)
            avg300 = bps + self._f300 * (self._rates[2] - bps)
        self._prev_ok = vmstat_ok
        self._prev = pswpout
        self._rates = (bps, avg60, avg300)
        return self._rates
