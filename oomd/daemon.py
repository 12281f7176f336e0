"""Start-up (reference §9.2) and the tick loop (§1.1).

The loop blocks SIGTERM, SIGINT and SIGHUP and waits for them between ticks (a signalfd in the
wait of ``oomd.wakeup``, which also starts ticks early on PSI triggers), so a signal is handled
between ticks, never in the middle of one (oomd HEAD does the same with ``sigtimedwait``).
SIGTERM/SIGINT end the loop cleanly; SIGHUP re-reads the base config and swaps it in only if it
compiles.

Each tick: apply drop-in changes, run the engine (refresh the context, prerun, run), then
report to the metrics and the systemd watchdog.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time

from oomd import logs, plugin, protect
from oomd.compat import Compat
from oomd.config.compiler import Compiler
from oomd.config.parser import parse_file
from oomd.dropins import DropIns
from oomd.engine import EngineObserver
from oomd.errors import ConfigError
from oomd.fs import cgroup2_mount, psi_available
from oomd.kill import Killer
from oomd.kmsg import Kmsg
from oomd.options import Options
from oomd.stats import Stats
from oomd.xattr_trust import XattrTrust

EXIT_OK, EXIT_USAGE, EXIT_SYSTEM = 0, 1, 3
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
READ_PROBLEMS = ("vanished", "unreadable", "malformed", "missing")  # OomdContext.read_stats


def cgroup_fs_valid(cgroup_fs: str, mount: str | None) -> bool:
    """oomd's textual check: the cgroup2 mount's components prefix the --cgroup-fs string's."""
    if mount is None:
        return False
    want = [c for c in mount.split("/") if c]
    have = [c for c in cgroup_fs.split("/") if c]
    return have[: len(want)] == want


def describe_hierarchy(cgroup_fs: str) -> list[str]:
    """What this host's cgroup2 tree can and cannot give us, for the start-up log."""
    try:
        with open(os.path.join(cgroup_fs, "cgroup.controllers")) as f:
            controllers = set(f.read().split())
    except OSError as e:
        return [f"cannot read {cgroup_fs}/cgroup.controllers ({e.strerror}): "
                "is --cgroup-fs a cgroup2 mount?"]
    lines = [f"cgroup2 at {cgroup_fs} has controllers: {' '.join(sorted(controllers)) or 'none'}"]
    if "memory" not in controllers:
        lines.append("no memory controller on cgroup2 (hybrid hierarchy?): memory.current, "
                     "memory.stat, memory.low/min/high/max and swap files of cgroups are unavailable; "
                     "memory-size detectors and rankings see no data for non-root cgroups")
    if "io" not in controllers:
        lines.append("no io controller on cgroup2: io.stat is unavailable (io cost is 0)")
    return lines


class MetricsObserver(EngineObserver):
    def __init__(self, metrics) -> None:
        self.metrics = metrics

    def detector_group(self, ruleset: str, group: str, fired: bool) -> None:
        self.metrics.detector_state(ruleset, group, fired)

    def kill(self, ruleset: str, plugin: str, outcome: str, fire_to_kill_seconds) -> None:
        self.metrics.kill(ruleset, plugin, outcome, fire_to_kill_seconds)

    def kill_event(self, ruleset: str, plugin: str, event: str, seconds) -> None:
        self.metrics.kill_event(ruleset, event, seconds)


