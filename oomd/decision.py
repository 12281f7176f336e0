"""The decision record: what a kill plugin saw and why it chose its victim (docs/explain.md).

A kill plugin's ranking (``BaseKillPlugin.rank_set``) produces, for each peer set it ranks, the
key components it sorted on, best first (``PeerSet``). The same arrays are the record's: the
record is never computed a second time from the cgroup values, so what ``pyoomd explain`` shows
is what the plugin used. ``DecisionBuilder`` gathers the peer sets and the search's visits of one
kill cycle; ``finish`` turns them into the record, a plain JSON-ready dict (version 1):

``kind``, ``version``, ``tick``, ``time`` (the engine's monotonic clock), ``wall`` (wall
clock), ``ruleset``, ``ruleset_label``, ``detectorgroup``, ``plugin`` (its registry name),
``args`` (the plugin's arguments as text), ``dry``, ``outcome`` (``killed``, ``dry``,
``failed``, ``in_progress``, ``skipped``, ``error``), ``victim`` (a name rendered by ``shown``,
or null), ``victim_path`` (the name as held, for code), ``cgroup_id``, ``record`` (the kill
record's text) -- the keys of a recording's DECISION frame (oomd.record) --, ``detectors`` (each detector group of the ruleset
with its detectors' last observations), ``history`` (the ruleset's detector observations tick by
tick, oldest first), ``peer_sets`` and ``visits`` (below), ``tie_rule``.

A peer set: ``parent`` (null for the plugin's ``cgroup`` patterns, else the cgroup whose
children were ranked in a ``recursive`` step), ``names`` (ranked, best first), ``key`` (the
component names of the ranking key, most significant first: ``kill_preference`` then the
plugin's), ``components`` (name -> values, aligned with ``names``), ``units``, ``decided_by``
(per position: null for the first, else the first key component on which it differs from the one
ranked just above it, or ``"tie"``), ``facts`` (the peer set's thresholds), ``filtered`` (cgroups
left out before ranking, with the reason), ``avoid`` (name -> the xattr that made it AVOID),
``ignored_avoid`` (names whose ``user.oomd_avoid`` did not count).

A visit: ``cgroup``, ``set`` (index of its peer set), ``result`` (``descended``,
``unpopulated``, ``in_progress``, ``no_anon``, ``prekill_hook``, ``vanished``, ``kill_failed``,
``error``, ``killed``, ``dry``) and ``detail``. The victim is the visit that killed (or dry
killed): the first candidate in the search's order that was neither skipped (``SKIPS``) nor
descended into, nor still waiting for its prekill hook.

Names are rendered with ``oomd.names.shown`` (one field, never raises).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from oomd.names import shown

KIND = "pyoomd.decision"
VERSION = 1
TIE_RULE = "equal keys: the smallest path first (byte-wise), pyoomd's deterministic tie rule"
PREFERENCE_NAMES = {1: "PREFER", 0: "NORMAL", -1: "AVOID"}
# visit results that end the search on this candidate without a kill
SKIPS = ("unpopulated", "no_anon", "vanished", "kill_failed", "error")
VICTIM = ("killed", "dry")   # the visit that names the victim
HISTORY_MAX = 240          # detector observations kept per ruleset (ticks)
HISTORY_SPAN = 600.0       # ... and at most this many seconds back


@dataclass
class Component:
    """One column of a ranking: ``values`` aligned with the rows ranked. ``key``: part of the
    sort key (in the order given, most significant first); else shown for context only."""

    name: str
    values: np.ndarray
    unit: str = ""
    key: bool = True


@dataclass
class PeerSet:
    """One ranked peer set, best first (``rows`` and every array in ranked order)."""

    rows: np.ndarray
    parent: int | None = None
    preference: np.ndarray | None = None
    ignored: np.ndarray | None = None
    components: list[Component] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    filtered: np.ndarray | None = None
    filter_reason: str = ""
    avoid_uid: np.ndarray | None = None

    @property
    def ranked(self) -> np.ndarray:
        return self.rows


def observation(plugin: str, what: str, value, op: str, threshold, unit: str = "",
                held: float | None = None, duration: float | None = None,
                fired: bool = False, cgroup: str | None = None) -> dict:
    """A detector's last check, as the record and ``pyoomd status`` show it."""
    return {"plugin": plugin, "what": what, "cgroup": None if cgroup is None else shown(cgroup),
            "value": _py(value), "op": op, "threshold": _py(threshold), "unit": unit,
            "held": None if held is None else held if isinstance(held, int)
            else round(float(held), 3),
            "duration": None if duration is None else _py(duration), "fired": bool(fired)}


