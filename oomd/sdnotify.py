"""systemd's notification protocol (sd_notify(3)) in a few lines, without libsystemd.

With ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``). The daemon
sends newline-separated ``KEY=VALUE`` datagrams: ``READY=1`` once start-up is done,
``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` at least every ``WATCHDOG_USEC``,
``RELOADING=1`` around a SIGHUP reload and ``STOPPING=1`` on the way out.

Every call is a non-blocking ``sendto`` on a datagram socket: it can never hold up the tick.
Without ``$NOTIFY_SOCKET`` every call is a no-op returning False, so the daemon calls them
unconditionally::

    notifier = Notifier.from_env(log=log)
    ... start-up ...
    notifier.ready("Monitoring 312 cgroups")
    while running:
        notifier.watchdog_tick(clock())     # pings when half the interval has passed
        ...
    notifier.stopping()
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Mapping

from oomd.logs_journal import SD_WARNING, stderr_log


def parse_address(value: str) -> str | bytes | None:
    """The sockaddr for a ``$NOTIFY_SOCKET`` value; None when it is not a unix address."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def parse_watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``$WATCHDOG_USEC`` if meant for ``pid`` (``$WATCHDOG_PID`` unset or equal to it)."""
    raw = environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    wpid = environ.get("WATCHDOG_PID")
    if wpid:
        try:
            if int(wpid) != pid:
                return None
        except ValueError:
            return None
    return usec


class Notifier:
    """Sends sd_notify messages to one address; every method is safe to call when disabled."""

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
        *,
        log: Callable[[str, int], None] | None = None,
    ) -> None:
        self._log = log or stderr_log
        self.address = address
        self._addr = parse_address(address) if address else None
        if address and self._addr is None:
            self._log(f"Ignoring NOTIFY_SOCKET={address}: not a unix socket address", SD_WARNING)
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._last_error: str | None = None
        self._last_ping: float | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
        *,
        log: Callable[[str, int], None] | None = None,
    ) -> "Notifier":
        env = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        address = env.get("NOTIFY_SOCKET") or None
        return cls(address, parse_watchdog_usec(env, pid) if address else None, log=log)

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds within which systemd expects ``WATCHDOG=1``; None when no watchdog is set."""
        return self.watchdog_usec / 1e6 if self.watchdog_usec and self.enabled else None

    # -- messages --------------------------------------------------------------------------

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines in one datagram; True if the datagram went out."""
        if self._addr is None:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(payload, self._addr)
        except OSError as e:
            reason = e.strerror or str(e)
            if reason != self._last_error:  # log a failure once, not every tick
                self._log(f"sd_notify to {self.address} failed: {reason}", SD_WARNING)
                self._last_error = reason
            return False
        self._last_error = None
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", "STATUS=" + _one_line(status))

    def status(self, text: str) -> bool:
        return self.notify("STATUS=" + _one_line(text))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (what Type=notify-reload requires too)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = ["RELOADING=1", f"MONOTONIC_USEC={usec}"]
        if status is not None:
            fields.append("STATUS=" + _one_line(status))
        return self.notify(*fields)

    def stopping(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify("STOPPING=1")
        return self.notify("STOPPING=1", "STATUS=" + _one_line(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_tick(self, now: float) -> bool:
        """Send ``WATCHDOG=1`` if half the watchdog interval has passed since the last one.

        ``now`` is monotonic seconds. Call it every tick: with a tick interval shorter than
        half of ``WatchdogSec`` systemd hears from a live loop in time, and a hung loop stops
        the pings, which is what the watchdog is for.
        """
        interval = self.watchdog_interval
        if interval is None:
            return False
        if self._last_ping is not None and now - self._last_ping < interval / 2:
            return False
        if self.watchdog():
            self._last_ping = now
            return True
        return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    # A newline would start a new KEY=VALUE assignment.
    return text.replace("\n", " ")
