"""``pyoomd lint [--cgroup-fs FS] [--json] [--strict] CONFIG [DROP-IN...]``: the command line
in front of ``oomd.lint`` (docs/lint.md).

Exit status: 0 no errors, 1 errors, 2 warnings but no errors with ``--strict``, 64 a usage
error (a bad option; argparse's own 2 would read as "warnings").
"""

from __future__ import annotations

import argparse
import sys

HELP = "check a config against this host's cgroups and kernel before the daemon runs it"

EXIT_USAGE = 64
DEFAULT_DAEMON_CGROUP = "system.slice/pyoomd.service"   # the shipped unit's cgroup

EPILOG = """\
exit status: 0 no errors, 1 errors, 2 warnings (no errors) with --strict, 64 usage error.
Findings, codes and the --json schema: docs/lint.md."""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would exit 2, which means "warnings" here
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyoomd lint", description=HELP[0].upper() + HELP[1:] + ".", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG", nargs="?",
                   help="the config file the daemon would load")
    p.add_argument("drop_ins", metavar="DROP-IN", nargs="*",
                   help="drop-in files, each compiled against CONFIG as the daemon would")
    p.add_argument("--cgroup-fs", "-f", metavar="FS",
                   help="cgroup tree to check against (default: the cgroup2 mount, as the daemon)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (docs/lint.md)")
    p.add_argument("--strict", action="store_true", help="exit 2 when there are warnings")
    p.add_argument("--interval", "-i", metavar="SECONDS", default="5",
                   help="the daemon's --interval (default: 5)")
    p.add_argument("--device", metavar="DEVS", default="",
                   help="the daemon's --device list (major:minor,...)")
    p.add_argument("--daemon-cgroup", metavar="PATH", default=DEFAULT_DAEMON_CGROUP,
                   help="the daemon's own cgroup, relative to FS; '' to skip "
                        f"(default: {DEFAULT_DAEMON_CGROUP})")
    p.add_argument("--proc-root", metavar="DIR", default="/proc",
                   help="where to read PSI, meminfo and swaps (default: /proc)")
    p.add_argument("--ignore", metavar="CODE", action="append", default=[],
                   help="leave out findings with this code (repeatable, or comma-separated)")
    p.add_argument("--trust-user-xattrs", action="store_true",
                   help="the daemon's --trust-user-xattrs: user.oomd_avoid counts on any cgroup")
    p.add_argument("--plugin-module", metavar="MODULE", action="append", default=[],
                   help="import MODULE, whose plugins register themselves (repeatable)")
    return p


def main(argv: list[str]) -> int:
    from oomd import cli, plugin
    from oomd.fs import cgroup2_mount
    from oomd.lint import CODES, Host, lint, render_json, render_text

    try:
        args = build_parser().parse_args(argv)
        if args.config is None:
            raise _UsageError("the following arguments are required: CONFIG")
        ignore = [c for item in args.ignore for c in item.split(",") if c]
        unknown = [c for c in ignore if c not in CODES]
        if unknown:
            raise _UsageError(f"unknown finding code(s) for --ignore: {', '.join(unknown)}")
        try:
            interval = cli.parse_interval(args.interval)
            devices = cli.parse_devices(args.device) if args.device else ()
        except cli.UsageExit as e:
            raise _UsageError(e.message) from None
    except SystemExit as e:          # --help
        return int(e.code or 0)
    except _UsageError as e:
        print(f"pyoomd lint: {e}", file=sys.stderr)
        print("Try 'pyoomd lint --help'.", file=sys.stderr)
        return EXIT_USAGE
    cli.import_numpy_single_threaded()
    plugin.load_builtin_plugins()
    plugin.load_entry_point_plugins()
    for module in args.plugin_module:
        plugin.load_plugin_module(module)
    cgroup_fs = args.cgroup_fs or cgroup2_mount() or "/sys/fs/cgroup"
    host = Host(cgroup_fs=cgroup_fs.rstrip("/") or "/", proc_root=args.proc_root,
                interval=interval, devices=devices, daemon_cgroup=args.daemon_cgroup or None,
                trust_user_xattrs=args.trust_user_xattrs)
    report = lint(args.config, args.drop_ins, host, ignore=ignore)
    sys.stdout.write(render_json(report, args.strict) if args.json else render_text(report))
    sys.stdout.flush()
    return report.exit_status(args.strict)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
