"""``pyoomd record-info [--json] RECORDING``: time span, ticks, cgroups, columns, bytes and
dropped frames of a recording (docs/replay.md). Exit status 1 when it is no recording."""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "describe a recording (--record): time span, ticks, cgroups, columns, bytes, drops"


def _when(wall) -> str:
    if wall is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pyoomd record-info", description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("recording", metavar="RECORDING", help="a --record directory or a recording file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    from oomd.names import printable
    from oomd.record.format import RecordingError
    from oomd.record.info import recording_info

    try:
        info = recording_info(args.recording)
    except RecordingError as e:
        print(f"pyoomd record-info: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=True))
        return 0
    lines = [
        f"recording:  {info['path']} ({info['segments']} segment(s), {info['bytes']} bytes)",
        f"hosts:      {', '.join(info['hosts']) or '-'} ({info['runs']} run(s))",
        f"time span:  {_when(info['first_wall'])} .. {_when(info['last_wall'])} "
        f"({info['seconds'] if info['seconds'] is not None else 0:.0f} s)",
        f"ticks:      {info['ticks']} (ticks {info['first_tick']}..{info['last_tick']}, "
        f"{info['gaps']} gap(s))",
        f"cgroups:    {info['cgroups']} (at most {info['max_rows']} at once)",
        f"columns:    {' '.join(info['columns']) or '-'}",
        f"metrics:    {' '.join(info['metrics']) or '-'}",
        f"decisions:  {info['decisions']}   config changes: {info['config_events']}",
        f"dropped:    {info['dropped_frames']} tick frame(s)",
    ]
    if info["ticks"]:
        per = info["bytes"] / info["ticks"]
        lines.append(f"bytes/tick: {per:.0f}" + (f" ({per / max(1, info['max_rows']):.1f} per cgroup)"))
    for problem in info["problems"]:
        lines.append(f"damaged:    {problem}")
    print("\n".join(printable(ln) for ln in lines))
    return 0
