"""``kill_by_swap_usage`` (oomd ``plugins/KillSwapUsage-inl.h``, reference §4.13).

Extra args: ``threshold`` (size or ``N%`` of SwapTotal; default 1 byte when absent, while an
explicit ``"1"`` means 1 MiB), ``meminfo_location`` (where SwapTotal is read at init; default
``/proc/meminfo``) and oomd HEAD's ``biased_swap_kill``. Candidates with ``swap_usage >=
threshold`` (``>`` with ``--compat head``) are ranked by swap usage, or with
``biased_swap_kill`` by the swap beyond ``SwapTotal/MemTotal × memory_protection``. The
percentage uses the full 64-bit SwapTotal (oomd 0.5.0 truncates it to 32 bits, Appendix B).
"""

from __future__ import annotations

import os

import numpy as np

from oomd import logs, parsing
from oomd.errors import PluginArgError
from oomd.decision import Component
from oomd.plugin import Arg, register
from oomd.plugins._common import mb
from oomd.plugins.base_kill import BASE_KILL_ARGS, BaseKillPlugin, column, picked
from oomd import fs


@register("kill_by_swap_usage")
class KillSwapUsage(BaseKillPlugin):
    ARGS = BASE_KILL_ARGS + (
        Arg("threshold", str, default=None, attr="threshold_text"),
        Arg("meminfo_location", str, default=None),
        Arg("biased_swap_kill", parsing.bool_parse, default=False),  # oomd HEAD
    )
    RANK_METRICS = ("swap_usage",)

    def setup(self, context) -> None:
        super().setup(context)
        path = self.meminfo_location or os.path.join(context.proc_root, "meminfo")
        try:
            meminfo = fs.read_meminfo(path)
        except OSError:
            meminfo = {}  # as oomd: no meminfo, SwapTotal 0
        self.swap_total = int(meminfo.get("SwapTotal", 0))
        # biased_swap_kill: swap allowed in proportion to protected memory; oomd HEAD forms
        # the ratio in float32 from int32-truncated totals (no ratio if MemTotal is not > 0)
        swap32, mem32 = _int32(self.swap_total), _int32(int(meminfo.get("MemTotal", 0)))
        self.swap_ratio = (np.float32(swap32) / np.float32(mem32) if "MemTotal" in meminfo
                           and mem32 > 0 else np.float32(0))
        if self.biased_swap_kill:
            self.RANK_METRICS = ("swap_usage", "memory_protection")
        self.threshold = 1
        if self.threshold_text is not None:
            try:
                self.threshold = parsing.parse_size_or_percent(self.threshold_text, self.swap_total)
            except (ValueError, OverflowError) as e:
                raise PluginArgError(
                    f'Failed to parse argument "threshold" of plugin "{self.name}": {e}',
                    arg="threshold") from None

    def rank_filter(self, ctx, rows):
        swap = column(ctx, "swap_usage", rows, 0)
        if self.compat.strict_swap_filter:
            return swap > self.threshold  # oomd HEAD
        return swap >= self.threshold

    def swap_excess(self, ctx, rows) -> np.ndarray:
        """``biased_swap_kill``'s key: swap beyond ``swapRatio × memory_protection`` (at least
        0), or the whole swap usage where the protection is unknown."""
        swap = column(ctx, "swap_usage", rows, 0)
        prot, valid = ctx.get("memory_protection", rows)
        low = (self.swap_ratio * np.asarray(prot).astype(np.float32)).astype(np.int64)
        return np.where(np.asarray(valid, dtype=bool), np.maximum(swap - low, 0), swap)

    def filter_reason(self) -> str:
        op = ">" if self.compat.strict_swap_filter else ">="
        return f"swap usage is not {op} the threshold of {self.threshold} bytes"

    def rank_keys(self, ctx, rows):
        return tuple(c.values for c in self.rank_components(ctx, rows)[0] if c.key)

    def rank_components(self, ctx, rows):
        swap = column(ctx, "swap_usage", rows, 0)
        facts = {"threshold": self.threshold}
        if self.biased_swap_kill:
            prot = column(ctx, "memory_protection", rows, 0)
            return [Component("swap_excess", self.swap_excess(ctx, rows), "bytes"),
                    Component("swap_usage", swap, "bytes", key=False),
                    Component("protection", prot, "bytes", key=False)], \
                {**facts, "swap_ratio": float(self.swap_ratio)}
        return [Component("swap_usage", swap, "bytes")], facts

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        line = (picked(ctx, row) +
                f"based on swap usage at {mb(ctx.value('swap_usage', row) or 0)}MB")
        if self.biased_swap_kill:
            excess = int(self.swap_excess(ctx, np.asarray([row], dtype=np.int32))[0])
            line += f" exceeding swapLow value by {mb(excess)}MB"
        logs.log(line)


def _int32(v: int) -> int:
    """C++'s ``int x = <int64>``: the low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v
