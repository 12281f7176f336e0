"""``exists``: at least one of the cgroup patterns matches an existing cgroup; ``negate`` inverts
(reference §4.3; oomd ``plugins/Exists.cpp``).
"""

from __future__ import annotations

from oomd import parsing
from oomd.decision import observation
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register


@register("exists")
class Exists(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("negate", parsing.bool_parse, default=False),
        Arg("debug", parsing.bool_parse, default=False),
    )

    def run(self, ctx) -> PluginRet:
        found = int(ctx.resolve(self.cgroup).size)
        fired = (found > 0) != self.negate
        self.observation = observation(self.name, "matching cgroups", found,
                                       "==" if self.negate else ">", 0, "", fired=fired)
        return PluginRet.CONTINUE if fired else PluginRet.STOP
