"""Decision records (oomd.decision) as reports for people: ``pyoomd explain`` (docs/explain.md).

Everything here reads the record only: the ranking, the key components and the tie labels are
the kill plugin's own, carried by the record; nothing is ranked or computed again from cgroup
values. ``render(record)`` is the report (verdict, candidate table, detector history);
``why_not(record, cgroup)`` is the one-line answer to "why was this cgroup not killed".
"""

from __future__ import annotations

from oomd.decision import PREFERENCE_NAMES, SKIPS, VICTIM
from oomd.names import shown

TOP = 10   # candidates in the table

# what a key component is called in a sentence
LABELS = {
    "kill_preference": "kill preference",
    "size": "size-eligible effective usage",
    "growth": "growth rate among the largest",
    "effective_usage": "effective usage",
    "current_usage": "current usage",
    "protection": "memory protection",
    "growth_rate": "growth rate",
    "pressure": "pressure",
    "avg10": "avg10",
    "avg60": "avg60",
    "swap_usage": "swap usage",
    "swap_excess": "swap beyond its protected share",
    "io_cost_rate": "io cost rate",
    "pg_scan_rate": "page scan rate",
    "stall_share": "stall share",
    "stall_window": "stall window",
    "size_eligible": "size-eligible",
    "growth_eligible": "growth-eligible",
}
# shorter column headers for the table
SHORT = {"size": "size (eligible)", "growth": "growth (eligible)", "effective_usage": "effective",
         "current_usage": "current", "protection": "protected", "growth_rate": "growth rate",
         "size_eligible": "size ok", "growth_eligible": "growth ok", "kill_preference": "pref"}
OUTCOMES = {"killed": "killed", "dry": "would have killed (dry run)"}


# -- values ---------------------------------------------------------------------------------------

def fmt_bytes(v) -> str:
    v = float(v)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(v) >= size:
            return f"{v / size:.1f} {unit}"
    return f"{int(v)} B"


def fmt_value(v, unit: str) -> str:
    """One value of a component, with its unit."""
    if v is None:
        return "-"
    if unit == "preference":
        return PREFERENCE_NAMES.get(int(v), str(v))
    if unit == "bool":
        return "yes" if v else "no"
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "%":
        return f"{float(v):.2f}%".replace(".00%", "%")
    if unit == "ratio":
        return f"{float(v):.2f}x"
    if unit == "s":
        return f"{float(v):.2f} s"
    if isinstance(v, float):
        return f"{v:.6g} {unit}".rstrip()
    return f"{v} {unit}".rstrip()


def _seconds(v) -> str:
    if isinstance(v, int):
        return f"{v} s"
    return f"{float(v):.0f} s" if v is not None and float(v) >= 1 else f"{float(v or 0):.1f} s"


def observation_text(obs: dict) -> str:
    """``memory pressure (full avg10) of workload.slice 63.1 > 60 for 31 s``."""
    if not obs or obs.get("value", None) is None and "op" not in obs:
        return obs.get("plugin", "?") if obs else "?"
    what = obs.get("what") or obs.get("plugin", "?")
    where = f" of {obs['cgroup']}" if obs.get("cgroup") else ""
    unit = obs.get("unit", "")
    value = obs.get("value")
    value_text = "unknown" if value is None else (
        fmt_value(value, unit) if unit in ("bytes", "%") else str(value))
    threshold = obs.get("threshold")
    thr_text = fmt_value(threshold, unit) if unit in ("bytes", "%") else str(threshold)
    text = f"{what}{where} {value_text} {obs.get('op', '?')} {thr_text}"
    if obs.get("held") is not None:
        text += f" for {_seconds(obs['held'])}"
    return text


def would_fire_in(obs: dict) -> float | None:
    """Seconds until a detector whose condition holds reaches its duration (None if n/a)."""
    held, duration = obs.get("held"), obs.get("duration")
    if held is None or not isinstance(duration, (int, float)) or obs.get("fired"):
        return None
    return max(0.0, float(duration) - float(held))


# -- the record's shape ---------------------------------------------------------------------------

def victim_place(record: dict) -> tuple[int, int] | None:
    """(peer set index, position) of the victim, or None."""
    victim = record.get("victim")
    if victim is None:
        return None
    for v in record.get("visits", ()):
        if v["cgroup"] == victim and v["result"] in VICTIM and v.get("set") is not None:
            ps = record["peer_sets"][v["set"]]
            if victim in ps["names"]:
                return v["set"], ps["names"].index(victim)
    for i, ps in enumerate(record.get("peer_sets", ())):
        if victim in ps["names"]:
            return i, ps["names"].index(victim)
    return None


