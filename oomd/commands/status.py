"""``pyoomd status``: what the running daemon sees now, per ruleset: detectors with their value,
threshold and how long it has held ("would fire in N s"), pauses, and each kill plugin's top
candidates by its own ranking (docs/explain.md). Asks the daemon over its stats socket.

    pyoomd status
    pyoomd status --json
    pyoomd status --watch 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "Show the running daemon's detectors and the candidates it would kill now"


def main(argv: list[str]) -> int:
    from oomd import status
    from oomd.options import DEFAULT_RUNTIME_DIR

    parser = argparse.ArgumentParser(prog="pyoomd status", description=HELP + ".")
    parser.add_argument("--runtime-dir", default=DEFAULT_RUNTIME_DIR,
                        help=f"the daemon's --runtime-dir (default {DEFAULT_RUNTIME_DIR})")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until interrupted")
    args = parser.parse_args(argv)
    if args.watch is not None and args.watch <= 0:
        parser.error("--watch needs a positive interval")
    try:
        return _show(args, status)
    except KeyboardInterrupt:   # --watch ends with ^C
        return 0


def _show(args, status) -> int:
    out = sys.stdout
    while True:
        try:
            body = status.fetch(args.runtime_dir)
        except status.StatusError as e:
            print(f"pyoomd status: {e}", file=sys.stderr)
            if args.watch is None:
                return 1
            body = None
        if args.json:
            text = json.dumps(body, indent=1, ensure_ascii=False) + "\n" if body else ""
        else:
            text = status.render(body) if body else ""
        if args.watch is not None and out.isatty():
            out.write("\x1b[H\x1b[2J")   # home and clear, like top
        out.write(text)
        out.flush()
        if args.watch is None:
            return 0
        time.sleep(args.watch)
