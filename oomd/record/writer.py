"""Writing recordings: the daemon's ``--record DIR`` writer (a thread with a bounded queue,
rotating segments) and the in-memory ring of the last ticks that can be written out as a small
self-contained recording file on demand (the flight recorder).

The tick's thread captures (``oomd.record.ticks.Capturer``, views of the live columns, no
copy) and encodes the tick after the engine's tick (the decisions are made by then); the frame
goes through a bounded queue to the writer thread, which does every write. When the queue is
full (the disk is slow) the frame is dropped and counted, never waited for, and the next frame
is a key frame; when a write fails (disk full) the frame is dropped and counted, the segment
is closed, and the recording goes on in a new segment from the next key frame (so no torn
frame is followed by good ones, and no frame depends on a lost one). A log line says so once.
Decisions and configuration events are never dropped for a full queue (small and rare).
"""

from __future__ import annotations

import collections
import os
import re
import socket
import threading
import time

from oomd import logs
from oomd.record.format import (
    CONFIG, DECISION, FORMAT_VERSION, META, NOTE, SEGMENT_SUFFIX, SMALL_FRAME, TICK, compressed,
    encode_frame, encode_frame_parts, encode_json, encode_json_frame, segment_header)
from oomd.record.ticks import TickEncoder, TickSnapshot

DEFAULT_MAX_BYTES = 512 << 20
DEFAULT_QUEUE_TICKS = 2
MIN_SEGMENT_BYTES = 256 << 10
_SEGMENT_RE = re.compile(r"^seg-(\d{8})" + re.escape(SEGMENT_SUFFIX) + r"$")


def base_meta(**extra) -> dict:
    """The META frame's common keys; callers add cgroup_fs, interval, config..."""
    meta = {"format": FORMAT_VERSION, "host": socket.gethostname(), "started": time.time(),
            "pyoomd": _version()}
    meta.update(extra)
    return meta


def _version() -> str:
    from oomd import __version__

    return __version__


