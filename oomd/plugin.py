"""The plugin API of oomd's guide (``docs/writing_a_plugin.md``), in Python.

A plugin subclasses ``BasePlugin``, declares its arguments in ``ARGS`` and registers itself by
name, once, at import time::

    @register("pressure_above")
    class PressureAbove(BasePlugin):
        ARGS = (Arg("cgroup", parsing.cgroup_patterns, required=True), ...)

        def run(self, ctx):
            return PluginRet.CONTINUE

``register_plugin(name, factory)`` is the same thing as a call (oomd's ``REGISTER_PLUGIN``).
"""

from __future__ import annotations

import enum
import importlib
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from oomd import logs, parsing
from oomd.cgpath import CgroupPatterns, prefixed
from oomd.compat import V050, Compat
from oomd.errors import PluginArgError, PluginRegistryError
from oomd.stats import Stats
from oomd.xattr_trust import XattrTrust

ENTRY_POINT_GROUP = "pyoomd.plugins"

# io cost coefficients (reference §9.1): read_iops, readbw, write_iops, writebw, trim_iops, trimbw
DEFAULT_HDD_COEFFS = (1.31e-3, 1.13e-7, 2.58e-1, 5.04e-7, 0.0, 0.0)
DEFAULT_SSD_COEFFS = (1.21e-2, 6.25e-7, 1.07e-3, 2.61e-7, 2.37e-2, 9.10e-10)


class PluginRet(enum.IntEnum):
    CONTINUE = 0
    STOP = 1
    ASYNC_PAUSE = 2
    ASYNC_PAUSED = 2  # oomd's C++ spelling, an alias


PluginArgs = dict  # str -> str, as oomd's std::unordered_map<std::string, std::string>


class MonitoredResources:
    """The cgroups a plugin wants accounting on, and which metrics of them it reads every tick.

    It behaves as oomd's set of cgroup patterns (``add``, ``in``, iteration); the metrics let
    the context read everything a tick needs in one batch.
    """

    def __init__(self) -> None:
        self._entries: dict[CgroupPatterns, set[str]] = {}

    def add(self, patterns: CgroupPatterns | str, *metrics: str) -> None:
        if isinstance(patterns, str):
            patterns = CgroupPatterns.parse(patterns)
        self._entries.setdefault(patterns, set()).update(metrics)

    def update(self, other: MonitoredResources) -> None:
        for patterns, metrics in other.entries():
            self.add(patterns, *metrics)

    def entries(self) -> list[tuple[CgroupPatterns, frozenset[str]]]:
        return [(p, frozenset(m)) for p, m in self._entries.items()]

    def __iter__(self) -> Iterator[CgroupPatterns]:
        return iter(self._entries)

    def __contains__(self, patterns: object) -> bool:
        if isinstance(patterns, str):
            patterns = CgroupPatterns.parse(patterns)
        return patterns in self._entries

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class PluginConstructionContext:
    """What ``init`` gets besides its arguments (oomd's ``PluginConstructionContext``)."""

    cgroup_fs: str = "/sys/fs/cgroup"
    stats: Stats = field(default_factory=Stats)
    force_dry: bool = False
    kmsg_path: str = "/dev/kmsg"
    devices: tuple = ()  # ((major, minor, is_hdd), ...) from --device
    ssd_coeffs: tuple = DEFAULT_SSD_COEFFS
    hdd_coeffs: tuple = DEFAULT_HDD_COEFFS
    proc_root: str = "/proc"
    killer: Any = None  # the kill pipeline for kill plugins (oomd.kill.Killer); None: the real one
    compat: Compat = V050  # --compat: where oomd 0.5.0 and oomd HEAD differ (oomd.compat)
    # The ruleset cgroup(s) ``ruleset_cgroup`` patterns are relative to (oomd HEAD): None
    # outside a per-cgroup ruleset; the ruleset's own patterns for its template; a clone's
    # cgroup (escaped, literal) for a clone (oomd.rulesets).
    ruleset_cgroups: CgroupPatterns | None = None
    # which user. xattrs may steer a decision (--trust-user-xattrs; oomd.xattr_trust): one
    # object for the daemon, so each ignored xattr is reported once
    xattr_trust: XattrTrust = field(default_factory=XattrTrust)

    def cgroupFs(self) -> str:  # noqa: N802 - oomd's accessor name, for ported plugins
        return self.cgroup_fs


