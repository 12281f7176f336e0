"""``nr_dying_descendants``: a matched cgroup's count of dying descendants is at most (``lte``,
the default) or above ``count`` (reference §4.9; oomd ``plugins/NrDyingDescendants.cpp``).

``negate`` inverts the result, as oomd's documentation lists it (oomd 0.5.0 itself rejects the
argument; docs/compat.md).
"""

from __future__ import annotations

import numpy as np

from oomd import logs, parsing
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register


@register("nr_dying_descendants")
class NrDyingDescendants(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("count", parsing.non_negative_int, required=True),
        Arg("lte", parsing.bool_parse, default=True),
        Arg("negate", parsing.bool_parse, default=False),
        Arg("debug", parsing.bool_parse, default=False),
    )
    METRICS = ("nr_dying_descendants",)

    def matches(self, ctx) -> bool:
        rows = ctx.resolve(self.cgroup)
        if rows.size == 0:
            return False
        values, valid = ctx.get("nr_dying_descendants", rows)
        hit = valid & ((values <= self.count) if self.lte else (values > self.count))
        if not hit.any():
            return False
        if self.debug:
            n = int(values[int(np.argmax(hit))])
            logs.log(f"nr_dying_descendants={n}{' <= ' if self.lte else ' > '}count={self.count}")
        return True

    def run(self, ctx) -> PluginRet:
        fired = self.matches(ctx) != self.negate
        self.observation = observation(self.name, "dying descendants",
                                       "matched" if fired != self.negate else "none matched",
                                       "<=" if self.lte else ">", self.count, "", fired=fired)
        return PluginRet.CONTINUE if fired else PluginRet.STOP
