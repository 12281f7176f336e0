"""``kill_by_swap_usage`` (oomd ``plugins/KillSwapUsage-inl.h``, reference §4.13).

Extra args: ``threshold`` (size or ``N%`` of SwapTotal; default 1 byte when absent, while an
explicit ``"1"`` means 1 MiB) and ``meminfo_location`` (where SwapTotal is read at init; default
``/proc/meminfo``). Candidates with ``swap_usage >= threshold`` are ranked by swap usage. The
percentage uses the full 64-bit SwapTotal (oomd 0.5.0 truncates it to 32 bits, Appendix B).
"""

from __future__ import annotations

import os

import numpy as np

from oomd import logs, parsing
from oomd.errors import PluginArgError
from oomd.plugin import Arg, register
from oomd.plugins._common import mb
from oomd.plugins.base_kill import BASE_KILL_ARGS, BaseKillPlugin, column
from oomd import fs


@register("kill_by_swap_usage")
class KillSwapUsage(BaseKillPlugin):
    ARGS = BASE_KILL_ARGS + (
        Arg("threshold", str, default=None, attr="threshold_text"),
        Arg("meminfo_location", str, default=None),
    )
    METRICS = BaseKillPlugin.METRICS + ("swap_usage",)

    def setup(self, context) -> None:
        super().setup(context)
        path = self.meminfo_location or os.path.join(context.proc_root, "meminfo")
        try:
            meminfo = fs.read_meminfo(path)
        except OSError:
            meminfo = {}  # as oomd: no meminfo, SwapTotal 0
        self.swap_total = int(meminfo.get("SwapTotal", 0))
        self.threshold = 1
        if self.threshold_text is not None:
            try:
                self.threshold = parsing.parse_size_or_percent(self.threshold_text, self.swap_total)
            except (ValueError, OverflowError) as e:
                raise PluginArgError(
                    f'Failed to parse argument "threshold" of plugin "{self.name}": {e}',
                    arg="threshold") from None

    def rank_filter(self, ctx, rows):
        return column(ctx, "swap_usage", rows, 0) >= self.threshold

    def rank_keys(self, ctx, rows):
        return (column(ctx, "swap_usage", rows, 0),)

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        logs.log(f'Picked "{ctx.relpath(row)}" ({mb(ctx.value("current_usage", row) or 0)}MB) '
                 f"based on swap usage at {mb(ctx.value('swap_usage', row) or 0)}MB")
