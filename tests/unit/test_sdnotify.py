"""sd_notify over real datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import os
import socket

import pytest

from oomd.sdnotify import Notifier, parse_address, parse_watchdog_usec


@pytest.fixture
def receiver(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    yield path, s
    s.close()


def recv(sock) -> str:
    return sock.recv(4096).decode()


def test_ready_with_status_arrives_in_one_datagram(receiver):
    path, sock = receiver
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.ready("Monitoring 3 cgroups")
    assert recv(sock) == "READY=1\nSTATUS=Monitoring 3 cgroups"


def test_status_newlines_cannot_inject_assignments(receiver):
    path, sock = receiver
    n = Notifier(path)
    assert n.status("bad\nREADY=1")
    assert recv(sock) == "STATUS=bad READY=1"


def test_stopping_and_watchdog_messages(receiver):
    path, sock = receiver
    n = Notifier(path)
    assert n.watchdog() and n.stopping()
    assert [recv(sock), recv(sock)] == ["WATCHDOG=1", "STOPPING=1"]


def test_reloading_carries_monotonic_usec(receiver):
    path, sock = receiver
    assert Notifier(path).reloading("re-reading config")
    lines = recv(sock).split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) > 0
    assert lines[2] == "STATUS=re-reading config"


def test_abstract_namespace_address_is_reached():
    name = f"pyoomd-test-notify-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(5)
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert recv(s) == "READY=1"
    finally:
        s.close()


def test_without_notify_socket_everything_is_a_noop():
    n = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert not n.ready() and not n.watchdog() and not n.watchdog_tick(100.0)


def test_non_unix_address_is_ignored_and_logged():
    logged = []
    n = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"},
                          log=lambda msg, priority=6: logged.append(msg))
    assert not n.enabled and not n.ready()
    assert logged == ["Ignoring NOTIFY_SOCKET=vsock:2:1234: not a unix socket address"]


def test_missing_receiver_fails_once_in_the_log(tmp_path):
    logged = []
    n = Notifier(str(tmp_path / "nobody"), log=lambda msg, priority=6: logged.append(msg))
    assert not n.ready() and not n.watchdog()
    assert len(logged) == 1 and logged[0].startswith(f"sd_notify to {tmp_path}/nobody failed: ")


def test_full_receiver_queue_drops_instead_of_blocking(receiver):
    path, _ = receiver
    logged = []
    n = Notifier(path, log=lambda msg, priority=6: logged.append(msg))
    results = [n.watchdog() for _ in range(5000)]  # nobody reads: the queue fills up
    assert results[0] and not all(results)
    assert len(logged) == 1 and "Resource temporarily unavailable" in logged[0]


@pytest.mark.parametrize(
    ("env", "pid", "usec"),
    [({"WATCHDOG_USEC": "30000000"}, 7, 30_000_000),
     ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7, 30_000_000),
     ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7, None),
     ({"WATCHDOG_USEC": "zero"}, 7, None),
     ({"WATCHDOG_USEC": "0"}, 7, None),
     ({}, 7, None)],
)
def test_watchdog_usec_only_for_our_pid(env, pid, usec):
    assert parse_watchdog_usec(env, pid) == usec


def test_watchdog_tick_pings_every_half_interval(receiver):
    path, sock = receiver
    n = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, pid=1)
    assert n.watchdog_interval == 10.0
    sent = [t for t in [0.0, 1.0, 4.9, 5.0, 6.0, 9.9, 10.1, 15.0] if n.watchdog_tick(t)]
    assert sent == [0.0, 5.0, 10.1]
    assert [recv(sock) for _ in sent] == ["WATCHDOG=1"] * 3


def test_parse_address_forms():
    assert parse_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_address("@abstract") == b"\0abstract"
    assert parse_address("relative") is None
