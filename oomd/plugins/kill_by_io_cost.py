"""``kill_by_io_cost`` (oomd ``plugins/KillIOCost-inl.h``, reference §4.16).

No extra args. Prerun keeps ``io_cost_rate`` current for every candidate (the cost weights of
``--device``'s SSD/HDD coefficients are applied by the context, §5.4); the key is that rate
(0 on first sight; every cost is 0 without ``--device``).
"""

from __future__ import annotations

import numpy as np

from oomd import logs
from oomd.decision import Component
from oomd.plugin import register
from oomd.plugins.base_kill import BaseKillPlugin, column, fmt_float, picked


@register("kill_by_io_cost")
class KillIOCost(BaseKillPlugin):
    METRICS = BaseKillPlugin.METRICS + ("io_cost_rate",)

    def prerun(self, ctx) -> None:
        self.prerun_on_cgroups(ctx, "io_cost_rate")

    def rank_keys(self, ctx, rows):
        return tuple(c.values for c in self.rank_components(ctx, rows)[0] if c.key)

    def rank_components(self, ctx, rows):
        rate = column(ctx, "io_cost_rate", rows, 0.0).astype(np.float64)
        return [Component("io_cost_rate", rate, "cost/s")], {}

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        logs.log(picked(ctx, row) +
                 f"based on io cost generation at {fmt_float(ctx.value('io_cost_rate', row) or 0.0)}")
