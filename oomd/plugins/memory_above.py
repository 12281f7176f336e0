"""``memory_above``: memory usage over a threshold for a duration (reference §4.6; oomd
``plugins/MemoryAbove.cpp``).

``threshold`` (or ``threshold_anon``, which wins and watches memory.stat's ``anon``) is a size,
bare megabytes or a percentage of MemTotal, read from meminfo at init.
"""

from __future__ import annotations

import os

import numpy as np

from oomd import fs, logs, parsing
from oomd.errors import PluginArgError
from oomd.names import shown
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register
from oomd.plugins._common import HoldTimer, mb


@register("memory_above")
class MemoryAbove(BasePlugin):
    def __init__(self) -> None:
        super().__init__()
        self.timer = HoldTimer()
        self.is_anon = False

    def init(self, resources, args, context) -> int:
        args = dict(args)
        arg = "meminfo_location" if "meminfo_location" in args else None
        location = args.pop("meminfo_location", os.path.join(context.proc_root, "meminfo"))
        try:
            meminfo = fs.read_meminfo(location)
        except OSError as e:
            return self._fail(f"Could not read meminfo {location}: {e.strerror}", arg)
        if "MemTotal" not in meminfo:
            return self._fail("meminfo does not contain MemTotal", arg)
        mem_total = meminfo["MemTotal"]
        name = "threshold"
        if "threshold_anon" in args:
            name = "threshold_anon"
            args.pop("threshold", None)
            self.is_anon = True
        self.ARGS = (
            *cgroup_args(),
            Arg(name, lambda s: parsing.parse_size_or_percent(s, mem_total), required=True,
                attr="threshold"),
            Arg("duration", parsing.int_parse, required=True),
            Arg("debug", parsing.bool_parse, default=False),
        )
        self.METRICS = ("anon_usage",) if self.is_anon else ("current_usage",)
        return super().init(resources, args, context)

    def _fail(self, reason: str, arg: str | None) -> int:
        self.init_error = PluginArgError(reason, arg=arg)
        logs.log(reason, logs.ERR)
        return 1

    def _values(self, ctx, metric: str, rows: np.ndarray) -> np.ndarray:
        values, valid = ctx.get(metric, rows)
        return np.where(valid, values, 0)  # oomd's value_or(0)

    def _largest(self, ctx, rows: np.ndarray) -> tuple[int, str]:
        """oomd's scan: start from 0, a strictly larger usage replaces the one kept (ties keep
        the smallest path: rows come in path order)."""
        if rows.size == 0:
            return 0, ""
        if self.debug:
            current = self._values(ctx, "current_usage", rows)
            anon = self._values(ctx, "anon_usage", rows)
            for row, c, a in zip(rows, current, anon):
                logs.log(f'cgroup "{shown(ctx.relpath(int(row)))}" memory.current={int(c)}'
                         f"memory.stat (anon)={int(a)}")
        values = self._values(ctx, self.METRICS[0], rows)
        best = int(np.argmax(values))
        if values[best] <= 0:
            return 0, ""
        return int(values[best]), ctx.relpath(int(rows[best]))

    def run(self, ctx) -> PluginRet:
        usage, name = self._largest(ctx, ctx.resolve(self.cgroup))
        over = usage > self.threshold
        if over and self.debug:
            kind = "anon usage=" if self.is_anon else "memory usage="
            logs.log(f'cgroup "{shown(name)}" {kind}{usage} hit threshold={self.threshold}')
        held = self.timer.held_for(over, ctx.now)
        fired = held is not None and held >= self.duration
        self.observation = observation(
            self.name, "anon usage" if self.is_anon else "memory usage", usage, ">",
            self.threshold, "bytes", held, self.duration, fired,
            name or None)
        if not fired:
            return PluginRet.STOP
        if self.debug:
            logs.log(f'cgroup "{shown(name)}" current memory usage {mb(usage)}MB is over the '
                     f"threshold of {mb(self.threshold)}MB for {self.duration} seconds")
        return PluginRet.CONTINUE
