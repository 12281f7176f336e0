"""Which ``user.`` xattrs on a cgroup may steer a decision (docs/compat.md, "Cgroup names and
xattrs from delegated subtrees").

Anyone who owns a cgroup directory can set ``user.*`` xattrs on it; on a systemd host every user
owns a delegated subtree (``user@UID.service``) and container runtimes delegate more. oomd honours
``user.oomd_avoid`` from anyone, so a user could shield their own cgroups and steer the killer
towards other people's work. pyoomd applies systemd-oomd's rule (systemd PR #23764):

* ``user.oomd_avoid`` counts only when the cgroup directory is owned by root, or by the owner of
  the *anchor* of the ranking it takes part in; otherwise it is ignored (the cgroup ranks as
  NORMAL), logged once per cgroup and counted (``pyoomd.user_xattrs_ignored``). The anchor of a
  kill plugin's candidates is the deepest directory named by the wildcard-free prefix common to
  its ``cgroup`` patterns (``user.slice/user-1000.slice/user@1000.service`` for
  ``user.slice/user-1000.slice/user@1000.service/*``; the cgroup-fs root, owned by root, for
  ``*/*``); the anchor of a ``recursive`` step is the parent whose children are ranked. A user
  who owns the anchor owns everything ranked under it, so they can order their own cgroups but
  never push the kill onto another user's.
* ``user.oomd_prefer`` always counts: it can only make its owner's own cgroup the victim.
* ``trusted.`` xattrs need CAP_SYS_ADMIN to set and always count.
* A per-cgroup ruleset's ``xattr_filter`` in the ``user.`` namespace follows the same rule, with
  the anchor of the ruleset's ``cgroup`` patterns: opting a cgroup into a ruleset starts that
  ruleset's actions, whose kills may reach beyond it.
* ``--trust-user-xattrs`` restores oomd's behaviour (every ``user.`` xattr counts).

The reader reports, with the kill preference, the owner's uid of every directory whose AVOID
comes only from ``user.oomd_avoid`` (metric ``avoid_uid``, -1 otherwise; one fstat when the
xattr is read, kept with it), so the rule costs nothing per tick; the anchor's owner is one
fstat when a ranking has such a cgroup. (numpy is imported where it is used: the command line
imports this module before it may import numpy, oomd.cli.import_numpy_single_threaded.)
"""

from __future__ import annotations

import os
import re

from oomd import logs
from oomd.cgpath import CgroupPatterns, is_glob
from oomd.names import shown

NORMAL, AVOID = 0, -1
IGNORED_STAT = "pyoomd.user_xattrs_ignored"
MAX_LINES = 16          # cgroups logged by name per ranking (the rest in one summary line)
_REMEMBERED_MAX = 1 << 16   # cgroups remembered as reported, then forgotten all at once
_UNESCAPE = re.compile(r"\\(.)")


def anchor_path(patterns: CgroupPatterns | None) -> str:
    """The relative path of the anchor of ``patterns``' candidates: the deepest directory named
    by the wildcard-free prefix every pattern shares (never a candidate itself: a pattern's last
    component is left out). ``""`` is the cgroup-fs root."""
    common: list[str] | None = None
    for comps in patterns or ():
        prefix = []
        for comp in comps[:-1]:
            if is_glob(comp):
                break
            prefix.append(_UNESCAPE.sub(r"\1", comp))
        if common is None:
            common = prefix
        else:
            n = 0
            while n < min(len(common), len(prefix)) and common[n] == prefix[n]:
                n += 1
            common = common[:n]
    return "/".join(common or ())


def owner_of(ctx, row: int | None) -> int | None:
    """The uid owning a row's directory, None when it cannot be known."""
    if row is None or row < 0:
        return None
    try:
        fd = ctx.dir_fd(row)
        return os.fstat(fd).st_uid if fd >= 0 else None
    except (OSError, AttributeError, TypeError):
        return None


def anchor_row(ctx, patterns: CgroupPatterns | None) -> int | None:
    try:
        return ctx.row_of(anchor_path(patterns))
    except (OSError, AttributeError):
        return None