def _py(v):
    """A JSON-ready scalar (numpy scalars, tuples of them)."""
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_py(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return round(v, 6)
    return v


class DetectorHistory:
    """A ruleset's detector observations, one entry per tick it ran (bounded)."""

    def __init__(self) -> None:
        self.entries: deque = deque(maxlen=HISTORY_MAX)

    def add(self, tick: int, now: float, groups: list) -> None:
        self.entries.append((tick, now, groups))
        while self.entries and now - self.entries[0][1] > HISTORY_SPAN:
            self.entries.popleft()

    def since(self, now: float, seconds: float) -> list[dict]:
        out = []
        for tick, at, groups in self.entries:
            if now - at <= seconds:
                out.append({"tick": tick, "t": round(at - now, 3), "groups": groups})
        return out


def detector_groups(ruleset) -> list[dict]:
    """Each detector group of ``ruleset`` with its detectors' last observations."""
    out = []
    for dg in getattr(ruleset, "detector_groups", ()):
        dets = [getattr(d, "observation", None) or {"plugin": d.name, "what": d.name}
                for d in dg.detectors]
        out.append({"name": dg.name, "fired": bool(getattr(dg, "last_fired", False)),
                    "detectors": dets})
    return out


def longest_duration(ruleset) -> float:
    """The longest ``duration`` of the ruleset's detectors (seconds; 0 without)."""
    best = 0.0
    for dg in getattr(ruleset, "detector_groups", ()):
        for d in dg.detectors:
            v = getattr(d, "duration", None)
            if isinstance(v, (int, float)) and v > best:
                best = float(v)
    return best


def _tie_labels(keys: list[np.ndarray], names: list[str]) -> list:
    """Per ranked position: None for the first, else the first key (by name) on which it
    differs from the one above it, or "tie"."""
    n = len(keys[0]) if keys else 0
    out: list = [None] * n
    if n < 2:
        return out
    decided = np.full(n - 1, -1, dtype=np.int64)
    for j in range(len(keys) - 1, -1, -1):   # the most significant difference wins
        k = np.asarray(keys[j])
        differs = k[1:] != k[:-1]
        decided[differs] = j
    for i, j in enumerate(decided.tolist(), start=1):
        out[i] = "tie" if j < 0 else names[j]
    return out


def _values(a: np.ndarray) -> list:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return [round(x, 6) for x in a.astype(np.float64).tolist()]
    if a.dtype.kind == "b":
        return a.tolist()
    return a.astype(np.int64).tolist()


class DecisionBuilder:
    """The record of one kill cycle while the search runs (rows are this tick's only: ``freeze``
    turns what was gathered into names before a tick boundary)."""

    def __init__(self, plugin) -> None:
        self.plugin = plugin
        self._live: list[PeerSet] = []
        self.sets: list[dict] = []
        self.visits: list[dict] = []
        self._set_of: dict[int, int] = {}    # id(ranked rows) -> index into sets (live ones)
        self.starved = False                  # the tick's view was incomplete: no kill
        self.victim: tuple = (None, None, None)   # (relpath, cgroup_id, kill record text)

    def killed(self, ctx, row: int, record: str) -> None:
        """The kill (or dry kill) of ``row`` was delivered with this kill record."""
        try:
            self.victim = (ctx.relpath(row), int(ctx.cgroup_id(row)), record)
        except Exception:  # noqa: BLE001 - the record never fails the kill
            self.victim = (None, None, record)

    def alias(self, rows: np.ndarray, index: int) -> None:
        """``rows`` (restored after a prekill hook) are the peer set ``index``."""
        self._set_of[id(rows)] = index

    def add(self, ps: PeerSet) -> int:
        index = len(self.sets) + len(self._live)
        self._live.append(ps)
        self._set_of[id(ps.rows)] = index
        return index

    def set_index(self, rows: np.ndarray) -> int | None:
        return self._set_of.get(id(rows))

    def visit(self, ctx, row: int, peers, result: str, detail: str = "") -> None:
        try:
            name = shown(ctx.relpath(row))
        except Exception:  # noqa: BLE001 - the record never fails the search
            name = f"<row {row}>"
        index = self.set_index(peers) if peers is not None else None
        self.visits.append({"cgroup": name, "set": index, "result": result, "detail": detail})

    def freeze(self, ctx) -> None:
        """Turn the live peer sets into names and plain values (before a tick boundary)."""
        live, self._live = self._live, []
        self._set_of.clear()
        for ps in live:
            self.sets.append(_freeze(ctx, ps))

    def finish(self, ctx, outcome: str) -> dict:
        self.freeze(ctx)
        plugin = self.plugin
        ac = getattr(ctx, "action_context", None)
        ruleset = getattr(ctx, "invoking_ruleset", None)
        victim = next((v["cgroup"] for v in self.visits if v["result"] in VICTIM), None)
        history = getattr(ruleset, "history", None)
        now = float(getattr(ctx, "now", 0.0) or 0.0)
        span = max(longest_duration(ruleset), 10.0) + 10.0
        path, cgroup_id, kill_record = self.victim if victim is not None else (None, None, None)
        return {
            "kind": KIND, "version": VERSION,
            "tick": int(getattr(ctx, "tick", 0) or 0), "time": now, "wall": time.time(),
            "ruleset": getattr(ac, "ruleset", "") if ac is not None else "",
            "ruleset_label": getattr(ruleset, "label", "") if ruleset is not None else "",
            "victim_path": path, "cgroup_id": cgroup_id, "record": kill_record,
            "detectorgroup": getattr(ac, "detectorgroup", "") if ac is not None else "",
            "plugin": plugin.name, "args": dict(getattr(plugin, "raw_args", {}) or {}),
            "dry": bool(plugin.dry), "outcome": outcome, "victim": victim,
            "detectors": detector_groups(ruleset),
            "history": history.since(now, span) if history is not None else [],
            "peer_sets": self.sets, "visits": self.visits, "tie_rule": TIE_RULE,
            "starved": self.starved,
        }


def _freeze(ctx, ps: PeerSet) -> dict:
    rows = np.asarray(ps.rows)
    relpath = ctx.relpath
    names = [shown(relpath(r)) for r in rows.tolist()]
    pref = (np.zeros(len(rows), np.int8) if ps.preference is None
            else np.asarray(ps.preference))
    comps = [Component("kill_preference", pref, "preference")] + list(ps.components)
    keys = [c for c in comps if c.key]
    out = {
        "parent": None if ps.parent is None else shown(relpath(ps.parent)),
        "names": names,
        "key": [c.name for c in keys],
        "components": {c.name: _values(c.values) for c in comps},
        "units": {c.name: c.unit for c in comps},
        "decided_by": _tie_labels([c.values for c in keys], [c.name for c in keys]),
        "facts": {k: _py(v) for k, v in ps.facts.items()},
        "filtered": [],
        "avoid": {},
        "ignored_avoid": [],
    }
    if ps.filtered is not None and len(ps.filtered):
        out["filtered"] = [{"cgroup": shown(relpath(r)), "reason": ps.filter_reason}
                           for r in np.asarray(ps.filtered).tolist()]
    if ps.ignored is not None and np.asarray(ps.ignored).any():
        out["ignored_avoid"] = [names[i] for i in np.nonzero(ps.ignored)[0].tolist()]
    avoided = np.nonzero(pref == -1)[0]
    if len(avoided):
        uid = ps.avoid_uid
        for i in avoided.tolist():
            user = uid is not None and int(uid[i]) >= 0
            out["avoid"][names[i]] = "user.oomd_avoid" if user else "trusted.oomd_avoid"
    return out
