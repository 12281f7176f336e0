"""``pyoomd lint``: check a config against the host it will run on.

``lint(config, drop_ins, host)`` compiles the config (and each drop-in against it) with the
daemon's compiler, resolves its cgroup patterns through the daemon's context on the live (or
given) tree, and runs every check of ``oomd.lint.checks`` (one function per finding code).
It returns a ``Report``; ``render_text``/``render_json`` print it (docs/lint.md has the JSON
schema). Lint reads only: it opens the tree and system files read-only and never writes.

The daemon runs the same checks at start-up and after a reload (``oomd.lint.hook``) and logs
the findings; it never refuses to start because of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from oomd import logs
from oomd.lint.checks import CHECKS, Host, Run
from oomd.lint.findings import CODES, Finding, counts, exit_status, ordered
from oomd.lint.sites import load
from oomd.lint.tree import Tree
from oomd.names import printable
from oomd.plugin import DEFAULT_HDD_COEFFS, DEFAULT_SSD_COEFFS, PluginConstructionContext
from oomd.stats import Stats

SCHEMA = "pyoomd-lint/1"

__all__ = ["CODES", "Finding", "Host", "Report", "SCHEMA", "lint", "render_json", "render_text"]


@dataclass
class Report:
    config: str
    drop_ins: list[str]
    cgroup_fs: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return counts(self.findings)

    def exit_status(self, strict: bool = False) -> int:
        return exit_status(self.findings, strict)


def lint(config: str, drop_ins: list[str], host: Host, *, ctx=None, ignore=(),
         ssd_coeffs=DEFAULT_SSD_COEFFS, hdd_coeffs=DEFAULT_HDD_COEFFS) -> Report:
    """Lint ``config`` and ``drop_ins`` for ``host``. ``ctx``: an ``OomdContext`` on
    ``host.cgroup_fs`` to read the tree through (the daemon passes its own); None makes a
    read-only one for this run and closes it afterwards."""
    construction = PluginConstructionContext(
        cgroup_fs=host.cgroup_fs, stats=Stats(), devices=host.devices, ssd_coeffs=ssd_coeffs,
        hdd_coeffs=hdd_coeffs, proc_root=host.proc_root)
    own_ctx = ctx is None
    with logs.plugin_logs_silenced():   # compile and read messages: the findings say it all
        loaded = load(config, drop_ins, construction)
        findings = list(loaded.findings)
        if loaded.compiled:
            if own_ctx:
                from oomd.context import OomdContext

                ctx = OomdContext(host.cgroup_fs, proc_root=host.proc_root, devices=host.devices,
                                  ssd_coeffs=ssd_coeffs, hdd_coeffs=hdd_coeffs,
                                  interval=host.interval, cache_files=False, keep_config=False)
            try:
                run = Run(loaded.rulesets, config, host,
                          Tree(ctx, host.trust_user_xattrs), ctx.system)
                for check in CHECKS:
                    findings.extend(check(run))
            finally:
                if own_ctx:
                    ctx.close()
    skip = set(ignore)
    unique = list(dict.fromkeys(f for f in findings if f.code not in skip))
    return Report(config, list(drop_ins), host.cgroup_fs, ordered(unique, loaded.files))


# ---- output ---------------------------------------------------------------------------------

def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(report: Report) -> str:
    c = report.counts
    if not report.findings:
        return "no findings"
    return ", ".join((_plural(c["error"], "error"), _plural(c["warning"], "warning"),
                      _plural(c["note"], "note")))


def render_text(report: Report) -> str:
    lines = []
    for f in report.findings:
        lines.append(f"{printable(f.file)}: {f.path}: {f.severity}: {f.message} [{f.code}]")
        lines.append(f"    fix: {f.fix}")
    lines.append(f"{printable(report.config)}: {summary(report)}")
    return "\n".join(lines) + "\n"


def to_json(report: Report, strict: bool = False) -> dict:
    return {
        "schema": SCHEMA,
        "config": printable(report.config),
        "drop_ins": [printable(d) for d in report.drop_ins],
        "cgroup_fs": printable(report.cgroup_fs),
        "strict": strict,
        "exit_status": report.exit_status(strict),
        "counts": report.counts,
        "findings": [f.to_json() for f in report.findings],
    }


def render_json(report: Report, strict: bool = False) -> str:
    return json.dumps(to_json(report, strict), indent=2) + "\n"
