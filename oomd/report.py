"""Finding decision records in a file for ``pyoomd explain`` (docs/explain.md).

A file may be a flight-recorder file or a recording (``--record``; the decisions are its
decision frames), a JSON file with one record or a list of them, or JSON lines. A recording
without decision frames is replayed with ``--config`` to produce them (the replayed kill
plugins make the same records as live ones).
"""

from __future__ import annotations

import json
import os

from oomd.decision import KIND, VICTIM
from oomd.record.format import SEGMENT_MAGIC, RecordingError


class ReportError(Exception):
    """The file holds no decision record we can read; the message says why."""


def is_record(obj) -> bool:
    return isinstance(obj, dict) and obj.get("kind") == KIND


def _from_json_text(text: str) -> list[dict] | None:
    text = text.strip()
    if not text:
        return []
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if obj is not None:
        if is_record(obj):
            return [obj]
        if isinstance(obj, list) and all(is_record(o) for o in obj):
            return obj
        if isinstance(obj, dict) and isinstance(obj.get("decisions"), list):
            return [o for o in obj["decisions"] if is_record(o)]
        return None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return None
        if is_record(obj):
            out.append(obj)
    return out


def load_records(path: str, config: str | None = None) -> list[dict]:
    """Every decision record in ``path``, in the order they were made."""
    if os.path.isdir(path):
        return recording_decisions(path, config)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SEGMENT_MAGIC))
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    if head == SEGMENT_MAGIC:
        return recording_decisions(path, config)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    records = _from_json_text(text)
    if records is None:
        raise ReportError(f"{path}: neither a recording nor decision records (JSON)")
    return records


def recording_decisions(path: str, config: str | None = None) -> list[dict]:
    """The decision records of a recording (directory or file): with ``config``, those a
    replay of the recording with that config makes (``oomd.record.replay``: the same kill
    plugins, dry); without, the recording's DECISION frames that hold one."""
    if config is not None:
        return replay_decisions(path, config)
    from oomd.record.reader import Recording

    try:
        rec = Recording.open(path)
        found = [ev.data for ev in rec.events() if ev.kind == "decision" and is_record(ev.data)]
    except RecordingError as e:
        raise ReportError(str(e)) from None
    if not found:
        raise ReportError(f"{path}: the recording holds no decision records; give --config "
                          "to replay it and explain the decisions the replay makes")
    return found


def replay_decisions(path: str, config: str) -> list[dict]:
    """The decision records made by replaying the recording at ``path`` with ``config``."""
    from oomd.record.replay import replay

    try:
        result = replay(path, config)
    except (RecordingError, OSError) as e:
        raise ReportError(str(e)) from None
    return [d for d in result.decisions if is_record(d)]


def kills(records: list[dict]) -> list[dict]:
    """The records whose decision killed (or dry killed) something."""
    return [r for r in records if r.get("outcome") in VICTIM]


def select(records: list[dict], *, tick: int | None = None, kill: int | None = None) -> list[dict]:
    """The records ``--tick``/``--kill`` name (every kill when neither is given)."""
    if tick is not None:
        chosen = [r for r in records if r.get("tick") == tick]
        if not chosen:
            ticks = sorted({r.get("tick") for r in records})
            raise ReportError(f"no decision at tick {tick} (decisions at ticks: "
                              f"{', '.join(map(str, ticks)) or 'none'})")
        return chosen
    done = kills(records)
    if kill is not None:
        if not 1 <= kill <= len(done):
            raise ReportError(f"there is no kill {kill}: the file has {len(done)} kill(s)")
        return [done[kill - 1]]
    return done or records
