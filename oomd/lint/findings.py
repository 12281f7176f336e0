"""What lint reports: findings with a stable code, a severity, a location and one sentence of fix.

The codes are the stable part of the output (docs/lint.md lists each one; ``--ignore CODE``
silences one); message texts may be reworded between releases, codes and fields may not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ERROR, WARNING, NOTE = "error", "warning", "note"
SEVERITIES = (ERROR, WARNING, NOTE)

# code -> what it is about (docs/lint.md explains each; a test keeps the two lists equal)
CODES = {
    "config-error": "the config does not parse or compile; the daemon refuses it",
    "dropin-error": "a drop-in does not parse or compile; the daemon rejects it",
    "dropin-unknown-ruleset": "a drop-in names a ruleset the base config does not have",
    "dropin-not-allowed": "a drop-in replaces detectors or actions its ruleset does not open",
    "cgroup-fs-unreadable": "the cgroup tree cannot be opened",
    "tree-incomplete": "part of the cgroup tree could not be read",
    "psi-unavailable": "the kernel has no pressure stall information",
    "pattern-matches-nothing": "a cgroup pattern matches no cgroup now",
    "controller-unavailable": "a plugin needs a controller the cgroup2 hierarchy does not have",
    "cgroup-files-missing": "matched cgroups lack the files their plugin reads (controller "
                            "not enabled, pressure switched off...)",
    "no-swap": "a ruleset relies on swap on a host without swap",
    "io-cost-without-device": "kill_by_io_cost without --device",
    "threshold-never-met": "a threshold no value can reach",
    "threshold-always-met": "a threshold every value reaches",
    "duration-below-interval": "a duration shorter than the tick interval",
    "no-post-action-delay": "a kill with no pause after it",
    "kills-elsewhere": "a kill outside the cgroups the ruleset watches",
    "candidates-overlap": "two rulesets can kill the same cgroups",
    "candidates-all-avoid": "every candidate of a kill is marked AVOID",
    "daemon-cgroup-candidate": "the daemon's own cgroup can be killed",
    "dry-left-on": "a kill or restart action is dry",
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    file: str
    path: str       # JSON path of the config element ("$" for the whole file)
    message: str    # one sentence: what is wrong and what it does
    fix: str        # one sentence: what to do

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown lint code {self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_json(self) -> dict:
        return {"code": self.code, "severity": self.severity, "file": self.file,
                "path": self.path, "message": self.message, "fix": self.fix}


_INDEX = re.compile(r"\[(\d+)\]")


def path_key(path: str) -> tuple:
    """Sort key of a JSON path: indices compare as numbers (``[2]`` before ``[10]``)."""
    parts: list = []
    pos = 0
    for m in _INDEX.finditer(path):
        parts.append((0, path[pos:m.start()]))
        parts.append((1, int(m.group(1))))
        pos = m.end()
    parts.append((0, path[pos:]))
    return tuple(parts)


def ordered(findings: list[Finding], files: list[str]) -> list[Finding]:
    """By file (base config first, then drop-ins in the order given), then JSON path, then
    severity, then code: the order a reader walks the config in."""
    rank = {f: i for i, f in enumerate(files)}
    sev = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(findings, key=lambda f: (rank.get(f.file, len(rank)), path_key(f.path),
                                           sev[f.severity], f.code, f.message))


def counts(findings: list[Finding]) -> dict[str, int]:
    out = {s: 0 for s in SEVERITIES}
    for f in findings:
        out[f.severity] += 1
    return out


def exit_status(findings: list[Finding], strict: bool = False) -> int:
    """0 no errors, 1 errors, 2 warnings but no errors with ``strict``."""
    c = counts(findings)
    if c[ERROR]:
        return 1
    if strict and c[WARNING]:
        return 2
    return 0