@dataclass(frozen=True)
class Arg:
    """One plugin argument: its name, a parser (text -> value), required or a default.

    The parsed value lands in the attribute ``attr`` (default: the name with ``-`` as ``_``).
    """

    name: str
    parser: Callable[[str], Any]
    required: bool = False
    default: Any = None
    attr: str | None = None

    @property
    def dest(self) -> str:
        return self.attr or self.name.replace("-", "_")


def cgroup_args() -> tuple[Arg, Arg]:
    """``cgroup`` and oomd HEAD's ``ruleset_cgroup`` (patterns relative to the ruleset cgroup).

    A plugin listing both gets ``self.cgroup`` as the union of its ``cgroup`` patterns and its
    ``ruleset_cgroup`` patterns under the ruleset cgroup of its construction context, so
    ``ctx.resolve(self.cgroup)`` is all it needs. oomd 0.5.0 requires ``cgroup``; here it may be
    left out when ``ruleset_cgroup`` is given, or always with ``--compat head``."""
    return (Arg("cgroup", parsing.cgroup_patterns, default=None),
            Arg("ruleset_cgroup", parsing.ruleset_cgroup_patterns, default=None))


EMPTY_CGROUP_MESSAGE = ("Trying to add empty cgroup set to context cache, is your plugin "
                        "configured correctly?")


def parse_args(plugin_name: str, spec: Iterable[Arg], args: Mapping[str, str]) -> dict[str, Any]:
    """oomd's ``PluginArgParser::parse``: required first, then every provided argument.

    Returns ``{dest: value}`` with defaults filled in. Raises ``PluginArgError``.
    """
    spec = tuple(spec)
    by_name = {a.name: a for a in spec}
    for a in spec:
        if a.required and a.name not in args:
            raise PluginArgError(f'Required arg "{a.name}" missing in plugin "{plugin_name}"')
    values = {a.dest: a.default for a in spec}
    for name in sorted(args):
        a = by_name.get(name)
        if a is None:
            raise PluginArgError(f'Unknown arg "{name}" in plugin "{plugin_name}"', arg=name)
        try:
            values[a.dest] = a.parser(args[name])
        except (ValueError, OverflowError) as e:
            raise PluginArgError(
                f'Failed to parse argument "{name}" of plugin "{plugin_name}": {e}', arg=name
            ) from None
    return values


