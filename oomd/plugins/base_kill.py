"""What every ``kill_by_*`` plugin shares (oomd ``plugins/BaseKillPlugin.cpp``, reference §4.11,
§7).

Not a plugin itself (not registered). A kill plugin subclasses ``BaseKillPlugin`` and supplies
``rank_keys`` (the ranking key columns for a set of rows, most significant first), optionally
``rank_filter`` (which rows may be ranked at all) and ``log_kill_target`` (its "Picked" line).

Run (fresh kill cycle): resolve ``cgroup`` (rows sorted by relative path), rank, note the
candidates for the dump, then a depth-first search with a stack (best candidate on top):

* ``recursive`` and not ``memory.oom.group`` and has children: log "Picked" for it, rank its
  children (all of them, sorted by name), note them for the dump, push them; the parent is
  never the target;
* ``cgroup.events`` says ``populated 0``: skip silently;
* still exiting from a kill (``Killer.holding``: the cgroup, an ancestor or a descendant was
  killed and is not empty yet, its ``exit_timeout`` not passed): log it and end the search
  without killing anything in its place (IN_PROGRESS: returns as after a kill);
* log "Picked"; fire a prekill hook (may suspend the chain with ASYNC_PAUSE until it finishes
  or the ruleset's ``prekill_hook_timeout`` passes); kill; a delivered kill ends the search (the
  killer follows the exit after the tick), one that delivered nothing pops the next candidate
  (siblings first, then back up the tree).

The noted dumps are written when the search ends (after the kill; oomd writes each before going
on), so reading every candidate's dump values does not delay the kill; the victim's are read
just before it is killed.

Ranking is vectorised: one ``np.lexsort`` over the key columns and ``kill_preference``
(PREFER 1, NORMAL 0, AVOID -1) descending. It is stable, so ties go to the smallest path (oomd
breaks them by hash order, Appendix A). The columns a ranking reads (``RANK_METRICS``) are
prefetched in one pass over the rows first, and so are the dump's.

What the context reads every tick for ``cgroup`` (``METRICS``): only the configuration-like
columns of the ranking (kill preference xattrs; ``memory.oom.group`` with ``recursive``, the
only mode that reads it). On cgroup2 the context
keeps those across ticks and re-reads one only when inotify reports a change, so monitoring
them costs nothing per tick and a kill does not wait for them; the counters are read at the
kill, in its tick, as oomd reads them lazily.

Success (a delivered kill; written at once): the kmsg record ``oomd kill: <m10> <m60> <m300>
<rel> <current> ruleset:[..] detectorgroup:[..] killer:[(dry)]<name> v2``, ``oomd.kills`` +1
unless dry; then CONTINUE if ``always_continue``, else STOP after pausing the invoking ruleset
for the plugin's own ``post_action_delay`` if it has one. No success: CONTINUE.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

import numpy as np

from oomd import logs, parsing
from oomd.compat import V050
from oomd.decision import Component, DecisionBuilder, PeerSet
from oomd.kill import EVENT_ENDED, EVENT_REAP_REFUSED, TIMED_OUT, Killer
from oomd.engine import kill_event_reporter, report_kill
from oomd.names import shown
from oomd.plugin import Arg, BasePlugin, PluginRet, cgroup_args
from oomd.plugins._common import mb
from oomd.plugins._kill_dump import (  # noqa: F401 - re-exported: plugins import them from here
    DUMP_METRICS, DUMP_SHOW_METRICS, INT64_MAX, PREFERENCE_NAMES, CandidateDump, column,
    fmt_float, prefetch)
from oomd.plugins._kill_record import KillRecord, KillResult
from oomd.xattr_trust import XattrTrust

KILLS_STAT = "oomd.kills"
SKIPPED_STAT = "pyoomd.kill_candidates_skipped"  # a candidate that raised, passed over
_SKIPPED_LOG_MAX = 4096   # cgroups remembered as logged (then forgotten all at once)
EXIT_TIMEOUTS_STAT = "pyoomd.kill_exit_timeouts"  # a victim still populated at exit_timeout
REAP_REFUSED_STAT = "pyoomd.reap_refused"         # process_mrelease refused (EPERM/ENOSYS)

BASE_KILL_ARGS = (
    *cgroup_args(),
    Arg("recursive", parsing.bool_parse, default=False),
    Arg("post_action_delay", parsing.non_negative_int, default=None),
    Arg("dry", parsing.bool_parse, default=False),
    Arg("always_continue", parsing.bool_parse, default=False),
    Arg("debug", parsing.bool_parse, default=False),
    Arg("reap_memory", parsing.bool_parse, default=True),
    Arg("exit_timeout", parsing.positive_seconds, default=None),  # None: the killer's (30 s)
    Arg("kernelkill", parsing.bool_parse, default=False),              # oomd HEAD
    Arg("log_kmemalloc_prekill", parsing.bool_parse, default=False),   # oomd HEAD
)
# log_kmemalloc_prekill: these lines go to kmsg after the kill record (oomd HEAD's fixed path)
KMEMALLOC_PROFILER = "/tmp/oomd_kmemalloc_profiler"

def picked(ctx, row: int) -> str:
    """The start of a kill plugin's "Picked" line: ``Picked "<cgroup>" (<current>MB) ``."""
    return f'Picked "{shown(ctx.relpath(row))}" ({mb(ctx.value("current_usage", row) or 0)}MB) '


