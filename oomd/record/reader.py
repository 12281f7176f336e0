"""Reading recordings: a directory of segments (``--record DIR``) or one recording file (a
segment, e.g. a flight-recorder file), as a stream of events in order.

Damage never raises past ``Recording.open``: a segment stops at its first bad frame (torn
write, checksum, malformed tick), the frames before it are kept, the next segment (which
starts with a key frame) is read again; ``Recording.problems`` lists what was skipped. Only a
path that is no recording at all, or one of a newer format, raises ``RecordingError``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

from oomd.record.format import (
    CONFIG, DECISION, META, NOTE, SEGMENT_SUFFIX, TICK, RecordingError, decode_json,
    scan_segment)
from oomd.record.ticks import TickDecoder, TickFrame
from oomd.record.writer import segment_files


@dataclass
class Event:
    """One item of a recording: ``kind`` is "meta", "tick", "decision", "config" or "note";
    ``data`` a TickFrame for ticks, else the JSON object. ``segment`` counts from 0."""

    kind: str
    data: object
    segment: int


@dataclass
class Recording:
    path: str
    segments: list[str]
    problems: list[str] = field(default_factory=list)
    bytes: int = 0

    @classmethod
    def open(cls, path: str) -> "Recording":
        """A recording directory or file; RecordingError if it is neither (with the reason)."""
        if os.path.isdir(path):
            segs = segment_files(path)
            if not segs:
                raise RecordingError(f"{path}: not a recording (no seg-*{SEGMENT_SUFFIX} "
                                     "files in the directory)")
        elif os.path.exists(path):
            segs = [path]
        else:
            raise RecordingError(f"{path}: no such file or directory")
        rec = cls(path, segs)
        for s in segs:
            try:
                rec.bytes += os.path.getsize(s)
            except OSError:
                pass
        # one segment at least must be a recording of a version we read (a damaged one is
        # skipped when reading, with the others)
        first_error = None
        for seg in segs:
            try:
                scan_segment(seg)
                return rec
            except RecordingError as e:
                if "newer than this pyoomd" in str(e):
                    raise
                first_error = first_error or e
        raise first_error

    def events(self) -> Iterator[Event]:
        """Every event in order. Each segment is read whole, checked frame by frame."""
        self.problems.clear()
        decoder = TickDecoder()
        for i, seg in enumerate(self.segments):
            try:
                scan = scan_segment(seg)
            except RecordingError as e:
                self.problems.append(str(e))
                continue
            decoder.reset()
            bad = None
            for frame in scan.frames:
                try:
                    if frame.kind == TICK:
                        ev = Event("tick", decoder.decode(frame.payload), i)
                    else:
                        obj = decode_json(frame.payload)
                        if not isinstance(obj, dict):
                            raise RecordingError("frame is not a JSON object")
                        ev = Event(_NAMES[frame.kind], obj, i)
                except (RecordingError, ValueError, RecursionError) as e:
                    bad = (frame.offset, str(e))
                    break
                yield ev
            if bad is None:
                bad = scan.torn
            if bad is not None:
                self.problems.append(f"{seg}: stopped at byte {bad[0]}: {bad[1]}; "
                                     "the frames before it are used")

    def ticks(self) -> Iterator[TickFrame]:
        for ev in self.events():
            if ev.kind == "tick":
                yield ev.data


_NAMES = {META: "meta", DECISION: "decision", CONFIG: "config", NOTE: "note"}