class BasePlugin:
    """Every plugin derives from this (oomd's ``Engine::BasePlugin``).

    Subclasses set ``ARGS`` (a tuple of ``Arg``; ``None`` accepts any argument unchecked) and
    ``METRICS`` (what the context should read every tick for ``self.cgroup``), and implement
    ``run``. ``setup`` is an optional hook for checks beyond single arguments.
    """

    ARGS: tuple[Arg, ...] | None = ()
    METRICS: tuple[str, ...] = ()
    PLUGIN_NAME = ""  # set by register()
    # oomd HEAD: the argument that makes ``cgroup`` optional when both are in ARGS
    CGROUP_ALTERNATIVE = "ruleset_cgroup"

    def __init__(self) -> None:
        self.name = self.PLUGIN_NAME
        self.init_error: PluginArgError | None = None

    def set_name(self, name: str) -> None:
        self.name = name

    def get_name(self) -> str:
        return self.name

    def init(self, resources: MonitoredResources, args: Mapping[str, str],
             context: PluginConstructionContext) -> int:
        self.raw_args = {str(k): str(v) for k, v in args.items()}  # as given, for records
        try:
            if self.ARGS is not None:
                names = {a.name for a in self.ARGS}
                if "cgroup" in names and self.CGROUP_ALTERNATIVE in names:
                    self._require_cgroup(args, context)
                for dest, value in parse_args(self.name, self.ARGS, args).items():
                    setattr(self, dest, value)
                if "ruleset_cgroup" in names:
                    self._bind_cgroups(args, context)
            self.setup(context)
        except PluginArgError as e:
            self.init_error = e
            logs.log(e.reason, logs.ERR)
            return 1
        cgroup = getattr(self, "cgroup", None)
        if isinstance(cgroup, CgroupPatterns):
            resources.add(cgroup, *self.METRICS)
        return 0

    def _require_cgroup(self, args: Mapping[str, str], context) -> None:
        """oomd 0.5.0 requires ``cgroup``; the HEAD argument that can stand in for it
        (``CGROUP_ALTERNATIVE``, which 0.5.0 rejects) or ``--compat head`` lifts that."""
        compat = getattr(context, "compat", V050)
        if "cgroup" not in args and self.CGROUP_ALTERNATIVE not in args \
                and not compat.cgroup_optional:
            raise PluginArgError(f'Required arg "cgroup" missing in plugin "{self.name}"')

    def _bind_cgroups(self, args: Mapping[str, str], context) -> None:
        """``self.cgroup`` := ``cgroup`` ∪ (ruleset cgroup(s) × ``ruleset_cgroup``), as oomd
        HEAD's ``addToCacheAndGet(cgroups_, ruleset_cgroups_)`` resolves them. With nothing
        to resolve, HEAD logs a warning each time; so does ``run`` here (oomd 0.5.0 is silent
        for an explicit ``"cgroup": ""``)."""
        own = self.cgroup.patterns if self.cgroup is not None else ()
        bases = getattr(context, "ruleset_cgroups", None)
        extra = prefixed(bases, self.ruleset_cgroup) if bases and self.ruleset_cgroup else []
        self.cgroup = CgroupPatterns(tuple(dict.fromkeys((*own, *extra))))
        compat = getattr(context, "compat", V050)
        if not self.cgroup.patterns and ("cgroup" not in args or compat.empty_cgroup_message):
            self.run = _warn_empty(self.run)

    def setup(self, context: PluginConstructionContext) -> None:
        """Checks that need more than one argument, or the context. Raise PluginArgError."""

    def prerun(self, ctx) -> None:
        """Every tick, before any ``run``, even when the plugin will not run."""

    def run(self, ctx) -> PluginRet:
        raise TypeError(f"plugin {self.name!r} ({type(self).__name__}) does not implement run()")


def _warn_empty(run: Callable) -> Callable:
    def warned_run(ctx):
        logs.log(EMPTY_CGROUP_MESSAGE, logs.WARNING)
        return run(ctx)

    return warned_run


class PrekillHookInvocation:
    """A fired prekill hook; the kill plugin polls ``finished()`` each tick (reference §2.6)."""

    def finished(self) -> bool:
        return True

    def cancel(self) -> None:
        """The kill plugin stopped waiting (timeout): release what the hook holds."""


class PrekillHook(BasePlugin):
    """Base of prekill hooks: a ``cgroup`` list matched with the component rule of §2.6, and
    (oomd HEAD) an ``xattr``: a victim whose directory carries it matches too. oomd 0.5.0
    requires ``cgroup``; it may be left out when ``xattr`` is given, or with ``--compat head``."""

    ARGS = (Arg("cgroup", CgroupPatterns.parse, default=None),
            Arg("xattr", parsing.xattr_name, default=""))
    CGROUP_ALTERNATIVE = "xattr"

    def can_run_on(self, relpath: str) -> bool:
        return self.cgroup is not None and self.cgroup.matches_path(relpath)

    def matches(self, relpath: str, dir_fd: int | None = None) -> bool:
        """The victim carries the hook's ``xattr`` (read through its directory fd), or its
        path matches ``cgroup``."""
        xattr = getattr(self, "xattr", "")
        if xattr and dir_fd is not None and dir_fd >= 0:
            try:
                os.getxattr(dir_fd, xattr)
                return True
            except OSError:
                pass  # absent, unsupported or unreadable: as oomd, not a match
        return self.can_run_on(relpath)

    def fire(self, relpath: str, abspath: str, action_context) -> PrekillHookInvocation:
        raise TypeError(f"prekill hook {self.name!r} does not implement fire()")


