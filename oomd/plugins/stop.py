"""``stop``: always STOP (oomd ``plugins/StopPlugin.cpp``, reference §4.2).

Accepts any arguments. As an action it ends the chain and starts the ruleset's post_action_delay.
"""

from oomd.plugin import BasePlugin, PluginRet, register


@register("stop")
class StopPlugin(BasePlugin):
    ARGS = None

    def run(self, ctx) -> PluginRet:
        return PluginRet.STOP
