"""The stats socket (reference §8): the server the daemon runs and the ``-d``/``-r`` client.

Mirrors ``src/oomd/Stats.cpp`` and ``src/oomd/StatsClient.cpp`` of oomd 0.5.0. The wire format
is jsoncpp's "styled" output (``Json::Value::toStyledString``), reproduced byte for byte by
:func:`styled`, so oomd's own ``oomd -d`` works against pyoomd and the other way round.

Daemon side::

    server = StatsServer(stats, runtime_dir, log=log)
    server.start()          # raises StatsServerError; the daemon then prints
                            # "Stats module failed to initialize" and exits 1
    ...
    server.stop()           # on clean shutdown: closes and unlinks the socket

CLI side (before any logging set-up, §9.2 step 2)::

    return run_client(runtime_dir, dump=args.dump_stats, reset=args.reset_stats)
"""

from __future__ import annotations

import errno
import json
import math
import os
import selectors
import socket
import sys
import threading
from typing import Callable, TextIO

from oomd.logs_journal import SD_ERR, stderr_log
from oomd.stats import Stats

STATS_SOCKET = "oomd-stats.socket"
IO_TIMEOUT = 2.0  # seconds, send and receive, both ends (oomd's SO_RCVTIMEO/SO_SNDTIMEO)
MAX_REQUEST = 32  # bytes read from a request, one at a time
BACKLOG = 5

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def socket_path(runtime_dir: str) -> str:
    """``<runtime-dir>/oomd-stats.socket``, joined textually as oomd does."""
    return runtime_dir + "/" + STATS_SOCKET


# ---------------------------------------------------------------------------------------------
# jsoncpp "styled" writer (StreamWriterBuilder defaults: TAB indent, " : ", sorted keys)


