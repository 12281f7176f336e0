"""``kill_by_pressure`` (oomd ``plugins/KillPressure-inl.h``, reference §4.14).

Extra arg: ``resource`` (``io`` or ``memory``, required). Key: ``int(avg10/2 + avg60/2)`` of the
full PSI line, in float32 as oomd computes it, then truncated (0 when unreadable). Every
candidate is eligible, zero pressure included.
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.decision import Component
from oomd.plugin import Arg, register
from oomd.plugins.base_kill import BASE_KILL_ARGS, BaseKillPlugin, column, fmt_float, picked

_HALF = np.float32(2)


@register("kill_by_pressure")
class KillPressure(BaseKillPlugin):
    ARGS = BASE_KILL_ARGS + (Arg("resource", parsing.resource, required=True),)
    def setup(self, context) -> None:
        super().setup(context)
        self.pressure_metric = "mem_pressure" if self.resource == "memory" else "io_pressure"
        self.RANK_METRICS = (self.pressure_metric,)  # read when ranking, not every tick

    def rank_keys(self, ctx, rows):
        return tuple(c.values for c in self.rank_components(ctx, rows)[0] if c.key)

    def rank_components(self, ctx, rows):
        p = column(ctx, self.pressure_metric, rows, 0).astype(np.float32)
        key = np.trunc(p[:, 0] / _HALF + p[:, 1] / _HALF).astype(np.int64)
        return [Component("pressure", key, "%"),
                Component("avg10", p[:, 0], "%", key=False),
                Component("avg60", p[:, 1], "%", key=False)], {"resource": self.resource}

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        p = ctx.value(self.pressure_metric, row)
        p10, p60 = (float(p[0]), float(p[1])) if p is not None else (0.0, 0.0)
        logs.log(picked(ctx, row) +
                 f"based on pressure generation at 10s={fmt_float(p10)} 60s={fmt_float(p60)}")
