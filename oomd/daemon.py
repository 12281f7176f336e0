"""Start-up (reference §9.2) and the tick loop (§1.1).

The loop blocks SIGTERM, SIGINT and SIGHUP and waits for them with ``sigtimedwait`` as its
sleep, so a signal is handled between ticks, never in the middle of one (oomd HEAD does the
same). SIGTERM/SIGINT end the loop cleanly; SIGHUP re-reads the base config and swaps it in only
if it compiles.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time

from oomd import logs, plugin
from oomd.cli import Options
from oomd.errors import ConfigError
from oomd.kmsg import Kmsg
from oomd.stats import Stats

EXIT_OK, EXIT_USAGE, EXIT_SYSTEM = 0, 1, 3
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def psi_available(proc_root: str = "/proc") -> bool:
    for name in ("pressure/memory", "mempressure"):
        try:
            with open(os.path.join(proc_root, name), "rb") as f:
                if f.read(1):
                    return True
        except OSError:
            continue
    return False


def cgroup_fs_valid(cgroup_fs: str, mount: str | None) -> bool:
    """oomd's textual check: the cgroup2 mount's components prefix the --cgroup-fs string's."""
    if mount is None:
        return False
    want = [c for c in mount.split("/") if c]
    have = [c for c in cgroup_fs.split("/") if c]
    return have[: len(want)] == want


def describe_hierarchy(cgroup_fs: str) -> list[str]:
    """What this host's cgroup2 tree can and cannot give us, for the start-up log."""
    lines = []
    try:
        with open(os.path.join(cgroup_fs, "cgroup.controllers")) as f:
            controllers = set(f.read().split())
    except OSError as e:
        return [f"cannot read {cgroup_fs}/cgroup.controllers ({e.strerror}): "
                "is --cgroup-fs a cgroup2 mount?"]
    lines.append(f"cgroup2 at {cgroup_fs} has controllers: {' '.join(sorted(controllers)) or 'none'}")
    if "memory" not in controllers:
        lines.append("no memory controller on cgroup2 (hybrid hierarchy?): memory.current, "
                     "memory.stat, memory.low/min/high/max and swap files of cgroups are unavailable; "
                     "memory-size detectors and rankings see no data for non-root cgroups")
    if "io" not in controllers:
        lines.append("no io controller on cgroup2: io.stat is unavailable (io cost is 0)")
    return lines


class Daemon:
    def __init__(self, options: Options, *, clock=time.monotonic) -> None:
        self.o = options
        self.clock = clock
        self.stats = Stats()
        self.kmsg: Kmsg | None = None
        self.engine = None
        self.ctx = None
        self._lock_fd = -1
        self.ticks = 0

    # -- start-up ------------------------------------------------------------------------------

    def construction_context(self) -> plugin.PluginConstructionContext:
        return plugin.PluginConstructionContext(
            cgroup_fs=self.o.cgroup_fs.rstrip("/") or "/",
            stats=self.stats,
            force_dry=self.o.dry_run,
            kmsg_path=self.o.kmsg_path,
            devices=self.o.devices,
            ssd_coeffs=self.o.ssd_coeffs,
            hdd_coeffs=self.o.hdd_coeffs,
        )

    def load_plugins(self) -> None:
        plugin.load_builtin_plugins()
        plugin.load_entry_point_plugins()
        for module in self.o.plugin_modules:
            plugin.load_plugin_module(module)

    def compile(self, path: str):
        from oomd.config.compiler import load_engine

        return load_engine(path, self.construction_context(), self.clock)

    def check_config(self) -> int:
        try:
            self.compile(self.o.config)
        except OSError as e:
            logs.log(f"Could not open confg_file={self.o.config}: {e.strerror}", logs.ERR)
            return EXIT_USAGE
        except ConfigError as e:
            logs.log(str(e), logs.ERR)
            logs.log("Config is not valid", logs.ERR)
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

    def make_context(self):
        from oomd.context import OomdContext

        ctx = OomdContext(
            self.o.cgroup_fs.rstrip("/") or "/",
            devices=self.o.devices,
            ssd_coeffs=self.o.ssd_coeffs,
            hdd_coeffs=self.o.hdd_coeffs,
            stats=self.stats,
        )
        ctx.kmsg = self.kmsg
        return ctx

    def main(self) -> int:
        logs.setup()
        try:
            return self._main()
        finally:
            logs.flush()
            logs.shutdown()

    def _main(self) -> int:
        self.load_plugins()
        try:
            self.kmsg = Kmsg(self.o.kmsg_path)
        except OSError as e:
            print(f"open: {e.strerror}", file=sys.stderr)
            print(f"Unable to open outfile {self.o.kmsg_path}, not logging", file=sys.stderr)
            print("Logging failed to initialize. Try running with sudo", file=sys.stderr)
            return EXIT_USAGE
        if self.o.check_config:
            return self.check_config()
        if not self.acquire_lock():
            return EXIT_USAGE
        self.stats.init_core()
        if not psi_available():
            logs.log("PSI not detected. Is your system running a new enough kernel?", logs.ERR)
            logs.log("System requirements not met", logs.ERR)
            return EXIT_SYSTEM
        from oomd.cli import cgroup2_mount

        if not cgroup_fs_valid(self.o.cgroup_fs, cgroup2_mount()):
            logs.log(f"{self.o.cgroup_fs} is not a valid cgroup2 filesystem", logs.ERR)
            return EXIT_SYSTEM
        print(f"pyoomd running with conf_file={self.o.config} interval={self.o.interval:g}",
              file=sys.stderr)
        try:
            self.engine = self.compile(self.o.config)
        except OSError as e:
            logs.log(f"Could not open confg_file={self.o.config}: {e.strerror}", logs.ERR)
            return EXIT_SYSTEM
        except ConfigError as e:
            logs.log(str(e), logs.ERR)
            logs.log("Config failed to compile", logs.ERR)
            return EXIT_SYSTEM
        for line in describe_hierarchy(self.o.cgroup_fs):
            logs.log(line, logs.NOTICE)
        self.ctx = self.make_context()
        logs.log("Running pyoomd")
        return self.loop()

    # -- the loop ------------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: swap in the re-read base config only if it compiles."""
        try:
            engine = self.compile(self.o.config)
        except (OSError, ConfigError) as e:
            logs.log(f"SIGHUP: keeping the running config; {self.o.config} failed: "
                     f"{getattr(e, 'strerror', None) or e}", logs.ERR)
            return
        self.engine = engine
        logs.log(f"SIGHUP: reloaded {self.o.config}")

    def tick(self) -> None:
        try:
            self.engine.tick(self.ctx)
        except Exception as e:  # noqa: BLE001 - the loop must survive anything a tick does
            logs.log(f"tick failed: {type(e).__name__}: {e}", logs.ERR, force=True)
        self.ticks += 1

    def loop(self) -> int:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            next_tick = self.clock() + self.o.interval
            while self.o.max_ticks is None or self.ticks < self.o.max_ticks:
                sig = signal.sigtimedwait(HANDLED_SIGNALS, max(0.0, next_tick - self.clock()))
                if sig is not None:
                    if sig.si_signo == signal.SIGHUP:
                        self.reload()
                        continue
                    logs.log(f"Received signal {sig.si_signo}. Exiting!")
                    return EXIT_OK
                next_tick = max(next_tick + self.o.interval, self.clock())
                self.tick()
            return EXIT_OK
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
