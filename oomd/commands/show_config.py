"""``pyoomd show-config NAME``: print a config shipped with pyoomd, to install or adapt it.

    pyoomd show-config server > /etc/pyoomd/pyoomd.json

The configs are ``configs/*.json`` of the source tree (documented in configs/README.md),
installed as package data.
"""

from __future__ import annotations

import argparse
import sys

from oomd.commands._shipped import config_names, shipped, write_stdout

HELP = "Print a shipped config (pyoomd show-config -h lists them) to standard output"


def main(argv: list[str]) -> int:
    names = config_names()
    parser = argparse.ArgumentParser(
        prog="pyoomd show-config", description=HELP + ".",
        epilog="Check an edited copy with: pyoomd --check-config FILE")
    parser.add_argument("name", metavar="NAME", help="one of: " + ", ".join(names))
    args = parser.parse_args(argv)
    name = args.name.removesuffix(".json")
    if name not in names:
        print(f"pyoomd show-config: no shipped config named {args.name!r}; "
              f"available: {', '.join(names)}", file=sys.stderr)
        return 2
    return write_stdout(shipped(name + ".json").read_bytes())
