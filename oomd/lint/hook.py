"""The daemon's side of lint: at start-up and after a reload, lint the config it runs (with the
drop-ins in its drop-in directory) through its own context, and log every finding.

Findings are logged, never acted on: the daemon starts (or keeps the reloaded config) whatever
lint says. A failure inside lint is logged and swallowed.
"""

from __future__ import annotations

import os

from oomd import logs
from oomd.lint import Host, Report, lint, summary

LEVELS = {"error": logs.ERR, "warning": logs.WARNING, "note": logs.NOTICE}


def daemon_cgroup(cgroup_fs: str, proc_root: str = "/proc") -> str | None:
    """This process's cgroup relative to ``cgroup_fs``, when ``cgroup_fs`` is (inside) the
    cgroup2 mount; None otherwise (a fake tree)."""
    from oomd.fs import cgroup2_mount
    from oomd.protect import own_cgroup

    own, mount = own_cgroup(proc_root), cgroup2_mount(os.path.join(proc_root, "mounts"))
    if own is None or mount is None:
        return None
    fs, mount = os.path.realpath(cgroup_fs), os.path.realpath(mount)
    absolute = os.path.normpath(mount + "/" + own.lstrip("/"))
    if absolute == fs:
        return ""
    if fs != mount and not fs.startswith(mount + "/"):
        return None
    prefix = fs.rstrip("/") + "/"
    return absolute[len(prefix):] if absolute.startswith(prefix) else None


def lint_and_log(options, ctx=None, log=logs.log) -> Report | None:
    """Lint ``options.config`` (``oomd.cli.Options``) and log the findings, one line each."""
    try:
        drop_ins = []
        if options.drop_in_dir and os.path.isdir(options.drop_in_dir):
            from oomd.dropin_watch import list_drop_ins

            drop_ins = [os.path.join(options.drop_in_dir, name)
                        for name in list_drop_ins(options.drop_in_dir)]
        fs = options.cgroup_fs.rstrip("/") or "/"
        host = Host(cgroup_fs=fs, interval=options.interval, devices=tuple(options.devices),
                    daemon_cgroup=daemon_cgroup(fs),
                    trust_user_xattrs=getattr(options, "trust_user_xattrs", False))
        report = lint(options.config, drop_ins, host, ctx=ctx, ssd_coeffs=options.ssd_coeffs,
                      hdd_coeffs=options.hdd_coeffs)
    except Exception as e:  # noqa: BLE001 - lint must never stop the daemon
        log(f"lint: could not check the config: {type(e).__name__}: {e}", logs.WARNING)
        return None
    for f in report.findings:
        log(f"lint: {f.severity}: {f.file}: {f.path}: {f.message} Fix: {f.fix} [{f.code}]",
            LEVELS[f.severity])
    log(f"lint: {options.config}: {summary(report)}", logs.NOTICE)
    return report