def _component_row(ps: dict, i: int) -> dict:
    return {name: vals[i] for name, vals in ps["components"].items()}


def deciding(ps: dict, a: int, b: int) -> str | None:
    """The first key component on which positions ``a`` and ``b`` of ``ps`` differ (None: a
    tie on every key)."""
    for name in ps["key"]:
        vals = ps["components"][name]
        if vals[a] != vals[b]:
            return name
    return None


def _smaller(x, y, unit: str = "") -> str:
    """How much smaller ``y`` is than ``x``, as a percentage (or a plain difference)."""
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        return "smaller"
    if unit == "%":
        return f"{x - y:.2f} points lower".replace(".00 ", " ")
    if x > 0:
        return f"{(x - y) / x * 100:.0f}% smaller"
    return f"{x - y:g} smaller"


def _not_eligible(ps: dict, i: int, comp: str) -> str | None:
    """Why position ``i`` scores 0 on an eligibility-gated component (kill_by_memory_size_or_
    growth's ``size`` and ``growth``), or None."""
    c, facts = ps["components"], ps.get("facts", {})
    if comp == "size" and "size_eligible" in c and not c["size_eligible"][i]:
        return (f"not size-eligible (current usage {fmt_bytes(c['current_usage'][i])} is below "
                f"{facts.get('size_threshold_pct', '?')}% of the peers' total: "
                f"{fmt_bytes(facts.get('size_threshold', 0))})")
    if comp == "growth" and "growth_eligible" in c and not c["growth_eligible"][i]:
        return (f"not growth-eligible (growth {c['growth_rate'][i]:.2f}x, minimum "
                f"{facts.get('min_growth_ratio', '?')}x, among the "
                f"P{facts.get('growing_size_percentile', '?')} largest: effective usage of "
                f"{fmt_bytes(facts.get('growth_threshold', 0))} or more)")
    return None


def fired_clause(record: dict) -> str:
    group = next((g for g in record.get("detectors", ())
                  if g.get("name") == record.get("detectorgroup")), None)
    parts = [observation_text(d) for d in (group or {}).get("detectors", ())
             if d and "op" in d]
    rs = f'ruleset "{record.get("ruleset", "")}" fired'
    return f"{rs} ({'; '.join(parts)})" if parts else rs


def verdict(record: dict) -> str:
    """The first line of the report."""
    outcome = record.get("outcome")
    victim = record.get("victim")
    clause = fired_clause(record)
    if victim is None:
        sets = record.get("peer_sets", ())
        n = len(sets[0]["names"]) if sets else 0
        why = {"in_progress": "an earlier kill was still in progress",
               "skipped": "cgroups could not be read this tick",
               "failed": f"none of the {n} candidates could be killed" if n
               else "there were no candidates"}.get(outcome, outcome or "nothing was chosen")
        if record.get("starved"):
            why = "cgroups could not be read this tick (out of fds or memory)"
        return f"killed nothing although {clause}: {why}"
    place = victim_place(record)
    head = f'{OUTCOMES.get(outcome, outcome)} "{victim}" because {clause}'
    if place is None:
        return head
    s, i = place
    ps = record["peer_sets"][s]
    n = len(ps["names"])
    if n == 1:
        reason = f'"{victim}" was the only candidate'
    else:
        other = 1 if i == 0 else 0
        comp = deciding(ps, i, other) if i == 0 else None
        if i > 0:
            skipped = [v for v in record["visits"] if v.get("set") == s
                       and v["cgroup"] in ps["names"][:i]]
            why = ", ".join(f'"{v["cgroup"]}" {v["result"].replace("_", " ")}' for v in skipped)
            reason = (f'"{victim}" ranked #{i + 1} of {n} candidates and the ones above it were '
                      f"skipped ({why or 'not killable'})")
        elif comp is None:
            reason = (f'"{victim}" tied with "{ps["names"][1]}" on every key among {n} '
                      f"candidates; {record.get('tie_rule', 'the smallest path wins')}")
        elif comp == "kill_preference":
            pref = PREFERENCE_NAMES.get(ps["components"][comp][0], "?")
            pref2 = PREFERENCE_NAMES.get(ps["components"][comp][1], "?")
            reason = (f'"{victim}" had kill preference {pref} among {n} candidates; 2nd was '
                      f'"{ps["names"][1]}" ({pref2})')
        else:
            unit = ps["units"].get(comp, "")
            a, b = ps["components"][comp][0], ps["components"][comp][1]
            second = _not_eligible(ps, 1, comp) or (f"{_smaller(a, b, unit)} "
                                                    f"({fmt_value(b, unit)})")
            reason = (f'"{victim}" had the largest {LABELS.get(comp, comp)} '
                      f"({fmt_value(a, unit)}) among {n} candidates; 2nd was "
                      f'"{ps["names"][1]}", {second}')
    if ps.get("parent"):
        reason += f' (children of "{ps["parent"]}", reached by descending the ranking)'
    return f"{head} and {reason}"


