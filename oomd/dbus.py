"""Talking to systemd's manager over the system D-Bus (oomd ``plugins/systemd/BaseSystemdPlugin.cpp``).

Uses jeepney, a pure-Python D-Bus implementation, so pyoomd needs neither libsystemd nor a
``systemctl`` process. The system bus is ``$DBUS_SYSTEM_BUS_ADDRESS`` or the standard socket.
Each call opens its own connection, like oomd's, and is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import os

from oomd import logs

SYSTEMD_BUS_NAME = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
SYSTEMD_MANAGER = "org.freedesktop.systemd1.Manager"
DEFAULT_TIMEOUT = 5.0


def call_systemd_manager(method: str, unit: str, mode: str = "replace", *,
                         timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Call ``Manager.<method>(unit, mode)`` (signature ``ss``, reply ``o``).

    Returns the queued job's object path, or None after logging oomd's failure line.
    """
    try:
        from jeepney import DBusAddress, DBusErrorResponse, HeaderFields, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import unwrap_msg
    except ImportError as e:
        logs.log(f"Failed to connect to system bus: {e}")
        return None
    try:
        conn = open_dbus_connection(bus="SYSTEM", auth_timeout=timeout)
    except (OSError, ValueError, StopIteration) as e:
        logs.log(f"Failed to connect to system bus: {_why(e)}")
        return None
    except Exception as e:  # noqa: BLE001 - jeepney's auth errors are not OSErrors
        logs.log(f"Failed to connect to system bus: {type(e).__name__}: {e}")
        return None
    try:
        address = DBusAddress(SYSTEMD_PATH, bus_name=SYSTEMD_BUS_NAME, interface=SYSTEMD_MANAGER)
        msg = new_method_call(address, method, "ss", (unit, mode))
        try:
            reply = conn.send_and_get_reply(msg, timeout=timeout)
            body = unwrap_msg(reply)
        except DBusErrorResponse as e:
            text = e.data[0] if e.data and isinstance(e.data[0], str) else e.name
            logs.log(f"Failed to issue method call: {text}")
            return None
        except (OSError, TimeoutError) as e:
            logs.log(f"Failed to issue method call: {_why(e)}")
            return None
        if reply.header.fields.get(HeaderFields.signature) != "o" or len(body) != 1:
            logs.log(f"Failed to parse response message: {os.strerror(22)}")
            return None
        logs.log(f"Queued service job as {body[0]}")
        return body[0]
    finally:
        conn.close()


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "Connection timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def restart_service(service: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    logs.log(f'Restarting systemd service "{service}"')
    return call_systemd_manager("RestartUnit", service, timeout=timeout) is not None
