"""``systemd_restart``: restart a systemd service (oomd ``plugins/systemd/SystemdRestart-inl.h``,
reference §4.19).

Args: ``service`` (required, non-empty), ``post_action_delay`` (non-negative int, default 15),
``dry`` (bool; ``--dry-run`` forces it), oomd HEAD's ``machine_type`` (restart the service in
that systemd-machined container, through its system bus). Init sets ``oomd.restarts`` to 0.

Run: dry logs ``DRY-RUN: restarting service <svc>``; otherwise ``RestartUnit(<svc>, "replace")``
on the system bus (``oomd.dbus``). On success: the kmsg record
``oomd kill: restarted systemd service=<svc>`` (`` (dry)`` appended when dry), ``oomd.restarts``
+1, STOP. On failure: CONTINUE.

oomd then sleeps ``post_action_delay`` seconds inside ``run``, freezing the whole daemon, before
its ruleset's own pause begins. pyoomd pauses only this ruleset, for ``post_action_delay`` plus the
ruleset's ``post_action_delay``: the chain becomes runnable at the same moment as in oomd, while
detectors and other rulesets keep running.
"""

from __future__ import annotations

from oomd import dbus, logs
from oomd.parsing import bool_parse, non_negative_int
from oomd.plugin import Arg, BasePlugin, PluginRet, register

RESTARTS_STAT = "oomd.restarts"


def _service(text: str) -> str:
    if not text:
        raise ValueError("service is empty")
    return text


@register("systemd_restart")
class SystemdRestart(BasePlugin):
    ARGS = (
        Arg("service", _service, required=True),
        Arg("post_action_delay", non_negative_int, default=15),
        Arg("dry", bool_parse, default=False),
        Arg("machine_type", str, default=""),  # oomd HEAD: a machined container's bus
    )

    def setup(self, context) -> None:
        self.dry = self.dry or context.force_dry
        context.stats.set(RESTARTS_STAT, 0)

    def restart(self) -> bool:
        if self.machine_type:
            return dbus.restart_service(self.service, machine=self.machine_type)
        return dbus.restart_service(self.service)

    def run(self, ctx) -> PluginRet:
        if self.dry:
            logs.log(f"DRY-RUN: restarting service {self.service}")
        elif not self.restart():
            return PluginRet.CONTINUE
        body = f"restarted systemd service={self.service}{' (dry)' if self.dry else ''}"
        kmsg = getattr(ctx, "kmsg", None)
        if kmsg is not None:
            kmsg.kill_record(body)
        else:
            logs.log(body, force=True)
        ctx.stats.increment(RESTARTS_STAT)
        ruleset = ctx.invoking_ruleset
        if ruleset is not None:
            ruleset.pause_actions(self.post_action_delay + ruleset.post_action_delay)
        return PluginRet.STOP
