"""``exists``: at least one of the cgroup patterns matches an existing cgroup; ``negate`` inverts
(reference §4.3; oomd ``plugins/Exists.cpp``).
"""

from __future__ import annotations

from oomd import parsing
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args, register


@register("exists")
class Exists(BasePlugin):
    ARGS = (
        *cgroup_args(),
        Arg("negate", parsing.bool_parse, default=False),
        Arg("debug", parsing.bool_parse, default=False),
    )

    def run(self, ctx) -> PluginRet:
        exists = ctx.resolve(self.cgroup).size > 0
        return PluginRet.CONTINUE if exists != self.negate else PluginRet.STOP
