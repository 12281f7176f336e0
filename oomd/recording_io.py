"""Decision records inside recordings (the record/replay format of issue 15): until that format
is merged, no file is recognised as a recording."""

from __future__ import annotations


def is_recording(head: bytes) -> bool:
    return False


def decisions(path: str, config: str | None = None) -> list[dict]:
    from oomd.report import ReportError

    raise ReportError(f"{path}: recordings are not supported yet")