def segment_files(directory: str) -> list[str]:
    """The segment files of a recording directory, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, n) for n in sorted(n for n in names if _SEGMENT_RE.match(n))]


# ---- the flight recorder's ring ---------------------------------------------------------------


class TickRing:
    """The last ``ticks`` tick frames, kept encoded in memory. ``add`` encodes a snapshot
    (in the caller's thread); a key frame starts every ``keyframe_every`` frames, and the
    ring keeps frames from the newest key frame that still leaves ``ticks`` frames, so it
    holds at most ``ticks + keyframe_every`` frames. A frame smaller than ``RAW_FRAME`` is
    kept uncompressed (compressing a few KiB costs about as much as encoding them, every
    tick; the file written for a kill compresses them, ``write_recording_file``), a larger
    one compressed. ``write`` turns the ring into a recording file."""

    RAW_FRAME = SMALL_FRAME

    def __init__(self, ticks: int, keyframe_every: int | None = None) -> None:
        self.ticks = max(1, int(ticks))
        self.keyframe_every = keyframe_every or max(8, min(64, self.ticks // 2))
        self._enc = TickEncoder()
        # groups of frames, each starting with a key frame: whole groups are dropped
        self._groups: collections.deque[list[bytes]] = collections.deque()
        self._count = 0
        self._since_key = 0

    def add(self, snapshot: TickSnapshot) -> None:
        if self._since_key >= self.keyframe_every or not self._groups:
            self._enc.reset()
            self._since_key = 0
            self._groups.append([])
        self._since_key += 1
        parts = self._enc.encode_parts(snapshot)
        size = sum(len(p) for p in parts)
        self._groups[-1].append(encode_frame_parts(TICK, parts, compress=size >= self.RAW_FRAME))
        self._count += 1
        # drop whole key-frame groups while the rest still covers `ticks` frames
        while len(self._groups) > 1 and self._count - len(self._groups[0]) >= self.ticks:
            self._count -= len(self._groups.popleft())

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return sum(len(f) for g in self._groups for f in g)

    def frames(self) -> list[bytes]:
        """The encoded frames, oldest (a key frame) first."""
        return [f for g in self._groups for f in g]

    def write(self, path: str, meta: dict, extra: list[tuple[int, object]] = ()) -> int:
        """Write the ring as a self-contained recording file at ``path`` (through a temporary
        file and a rename, so a reader never sees half of it): META, the tick frames, then
        ``extra`` frames ((kind, JSON-able object or bytes), e.g. the decision). Returns the
        bytes written; raises OSError."""
        return write_recording_file(path, meta, self.frames(), extra)


def write_recording_file(path: str, meta: dict, tick_frames: list[bytes],
                         extra: list[tuple[int, object]] = ()) -> int:
    """META, the frames (compressed one at a time if the ring kept them raw), then ``extra``,
    written a frame at a time through a temporary file and a rename: the file never exists
    in memory in one piece (at 10k cgroups with a 10,000-candidate decision it is megabytes,
    written after every kill). Returns the bytes written; raises OSError."""

    def frames():
        yield segment_header()
        yield encode_frame(META, encode_json(meta))
        for f in tick_frames:
            yield compressed(f)
        for kind, obj in extra:
            yield encode_frame(kind, obj if isinstance(obj, bytes) else encode_json(obj))

    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    total = 0
    try:
        for part in frames():
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view):]
            total += len(part)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.close(fd)
    os.replace(tmp, path)
    return total


# ---- the --record writer --------------------------------------------------------------------


class Recorder:
    """``--record DIR``: appends every tick (and decision, and configuration change) to
    rotating segment files in ``directory``; the oldest segments are deleted beyond
    ``max_bytes``. ``tick``/``decision``/``config_event`` never block; ``close`` flushes."""

    def __init__(self, directory: str, meta: dict, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int | None = None, queue_ticks: int = DEFAULT_QUEUE_TICKS,
                 log=None, start: bool = True) -> None:
        self.directory = directory
        self.meta = dict(meta)
        self.max_bytes = max(int(max_bytes), MIN_SEGMENT_BYTES)
        self.segment_bytes = segment_bytes or max(MIN_SEGMENT_BYTES, self.max_bytes // 8)
        self.queue_ticks = max(1, queue_ticks)
        self._log = log or logs.log
        self._q: collections.deque = collections.deque()
        self._queued_ticks = 0
        self._cv = threading.Condition()
        self._closing = False
        self.dropped = 0               # tick frames dropped (queue full or write failed)
        self._dropped_unnoted = 0
        self._told = False
        self.frames_written = 0
        self.bytes_written = 0
        self._enc = TickEncoder()      # used by the producer (tick's thread) only
        self._sent = 0                 # bytes of tick frames since the last rotation
        self._need_key = False         # the writer asks for a key frame (chain broken)
        self._chain_ok = False         # the current segment can take a delta frame
        self._fd = -1
        self._seg_size = 0
        self._seg_index = 0
        self._seg_path = None
        os.makedirs(directory, exist_ok=True)
        existing = segment_files(directory)
        if existing:
            self._seg_index = int(_SEGMENT_RE.match(os.path.basename(existing[-1])).group(1))
        self.meta.setdefault("run", f"{socket.gethostname()}-{os.getpid()}-{time.time():.6f}")
        self._thread = None
        if start:
            self.start()

    # -- producer side (the tick's thread) --------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pyoomd-record", daemon=True)
        self._thread.start()

    def tick(self, snapshot: TickSnapshot) -> bool:
        """Encode the tick (here: the snapshot may hold views of the live columns) and queue
        its frame; False (counted, logged once) when the queue is full. After a drop the
        next frame is a key frame, so what follows never depends on a lost frame."""
        with self._cv:
            full = self._queued_ticks >= self.queue_ticks or self._closing
            if full:
                self._drop(1, "the writer is behind (slow disk?)")
            need_key, self._need_key = self._need_key or full, False
        if full:
            self._enc.reset()
            return False
        rotate = self._sent >= self.segment_bytes
        if need_key or rotate:
            self._enc.reset()
        if rotate:
            self._sent = 0
        key = self._enc.next_is_key
        frame = encode_frame_parts(TICK, self._enc.encode_parts(snapshot))
        self._sent += len(frame)
        with self._cv:
            self._q.append((TICK, (frame, key, rotate)))
            self._queued_ticks += 1
            self._cv.notify()
        return True

    def decision(self, record: dict) -> None:
        """Encoded here (after the kill, on the tick's thread): the queue holds the compressed
        frame, not the record's objects (a tenth of them at 10k candidates)."""
        try:
            frame = encode_json_frame(DECISION, record)
        except (TypeError, ValueError) as e:
            self._log(f"[record] could not encode a decision record: {e}", logs.WARNING)
            return
        self._put(DECISION, frame)

    def config_event(self, event: dict) -> None:
        self._put(CONFIG, event)

    def _put(self, kind: int, obj) -> None:
        with self._cv:
            if len(self._q) < 100_000:
                self._q.append((kind, obj))
                self._cv.notify()

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        self._dropped_unnoted += n
        if not self._told:
            self._told = True
            self._log(f"[record] dropping tick frames for {self.directory}: {why}; the ticks "
                      "go on, the recording has gaps (counted; logged once)", logs.WARNING)

    def close(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        elif self._fd < 0 and not self._q:
            return
        else:
            self._drain()
        self._finish()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (tests, and before a reload)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._q and time.monotonic() < deadline:
                self._cv.wait(0.01)

    # -- writer side ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._closing:
                    self._cv.wait()
                if not self._q and self._closing:
                    return
            self._drain()

    def _drain(self) -> None:
        while True:
            with self._cv:
                if not self._q:
                    self._cv.notify_all()
                    return
                kind, obj = self._q.popleft()
                if kind == TICK:
                    self._queued_ticks -= 1
            try:
                self._write_item(kind, obj)
            except Exception as e:  # noqa: BLE001 - the writer thread must survive anything
                with self._cv:
                    if kind == TICK:
                        self._drop(1, f"{type(e).__name__}: {e}")
                    self._need_key = True
                self._abandon_segment()

    def _write_item(self, kind: int, obj) -> None:
        if kind == TICK:
            frame, key, rotate = obj
            if not key and (not self._chain_ok or self._fd < 0):
                # its base frame was not written: drop it, ask the producer for a key frame
                with self._cv:
                    self._drop(1, "a frame could not be written")
                    self._need_key = True
                return
            if self._fd < 0 or rotate:
                self._new_segment()
        else:
            frame = obj if isinstance(obj, bytes) else encode_frame(kind, encode_json(obj))
            if self._fd < 0:
                self._new_segment()
        if self._dropped_unnoted:
            with self._cv:
                n, self._dropped_unnoted = self._dropped_unnoted, 0
            self._write(encode_frame(NOTE, encode_json({"dropped": n})))
        self._write(frame)
        if kind == TICK:
            self._chain_ok = True

    def _write(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            view = view[os.write(self._fd, view):]
        self._seg_size += len(frame)
        self.bytes_written += len(frame)
        self.frames_written += 1

    def _new_segment(self) -> None:
        self._close_segment()
        self._seg_index += 1
        path = os.path.join(self.directory, f"seg-{self._seg_index:08d}{SEGMENT_SUFFIX}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o644)
        self._fd, self._seg_path, self._seg_size = fd, path, 0
        self._chain_ok = False
        meta = dict(self.meta, segment=self._seg_index, segment_started=time.time())
        try:
            self._write(segment_header() + encode_frame(META, encode_json(meta)))
        except OSError:
            self._abandon_segment()
            try:
                os.unlink(path)          # a segment without its header is no segment
            except OSError:
                pass
            raise
        self._prune()

    def _abandon_segment(self) -> None:
        """After a failed write: the next frame starts a new segment (with a key frame)."""
        self._chain_ok = False
        self._close_segment()

    def _close_segment(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def _prune(self) -> None:
        """Delete the oldest segments while the recording is over ``max_bytes`` (never the
        one being written)."""
        files = segment_files(self.directory)
        sizes = []
        for f in files:
            try:
                sizes.append(os.stat(f).st_size)
            except OSError:
                sizes.append(0)
        total = sum(sizes)
        for f, size in zip(files, sizes):
            if total <= self.max_bytes - self.segment_bytes or f == self._seg_path:
                break
            try:
                os.unlink(f)
            except OSError:
                continue
            total -= size

    def _finish(self) -> None:
        if self._fd >= 0:
            try:
                if self._dropped_unnoted:
                    n, self._dropped_unnoted = self._dropped_unnoted, 0
                    self._write(encode_frame(NOTE, encode_json({"dropped": n})))
                self._write(encode_frame(NOTE, encode_json({"end": time.time()})))
            except OSError:
                pass
        self._close_segment()