class XattrTrust:
    """The rule for one daemon: ``trust_user_xattrs`` is ``--trust-user-xattrs``. Shared by every
    plugin and ruleset compiled with the same construction context, so a cgroup is reported
    once whichever plugin met it."""

    def __init__(self, trust_user_xattrs: bool = False) -> None:
        self.trust_user_xattrs = trust_user_xattrs
        self._reported: set[int] = set()

    # -- kill preference -----------------------------------------------------------------------

    def preference(self, ctx, rows, anchor: int | None = None,
                   patterns: CgroupPatterns | None = None, *, report: bool = True):
        """(kill preference, ignored) for ``rows`` ranked together: PREFER 1, NORMAL 0,
        AVOID -1 (unreadable: NORMAL), with an untrusted ``user.oomd_avoid`` counted as NORMAL;
        ``ignored`` marks those rows. ``anchor`` is the row whose owner may steer the ranking
        (the parent in a ``recursive`` step), else the anchor of ``patterns``. ``report``:
        log and count the ignored ones (lint only asks)."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int32)
        values, valid = ctx.get("kill_preference", rows)
        pref = np.where(np.asarray(valid, dtype=bool), np.asarray(values), 0).astype(np.int8)
        ignored = np.zeros(len(rows), dtype=bool)
        if self.trust_user_xattrs or not (pref == AVOID).any():
            return pref, ignored
        uid, uvalid = ctx.get("avoid_uid", rows)
        uid = np.asarray(uid, dtype=np.int64)
        # user.oomd_avoid alone, on a directory root does not own
        suspect = (pref == AVOID) & np.asarray(uvalid, dtype=bool) & (uid > 0)
        if not suspect.any():
            return pref, ignored
        owner = owner_of(ctx, anchor if anchor is not None else anchor_row(ctx, patterns))
        ignored = suspect & (uid != (-2 if owner is None else owner))
        if ignored.any():
            pref = pref.copy()
            pref[ignored] = NORMAL
            if report:
                self._report(ctx, rows[ignored], uid[ignored], owner)
        return pref, ignored

    def _first_time(self, ctx, ids: list[int]) -> list[bool]:
        """Which of these cgroups (by inode) are reported for the first time; counts them."""
        fresh = [i not in self._reported for i in ids]
        n = sum(fresh)
        if n:
            if len(self._reported) + n > _REMEMBERED_MAX:
                self._reported.clear()
            self._reported.update(ids)
            stats = getattr(ctx, "stats", None)
            if stats is not None:
                stats.increment(IGNORED_STAT, n)
        return fresh

    def _report(self, ctx, rows, uids, owner: int | None) -> None:
        """Log each newly seen cgroup once (at most MAX_LINES a ranking) and count it."""
        import numpy as np

        ids = np.asarray(ctx.get("id", rows)[0], dtype=np.uint64).tolist()
        fresh = self._first_time(ctx, ids)
        new = [(int(r), int(u)) for r, u, f in zip(rows.tolist(), uids.tolist(), fresh) if f]
        if not new:
            return
        who = "unknown" if owner is None else str(owner)
        for row, uid in new[:MAX_LINES]:
            logs.log(f'Ignoring user.oomd_avoid on "{shown(ctx.relpath(row))}": its directory '
                     f"is owned by uid {uid}, neither root nor the owner (uid {who}) of the "
                     "cgroups it is ranked among (--trust-user-xattrs honours it)", logs.WARNING)
        if len(new) > MAX_LINES:
            logs.log(f"Ignoring user.oomd_avoid on {len(new) - MAX_LINES} more cgroups for the "
                     f"same reason (counted in {IGNORED_STAT})", logs.WARNING)

    # -- xattr_filter of per-cgroup rulesets ---------------------------------------------------

    def counts(self, ctx, row: int, name: str, fd: int, anchor_owner: int | None) -> bool:
        """Whether an xattr ``name`` present on the directory ``fd`` (row ``row``) may select
        it: ``trusted.`` and the like always, ``user.`` under the rule above."""
        if self.trust_user_xattrs or not name.startswith("user."):
            return True
        try:
            uid = os.fstat(fd).st_uid
        except OSError:
            return False
        if uid == 0 or (anchor_owner is not None and uid == anchor_owner):
            return True
        try:
            key = int(ctx.cgroup_id(row))
        except (AttributeError, TypeError, ValueError):
            key = -1 - row
        if self._first_time(ctx, [key])[0]:
            who = "unknown" if anchor_owner is None else str(anchor_owner)
            logs.log(f'Ignoring {name} on "{shown(ctx.relpath(row))}": its directory is owned '
                     f"by uid {uid}, neither root nor the owner (uid {who}) of the ruleset's "
                     "cgroups (--trust-user-xattrs honours it)", logs.WARNING)
        return False
