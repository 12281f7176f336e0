"""Per-cgroup rulesets (oomd HEAD, reference §10; oomd ``engine/Ruleset.cpp``).

A ruleset with a ``cgroup`` key (and optionally ``xattr_filter``) is a template: each tick its
patterns are resolved, cgroups without the xattr are left out, and a separate *clone* of the
ruleset runs for each remaining cgroup, in resolution order (relative path, byte-wise; oomd
uses its hash order). A clone has its own plugin instances, so its own detector timers, pause
and suspended action chain; its plugins' ``ruleset_cgroup`` patterns are bound to its cgroup.

* A cgroup seen for the first time: ``Adding runnable ruleset for cgroup: <abs>``, the clone is
  built and prerun at once, then run.
* A clone whose cgroup did not match this tick (gone, renamed, xattr removed): ``Dropping
  runnable ruleset for cgroup: <abs>`` after the others ran; a prekill hook it was waiting for
  is cancelled. Clones are keyed by path, as oomd's: a cgroup re-created under the same name
  keeps its clone.
* Prerun of the template preruns the existing clones (before anything is added).
* The template's return value is that of the last clone run (0 with none).

What keeps clones cheap: a clone is a ``Ruleset`` holding new plugin instances built from the
template plugins' names and arguments (each ``init`` parses a few strings); the cgroup's name
is escaped into the clone's patterns once, at construction, and the context's pattern cache
makes each clone's resolution a lookup. Every clone reads through the one context, whose
columns are filled once per tick, so a file is read once however many clones look at it; the
template's monitored patterns (the ruleset patterns joined with each ``ruleset_cgroup``
pattern) let the context read them for all clones in one batch at refresh.

Safety: a clone's ``ruleset_cgroup`` patterns can only match at or below its cgroup (the name
is matched literally and ``.``/``..`` are refused at config time), so a clone's kill plugin
cannot reach a cgroup outside its ruleset cgroup through them.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable

from oomd import logs, plugin
from oomd.cgpath import CgroupPatterns, literal_prefix
from oomd.engine import DetectorGroup, Ruleset
from oomd.errors import ConfigError
from oomd.names import shown
from oomd.plugin import PluginConstructionContext
from oomd.stats import Stats
from oomd.xattr_trust import anchor_row, owner_of

# absent attribute / filesystem without xattrs: not a match, no log (as oomd's hasxattrAt)
_NO_XATTR = (errno.ENODATA, errno.EOPNOTSUPP)
_UNSET = object()


class CloneError(Exception):
    """A clone's plugin did not initialise (its init depends on something that changed)."""


def clone_plugin(template: plugin.BasePlugin, context: PluginConstructionContext,
                 compile_plugin: Callable) -> plugin.BasePlugin:
    """A fresh instance of ``template``'s plugin with the same arguments, compiled as the
    template was (oomd re-creates it through the registry and calls ``init`` again).
    ``compile_plugin(config, registry, context)`` is the config compiler's (passed in, so this
    module does not import the compiler that imports it)."""
    config, registry = template.config
    try:
        return compile_plugin(config, registry, context)
    except ConfigError as e:
        raise CloneError(e.reason) from None