# -- registries ------------------------------------------------------------------------------

REGISTRY: dict[str, Callable[[], BasePlugin]] = {}
PREKILL_HOOK_REGISTRY: dict[str, Callable[[], PrekillHook]] = {}


def _describe(factory: Callable) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def register_plugin(name: str, factory: Callable[[], BasePlugin],
                    registry: dict[str, Callable] | None = None) -> Callable[[], BasePlugin]:
    """Add ``factory`` under ``name``; a name can be registered once."""
    registry = REGISTRY if registry is None else registry
    old = registry.get(name)
    if old is not None and old is not factory:
        raise PluginRegistryError(
            f"plugin name {name!r} registered twice: by {_describe(old)} and by {_describe(factory)}"
        )
    registry[name] = factory
    if isinstance(factory, type):
        factory.PLUGIN_NAME = name
    return factory


def register(name: str):
    """Class decorator: ``@register("pressure_above")``."""

    def deco(cls):
        return register_plugin(name, cls)

    return deco


def register_prekill_hook(name: str):
    def deco(cls):
        return register_plugin(name, cls, PREKILL_HOOK_REGISTRY)

    return deco


def create(name: str, registry: dict[str, Callable] | None = None) -> BasePlugin | None:
    factory = (REGISTRY if registry is None else registry).get(name)
    if factory is None:
        return None
    plugin = factory()
    plugin.set_name(name)
    return plugin


def load_builtin_plugins() -> None:
    importlib.import_module("oomd.plugins")


def load_plugin_module(module: str) -> None:
    """Import a third-party module whose plugins register themselves (``--plugin-module``)."""
    importlib.import_module(module)


def _entry_points_possible(group: str) -> bool:
    """Whether a distribution on ``sys.path`` may advertise ``group``: some ``entry_points.txt``
    of a ``*.dist-info``/``*.egg-info``/``*.egg`` mentions it, or something importlib.metadata
    would look at that this does not read (a zip on the path, a custom finder of
    distributions). ``importlib.metadata`` (with email, zipfile, csv: 1.5 MiB of the daemon's
    resident memory) is imported only then."""
    from importlib.machinery import PathFinder

    if any(getattr(f, "find_distributions", None) is not None and f is not PathFinder
           for f in sys.meta_path):
        return True
    needle = group.encode()
    for entry in sys.path:
        path = entry or "."
        if not os.path.isdir(path):
            if os.path.exists(path):
                return True          # a zip (or other) path entry
            continue
        candidates = [os.path.join(path, "EGG-INFO")] if path.endswith(".egg") else []
        try:
            with os.scandir(path) as it:
                candidates += [e.path for e in it
                               if e.name.endswith((".dist-info", ".egg-info", ".egg"))]
        except OSError:
            continue
        for d in candidates:
            if d.endswith(".egg"):
                d = os.path.join(d, "EGG-INFO")
            try:
                with open(os.path.join(d, "entry_points.txt"), "rb") as f:
                    if needle in f.read():
                        return True
            except OSError:
                continue
    return False


def load_entry_point_plugins() -> list[str]:
    """Import every module advertised in the ``pyoomd.plugins`` entry-point group."""
    loaded: list[str] = []
    if not _entry_points_possible(ENTRY_POINT_GROUP):
        return loaded
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
        loaded.append(ep.name)
    return loaded
