"""``pyoomd``: oomd's command line (reference §9.1), plus a few options of our own, and the
dispatcher to pyoomd's commands.

``pyoomd [OPTION]...`` is oomd's command line: getopt parses it into ``Options``
(``oomd/options.py``) and ``flag_command`` picks what the flags ask for (the stats client,
the plugin list, the config check or the daemon). ``pyoomd VERB [ARG]...`` (a first argument
without ``-``) runs the command module of that verb (``oomd/commands/``).

Options, defaults and exit codes are oomd 0.5.0's, with these differences (docs/compat.md):
``--interval`` also takes fractions of a second; ``--cgroup-fs`` defaults to the cgroup2 mount
found in /proc/mounts; config errors are reported with file, JSON path and reason instead of an
abort. Our additions: ``--dry-run``, ``--plugin-module``, ``--metrics-textfile``,
``--metrics-listen``, ``--no-protect``, ``--max-ticks``, ``--fast-interval``, ``--max-psi-triggers``,
``--trust-user-xattrs``, ``--record``, ``--record-max-bytes``, ``--flight-recorder``,
``--assume-cgroup2``.
"""

from __future__ import annotations

import getopt
import importlib
import math
import os
import sys
from typing import Callable

from oomd import __version__, parsing
from oomd.fs import cgroup2_mount
from oomd.options import DEFAULT_CONFIG, Options  # noqa: F401 - DEFAULT_CONFIG: re-exported

# read once, when numpy's BLAS/OpenMP runtime loads
THREAD_POOL_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")

USAGE = """\
usage: pyoomd [OPTION]...

optional arguments:
  --help, -h                 Show this help and exit
  --version, -v              Print the version and exit
  --config, -C CONFIG        Config file (default: /etc/oomd.json)
  --interval, -i INTERVAL    Seconds between ticks, fractions allowed (default: 5)
  --cgroup-fs, -f FS         cgroup2 mount point (default: from /proc/mounts, else /sys/fs/cgroup)
  --check-config, -c CONFIG  Check a config file and exit
  --list-plugins, -l         List the available plugins and exit
  --drop-in-dir, -w DIR      Directory watched for drop-in configs
  --runtime-dir, -D PATH     Directory for the lock file and stats socket (default: /run/oomd)
  --dump-stats, -d           Print the running daemon's stats
  --reset-stats, -r          Reset the running daemon's stats
  --device DEVS              Comma-separated <major>:<minor> devices for io cost (default: none)
  --ssd-coeffs COEFFS        Comma-separated SSD io cost coefficients (default: oomd's)
  --hdd-coeffs COEFFS        Comma-separated HDD io cost coefficients (default: oomd's)
  --kmsg-override PATH       File that receives kill records (default: /dev/kmsg)
  --dry-run                  Make every kill plugin dry: decide and record, never kill
  --compat MODE              Decide as oomd 0.5.0 (default) or oomd HEAD ("head") where they differ
  --plugin-module MODULE     Import MODULE, whose plugins register themselves (repeatable)
  --metrics-textfile PATH    Write Prometheus metrics to PATH each tick (node-exporter textfile)
  --metrics-listen ADDR      Serve Prometheus metrics on 127.0.0.1:PORT, [::1]:PORT or unix:PATH
  --no-protect               Skip mlockall and oom_score_adj (development; on by default)
  --max-ticks N              Exit after N ticks (testing aid; default: run forever)
  --fast-interval SECONDS    Seconds between ticks while PSI triggers fire (default: 0.1)
  --max-psi-triggers N       Most kernel PSI triggers to register (default: 32; 0: none)
  --trust-user-xattrs        Honour user.oomd_avoid whoever owns the cgroup, as oomd does (default:
                             only if root or the owner of the pattern's fixed prefix owns it)
  --record DIR               Record every tick into DIR for pyoomd replay/export (docs/replay.md)
  --record-max-bytes SIZE    Delete the oldest recorded segments beyond SIZE (default: 512M)
  --assume-cgroup2           Read --cgroup-fs as cgroup2 even if it is not (cached fds, inotify,
                             kept values; a file replaced by rename is then not seen)
  --flight-recorder TICKS    Ticks kept in memory and written with each kill to RUNTIME_DIR/kills
                             (default: what the longest detector duration needs, at most 120;
                             0: off)
"""

SHORT = "hvC:i:f:c:lw:D:dr"
LONG = [
    "help", "version", "config=", "interval=", "cgroup-fs=", "check-config=", "list-plugins",
    "drop-in-dir=", "runtime-dir=", "dump-stats", "reset-stats", "device=", "ssd-coeffs=",
    "hdd-coeffs=", "kmsg-override=", "dry-run", "plugin-module=", "max-ticks=",
    "metrics-textfile=", "metrics-listen=", "no-protect", "fast-interval=", "max-psi-triggers=",
    "compat=", "trust-user-xattrs", "record=", "record-max-bytes=", "flight-recorder=",
    "assume-cgroup2",
]


class UsageExit(Exception):
    def __init__(self, code: int, message: str = "", usage: bool = False) -> None:
        self.code, self.message, self.usage = code, message, usage


