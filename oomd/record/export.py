"""``export_parquet``: a recording as Parquet tables for fleet analysis (``pyoomd export``,
docs/replay.md). Needs pyarrow (``pip install 'pyoomd[parquet]'``).

Tables (one file each in OUTDIR; every row carries ``host`` and ``run``, so several hosts'
exports can be read together):

* ``ticks.parquet``: one row per tick: time, wall clock, rows, detector groups fired, system
  values (memory, swap, the swap-out rate, root PSI).
* ``cgroups.parquet``: one row per cgroup identity (path and cgroup id): first and last tick.
* ``values.parquet``: one row per tick and cgroup, one column per metric (PSI triples as
  ``<metric>_avg10/_avg60/_avg300``); null where the metric was not read or not valid.
* ``decisions.parquet``: one row per kill decision, with the whole record as JSON.
"""

from __future__ import annotations

import json
import os

import numpy as np

from oomd.context.metric_table import METRICS
from oomd.names import shown
from oomd.record.reader import Recording
from oomd.record.replay_ctx import NEED, column_values

BATCH_ROWS = 200_000
PSI_SUFFIXES = ("avg10", "avg60", "avg300")


class MissingPyarrow(RuntimeError):
    pass


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingPyarrow("pyoomd export needs pyarrow: pip install 'pyoomd[parquet]'") from None
    return pa, pq


def _value_metrics() -> list[str]:
    return [m for m in METRICS if m != "id"]


def _arrow_type(pa, dtype: str):
    return {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(),
            "int8": pa.int8(), "float32x3": pa.float32(), "uint64": pa.uint64()}[dtype]


class _Table:
    def __init__(self, pa, pq, path: str, schema) -> None:
        self.pa, self.schema = pa, schema
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.parts: dict[str, list] = {f.name: [] for f in schema}
        self.pending = 0
        self.rows = 0

    def add(self, n: int, **cols) -> None:
        for name, v in cols.items():
            self.parts[name].append(v)
        self.pending += n
        self.rows += n
        if self.pending >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pa = self.pa
        arrays = []
        for f in self.schema:
            chunks = self.parts[f.name]
            arrays.append(pa.concat_arrays([c if isinstance(c, pa.Array) else pa.array(c, type=f.type)
                                            for c in chunks]))
            chunks.clear()
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.pending = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