def _quote(s: str) -> str:
    """jsoncpp's ``valueToQuotedStringN`` with ``emitUTF8`` off: non-ASCII as ``\\uxxxx``."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif cp < 0x20:
            out.append(f"\\u{cp:04x}")
        elif cp < 0x80:
            out.append(ch)
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            cp -= 0x10000
            out.append(f"\\u{0xD800 + ((cp >> 10) & 0x3FF):04x}\\u{0xDC00 + (cp & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


def _sort_key(name: str) -> bytes:
    # jsoncpp orders members by memcmp of their UTF-8 bytes, then by length.
    return name.encode("utf-8", "surrogatepass")


def _scalar(v: object) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "null"
        if math.isinf(v):
            return "1e+9999" if v > 0 else "-1e+9999"
        s = "%.17g" % v
        if not any(c in s for c in ".e"):
            s += ".0"
        return s
    if isinstance(v, str):
        return _quote(v)
    raise TypeError(f"styled(): unsupported value type {type(v).__name__}")


def styled(value: object) -> str:
    """``Json::Value::toStyledString()`` of a dict/int/str/bool/None/float value tree.

    Ends with a newline. An empty object is ``{}`` inline; a non-empty object that is a member
    value starts on the next line, which leaves jsoncpp's trailing space after ``" : "``.
    """
    parts: list[str] = []
    indent = ""
    indented = True  # the writer starts "already indented": no newline before the root

    def with_indent(text: str) -> None:
        nonlocal indented
        if not indented:
            parts.append("\n" + indent)
        parts.append(text)
        indented = False

    def write(v: object) -> None:
        nonlocal indent
        if isinstance(v, dict):
            if not v:
                parts.append("{}")
                return
            with_indent("{")
            indent += "\t"
            names = sorted(v, key=_sort_key)
            for i, name in enumerate(names):
                with_indent(_quote(name))
                parts.append(" : ")
                write(v[name])
                if i + 1 < len(names):
                    parts.append(",")
            indent = indent[:-1]
            with_indent("}")
        else:
            parts.append(_scalar(v))

    write(value)
    return "".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Server


class StatsServerError(Exception):
    """The stats socket could not be set up; ``str()`` is oomd's log line for the step."""

    def __init__(self, errno_: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = errno_


class StatsServer:
    """Serves ``stats`` on ``<runtime_dir>/oomd-stats.socket`` from a daemon thread.

    One thread per connection, 2 s I/O timeouts, so a stuck client never holds up the daemon
    or shutdown for long. Nothing here runs on the daemon's tick thread after ``start()``.
    """

    def __init__(
        self,
        stats: Stats,
        runtime_dir: str,
        *,
        log: Callable[[str, int], None] | None = None,
        status: Callable[[], dict] | None = None,
    ) -> None:
        self.stats = stats
        self.status = status  # the "s" request (pyoomd status); None: unknown, as in oomd
        self.path = socket_path(runtime_dir)
        self._log = log or stderr_log
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._stopping = threading.Event()
        self._clients: set[threading.Thread] = set()
        self._clients_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, chmod 0666, listen and start the accept thread; raise StatsServerError."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise StatsServerError(
                    e.errno,
                    f"Pre-unlinking of socket path failed. {self.path}. Errno: {e.strerror}",
                ) from e
            try:
                sock.bind(self.path)
            except OSError as e:
                reason = e.strerror or str(e)
                raise StatsServerError(
                    e.errno, f"Error binding stats collection socket: {reason}"
                ) from e
            try:
                os.chmod(self.path, 0o666)
            except OSError as e:
                raise StatsServerError(e.errno, f"Unable to set permissions on {self.path}") from e
            try:
                sock.listen(BACKLOG)
            except OSError as e:
                raise StatsServerError(e.errno, f"Error listening at socket: {e.strerror}") from e
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name="oomd-stats", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = IO_TIMEOUT + 3.0) -> None:
        """Stop accepting, wait for client threads (bounded by their I/O timeouts), unlink."""
        if self._sock is None:
            return
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        with self._clients_lock:
            clients = list(self._clients)
        for t in clients:
            t.join(timeout)
        try:
            os.unlink(self.path)
        except OSError as e:
            self._log(f"Closing stats error: unlinking socket path: {e.strerror}", SD_ERR)
        self._sock.close()
        self._sock = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_r = self._wake_w = -1
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- threads ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                ready = sel.select()
                if self._stopping.is_set():
                    return
                if not any(key.fileobj is self._sock for key, _ in ready):
                    continue
                try:
                    conn, _ = self._sock.accept()
                except OSError as e:
                    self._log(f"Stats server error: accepting connection: {e.strerror}", SD_ERR)
                    continue
                conn.settimeout(IO_TIMEOUT)
                t = threading.Thread(
                    target=self._serve, args=(conn,), name="oomd-stats-client", daemon=True
                )
                with self._clients_lock:
                    self._clients.add(t)
                t.start()
        finally:
            sel.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            reply = self._handle(conn)
            if reply is not None:
                try:
                    conn.sendall(reply)
                except OSError as e:
                    self._log(f"Stats server error: writing to socket: {_strerror(e)}", SD_ERR)
        finally:
            conn.close()
            with self._clients_lock:
                self._clients.discard(threading.current_thread())

    def _handle(self, conn: socket.socket) -> bytes | None:
        mode: int | None = None
        num_read = 0
        while num_read < MAX_REQUEST:
            try:
                b = conn.recv(1)
            except OSError as e:
                self._log(f"Stats server error: reading from socket: {_strerror(e)}", SD_ERR)
                return None
            if not b or b in (b"\n", b"\0"):
                break
            if num_read == 0:
                mode = b[0]
            num_read += 1
        if num_read == 0:
            self._log("Stats server error: no msg received", SD_ERR)
        return self.reply(mode).encode()

    def reply(self, mode: int | None) -> str:
        """The styled reply for a request whose first byte is ``mode`` (None: empty request)."""
        body: dict[str, int] = {}
        error = 0
        if mode == ord("g"):
            body = self.stats.get_all()
        elif mode == ord("r"):
            self.stats.reset_all()
        elif mode == ord("0"):
            pass
        elif mode == ord("s") and self.status is not None:
            # pyoomd's own request: compact JSON (may be large); oomd's replies are unchanged
            return json.dumps({"body": self.status(), "error": 0})
        else:
            error = 1
            shown = "a" if mode is None else bytes([mode]).decode("latin-1")
            self._log(f"Stats server error: received unknown request: {shown}", SD_ERR)
        return styled({"body": body, "error": error})


def _strerror(e: OSError) -> str:
    """The C strerror text; a socket timeout is the EAGAIN that SO_RCVTIMEO gives in C."""
    if isinstance(e, TimeoutError) and e.errno is None:
        return os.strerror(errno.EAGAIN)
    return e.strerror or str(e)


# ---------------------------------------------------------------------------------------------
# Client (oomd -d / -r)


