"""The stats socket server and client (reference §8), against each other and raw sockets."""

from __future__ import annotations

import io
import os
import socket
import stat
import threading

import pytest

from oomd.stats import Stats
from oomd.stats_socket import (
    STATS_SOCKET,
    StatsServer,
    StatsServerError,
    dump_stats,
    reset_stats,
    run_client,
    styled,
)

CORE_REPLY = (
    '{\n\t"body" : \n\t{\n\t\t"oomd.dropin.added" : 0,\n\t\t"oomd.dropin.fired" : 0,\n'
    '\t\t"oomd.kills" : 0\n\t},\n\t"error" : 0\n}\n'
)
EMPTY_OK = '{\n\t"body" : {},\n\t"error" : 0\n}\n'
EMPTY_ERR = '{\n\t"body" : {},\n\t"error" : 1\n}\n'


@pytest.fixture
def server(tmp_path):
    logged: list[str] = []
    stats = Stats()
    stats.init_core()
    srv = StatsServer(stats, str(tmp_path), log=lambda msg, priority=6: logged.append(msg))
    srv.start()
    srv.logged = logged
    yield srv
    srv.stop()


def raw_request(path: str, payload: bytes, half_close: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_styled_matches_jsoncpp_layout_for_nested_object():
    assert styled({"body": {"oomd.kills": 0, "oomd.dropin.added": 0, "oomd.dropin.fired": 0},
                   "error": 0}) == CORE_REPLY


def test_styled_empty_object_is_inline():
    assert styled({"body": {}, "error": 0}) == EMPTY_OK
    assert styled({}) == "{}\n"


def test_styled_escapes_keys_like_jsoncpp():
    out = styled({'q"\\\t\x01é😀': -5})
    assert out == '{\n\t"q\\"\\\\\\t\\u0001\\u00e9\\ud83d\\ude00" : -5\n}\n'


def test_styled_sorts_keys_bytewise():
    assert styled({"b": 1, "B": 2, "a": 3, "é": 4}).splitlines()[1:5] == [
        '\t"B" : 2,', '\t"a" : 3,', '\t"b" : 1,', '\t"\\u00e9" : 4'
    ]


def test_server_socket_has_mode_0666_and_replaces_stale_file(tmp_path):
    stale = tmp_path / STATS_SOCKET
    stale.write_text("stale")
    srv = StatsServer(Stats(), str(tmp_path), log=lambda msg, priority=6: None)
    srv.start()
    try:
        st = os.stat(stale)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o666
    finally:
        srv.stop()
    assert not stale.exists()


def test_get_replies_with_styled_core_stats(server):
    assert raw_request(server.path, b"g\n").decode() == CORE_REPLY


def test_only_first_byte_selects_the_request(server):
    assert raw_request(server.path, b"gX\n").decode() == CORE_REPLY
    assert raw_request(server.path, b"g").decode() == CORE_REPLY  # EOF ends the request
    assert raw_request(server.path, b"g\0").decode() == CORE_REPLY  # NUL ends it too


def test_reset_zeroes_values_and_keeps_keys(server):
    server.stats.set("oomd.kills", 7)
    server.stats.set("custom", -3)
    assert raw_request(server.path, b"r\n").decode() == EMPTY_OK
    assert server.stats.get_all() == {
        "oomd.kills": 0, "oomd.dropin.added": 0, "oomd.dropin.fired": 0, "custom": 0}


def test_noop_request_changes_nothing(server):
    server.stats.set("oomd.kills", 2)
    assert raw_request(server.path, b"0\n").decode() == EMPTY_OK
    assert server.stats.get("oomd.kills") == 2


def test_unknown_request_is_error_1_and_logged(server):
    assert raw_request(server.path, b"x\n").decode() == EMPTY_ERR
    assert "Stats server error: received unknown request: x" in server.logged


def test_empty_request_is_error_1(server):
    assert raw_request(server.path, b"").decode() == EMPTY_ERR
    assert "Stats server error: no msg received" in server.logged
    assert "Stats server error: received unknown request: a" in server.logged


def test_silent_client_times_out_without_reply(server):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(server.path)
        assert s.recv(100) == b""  # the server gave up after its 2 s receive timeout
    assert any(m.startswith("Stats server error: reading from socket: ") for m in server.logged)


def test_concurrent_clients_are_served_independently(server):
    # A silent client must not hold up others: each connection has its own thread.
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(server.path)
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(raw_request(server.path, b"g\n")))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert [r.decode() for r in results] == [CORE_REPLY] * 4
    finally:
        idle.close()


