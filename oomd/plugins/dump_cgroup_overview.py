"""``dump_cgroup_overview``: log one line per matched cgroup while it is under memory pressure
(or always); never stops a detector group (reference §4.10; oomd
``plugins/DumpCgroupOverview.cpp``).
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.names import shown
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register
from oomd.plugins._common import mb


@register("dump_cgroup_overview")
class DumpCgroupOverview(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("always", parsing.bool_parse, default=False),
    )
    METRICS = ("mem_pressure",)

    def run(self, ctx) -> PluginRet:
        rows = ctx.resolve(self.cgroup)
        if rows.size == 0:
            return PluginRet.CONTINUE
        p, ok = ctx.get("mem_pressure", rows)
        p = np.where(ok[:, None], p, np.float32(0))
        dump = np.ones(rows.size, bool) if self.always else (p[:, 0] >= 1) & (p[:, 1] > 0)
        if not dump.any():
            return PluginRet.CONTINUE
        meminfo = ctx.system.meminfo
        vmstat = ctx.system.vmstat
        swap = f"swapfree={mb(meminfo.get('SwapFree', 0))}MB/{mb(meminfo.get('SwapTotal', 0))}MB"
        pgscan = vmstat.get("pgscan_kswapd", 0) + vmstat.get("pgscan_direct", 0)
        usage, usage_ok = ctx.get("current_usage", rows)
        for i in np.flatnonzero(dump):
            current = int(usage[i]) if usage_ok[i] else 0
            a10, a60, a300 = (float(x) for x in p[i])
            logs.log(f"cgroup={shown(ctx.relpath(int(rows[i])))} total={mb(current)}MB "
                     f"pressure={a10:.2f}:{a60:.2f}:{a300:.2f} {swap} pgscan={pgscan}")
        return PluginRet.CONTINUE
