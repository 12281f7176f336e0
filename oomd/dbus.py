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


MACHINES_DIR = "/run/systemd/machines"
MACHINE_BUS_SOCKET = "run/dbus/system_bus_socket"


def machine_bus_address(machine: str, machines_dir: str = MACHINES_DIR) -> str:
    """The system bus of a container registered with systemd-machined (oomd HEAD's
    ``machine_type``; libsystemd's ``sd_bus_open_system_machine``): the bus socket inside the
    machine's leader's root, reached through ``/proc/<leader>/root``. ``.host`` is this
    host. Raises OSError/ValueError with the reason."""
    if machine == ".host":
        return "SYSTEM"
    if not machine or "/" in machine or machine.startswith(".") or len(machine) > 255:
        raise ValueError(f"invalid machine name {machine!r}")
    with open(os.path.join(machines_dir, machine), encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key == "LEADER" and value.isdigit():
                return f"unix:path=/proc/{int(value)}/root/{MACHINE_BUS_SOCKET}"
    raise ValueError(f"machine {machine!r} has no leader process")


def call_systemd_manager(method: str, unit: str, mode: str = "replace", *,
                         timeout: float = DEFAULT_TIMEOUT, machine: str = "") -> str | None:
    """Call ``Manager.<method>(unit, mode)`` (signature ``ss``, reply ``o``), on the system
    bus or, with ``machine``, on that machine's (``machine_bus_address``).

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
        bus = machine_bus_address(machine) if machine else "SYSTEM"
        conn = open_dbus_connection(bus=bus, auth_timeout=timeout)
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


def restart_service(service: str, *, timeout: float = DEFAULT_TIMEOUT, machine: str = "") -> bool:
    where = f" on machine={machine}" if machine else ""
    logs.log(f'Restarting systemd service "{service}"{where}')
    return call_systemd_manager("RestartUnit", service, timeout=timeout,
                                machine=machine) is not None
