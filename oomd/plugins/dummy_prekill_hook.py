"""``dummy_prekill_hook``: logs and finishes at once (oomd ``plugins/DummyPrekillHook.cpp``,
reference §2.6).

Args: ``cgroup`` (required). On a matching victim it logs ``Prekill hook fired on <relative
path>``; the invocation is finished immediately, so the kill goes ahead in the same tick.
"""

from __future__ import annotations

from oomd import logs
from oomd.names import shown
from oomd.plugin import PrekillHook, PrekillHookInvocation, register_prekill_hook


@register_prekill_hook("dummy_prekill_hook")
class DummyPrekillHook(PrekillHook):
    def fire(self, relpath: str, abspath: str, action_context) -> PrekillHookInvocation:
        logs.log(f"Prekill hook fired on {shown(relpath)}")
        return PrekillHookInvocation()
