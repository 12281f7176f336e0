"""``memory_reclaim``: the kernel reclaimed memory in the matched cgroups within the last
``duration`` seconds (reference §4.7; oomd ``plugins/MemoryReclaim.cpp``).

Reclaim is seen as a rise of the summed ``pgscan`` of memory.stat since the previous run.
"""

from __future__ import annotations

import numpy as np

from oomd import parsing
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register
from oomd.plugins._common import whole_seconds


@register("memory_reclaim")
class MemoryReclaim(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("duration", parsing.int_parse, required=True),
    )
    METRICS = ("pgscan",)

    def __init__(self) -> None:
        super().__init__()
        self.last_pgscan = 0
        self.last_reclaim_at = 0.0  # the monotonic clock's origin: no reclaim seen yet

    def run(self, ctx) -> PluginRet:
        rows = ctx.resolve(self.cgroup)
        pgscan = 0
        if rows.size:
            values, valid = ctx.get("pgscan", rows)
            pgscan = int(np.sum(values[valid], dtype=np.int64))
        if pgscan > self.last_pgscan:
            self.last_reclaim_at = ctx.now
        self.last_pgscan = pgscan
        if whole_seconds(ctx.now, self.last_reclaim_at) <= self.duration:
            return PluginRet.CONTINUE
        return PluginRet.STOP
