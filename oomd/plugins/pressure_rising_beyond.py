"""``pressure_rising_beyond``: 1-minute pressure over a threshold for a duration, while the
10-second pressure is above it too and not falling fast (reference §4.5; oomd
``plugins/PressureRisingBeyond.cpp``).

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


@register("pressure_rising_beyond")
class PressureRisingBeyond(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("resource", parsing.resource, required=True),
        Arg("threshold", parsing.int_parse, required=True),
        Arg("duration", parsing.int_parse, required=True),
        Arg("fast_fall_ratio", parsing.float_parse, default=0.85),
        Arg("wake", parsing.bool_parse, default=False),  # pyoomd's: PSI trigger wake-ups
    )

    def __init__(self) -> None:
        super().__init__()
        self.timer = HoldTimer()
        self.last_avg10 = np.float32(100)  # oomd starts from a pressure of 100

    def setup(self, context) -> None:
        self.METRICS = (pressure_metric(self.resource),)  # usage: read for the log line only
        self.fall_ratio = np.float32(self.fast_fall_ratio)

    def psi_triggers(self) -> list:
        return wake_triggers(self)  # with wake: true, a trigger at the threshold

    def run(self, ctx) -> PluginRet:
        (avg10, avg60, _), row = pick_pressure(ctx, ctx.resolve(self.cgroup), self.resource)
        last, self.last_avg10 = self.last_avg10, avg10
        threshold = np.float32(self.threshold)
        held = self.timer.held_for(avg60 > threshold, ctx.now)
        met_60s = held is not None and held >= self.duration
        falling_rapidly = avg10 < last * self.fall_ratio
        fired = bool(met_60s and avg10 > threshold and not falling_rapidly)
        self.observation = observation(
            self.name, f"{self.resource} pressure (full avg60)", avg60, ">", self.threshold, "%",
            held, self.duration, fired, relpath_or_none(ctx, row))
        self.observation["avg10"] = round(float(avg10), 2)
        if fired:
            logs.log(f"1m pressure {float(avg60):.2f} is over the threshold of {self.threshold} "
                     f"for {self.duration} seconds , total usage is {mb(usage_of(ctx, row))}MB")
            return PluginRet.CONTINUE
        return PluginRet.STOP
