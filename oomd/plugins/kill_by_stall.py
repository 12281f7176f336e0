"""``kill_by_stall`` (pyoomd's own): kill the candidate that stalled most over the last
``window`` seconds, measured as ``stall_above`` measures it (``_stall.py``: PSI ``total=``
counters sampled every tick).

Why not ``kill_by_pressure`` after ``stall_above``: its key, ``int(avg10/2 + avg60/2)``, comes
from averages the kernel updates every 2 s and that lag a stall by seconds; right when
``stall_above`` fires (it can, from a trigger, within a fraction of a second) the stalling
cgroup's key can still be 0, tied with an idle neighbour, and ties go to the smallest path.

Extra args: ``resource`` (``memory``/``io``, required), ``line`` (``some``/``full``, default
``full``), ``window`` (seconds, 0.5-10, default 2). Prerun samples every candidate (with
``recursive``, every descendant too) each tick; a candidate without two samples yet ranks as
0. Key: the stall share (a float, higher first).
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.decision import Component
from oomd.plugin import Arg, register
from oomd.plugins.base_kill import BASE_KILL_ARGS, BaseKillPlugin, picked
from oomd.plugins.stall_above import StallSampler, psi_line, window_seconds


@register("kill_by_stall")
class KillStall(BaseKillPlugin):
    ARGS = BASE_KILL_ARGS + (
        Arg("resource", parsing.resource, required=True),
        Arg("line", psi_line, default="full"),
        Arg("window", window_seconds, default=2.0),
    )

    def setup(self, context) -> None:
        super().setup(context)
        self.sampler = StallSampler(self.name, self.resource, self.line, self.window)
        self.METRICS = self.METRICS + (self.sampler.metric, "id")
        self.RANK_METRICS = (self.sampler.metric,)

    def prerun(self, ctx) -> None:
        self.sampler.sample(ctx, self.prerun_on_cgroups(ctx, self.sampler.metric))

    def _shares(self, ctx, rows: np.ndarray):
        ids = np.asarray(ctx.get("id", rows)[0], dtype=np.uint64)
        share, basis, known = self.sampler.window.share(ids)
        return np.where(known, share, 0.0), basis

    def rank_keys(self, ctx, rows):
        return (self._shares(ctx, rows)[0],)

    def rank_components(self, ctx, rows):
        share, basis = self._shares(ctx, rows)
        return [Component("stall_share", share * 100.0, "%"),
                Component("stall_window", np.asarray(basis, dtype=np.float64), "s", key=False)], \
            {"resource": self.resource, "line": self.line, "window": self.window}

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        share, basis = self._shares(ctx, np.array([row], dtype=np.int32))
        logs.log(picked(ctx, row) +
                 f"based on {self.resource} {self.line} stall of {share[0] * 100:.2f}% over the "
                 f"last {basis[0]:.2f}s")