# -- the report -----------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header)] + [line(r) for r in rows]


def candidate_table(record: dict, set_index: int, top: int = TOP, mark: str | None = None) -> list[str]:
    """The top candidates of one peer set as an aligned table with units."""
    ps = record["peer_sets"][set_index]
    names = ps["names"]
    comps = [c for c in ps["key"] if c != "kill_preference"]
    comps += [c for c in ps["components"] if c not in ps["key"] and c not in comps]
    header = ["#", "cgroup", "preference"] + [SHORT.get(c, LABELS.get(c, c)) for c in comps] \
        + ["vs above"]
    results = {v["cgroup"]: v["result"] for v in record.get("visits", ())
               if v.get("set") == set_index}
    rows = []
    show = list(range(min(top, len(names))))
    if mark in names and names.index(mark) >= top:
        show.append(names.index(mark))
    for i in show:
        comp = _component_row(ps, i)
        cells = [str(i + 1), names[i] + (f" [{results[names[i]]}]" if names[i] in results
                                         else ""),
                 PREFERENCE_NAMES.get(comp.get("kill_preference", 0), "?")]
        cells += [fmt_value(comp.get(c), ps["units"].get(c, "")) for c in comps]
        cells.append(ps["decided_by"][i] or "")
        rows.append(cells)
    right = set(range(3, 3 + len(comps)))
    lines = _table(header, rows, right)
    if len(names) > len(show):
        lines.append(f"... {len(names) - len(show)} more")
    for f in ps.get("filtered", ())[:5]:
        lines.append(f'left out: "{f["cgroup"]}": {f["reason"]}')
    if len(ps.get("filtered", ())) > 5:
        lines.append(f"left out: {len(ps['filtered']) - 5} more")
    for name, xattr in list(ps.get("avoid", {}).items())[:5]:
        lines.append(f'avoided: "{name}" ({xattr})')
    for name in ps.get("ignored_avoid", ())[:5]:
        lines.append(f'not avoided: "{name}" (its user.oomd_avoid is not trusted)')
    return lines


def history_lines(record: dict) -> list[str]:
    out = []
    for h in record.get("history", ()):
        parts = []
        for g in h.get("groups", ()):
            dets = ", ".join(observation_text(d) if d and "op" in d else
                             (d or {}).get("plugin", "-") for d in g.get("detectors", ()))
            parts.append(f"{g['name']}{' FIRED' if g.get('fired') else ''}: {dets}")
        out.append(f"  t{h['t']:+7.1f}s  tick {h['tick']:<6} " + " | ".join(parts))
    return out


def render(record: dict, top: int = TOP) -> str:
    """The report of one decision record."""
    lines = [verdict(record), ""]
    args = ", ".join(f"{k}={v}" for k, v in sorted(record.get("args", {}).items()))
    lines.append(f"tick {record.get('tick')}  ruleset {record.get('ruleset')!r}  detector group "
                 f"{record.get('detectorgroup')!r}  plugin {record.get('plugin')} ({args})  "
                 f"outcome {record.get('outcome')}")
    for i, ps in enumerate(record.get("peer_sets", ())):
        where = f'children of "{ps["parent"]}"' if ps.get("parent") else "the cgroup patterns"
        facts = ", ".join(f"{k}={v}" for k, v in ps.get("facts", {}).items())
        lines += ["", f"Peer set {i + 1}: {len(ps['names'])} candidates from {where}; ranked by "
                  f"{', '.join(LABELS.get(k, k) for k in ps['key'])} (highest first)"
                  + (f"; {facts}" if facts else "")]
        lines += ["  " + x for x in candidate_table(record, i, top, record.get("victim"))]
    if any(v["result"] in SKIPS or v["result"] == "prekill_hook"
           for v in record.get("visits", ())):
        lines += ["", "Search:"]
        lines += [f'  "{v["cgroup"]}": {v["result"]}' + (f" ({v['detail']})" if v["detail"]
                                                         else "")
                  for v in record["visits"]]
    if record.get("history"):
        lines += ["", f"Detector history of ruleset {record.get('ruleset')!r} (t relative to the "
                  "decision):"]
        lines += history_lines(record)
    lines += ["", f"Ties: {record.get('tie_rule', '')}"]
    return "\n".join(lines) + "\n"


