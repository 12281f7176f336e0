"""Per-tick cost of the operator pieces the daemon calls every tick while idle.

Run: python -m pytest bench/test_bench_ops.py --benchmark-only
"""

from __future__ import annotations

import socket

import pytest

from oomd.dropin_watch import DropInWatcher
from oomd.sdnotify import Notifier


def quiet(msg, priority=6):
    pass


@pytest.mark.benchmark(group="ops-per-tick")
def test_bench_dropin_poll_idle(benchmark, tmp_path):
    (tmp_path / "a.json").write_text("{}")
    w = DropInWatcher(str(tmp_path), log=quiet)
    w.poll()
    result = benchmark(w.poll)
    w.close()
    assert result == []


@pytest.mark.benchmark(group="ops-per-tick")
def test_bench_watchdog_tick_not_due(benchmark, tmp_path):
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(tmp_path / "notify"))
    n = Notifier(str(tmp_path / "notify"), 30_000_000, log=quiet)
    n.watchdog_tick(0.0)
    benchmark(n.watchdog_tick, 1.0)
    rx.close()


@pytest.mark.benchmark(group="ops-per-tick")
def test_bench_watchdog_send(benchmark, tmp_path):
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(tmp_path / "notify"))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    n = Notifier(str(tmp_path / "notify"), log=quiet)

    def send_and_drain():
        n.watchdog()
        rx.recv(64)

    benchmark(send_and_drain)
    rx.close()
