"""``continue``: always CONTINUE (oomd ``plugins/ContinuePlugin.cpp``, reference §4.1).

Accepts any arguments without looking at them.
"""

from oomd.plugin import BasePlugin, PluginRet, register


@register("continue")
class ContinuePlugin(BasePlugin):
    ARGS = None

    def run(self, ctx) -> PluginRet:
        return PluginRet.CONTINUE