def parse_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise UsageExit(1, f"Interval not a >0 number: {text}")
    return value


def parse_coeffs(text: str, kind: str) -> tuple:
    parts = [p for p in text.split(",") if p]
    if len(parts) > 6:
        raise UsageExit(1, f"Invalid {kind} coefficients: at most 6 values")
    try:
        values = [parsing.double_parse(p) for p in parts]
    except ValueError:
        raise UsageExit(1, f"Invalid {kind} coefficients: stod") from None
    return tuple(values + [0.0] * (6 - len(values)))


def parse_devices(text: str, sysfs: str = "/sys") -> tuple:
    """``maj:min[,maj:min]`` -> ((major, minor, is_hdd), ...), checked against sysfs."""
    devices = []
    for dev in (d for d in text.split(",") if d):
        path = os.path.join(sysfs, "dev", "block", dev, "queue", "rotational")
        try:
            major, minor = (int(x) for x in dev.split(":"))
            with open(path) as f:
                rotational = f.read().strip()
        except (ValueError, OSError) as e:
            raise UsageExit(1, f"Invalid devices: {dev}: {getattr(e, 'strerror', None) or e}") from None
        if rotational not in ("0", "1"):
            raise UsageExit(1, f"Invalid devices: {path} holds {rotational!r}, not 0 or 1")
        devices.append((major, minor, rotational == "1"))
    return tuple(devices)


def parse_options(argv: list[str]) -> Options:
    try:
        opts, rest = getopt.gnu_getopt(argv, SHORT, LONG)
    except getopt.GetoptError as e:
        raise UsageExit(1, f"pyoomd: {e.msg}\nUnknown option or missing argument", usage=True) from None
    o = Options()
    for opt, val in opts:
        if opt in ("-h", "--help"):
            raise UsageExit(0, usage=True)
        if opt in ("-v", "--version"):
            print(f"v{__version__}")
            raise UsageExit(0)
        if opt in ("-l", "--list-plugins"):
            o.list_plugins = True  # acted on after parsing, so --plugin-module counts anywhere
        elif opt in ("-C", "--config"):
            o.config = val
        elif opt in ("-i", "--interval"):
            o.interval = parse_interval(val)
        elif opt in ("-f", "--cgroup-fs"):
            o.cgroup_fs = val
        elif opt in ("-c", "--check-config"):
            o.config, o.check_config = val, True
        elif opt in ("-w", "--drop-in-dir"):
            o.drop_in_dir = val[:-1] if len(val) > 1 and val.endswith("/") else val
        elif opt in ("-D", "--runtime-dir"):
            o.runtime_dir = val
        elif opt in ("-d", "--dump-stats"):
            o.dump_stats = True
        elif opt in ("-r", "--reset-stats"):
            o.reset_stats = True
        elif opt == "--device":
            o.devices = parse_devices(val)
        elif opt == "--ssd-coeffs":
            o.ssd_coeffs = parse_coeffs(val, "SSD")
        elif opt == "--hdd-coeffs":
            o.hdd_coeffs = parse_coeffs(val, "HDD")
        elif opt == "--kmsg-override":
            o.kmsg_path = val
        elif opt == "--dry-run":
            o.dry_run = True
        elif opt == "--plugin-module":
            o.plugin_modules.append(val)
        elif opt == "--metrics-textfile":
            o.metrics_textfile = val
        elif opt == "--metrics-listen":
            o.metrics_listen = val
        elif opt == "--no-protect":
            o.protect = False
        elif opt == "--trust-user-xattrs":
            o.trust_user_xattrs = True
        elif opt == "--assume-cgroup2":
            o.assume_cgroup2 = True
        elif opt == "--flight-recorder":
            if not val.isdigit():
                raise UsageExit(1, f"--flight-recorder needs a number of ticks, got {val!r}")
            o.flight_ticks = int(val)
        elif opt == "--fast-interval":
            try:
                o.fast_interval = parse_interval(val)
            except UsageExit:
                raise UsageExit(1, f"--fast-interval needs seconds > 0, got {val!r}") from None
        elif opt == "--max-psi-triggers":
            if not val.isdigit():
                raise UsageExit(1, f"--max-psi-triggers needs a count of 0 or more, got {val!r}")
            o.max_psi_triggers = int(val)
        elif opt == "--compat":
            from oomd.compat import parse_mode

            try:
                o.compat = parse_mode(val).mode
            except ValueError as e:
                raise UsageExit(1, f"--compat: {e}") from None
        elif opt == "--record":
            o.record_dir = val
        elif opt == "--record-max-bytes":
            try:
                o.record_max_bytes = parsing.parse_size(val)
            except ValueError:
                o.record_max_bytes = -1
            if o.record_max_bytes < (1 << 20):
                raise UsageExit(1, f"--record-max-bytes needs a size of at least 1M, got {val!r}")
        elif opt == "--max-ticks":
            try:
                o.max_ticks = int(val)
            except ValueError:
                raise UsageExit(1, f"--max-ticks needs an integer, got {val!r}") from None
    if rest:
        quoted = " ".join(f'"{a}"' for a in rest)
        raise UsageExit(1, f"Non-option argument is not supported: {quoted} ", usage=True)
    if o.cgroup_fs is None:
        o.cgroup_fs = cgroup2_mount() or "/sys/fs/cgroup"
    return o


