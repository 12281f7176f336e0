"""The decision record of a kill cycle (oomd.decision) and the status preview: part of
``oomd.plugins.base_kill``, kept apart to keep it short. ``KillRecord`` is a mixin of
``BaseKillPlugin``: it uses the plugin's ``rank_set``, ``candidate_rows``, ``children_rows``,
``killer``, ``compat`` and its search state (``_trail``, ``_hook_state``)."""

from __future__ import annotations

import enum

import numpy as np

from oomd import logs
from oomd.decision import Component, DecisionBuilder, PeerSet
from oomd.engine import report_decision
from oomd.names import shown


class KillResult(enum.Enum):
    SUCCESS = 1
    FAILED = 2
    DEFER = 3
    IN_PROGRESS = 4  # reached a cgroup still exiting from a kill: nothing killed in its place


def _cut(ps: PeerSet, top: int) -> PeerSet:
    """The first ``top`` candidates of a ranked peer set."""
    def head(a):
        return None if a is None else a[:top]
    comps = [Component(c.name, c.values[:top], c.unit, c.key) for c in ps.components]
    return PeerSet(ps.rows[:top], ps.parent, head(ps.preference), head(ps.ignored), comps,
                   ps.facts, None, ps.filter_reason, head(ps.avoid_uid))


class KillRecord:

    def _visited(self, ctx, row: int, peers, result: str, detail: str = "") -> None:
        if self._trail is not None:
            self._trail.visit(ctx, row, peers, result, detail)

    def _ranked(self, ctx, rows, anchor: int | None = None) -> np.ndarray:
        """``rank_set`` for the search: the peer set goes into the record."""
        ps = self.rank_set(ctx, rows, anchor)
        if self._trail is not None:
            self._trail.add(ps)
        return ps.rows

    def preview(self, ctx, top: int = 5) -> dict:
        """What a kill would choose now (``pyoomd status``), by the same ranking: the peer sets
        the search would rank on its way (each cut to its ``top`` candidates, ``count`` the
        whole set) and ``would_kill``. Nothing is killed, no hook fired, no record made."""
        trail, self._trail = self._trail, None
        try:
            sets = [self.rank_set(ctx, self.candidate_rows(ctx))]
            would, held = None, None
            stack = sets[0].rows[::-1].tolist()
            while stack:
                row = int(stack.pop())
                if self.recursive and not ctx.value("oom_group", row):
                    children = self.children_rows(ctx, row)
                    if len(children):
                        sets.append(self.rank_set(ctx, children, anchor=row))
                        stack.extend(sets[-1].rows[::-1].tolist())
                        continue
                populated = ctx.value("is_populated", row)
                if populated is not None and not populated:
                    continue
                if self.compat.skip_zero_anon and ctx.value("anon_usage_strict", row) == 0:
                    continue
                holding = getattr(self.killer, "holding", None)
                if holding is not None and holding(ctx.abspath(row), ctx.cgroup_id(row)):
                    held = row
                    break
                would = row
                break
            builder = DecisionBuilder(self)
            counts = []
            for ps in sets:
                counts.append(len(ps.rows))
                builder.add(_cut(ps, top))
            builder.freeze(ctx)
            for frozen, n in zip(builder.sets, counts):
                frozen["count"] = n
            out = {"peer_sets": builder.sets,
                   "would_kill": None if would is None else shown(ctx.relpath(would))}
            if held is not None:
                out["in_progress"] = shown(ctx.relpath(held))
            return out
        finally:
            self._trail = trail

    def _report_decision(self, ctx, result: KillResult | None) -> None:
        """Complete the record of this kill cycle and hand it to the engine's observer (a
        deferred cycle keeps its record until the prekill hook is done)."""
        trail = self._trail
        if trail is None:
            return
        try:
            if result is KillResult.DEFER:
                trail.freeze(ctx)
                if self._hook_state is not None:
                    self._hook_state.trail = trail
                self._trail = None
                return
            self._trail = None
            if result is KillResult.SUCCESS:
                outcome = "dry" if self.dry else "killed"
            elif result is KillResult.IN_PROGRESS:
                outcome = "in_progress"
            elif result is None:
                outcome = "error"
            elif trail.visits or trail.sets or trail._live:
                outcome = "failed"
            else:
                outcome = "skipped"
            report_decision(ctx, trail.finish(ctx, outcome))
        except Exception as e:  # noqa: BLE001 - the record must not undo the decision
            logs.log(f"Could not complete the decision record: {type(e).__name__}: {e}", logs.ERR)
