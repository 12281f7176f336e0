"""``systemd_restart`` (reference §4.19) against a real dbus-daemon on a private bus, where a fake
``org.freedesktop.systemd1`` Manager answers ``RestartUnit``. Skipped, with the reason, where
dbus-daemon or jeepney is missing; nothing is installed at test time."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest

from killfakes import kill_engine
from support import StubContext
from oomd import logs
from oomd.kmsg import Kmsg
from oomd.stats import Stats

DBUS_DAEMON = shutil.which("dbus-daemon")
try:
    import jeepney  # noqa: F401
    from jeepney import HeaderFields, MessageType, new_error, new_method_return
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import open_dbus_connection
    HAVE_JEEPNEY = True
except ImportError:
    HAVE_JEEPNEY = False

needs_bus = pytest.mark.skipif(
    DBUS_DAEMON is None or not HAVE_JEEPNEY,
    reason="needs dbus-daemon (Debian package dbus) and jeepney (a pyoomd dependency)")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class FakeSystemd:
    """org.freedesktop.systemd1's Manager, answering RestartUnit from a thread."""

    def __init__(self, address: str, units: set[str]) -> None:
        self.conn = open_dbus_connection(address)
        reply = self.conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.systemd1"))
        assert reply.body == (1,)  # primary owner
        self.units = units
        self.calls: list[tuple[str, tuple]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.05)
            except TimeoutError:
                continue
            except OSError:
                return
            h = msg.header
            if h.message_type != MessageType.method_call:
                continue
            member = h.fields.get(HeaderFields.member)
            self.calls.append((member, msg.body))
            unit = msg.body[0] if msg.body else ""
            if (h.fields.get(HeaderFields.path) != "/org/freedesktop/systemd1"
                    or h.fields.get(HeaderFields.interface) != "org.freedesktop.systemd1.Manager"):
                self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownObject"))
            elif member != "RestartUnit":
                self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))
            elif unit not in self.units:
                self.conn.send(new_error(msg, "org.freedesktop.systemd1.NoSuchUnit", "s",
                                         (f"Unit {unit} not found.",)))
            else:
                self.conn.send(new_method_return(msg, "o", ("/org/freedesktop/systemd1/job/42",)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.conn.close()


@pytest.fixture
def system_bus(tmp_path, monkeypatch):
    socket = tmp_path / "system_bus_socket"
    conf = tmp_path / "bus.conf"
    conf.write_text(BUS_CONFIG.format(socket=socket))
    daemon = subprocess.Popen([DBUS_DAEMON, "--nofork", "--print-address", f"--config-file={conf}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = daemon.stdout.readline().strip()
        if not address:
            pytest.skip(f"dbus-daemon did not start: {daemon.stderr.read()[-300:]}")
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        systemd = FakeSystemd(address, {"workload.service"})
        try:
            yield systemd
        finally:
            systemd.close()
    finally:
        daemon.terminate()
        daemon.wait(timeout=5)


def run_restart(tmp_path, args: dict, stats=None):
    stats = stats or Stats()
    engine = kill_engine({
        "rulesets": [{"name": "rs", "post_action_delay": "30",
                      "detectors": [["dg", {"name": "continue"}]],
                      "actions": [{"name": "systemd_restart", "args": args},
                                  {"name": "mock", "args": {"id": "after"}}]}],
    }, stats=stats, cgroup_fs="/sys/fs/cgroup")
    ctx = StubContext(stats)
    ctx.kmsg = Kmsg(str(tmp_path / "kmsg"))
    with logs.capture() as lines:
        engine.tick(ctx)
    ctx.kmsg.close()
    kmsg = (tmp_path / "kmsg").read_text()
    return engine, stats, logs.messages(lines), kmsg


@needs_bus
def test_restarts_service_over_system_bus(system_bus, tmp_path):
    import mock_plugins

    engine, stats, msgs, kmsg = run_restart(tmp_path, {"service": "workload.service",
                                                       "post_action_delay": "10"})
    assert system_bus.calls == [("RestartUnit", ("workload.service", "replace"))]
    assert 'Restarting systemd service "workload.service"' in msgs
    assert "Queued service job as /org/freedesktop/systemd1/job/42" in msgs
    assert kmsg == "oomd kill: restarted systemd service=workload.service\n"
    assert stats.get("oomd.restarts") == 1
    assert mock_plugins.RUNS["after"] == 0  # STOP ended the chain
    ruleset = engine.rulesets[0].ruleset
    assert ruleset.pause_actions_until == engine.clock() + 10 + 30


@needs_bus
def test_unknown_service_logs_systemd_error_and_continues(system_bus, tmp_path):
    import mock_plugins

    _, stats, msgs, kmsg = run_restart(tmp_path, {"service": "nope.service"})
    assert "Failed to issue method call: Unit nope.service not found." in msgs
    assert kmsg == ""
    assert stats.get("oomd.restarts") == 0
    assert mock_plugins.RUNS["after"] == 1


def test_no_system_bus_logs_and_continues(tmp_path, monkeypatch):
    import mock_plugins

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    _, stats, msgs, kmsg = run_restart(tmp_path, {"service": "workload.service"})
    assert any(m.startswith("Failed to connect to system bus: ") for m in msgs)
    assert kmsg == ""
    assert mock_plugins.RUNS["after"] == 1


def test_dry_restart_writes_dry_record_without_calling_systemd(tmp_path, monkeypatch):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    _, stats, msgs, kmsg = run_restart(tmp_path, {"service": "workload.service", "dry": "true"})
    assert "DRY-RUN: restarting service workload.service" in msgs
    assert not any("system bus" in m for m in msgs)
    assert kmsg == "oomd kill: restarted systemd service=workload.service (dry)\n"
    assert stats.get("oomd.restarts") == 1


def test_init_resets_restart_stat():
    stats = Stats()
    stats.set("oomd.restarts", 7)
    kill_engine({"rulesets": [{"name": "rs", "detectors": [["dg", {"name": "continue"}]],
                               "actions": [{"name": "systemd_restart",
                                            "args": {"service": "x.service"}}]}]}, stats=stats, cgroup_fs="/sys/fs/cgroup")
    assert stats.get("oomd.restarts") == 0


@pytest.mark.parametrize("args, reason", [
    ({}, 'Required arg "service" missing in plugin "systemd_restart"'),
    ({"service": ""}, 'Failed to parse argument "service" of plugin "systemd_restart": service is empty'),
    ({"service": "x", "post_action_delay": "-1"},
     'Failed to parse argument "post_action_delay" of plugin "systemd_restart": \'-1\' is negative'),
])
def test_rejects_bad_args(args, reason):
    from oomd.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        kill_engine({"rulesets": [{"name": "rs", "detectors": [["dg", {"name": "continue"}]],
                                   "actions": [{"name": "systemd_restart", "args": args}]}]})
    assert e.value.reason.endswith(reason)


def test_dry_run_flag_makes_restart_dry():
    from oomd import plugin
    from oomd.plugin import MonitoredResources, PluginConstructionContext

    p = plugin.create("systemd_restart")
    assert p.init(MonitoredResources(), {"service": "x.service"},
                  PluginConstructionContext(force_dry=True)) == 0
    assert p.dry
