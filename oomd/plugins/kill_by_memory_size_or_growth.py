"""``kill_by_memory_size_or_growth`` (oomd ``plugins/KillMemoryGrowth-inl.h``, reference §4.12).

Extra args: ``size_threshold`` (percent, default 50), ``growing_size_percentile`` (default 80,
must be below 100 as in oomd HEAD: 100 reads out of range in 0.5.0), ``min_growth_ratio``
(a real number, default 1.25; oomd 0.5.0 truncates explicit values to integers, Appendix B).

Ranking of a peer set: ``size_thr = int(Σ current × size_threshold/100)``; ``growth_thr`` = the
effective usage at index ``ceil(n × (100 − percentile)/100) − 1`` of the peers sorted by
effective usage descending. Key = ``(size-eligible ? effective : 0,
growth-eligible ? growth : 0, effective)`` where size-eligible is ``current >= size_thr`` and
growth-eligible is ``growth >= min_growth_ratio and effective >= growth_thr`` (growth compared
as float32, as oomd stores it). Prerun keeps ``average_usage`` current for every candidate.
"""

from __future__ import annotations

import math

import numpy as np

from oomd import logs, parsing
from oomd.plugin import Arg, register
from oomd.plugins._common import mb
from oomd.plugins.base_kill import BASE_KILL_ARGS, PREFERENCE_NAMES, BaseKillPlugin, column

SIZE, GROWTH, REST = 0, 1, 2


def _percentile(text: str) -> int:
    value = parsing.non_negative_int(text)
    if value >= 100:
        raise ValueError(f"{text!r} must be below 100")
    return value


def _ratio(text: str) -> float:
    value = parsing.double_parse(text)
    if not 0 <= value < math.inf:
        raise ValueError(f"{text!r} must be a non-negative number")
    return value


@register("kill_by_memory_size_or_growth")
class KillMemoryGrowth(BaseKillPlugin):
    ARGS = BASE_KILL_ARGS + (
        Arg("size_threshold", parsing.non_negative_int, default=50),
        Arg("growing_size_percentile", _percentile, default=80),
        Arg("min_growth_ratio", _ratio, default=1.25),
    )
    METRICS = BaseKillPlugin.METRICS + ("effective_usage", "memory_growth", "average_usage")

    def prerun(self, ctx) -> None:
        self.prerun_on_cgroups(ctx, "average_usage")

    def _classify(self, ctx, rows: np.ndarray):
        cur = column(ctx, "current_usage", rows, 0).astype(np.int64)
        eff = column(ctx, "effective_usage", rows, 0).astype(np.int64)
        growth = column(ctx, "memory_growth", rows, 0.0).astype(np.float32)
        total = int(cur.sum())
        size_thr = int(float(total) * (self.size_threshold / 100.0))
        n = len(rows)
        growth_thr = 0
        if n:
            nth = math.ceil(n * (100 - float(self.growing_size_percentile)) / 100) - 1
            kth = n - 1 - nth  # the nth largest is the (n-1-nth)th smallest
            growth_thr = int(np.partition(eff, kth)[kth])
        size_ok = cur >= size_thr
        growth_ok = (growth >= np.float32(self.min_growth_ratio)) & (eff >= growth_thr)
        return cur, eff, growth, total, size_ok, growth_ok

    def rank_keys(self, ctx, rows):
        _, eff, growth, _, size_ok, growth_ok = self._classify(ctx, rows)
        return (np.where(size_ok, eff, 0), np.where(growth_ok, growth, np.float32(0)), eff)

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        if row not in peers:
            peers = np.append(peers, np.int32(row))
        cur, _, _, total, size_ok, growth_ok = self._classify(ctx, peers)
        i = int(np.nonzero(peers == row)[0][0])
        phase = SIZE if size_ok[i] else GROWTH if growth_ok[i] else REST
        rel = ctx.relpath(row)
        pref = PREFERENCE_NAMES.get(int(ctx.value("kill_preference", row) or 0), "NORMAL")
        if phase == GROWTH:
            growth = ctx.value("memory_growth", row) or 0.0
            logs.log(f'Picked "{rel}" ({mb(cur[i])}MB) based on growth rate {float(growth):.2f} '
                     f"(min growth rate {float(np.float32(self.min_growth_ratio)):.2f}) among "
                     f"P{self.growing_size_percentile} largest, with kill preference {pref}")
            return
        overridden = " (size threshold overridden)" if phase == REST else ""
        logs.log(f'Picked "{rel}" ({mb(cur[i])}MB) based on size > {self.size_threshold}% of '
                 f"total {mb(total)}MB{overridden} with kill preference {pref}")
