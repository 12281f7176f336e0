"""``recording_info``: what a recording holds (``pyoomd record-info``)."""

from __future__ import annotations

from oomd.context.metric_table import METRICS
from oomd.record.reader import Recording
from oomd.record.ticks import IDENTITY_COLUMNS


def metrics_of_columns(columns) -> list[str]:
    """The metric names whose values live in these reader columns (derived ones included)."""
    cols = set(columns)
    out = [m.name for m in METRICS.values() if m.column is not None and m.column in cols]
    if "current" in cols and "average_usage" in cols:
        out.append("memory_growth")
    if "current" in cols and "memory_protection" in cols:
        out.append("effective_usage")
    return sorted(set(out) - {"id"})


def recording_info(path: str) -> dict:
    rec = Recording.open(path)
    info = {"path": path, "segments": len(rec.segments), "bytes": rec.bytes, "ticks": 0,
            "first_tick": None, "last_tick": None, "first_wall": None, "last_wall": None,
            "seconds": None, "runs": 0, "hosts": [], "cgroups": 0, "max_rows": 0,
            "columns": [], "metrics": [], "decisions": 0, "config_events": 0,
            "dropped_frames": 0, "gaps": 0, "problems": []}
    seen: set[tuple[str, int]] = set()
    columns: set[str] = set()
    runs: set = set()
    hosts: list[str] = []
    first_now = last_now = None
    prev_tick = None
    rows_version = None
    for ev in rec.events():
        if ev.kind == "meta":
            run = ev.data.get("run")
            if run not in runs:
                runs.add(run)
                prev_tick = None
            rows_version = None
            host = str(ev.data.get("host", ""))
            if host not in hosts:
                hosts.append(host)
        elif ev.kind == "tick":
            f = ev.data
            info["ticks"] += 1
            if info["first_tick"] is None:
                info["first_tick"], info["first_wall"] = f.tick, f.wall
                first_now = f.now
            if prev_tick is not None and f.tick != prev_tick + 1:
                info["gaps"] += 1
            prev_tick = f.tick
            info["last_tick"], info["last_wall"] = f.tick, f.wall
            last_now = f.now
            info["max_rows"] = max(info["max_rows"], len(f.paths))
            if f.rows_version != rows_version:
                rows_version = f.rows_version
                cgid = f.columns["cgid"]
                for slot, p in f.paths.items():
                    if slot < len(cgid):
                        seen.add((p, int(cgid[slot])))
            columns.update(f.read)
        elif ev.kind == "decision":
            info["decisions"] += 1
        elif ev.kind == "config":
            info["config_events"] += 1
        elif ev.kind == "note":
            n = ev.data.get("dropped")
            if isinstance(n, int):
                info["dropped_frames"] += n
    info["runs"] = len(runs)
    info["hosts"] = hosts
    info["cgroups"] = len(seen)
    info["columns"] = sorted(columns - set(IDENTITY_COLUMNS))
    info["metrics"] = metrics_of_columns(columns)
    if first_now is not None:
        info["seconds"] = round(last_now - first_now, 3)
    info["problems"] = list(rec.problems)
    return info
