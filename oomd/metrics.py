"""Prometheus metrics for fleets (issue 6 item 3).

Two outputs, either or both:

* a node-exporter textfile (``--metrics-textfile PATH``), rewritten after every tick by a
  background thread: generated into ``PATH.<pid>.tmp`` in the same directory, then renamed
  over ``PATH`` (atomic: the collector never sees half a file; the temporary name does not end
  in ``.prom``, so the collector ignores it);
* an HTTP endpoint on loopback (``127.0.0.1:9101``, ``[::1]:9101``, ``localhost:9101``) or a
  unix socket (``unix:/run/oomd/metrics.sock``), served from its own threads.

The tick only updates counters in memory (a few microseconds, see bench/test_bench_metrics.py);
text generation and file I/O happen off the tick thread.

The metric types and the text exposition (format 0.0.4, byte for byte what prometheus-client's
``generate_latest`` writes for the same values: tests/unit/test_metrics.py compares them) are
this module's own: importing prometheus-client costs the daemon ~7 MiB of resident memory (its
exposition module imports ssl, urllib.request, http.server, wsgiref, gzip: OpenSSL's libcrypto
alone is 3.4 MiB), and the HTTP server is imported only with ``--metrics-listen``.

Metrics (all in the ``pyoomd_`` namespace):

======================================== ========= =============================================
name                                     type      meaning
======================================== ========= =============================================
``pyoomd_tick_duration_seconds``         histogram wall time of one tick (refresh+prerun+run)
``pyoomd_last_tick_timestamp_seconds``   gauge     unix time the last tick ended (staleness)
``pyoomd_cgroup_files_read_total``       counter   cgroup control files read
``pyoomd_cgroup_file_read_errors_total`` counter   failed reads, label ``reason`` (``vanished``,
                                                   ``unreadable``, ``malformed``...)
``pyoomd_cgroups_monitored``             gauge     cgroups in the reader's table this tick
``pyoomd_detector_group_fired``          gauge     1 if the detector group fired this tick, labels
                                                   ``ruleset``, ``detector_group``
``pyoomd_kills_total``                   counter   kill attempts, labels ``ruleset``, ``plugin``,
                                                   ``outcome`` (``killed``, ``dry``,
                                                   ``failed``, ``skipped``, ``in_progress``)
``pyoomd_fire_to_kill_seconds``          histogram detector group firing to kill, label
                                                   ``ruleset``
``pyoomd_kill_to_empty_seconds``         histogram a delivered kill to its cgroup being empty
                                                   (or removed), label ``ruleset``
``pyoomd_kill_exit_timeouts_total``      counter   kills whose cgroup was still populated when
                                                   the plugin's ``exit_timeout`` passed, label
                                                   ``ruleset``
``pyoomd_reap_refused_total``            counter   ``process_mrelease`` calls refused (EPERM,
                                                   ENOSYS: seccomp, LSM, old kernel), label
                                                   ``ruleset``
``pyoomd_config_reloads_total``          counter   SIGHUP reloads, label ``result`` (``ok``,
                                                   ``error``)
``pyoomd_stat``                          gauge     the oomd stats map (``pyoomd -d``), label
                                                   ``key``
======================================== ========= =============================================

Label values carry no cgroup name (a per-cgroup ruleset's series are its ruleset's); every value
goes through ``oomd.names.printable``, so a ruleset name from a config cannot put a control
character into the exposition text.

Daemon use::

    metrics = Metrics(textfile=opts.metrics_textfile, listen=opts.metrics_listen,
                      stats=stats, log=logs.log)
    metrics.start()                       # raises MetricsError on a bad address or bind failure
    # each tick:
    metrics.detector_state(ruleset, group, fired)    # per detector group
    metrics.kill(ruleset, plugin, outcome, seconds)  # per kill attempt
    metrics.kill_event(ruleset, event, seconds)      # after a kill (the killer's thread)
    metrics.observe_tick(duration, read_stats, n_cgroups)   # last: also schedules the write
    # at exit:
    metrics.stop()
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import stat
import threading
import time
from typing import Callable, Iterable, Mapping

from oomd.logs_journal import SD_ERR, SD_INFO, stderr_log
from oomd.names import printable
from oomd.stats import Stats

TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FIRE_TO_KILL_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
KILL_TO_EMPTY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                         60.0)
FILES_READ = "files_read"
HTTP_TIMEOUT = 5.0  # seconds a scraper may take to send its request


class MetricsError(Exception):
    """A metrics output could not be set up (bad listen address, bind failure)."""


# ---------------------------------------------------------------------------------------------
# metric types and the text exposition


def go_float(d) -> str:
    """A sample value as Prometheus (and prometheus-client's ``floatToGoString``) writes it."""
    d = float(d)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:   # Go switches to exponents sooner than Python
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _label_value(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _sample(name: str, labels: Iterable[tuple[str, str]], value) -> str:
    pairs = sorted(labels)
    if not pairs:
        return f"{name} {go_float(value)}\n"
    text = ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs)
    return f"{name}{{{text}}} {go_float(value)}\n"


class Registry:
    """The metrics of one ``Metrics``, in registration order; one lock for every update and
    for rendering (updates come from the tick's thread and the killer's)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._metrics: list = []

    def register(self, metric) -> None:
        self._metrics.append(metric)

    def render(self) -> bytes:
        out: list[str] = []
        with self.lock:
            for m in self._metrics:
                m.render(out)
        return "".join(out).encode("utf-8")


class _Metric:
    """A metric family: ``labels(*values)`` gives a child (created on first use), a metric
    without label names is its own only child."""

    kind = ""
    suffix = ""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 registry: Registry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = registry.lock
        self._children: dict[tuple[str, ...], list] = {}
        if not self.labelnames:
            self._children[()] = self._new()
        registry.register(self)

    def _new(self) -> list:
        return [0.0]

    def labels(self, *values: str) -> "_Child":
        if not self.labelnames or len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        with self._lock:
            cell = self._children.get(key)
            if cell is None:
                cell = self._children[key] = self._new()
        return type(self).Child(self, cell)

    def remove(self, *values: str) -> None:
        with self._lock:
            self._children.pop(tuple(str(v) for v in values), None)

    def _own(self) -> "_Child":
        if self.labelnames:
            raise ValueError(f"{self.name}: a labelled metric is updated through labels()")
        return type(self).Child(self, self._children[()])

    def render(self, out: list[str]) -> None:
        name = self.name + self.suffix
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {self.kind}\n")
        for key, cell in self._children.items():
            self._samples(out, list(zip(self.labelnames, key)), cell)

    def _samples(self, out: list[str], labels: list, cell: list) -> None:
        out.append(_sample(self.name + self.suffix, labels, cell[0]))


class _Child:
    __slots__ = ("_m", "_cell")

    def __init__(self, metric: _Metric, cell: list) -> None:
        self._m = metric
        self._cell = cell


class Counter(_Metric):
    kind = "counter"
    suffix = "_total"

    class Child(_Child):
        __slots__ = ()

        def inc(self, amount: float = 1) -> None:
            if amount < 0:
                raise ValueError("Counters can only be incremented by non-negative amounts.")
            with self._m._lock:
                self._cell[0] += amount

    def inc(self, amount: float = 1) -> None:
        self._own().inc(amount)


class Gauge(_Metric):
    kind = "gauge"

    class Child(_Child):
        __slots__ = ()

        def set(self, value: float) -> None:
            with self._m._lock:
                self._cell[0] = float(value)

    def set(self, value: float) -> None:
        self._own().set(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 buckets: Iterable[float], registry: Registry) -> None:
        bounds = [float(b) for b in buckets]
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        self._les = tuple(go_float(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry=registry)

    def _new(self) -> list:
        return [0.0] * (len(self.bounds) + 1)   # per bucket, then the sum

    class Child(_Child):
        __slots__ = ()

        def observe(self, amount: float) -> None:
            cell = self._cell
            with self._m._lock:
                cell[-1] += amount
                for i, bound in enumerate(self._m.bounds):
                    if amount <= bound:
                        cell[i] += 1
                        break

    def observe(self, amount: float) -> None:
        self._own().observe(amount)

    def _samples(self, out: list[str], labels: list, cell: list) -> None:
        acc = 0.0
        name = self.name
        for le, n in zip(self._les, cell):
            acc += n
            out.append(_sample(f"{name}_bucket", labels + [("le", le)], acc))
        out.append(_sample(f"{name}_count", labels, acc))
        if self.bounds[0] >= 0:
            out.append(_sample(f"{name}_sum", labels, cell[-1]))


class _StatsGauge:
    """The oomd stats map at render time (no per-tick cost)."""

    def __init__(self, stats: Stats, registry: Registry) -> None:
        self.stats = stats
        registry.register(self)

    def render(self, out: list[str]) -> None:
        out.append("# HELP pyoomd_stat oomd stats map values (pyoomd -d)\n"
                   "# TYPE pyoomd_stat gauge\n")
        for key, value in sorted(self.stats.get_all().items()):
            out.append(_sample("pyoomd_stat", [("key", printable(key))], value))


class Metrics:
    """The registry, the per-tick API and the two outputs."""

    def __init__(
        self,
        *,
        textfile: str | None = None,
        listen: str | None = None,
        stats: Stats | None = None,
        registry: Registry | None = None,
        log: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # no `*_created` series: they would double the textfile for no use to an OOM killer's
        # operators
        self.registry = registry or Registry()
        self.textfile = textfile
        self.listen = listen
        self._log = log or stderr_log
        self._clock = clock
        r = self.registry
        self.tick_duration = Histogram(
            "pyoomd_tick_duration_seconds", "Wall time of one tick", buckets=TICK_BUCKETS,
            registry=r)
        self.last_tick = Gauge(
            "pyoomd_last_tick_timestamp_seconds", "Unix time the last tick ended", registry=r)
        self.files_read = Counter(
            "pyoomd_cgroup_files_read", "cgroup control files read", registry=r)
        self.read_errors = Counter(
            "pyoomd_cgroup_file_read_errors", "cgroup control file reads that failed",
            ["reason"], registry=r)
        self.cgroups = Gauge(
            "pyoomd_cgroups_monitored", "cgroups in the reader's table", registry=r)
        self.fired = Gauge(
            "pyoomd_detector_group_fired", "1 if the detector group fired in the last tick",
            ["ruleset", "detector_group"], registry=r)
        self.kills = Counter(
            "pyoomd_kills", "Kill attempts by outcome", ["ruleset", "plugin", "outcome"],
            registry=r)
        self.fire_to_kill = Histogram(
            "pyoomd_fire_to_kill_seconds", "Time from a detector group firing to the kill",
            ["ruleset"], buckets=FIRE_TO_KILL_BUCKETS, registry=r)
        self.kill_to_empty = Histogram(
            "pyoomd_kill_to_empty_seconds", "Time from a delivered kill to its cgroup being empty",
            ["ruleset"], buckets=KILL_TO_EMPTY_BUCKETS, registry=r)
        self.exit_timeouts = Counter(
            "pyoomd_kill_exit_timeouts", "Kills still populated when exit_timeout passed",
            ["ruleset"], registry=r)
        self.reap_refused = Counter(
            "pyoomd_reap_refused", "process_mrelease calls refused (EPERM, ENOSYS)",
            ["ruleset"], registry=r)
        self.reloads = Counter(
            "pyoomd_config_reloads", "SIGHUP config reloads", ["result"], registry=r)
        if stats is not None:
            _StatsGauge(stats, r)
        self._fired_children: dict[tuple[str, str], object] = {}
        self._error_children: dict[str, object] = {}
        self._writer: _TextfileWriter | None = None
        self._http: _HttpEndpoint | None = None

    # -- per-tick API --------------------------------------------------------------------------

    def observe_tick(
        self, duration: float, read_stats: Mapping[str, int] | None, n_cgroups: int
    ) -> None:
        """Record one tick; ``read_stats`` holds this tick's counts: ``files_read`` and, under
        any other key, failed reads of that kind. Schedules the textfile write."""
        self.tick_duration.observe(duration)
        self.cgroups.set(n_cgroups)
        if read_stats:
            for key, n in read_stats.items():
                if not n:
                    continue
                if key == FILES_READ:
                    self.files_read.inc(n)
                else:
                    child = self._error_children.get(key)
                    if child is None:
                        child = self._error_children[key] = self.read_errors.labels(
                            printable(key))
                    child.inc(n)
        self.last_tick.set(self._clock())
        if self._writer is not None:
            self._writer.request()

    def detector_state(self, ruleset: str, group: str, fired: bool) -> None:
        child = self._fired_children.get((ruleset, group))
        if child is None:
            child = self._fired_children[(ruleset, group)] = self.fired.labels(
                printable(ruleset), printable(group))
        child.set(1 if fired else 0)

    def kill(
        self, ruleset: str, plugin: str, outcome: str, fire_to_kill_seconds: float | None = None
    ) -> None:
        ruleset = printable(ruleset)
        self.kills.labels(ruleset, plugin, outcome).inc()
        if fire_to_kill_seconds is not None:
            self.fire_to_kill.labels(ruleset).observe(fire_to_kill_seconds)

    def kill_event(self, ruleset: str, event: str, seconds: float | None = None) -> None:
        """After a delivered kill (see ``EngineObserver.kill_event``); any thread."""
        ruleset = printable(ruleset)
        if event == "empty" and seconds is not None:
            self.kill_to_empty.labels(ruleset).observe(seconds)
        elif event == "exit_timeout":
            self.exit_timeouts.labels(ruleset).inc()
        elif event == "reap_refused":
            self.reap_refused.labels(ruleset).inc()

    def config_reload(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "error").inc()

    def forget_ruleset(self, ruleset: str) -> None:
        """Drop the detector-state series of a ruleset that no longer exists (a removed
        drop-in, a reload): a stale ``fired=1`` must not linger. Counters are kept."""
        for key in [k for k in self._fired_children if k[0] == ruleset]:
            del self._fired_children[key]
            self.fired.remove(*(printable(k) for k in key))

    # -- outputs -------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition text (what the textfile and the endpoint serve)."""
        return self.registry.render()

    def start(self) -> None:
        """Start the configured outputs; the textfile is written once right away."""
        if self.listen:
            self._http = _HttpEndpoint(self.listen, self.render)
            self._http.start()
            self._log(f"Serving metrics on {self._http.describe()}", SD_INFO)
        if self.textfile:
            self._writer = _TextfileWriter(self.textfile, self.render, self._log)
            self._writer.start()
            self._writer.request()

    @property
    def endpoint(self) -> str | None:
        """Where the HTTP endpoint listens (``127.0.0.1:PORT``, ``unix:PATH``), once started."""
        return self._http.describe() if self._http is not None else None

    def write_textfile_now(self) -> None:
        """Write the textfile synchronously (at exit, in tests)."""
        if self._writer is not None:
            self._writer.write()

    def wait_written(self, timeout: float = 5.0) -> bool:
        """Block until every requested textfile write is done (tests, shutdown)."""
        return self._writer.wait_idle(timeout) if self._writer is not None else True

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer.write()  # the final state, including the last tick
            self._writer = None
        if self._http is not None:
            self._http.stop()
            self._http = None


# ---------------------------------------------------------------------------------------------
# textfile


class _TextfileWriter:
    """Writes the textfile from a thread when asked; requests made while writing coalesce."""

    def __init__(self, path: str, render: Callable[[], bytes], log) -> None:
        self.path = path
        self.tmp = f"{path}.{os.getpid()}.tmp"
        self._render = render
        self._log = log
        self._cond = threading.Condition()
        self._pending = False
        self._busy = False
        self._stopping = False
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="pyoomd-metrics", daemon=True)
        self.writes = 0

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        with self._cond:
            self._pending = True
            self._cond.notify()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._pending = False
                self._busy = True
            try:
                self.write()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def write(self) -> None:
        try:
            data = self._render()
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except OSError as e:
            reason = f"{e.filename or self.path}: {e.strerror}"
            if reason != self._last_error:  # once per distinct failure, not every tick
                self._log(f"Writing metrics textfile failed: {reason}", SD_ERR)
                self._last_error = reason
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            return
        self._last_error = None
        self.writes += 1


