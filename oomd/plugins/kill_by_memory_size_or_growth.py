"""``kill_by_memory_size_or_growth`` (oomd ``plugins/KillMemoryGrowth-inl.h``, reference §4.12).

Extra args: ``size_threshold`` (percent, default 50), ``growing_size_percentile`` (default 80,
must be below 100 as in oomd HEAD: 100 reads out of range in 0.5.0), ``min_growth_ratio``
(a real number, default 1.25; oomd 0.5.0 truncates explicit values to integers, Appendix B).
With ``--compat head``: a percentile of 0 makes the growth threshold 0, and the "Picked" lines
say ``% of sibling total`` (SIZE) and ``based on effective usage of <bytes>MB`` (REST).

Ranking of a peer set: ``size_thr = int(Σ current × size_threshold/100)``; ``growth_thr`` = the
effective usage at index ``ceil(n × (100 − percentile)/100) − 1`` of the peers sorted by
effective usage descending. Key = ``(size-eligible ? effective : 0,
growth-eligible ? growth : 0, effective)`` where size-eligible is ``current >= size_thr`` and
growth-eligible is ``growth >= min_growth_ratio and effective >= growth_thr`` (growth compared
as float32, as oomd stores it). ``classify`` gives each row's phase (SIZE, GROWTH, REST) and the
thresholds. Prerun keeps ``average_usage`` current for every candidate; memory.min/low are
monitored too, which costs nothing per tick where the context keeps configuration values
(cgroup2), so a kill finds them already read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oomd import logs, parsing
from oomd.names import shown
from oomd.decision import Component
from oomd.plugin import Arg, register
from oomd.plugins._common import mb
from oomd.plugins.base_kill import BASE_KILL_ARGS, BaseKillPlugin, column

SIZE, GROWTH, REST = 0, 1, 2


@dataclass(frozen=True)
class Classification:
    """One peer set as the ranking sees it (arrays follow the rows given to ``classify``)."""
    current: np.ndarray          # int64, missing = 0
    effective: np.ndarray        # int64, current - protection, missing = 0
    growth: np.ndarray           # float32, current / average_usage
    total: int                   # Σ current
    size_threshold: int          # bytes: size-eligible if current >= this
    growth_threshold: int        # effective usage of the P-th largest
    size_ok: np.ndarray          # bool
    growth_ok: np.ndarray        # bool

    @property
    def phase(self) -> np.ndarray:
        """Per row: SIZE (0), GROWTH (1) or REST (2), the phase that would pick it."""
        return np.where(self.size_ok, SIZE, np.where(self.growth_ok, GROWTH, REST)).astype(np.int8)


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
    METRICS = BaseKillPlugin.METRICS + ("average_usage", "memory_min", "memory_low")
    RANK_METRICS = ("current_usage", "effective_usage", "memory_growth", "memory_protection")

    def prerun(self, ctx) -> None:
        self.prerun_on_cgroups(ctx, "average_usage")

    def classify(self, ctx, rows: np.ndarray) -> Classification:
        """The size and growth thresholds of the peer set ``rows`` and who meets them."""
        rows = np.asarray(rows, dtype=np.int32)
        cur = column(ctx, "current_usage", rows, 0).astype(np.int64)
        eff = column(ctx, "effective_usage", rows, 0).astype(np.int64)
        growth = column(ctx, "memory_growth", rows, 0.0).astype(np.float32)
        total = int(cur.sum())
        size_thr = int(float(total) * (self.size_threshold / 100.0))
        n = len(rows)
        growth_thr = 0
        if n and not (self.compat.growth_percentile_zero and self.growing_size_percentile == 0):
            nth = math.ceil(n * (100 - float(self.growing_size_percentile)) / 100) - 1
            kth = n - 1 - nth  # the nth largest is the (n-1-nth)th smallest
            growth_thr = int(np.partition(eff, kth)[kth])
        size_ok = cur >= size_thr
        growth_ok = (growth >= np.float32(self.min_growth_ratio)) & (eff >= growth_thr)
        return Classification(cur, eff, growth, total, size_thr, growth_thr, size_ok, growth_ok)

    def rank_keys(self, ctx, rows):
        return tuple(c.values for c in self.rank_components(ctx, rows)[0] if c.key)

    def rank_components(self, ctx, rows):
        c = self.classify(ctx, rows)
        prot = column(ctx, "memory_protection", rows, 0).astype(np.int64)
        comps = [
            Component("size", np.where(c.size_ok, c.effective, 0), "bytes"),
            Component("growth", np.where(c.growth_ok, c.growth, np.float32(0)), "ratio"),
            Component("effective_usage", c.effective, "bytes"),
            Component("current_usage", c.current, "bytes", key=False),
            Component("protection", prot, "bytes", key=False),
            Component("growth_rate", c.growth, "ratio", key=False),
            Component("size_eligible", c.size_ok, "bool", key=False),
            Component("growth_eligible", c.growth_ok, "bool", key=False),
        ]
        facts = {"total": c.total, "size_threshold": c.size_threshold,
                 "size_threshold_pct": self.size_threshold,
                 "growth_threshold": c.growth_threshold,
                 "growing_size_percentile": self.growing_size_percentile,
                 "min_growth_ratio": float(self.min_growth_ratio)}
        return comps, facts

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        if row not in peers:
            peers = np.append(peers, np.int32(row))
        c = self.classify(ctx, peers)
        cur, total = c.current, c.total
        i = int(np.nonzero(peers == row)[0][0])
        phase = int(c.phase[i])
        rel = shown(ctx.relpath(row))
        pref = self.preference_name(ctx, row)
        if phase == GROWTH:
            growth = ctx.value("memory_growth", row) or 0.0
            logs.log(f'Picked "{rel}" ({mb(cur[i])}MB) based on growth rate {float(growth):.2f} '
                     f"(min growth rate {float(np.float32(self.min_growth_ratio)):.2f}) among "
                     f"P{self.growing_size_percentile} largest, with kill preference {pref}")
            return
        if self.compat.growth_log_texts:  # oomd HEAD's wording (REST's "MB" are bytes)
            reason = (f"effective usage of {int(c.effective[i])}MB" if phase == REST else
                      f"size > {self.size_threshold}% of sibling total {mb(total)}MB")
            logs.log(f'Picked "{rel}" ({mb(cur[i])}MB) based on {reason} with kill preference '
                     f"{pref}")
            return
        overridden = " (size threshold overridden)" if phase == REST else ""
        logs.log(f'Picked "{rel}" ({mb(cur[i])}MB) based on size > {self.size_threshold}% of '
                 f"total {mb(total)}MB{overridden} with kill preference {pref}")
