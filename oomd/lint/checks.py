"""The checks: one function per finding code, each a generator of ``Finding``s over a ``Run``.

A check looks at the compiled plugins (their parsed arguments), the config elements they came
from (for the JSON path and the text the operator wrote), the live tree (``Tree``) and the
host (PSI, meminfo, swaps). docs/lint.md explains every code; tests assert every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from oomd import parsing
from oomd.cgpath import CgroupPatterns
from oomd.lint.findings import ERROR, NOTE, WARNING, Finding
from oomd.lint.patterns import related
from oomd.lint.sites import PluginSite, RulesetSite
from oomd.lint.tree import AVOID, IO, MEMORY, PSI, V1_NAMES, Tree, controller_of, pattern_text
from oomd.names import shown
from oomd.plugins.base_kill import BaseKillPlugin

MIB = 1 << 20


@dataclass(frozen=True)
class Host:
    """What the daemon would be started with, and where it would run."""

    cgroup_fs: str
    proc_root: str = "/proc"
    interval: float = 5.0
    devices: tuple = ()
    daemon_cgroup: str | None = None   # the daemon's cgroup, relative to cgroup_fs
    trust_user_xattrs: bool = False    # --trust-user-xattrs (oomd.xattr_trust)


class Run:
    """One lint pass: the compiled rulesets, the host, the tree."""

    def __init__(self, rulesets: list[RulesetSite], base_file: str, host: Host, tree: Tree,
                 system) -> None:
        self.rulesets = rulesets
        self.base_file = base_file
        self.host = host
        self.tree = tree
        self.system = system   # OomdContext.system (SystemContext)
        self._psi: bool | None = None

    def plugins(self) -> Iterator[PluginSite]:
        for rs in self.rulesets:
            yield from rs.plugins

    def kills(self) -> Iterator[PluginSite]:
        for site in self.plugins():
            if site.role == "action" and isinstance(site.plugin, BaseKillPlugin):
                yield site

    def tree_ok(self) -> bool:
        return self.tree.readable

    def psi_ok(self) -> bool:
        """PSI at the host level, the daemon's start-up test (``oomd.fs.psi_available``)."""
        if self._psi is None:
            from oomd.fs import psi_available

            self._psi = psi_available(self.host.proc_root)
        return self._psi


# ---- what each plugin reads ---------------------------------------------------------------

def _resource_file(p) -> tuple[str, ...]:
    return (f"{'memory' if p.resource == 'memory' else 'io'}.pressure",)


# The control files each built-in plugin's decision needs in the cgroups it matches (files
# read only for a log line are left out). Other plugins: the files of what they monitor.
NEEDS: dict[str, Callable[[object], tuple[str, ...]]] = {
    "pressure_above": _resource_file,
    "pressure_rising_beyond": _resource_file,
    "memory_above": lambda p: ("memory.stat",) if p.is_anon else ("memory.current",),
    "memory_reclaim": lambda p: ("memory.stat",),
    "nr_dying_descendants": lambda p: ("cgroup.stat",),
    "dump_cgroup_overview": lambda p: ("memory.pressure",),
    "exists": lambda p: (),
    "kill_by_memory_size_or_growth": lambda p: ("memory.current", "memory.min", "memory.low"),
    "kill_by_swap_usage": lambda p: ("memory.swap.current",),
    "kill_by_pressure": _resource_file,
    "kill_by_pg_scan": lambda p: ("memory.stat",),
    "kill_by_io_cost": lambda p: ("io.stat",),
    "senpai": lambda p: ("memory.current", "memory.high", "memory.stat", "memory.pressure"),
}


def _files_of_metrics(metrics) -> tuple[str, ...]:
    from oomd import _fastcg
    from oomd.context import METRICS

    names: dict[str, None] = {}
    for m in metrics:
        spec = METRICS.get(m)
        if spec is None:
            continue
        for k, fname in enumerate(_fastcg.FILE_NAMES):
            if spec.kinds >> k & 1 and fname not in ("xattr", "memory.high.tmp"):
                names[fname] = None
    return tuple(names)


def needed_files(site: PluginSite) -> tuple[str, ...]:
    fn = NEEDS.get(site.name)
    if fn is not None:
        return fn(site.plugin)
    p = site.plugin
    return _files_of_metrics(tuple(getattr(p, "METRICS", ())) + tuple(getattr(p, "RANK_METRICS", ())))


