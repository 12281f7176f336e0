"""The files pyoomd ships as package data (``oomd/shipped/``), read with importlib.resources.

In the source tree ``oomd/shipped/`` holds symlinks to ``configs/*.json`` and
``systemd/pyoomd.service``; sdists and wheels carry their contents. So the same lookup works
in a checkout, an editable install and an installed wheel.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable

UNIT = "pyoomd.service"


def shipped(name: str = "") -> Traversable:
    return files("oomd") / "shipped" / name


def config_names() -> list[str]:
    """The shipped configs, by the name ``show-config`` takes (``desktop`` for desktop.json)."""
    return sorted(p.name.removesuffix(".json") for p in shipped().iterdir()
                  if p.name.endswith(".json"))


def write_stdout(data: bytes) -> int:
    """Write the file unchanged (bytes, no re-encoding); a reader that stops early
    (``| head``) is not an error."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        # keep the interpreter's final flush from raising again on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
