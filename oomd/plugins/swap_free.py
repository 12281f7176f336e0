"""``swap_free``: free swap below a percentage of total swap (reference §4.8; oomd
``plugins/SwapFree.cpp``). Uses /proc/swaps through the system context; no swap, no trigger.
"""

from __future__ import annotations

from oomd import logs, parsing
from oomd.plugin import Arg, BasePlugin, PluginRet, register
from oomd.plugins._common import mb

U64 = (1 << 64) - 1


@register("swap_free")
class SwapFree(BasePlugin):
    ARGS = (Arg("threshold_pct", parsing.int_parse, required=True),)

    def run(self, ctx) -> PluginRet:
        total = ctx.system.swap_total & U64
        used = ctx.system.swap_used & U64
        threshold = ((total * (self.threshold_pct & U64)) & U64) // 100  # oomd's uint64 arithmetic
        free = (total - used) & U64
        if free < threshold:
            logs.log(f"SwapFree {mb(free)}MB is smaller than the threshold of {mb(threshold)}MB, "
                     f"total swap is {mb(total)}MB")
            return PluginRet.CONTINUE
        return PluginRet.STOP
