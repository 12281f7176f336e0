"""``exec_prekill_hook``: run an executable before a kill, without blocking the loop.

pyoomd's own hook (oomd's open-source build has only ``dummy_prekill_hook``, reference §2.6).

Args: ``cgroup`` (victims it applies to, matched with the prekill-hook rule of §2.6), ``xattr``
(oomd HEAD: victims whose directory carries this extended attribute; one of the two is
required unless ``--compat head``) and ``command`` (required; the executable and its arguments, split like a shell would but never
run through one). On a matching victim the hook starts the command in its own session with
stdin on /dev/null and, in its environment:

* ``OOMD_CGROUP``: the victim's path relative to the cgroup filesystem (``system.slice/x``);
* ``OOMD_CGROUP_PATH``: its absolute path;
* ``OOMD_RULESET``, ``OOMD_DETECTOR_GROUP``, ``OOMD_ACTION_ID``: what fired.

The kill plugin polls the invocation once per tick and kills the victim when the command has
exited, or when the ruleset's ``prekill_hook_timeout`` has passed: then the command's whole
process group gets SIGKILL and is reaped on later ticks. A command that cannot be started is
logged and the kill goes ahead at once.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from oomd import logs
from oomd.errors import PluginArgError
from oomd.names import shown
from oomd.plugin import Arg, PrekillHook, PrekillHookInvocation, register_prekill_hook

# commands killed at the timeout, reaped without waiting on later polls
_to_reap: list[subprocess.Popen] = []


def _reap_finished() -> None:
    _to_reap[:] = [p for p in _to_reap if p.poll() is None]


def _command(text: str) -> list[str]:
    argv = shlex.split(text)
    if not argv:
        raise ValueError("command is empty")
    return argv


class ExecPrekillInvocation(PrekillHookInvocation):
    def __init__(self, proc: subprocess.Popen, argv0: str, relpath: str) -> None:
        self.proc = proc
        self.argv0 = argv0
        self.relpath = relpath
        self._reported = False

    def finished(self) -> bool:
        _reap_finished()
        rc = self.proc.poll()
        if rc is None:
            return False
        if not self._reported:
            self._reported = True
            logs.log(f"Prekill hook {self.argv0} on {shown(self.relpath)} exited with status {rc}")
        return True

    def cancel(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            self.proc.kill()
        logs.log(f"Prekill hook {self.argv0} on {shown(self.relpath)} timed out; killed it")
        if self.proc.poll() is None:
            _to_reap.append(self.proc)


@register_prekill_hook("exec_prekill_hook")
class ExecPrekillHook(PrekillHook):
    ARGS = (
        *PrekillHook.ARGS,
        Arg("command", _command, required=True),
    )

    def setup(self, context) -> None:
        exe = self.command[0]
        if os.sep in exe and not os.access(exe, os.X_OK):
            raise PluginArgError(f'Prekill hook command "{exe}" is not executable', arg="command")

    def fire(self, relpath: str, abspath: str, action_context) -> PrekillHookInvocation | None:
        _reap_finished()
        env = dict(os.environ)
        env["OOMD_CGROUP"] = relpath
        env["OOMD_CGROUP_PATH"] = abspath
        if action_context is not None:
            env["OOMD_RULESET"] = action_context.ruleset
            env["OOMD_DETECTOR_GROUP"] = action_context.detectorgroup
            env["OOMD_ACTION_ID"] = action_context.uuid
        try:
            proc = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
        except OSError as e:
            logs.log(f"Prekill hook {self.command[0]} on {shown(relpath)} failed to start: "
                     f"{e.strerror}")
            return None
        logs.log(f"Prekill hook {self.command[0]} fired on {shown(relpath)} (pid {proc.pid})")
        return ExecPrekillInvocation(proc, self.command[0], relpath)
