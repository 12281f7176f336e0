"""``pyoomd replay [--config CONFIG] [--json] RECORDING``: run a config over a recording
(docs/replay.md). Kill plugins are always dry; nothing touches a cgroup.

Exit status: 0 the replay ran; 1 it could not (bad recording, bad config, or the recording
lacks what the config needs: the message names the metric, the cgroup pattern and the tick);
2 a usage error.
"""

from __future__ import annotations

import argparse
import io
import sys

HELP = "run a config over a recording (--record) and print its detector firings and kills"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyoomd replay", description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("recording", metavar="RECORDING",
                   help="a --record directory, or one recording file")
    p.add_argument("--config", "-C", metavar="CONFIG",
                   help="the config to run (default: the config the recording was made with)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-drop-ins", action="store_true",
                   help="ignore the drop-ins the recording saw added and removed")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print kills and the summary, not every detector firing")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also print the plugins' log lines (stderr)")
    p.add_argument("--plugin-module", metavar="MODULE", action="append", default=[],
                   help="import MODULE, whose plugins register themselves (repeatable)")
    return p


class _Null(io.TextIOBase):
    def write(self, s):
        return len(s)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from oomd import logs, plugin
    from oomd.names import printable
    from oomd.record.format import RecordingError
    from oomd.record.replay import replay, result_json

    logs.setup(inline=True, stream=sys.stderr if args.verbose else _Null())
    out = sys.stdout
    try:
        plugin.load_builtin_plugins()
        for module in args.plugin_module:
            plugin.load_plugin_module(module)
        start = [None]

        def on_tick(frame, fired, decisions):
            if args.json:
                return
            if start[0] is None:
                start[0] = frame.now
            at = f"tick {frame.tick} (+{frame.now - start[0]:.1f}s)"
            if not args.quiet:
                for ruleset, group in fired:
                    out.write(printable(f"{at} fired: {ruleset} / {group}") + "\n")
            for d in decisions:
                out.write(printable(f"{at} kill: oomd kill: {d.get('record', '')}") + "\n")

        result = replay(args.recording, args.config, drop_ins=not args.no_drop_ins,
                        on_tick=on_tick)
    except RecordingError as e:
        print(f"pyoomd replay: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a plugin module or config may raise anything
        print(f"pyoomd replay: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        logs.flush()
    if args.json:
        out.write(result_json(result) + "\n")
        return 0
    s = result.summary()
    recorded = s["recorded_kills"]
    out.write(f"summary: {s['ticks']} ticks over {s['seconds'] or 0:.0f} s "
              f"(ticks {s['first_tick']}..{s['last_tick']}, {s['runs']} run(s)), "
              f"{s['firings']} detector group firings, {s['kills']} kills "
              f"(the recording holds {recorded} live)\n")
    for ruleset, n in sorted(s["kills_by_ruleset"].items()):
        out.write(printable(f"  {n} kills by ruleset {ruleset}") + "\n")
    if result.plugin_errors:
        out.write(f"  {result.plugin_errors} plugin errors (use --verbose to see them)\n")
    for problem in result.problems:
        out.write(printable(f"  recording damaged: {problem}") + "\n")
    return 0