def test_bind_failure_raises_with_oomd_message(tmp_path):
    srv = StatsServer(Stats(), str(tmp_path / "missing-dir"), log=lambda msg, priority=6: None)
    with pytest.raises(StatsServerError) as ei:
        srv.start()
    assert str(ei.value) == "Error binding stats collection socket: No such file or directory"
    assert not srv.running


def test_stop_unlinks_socket_and_is_idempotent(server):
    path = server.path
    server.stop()
    assert not os.path.exists(path)
    server.stop()


def test_dump_prints_styled_body_and_empty_line(server, tmp_path):
    server.stats.set("oomd.kills", 3)
    out, err = io.StringIO(), io.StringIO()
    assert dump_stats(str(tmp_path), out, err) == 0
    assert out.getvalue() == (
        '{\n\t"oomd.dropin.added" : 0,\n\t"oomd.dropin.fired" : 0,\n\t"oomd.kills" : 3\n}\n\n')
    assert err.getvalue() == ""


def test_reset_client_zeroes_daemon_stats(server, tmp_path):
    server.stats.set("oomd.kills", 3)
    err = io.StringIO()
    assert reset_stats(str(tmp_path), err) == 0
    assert server.stats.get("oomd.kills") == 0


def test_dump_then_reset_in_one_call(server, tmp_path):
    server.stats.set("oomd.kills", 5)
    out = io.StringIO()
    assert run_client(str(tmp_path), dump=True, reset=True, out=out, err=io.StringIO()) == 0
    assert '"oomd.kills" : 5' in out.getvalue()
    assert server.stats.get("oomd.kills") == 0


def test_dump_without_daemon_fails_with_oomd_messages(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert run_client(str(tmp_path), dump=True, reset=True, out=out, err=err) == 1
    assert out.getvalue() == ""
    assert err.getvalue() == (
        "Error: connecting to stats socket: No such file or directory\n"
        f"Socket path: {tmp_path}/{STATS_SOCKET}\n"
        "Failed to retrieve stats\n")


def test_reset_without_daemon_fails_with_code_1(tmp_path):
    err = io.StringIO()
    assert reset_stats(str(tmp_path), err) == 1
    assert err.getvalue().endswith("Reset stats error: received error code= 1\n")


class FakeDaemon:
    """A socket that answers every connection with a fixed reply (for the client's error paths)."""

    def __init__(self, directory, reply: bytes):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(os.path.join(directory, STATS_SOCKET))
        self.sock.listen(5)
        self.reply = reply
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(self.reply)

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize(
    ("reply", "dump_err", "reset_err"),
    [
        (b'{"body":{},"error":2}', "StatsClient error: received error code=2\n\n"
         "Failed to retrieve stats\n", "Reset stats error: received error code= 2\n"),
        (b'{"body":{},"error":"x"}', "StatsClient error: parsed error value not an int\n"
         "Failed to retrieve stats\n", "StatsClient error: parsed error value not an int\n"
         "Reset stats error: received error code= 1\n"),
    ],
)
def test_client_reports_daemon_errors_like_oomd(tmp_path, reply, dump_err, reset_err):
    fake = FakeDaemon(str(tmp_path), reply)
    try:
        err = io.StringIO()
        assert dump_stats(str(tmp_path), io.StringIO(), err) == 1
        assert err.getvalue() == dump_err
        err = io.StringIO()
        assert reset_stats(str(tmp_path), err) == 1
        assert err.getvalue() == reset_err
    finally:
        fake.close()


def test_client_converts_values_like_jsoncpp_asint(tmp_path):
    fake = FakeDaemon(str(tmp_path), b'{"body":{"a":1.5,"b":true,"c":null}, "error": 0}')
    try:
        out = io.StringIO()
        assert dump_stats(str(tmp_path), out, io.StringIO()) == 0
        assert out.getvalue() == '{\n\t"a" : 1,\n\t"b" : 1,\n\t"c" : 0\n}\n\n'
    finally:
        fake.close()


def test_client_rejects_unparsable_reply(tmp_path):
    fake = FakeDaemon(str(tmp_path), b"garbage")
    try:
        err = io.StringIO()
        assert dump_stats(str(tmp_path), io.StringIO(), err) == 1
        assert err.getvalue().startswith("Unable to parse JSON: * Line 1, Column 1\n")
        assert err.getvalue().endswith("Failed to retrieve stats\n")
    finally:
        fake.close()
