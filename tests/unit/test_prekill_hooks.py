"""The built-in prekill hooks: ``dummy_prekill_hook`` and ``exec_prekill_hook`` (reference §2.6)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from killfakes import kill_engine
from oomd import logs, plugin
from oomd.engine import ActionContext
from oomd.plugin import MonitoredResources, PluginConstructionContext

AC = ActionContext("rs", "dg", "f00d", None)


def make_hook(name: str, args: dict):
    hook = plugin.create(name, plugin.PREKILL_HOOK_REGISTRY)
    ret = hook.init(MonitoredResources(), args, PluginConstructionContext())
    return hook, ret


def wait_finished(inv, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inv.finished():
            return True
        time.sleep(0.01)
    return False


def script(tmp_path, body: str):
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_dummy_hook_logs_victim_and_finishes_at_once():
    hook, ret = make_hook("dummy_prekill_hook", {"cgroup": "workload.slice/*"})
    assert ret == 0
    assert hook.can_run_on("workload.slice/a.service")
    with logs.capture() as lines:
        inv = hook.fire("workload.slice/a.service", "/sys/fs/cgroup/workload.slice/a.service", AC)
    assert inv.finished()
    assert logs.messages(lines) == ["Prekill hook fired on workload.slice/a.service"]


def test_dummy_hook_requires_cgroup():
    hook, ret = make_hook("dummy_prekill_hook", {})
    assert ret == 1
    assert hook.init_error.reason == 'Required arg "cgroup" missing in plugin "dummy_prekill_hook"'


def test_exec_hook_gets_victim_in_environment(tmp_path):
    out = tmp_path / "env.txt"
    exe = script(tmp_path, f'echo "$OOMD_CGROUP|$OOMD_CGROUP_PATH|$OOMD_RULESET|'
                           f'$OOMD_DETECTOR_GROUP|$OOMD_ACTION_ID" > {out}\n')
    hook, ret = make_hook("exec_prekill_hook", {"cgroup": "/", "command": str(exe)})
    assert ret == 0
    inv = hook.fire("a/b", "/cg/a/b", AC)
    assert wait_finished(inv)
    assert out.read_text() == "a/b|/cg/a/b|rs|dg|f00d\n"


def test_exec_hook_passes_arguments_without_a_shell(tmp_path):
    out = tmp_path / "args.txt"
    exe = script(tmp_path, f'printf "%s\\n" "$@" > {out}\n')
    hook, _ = make_hook("exec_prekill_hook",
                        {"cgroup": "/", "command": f"{exe} 'two words' '$HOME'"})
    assert wait_finished(hook.fire("a", "/cg/a", AC))
    assert out.read_text() == "two words\n$HOME\n"


def test_exec_hook_does_not_wait_for_a_running_command(tmp_path):
    gate = tmp_path / "gate"
    exe = script(tmp_path, f"while [ ! -e {gate} ]; do sleep 0.01; done\n")
    hook, _ = make_hook("exec_prekill_hook", {"cgroup": "/", "command": str(exe)})
    inv = hook.fire("a", "/cg/a", AC)
    try:
        assert not inv.finished()
        gate.touch()
        assert wait_finished(inv)
    finally:
        inv.cancel()


def test_exec_hook_cancel_kills_command_and_its_children(tmp_path):
    pids = tmp_path / "pids"
    exe = script(tmp_path, f"sleep 1000 & echo $$ $! > {pids}; wait\n")
    hook, _ = make_hook("exec_prekill_hook", {"cgroup": "/", "command": str(exe)})
    inv = hook.fire("a", "/cg/a", AC)
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.01)
    shell, child = (int(x) for x in pids.read_text().split())
    with logs.capture() as lines:
        inv.cancel()
    assert wait_finished(inv)
    assert inv.proc.returncode == -9
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{child}") or "Z" in open(f"/proc/{child}/stat").read().split()[2]
    assert any("timed out; killed it" in m for m in logs.messages(lines))


def test_exec_hook_that_cannot_start_lets_the_kill_go_ahead(tmp_path):
    exe = script(tmp_path, "exit 0\n")
    hook, _ = make_hook("exec_prekill_hook", {"cgroup": "/", "command": str(exe)})
    exe.unlink()
    with logs.capture() as lines:
        assert hook.fire("a", "/cg/a", AC) is None
    assert any("failed to start" in m for m in logs.messages(lines))


@pytest.mark.parametrize("args, reason", [
    ({"cgroup": "/"}, 'Required arg "command" missing in plugin "exec_prekill_hook"'),
    ({"cgroup": "/", "command": "  "},
     'Failed to parse argument "command" of plugin "exec_prekill_hook": command is empty'),
    ({"cgroup": "/", "command": "/nonexistent/hook"},
     'Prekill hook command "/nonexistent/hook" is not executable'),
])
def test_exec_hook_rejects_bad_args(args, reason):
    hook, ret = make_hook("exec_prekill_hook", args)
    assert ret == 1 and hook.init_error.reason == reason


def test_config_hooks_match_victims_in_priority_order():
    engine = kill_engine({
        "rulesets": [{"name": "r", "detectors": [["d", {"name": "continue"}]],
                      "actions": [{"name": "continue"}]}],
        "prekill_hooks": [
            {"name": "dummy_prekill_hook", "args": {"cgroup": "system.slice"}},
            {"name": "exec_prekill_hook", "args": {"cgroup": "/", "command": "true"}},
        ],
    })
    with logs.capture() as lines:
        inv = engine.fire_prekill_hook("system.slice/x.service", "/cg/system.slice/x.service", AC)
    assert inv.finished()
    assert logs.messages(lines) == ["Prekill hook fired on system.slice/x.service"]
    inv = engine.fire_prekill_hook("user.slice/y", "/cg/user.slice/y", AC)
    assert wait_finished(inv)
