"""``swap_free``: free swap below a percentage of total swap (reference §4.8; oomd
``plugins/SwapFree.cpp``). Uses /proc/swaps through the system context; no swap, no trigger.

oomd HEAD's ``swapout_bps_threshold`` (int64, default 0): the detector also needs the swap-out
rate of the last interval (``swapout_bps``, from /proc/vmstat's ``pswpout``) at or above it,
and says so in a second line when the threshold is above 0.
"""

from __future__ import annotations

from oomd import logs, parsing
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, register
from oomd.plugins._common import mb

U64 = (1 << 64) - 1


@register("swap_free")
class SwapFree(BasePlugin):
    ARGS = (
        Arg("threshold_pct", parsing.int_parse, required=True),
        Arg("swapout_bps_threshold", parsing.uint64_parse, default=0),
    )

    def run(self, ctx) -> PluginRet:
        total = ctx.system.swap_total & U64
        used = ctx.system.swap_used & U64
        threshold = ((total * (self.threshold_pct & U64)) & U64) // 100  # oomd's uint64 arithmetic
        free = (total - used) & U64
        rate = ctx.system.swapout_bps
        fired = free < threshold and rate >= self.swapout_bps_threshold  # 0 >= 0 without it
        self.observation = observation(self.name, "free swap", free, "<", threshold, "bytes",
                                       fired=fired)
        if fired:
            logs.log(f"SwapFree {mb(free)}MB is smaller than the threshold of {mb(threshold)}MB, "
                     f"total swap is {mb(total)}MB")
            if self.swapout_bps_threshold > 0:
                logs.log(f"SwapOut rate {int(rate)}bps is greater than the threshold of "
                         f"{self.swapout_bps_threshold}bps")
            return PluginRet.CONTINUE
        return PluginRet.STOP