def patterns_of(site: PluginSite) -> CgroupPatterns | None:
    cg = getattr(site.plugin, "cgroup", None)
    return cg if isinstance(cg, CgroupPatterns) else None


def _quoted(items, limit: int = 3) -> str:
    items = list(items)
    shown_items = ", ".join(f'"{x}"' for x in items[:limit])
    return shown_items + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _listed(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _dirs(tree: Tree, rels: list[str], limit: int = 3) -> str:
    paths = [shown(tree.abspath(r)) for r in rels]
    text = ", ".join(paths[:limit])
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _explicit_dry(site: PluginSite) -> bool:
    text = site.node.args.get("dry")
    if text is None:
        return False
    try:
        return parsing.bool_parse(text)
    except ValueError:
        return False


# ---- the host ------------------------------------------------------------------------------

def check_cgroup_fs(run: Run) -> Iterator[Finding]:
    if not run.tree.readable:
        yield Finding(
            "cgroup-fs-unreadable", ERROR, run.base_file, "$",
            f"the cgroup tree at {shown(run.host.cgroup_fs)} cannot be opened, so no cgroup "
            "check could be made.",
            "Pass --cgroup-fs with the cgroup2 mount point the daemon will use.")


def check_psi(run: Run) -> Iterator[Finding]:
    if not run.psi_ok():
        yield Finding(
            "psi-unavailable", ERROR, run.base_file, "$",
            f"{run.host.proc_root}/pressure/memory cannot be read: this kernel gives no pressure "
            "stall information, and pyoomd refuses to start without it.",
            "Boot a kernel built with CONFIG_PSI, without psi=0 on its command line.")


# ---- patterns and the files behind them -----------------------------------------------------

def check_patterns(run: Run) -> Iterator[Finding]:
    if not run.tree_ok():
        return
    fs = shown(run.host.cgroup_fs)
    fix = (f"Check the pattern against the tree (it is relative to {fs}), or ignore this if "
           "such cgroups appear only later.")
    for site in run.plugins():
        cg = patterns_of(site)
        if cg is None or site.name == "exists":   # exists is there to test for absence
            continue
        empty = [comps for comps in cg if len(run.tree.piece_rows(comps)) == 0]
        if not empty:
            continue
        if len(empty) == len(cg):
            if site.role == "detector":
                does = f"{site.name} has nothing to watch"
            elif isinstance(site.plugin, BaseKillPlugin):
                does = f"{site.name} has nothing to kill"
            else:
                does = f"{site.name} has nothing to act on"
            what = (f'"{pattern_text(empty[0])}" matches no cgroup' if len(empty) == 1
                    else f"none of {_quoted([pattern_text(c) for c in empty], 10)} matches a cgroup")
            yield Finding("pattern-matches-nothing", WARNING, site.file, site.path("cgroup"),
                          f"{what} under {fs}, so {does}.", fix)
            continue
        for comps in empty:
            yield Finding("pattern-matches-nothing", NOTE, site.file, site.path("cgroup"),
                          f'"{pattern_text(comps)}" matches no cgroup under {fs} (the other '
                          "patterns of this argument do).", fix)


def _nonroot(cg: CgroupPatterns) -> bool:
    return any(comps for comps in cg)


def check_controllers_available(run: Run) -> Iterator[Finding]:
    root = run.tree.root_controllers
    if root is None:
        return
    listed = " ".join(sorted(root)) or "nothing"
    for site in run.plugins():
        cg = patterns_of(site)
        if cg is None or not _nonroot(cg):
            continue
        by_ctrl: dict[str, list[str]] = {}
        for fname in needed_files(site):
            ctrl = controller_of(fname)
            if ctrl in (MEMORY, IO) and ctrl not in root:
                by_ctrl.setdefault(ctrl, []).append(fname)
        for ctrl, files in by_ctrl.items():
            yield Finding(
                "controller-unavailable", ERROR, site.file, site.path("cgroup"),
                f"{site.name} reads {_listed(files)}, which the {ctrl} controller provides, and "
                f"the cgroup2 hierarchy at {shown(run.tree.fs)} does not have that controller "
                f"(its cgroup.controllers lists {listed}), so {site.name} has no data for any "
                "cgroup but the root.",
                f"Give cgroup2 the {ctrl} controller: boot with systemd.unified_cgroup_hierarchy=1, "
                f"or with cgroup_no_v1={V1_NAMES[ctrl]} on a hybrid host.")


def _why_missing(tree: Tree, rel: str, fname: str) -> tuple[str, tuple[str, ...]]:
    """(cause, directories to change) for one cgroup lacking one file."""
    ctrl = controller_of(fname)
    if ctrl == PSI:
        return ("psi-off", (rel,)) if tree.psi_switched_off(rel) else ("psi-missing", ())
    if ctrl in (MEMORY, IO):
        chain = tree.enable_chain(rel, ctrl)
        if chain:
            return f"disabled:{ctrl}", tuple(chain)
    return "absent", ()


def check_cgroup_files(run: Run) -> Iterator[Finding]:
    tree = run.tree
    if not run.tree_ok():
        return
    root = tree.root_controllers
    for site in run.plugins():
        cg = patterns_of(site)
        if cg is None:
            continue
        files = [f for f in needed_files(site) if not (
            controller_of(f) == PSI and not run.psi_ok()             # psi-unavailable says it
            or root is not None and controller_of(f) in (MEMORY, IO) and controller_of(f) not in root)]
        if not files:
            continue
        rels = [r for r in tree.relpaths(tree.rows(cg)) if r]   # the root reads /proc instead
        if not rels:
            continue
        # cause -> (files, cgroups, directories to change)
        causes: dict[str, tuple[dict, dict, dict]] = {}
        for rel in rels:
            for fname in files:
                if tree.has_file(rel, fname):
                    continue
                cause, dirs = _why_missing(tree, rel, fname)
                got = causes.setdefault(cause, ({}, {}, {}))
                got[0][fname] = None
                got[1][rel] = None
                for d in dirs:
                    got[2][d] = None
        for cause, (fnames, lacking, dirs) in causes.items():
            yield _files_finding(run, site, cause, list(fnames), len(lacking), len(rels),
                                 sorted(dirs, key=lambda d: (d.count("/") + bool(d), d)))


def _files_finding(run: Run, site: PluginSite, cause: str, fnames: list[str], n: int, total: int,
                   dirs: list[str]) -> Finding:
    tree = run.tree
    who = (f"all {total} cgroups" if n == total else f"{n} of {total} cgroups")
    if total == 1:
        who = "the cgroup"
    them = "it" if n == 1 else "them"
    head = (f'{who} matched by "{shown(str(site.plugin.cgroup))}" '
            f"lack{'s' if n == 1 else ''} {_listed(fnames)}")
    tail = f"so {site.name} has no data for {them}"
    severity = ERROR if n == total else WARNING
    if cause.startswith("disabled:"):
        ctrl = cause.split(":", 1)[1]
        message = f"{head} because the {ctrl} controller is not enabled for {them}, {tail}."
        fix = (f"Enable it top-down by writing +{ctrl} to cgroup.subtree_control in "
               f"{_dirs(tree, dirs)} (with systemd: "
               f"{'MemoryAccounting' if ctrl == MEMORY else 'IOAccounting'}=yes).")
    elif cause == "psi-off":
        message = f"{head} because pressure files are switched off there (cgroup.pressure is 0), {tail}."
        fix = f"Write 1 to cgroup.pressure in {_dirs(tree, dirs)}."
    elif cause == "psi-missing":
        message = f"{head}: the kernel gives {them} no pressure files, {tail}."
        fix = "Boot a kernel built with CONFIG_PSI, without psi=0 on its command line."
    else:
        message = f"{head} although {'its' if n == 1 else 'their'} controllers are enabled, {tail}."
        if all(f.startswith("memory.swap.") for f in fnames):
            fix = "Turn on swap accounting (boot with swapaccount=1 where the kernel has the option)."
        else:
            fix = f"Use a kernel that provides {_listed(fnames)} in every cgroup."
    return Finding("cgroup-files-missing", severity, site.file, site.path("cgroup"), message, fix)


# ---- the system -----------------------------------------------------------------------------

def check_swap(run: Run) -> Iterator[Finding]:
    if int(run.system.swap_total or 0) > 0:
        return
    for site in run.plugins():
        if site.name == "swap_free":
            does = "it never fires"
        elif site.name == "kill_by_swap_usage":
            does = "it never finds a cgroup to kill"
        else:
            continue
        yield Finding(
            "no-swap", WARNING, site.file, site.path(),
            f"{site.name} acts on swap, and this host has none ({run.host.proc_root}/swaps lists "
            f"no swap area), so {does}.",
            "Add swap (a swap file, partition or zram), or leave this ruleset out on hosts "
            "without swap.")


def check_io_cost_devices(run: Run) -> Iterator[Finding]:
    if run.host.devices:
        return
    for site in run.kills():
        if site.name == "kill_by_io_cost":
            yield Finding(
                "io-cost-without-device", ERROR, site.file, site.path(),
                "kill_by_io_cost weighs io.stat by the devices given with --device, and none is "
                "given, so every io cost is 0 and it kills the first candidate by path.",
                "Start the daemon (and lint) with --device MAJOR:MINOR[,...] for the disks to "
                "weigh (lsblk shows the numbers).")


# ---- thresholds and durations ---------------------------------------------------------------

def _threshold_findings(run: Run, site: PluginSite) -> Iterator[Finding]:
    p, name = site.plugin, site.name
    never = always = None   # (arg, text of the reason)
    if name in ("pressure_above", "pressure_rising_beyond"):
        text = site.node.args.get("threshold", "")
        if p.threshold >= 100:
            never = ("threshold", f"{name}'s threshold {text} can never be met: pressure must "
                     "exceed it, and pressure is a percentage that never exceeds 100.",
                     "Use a threshold below 100.")
        elif p.threshold < 0:
            always = ("threshold", f"{name}'s threshold {text} is always met: any pressure, "
                      "0 included, exceeds it.", "Use a threshold between 0 and 99.")
    elif name == "memory_above":
        arg = "threshold_anon" if p.is_anon else "threshold"
        text = site.node.args.get(arg, "")
        mem_total = int(run.system.mem_total or 0)
        if mem_total and p.threshold >= mem_total:
            never = (arg, f"memory_above's {arg} {text} ({p.threshold // MIB} MiB) can never be "
                     f"met: it is not below this host's MemTotal ({mem_total // MIB} MiB).",
                     'Use a threshold below MemTotal, or a percentage of it (such as "80%").')
        elif p.threshold <= 0:
            always = (arg, f"memory_above's {arg} {text} is always met: any memory usage "
                      "exceeds it.", "Use a positive threshold.")
    elif name == "swap_free":
        text = site.node.args.get("threshold_pct", "")
        if p.threshold_pct <= 0:
            never = ("threshold_pct", f"swap_free's threshold_pct {text} can never be met: free "
                     "swap is never below 0 % of swap.", "Use a percentage between 1 and 99.")
        elif p.threshold_pct >= 100:
            always = ("threshold_pct", f"swap_free's threshold_pct {text} is met whenever any "
                      "swap is in use: free swap is below 100 % of swap as soon as one page is "
                      "swapped out.", "Use a percentage between 1 and 99.")
    elif name == "kill_by_swap_usage":
        swap_total = int(run.system.swap_total or 0)
        text = site.node.args.get("threshold")
        if text is not None and swap_total and p.threshold > swap_total:
            never = ("threshold", f"kill_by_swap_usage's threshold {text} "
                     f"({p.threshold // MIB} MiB) can never be met: it is above this host's "
                     f"swap ({swap_total // MIB} MiB), so no cgroup ever qualifies.",
                     'Use a threshold below the swap size, or a percentage of it (such as "10%").')
    if never is not None:
        arg, message, fix = never
        yield Finding("threshold-never-met", ERROR, site.file, site.path(arg), message, fix)
    if always is not None:
        arg, message, fix = always
        yield Finding("threshold-always-met", WARNING, site.file, site.path(arg), message, fix)


def check_thresholds(run: Run) -> Iterator[Finding]:
    for site in run.plugins():
        yield from _threshold_findings(run, site)


_DURATION_PLUGINS = ("pressure_above", "pressure_rising_beyond", "memory_above", "memory_reclaim")


def _short(value: float, what: str, interval: float) -> str:
    return (f"{what} {value:g} s is shorter than the interval ({interval:g} s): it is checked "
            f"once per tick, so it acts as {interval:g} s.")


def check_durations(run: Run) -> Iterator[Finding]:
    interval = run.host.interval
    fix = "Use at least the interval, or a shorter --interval."
    seen_rulesets = set()
    for rs in run.rulesets:
        key = (rs.file, rs.node.path)
        if key in seen_rulesets:
            continue
        seen_rulesets.add(key)
        for attr, text in (("post_action_delay", rs.node.post_action_delay),
                           ("prekill_hook_timeout", rs.node.prekill_hook_timeout)):
            value = getattr(rs.compiled, attr)
            if text and 0 < value < interval:
                yield Finding("duration-below-interval", WARNING, rs.file, rs.key_path(attr),
                              _short(value, f"ruleset {attr}", interval), fix)
    for site in run.plugins():
        value = None
        if site.name in _DURATION_PLUGINS:
            arg, value = "duration", site.plugin.duration
        elif "post_action_delay" in site.node.args and (
                isinstance(site.plugin, BaseKillPlugin) or site.name == "systemd_restart"):
            arg, value = "post_action_delay", site.plugin.post_action_delay
        if value is not None and 0 < value < interval:
            yield Finding("duration-below-interval", WARNING, site.file, site.path(arg),
                          _short(value, f"{site.name}'s {arg}", interval), fix)


def check_post_action_delay(run: Run) -> Iterator[Finding]:
    for site in run.plugins():
        if site.role != "action" or _explicit_dry(site):
            continue
        p = site.plugin
        if isinstance(p, BaseKillPlugin):
            does = "kill again"
        elif site.name == "systemd_restart":
            does = "restart the service again"
        else:
            continue
        explicit = "post_action_delay" in site.node.args
        if isinstance(p, BaseKillPlugin):   # its own delay replaces the ruleset's
            delay = (p.post_action_delay if p.post_action_delay is not None
                     else site.ruleset.compiled.post_action_delay)
        else:                               # systemd_restart: its own, then the ruleset's
            delay = p.post_action_delay + site.ruleset.compiled.post_action_delay
        if delay != 0:
            continue
        if explicit:
            file, path = site.file, site.path("post_action_delay")
        else:
            file, path = site.ruleset.file, site.ruleset.key_path("post_action_delay")
        yield Finding(
            "no-post-action-delay", WARNING, file, path,
            f"post_action_delay is 0 after {site.name} acts, so ruleset \"{site.ruleset.name}\" "
            f"can {does} at the next tick, before the first one has taken effect.",
            "Set post_action_delay to a few seconds or more (the default is 15).")


# ---- kill candidates ------------------------------------------------------------------------

# detectors that fire on a condition of the cgroups they match
_WATCHING = ("pressure_above", "pressure_rising_beyond", "memory_above", "memory_reclaim")


def check_kills_elsewhere(run: Run) -> Iterator[Finding]:
    for rs in run.rulesets:
        watched: dict[tuple[str, ...], None] = {}
        for d in rs.detectors:
            cg = patterns_of(d)
            if d.name in _WATCHING and cg is not None:
                watched.update((c, None) for c in cg)
        if not watched or () in watched:
            continue
        names = [pattern_text(w) for w in watched]
        for site in rs.actions:
            cg = patterns_of(site)
            if cg is None or not isinstance(site.plugin, BaseKillPlugin):
                continue
            for comps in cg:
                if any(related(w, comps) for w in watched):
                    continue
                example = f"{pattern_text(next(iter(watched)))}/*"
                yield Finding(
                    "kills-elsewhere", WARNING, site.file, site.path("cgroup"),
                    f'{site.name} can kill in "{pattern_text(comps)}", which is neither inside '
                    f"nor above a cgroup this ruleset's detectors watch ({_quoted(names)}), so "
                    "such a kill need not relieve what fired.",
                    f'Kill within the watched cgroups (such as "{example}"), or ignore this if '
                    "killing elsewhere is intended.")


def check_overlap(run: Run) -> Iterator[Finding]:
    kills = [s for s in run.kills() if patterns_of(s) is not None]
    reported = set()
    for j, b in enumerate(kills):
        for a in kills[:j]:
            if a.ruleset.name == b.ruleset.name or (a.file, a.node.path) == (b.file, b.node.path):
                continue
            pair = next(((pa, pb) for pb in b.plugin.cgroup for pa in a.plugin.cgroup
                         if related(pa, pb)), None)
            key = (a.file, a.node.path, b.file, b.node.path)
            if pair is None or key in reported:
                continue
            reported.add(key)
            now = ""
            if run.tree_ok():
                both = np.intersect1d(run.tree.rows(a.plugin.cgroup), run.tree.rows(b.plugin.cgroup))
                now = f"; {len(both)} cgroup{'' if len(both) == 1 else 's'} in both now"
            pa, pb = pair
            yield Finding(
                "candidates-overlap", NOTE, b.file, b.path("cgroup"),
                f'{b.name}\'s candidates "{pattern_text(pb)}" overlap those of {a.name} in '
                f'ruleset "{a.ruleset.name}" ("{pattern_text(pa)}"{now}), so one incident can '
                "make both rulesets kill.",
                "Make the candidate sets disjoint, or keep them if one incident may call for a "
                "kill by each ruleset.")


def check_all_avoid(run: Run) -> Iterator[Finding]:
    if not run.tree_ok():
        return
    for site in run.kills():
        rows = run.tree.rows(site.plugin.cgroup)
        if len(rows) == 0:
            continue
        pref = run.tree.kill_preference(rows, site.plugin.cgroup)
        if np.all(pref == AVOID):
            n = len(rows)
            what = "the only cgroup" if n == 1 else f"all {n} cgroups"
            yield Finding(
                "candidates-all-avoid", WARNING, site.file, site.path("cgroup"),
                f'{what} {site.name} can pick from "{shown(str(site.plugin.cgroup))}" '
                f"{'is' if n == 1 else 'are'} marked AVOID, so the mark decides nothing: "
                f"{'it is' if n == 1 else 'one of them is'} still killed.",
                "Remove the oomd_avoid xattr from the cgroups that may be killed, or mark the "
                "intended victims with oomd_prefer instead.")


def check_daemon_cgroup(run: Run) -> Iterator[Finding]:
    own = run.host.daemon_cgroup
    if own is None or not run.tree_ok():
        return
    own = own.strip("/")
    row = run.tree.row_of(own)
    if row is None:
        return
    for site in run.kills():
        rels = run.tree.relpaths(run.tree.rows(site.plugin.cgroup))
        hit = next((r for r in rels if r == own or not r or own.startswith(r + "/")), None)
        if hit is None:
            continue
        pref = run.tree.kill_preference(np.array([row], dtype=np.int32), site.plugin.cgroup)
        avoid = bool(pref[0] == AVOID)
        where = (f"is among {site.name}'s candidates" if hit == own
                 else f'is inside candidate "{shown(hit) or "/"}" of {site.name}')
        head = f'the daemon\'s own cgroup "{shown(own)}" {where} ("{shown(str(site.plugin.cgroup))}")'
        if avoid:
            yield Finding(
                "daemon-cgroup-candidate", NOTE, site.file, site.path("cgroup"),
                f"{head}, marked AVOID, so it is killed only when no other candidate is left.",
                "Exclude it from the pattern to be sure pyoomd never kills itself.")
        else:
            yield Finding(
                "daemon-cgroup-candidate", ERROR, site.file, site.path("cgroup"),
                f"{head}, so pyoomd can kill itself.",
                "Exclude it from the pattern, or at least mark it AVOID (ManagedOOMPreference=avoid "
                "in its unit sets user.oomd_avoid).")


def check_dry(run: Run) -> Iterator[Finding]:
    for site in run.plugins():
        if _explicit_dry(site):
            yield Finding(
                "dry-left-on", WARNING, site.file, site.path("dry"),
                f"dry is on, so {site.name} only logs and records what it would do.",
                'Remove "dry" once the config is tested (pyoomd --dry-run makes every action dry '
                "for a trial run).")


def check_tree_complete(run: Run) -> Iterator[Finding]:
    if not run.tree_ok():
        return
    n = run.tree.unopened()
    if n:
        yield Finding(
            "tree-incomplete", WARNING, run.base_file, "$",
            f"{n} cgroup director{'y or file' if n == 1 else 'ies or files'} could not be "
            "opened while lint read the tree (out of file descriptors, or not readable), so "
            "these findings may have missed cgroups.",
            "Run lint with a higher open-file limit (ulimit -n) and read access to the whole tree.")


CHECKS: tuple[Callable[[Run], Iterator[Finding]], ...] = (
    check_cgroup_fs,
    check_psi,
    check_patterns,
    check_controllers_available,
    check_cgroup_files,
    check_swap,
    check_io_cost_devices,
    check_thresholds,
    check_durations,
    check_post_action_delay,
    check_kills_elsewhere,
    check_overlap,
    check_all_avoid,
    check_daemon_cgroup,
    check_dry,
    check_tree_complete,
)
