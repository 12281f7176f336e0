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
from oomd.plugin import Arg, BasePlugin, PluginRet, register
from oomd.plugins._common import HoldTimer, mb


@register("memory_above")
class MemoryAbove(BasePlugin):
    def __init__(self) -> None:
        super().__init__()
        self.timer = HoldTimer()
        self.is_anon = False

    def init(self, resources, args, context) -> int:
        args = dict(args)
        location = args.pop("meminfo_location", os.path.join(context.proc_root, "meminfo"))
        try:
            meminfo = fs.read_meminfo(location)
        except OSError as e:
            return self._fail(f"Could not read meminfo {location}: {e.strerror}")
        if "MemTotal" not in meminfo:
            return self._fail("meminfo does not contain MemTotal")
        mem_total = meminfo["MemTotal"]
        name = "threshold"
        if "threshold_anon" in args:
            name = "threshold_anon"
            args.pop("threshold", None)
            self.is_anon = True
        self.ARGS = (
            Arg("cgroup", parsing.cgroup_patterns, required=True),
            Arg(name, lambda s: parsing.parse_size_or_percent(s, mem_total), required=True,
                attr="threshold"),
            Arg("duration", parsing.int_parse, required=True),
            Arg("debug", parsing.bool_parse, default=False),
        )
        self.METRICS = ("anon_usage",) if self.is_anon else ("current_usage",)
        return super().init(resources, args, context)

    def _fail(self, reason: str) -> int:
        self.init_error = PluginArgError(reason)
        logs.log(reason, logs.ERR)
        return 1

    def run(self, ctx) -> PluginRet:
        rows = ctx.resolve(self.cgroup)
        usage, name = 0, ""
        if rows.size:
            cur, cur_ok = ctx.get("current_usage", rows)
            anon, anon_ok = ctx.get("anon_usage", rows)
            cur = np.where(cur_ok, cur, 0)
            anon = np.where(anon_ok, anon, 0)
            if self.debug:
                for r, c, a in zip(rows, cur, anon):
                    logs.log(f'cgroup "{ctx.relpath(int(r))}" memory.current={int(c)}'
                             f"memory.stat (anon)={int(a)}")
            values = anon if self.is_anon else cur
            best = int(np.argmax(values))
            if values[best] > 0:  # oomd starts from 0 and replaces only on a strictly larger value
                usage, name = int(values[best]), ctx.relpath(int(rows[best]))
        over = usage > self.threshold
        if over and self.debug:
            kind = "anon usage=" if self.is_anon else "memory usage="
            logs.log(f'cgroup "{name}" {kind}{usage} hit threshold={self.threshold}')
        held = self.timer.held_for(over, ctx.now)
        if held is not None and held >= self.duration:
            if self.debug:
                logs.log(f'cgroup "{name}" current memory usage {mb(usage)}MB is over the '
                         f"threshold of {mb(self.threshold)}MB for {self.duration} seconds")
            return PluginRet.CONTINUE
        return PluginRet.STOP
