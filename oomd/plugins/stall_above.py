"""``stall_above``: a cgroup's PSI stall share over the last ``window`` seconds is above
``threshold`` percent (pyoomd's own detector; docs/configure.md, docs/compat.md).

Unlike ``pressure_above``, which reads the kernel's ``avg10`` (an exponential average updated
every 2 s that lags a sudden stall by seconds), this detector works from the ``total=`` counter
(µs of stall) of the ``line`` (``some`` or ``full``) of the cgroup's ``<resource>.pressure``,
sampled every tick (arithmetic in ``_stall.py``). With several matched cgroups it watches the
worst. It fires once the worst share has stayed above ``threshold`` for ``duration`` seconds
(0: at once), and keeps firing while it stays there.

The daemon registers a kernel PSI trigger with the same line, threshold and window on each
matched cgroup (``oomd.wakeup``), so a stall starts a tick at once instead of at the next
``--interval``; the decision is this detector's either way.

A pressure file without ``total=`` (the legacy format) is logged once per cgroup and ignored.
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.names import shown
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register
from oomd.plugins._stall import StallWindow, avgs_metric, total_metric
from oomd.wakeup import TriggerWant

MIN_WINDOW, MAX_WINDOW = 0.5, 10.0


def psi_line(text: str) -> str:
    if text not in ("some", "full"):
        raise ValueError(f"{text!r} is not a PSI line (some or full)")
    return text


def stall_percent(text: str) -> float:
    value = parsing.double_parse(text)
    if not 0 < value < 100:
        raise ValueError(f"{text!r} is not a percentage above 0 and below 100")
    return value


def window_seconds(text: str) -> float:
    value = parsing.double_parse(text)
    if not MIN_WINDOW <= value <= MAX_WINDOW:
        raise ValueError(f"{text!r} is not a window between {MIN_WINDOW:g} and {MAX_WINDOW:g} "
                         "seconds")
    return value


def duration_seconds(text: str) -> float:
    value = parsing.double_parse(text)
    if not 0 <= value < float("inf"):
        raise ValueError(f"{text!r} is not a duration of 0 seconds or more")
    return value


class StallSampler:
    """What stall_above and kill_by_stall share: every tick, sample the ``total=`` of the
    matched rows into a StallWindow; log once per cgroup whose file has no totals."""

    def __init__(self, name: str, resource: str, line: str, window: float) -> None:
        self.name = name
        self.resource = resource
        self.line = line
        self.metric = total_metric(resource, line)
        self.window = StallWindow(window)
        self._no_total: set[int] = set()

    def sample(self, ctx, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add this tick's samples of ``rows``; returns (ids, valid) per row."""
        totals, valid = ctx.get(self.metric, rows)
        ids = np.asarray(ctx.get("id", rows)[0], dtype=np.uint64)
        if not valid.all():
            self._log_legacy(ctx, rows[~valid], ids[~valid])
        reset = self.window.add(ctx.now, ids[valid], np.asarray(totals)[valid])
        for cid in reset:
            rows_of = rows[ids == cid]
            where = ctx.relpath(int(rows_of[0])) if len(rows_of) else f"id {int(cid)}"
            logs.log(f"[{self.name}] the {self.resource} {self.line} stall total of "
                     f'"{shown(where)}" went back; its history starts again')
        return ids, valid

    def _log_legacy(self, ctx, rows: np.ndarray, ids: np.ndarray) -> None:
        _, parsed = ctx.get(avgs_metric(self.resource, self.line), rows)
        for row, cid in zip(rows[parsed], ids[parsed]):
            if int(cid) in self._no_total:
                continue
            self._no_total.add(int(cid))
            logs.log(f"[{self.name}] {shown(ctx.abspath(int(row)))}/{self.resource}.pressure "
                     f"has no {self.line} total= (legacy PSI format?): ignored", logs.WARNING)

    def shares(self, ids: np.ndarray, valid: np.ndarray):
        """(share as a fraction, seconds of samples, known) per row of the last sample()."""
        share, basis, known = self.window.share(ids)
        known &= valid
        return share, basis, known


@register("stall_above")
class StallAbove(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("resource", parsing.resource, required=True),
        Arg("line", psi_line, default="full"),
        Arg("threshold", stall_percent, required=True),
        Arg("window", window_seconds, required=True),
        Arg("duration", duration_seconds, default=0.0),
    )

    def setup(self, context) -> None:
        self.sampler = StallSampler(self.name, self.resource, self.line, self.window)
        self.METRICS = (self.sampler.metric, "id")
        self.since: float | None = None
        self._ids = self._valid = self._rows = None

    def psi_triggers(self) -> list[TriggerWant]:
        return [TriggerWant(self.cgroup, self.resource, self.line, self.threshold, self.window,
                            self.name)]

    def prerun(self, ctx) -> None:
        self._rows = ctx.resolve(self.cgroup)
        self._ids, self._valid = self.sampler.sample(ctx, self._rows)

    def run(self, ctx) -> PluginRet:
        rows = self._rows
        if rows is None:  # run without prerun (not through the engine)
            self.prerun(ctx)
            rows = self._rows
        share, basis, known = self.sampler.shares(self._ids, self._valid)
        self._rows = None
        what = f"{self.resource} {self.line} stall share over {self.window:g}s"
        if not known.any():
            self.since = None
            self.observation = observation(self.name, what, None, ">", self.threshold, "%",
                                           None, self.duration)
            return PluginRet.STOP
        pct = np.where(known, share * 100.0, -1.0)
        worst = int(np.argmax(pct))  # ties: the first, i.e. the smallest path
        worst_rel = ctx.relpath(int(rows[worst]))
        if not pct[worst] > self.threshold:
            self.since = None
            self.observation = observation(self.name, what, pct[worst], ">", self.threshold,
                                           "%", None, self.duration, False, worst_rel)
            return PluginRet.STOP
        if self.since is None:
            self.since = ctx.now
        held = ctx.now - self.since
        self.observation = observation(self.name, what, pct[worst], ">", self.threshold, "%",
                                       held, self.duration, held >= self.duration, worst_rel)
        if held < self.duration:
            return PluginRet.STOP
        worst_name = shown(ctx.relpath(int(rows[worst])))
        logs.log(f'{self.resource} {self.line} stall of "{worst_name}" is '
                 f"{pct[worst]:.2f}% of the last {basis[worst]:.2f}s, over the threshold of "
                 f"{self.threshold:g}% for {held:.2f} seconds")
        return PluginRet.CONTINUE
