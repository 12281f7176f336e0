"""The metric table: every name a plugin can ask the context for (oomd's accessor names), the
files each needs, its validity bit, its column in the reader and its dtype.

docs/design.md lists the metrics with their sources; ``oomd._fastcg`` fills the columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from oomd import _fastcg

PREFER, NORMAL, AVOID = 1, 0, -1
STATUS_OK, STATUS_MALFORMED, STATUS_UNREADABLE, STATUS_VANISHED = 0, 1, 2, 3
STATUS_NAMES = _fastcg.STATUS_NAMES

INT64_MAX = (1 << 63) - 1
_K = _fastcg.K
_V = _fastcg.V


@dataclass(frozen=True)
class Metric:
    name: str
    kinds: int            # file kinds to load (bitmask of _fastcg.K values)
    bit: int              # validity bit in the `valid` column (-1: always valid)
    column: str | None    # reader column (None: computed here)
    index: int | None = None   # second-axis index for 2-D columns
    derive: str | None = None  # reader computation needed first
    dtype: str = "int64"


def _k(*names: str) -> int:
    m = 0
    for n in names:
        m |= 1 << _K[n]
    return m


def _metric_table() -> dict[str, Metric]:
    t: dict[str, Metric] = {}

    def add(name, kinds, bit, column, index=None, derive=None, dtype="int64"):
        t[name] = Metric(name, kinds, bit, column, index, derive, dtype)

    add("current_usage", _k("current"), _V["current"], "current")
    add("memory_min", _k("min"), _V["min"], "memory_min")
    add("memory_low", _k("low"), _V["low"], "memory_low")
    add("memory_high", _k("high"), _V["high"], "memory_high")
    add("memory_high_tmp", _k("high_tmp"), _V["high_tmp"], "memory_high_tmp")
    add("memory_max", _k("max"), _V["max"], "memory_max")
    add("swap_usage", _k("swap_cur"), _V["swap_cur"], "swap_current")
    add("swap_max", _k("swap_max"), _V["swap_max"], "swap_max")
    add("mem_pressure", _k("mem_psi"), _V["mem_full"], "mem_full", dtype="float32x3")
    add("mem_pressure_some", _k("mem_psi"), _V["mem_some"], "mem_some", dtype="float32x3")
    add("io_pressure", _k("io_psi"), _V["io_full"], "io_full", dtype="float32x3")
    add("io_pressure_some", _k("io_psi"), _V["io_some"], "io_some", dtype="float32x3")
    add("mem_pressure_some_total", _k("mem_psi"), _V["mem_some_total"], "psi_total", 0)
    add("mem_pressure_full_total", _k("mem_psi"), _V["mem_full_total"], "psi_total", 1)
    add("io_pressure_some_total", _k("io_psi"), _V["io_some_total"], "psi_total", 2)
    add("io_pressure_full_total", _k("io_psi"), _V["io_full_total"], "psi_total", 3)
    stat_names = {
        "anon": "anon_usage", "file": "file_usage", "shmem": "shmem_usage",
    }
    for i, key in enumerate(_fastcg.STAT_KEYS):
        add(stat_names.get(key, key), _k("mem_stat"), _V["stat0"] + i, "memory_stat", i)
    # oomd's anon_usage is 0 (not missing) when memory.stat or its anon key is missing
    t["anon_usage"] = Metric("anon_usage", _k("mem_stat"), -1, "memory_stat", 0)
    # oomd HEAD's: missing (not 0) when memory.stat or its anon key is missing
    add("anon_usage_strict", _k("mem_stat"), _V["stat0"], "memory_stat", 0)
    add("io_cost_cumulative", _k("io_stat"), _V["iocost"], "io_cost_cumulative",
        derive="iocost", dtype="float64")
    add("io_cost_rate", _k("io_stat"), _V["iorate"], "io_cost_rate", derive="iocost",
        dtype="float64")
    add("pg_scan_cumulative", _k("mem_stat"), _V["pgscan"], "pg_scan_cumulative",
        derive="pgscan")
    add("pg_scan_rate", _k("mem_stat"), _V["pgrate"], "pg_scan_rate", derive="pgscan")
    add("average_usage", _k("current"), _V["avg"], "average_usage", derive="avg")
    add("memory_growth", _k("current"), -1, None, derive="avg", dtype="float64")
    add("memory_protection", _k("current", "min", "low"), _V["prot"], "memory_protection",
        derive="prot")
    add("effective_usage", _k("current", "min", "low"), -1, None, derive="prot")
    add("is_populated", _k("events"), _V["populated"], "populated", dtype="bool")
    add("nr_dying_descendants", _k("cg_stat"), _V["dying"], "nr_dying_descendants")
    add("oom_group", _k("oom_group"), _V["oom_group"], "oom_group", dtype="bool")
    add("kill_preference", _k("xattr"), _V["kill_pref"], "kill_preference", dtype="int8")
    # the owner of a directory whose AVOID comes only from user.oomd_avoid, else -1
    add("avoid_uid", _k("xattr"), _V["kill_pref"], "avoid_uid")
    add("effective_swap_max", _k("swap_cur", "swap_max"), _V["eswap_max"],
        "effective_swap_max", derive="eswap")
    add("effective_swap_free", _k("swap_cur", "swap_max"), _V["eswap_free"],
        "effective_swap_free", derive="eswap")
    add("effective_swap_util_pct", _k("swap_cur", "swap_max"), _V["eswap_util"],
        "effective_swap_util_pct", derive="eswap", dtype="float64")
    add("id", 0, -1, "cgid", dtype="uint64")
    return t


METRICS: dict[str, Metric] = _metric_table()


def scalar(metric: str, vals, valid):
    """The first entry of a ``get`` answer as a Python value, or None when invalid. PSI
    triples are tuples of np.float32 (so arithmetic on them stays float32, as in oomd)."""
    if not valid[0]:
        return None
    v = vals[0]
    dt = METRICS[metric].dtype
    if dt == "float32x3":
        return (v[0], v[1], v[2])
    if dt == "bool":
        return bool(v)
    if dt == "float64":
        return float(v)
    return int(v)
