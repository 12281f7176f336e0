"""``pyoomd export --format parquet RECORDING OUTDIR``: a recording as Parquet tables
(``ticks``, ``cgroups``, ``values``, ``decisions``; docs/replay.md) for DuckDB, Spark or
pandas. Needs pyarrow (``pip install 'pyoomd[parquet]'``). Exit status 1 on a bad recording or
without pyarrow."""

from __future__ import annotations

import argparse
import sys

HELP = "export a recording (--record) as Parquet tables for fleet analysis"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pyoomd export", description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("--format", required=True, choices=["parquet"], help="output format")
    p.add_argument("recording", metavar="RECORDING", help="a --record directory or a recording file")
    p.add_argument("outdir", metavar="OUTDIR", help="directory for the table files (created)")
    args = p.parse_args(argv)
    from oomd.record.export import MissingPyarrow, export_parquet
    from oomd.record.format import RecordingError

    try:
        counts = export_parquet(args.recording, args.outdir)
    except MissingPyarrow as e:
        print(f"pyoomd export: {e}", file=sys.stderr)
        return 1
    except RecordingError as e:
        print(f"pyoomd export: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pyoomd export: {args.outdir}: {e.strerror or e}", file=sys.stderr)
        return 1
    problems = counts.pop("problems")
    print(", ".join(f"{name}: {n} rows" for name, n in counts.items()) + f" -> {args.outdir}")
    for problem in problems:
        print(f"recording damaged: {problem}", file=sys.stderr)
    return 0