# ---------------------------------------------------------------------------------------------
# HTTP endpoint


def parse_listen(spec: str) -> tuple[int, object]:
    """``host:port`` on loopback, ``[v6]:port`` or ``unix:PATH`` → (family, address)."""
    if spec.startswith("unix:"):
        path = spec[len("unix:"):]
        if not path.startswith("/"):
            raise MetricsError(
                f"metrics listen address {spec!r}: unix socket path must be absolute")
        return socket.AF_UNIX, path
    host, sep, port_s = spec.rpartition(":")
    if not sep or not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise MetricsError(f"metrics listen address {spec!r}: expected HOST:PORT or unix:PATH")
    port = int(port_s)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise MetricsError(
            f"metrics listen address {spec!r}: {host!r} is not an IP address") from None
    if not ip.is_loopback:
        raise MetricsError(f"metrics listen address {spec!r}: only loopback addresses or unix "
                           "sockets are served (put a proxy in front to expose it)")
    return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), (host, port)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _server_classes():
    """The HTTP handler and servers, built on first use: ``http.server`` (with http.client,
    email, ssl behind it) is imported only by a daemon that serves metrics over HTTP."""
    import socketserver
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        timeout = HTTP_TIMEOUT  # a silent client cannot hold a thread forever
        render: Callable[[], bytes]

        def do_GET(self) -> None:   # noqa: N802 - http.server's name
            body = type(self).render()
            gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
            if gzipped:
                import gzip

                body = gzip.compress(body)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:   # noqa: A002 - no access log
            pass

    class TcpServer(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    class Tcp6Server(TcpServer):
        address_family = socket.AF_INET6

    class UnixServer(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_UNIX

        def server_bind(self) -> None:
            try:
                st = os.lstat(self.server_address)
                if stat.S_ISSOCK(st.st_mode):
                    os.unlink(self.server_address)  # stale socket from an earlier run
            except FileNotFoundError:
                pass
            socketserver.TCPServer.server_bind(self)
            os.chmod(self.server_address, 0o666)
            self.server_name = "localhost"
            self.server_port = 0

        def get_request(self):
            conn, _ = self.socket.accept()
            return conn, ("unix", 0)

    return Handler, {socket.AF_UNIX: UnixServer, socket.AF_INET6: Tcp6Server}, TcpServer


class _HttpEndpoint:
    def __init__(self, spec: str, render: Callable[[], bytes]) -> None:
        self.family, self.address = parse_listen(spec)
        base, servers, tcp = _server_classes()
        handler = type("PyoomdMetricsHandler", (base,), {"render": staticmethod(render)})
        cls = servers.get(self.family, tcp)
        try:
            self.server = cls(self.address, handler)
        except OSError as e:
            raise MetricsError(f"metrics endpoint {spec}: {e.strerror or e}") from e
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.5}, name="pyoomd-metrics-http", daemon=True)

    def describe(self) -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.address}"
        host, port = self.server.server_address[:2]
        return f"[{host}]:{port}" if self.family == socket.AF_INET6 else f"{host}:{port}"

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.family != socket.AF_UNIX else 0

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)
        if self.family == socket.AF_UNIX:
            try:
                os.unlink(self.address)
            except OSError:
                pass