class _ClientFailure(Exception):
    """The request failed; its message lines were already printed."""


def _message(path: str, request: str, err: TextIO) -> str:
    """Send ``request + '\\n'`` and read the reply to EOF (StatsClient::msgSocket)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError as e:
        print(f"Error: creating client socket: {e.strerror}", file=err)
        raise _ClientFailure from e
    with sock:
        sock.settimeout(IO_TIMEOUT)
        try:
            sock.connect(path)
        except OSError as e:
            print(f"Error: connecting to stats socket: {_strerror(e)}\nSocket path: {path}",
                  file=err)
            raise _ClientFailure from e
        try:
            sock.sendall((request + "\n").encode())
        except OSError as e:
            print(f"Error: writing to stats socket: {_strerror(e)}", file=err)
            raise _ClientFailure from e
        chunks = []
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError as e:
                print(f"Error: reading from stats socket: {_strerror(e)}", file=err)
                raise _ClientFailure from e
            if not chunk:
                break
            chunks.append(chunk)
    # oomd builds the reply with C string functions: it stops at the first NUL.
    return b"".join(chunks).split(b"\0", 1)[0].decode("utf-8", "replace")


def _parse(text: str, err: TextIO) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        print(f"Unable to parse JSON: * Line {e.lineno}, Column {e.colno}\n  {e.msg}", file=err)
        raise _ClientFailure from e


def _as_int(v: object) -> int:
    """jsoncpp ``Value::asInt``: null 0, bool 0/1, numbers truncated, int32 range, else error."""
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        if _INT32_MIN <= v <= _INT32_MAX:
            return v
        raise ValueError("out of Int range")
    if isinstance(v, float):
        if math.isfinite(v) and _INT32_MIN <= v <= _INT32_MAX:
            return int(v)
        raise ValueError("double out of Int range")
    raise ValueError("not convertible to Int")


def _error_code(root: object, err: TextIO) -> int:
    try:
        if root is None:  # jsoncpp: indexing a null value makes it an empty object
            return 0
        if not isinstance(root, dict):
            raise ValueError("root is not an object")
        return _as_int(root.get("error"))
    except ValueError as e:
        print("StatsClient error: parsed error value not an int", file=err)
        raise _ClientFailure from e


def get_stats(runtime_dir: str, err: TextIO | None = None) -> dict[str, int] | None:
    """The daemon's stats map, or None after printing why (StatsClient::getStats)."""
    err = err or sys.stderr
    try:
        root = _parse(_message(socket_path(runtime_dir), "g", err), err)
        code = _error_code(root, err)
        if code:
            print(f"StatsClient error: received error code={styled(root['error'])}", file=err)
            return None
        body = root.get("body") if isinstance(root, dict) else None
        if body is None:
            return {}
        if not isinstance(body, dict):
            print("StatsClient error: parsed body not an object", file=err)
            return None
        try:
            return {k: _as_int(v) for k, v in body.items()}
        except ValueError:
            print("StatsClient error: parsed body value not an int", file=err)
            return None
    except _ClientFailure:
        return None


def request_reset(runtime_dir: str, err: TextIO | None = None) -> int:
    """Ask the daemon to zero every stat; 0 on success, else the error code (or 1)."""
    err = err or sys.stderr
    try:
        root = _parse(_message(socket_path(runtime_dir), "r", err), err)
        return _error_code(root, err)
    except _ClientFailure:
        return 1


def dump_stats(runtime_dir: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``oomd -d``: print the stats as a styled object plus an empty line; exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    stats = get_stats(runtime_dir, err)
    if stats is None:
        print("Failed to retrieve stats", file=err)
        return 1
    out.write(styled(stats) + "\n")
    out.flush()
    return 0


def reset_stats(runtime_dir: str, err: TextIO | None = None) -> int:
    """``oomd -r``: exit status."""
    err = err or sys.stderr
    res = request_reset(runtime_dir, err)
    if res != 0:
        print(f"Reset stats error: received error code= {res}", file=err)
        return 1
    return 0


def run_client(
    runtime_dir: str,
    *,
    dump: bool,
    reset: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``-d`` and/or ``-r`` as oomd's main() does them: dump first, stop if it fails."""
    if dump:
        rc = dump_stats(runtime_dir, out, err)
        if rc != 0 or not reset:
            return rc
    if reset:
        return reset_stats(runtime_dir, err)
    return 0
