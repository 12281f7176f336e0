"""IR -> Engine (reference §2.3; oomd ``config/ConfigCompiler.cpp``).

The first problem stops compilation and raises ``ConfigError`` with oomd's message text as the
reason, located by JSON path; nothing is left half-built. Where oomd aborts (a non-numeric
``post_action_delay``), we raise a ``ConfigError`` too.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from oomd import logs, parsing, plugin
from oomd.cgpath import CgroupPatterns
from oomd.config import ir
from oomd.config.jsonc import key_path
from oomd.engine import (
    DEFAULT_POST_ACTION_DELAY,
    DEFAULT_PREKILL_HOOK_TIMEOUT,
    SILENCE_ENGINE,
    SILENCE_PLUGINS,
    DetectorGroup,
    DropInUnit,
    Engine,
    Ruleset,
)
from oomd.errors import ConfigError
from oomd.plugin import MonitoredResources, PluginConstructionContext

_TRIM = " \t\n\v\f\r"


class Compiler:
    def __init__(self, context: PluginConstructionContext, file: str = "<config>",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.context = context
        self.file = file
        self.clock = clock

    def error(self, path: str, reason: str) -> ConfigError:
        return ConfigError(self.file, path, reason)

    # -- plugins ---------------------------------------------------------------------------------

    def plugin(self, p: ir.Plugin, registry=None) -> plugin.BasePlugin:
        if not p.name:
            raise self.error(p.path, "Plugin is missing name")
        instance = plugin.create(p.name, registry)
        if instance is None:
            raise self.error(key_path(p.path, "name"), f"Could not locate plugin={p.name} in plugin registry")
        resources = MonitoredResources()
        try:
            ret = instance.init(resources, dict(p.args), self.context)
        except Exception as e:  # noqa: BLE001 - a plugin's init must not crash the compiler
            raise self.error(p.arg_path(None), f"Plugin={p.name} failed to init(): "
                             f"{type(e).__name__}: {e}") from e
        if ret != 0:
            err = getattr(instance, "init_error", None)
            reason = f"Plugin={p.name} failed to init() with code={ret}"
            if err is not None:
                reason += f": {err.reason}"
            raise self.error(p.arg_path(getattr(err, "arg", None)), reason)
        instance.resources = resources
        instance.config = (p, registry)  # what a per-cgroup ruleset's clones are compiled from
        return instance

    def detector_group(self, dg: ir.DetectorGroup) -> DetectorGroup:
        if not dg.name:
            raise self.error(dg.path, "DetectorGroup is missing name")
        if not dg.detectors:
            raise self.error(dg.path, "DetectorGroup is missing Detectors")
        return DetectorGroup(dg.name, [self.plugin(d) for d in dg.detectors])

    # -- rulesets --------------------------------------------------------------------------------

    def _seconds(self, rs: ir.Ruleset, key: str, text: str, default: int) -> int:
        if not text:
            return default
        path = key_path(rs.path, key)
        try:
            value = parsing.int_parse(text)
        except ValueError:
            raise self.error(path, f"Ruleset {key} must be an integer number of seconds, got {text!r}") from None
        if value < 0:
            raise self.error(path, f"Ruleset {key} must be non-negative")
        return value

    def _ruleset_cgroups(self, rs: ir.Ruleset) -> tuple[CgroupPatterns | None, str]:
        """oomd HEAD's ruleset keys ``cgroup`` and ``xattr_filter``, checked."""
        if not rs.cgroup:
            if rs.xattr_filter:
                raise self.error(key_path(rs.path, "xattr_filter"),
                                 'xattr_filter needs the ruleset key "cgroup" (it filters the '
                                 "cgroups that get a copy of the ruleset)")
            return None, ""
        path = key_path(rs.path, "cgroup")
        try:
            patterns = parsing.ruleset_cgroup_patterns(rs.cgroup)
        except ValueError as e:
            raise self.error(path, f"Ruleset cgroup {rs.cgroup!r}: {e}") from None
        if not patterns.patterns:
            raise self.error(path, f"Ruleset cgroup {rs.cgroup!r} has no pattern")
        if rs.xattr_filter:
            try:
                parsing.xattr_name(rs.xattr_filter)
            except ValueError as e:
                raise self.error(key_path(rs.path, "xattr_filter"), str(e)) from None
        return patterns, rs.xattr_filter

    def ruleset(self, rs: ir.Ruleset, dropin: bool = False,
                ruleset_cgroups: CgroupPatterns | None = None) -> Ruleset:
        """Compile one ruleset; with a ``cgroup`` key, a ``PerCgroupRuleset`` (oomd HEAD).
        ``ruleset_cgroups``: a drop-in's, the patterns of the ruleset it targets."""
        if not rs.name:
            raise self.error(rs.path, "Ruleset is missing name")
        silenced = 0
        if rs.silence_logs:
            for part in rs.silence_logs.strip(_TRIM).split(","):
                part = part.strip(_TRIM)
                if not part:
                    continue
                if part == "engine":
                    silenced |= SILENCE_ENGINE
                elif part == "plugins":
                    silenced |= SILENCE_PLUGINS
                else:
                    raise self.error(key_path(rs.path, "silence-logs"), f"Unrecognized log source={part}")
        if not dropin and (not rs.detector_groups or not rs.actions):
            raise self.error(rs.path, "Ruleset is missing DetectorGroups or missing Actions")
        post_action_delay = self._seconds(rs, "post_action_delay", rs.post_action_delay,
                                          DEFAULT_POST_ACTION_DELAY)
        prekill_hook_timeout = self._seconds(rs, "prekill_hook_timeout", rs.prekill_hook_timeout,
                                             DEFAULT_PREKILL_HOOK_TIMEOUT)
        patterns, xattr_filter = self._ruleset_cgroups(rs)
        if patterns is not None or ruleset_cgroups is not None:
            # the template's plugins bind ruleset_cgroup to the ruleset's patterns: what they
            # monitor covers every clone's
            own = Compiler(dataclasses.replace(self.context,
                                               ruleset_cgroups=patterns or ruleset_cgroups),
                           self.file, self.clock)
        else:
            own = self
        groups = [own.detector_group(dg) for dg in rs.detector_groups]
        actions = [own.plugin(a) for a in rs.actions]
        compiled = Ruleset(
            rs.name,
            groups,
            actions,
            disable_on_drop_in=rs.dropin.disable_on_drop_in,
            detectorgroups_dropin_enabled=rs.dropin.detectors,
            actiongroup_dropin_enabled=rs.dropin.actions,
            silenced_logs=silenced,
            post_action_delay=post_action_delay,
            prekill_hook_timeout=prekill_hook_timeout,
            clock=self.clock,
            compat=self.context.compat,
        )
        if patterns is None:
            return compiled
        from oomd.rulesets import PerCgroupRuleset

        return PerCgroupRuleset(compiled, patterns, xattr_filter, self.context,
                                compile_clone_plugin)

    def prekill_hooks(self, hooks) -> list:
        return [self.plugin(h, plugin.PREKILL_HOOK_REGISTRY) for h in hooks]

    # -- whole configs ---------------------------------------------------------------------------

    def compile(self, root: ir.Root) -> Engine:
        rulesets = [self.ruleset(rs) for rs in root.rulesets]
        hooks = self.prekill_hooks(root.prekill_hooks)
        return Engine(rulesets, hooks, clock=self.clock, stats=self.context.stats)

    def compile_drop_in(self, base: ir.Root, dropin: ir.Root) -> DropInUnit:
        """Each drop-in ruleset is merged into a fresh copy of its base ruleset (§2.5).

        Errors in the drop-in name the drop-in's file; the base copy compiles as the base did.
        """
        own = Compiler(self.context, dropin.file, self.clock)
        base_compiler = Compiler(self.context, base.file, self.clock)
        rulesets = []
        for drs in dropin.rulesets:
            target = next((rs for rs in base.rulesets if rs.name == drs.name), None)
            if target is None:
                raise own.error(key_path(drs.path, "name"), f"Could not locate targeted ruleset={drs.name}")
            copy = base_compiler.ruleset(target)
            why = copy.merge_with_drop_in(
                own.ruleset(drs, dropin=True, ruleset_cgroups=getattr(copy, "patterns", None)))
            if why is not None:
                raise own.error(drs.path, f"{why}; Could not merge drop in ruleset={drs.name}")
            rulesets.append(copy)
        return DropInUnit(rulesets, own.prekill_hooks(dropin.prekill_hooks))


def compile_config(root: ir.Root, context: PluginConstructionContext,
                   clock: Callable[[], float] = time.monotonic) -> Engine:
    return Compiler(context, root.file, clock).compile(root)


def load_engine(path: str, context: PluginConstructionContext,
                clock: Callable[[], float] = time.monotonic) -> Engine:
    """Parse and compile a config file. Raises OSError or ConfigError."""
    from oomd.config.parser import parse_file

    root = parse_file(path)
    engine = compile_config(root, context, clock)
    engine.config_ir = root
    logs.log(f"Compiled config {path}: {len(root.rulesets)} ruleset(s)", logs.DEBUG)
    return engine


def compile_clone_plugin(config: ir.Plugin, registry, context) -> plugin.BasePlugin:
    """One plugin of a per-cgroup ruleset's clone, compiled as its template was."""
    return Compiler(context, "<per-cgroup ruleset>").plugin(config, registry)
