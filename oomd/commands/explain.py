"""``pyoomd explain FILE``: why a kill plugin chose its victim, from the decision records of a
flight-recorder file or a recording (docs/explain.md).

    pyoomd explain /run/oomd/kills/20261202T113002Z-tick17.rec
    pyoomd explain --kill 2 --json recording.rec
    pyoomd explain --config /etc/oomd.json recording.rec --cgroup workload.slice/db
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "Explain the kills in a recording or flight-recorder file (why X, why not Y)"


def main(argv: list[str]) -> int:
    from oomd import explain, report

    parser = argparse.ArgumentParser(prog="pyoomd explain", description=HELP + ".")
    parser.add_argument("file", metavar="FILE",
                        help="a flight-recorder file (<runtime-dir>/kills/), a recording, or "
                             "decision records as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tick", type=int, help="the decision made at this tick")
    which.add_argument("--kill", type=int, metavar="N", help="the Nth kill in the file (from 1)")
    parser.add_argument("--json", action="store_true", help="print the decision record(s)")
    parser.add_argument("--cgroup", metavar="PATH",
                        help="why PATH (relative to the cgroup root) was not killed, one line "
                             "per kill")
    parser.add_argument("--config", metavar="CONFIG",
                        help="replay a recording that holds no decisions with this config")
    parser.add_argument("--top", type=int, default=explain.TOP,
                        help=f"candidates shown per peer set (default {explain.TOP})")
    args = parser.parse_args(argv)
    try:
        records = report.load_records(args.file, args.config)
        chosen = report.select(records, tick=args.tick, kill=args.kill)
    except report.ReportError as e:
        print(f"pyoomd explain: {e}", file=sys.stderr)
        return 1
    if not chosen:
        print(f"pyoomd explain: {args.file}: no decision records", file=sys.stderr)
        return 1
    out = sys.stdout
    if args.json:
        body = chosen[0] if len(chosen) == 1 else chosen
        if args.cgroup:
            body = [{"tick": r.get("tick"), "victim": r.get("victim"),
                     "cgroup": args.cgroup, "why_not": explain.why_not(r, args.cgroup)}
                    for r in chosen]
        out.write(json.dumps(body, indent=1) + "\n")
        return 0
    if args.cgroup:
        for n, r in enumerate(chosen, start=1):
            out.write(f"kill {n} (tick {r.get('tick')}, victim {r.get('victim')}): "
                      f"{explain.why_not(r, args.cgroup)}\n")
        return 0
    for n, r in enumerate(chosen):
        if n:
            out.write("\n" + "=" * 78 + "\n\n")
        out.write(explain.render(r, args.top))
    return 0
