"""The config as the daemon compiles it, with each compiled plugin next to its config element.

``load(config, drop_ins, context)`` parses and compiles the base config with the daemon's
compiler (``oomd.config.compiler.Compiler``), then each drop-in against it as the daemon does
when one appears (``Compiler.compile_drop_in``). Nothing is parsed here: the compiled rulesets
are paired, position by position, with the IR nodes they were compiled from, so a finding about
a compiled plugin can name the file and JSON path of its element. A config or drop-in that does
not compile becomes a finding, with the compiler's reason and JSON path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oomd.config import ir
from oomd.config.compiler import Compiler
from oomd.config.jsonc import key_path
from oomd.config.parser import parse_file
from oomd.engine import Ruleset
from oomd.errors import ConfigError
from oomd.lint.findings import ERROR, Finding
from oomd.plugin import BasePlugin, PluginConstructionContext


@dataclass
class PluginSite:
    plugin: BasePlugin      # the compiled instance (its parsed arguments are attributes)
    node: ir.Plugin         # the config element it was compiled from
    file: str
    role: str               # "detector" or "action"
    ruleset: "RulesetSite" = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return self.node.name

    def path(self, arg: str | None = None) -> str:
        return self.node.arg_path(arg) if arg else self.node.path


@dataclass
class RulesetSite:
    name: str
    node: ir.Ruleset        # where the ruleset-level keys (post_action_delay...) are written
    file: str
    compiled: Ruleset
    detectors: list[PluginSite]
    actions: list[PluginSite]
    dropin: str | None = None   # the drop-in file this copy comes from, None for the base

    def key_path(self, key: str) -> str:
        return key_path(self.node.path, key)

    @property
    def plugins(self) -> list[PluginSite]:
        return self.detectors + self.actions


@dataclass
class Loaded:
    rulesets: list[RulesetSite]
    findings: list[Finding]
    files: list[str]            # base config first, then drop-ins
    compiled: bool              # the base config compiled (the daemon would start with it)


def _detectors(rs_ir: ir.Ruleset, rs: Ruleset, file: str) -> list[PluginSite]:
    out = []
    for dg_ir, dg in zip(rs_ir.detector_groups, rs.detector_groups):
        out.extend(PluginSite(p, node, file, "detector") for node, p in zip(dg_ir.detectors, dg.detectors))
    return out


def _actions(rs_ir: ir.Ruleset, rs: Ruleset, file: str) -> list[PluginSite]:
    return [PluginSite(p, node, file, "action") for node, p in zip(rs_ir.actions, rs.actions)]


def _site(name, node, file, compiled, detectors, actions, dropin=None) -> RulesetSite:
    site = RulesetSite(name, node, file, compiled, detectors, actions, dropin)
    for p in site.plugins:
        p.ruleset = site
    return site


def _config_error(code: str, e: ConfigError, fix: str) -> Finding:
    reason = e.reason if e.reason.endswith((".", "!", "?")) else f"{e.reason}."
    return Finding(code, ERROR, e.file, e.json_path, reason, fix)


def _unreadable(code: str, path: str, e: OSError, fix: str) -> Finding:
    return Finding(code, ERROR, path, "$", f"cannot read the file: {e.strerror or e}.", fix)


def _dropin_targets(base: ir.Root, dropin: ir.Root) -> list[Finding]:
    """The drop-in's rulesets name base rulesets that accept what they bring (reference §2.5)."""
    out = []
    by_name = {rs.name: rs for rs in base.rulesets}
    names = ", ".join(f'"{rs.name}"' for rs in base.rulesets) or "(none)"
    for drs in dropin.rulesets:
        target = by_name.get(drs.name)
        if target is None:
            out.append(Finding(
                "dropin-unknown-ruleset", ERROR, dropin.file, key_path(drs.path, "name"),
                f'drop-in ruleset "{drs.name}" matches no ruleset of the base config, so the '
                "daemon rejects the whole drop-in.",
                f"Name one of the base config's rulesets: {names}."))
            continue
        for kind, wanted, allowed in (("detectors", drs.detector_groups, target.dropin.detectors),
                                      ("actions", drs.actions, target.dropin.actions)):
            if wanted and not allowed:
                out.append(Finding(
                    "dropin-not-allowed", ERROR, dropin.file, key_path(drs.path, kind),
                    f'ruleset "{drs.name}" does not accept drop-in {kind}, so the daemon rejects '
                    "the whole drop-in.",
                    f'Set "drop-in": {{"{kind}": true}} on ruleset "{drs.name}" in the base '
                    f"config, or leave {kind} out of the drop-in."))
    return out


def load(config: str, drop_ins: list[str], context: PluginConstructionContext) -> Loaded:
    files = [config] + list(drop_ins)
    try:
        base = parse_file(config)
        engine = Compiler(context, config).compile(base)
    except OSError as e:
        return Loaded([], [_unreadable("config-error", config, e,
                                       "Give the path of a readable config file.")], files, False)
    except ConfigError as e:
        return Loaded([], [_config_error("config-error", e,
                                         "Fix this element: the daemon refuses to start with "
                                         "a config that does not compile.")], files, False)
    rulesets = []
    for rs_ir, holder in zip(base.rulesets, engine.rulesets):
        rs = holder.ruleset
        rulesets.append(_site(rs.name, rs_ir, config, rs, _detectors(rs_ir, rs, config),
                              _actions(rs_ir, rs, config)))
    findings: list[Finding] = []
    by_name = {rs.name: rs for rs in base.rulesets}
    for path in drop_ins:
        try:
            dropin = parse_file(path)
        except OSError as e:
            findings.append(_unreadable("dropin-error", path, e,
                                        "Give the path of a readable drop-in file."))
            continue
        except ConfigError as e:
            findings.append(_config_error("dropin-error", e, "Fix this element: the daemon "
                                          "rejects a drop-in that does not compile."))
            continue
        problems = _dropin_targets(base, dropin)
        if problems:
            findings.extend(problems)
            continue
        try:
            unit = Compiler(context, config).compile_drop_in(base, dropin)
        except ConfigError as e:
            findings.append(_config_error("dropin-error", e, "Fix this element: the daemon "
                                          "rejects a drop-in that does not compile."))
            continue
        for drs, merged in zip(dropin.rulesets, unit.rulesets):
            target = by_name[drs.name]
            det_ir, det_file = (drs, path) if drs.detector_groups else (target, config)
            act_ir, act_file = (drs, path) if drs.actions else (target, config)
            rulesets.append(_site(
                merged.name, target, config, merged,
                _detectors(det_ir, merged, det_file), _actions(act_ir, merged, act_file),
                dropin=path))
    return Loaded(rulesets, findings, files, True)