def import_numpy_single_threaded() -> None:
    """Import numpy with one BLAS/OpenMP thread: pyoomd's array work is element-wise, and an
    OOM killer should not keep a pool of idle BLAS threads (one per core). The runtime reads
    these variables once, when it loads; the caller's values are put back afterwards so that
    commands the daemon starts (prekill hooks) inherit the operator's environment. No effect
    if numpy is already imported."""
    if "numpy" in sys.modules:
        return
    saved = {name: os.environ.get(name) for name in THREAD_POOL_VARS}
    os.environ.update({name: "1" for name in THREAD_POOL_VARS})
    try:
        import numpy  # noqa: F401
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def main(argv: list[str] | None = None) -> int:
    """``pyoomd [OPTION]...`` (oomd's flags) or ``pyoomd COMMAND [ARG]...``: the exit status.

    The first argument is a command when it does not start with ``-``; anything else is
    oomd's command line, parsed as oomd does and handed to the command its flags ask for."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-"):
        return run_verb(argv[0], argv[1:])
    try:
        o = parse_options(argv)
    except UsageExit as e:
        if e.message:
            print(e.message, file=sys.stderr)
        if e.usage:
            sys.stderr.write(USAGE)
            if e.code == 0:
                sys.stderr.write(verbs_help())
        return e.code
    return flag_command(o)(o)


# ---------------------------------------------------------------------------------------------
# oomd's flags: each path of oomd's main() is one command function over the parsed Options


def flag_command(o: Options) -> Callable[[Options], int]:
    """The command oomd's flags ask for, in oomd's order: ``-d``/``-r``, then ``-l``, then
    ``-c``, else the daemon."""
    if o.dump_stats or o.reset_stats:
        return stats_client
    if o.list_plugins:
        return list_plugins
    if o.check_config:
        return check_config
    return run_daemon


def stats_client(o: Options) -> int:
    """``-d``/``-r``: ask the running daemon (before any logging set-up, reference §9.2)."""
    from oomd.stats_socket import run_client

    return run_client(o.runtime_dir, dump=o.dump_stats, reset=o.reset_stats)


def list_plugins(o: Options) -> int:
    """``-l``: the built-in plugins and those of every ``--plugin-module``."""
    import_numpy_single_threaded()   # before the plugins import it
    from oomd import plugin

    for module in o.plugin_modules:
        plugin.load_plugin_module(module)
    plugin.load_builtin_plugins()
    print("List of plugins pyoomd was compiled with:", file=sys.stderr)
    for name in sorted(plugin.REGISTRY):
        print(f" {name}", file=sys.stderr)
    return 0


def check_config(o: Options) -> int:
    """``-c CONFIG``: compile the config as the daemon would and say whether it is valid."""
    import_numpy_single_threaded()   # before anything below imports it
    from oomd.daemon import Daemon

    return Daemon(o).check()


def run_daemon(o: Options) -> int:
    import_numpy_single_threaded()   # before anything below imports it
    from oomd.daemon import Daemon

    return Daemon(o).main()


# ---------------------------------------------------------------------------------------------
# Commands: ``pyoomd VERB [ARG]...`` (the table and the contract are in oomd/commands/)

EXIT_UNKNOWN_VERB = 2


def run_verb(verb: str, argv: list[str]) -> int:
    """Run a command module's ``main(argv)``; an unknown verb lists the known ones (exit 2).
    A command that exits through ``SystemExit`` (argparse's ``--help`` and usage errors)
    returns its status like any other."""
    from oomd.commands import VERBS

    module = VERBS.get(verb)
    if module is None:
        known = (f"{', '.join(sorted(VERBS))} (pyoomd COMMAND --help for each)" if VERBS
                 else "none in this build")
        sys.stderr.write(f"pyoomd: unknown command {verb!r}\n"
                         f"commands: {known}\n"
                         f"oomd's options start with '-' (pyoomd --help)\n")
        return EXIT_UNKNOWN_VERB
    import_numpy_single_threaded()   # as the daemon: commands read the same arrays
    try:
        return importlib.import_module(module).main(argv)
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1


def verbs_help() -> str:
    """The commands section of ``pyoomd --help``: each verb with its module's ``HELP``."""
    from oomd.commands import VERBS

    if not VERBS:
        return ""
    lines = ["", "commands (pyoomd COMMAND [ARG]...; pyoomd COMMAND --help for its arguments):"]
    for verb in sorted(VERBS):
        try:
            text = importlib.import_module(VERBS[verb]).HELP
        except Exception as e:  # noqa: BLE001 - one broken command must not hide the others
            text = f"(cannot be loaded: {type(e).__name__}: {e})"
        lines.append(f"  {verb:<27}{text}")
    return "\n".join(lines) + "\n"
