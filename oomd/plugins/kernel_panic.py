"""``kernel_panic``: crash the machine through sysrq (reference §4.20; oomd HEAD's
``plugins/KernelPanic.cpp``, which the 0.5.0 binary does not ship).

Because it takes the whole host down, it refuses to load unless the config says
``"confirm": "crash-the-host"``. ``dry`` (or ``--dry-run``) logs instead of crashing.
"""

from __future__ import annotations

import os

from oomd import logs, parsing
from oomd.errors import PluginArgError
from oomd.plugin import Arg, BasePlugin, PluginRet, register

CONFIRMATION = "crash-the-host"


@register("kernel_panic")
class KernelPanic(BasePlugin):
    ARGS = (
        Arg("confirm", str, default=""),
        Arg("dry", parsing.bool_parse, default=False),
        Arg("sysrq_trigger", str, default="/proc/sysrq-trigger"),
    )

    def setup(self, context) -> None:
        if self.confirm != CONFIRMATION:
            raise PluginArgError(
                f'kernel_panic crashes the host; set "confirm": "{CONFIRMATION}" to allow it',
                arg="confirm",
            )
        self.dry = self.dry or context.force_dry

    def run(self, ctx) -> PluginRet:
        if self.dry:
            logs.log(f"DRY-RUN: would trigger a kernel panic through {self.sysrq_trigger}")
            return PluginRet.STOP
        logs.log("Triggering a kernel panic")
        logs.flush()
        try:
            fd = os.open(self.sysrq_trigger, os.O_WRONLY)
        except OSError:
            logs.log(f"Failed to open {self.sysrq_trigger}")
            return PluginRet.CONTINUE
        try:
            written = os.write(fd, b"c")
        except OSError:
            written = 0
        finally:
            os.close(fd)
        if written != 1:
            logs.log("Failed to trigger kernel panic")
            return PluginRet.CONTINUE
        return PluginRet.STOP