class Daemon:
    def __init__(self, options: Options, *, clock=time.monotonic) -> None:
        self.o = options
        self.clock = clock
        self.stats = Stats()
        self.kmsg: Kmsg | None = None
        self.killer = Killer()  # one for every kill plugin: a kill in progress holds for all
        self.engine = None
        self.base_ir = None
        self.ctx = None
        self.dropins: DropIns | None = None
        self.watcher = None
        self.metrics = None
        self.notifier = None
        self.stats_server = None
        self.status_service = None  # oomd.status.StatusService: pyoomd status requests
        self.flight = None  # oomd.flight.FlightRecorder (without --record)
        self.wakeup = None  # oomd.wakeup.Wakeup: the wait between ticks
        self._lock_fd = -1
        self.ticks = 0
        self._last_read_stats: dict[str, int] = {}
        # one for the daemon's life: an ignored user. xattr is reported once, across reloads
        self.xattr_trust = XattrTrust(self.o.trust_user_xattrs)
        self.record = None  # oomd.record.session.RecordSession with --record

    # -- building blocks -----------------------------------------------------------------------

    def construction_context(self) -> plugin.PluginConstructionContext:
        return plugin.PluginConstructionContext(
            cgroup_fs=self.o.cgroup_fs.rstrip("/") or "/",
            stats=self.stats,
            force_dry=self.o.dry_run,
            kmsg_path=self.o.kmsg_path,
            devices=self.o.devices,
            ssd_coeffs=self.o.ssd_coeffs,
            hdd_coeffs=self.o.hdd_coeffs,
            compat=Compat.for_mode(self.o.compat),
            killer=self.killer,
            xattr_trust=self.xattr_trust,
        )

    def load_plugins(self) -> None:
        plugin.load_builtin_plugins()
        plugin.load_entry_point_plugins()
        for module in self.o.plugin_modules:
            plugin.load_plugin_module(module)

    def compiler(self, file: str) -> Compiler:
        return Compiler(self.construction_context(), file, self.clock)

    def compile(self, path: str):
        """Parse and compile the base config: (engine, IR). Raises OSError or ConfigError."""
        root = parse_file(path)
        return self.compiler(path).compile(root), root

    def make_context(self):
        from oomd.context import OomdContext

        ctx = OomdContext(
            self.o.cgroup_fs.rstrip("/") or "/",
            devices=self.o.devices,
            ssd_coeffs=self.o.ssd_coeffs,
            hdd_coeffs=self.o.hdd_coeffs,
            stats=self.stats,
            interval=self.o.interval,
            cache_files=True if self.o.assume_cgroup2 else None,
            remember_absent=True if self.o.assume_cgroup2 else None,
        )
        ctx.kmsg = self.kmsg
        return ctx

    def install_engine(self, engine) -> None:
        inner = MetricsObserver(self.metrics) if self.metrics is not None else None
        if self.record is not None:
            from oomd.record.session import decision_metrics

            inner = self.record.observer(inner)
            engine.extra_monitored = decision_metrics
        elif self.flight is not None:
            from oomd.flight import ticks_for

            if self.o.flight_ticks is None:
                self.flight.set_ticks(ticks_for(engine, self.o.interval))
            inner = self.flight.observer(inner)
        if inner is not None:
            engine.observer = inner
        self.engine = engine

    def start_flight_recorder(self, engine) -> None:
        """The flight recorder (oomd.flight): on unless ``--flight-recorder 0`` or
        ``--record`` (a recording already holds every tick and decision)."""
        if self.o.flight_ticks == 0 or self.record is not None:
            return
        from oomd.flight import FlightRecorder, ticks_for

        ticks = self.o.flight_ticks or ticks_for(engine, self.o.interval)
        self.flight = FlightRecorder(self.o.runtime_dir, ticks, stats=self.stats,
                                     meta=self.recording_meta())

    def recording_meta(self) -> dict:
        """The META of a recording (``--record``) or a flight-recorder file: the run's
        settings and the config's text, what replay needs."""
        from oomd.record.writer import base_meta

        try:
            with open(self.o.config, "rb") as f:
                text = f.read(4 << 20).decode("utf-8", "surrogateescape")
        except OSError:
            text = None
        return base_meta(cgroup_fs=self.o.cgroup_fs.rstrip("/") or "/", interval=self.o.interval,
                         config_file=self.o.config, config=text, dry_run=self.o.dry_run,
                         compat=self.o.compat, devices=[list(d) for d in self.o.devices],
                         drop_in_dir=self.o.drop_in_dir)

    def start_recording(self) -> bool:
        """``--record DIR``: the writer thread and the session the ticks feed."""
        if not self.o.record_dir:
            return True
        from oomd.record.session import RecordSession
        from oomd.record.writer import Recorder

        meta = self.recording_meta()
        try:
            recorder = Recorder(self.o.record_dir, meta, max_bytes=self.o.record_max_bytes,
                                log=logs.log)
        except OSError as e:
            logs.log(f"Cannot record into {self.o.record_dir}: {e.strerror}", logs.ERR)
            return False
        self.record = RecordSession(recorder, log=logs.log)
        logs.log(f"Recording every tick into {self.o.record_dir} "
                 f"(at most {self.o.record_max_bytes} bytes)")
        return True

    # -- start-up ------------------------------------------------------------------------------

    def load_config(self, invalid: str):
        """Compile --config: (engine, IR), or None after logging why (oomd's messages, with
        ``invalid`` as the last line for a config that does not compile)."""
        try:
            return self.compile(self.o.config)
        except OSError as e:
            logs.log(f"Could not open confg_file={self.o.config}: {e.strerror}", logs.ERR)
        except ConfigError as e:
            logs.log(str(e), logs.ERR)
            logs.log(invalid, logs.ERR)
        return None

    def check_config(self) -> int:
        if self.load_config("Config is not valid") is None:
            return EXIT_USAGE
        logs.log(f"Config {self.o.config} is valid")
        return EXIT_OK

    def acquire_lock(self) -> bool:
        path = os.path.join(self.o.runtime_dir, "oomd.lock")
        try:
            os.makedirs(self.o.runtime_dir, exist_ok=True)
            self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            print(f'Failed to open lock file="{path}": {e.strerror}', file=sys.stderr)
            return False
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            print(f'Failed to acquire exclusive runtime lock="{path}": {e.strerror}', file=sys.stderr)
            return False
        return True

    def start_stats_server(self) -> bool:
        from oomd.stats_socket import StatsServer, StatsServerError
        from oomd.status import StatusService, snapshot

        self.status_service = StatusService(lambda: snapshot(self.engine, self.ctx, self.clock))
        self.stats_server = StatsServer(self.stats, self.o.runtime_dir, log=logs.log,
                                        status=self.status_service.ask)
        try:
            self.stats_server.start()
        except StatsServerError as e:
            logs.log(str(e), logs.ERR)
            logs.log("Stats module failed to initialize", logs.ERR)
            self.stats_server = None
            return False
        return True

    def start_metrics(self) -> bool:
        if not (self.o.metrics_textfile or self.o.metrics_listen):
            return True
        from oomd.metrics import Metrics, MetricsError

        self.metrics = Metrics(textfile=self.o.metrics_textfile, listen=self.o.metrics_listen,
                               stats=self.stats, log=logs.log)
        try:
            self.metrics.start()
        except MetricsError as e:
            logs.log(f"Metrics failed to start: {e}", logs.ERR)
            self.metrics = None
            return False
        return True

    def main(self) -> int:
        """Run the daemon (start-up, reference §9.2, then the loop): the exit status."""
        return self._run(self._main)

    def check(self) -> int:
        """``-c``: load the plugins, open the kill-record file and compile ``--config`` as the
        daemon would, then say whether it is valid: the exit status."""
        return self._run(self._check)

    def _run(self, body) -> int:
        from oomd.logs_journal import stderr_is_journal

        # Block the handled signals before any thread exists, so every thread inherits the mask
        # and the signals stay pending for the loop's sigtimedwait (between ticks).
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        logs.setup(journal=stderr_is_journal())
        try:
            return body()
        finally:
            self.shutdown()
            logs.flush()
            logs.shutdown()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _open_kmsg(self) -> bool:
        try:
            self.kmsg = Kmsg(self.o.kmsg_path)
        except OSError as e:
            print(f"open: {e.strerror}", file=sys.stderr)
            print(f"Unable to open outfile {self.o.kmsg_path}, not logging", file=sys.stderr)
            print("Logging failed to initialize. Try running with sudo", file=sys.stderr)
            return False
        return True

    def _check(self) -> int:
        self.load_plugins()
        if not self._open_kmsg():
            return EXIT_USAGE
        return self.check_config()

    def _main(self) -> int:
        protect.fix_mmap_threshold()   # before the first large arrays (oomd.protect)
        self.load_plugins()
        if not self._open_kmsg():
            return EXIT_USAGE
        if not self.acquire_lock():
            return EXIT_USAGE
        if not self.start_stats_server():
            return EXIT_USAGE
        self.stats.init_core()
        if not psi_available():
            logs.log("PSI not detected. Is your system running a new enough kernel?", logs.ERR)
            logs.log("System requirements not met", logs.ERR)
            return EXIT_SYSTEM
        if not (self.o.assume_cgroup2 and os.path.isdir(self.o.cgroup_fs)) and \
                not cgroup_fs_valid(self.o.cgroup_fs, cgroup2_mount()):
            logs.log(f"{self.o.cgroup_fs} is not a valid cgroup2 filesystem", logs.ERR)
            return EXIT_SYSTEM
        print(f"pyoomd running with conf_file={self.o.config} interval={self.o.interval:g}",
              file=sys.stderr)
        loaded = self.load_config("Config failed to compile")
        if loaded is None:
            return EXIT_SYSTEM
        engine, self.base_ir = loaded
        if not self.start_metrics():
            return EXIT_USAGE
        if not self.start_recording():
            return EXIT_USAGE
        self.start_flight_recorder(engine)
        self.install_engine(engine)
        for line in describe_hierarchy(self.o.cgroup_fs):
            logs.log(line, logs.NOTICE)
        if self.o.drop_in_dir:
            from oomd.dropin_watch import DropInWatcher

            self.dropins = DropIns(self.compiler(self.o.config), self.base_ir)
            self.watcher = DropInWatcher(self.o.drop_in_dir, log=logs.log)
        self.ctx = self.make_context()
        from oomd.lint.hook import lint_and_log  # findings are logged; none stops the start
        lint_and_log(self.o, self.ctx)
        protect.protect(lock=self.o.protect, oom_score_adj=-1000 if self.o.protect else None,
                        log=logs.log, cgroup_fs=self.o.cgroup_fs)
        from oomd.sdnotify import Notifier

        self.notifier = Notifier.from_env(log=logs.log)
        logs.log("Running pyoomd")
        self.notifier.ready(f"Monitoring with {len(self.base_ir.rulesets)} ruleset(s)")
        from oomd.wakeup import Wakeup

        self.wakeup = Wakeup.for_daemon(self, HANDLED_SIGNALS)
        if self.status_service is not None:
            self.wakeup.add_reader(self.status_service.fileno(), self.status_service.serve)
        return self.loop()

    def shutdown(self) -> None:
        if self.notifier is not None:
            self.notifier.stopping()
        if self.record is not None:
            self.record.close()
        if self.metrics is not None:
            self.metrics.stop()
        if self.stats_server is not None:
            self.stats_server.stop()
        if self.status_service is not None:
            self.status_service.close()
            self.status_service = None
        if self.flight is not None:
            self.flight.close()
            self.flight = None
        if self.watcher is not None:
            self.watcher.close()
        if self.wakeup is not None:
            self.wakeup.close()

    # -- the loop ------------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: swap in the re-read base config only if it compiles; drop-ins follow it."""
        if self.notifier is not None:
            self.notifier.reloading("Reloading the config")
        try:
            engine, root = self.compile(self.o.config)
        except (OSError, ConfigError) as e:
            logs.log(f"SIGHUP: keeping the running config; {self.o.config} failed: "
                     f"{getattr(e, 'strerror', None) or e}", logs.ERR)
            ok = False
        else:
            if self.dropins is not None:
                self.dropins.reattach(engine, self.compiler(self.o.config), root)
            if self.metrics is not None:
                for base in self.engine.rulesets:
                    self.metrics.forget_ruleset(base.ruleset.label)
                    for d in base.dropins:
                        self.metrics.forget_ruleset(d.ruleset.label)
            self.install_engine(engine)
            self.base_ir = root
            if self.record is not None:
                self.record.config_event(self.ctx.tick + 1, "reload", "", self.o.config)
            logs.log(f"SIGHUP: reloaded {self.o.config}")
            from oomd.lint.hook import lint_and_log
            lint_and_log(self.o, self.ctx)
            ok = True
        if self.metrics is not None:
            self.metrics.config_reload(ok)
        if self.notifier is not None:
            self.notifier.ready("Config reloaded" if ok else "Config reload failed; kept the old one")

    @property
    def kills_possible(self) -> bool:
        """Whether the running rules can kill at all (oomd.flight.kills_possible)."""
        from oomd.flight import kills_possible

        return kills_possible(self.engine)

    def apply_drop_ins(self) -> None:
        if self.watcher is None:
            return
        ops = self.watcher.poll()
        if ops:
            removed = [tag for op, tag in ops if op == "remove"]
            if self.record is not None and self.ctx is not None:
                for op, tag in ops:
                    self.record.config_event(self.ctx.tick + 1, op, tag,
                                             self.watcher.path_of(tag))
            self.dropins.apply(self.engine, ops, self.watcher.path_of)
            if self.metrics is not None:
                for base in self.engine.rulesets:
                    for tag in removed:
                        self.metrics.forget_ruleset(f"{base.ruleset.name} (drop-in {tag})")

    def read_stats_delta(self) -> dict[str, int]:
        """This tick's reads in the shape Metrics.observe_tick takes: ``files_read`` (every
        attempt) and one count per problem kind. The context's other counters (rows, open
        fds...) are levels, not events, and go down as cgroups go away."""
        now = dict(getattr(self.ctx, "read_stats", {}) or {})
        last, self._last_read_stats = self._last_read_stats, now
        delta = {k: max(0, now.get(k, 0) - last.get(k, 0)) for k in ("ok",) + READ_PROBLEMS}
        out = {k: delta[k] for k in READ_PROBLEMS}
        out["files_read"] = delta["ok"] + sum(out.values())
        return out

    def tick(self) -> None:
        started = time.perf_counter()
        try:
            self.apply_drop_ins()
            self.engine.tick(self.ctx)
        except Exception as e:  # noqa: BLE001 - the loop must survive anything a tick does
            logs.log(f"tick failed: {type(e).__name__}: {e}", logs.ERR, force=True)
        if self.record is not None:
            self.record.after_tick(self.ctx)
        elif self.flight is not None and self.kills_possible:
            self.flight.after_tick(self.ctx)   # never raises; the files are written off-tick
        self.ticks += 1
        if self.metrics is not None:
            try:
                self.metrics.observe_tick(time.perf_counter() - started, self.read_stats_delta(),
                                          int(getattr(self.ctx, "nrows", 0)))
            except Exception as e:  # noqa: BLE001 - metrics must not end the loop either
                logs.log(f"metrics failed: {type(e).__name__}: {e}", logs.ERR, force=True)
        self.notifier.watchdog_tick(self.clock())
        if self.ticks == 1:
            protect.freeze_gc()  # start-up garbage is done; keep the collector off the tick

    def loop(self) -> int:
        """Tick when ``self.wakeup`` says (every ``interval``, sooner after a PSI trigger);
        between ticks it waits for signals too."""
        while self.o.max_ticks is None or self.ticks < self.o.max_ticks:
            sig = self.wakeup.wait()
            if sig is not None:
                if sig.si_signo == signal.SIGHUP:
                    self.reload()
                    continue
                logs.log(f"Received signal {sig.si_signo}. Exiting!")
                return EXIT_OK
            self.tick()
        return EXIT_OK