def _descending(key: np.ndarray) -> np.ndarray:
    """A key whose ascending order is ``key``'s descending order (no overflow for ints)."""
    key = np.asarray(key)
    if key.dtype == np.bool_:
        return ~key
    if np.issubdtype(key.dtype, np.integer):
        return ~key.astype(np.int64)
    return -key


@dataclass
class _Candidate:
    row: int
    peers: np.ndarray  # the ranked peer set it was chosen from (for the "Picked" line)


@dataclass
class _SavedRef:
    relpath: str
    cgroup_id: int | None


@dataclass
class _SavedCandidate:
    target: _SavedRef
    peers: int  # index into _HookState.peer_groups


@dataclass
class _HookState:
    invocation: object
    victim: _SavedCandidate
    stack: list[_SavedCandidate]
    peer_groups: list[list[_SavedRef]]
    trail: DecisionBuilder | None = None
    peer_sets: list[int | None] | None = None  # record index of each peer group


def _log_memory_stat(relpath: str, abspath: str, dir_fd: int) -> None:
    """oomd HEAD logs the victim's memory.stat before killing it."""
    try:
        fd = os.open("memory.stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            data = os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    except OSError:
        logs.log(f"Failed to open {shown(abspath)}/memory.stat")
        return
    logs.log(f"memory.stat for {shown(relpath)}: ")
    for line in data.decode(errors="replace").splitlines():
        logs.log(line)


def _copy_kmemalloc_profile(kmsg) -> None:
    """``log_kmemalloc_prekill``: each line of the profiler's output file goes to kmsg as is
    (and to the log), right after the kill record; a missing file is not an error."""
    try:
        with open(KMEMALLOC_PROFILER, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return
    for line in data.decode(errors="replace").splitlines():
        if kmsg is not None and line:
            kmsg.write(line)
        logs.log(line, force=True)


class BaseKillPlugin(KillRecord, CandidateDump, BasePlugin):
    ARGS = BASE_KILL_ARGS
    METRICS = ("kill_preference", "oom_group")
    RANK_METRICS: tuple[str, ...] = ()   # what rank_keys() reads: prefetched in one pass

    # -- what a kill plugin supplies -----------------------------------------------------------

    def rank_keys(self, ctx, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Key columns for ``rows``, most significant first; higher ranks first."""
        raise TypeError(f"kill plugin {type(self).__name__} does not implement rank_keys()")

    def rank_components(self, ctx, rows: np.ndarray) -> tuple[list[Component], dict]:
        """The ranking of ``rows`` as named columns (``oomd.decision.Component``: the ``key``
        ones, most significant first, are what the rows are sorted on; the others are shown in
        the decision record) and the peer set's facts (thresholds). The default names the
        columns of ``rank_keys``; the built-in plugins give their own."""
        keys = self.rank_keys(ctx, rows)
        return [Component(f"key{i}", np.asarray(k)) for i, k in enumerate(keys)], {}

    def rank_filter(self, ctx, rows: np.ndarray) -> np.ndarray | None:
        """A mask of the rows that may be ranked at all; None keeps every row."""
        return None

    def filter_reason(self) -> str:
        """Why ``rank_filter`` leaves a row out (for the decision record)."""
        return "left out by the plugin's filter"

    def log_kill_target(self, ctx, row: int, peers: np.ndarray) -> None:
        raise TypeError(f"kill plugin {type(self).__name__} does not implement log_kill_target()")

    # -- set-up --------------------------------------------------------------------------------

    def setup(self, context) -> None:
        if not self.recursive:
            self.METRICS = tuple(m for m in type(self).METRICS if m != "oom_group")
        context.stats.set(KILLS_STAT, 0)
        self.dry = bool(self.dry or context.force_dry)
        if context.killer is None:
            # one killer for every kill plugin compiled with this context, so a kill in
            # progress holds its cgroup for all of them (the daemon passes its own)
            context.killer = Killer(proc_root=context.proc_root)
        self.killer = context.killer
        self._hook_state: _HookState | None = None
        self._dumps: list[np.ndarray] = []
        self._skipped: set = set()   # cgroups whose skipping was logged
        self._ignored: set[int] = set()  # rows of this run whose user.oomd_avoid did not count
        self._trail: DecisionBuilder | None = None  # the record of the kill cycle in progress
        self.trust = getattr(context, "xattr_trust", None) or XattrTrust()
        self.compat = getattr(context, "compat", V050)

    def release(self) -> None:
        """The plugin's ruleset is dropped: stop waiting for a prekill hook."""
        state, self._hook_state = self._hook_state, None
        if state is not None and not state.invocation.finished():
            state.invocation.cancel()

    # -- ranking -------------------------------------------------------------------------------

    def rank(self, ctx, rows, anchor: int | None = None) -> np.ndarray:
        """``rows`` best first (``rank_set``'s order)."""
        return self.rank_set(ctx, rows, anchor).rows

    def rank_set(self, ctx, rows, anchor: int | None = None) -> PeerSet:
        """Rank ``rows``: filter, then a stable sort by (kill_preference, key components)
        descending. The PeerSet carries the rows best first with every component the sort used,
        in the same order: the decision record is this, never a second computation.
        ``anchor``: the row whose owner's ``user.oomd_avoid`` counts (the parent of ``rows`` in
        a ``recursive`` step; None: the anchor of ``cgroup``, oomd.xattr_trust)."""
        rows = np.asarray(rows, dtype=np.int32)
        if len(rows) > 1:
            prefetch(ctx, ("kill_preference",) + self.RANK_METRICS, rows)
        keep = self.rank_filter(ctx, rows) if len(rows) else None
        dropped = None
        if keep is not None:
            keep = np.asarray(keep, dtype=bool)
            dropped, rows = rows[~keep], rows[keep]
        parent = anchor
        if len(rows) == 0:
            return PeerSet(rows, parent, filtered=dropped, filter_reason=self.filter_reason())
        # a single row is not sorted: its preference is only shown (nothing logged for it)
        pref, ignored = self.trust.preference(ctx, rows, anchor, self.cgroup,
                                              report=len(rows) > 1)
        if len(rows) > 1 and ignored.any():
            self._ignored.update(rows[ignored].tolist())
        comps, facts = self.rank_components(ctx, rows)
        if len(rows) > 1:
            keys = [_descending(c.values) for c in reversed(comps) if c.key]
            keys.append(_descending(pref))
            order = np.lexsort(keys)
        else:
            order = np.zeros(1, dtype=np.intp)
        avoid_uid = None
        if (pref == -1).any():
            uid, valid = ctx.get("avoid_uid", rows)
            avoid_uid = np.where(np.asarray(valid, dtype=bool), np.asarray(uid), -1)[order]
        comps = [Component(c.name, np.asarray(c.values)[order], c.unit, c.key) for c in comps]
        return PeerSet(rows[order], parent, pref[order], ignored[order], comps, facts,
                       dropped, self.filter_reason(), avoid_uid)

    def candidate_rows(self, ctx) -> np.ndarray:
        return np.asarray(ctx.resolve(self.cgroup), dtype=np.int32)

    def children_rows(self, ctx, row: int) -> np.ndarray:
        """All child cgroups, sorted by relative path (ties then go to the smallest name)."""
        children = list(ctx.children(row))
        children.sort(key=ctx.relpath)
        return np.asarray(children, dtype=np.int32)

    def prerun_on_cgroups(self, ctx, metric: str) -> np.ndarray:
        """Compute ``metric`` for every candidate (and with ``recursive`` every descendant, not
        below a ``memory.oom.group`` cgroup), so its temporal state is kept every tick.
        Returns those rows."""
        frontier = self.candidate_rows(ctx)
        everything = [frontier]
        while self.recursive and len(frontier):
            oom = column(ctx, "oom_group", frontier, False).astype(bool)
            nxt = [np.asarray(ctx.children(int(r)), dtype=np.int32) for r in frontier[~oom]]
            frontier = np.concatenate(nxt) if nxt else np.empty(0, np.int32)
            everything.append(frontier)
        rows = np.concatenate(everything)
        if len(rows):
            ctx.get(metric, rows)
        return rows

    # -- run -----------------------------------------------------------------------------------

    def preference_name(self, ctx, row: int) -> str:
        """The kill preference ``row`` was ranked with (``PREFER``, ``NORMAL``, ``AVOID``)."""
        if row in self._ignored:
            return "NORMAL"
        return PREFERENCE_NAMES.get(int(ctx.value("kill_preference", row) or 0), "NORMAL")

    def run(self, ctx) -> PluginRet:
        self._ignored.clear()
        result = None
        try:
            if self._hook_state is not None:
                result = self._resume_from_prekill_hook(ctx)
            else:
                self._trail = DecisionBuilder(self)
                result = self._try_to_kill_something(ctx, self.candidate_rows(ctx))
        finally:
            self._report_decision(ctx, result)
            try:
                self._write_dumps(ctx)
            except Exception as e:  # noqa: BLE001 - the dump must not undo the decision
                logs.log(f"Could not dump the kill candidates: {type(e).__name__}: {e}",
                         logs.ERR)
        if result is KillResult.DEFER:
            return PluginRet.ASYNC_PAUSE
        # IN_PROGRESS ends the chain like a kill: the kill in progress is this run's action
        if result is KillResult.FAILED or self.always_continue:
            return PluginRet.CONTINUE
        ruleset = ctx.invoking_ruleset
        if ruleset is not None and self.post_action_delay is not None:
            ruleset.pause_actions(self.post_action_delay)
        return PluginRet.STOP

    def _try_to_kill_something(self, ctx, initial: np.ndarray) -> KillResult:
        ranked = self._ranked(ctx, initial)
        self._note_dump(ranked)
        if getattr(ctx, "starved", False):
            # Out of fds or memory this tick: a candidate may be missing or unread, so the
            # ranking may be wrong. Never kill on a failed read; the detectors will ask again.
            logs.log("Not killing: cgroups could not be read this tick (out of file descriptors "
                     "or memory); retrying next tick", logs.WARNING)
            report_kill(ctx, self.name, "skipped")
            if self._trail is not None:
                self._trail.starved = True
            return KillResult.FAILED
        stack = [_Candidate(int(r), ranked) for r in ranked[::-1].tolist()]
        return self._search(ctx, stack)

    def _search(self, ctx, stack: list[_Candidate]) -> KillResult:
        while stack:
            cand = stack.pop()
            try:
                step = self._visit(ctx, cand, stack)
            except Exception as e:  # noqa: BLE001 - one candidate never stops the ranking
                self._skip_candidate(ctx, cand.row, e)
                self._visited(ctx, cand.row, cand.peers, "error", f"{type(e).__name__}: {e}")
                continue
            if step is not None:
                return step
        return KillResult.FAILED

    def _visit(self, ctx, cand: _Candidate, stack: list[_Candidate]) -> KillResult | None:
        """One step of the search on the candidate on top of the stack: a result that ends the
        search, or None to go on. An exception means nothing was delivered to it."""
        row = cand.row
        if self.recursive and not ctx.value("oom_group", row):
            children = self.children_rows(ctx, row)
            if len(children):
                self.log_kill_target(ctx, row, cand.peers)
                ranked = self._ranked(ctx, children, anchor=row)
                self._note_dump(ranked)
                self._visited(ctx, row, cand.peers, "descended",
                              f"{len(ranked)} children ranked")
                stack.extend(_Candidate(int(r), ranked) for r in ranked[::-1].tolist())
                return None
        populated = ctx.value("is_populated", row)
        if populated is not None and not populated:
            self._visited(ctx, row, cand.peers, "unpopulated", "cgroup.events: populated 0")
            return None
        if self._held(ctx, row):
            self._visited(ctx, row, cand.peers, "in_progress",
                          "still exiting from an earlier kill; nothing killed in its place")
            return KillResult.IN_PROGRESS
        if self.compat.skip_zero_anon and ctx.value("anon_usage_strict", row) == 0:
            self._visited(ctx, row, cand.peers, "no_anon", "memory.stat says anon 0")
            return None  # oomd HEAD: nothing left to free (memory.stat says anon 0)
        self.log_kill_target(ctx, row, cand.peers)
        if not self._past_prekill_deadline(ctx):
            invocation = self._fire_prekill_hook(ctx, row)
            if invocation is not None and not invocation.finished():
                try:
                    self._save_hook_state(ctx, invocation, cand, stack)
                except BaseException:
                    invocation.cancel()
                    raise
                self._visited(ctx, row, cand.peers, "prekill_hook",
                              "waiting for its prekill hook")
                return KillResult.DEFER
        if self._kill_and_record(ctx, row):
            self._visited(ctx, row, cand.peers, "dry" if self.dry else "killed")
            return KillResult.SUCCESS
        self._visited(ctx, row, cand.peers, "kill_failed", "nothing was delivered")
        return None

    def _skip_candidate(self, ctx, row: int, error: Exception) -> None:
        """A candidate whose values could not be read or rendered, or whose kill raised before
        anything was delivered: counted (``pyoomd.kill_candidates_skipped``), logged once per
        cgroup, and the search goes on with the next one."""
        stats = getattr(ctx, "stats", None)
        if stats is not None:
            stats.increment(SKIPPED_STAT)
        try:
            key: object = (ctx.relpath(row), ctx.cgroup_id(row))
            name = shown(key[0])
        except Exception:  # noqa: BLE001 - the name itself may be what failed
            key, name = ("row", row), f"<row {row}>"
        if key in self._skipped:
            return
        if len(self._skipped) >= _SKIPPED_LOG_MAX:
            self._skipped.clear()
        self._skipped.add(key)
        logs.log(f'Skipping kill candidate "{name}": {type(error).__name__}: {error}; going on '
                 f"with the next candidate (logged once per cgroup, counted in {SKIPPED_STAT})",
                 logs.WARNING)
        for line in traceback.format_exc().rstrip().splitlines():
            logs.log(line, logs.DEBUG)

    # -- kills in progress -----------------------------------------------------------------------

    def _held(self, ctx, row: int) -> bool:
        """True (after logging why) if ``row`` is still exiting from a kill, or inside or
        above a cgroup that is: it is not killed again, and nothing else is killed in its
        place, until it is empty or the kill's ``exit_timeout`` passed (docs/compat.md)."""
        holding = getattr(self.killer, "holding", None)
        if holding is None:
            return False
        outcome = holding(ctx.abspath(row), ctx.cgroup_id(row))
        if outcome is None:
            return False
        logs.log(f'Not killing "{shown(ctx.relpath(row))}": the kill of {shown(outcome.abspath)} '
                 f"is still in progress ({outcome.describe()}); nothing is killed in its place")
        report_kill(ctx, self.name, "in_progress")
        return True

    def _kill_events(self, ctx):
        """The killer's ``on_event`` for this kill: stats now, metrics through the engine."""
        stats = ctx.stats
        report = kill_event_reporter(ctx, self.name)

        def on_event(outcome, event: str) -> None:
            if event == EVENT_REAP_REFUSED:
                stats.increment(REAP_REFUSED_STAT)
                what, seconds = "reap_refused", None
            elif event != EVENT_ENDED:
                return
            elif outcome.state == TIMED_OUT:
                stats.increment(EXIT_TIMEOUTS_STAT)
                what, seconds = "exit_timeout", outcome.seconds
            elif outcome.time_to_empty is not None:
                what, seconds = "empty", outcome.time_to_empty
            else:
                return  # not followed (no cgroup.events)
            if report is not None:
                report(what, seconds)

        return on_event

    # -- the kill ------------------------------------------------------------------------------

    def _kill_and_record(self, ctx, row: int) -> bool:
        """Kill ``row`` (or, dry, pretend to) and write its record. Raises only before anything
        was delivered; once the kill is delivered it returns True whatever happens."""
        self._keep_dump_values(ctx, row)
        abspath = ctx.abspath(row)
        record = self._record_body(ctx, row)
        if self.dry:
            logs.log(f"OOMD: In dry-run mode; would have tried to kill {shown(abspath)}")
        else:
            dir_fd = ctx.dir_fd(row)
            if self.compat.kill_logs:
                _log_memory_stat(ctx.relpath(row), abspath, dir_fd)
            extra = {}
            if self.kernelkill:
                extra["kernel_kill"] = True
            if self.compat.user_xattrs:
                extra["user_xattrs"] = True
            result = self.killer.kill(abspath, dir_fd, reap_memory=self.reap_memory,
                                      exit_timeout=self.exit_timeout,
                                      on_event=self._kill_events(ctx), **extra)
            if not result.success:
                if self.compat.kill_logs:
                    why = getattr(result, "reason", "")
                    logs.log(f"Failed to kill cgroup {shown(ctx.relpath(row))}: {why}" if why
                             else f"No processed killed from {shown(ctx.relpath(row))}")
                report_kill(ctx, self.name, "failed")
                return False
        try:
            self._write_record(ctx, record)
        except Exception as e:  # noqa: BLE001 - the kill is done: it must count as one
            logs.log(f"Could not complete the kill record ({type(e).__name__}: {e}): {record}",
                     logs.ERR, force=True)
        if self._trail is not None:
            self._trail.killed(ctx, row, record)   # the decision is reported after the search
        return True

    def _record_body(self, ctx, row: int) -> str:
        """The kill record (after ``oomd kill: ``), oomd's fields: ``<m10> <m60> <m300>
        <cgroup> <current> ruleset:[..] detectorgroup:[..] killer:[(dry)]<name> v2``; the
        cgroup rendered by ``shown`` is one field whatever its name. Built before the kill from
        the tick's values, so nothing after a delivered kill can fail on a value."""
        pressure = ctx.value("mem_pressure", row)
        if pressure is None:
            pressure = (0.0, 0.0, 0.0)
        current = ctx.value("current_usage", row) or 0
        ac = ctx.action_context
        ruleset, group = (ac.ruleset, ac.detectorgroup) if ac is not None else ("", "")
        return (f"{float(pressure[0]):.2f} {float(pressure[1]):.2f} {float(pressure[2]):.2f} "
                f"{shown(ctx.relpath(row))} {int(current)} ruleset:[{ruleset}] "
                f"detectorgroup:[{group}] killer:{'(dry)' if self.dry else ''}{self.name} v2")

    def _write_record(self, ctx, body: str) -> None:
        report_kill(ctx, self.name, "dry" if self.dry else "killed")
        if not self.dry:
            ctx.stats.increment(KILLS_STAT)
        kmsg = getattr(ctx, "kmsg", None)
        if kmsg is not None:
            kmsg.kill_record(body)
        else:
            logs.log(body, force=True)
        if self.log_kmemalloc_prekill:
            _copy_kmemalloc_profile(kmsg)

    # -- prekill hooks (reference §2.6) ----------------------------------------------------------

    @staticmethod
    def _past_prekill_deadline(ctx) -> bool:
        ac = ctx.action_context
        deadline = getattr(ac, "prekill_hook_deadline", None)
        return deadline is not None and ctx.now > deadline

    @staticmethod
    def _fire_prekill_hook(ctx, row: int):
        """The prekill hook's invocation for the victim, or None. A hook that raises is logged
        and the kill goes ahead, as when a hook's command cannot be started."""
        engine = getattr(ctx, "engine", None)
        if engine is None:
            return None
        try:
            return engine.fire_prekill_hook(ctx.relpath(row), ctx.abspath(row),
                                            ctx.action_context, ctx.dir_fd(row))
        except Exception as e:  # noqa: BLE001 - a hook must never stop the kill
            logs.log(f"Prekill hook for {shown(ctx.relpath(row))} raised {type(e).__name__}: "
                     f"{e}; killing without it", logs.ERR)
            return None

    @staticmethod
    def _ref(ctx, row: int) -> _SavedRef:
        return _SavedRef(ctx.relpath(row), ctx.cgroup_id(row))

    def _save_hook_state(self, ctx, invocation, victim: _Candidate, stack: list[_Candidate]):
        groups: dict[int, int] = {}
        peer_groups: list[list[_SavedRef]] = []
        set_index: list[int | None] = []
        trail = self._trail

        def save(c: _Candidate) -> _SavedCandidate:
            key = id(c.peers)
            if key not in groups:
                groups[key] = len(peer_groups)
                peer_groups.append([self._ref(ctx, int(r)) for r in c.peers.tolist()])
                set_index.append(trail.set_index(c.peers) if trail is not None else None)
            return _SavedCandidate(self._ref(ctx, c.row), groups[key])

        self._hook_state = _HookState(invocation, save(victim), [save(c) for c in stack],
                                      peer_groups, None, set_index)

    @staticmethod
    def _restore_ref(ctx, ref: _SavedRef) -> int | None:
        """The row of the same cgroup (path and inode), or None if it vanished or was
        re-created."""
        row = ctx.row_of(ref.relpath)
        if row is None or ref.cgroup_id is None or ctx.cgroup_id(row) != ref.cgroup_id:
            return None
        return row

    def _resume_from_prekill_hook(self, ctx) -> KillResult:
        state = self._hook_state
        ruleset = ctx.action_context.ruleset if ctx.action_context is not None else ""
        if state.invocation.finished():
            logs.log(f"pre-kill hook finished for Ruleset={ruleset}")
        elif self._past_prekill_deadline(ctx):
            logs.log(f"pre-kill hook timed out for Ruleset={ruleset}")
            state.invocation.cancel()
        else:
            logs.log(f"Still running pre-kill hook for Ruleset={ruleset}")
            return KillResult.DEFER
        self._hook_state = None
        self._trail = trail = state.trail

        peer_cache: dict[int, np.ndarray] = {}

        def restore(saved: _SavedCandidate) -> _Candidate | None:
            row = self._restore_ref(ctx, saved.target)
            if row is None:
                return None
            if saved.peers not in peer_cache:
                rows = [self._restore_ref(ctx, r) for r in state.peer_groups[saved.peers]]
                peers = np.asarray([r for r in rows if r is not None], np.int32)
                peer_cache[saved.peers] = peers
                index = (state.peer_sets or [None] * (saved.peers + 1))[saved.peers]
                if trail is not None and index is not None:
                    trail.alias(peers, index)
            return _Candidate(row, peer_cache[saved.peers])

        victim = restore(state.victim)
        if victim is None:
            # someone else removed it: they did our job; detectors fire again if still needed
            if trail is not None:
                trail.visits.append({"cgroup": shown(state.victim.target.relpath), "set": None,
                                     "result": "vanished",
                                     "detail": "removed while its prekill hook ran"})
            return KillResult.FAILED
        try:
            if self._held(ctx, victim.row):
                self._visited(ctx, victim.row, victim.peers, "in_progress",
                              "killed by another ruleset while the prekill hook ran")
                return KillResult.IN_PROGRESS  # killed by another ruleset while the hook ran
            if self._kill_and_record(ctx, victim.row):
                self._visited(ctx, victim.row, victim.peers, "dry" if self.dry else "killed",
                              "after its prekill hook")
                return KillResult.SUCCESS
            self._visited(ctx, victim.row, victim.peers, "kill_failed", "nothing was delivered")
        except Exception as e:  # noqa: BLE001 - one candidate never stops the ranking
            self._skip_candidate(ctx, victim.row, e)
            self._visited(ctx, victim.row, victim.peers, "error", f"{type(e).__name__}: {e}")
        stack: list[_Candidate] = []
        for saved in state.stack:
            cand = restore(saved)
            if cand is None:
                stack.clear()  # a vanished candidate discards every lower-ranked one
            else:
                stack.append(cand)
        return self._search(ctx, stack)