def export_parquet(path: str, outdir: str) -> dict:
    """Write the four tables into ``outdir`` (created). Returns row counts and problems."""
    pa, pq = _pyarrow()
    rec = Recording.open(path)
    os.makedirs(outdir, exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")
    sys_cols = ["mem_total", "mem_free", "swap_total", "swap_used"]
    psi_cols = [f"{k}_{s}" for k in ("mem_full", "mem_some", "io_full", "io_some")
                for s in PSI_SUFFIXES]
    ticks_schema = pa.schema(
        [("host", pa.string()), ("run", pa.string()), ("tick", pa.int64()),
         ("time", pa.float64()), ("wall", ts), ("cgroups", pa.int32()), ("fired", pa.string()),
         ("starved", pa.bool_()), ("swapout_bps", pa.float64())]
        + [(c, pa.int64()) for c in sys_cols] + [(c, pa.float32()) for c in psi_cols])
    cgroups_schema = pa.schema([("host", pa.string()), ("run", pa.string()),
                                ("cgroup_id", pa.uint64()), ("path", pa.string()),
                                ("path_raw", pa.binary()), ("first_tick", pa.int64()),
                                ("last_tick", pa.int64()), ("first_wall", ts),
                                ("last_wall", ts)])
    metric_fields = []
    for name in _value_metrics():
        m = METRICS[name]
        if m.dtype == "float32x3":
            metric_fields += [(f"{name}_{s}", pa.float32()) for s in PSI_SUFFIXES]
        else:
            metric_fields.append((name, _arrow_type(pa, m.dtype)))
    values_schema = pa.schema([("host", pa.string()), ("run", pa.string()), ("tick", pa.int64()),
                               ("wall", ts), ("cgroup_id", pa.uint64()), ("path", pa.string())]
                              + metric_fields)
    decisions_schema = pa.schema(
        [("host", pa.string()), ("run", pa.string()), ("tick", pa.int64()), ("time", pa.float64()),
         ("ruleset", pa.string()), ("detectorgroup", pa.string()), ("plugin", pa.string()),
         ("victim", pa.string()), ("cgroup_id", pa.uint64()), ("dry", pa.bool_()),
         ("record", pa.string()), ("json", pa.string())])
    tables = {
        "ticks": _Table(pa, pq, os.path.join(outdir, "ticks.parquet"), ticks_schema),
        "cgroups": _Table(pa, pq, os.path.join(outdir, "cgroups.parquet"), cgroups_schema),
        "values": _Table(pa, pq, os.path.join(outdir, "values.parquet"), values_schema),
        "decisions": _Table(pa, pq, os.path.join(outdir, "decisions.parquet"), decisions_schema),
    }
    host, run = "", ""
    identities: dict[tuple[str, str, str, int], list] = {}
    names_version = None
    ident_version = None
    current: set = set()
    last_seen = (0, 0)
    rows = np.empty(0, dtype=np.int32)
    shown_paths: list[str] = []
    try:
        for ev in rec.events():
            if ev.kind == "meta":
                host, run = str(ev.data.get("host", "")), str(ev.data.get("run", ""))
                names_version = ident_version = None
            elif ev.kind == "decision":
                d = ev.data
                tables["decisions"].add(
                    1, host=[host], run=[run], tick=[_int(d.get("tick"))],
                    time=[_float(d.get("time"))], ruleset=[_str(d.get("ruleset"))],
                    detectorgroup=[_str(d.get("detectorgroup"))], plugin=[_str(d.get("plugin"))],
                    victim=[_str(d.get("victim"))], cgroup_id=[_uint(d.get("cgroup_id"))],
                    dry=[bool(d.get("dry"))], record=[_str(d.get("record"))],
                    json=[json.dumps(d, ensure_ascii=True)])
            elif ev.kind == "tick":
                f = ev.data
                cols = f.columns
                wall_us = int(f.wall * 1e6)
                vals = f.system.get("vals") or {}
                sysv = {c: [_int(vals.get(c))] for c in sys_cols}
                psiv = {}
                for k in ("mem_full", "mem_some", "io_full", "io_some"):
                    t = vals.get(k)
                    for i, s in enumerate(PSI_SUFFIXES):
                        psiv[f"{k}_{s}"] = [None if t is None else float(t[i])]
                tables["ticks"].add(
                    1, host=[host], run=[run], tick=[f.tick], time=[f.now], wall=[wall_us],
                    cgroups=[len(f.paths)],
                    fired=["; ".join(f"{r} / {g}" for r, g in f.fired)],
                    starved=[f.starved], swapout_bps=[float(f.system["swapout"][0])],
                    **sysv, **psiv)
                if f.rows_version != names_version:
                    names_version = f.rows_version
                    rows = np.array(sorted(s for s in f.paths if s < f.n), dtype=np.int32)
                    shown_paths = [shown(f.paths[int(r)]) for r in rows]
                n = len(rows)
                if n == 0:
                    continue
                cgid = cols["cgid"][rows]
                if f.rows_version != ident_version:
                    ident_version = f.rows_version
                    keys = {(host, run, f.paths[r], cid)
                            for r, cid in zip(rows.tolist(), cgid.tolist())}
                    for key in current - keys:              # gone: last seen the tick before
                        identities[key][1], identities[key][3] = last_seen
                    for key in keys - current:
                        identities.setdefault(key, [f.tick, f.tick, wall_us, wall_us])
                    current = keys
                last_seen = (f.tick, wall_us)
                loaded = cols["loaded"][rows]
                out = {}
                for name in _value_metrics():
                    m = METRICS[name]
                    need = np.uint32(NEED[name])
                    have = (loaded & need) == need
                    try:
                        v, valid = column_values(cols, name, rows)
                    except KeyError:
                        v, valid = np.zeros((n, 3) if m.dtype == "float32x3" else n), np.zeros(n, bool)
                    mask = ~(have & valid)
                    if m.dtype == "float32x3":
                        v = np.asarray(v, dtype=np.float32).reshape(n, 3)
                        for i, s in enumerate(PSI_SUFFIXES):
                            out[f"{name}_{s}"] = pa.array(v[:, i], type=pa.float32(), mask=mask)
                    else:
                        t = _arrow_type(pa, m.dtype)
                        out[name] = pa.array(np.asarray(v).astype(t.to_pandas_dtype()), type=t,
                                             mask=mask)
                tables["values"].add(
                    n, host=pa.array([host] * n, pa.string()), run=pa.array([run] * n, pa.string()),
                    tick=pa.array(np.full(n, f.tick, dtype=np.int64)),
                    wall=pa.array(np.full(n, wall_us, dtype=np.int64)).cast(ts),
                    cgroup_id=pa.array(cgid), path=pa.array(shown_paths, pa.string()), **out)
        for key in current:
            identities[key][1], identities[key][3] = last_seen
        for (h, rn, p, cid), (t0, t1, w0, w1) in identities.items():
            tables["cgroups"].add(1, host=[h], run=[rn], cgroup_id=[cid], path=[shown(p)],
                                  path_raw=[os.fsencode(p)], first_tick=[t0], last_tick=[t1],
                                  first_wall=[w0], last_wall=[w1])
    finally:
        for t in tables.values():
            t.close()
    counts = {name: t.rows for name, t in tables.items()}
    counts["problems"] = list(rec.problems)
    return counts


def _int(v):
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _uint(v):
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _float(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _str(v):
    return v if isinstance(v, str) else ("" if v is None else str(v))
