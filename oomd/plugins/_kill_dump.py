"""The kill candidates' dump (reference §4.17) and the column helpers kill plugins share; part
of ``oomd.plugins.base_kill`` (which re-exports these names), kept apart to keep it short."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from oomd import logs
from oomd.names import shown
from oomd.plugins._common import c_div

PREFERENCE_NAMES = {1: "PREFER", 0: "NORMAL", -1: "AVOID"}
INT64_MAX = (1 << 63) - 1

# what the dump prints, read in one batch per ranking step
DUMP_METRICS = (
    "mem_pressure", "io_pressure", "current_usage", "average_usage", "memory_low", "memory_min",
    "memory_high", "memory_high_tmp", "memory_max", "memory_protection", "anon_usage",
    "swap_usage", "io_cost_cumulative", "io_cost_rate", "pg_scan_cumulative", "pg_scan_rate",
    "kill_preference",
)


# what decides whether a candidate is dumped at all (read for every ranked row)
DUMP_SHOW_METRICS = ("mem_pressure", "io_pressure", "current_usage", "average_usage",
                     "swap_usage")


def column(ctx, metric: str, rows: np.ndarray, default=0) -> np.ndarray:
    """``ctx.get`` with invalid values replaced by ``default`` (oomd's ``value_or``)."""
    values, valid = ctx.get(metric, rows)
    values = np.asarray(values)
    valid = np.asarray(valid, dtype=bool)
    if valid.all():
        return values
    if values.ndim == 2:
        valid = valid[:, None]
    return np.where(valid, values, np.asarray(default, dtype=values.dtype))


def prefetch(ctx, metrics, rows: np.ndarray) -> None:
    """Read the files behind ``metrics`` for ``rows`` in one pass (one directory visit per
    row) before they are asked for one metric at a time; contexts without it read lazily."""
    fetch = getattr(ctx, "prefetch", None)
    if fetch is not None:
        fetch(metrics, rows)


def fmt_float(x) -> str:
    """C++ ostream's default float output (``%g``, 6 significant digits)."""
    return "%g" % float(x)


def _ints(a: np.ndarray, shift: int = 0) -> list[int]:
    """Python ints of a column (``int(x) >> shift`` each, as the C++ casts and shifts)."""
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
        return (a >> shift).tolist() if shift else a.tolist()
    return [int(x) >> shift for x in a.tolist()]


def _own(a) -> np.ndarray:
    """``a`` as an array that shares no memory with the context's columns."""
    a = np.asarray(a)
    return a if a.base is None and a.flags.owndata else a.copy()


def _dump_lines(values, chunk: int = 256) -> Iterator[str]:
    """The §4.17 lines of each candidate, from ``BaseKillPlugin.dump``'s gathered values: the
    names and numpy arrays, made Python values ``chunk`` candidates at a time (a dump of
    10,000 candidates held as Python numbers until the writer gets to it is ~6 MiB)."""
    g = fmt_float
    names, mem_p, io_p, in_mb, ioc, ior, pgc, pgr, pref = values
    for lo in range(0, len(names), chunk):
        hi = lo + chunk
        part = (names[lo:hi], mem_p[lo:hi].tolist(), io_p[lo:hi].tolist(),
                *(_ints(a[lo:hi], 20) for a in in_mb), ioc[lo:hi].tolist(), ior[lo:hi].tolist(),
                _ints(pgc[lo:hi]), _ints(pgr[lo:hi]), _ints(pref[lo:hi]))
        for (name, m, o, cur, avg, low, mmin, high, high_tmp, mmax, prot, anon, swap, ioc_, ior_,
             pgc_, pgr_, pref_) in zip(*part):
            yield f"name={shown(name)}"
            yield f"  pressure={g(m[0])}:{g(m[1])}:{g(m[2])}-{g(o[0])}:{g(o[1])}:{g(o[2])}"
            yield (f"  mem={cur}MB mem_avg={avg}MB mem_low={low}MB mem_min={mmin}MB "
                   f"mem_high={high}MB mem_high_tmp={high_tmp}MB mem_max={mmax}MB "
                   f"mem_prot={prot}MB anon={anon}MB swap_usage={swap}MB")
            yield f"  io_cost_cumulative={g(ioc_)} io_cost_rate={g(ior_)}"
            yield f"  pg_scan_cumulative={pgc_} pg_scan_rate={pgr_}"
            yield f"  kill_preference={PREFERENCE_NAMES.get(pref_, 'NORMAL')}"


class CandidateDump:
    """``BaseKillPlugin``'s dump of the ranked candidates (a mixin: ``_dumps``, ``debug`` and
    ``_ignored`` are the plugin's)."""

    # -- the candidate dump (reference §4.17) ----------------------------------------------------
    # oomd dumps each ranked list before it goes on. Reading what the dump shows (io.pressure,
    # memory.stat, io.stat, limits... of every candidate) takes about 0.3 s at 10,000
    # candidates, so pyoomd notes the lists, reads the victim's values before the kill, and
    # dumps after it, with the values of the same tick (docs/compat.md).

    def _note_dump(self, rows: np.ndarray) -> None:
        self._dumps.append(rows)

    @staticmethod
    def _keep_dump_values(ctx, row: int) -> None:
        """Read the victim's dump (and kill record) values before it is killed: a tick reads
        each file once, so the dump after the kill shows these. Not in replay (a context with
        ``candidate_dumps`` False): a recording holds what decisions read, not every dump."""
        if getattr(ctx, "candidate_dumps", True):
            prefetch(ctx, DUMP_METRICS, np.asarray([row], dtype=np.int32))

    def _write_dumps(self, ctx) -> None:
        dumps, self._dumps = self._dumps, []
        if not getattr(ctx, "candidate_dumps", True):
            return
        for rows in dumps:
            self.dump(ctx, rows)

    def dump(self, ctx, rows: np.ndarray) -> None:
        logs.log("Dumping OomdContext: ")
        if len(rows) == 0:
            return
        prefetch(ctx, DUMP_SHOW_METRICS, rows)
        mem_p = column(ctx, "mem_pressure", rows, 0).astype(np.float32)
        io_p = column(ctx, "io_pressure", rows, 0).astype(np.float32)
        cur = column(ctx, "current_usage", rows, 0)
        avg = column(ctx, "average_usage", rows, 0)
        swap = column(ctx, "swap_usage", rows, 0)
        show = np.ones(len(rows), dtype=bool)
        if not self.debug:
            meminfo = getattr(getattr(ctx, "system", None), "meminfo", None) or {}
            mem_min = c_div(int(meminfo.get("MemTotal", 0)), 1000)
            swap_min = c_div(int(meminfo.get("SwapTotal", 0)), 1000)
            show = ((mem_p >= 1).any(axis=1) | (io_p >= 1).any(axis=1) | (cur > mem_min)
                    | (avg > mem_min) | (swap > swap_min))
            if not show.any():
                return
        idx = np.nonzero(show)[0]
        sub = rows[idx]
        prefetch(ctx, DUMP_METRICS, sub)
        mem_p, io_p, cur, avg, swap = mem_p[idx], io_p[idx], cur[idx], avg[idx], swap[idx]
        low = column(ctx, "memory_low", sub, 0)
        mmin = column(ctx, "memory_min", sub, 0)
        high = column(ctx, "memory_high", sub, INT64_MAX)
        high_tmp = column(ctx, "memory_high_tmp", sub, INT64_MAX)
        mmax = column(ctx, "memory_max", sub, INT64_MAX)
        prot = column(ctx, "memory_protection", sub, 0)
        anon = column(ctx, "anon_usage", sub, 0)
        ioc = column(ctx, "io_cost_cumulative", sub, 0.0)
        ior = column(ctx, "io_cost_rate", sub, 0.0)
        pgc = column(ctx, "pg_scan_cumulative", sub, 0)
        pgr = column(ctx, "pg_scan_rate", sub, 0)
        pref = column(ctx, "kill_preference", sub, 0)
        if self._ignored:
            pref = np.where(np.isin(sub, list(self._ignored)), 0, pref)
        names = [ctx.relpath(row) for row in sub.tolist()]
        # Formatting 6 lines per candidate is most of what is left: the log writer does it
        # from these arrays (the lines keep their place in the log). They are the dump's own
        # (fancy indexing and np.where copy): the context's next refresh cannot change them.
        values = (names, _own(mem_p), _own(io_p),
                  [_own(a) for a in (cur, avg, low, mmin, high, high_tmp, mmax, prot, anon, swap)],
                  _own(ioc), _own(ior), _own(pgc), _own(pgr), _own(pref))
        logs.log_block(lambda: _dump_lines(values))
