"""Prometheus metrics: values, the atomic textfile and the loopback/unix HTTP endpoint."""

from __future__ import annotations

import http.client
import os
import socket
import stat
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oomd.metrics import Metrics, MetricsError, parse_listen
from oomd.stats import Stats


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def quiet(msg, priority=6):
    pass


@pytest.fixture
def metrics():
    made = []

    def make(**kw):
        kw.setdefault("log", quiet)
        m = Metrics(**kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


def test_tick_kill_and_detector_values_are_exported(metrics):
    stats = Stats()
    stats.init_core()
    stats.set("oomd.kills", 2)
    m = metrics(stats=stats, clock=lambda: 1000.0)
    m.observe_tick(0.004, {"files_read": 120, "vanished": 3, "malformed": 0}, 40)
    m.observe_tick(0.002, {"files_read": 118, "unreadable": 1}, 39)
    m.detector_state("protect user", "high pressure", True)
    m.detector_state("protect user", "low swap", False)
    m.kill("protect user", "kill_by_pressure", "dry_run", 1.25)
    m.kill("protect user", "kill_by_pressure", "failed")
    m.config_reload(False)
    s = samples(m.render().decode())
    assert s[("pyoomd_tick_duration_seconds_count", ())] == 2
    assert s[("pyoomd_tick_duration_seconds_sum", ())] == pytest.approx(0.006)
    assert s[("pyoomd_tick_duration_seconds_bucket", (("le", "0.0025"),))] == 1
    assert s[("pyoomd_last_tick_timestamp_seconds", ())] == 1000.0
    assert s[("pyoomd_cgroup_files_read_total", ())] == 238
    assert s[("pyoomd_cgroup_file_read_errors_total", (("reason", "vanished"),))] == 3
    assert s[("pyoomd_cgroup_file_read_errors_total", (("reason", "unreadable"),))] == 1
    assert ("pyoomd_cgroup_file_read_errors_total", (("reason", "malformed"),)) not in s
    assert s[("pyoomd_cgroups_monitored", ())] == 39
    grp = (("detector_group", "high pressure"), ("ruleset", "protect user"))
    assert s[("pyoomd_detector_group_fired", grp)] == 1
    assert s[("pyoomd_detector_group_fired",
              (("detector_group", "low swap"), ("ruleset", "protect user")))] == 0
    kill = (("outcome", "dry_run"), ("plugin", "kill_by_pressure"), ("ruleset", "protect user"))
    assert s[("pyoomd_kills_total", kill)] == 1
    assert s[("pyoomd_fire_to_kill_seconds_count", (("ruleset", "protect user"),))] == 1
    assert s[("pyoomd_fire_to_kill_seconds_sum", (("ruleset", "protect user"),))] == 1.25
    assert s[("pyoomd_config_reloads_total", (("result", "error"),))] == 1
    assert s[("pyoomd_stat", (("key", "oomd.kills"),))] == 2
    assert not any(name.endswith("_created") for name, _ in s)


def test_forgotten_ruleset_loses_its_detector_series(metrics):
    m = metrics()
    m.detector_state("dropin", "g", True)
    m.detector_state("base", "g", True)
    m.forget_ruleset("dropin")
    s = samples(m.render().decode())
    assert ("pyoomd_detector_group_fired", (("detector_group", "g"), ("ruleset", "dropin"))) \
        not in s
    assert s[("pyoomd_detector_group_fired", (("detector_group", "g"), ("ruleset", "base")))] == 1


def test_textfile_is_written_at_start_and_after_ticks(metrics, tmp_path):
    path = tmp_path / "pyoomd.prom"
    m = metrics(textfile=str(path))
    m.start()
    assert m.wait_written()
    assert ("pyoomd_cgroups_monitored", ()) in samples(path.read_text())
    m.kill("r", "kill_by_swap_usage", "killed", 0.5)
    m.observe_tick(0.001, {"files_read": 5}, 2)
    assert m.wait_written()
    s = samples(path.read_text())
    assert s[("pyoomd_kills_total", (("outcome", "killed"), ("plugin", "kill_by_swap_usage"),
                                     ("ruleset", "r")))] == 1
    assert s[("pyoomd_cgroups_monitored", ())] == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["pyoomd.prom"]  # no temporary left behind


def test_textfile_is_never_seen_half_written(metrics, tmp_path):
    path = tmp_path / "pyoomd.prom"
    m = metrics(textfile=str(path))
    for i in range(200):  # many series make the file large
        m.detector_state(f"ruleset {i}", "group", bool(i % 2))
    m.start()
    m.wait_written()
    expected = len(samples(path.read_text()))
    stop = threading.Event()
    torn = []

    def reader():
        while not stop.is_set():
            text = path.read_text()
            if not text.endswith("\n") or len(samples(text)) != expected:
                torn.append(text)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(100):
            m.observe_tick(0.001, {"files_read": i}, i)
            m.wait_written()
    finally:
        stop.set()
        t.join()
    assert torn == []


def test_textfile_write_failure_is_logged_once_and_never_raises(tmp_path):
    logged = []
    m = Metrics(textfile=str(tmp_path / "missing" / "pyoomd.prom"),
                log=lambda msg, priority=6: logged.append(msg))
    m.start()
    try:
        for _ in range(3):
            m.observe_tick(0.001, None, 0)
            assert m.wait_written()
    finally:
        m.stop()
    tmp = f"{tmp_path}/missing/pyoomd.prom.{os.getpid()}.tmp"
    assert logged == [f"Writing metrics textfile failed: {tmp}: No such file or directory"]


def test_the_exit_of_killed_cgroups_is_exported(metrics):
    """After a delivered kill (issue 22): kill to empty, the bound passing, refused reaping."""
    m = metrics()
    m.kill_event("rs", "empty", 0.004)
    m.kill_event("rs", "empty", 1.7)
    m.kill_event("rs", "exit_timeout", 30.0)
    m.kill_event("rs", "reap_refused")
    m.kill_event("rs", "reap_refused")
    s = samples(m.render().decode())
    rs = (("ruleset", "rs"),)
    assert s[("pyoomd_kill_to_empty_seconds_count", rs)] == 2
    assert s[("pyoomd_kill_to_empty_seconds_sum", rs)] == pytest.approx(1.704)
    assert s[("pyoomd_kill_to_empty_seconds_bucket", (("le", "0.005"), ("ruleset", "rs")))] == 1
    assert s[("pyoomd_kill_to_empty_seconds_bucket", (("le", "1.0"), ("ruleset", "rs")))] == 1
    assert s[("pyoomd_kill_to_empty_seconds_bucket", (("le", "2.0"), ("ruleset", "rs")))] == 2
    assert s[("pyoomd_kill_exit_timeouts_total", rs)] == 1
    assert s[("pyoomd_reap_refused_total", rs)] == 2


def test_stop_writes_the_final_state(tmp_path):
    path = tmp_path / "pyoomd.prom"
    m = Metrics(textfile=str(path), log=quiet)
    m.start()
    m.wait_written()
    m.kill("r", "p", "killed")
    m.stop()
    assert samples(path.read_text())[
        ("pyoomd_kills_total", (("outcome", "killed"), ("plugin", "p"), ("ruleset", "r")))] == 1


def test_http_endpoint_on_loopback_serves_metrics(metrics):
    m = metrics(listen="127.0.0.1:0")
    m.start()
    m.kill("r", "p", "killed")
    host, port = m.endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200
    s = samples(resp.read().decode())
    conn.close()
    kill = (("outcome", "killed"), ("plugin", "p"), ("ruleset", "r"))
    assert s[("pyoomd_kills_total", kill)] == 1


def test_http_endpoint_compresses_when_asked(metrics):
    import gzip

    m = metrics(listen="127.0.0.1:0")
    m.start()
    m.observe_tick(0.001, None, 3)
    host, port = m.endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Encoding") == "gzip"
    assert resp.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    assert samples(gzip.decompress(resp.read()).decode())[("pyoomd_cgroups_monitored", ())] == 3
    conn.close()


def test_http_endpoint_on_ipv6_loopback(metrics):
    if not socket.has_ipv6:
        pytest.skip("Python built without IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    m = metrics(listen="[::1]:0")
    m.start()
    port = int(m.endpoint.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("::1", port, timeout=5)
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(self.unix_path)


def test_http_endpoint_on_unix_socket_serves_and_cleans_up(tmp_path):
    path = tmp_path / "metrics.sock"
    path.write_text("")  # a regular file is not replaced: only a stale socket would be
    path.unlink()
    m = Metrics(listen=f"unix:{path}", log=quiet)
    m.start()
    try:
        assert m.endpoint == f"unix:{path}"
        m.observe_tick(0.001, None, 7)
        conn = UnixHTTPConnection(str(path))
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        assert samples(resp.read().decode())[("pyoomd_cgroups_monitored", ())] == 7
        conn.close()
    finally:
        m.stop()
    assert not path.exists()


def test_stale_unix_socket_is_replaced(tmp_path):
    path = tmp_path / "metrics.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    m = Metrics(listen=f"unix:{path}", log=quiet)
    m.start()
    m.stop()


@pytest.mark.parametrize("spec", ["0.0.0.0:9101", "10.1.2.3:9101", "[::]:9101",
                                  "example.com:9101", "127.0.0.1", "127.0.0.1:99999",
                                  "unix:relative.sock"])
def test_non_loopback_or_malformed_listen_addresses_are_refused(spec):
    with pytest.raises(MetricsError):
        parse_listen(spec)


def test_loopback_forms_are_accepted():
    assert parse_listen("localhost:9101") == (socket.AF_INET, ("127.0.0.1", 9101))
    assert parse_listen("127.0.0.2:1") == (socket.AF_INET, ("127.0.0.2", 1))
    assert parse_listen("[::1]:9101") == (socket.AF_INET6, ("::1", 9101))
    assert parse_listen("unix:/run/oomd/m.sock") == (socket.AF_UNIX, "/run/oomd/m.sock")


def test_bind_failure_is_a_metrics_error(metrics):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        m = metrics(listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(MetricsError):
            m.start()
    finally:
        taken.close()


def test_the_exposition_is_prometheus_clients_byte_for_byte():
    """oomd.metrics writes the text format itself (importing prometheus-client costs the daemon
    ~7 MiB): the same metrics and updates render exactly as prometheus-client renders them."""
    import prometheus_client as pc

    from oomd import metrics as om

    pc.disable_created_metrics()
    theirs = pc.CollectorRegistry(auto_describe=True)
    ours = om.Registry()

    def both(kind, *args, **kw):
        return (getattr(pc, kind)(*args, registry=theirs, **kw),
                getattr(om, kind)(*args, registry=ours, **kw))

    hist = both("Histogram", "h_seconds", "A histogram", buckets=(0.0005, 0.5, 1.0, 2.5e7))
    lhist = both("Histogram", "lh_seconds", "Labelled\\ histogram\nhelp", ["ruleset"],
                 buckets=(0.1, 30.0))
    gauge = both("Gauge", "g", "A gauge")
    lgauge = both("Gauge", "lg", "Labelled gauge", ["ruleset", "detector_group"])
    counter = both("Counter", "c", "A counter")
    lcounter = both("Counter", "lc", "Labelled counter", ["z", "a"])
    both("Counter", "unused", "Labelled, never used", ["x"])
    for value in (0.0001, 0.5, 0.7, 3.0, 1e9, 12345678.5):
        for h in hist:
            h.observe(value)
    for h in lhist:
        h.labels('odd "name" \\ here').observe(12)
        h.labels("b").observe(0.05)
    for g in gauge:
        g.set(1733212345.123456)
    for g in lgauge:
        g.labels("r", "dg").set(1)
        g.labels("r", "other").set(0)
        g.labels("gone", "dg").set(1)
        g.remove("gone", "dg")
    for c in counter:
        c.inc(123456789)
        c.inc(0.25)
    for c in lcounter:
        c.labels("1", "2").inc()
        c.labels("3", "4").inc(2)
        with pytest.raises(ValueError):
            c.labels("3", "4").inc(-1)
    assert ours.render() == pc.generate_latest(theirs)
    assert om.go_float(float("nan")) == "NaN" and om.go_float(-float("inf")) == "-Inf"
