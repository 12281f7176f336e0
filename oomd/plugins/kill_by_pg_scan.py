"""``kill_by_pg_scan`` (oomd ``plugins/KillPgScan-inl.h``, reference §4.15).

No extra args. A two-tick kill: every ``run`` computes ``pg_scan_rate`` for the candidates (and
their descendants with ``recursive``); unless it also did on the tick just before, it returns
ASYNC_PAUSE and the chain resumes here next tick. Then it kills the cgroup with the highest
rate (missing rates count 0; zero rates stay eligible, as in 0.5.0; with ``--compat head``
candidates whose rate is not above 0 are left out, as in oomd HEAD).
"""

from __future__ import annotations

import numpy as np

from oomd import logs
from oomd.decision import Component
from oomd.plugin import PluginRet, register
from oomd.plugins.base_kill import BaseKillPlugin, column, picked


@register("kill_by_pg_scan")
class KillPgScan(BaseKillPlugin):
    RANK_METRICS = ("pg_scan_rate",)  # computed by run() on the two ticks of a kill cycle

    def __init__(self) -> None:
        super().__init__()
        self._last_tick: int | None = None

    def run(self, ctx) -> PluginRet:
        has_previous = self._last_tick is not None and self._last_tick == ctx.tick - 1
        self.prerun_on_cgroups(ctx, "pg_scan_rate")
        self._last_tick = ctx.tick
        if not has_previous:
            return PluginRet.ASYNC_PAUSE
        return super().run(ctx)

    def rank_filter(self, ctx, rows):
        if not self.compat.filter_zero_pg_scan:
            return None
        return column(ctx, "pg_scan_rate", rows, 0) > 0  # oomd HEAD

    def filter_reason(self) -> str:
        return "pg scan rate is not above 0"

    def rank_keys(self, ctx, rows):
        return tuple(c.values for c in self.rank_components(ctx, rows)[0] if c.key)

    def rank_components(self, ctx, rows):
        values, valid = ctx.get("pg_scan_rate", rows)
        missing = int(len(rows) - np.count_nonzero(valid))
        if missing and len(rows) > 1:  # a lone candidate is not ranked (nothing logged)
            logs.log(f"couldn't read pgscan data in {missing}/{len(rows)} cgroups")
        return [Component("pg_scan_rate", np.where(valid, values, 0).astype(np.int64),
                          "pages/s")], {}

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        pref = self.preference_name(ctx, row)
        logs.log(picked(ctx, row) +
                 f"based on pg scan rate at {int(ctx.value('pg_scan_rate', row) or 0)} "
                 f"with kill preference {pref}")