# -- why not --------------------------------------------------------------------------------------

def _in_pattern_text(record: dict) -> str:
    pattern = record.get("args", {}).get("cgroup", "")
    return f"the kill plugin's cgroup pattern {pattern!r}" if pattern else "the candidate pattern"


def why_not(record: dict, cgroup: str) -> str:
    """One line: why ``cgroup`` (a relative path) was not the victim of this decision."""
    cgroup = shown(cgroup.strip("/"))   # as the record writes names
    victim = record.get("victim")
    if victim == cgroup:
        return f"it was {OUTCOMES.get(record.get('outcome'), 'killed')}"
    if victim is not None and victim.startswith(cgroup + "/"):
        return f'its child "{victim}" was killed instead (the ranking descended into it)'
    for v in record.get("visits", ()):
        if v["cgroup"] == cgroup and v["result"] in SKIPS:
            return f"skipped: {v['result'].replace('_', ' ')}" + (
                f" ({v['detail']})" if v["detail"] else "")
    for ps in record.get("peer_sets", ()):
        for f in ps.get("filtered", ()):
            if f["cgroup"] == cgroup:
                return f"not ranked: {f['reason']}"
    for s, ps in enumerate(record.get("peer_sets", ())):
        if cgroup in ps["names"]:
            return _lost(record, s, ps, ps["names"].index(cgroup))
    if victim is None:
        return "not a candidate, and nothing was killed"
    return f"not a candidate: outside {_in_pattern_text(record)}"


def _lost(record: dict, s: int, ps: dict, i: int) -> str:
    win = 0
    victim = record.get("victim")
    if victim in ps["names"]:
        win = ps["names"].index(victim)
    else:  # the winner of this set is the one the search descended into or killed
        for v in record.get("visits", ()):
            if v.get("set") == s and v["result"] not in SKIPS and v["cgroup"] in ps["names"]:
                win = ps["names"].index(v["cgroup"])
                break
    winner = ps["names"][win]
    if i < win:
        return f'ranked above "{winner}" but was not killed'
    comp = deciding(ps, win, i)
    mine, theirs = _component_row(ps, i), _component_row(ps, win)
    if comp is None:
        return (f'lost to "{winner}" on a tie (equal on every key): '
                f"{record.get('tie_rule', 'the smallest path wins')}")
    if comp == "kill_preference":
        if mine["kill_preference"] == -1:
            xattr = ps.get("avoid", {}).get(ps["names"][i], "trusted.oomd_avoid")
            return (f"avoided by xattr {xattr} (kill preference AVOID); "
                    f'"{winner}" was {PREFERENCE_NAMES.get(theirs["kill_preference"], "?")}')
        return (f'lost to "{winner}" on kill preference '
                f'({PREFERENCE_NAMES.get(mine["kill_preference"], "?")} < '
                f'{PREFERENCE_NAMES.get(theirs["kill_preference"], "?")})')
    unit = ps["units"].get(comp, "")
    protected = mine.get("protection", 0) or 0
    if protected > 0 and "current_usage" in mine and comp in ("size", "effective_usage") \
            and mine["current_usage"] >= theirs.get("effective_usage", 0):
        return (f"protected by memory.low: {fmt_bytes(protected)} of its "
                f"{fmt_bytes(mine['current_usage'])} is protected, leaving "
                f"{fmt_bytes(mine.get('effective_usage', 0))} effective usage; "
                f'"{winner}" had {fmt_bytes(theirs.get("effective_usage", 0))}')
    where = f' among the children of "{ps["parent"]}"' if ps.get("parent") else ""
    gate = _not_eligible(ps, i, comp)
    if gate is not None:
        return f'lost to "{winner}"{where}: {gate}'
    return (f'lost to "{winner}"{where} on {LABELS.get(comp, comp)} '
            f"({fmt_value(mine[comp], unit)} < {fmt_value(theirs[comp], unit)})")
