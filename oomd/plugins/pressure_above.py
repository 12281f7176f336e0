"""``pressure_above``: pressure over a threshold for a duration (reference §4.4; oomd
``plugins/PressureAbove.cpp``).

Among the matched cgroups the one with the highest weighted score is watched; the detector
fires once its full-line avg10 has stayed above ``threshold`` for ``duration`` seconds, and keeps
firing while it stays there.

``wake: true`` (pyoomd's, default false) registers a PSI trigger on the full line at
``threshold`` percent of a 2 s window (``oomd.wakeup``): a stall starts a tick at once instead of
at the next ``--interval``. The decision is the same either way.
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register
from oomd.plugins._common import (
    HoldTimer, mb, pick_pressure, pressure_metric, relpath_or_none, usage_of, wake_triggers)


@register("pressure_above")
class PressureAbove(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("resource", parsing.resource, required=True),
        Arg("threshold", parsing.int_parse, required=True),
        Arg("duration", parsing.int_parse, required=True),
        Arg("wake", parsing.bool_parse, default=False),  # pyoomd's: PSI trigger wake-ups
    )

    def __init__(self) -> None:
        super().__init__()
        self.timer = HoldTimer()

    def setup(self, context) -> None:
        self.METRICS = (pressure_metric(self.resource),)  # usage: read for the log line only

    def psi_triggers(self) -> list:
        return wake_triggers(self)  # with wake: true, a trigger at the threshold

    def run(self, ctx) -> PluginRet:
        (avg10, _, _), row = pick_pressure(ctx, ctx.resolve(self.cgroup), self.resource)
        held = self.timer.held_for(avg10 > np.float32(self.threshold), ctx.now)
        fired = held is not None and held >= self.duration
        self.observation = observation(
            self.name, f"{self.resource} pressure (full avg10)", avg10, ">", self.threshold, "%",
            held, self.duration, fired, relpath_or_none(ctx, row))
        if fired:
            logs.log(f"10s pressure {float(avg10):.2f} is over the threshold of {self.threshold} "
                     f"for {self.duration} seconds , total usage is {mb(usage_of(ctx, row))}MB")
            return PluginRet.CONTINUE
        return PluginRet.STOP
