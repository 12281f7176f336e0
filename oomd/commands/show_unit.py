"""``pyoomd show-unit``: print the systemd unit shipped with pyoomd.

    pyoomd show-unit > /etc/systemd/system/pyoomd.service

The unit is ``systemd/pyoomd.service`` of the source tree (documented in systemd/README.md),
installed as package data. Its ExecStart= runs /usr/bin/pyoomd.
"""

from __future__ import annotations

import argparse

from oomd.commands._shipped import UNIT, shipped, write_stdout

HELP = "Print the shipped systemd unit (pyoomd.service) to standard output"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pyoomd show-unit", description=HELP + ".")
    parser.parse_args(argv)
    return write_stdout(shipped(UNIT).read_bytes())
