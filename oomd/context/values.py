"""Metric values for rows: the reader's columns, the derived metrics computed on demand.

``MetricValues.get`` is what ``OomdContext.get`` does: make sure this tick read (or
computed) what the metric needs for the rows asked, in one batch, then gather the column and
its validity. Derived metrics (reference §5.3-5.5) run in C over arrays: the decaying
average, io cost and pg scan rates per row, protection for all siblings at once, effective
swap down the ancestors.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from oomd import _fastcg
from oomd.context.metric_table import METRICS, Metric
from oomd.context.tree import CgroupTree

_V = _fastcg.V
_D = _fastcg.D


def as_rows(rows) -> np.ndarray:
    """Rows as the reader takes them: a contiguous int32 array (no copy when they are one)."""
    if isinstance(rows, np.ndarray) and rows.dtype == np.int32 and rows.flags.c_contiguous:
        return rows
    return np.ascontiguousarray(rows, dtype=np.int32).reshape(-1)


def derive(m: Metric, cols, rows: np.ndarray, valid_of) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of metric ``m`` for ``rows`` from a table's columns: the one rule for the
    live reader's columns and a recording's (oomd.record). ``valid_of(rows, mask)`` gives
    ``(valid[rows] & mask) == mask``. A column a recording lacks reads as zeros."""
    if m.column is not None:
        col = cols.get(m.column)
        if col is None:
            shape = (len(rows), 3) if m.dtype == "float32x3" else (len(rows),)
            vals = np.zeros(shape, dtype=np.float32 if m.dtype == "float32x3" else np.int64)
        else:
            # (take: a fraction of fancy indexing's cost, 2-D columns especially)
            vals = col.take(rows, axis=0) if m.index is None else col[rows, m.index]
        if m.dtype == "bool":
            vals = vals.astype(bool)
        valid = np.ones(len(rows), dtype=bool) if m.bit < 0 else valid_of(rows, 1 << m.bit)
        if m.name == "anon_usage":
            vals = np.where(valid_of(rows, 1 << _V["stat0"]), vals, 0)
    elif m.name == "memory_growth":
        valid = valid_of(rows, (1 << _V["current"]) | (1 << _V["avg"]))
        cur = cols["current"][rows].astype(np.float64)
        avg = cols["average_usage"][rows] if "average_usage" in cols else np.zeros(len(rows))
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = np.where(avg == 0, 0.0, cur / np.where(avg == 0, 1, avg))
    else:  # effective_usage
        valid = valid_of(rows, (1 << _V["current"]) | (1 << _V["prot"]))
        prot = cols["memory_protection"][rows] if "memory_protection" in cols else 0
        vals = cols["current"][rows] - prot
    return vals, valid


class MetricValues:
    """The values of one context's metrics (the context drains the problem log after)."""

    def __init__(self, reader: _fastcg.Reader, tree: CgroupTree) -> None:
        self._r = reader
        self._tree = tree
        self._loaded: list[tuple[np.ndarray, int]] = []

    def begin_tick(self) -> None:
        self._loaded.clear()

    def loaded(self, rows: np.ndarray, kinds: int) -> None:
        """``rows`` (this very array) had ``kinds`` read this tick."""
        self._loaded.append((rows, kinds))

    def ensure(self, m: Metric, rows: np.ndarray) -> None:
        """Read the files, or compute the derived metric, that ``m`` needs for ``rows`` (what
        this tick already read or computed is not done again; a detector asking for what the
        tick's refresh read for its pattern, the same array of rows, costs no pass over them)."""
        r = self._r
        d = m.derive
        if d is None:
            if m.kinds:
                for done, kinds in self._loaded:
                    if done is rows and not m.kinds & ~kinds:
                        return
                r.load(rows, m.kinds)
        elif d == "avg":
            r.compute_average(rows)
        elif d == "iocost":
            r.compute_iocost(rows)
        elif d == "pgscan":
            r.compute_pgscan(rows)
        elif d == "prot":
            self._compute_protection(rows)
        elif d == "eswap":
            self._compute_eswap(rows)

    def prefetch(self, metrics: Iterable[str], rows) -> None:
        """Read the files behind several metrics for rows in one pass (one directory visit per
        row)."""
        kinds = 0
        for name in metrics:
            kinds |= METRICS[name].kinds
        rows = as_rows(rows)
        if kinds and len(rows):
            self._r.load(rows, kinds)

    def get(self, metric: str, rows) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid) of a metric for rows, reading whatever is not yet read this tick
        in one batch. Invalid entries hold 0 (or stale data): always mask with `valid`."""
        m = METRICS[metric]
        rows = as_rows(rows)
        self.ensure(m, rows)
        return derive(m, self._r.cols, rows, self._r.take_valid)

    # ---- hierarchical metrics -------------------------------------------------------------

    def _ancestor_closure(self, rows: np.ndarray, min_depth: int) -> np.ndarray:
        """rows plus their ancestors down to depth `min_depth`, sorted by depth."""
        cols = self._r.cols
        depth = cols["depth"]
        self._tree.fix_parents(rows)
        parts = [rows]
        cur = rows[depth[rows] > min_depth]
        while len(cur):
            par = np.unique(cols["parent"][cur])
            par = par[par >= 0].astype(np.int32)
            self._tree.fix_parents(par)
            parts.append(par)
            cur = par[depth[par] > min_depth]
        q = np.unique(np.concatenate(parts)).astype(np.int32)
        return q[np.argsort(depth[q], kind="stable")]

    def _compute_protection(self, rows: np.ndarray) -> None:
        """memory_protection for rows (reference §5.3), all siblings at once, O(N)."""
        cols = self._r.cols
        todo = rows[(cols["loaded"][rows] & np.uint32(1 << _D["prot"])) == 0]
        if len(todo) == 0:
            return
        q = self._ancestor_closure(todo, 1)
        depth = cols["depth"]
        parents = np.unique(cols["parent"][q[depth[q] >= 2]])
        sib_rows, sib_par = [], []
        for p in parents:
            ch = self._tree.children(int(p))
            sib_rows.append(ch)
            sib_par.append(np.full(len(ch), p, dtype=np.int32))
        if sib_rows:
            sr = np.concatenate(sib_rows).astype(np.int32)
            sp = np.concatenate(sib_par).astype(np.int32)
        else:
            sr = sp = np.empty(0, dtype=np.int32)
        self._r.compute_protection(q, sr, sp)

    def _compute_eswap(self, rows: np.ndarray) -> None:
        cols = self._r.cols
        todo = rows[(cols["loaded"][rows] & np.uint32(1 << _D["eswap"])) == 0]
        if len(todo) == 0:
            return
        self._r.compute_eswap(self._ancestor_closure(todo, 0))