class PerCgroupRuleset(Ruleset):
    """The template ruleset. Its own plugins never run; they are the pattern for clones (and
    a drop-in merges into them as into any ruleset)."""

    def __init__(self, template: Ruleset, patterns: CgroupPatterns, xattr_filter: str,
                 context: PluginConstructionContext, compile_plugin: Callable) -> None:
        super().__init__(
            template.name, template.detector_groups, template.actions,
            disable_on_drop_in=template.disable_on_drop_in,
            detectorgroups_dropin_enabled=template.detectorgroups_dropin_enabled,
            actiongroup_dropin_enabled=template.actiongroup_dropin_enabled,
            silenced_logs=template.silenced_logs, post_action_delay=template.post_action_delay,
            prekill_hook_timeout=template.prekill_hook_timeout, clock=template.clock,
            compat=template.compat)
        self.patterns = patterns
        self.xattr_filter = xattr_filter
        self._compile_plugin = compile_plugin
        # clones see their own stats map at construction: a kill plugin's init sets
        # oomd.kills to 0 (oomd 0.5.0 at start-up), which must not happen on every new clone
        self.context = dataclasses.replace(context, stats=Stats())
        self.clones: dict[str, Ruleset] = {}
        self._anchor_owner: object = _UNSET
        self._unbuildable: set[str] = set()

    # -- clones --------------------------------------------------------------------------------

    def make_clone(self, relpath: str, abspath: str) -> Ruleset:
        """A clone for the cgroup at ``relpath``. Raises CloneError."""
        ctx = dataclasses.replace(self.context,
                                  ruleset_cgroups=CgroupPatterns((literal_prefix(relpath),)))
        make = self._compile_plugin
        groups = [DetectorGroup(dg.name, [clone_plugin(d, ctx, make) for d in dg.detectors])
                  for dg in self.detector_groups]
        actions = [clone_plugin(a, ctx, make) for a in self.actions]
        clone = Ruleset(self.name, groups, actions, silenced_logs=self.silenced_logs,
                        post_action_delay=self.post_action_delay,
                        prekill_hook_timeout=self.prekill_hook_timeout, clock=self.clock,
                        compat=self.compat)
        clone.label = self.label
        clone.ruleset_cgroup = abspath
        return clone

    def _matches_filter(self, ctx, row: int, abspath: str) -> bool:
        """The cgroup carries ``xattr_filter``; a ``user.`` one only where the trust rule lets
        it count (oomd.xattr_trust: the directory owned by root or by the owner of the
        anchor of the ruleset's ``cgroup`` patterns)."""
        if not self.xattr_filter:
            return True
        fd = ctx.dir_fd(row)
        if fd < 0:
            return False  # gone since it was listed
        try:
            os.getxattr(fd, self.xattr_filter)
        except OSError as e:
            if e.errno not in _NO_XATTR:
                logs.log(f"Failed to fetch xattr: {self.xattr_filter} for cgroup: "
                         f"{shown(abspath)}. Error: {e.strerror}")
            return False
        trust = self.context.xattr_trust
        if trust.trust_user_xattrs or not self.xattr_filter.startswith("user."):
            return True
        if self._anchor_owner is _UNSET:
            self._anchor_owner = owner_of(ctx, anchor_row(ctx, self.patterns))
        return trust.counts(ctx, row, self.xattr_filter, fd, self._anchor_owner)

    # -- the tick ------------------------------------------------------------------------------

    def prerun(self, ctx) -> None:
        if not self.enabled:
            return
        for clone in self.clones.values():
            clone.prerun(ctx)

    def run_once(self, ctx) -> int:
        if not self.enabled:
            return 0
        ret = 0
        self._anchor_owner = _UNSET   # looked up once a tick, when a user. filter needs it
        visited: set[str] = set()
        matched: set[str] = set()
        for row in ctx.resolve(self.patterns).tolist():
            relpath = ctx.relpath(row)
            abspath = ctx.abspath(row)
            if not self._matches_filter(ctx, row, abspath):
                continue
            matched.add(relpath)
            clone = self.clones.get(relpath)
            if clone is None:
                logs.log(f"Adding runnable ruleset for cgroup: {shown(abspath)}")
                try:
                    clone = self.make_clone(relpath, abspath)
                except CloneError as e:
                    if relpath not in self._unbuildable:
                        self._unbuildable.add(relpath)
                        logs.log(f"Could not build the runnable ruleset for cgroup "
                                 f"{shown(abspath)}: {e}", logs.ERR)
                    continue
                self._unbuildable.discard(relpath)
                self.clones[relpath] = clone
                clone.prerun(ctx)
            ret = clone.run_once(ctx)
            visited.add(relpath)
        self._unbuildable &= matched
        for relpath in sorted(set(self.clones) - visited, key=os.fsencode):
            clone = self.clones.pop(relpath)
            logs.log(f"Dropping runnable ruleset for cgroup: {shown(clone.ruleset_cgroup)}")
            clone.release()
        return ret

    def release(self) -> None:
        for clone in self.clones.values():
            clone.release()
        self.clones.clear()
