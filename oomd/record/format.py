"""The recording container: segment files made of checksummed frames (docs/design.md,
"Recordings").

A segment file starts with a 16-byte header::

    b"PYOOMDR\\0"  u16 version  u16 flags (0)  u32 reserved (0)      little-endian

and holds frames back to back. A frame is a 16-byte header and its payload::

    u32 magic 0x464d4f4f ("OOMF")  u8 kind  u8 flags  u16 reserved
    u32 payload length  u32 CRC-32 (over the first 12 header bytes and the payload)

``flags`` bit 1: the payload is a zstd frame (level 1; its header holds the content size);
bit 0: zlib (recordings of the first pyoomd versions; read, no longer written). A reader checks magic, length and CRC of every
frame and stops at the first frame that fails (a torn write at the end of a segment, or damage):
everything before it is kept, and ``FrameScan.torn`` says where and why it stopped. Nothing in a
frame is trusted before its CRC checked, and a payload is decoded only after that.

Frame kinds (payload formats in ``oomd.record.ticks`` and below):

* ``META`` (JSON): first frame of every segment: format version, host, cgroup fs, interval,
  the base config text, the segment's index and start time.
* ``TICK`` (binary, ``oomd.record.ticks``): one tick of the context; the first tick frame of a
  segment is a key frame, the others store what changed since the previous tick frame.
* ``DECISION`` (JSON): one kill decision (live, dry or replayed). Keys every producer writes:
  ``tick``, ``time``, ``ruleset``, ``detectorgroup``, ``plugin``, ``victim`` (the cgroup as
  ``oomd.names.shown`` renders it), ``victim_path`` (the raw relative path, JSON string with
  surrogate escapes for undecodable bytes), ``cgroup_id``, ``dry``, ``record`` (the kill
  record text, as written to kmsg without the ``oomd kill: `` prefix). Other keys are free
  (issue 16's decision records add theirs); readers ignore keys they do not know.
* ``CONFIG`` (JSON): a configuration change at a tick: ``{"tick", "op": "add"|"remove"|
  "reload", "tag", "file", "text"}`` (drop-ins added or removed, the base config reloaded).
* ``NOTE`` (JSON): bookkeeping: ``{"dropped": n}`` frames the writer had to drop since the
  last note (slow or full disk), ``{"end": wall}`` on a clean close.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import zstandard

from oomd.errors import OomdError

# 2: zstd frames (flag bit 1), /proc/meminfo and vmstat as changed values, "ns" (issue 15/16's
# cost work). Version 1 segments (zlib, the files as text) are still read; a pyoomd that
# reads only version 1 refuses a version 2 segment by name instead of misreading its frames.
FORMAT_VERSION = 2
SEGMENT_MAGIC = b"PYOOMDR\0"
SEGMENT_HEADER = struct.Struct("<8sHHI")
FRAME_MAGIC = 0x464D4F4F
FRAME_HEADER = struct.Struct("<IBBHII")
FLAG_ZLIB = 1          # what the first pyoomd recordings wrote; still read
FLAG_ZSTD = 2
MAX_FRAME = 256 << 20          # a longer length field is damage, not a frame
SEGMENT_SUFFIX = ".pyoomdrec"

META, TICK, DECISION, CONFIG, NOTE = 1, 2, 3, 4, 5
KIND_NAMES = {META: "meta", TICK: "tick", DECISION: "decision", CONFIG: "config", NOTE: "note"}

ZSTD_LEVEL = 1
# a large decision record is compressed as its JSON is made (encode_json_frame): its size is
# not known in advance, which a zstd frame's header would need, so that one stays zlib
ZLIB_LEVEL = 1
SMALL_FRAME = 16 << 10


class RecordingError(OomdError):
    """A recording that cannot be read at all (not a recording, a newer format, unreadable).
    The message names the file and the reason, and is meant for the user as is."""


def segment_header(version: int = FORMAT_VERSION) -> bytes:
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, version, 0, 0)


_local = threading.local()


def _zstd(size: int):
    """A zstd compressor for ``size`` bytes: this thread's own for a small payload (a
    compressor is not to be shared between threads: the tick's thread compresses frames, the
    flight recorder's worker the ring's small ones), a new one for a large payload, so that the
    megabyte of buffers a large frame needs is given back once it is compressed instead of
    staying with a thread for the daemon's life."""
    if size >= SMALL_FRAME:
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    c = getattr(_local, "zstd", None)
    if c is None:
        c = _local.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def encode_frame(kind: int, payload: bytes, compress: bool = True) -> bytes:
    """One frame: header and payload (zstd-compressed when ``compress``)."""
    flags = 0
    if compress:
        payload = _zstd(len(payload)).compress(payload)
        flags |= FLAG_ZSTD
    head = struct.pack("<IBBHI", FRAME_MAGIC, kind, flags, 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def encode_frame_parts(kind: int, parts, compress: bool = True) -> bytes:
    """``encode_frame(kind, b"".join(parts), compress)`` (parts: bytes or any buffer), without
    joining a large payload first: its parts go through the compressor one by one (the total
    size is given first, so the frame's header still holds it), so a large tick (a key frame
    at 10k cgroups is over a megabyte) never exists uncompressed in one piece."""
    size = sum(memoryview(p).nbytes for p in parts)
    if not compress or size < SMALL_FRAME:
        return encode_frame(kind, b"".join(parts), compress)
    co = _zstd(size).compressobj(size=size)
    out = [co.compress(p) for p in parts]
    out.append(co.flush())
    payload = b"".join(out)
    head = struct.pack("<IBBHI", FRAME_MAGIC, kind, FLAG_ZSTD, 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def compressed(frame: bytes) -> bytes:
    """A frame made by ``encode_frame(..., compress=False)`` compressed; a compressed one (or
    anything that is not a frame of ours) as it is."""
    if len(frame) < FRAME_HEADER.size:
        return frame
    magic, kind, flags, _, length, _ = FRAME_HEADER.unpack_from(frame)
    if (magic != FRAME_MAGIC or flags & (FLAG_ZLIB | FLAG_ZSTD)
            or length != len(frame) - FRAME_HEADER.size):
        return frame
    return encode_frame(kind, frame[FRAME_HEADER.size:])


def encode_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


_BIG = 512          # a list longer than this is a "big" part of a JSON object
_CHUNK = 64 << 10   # characters of JSON text compressed at a time
_SLICE = 4096       # items of a long list of scalars made text at a time
_CONTAINERS = frozenset((dict, list, tuple))


def _big(obj) -> bool:
    """Whether ``obj`` holds a list longer than ``_BIG`` (at any depth)."""
    if isinstance(obj, dict):
        return any(_big(v) for v in obj.values() if isinstance(v, (dict, list, tuple)))
    if isinstance(obj, (list, tuple)):
        return len(obj) > _BIG or any(_big(v) for v in obj if isinstance(v, (dict, list, tuple)))
    return False


def json_pieces(obj) -> Iterator[str]:
    """The text of ``encode_json(obj)`` in pieces: the big parts of a large object (a decision
    record ranks 10,000s of candidates) one at a time, so that its text never exists whole."""
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and _big(obj):
        sep = "{"
        for k, v in obj.items():
            yield sep + _dumps(k) + ":"
            sep = ","
            yield from json_pieces(v)
        yield "{}" if sep == "{" else "}"
    elif isinstance(obj, (list, tuple)) and _big(obj):
        if not _CONTAINERS.intersection(map(type, obj)):   # scalars only: in slices
            for i in range(0, len(obj), _SLICE):
                yield ("," if i else "[") + _dumps(obj[i:i + _SLICE])[1:-1]
            yield "]"
            return
        yield "["
        first, run = True, []
        for v in obj:
            if isinstance(v, (dict, list, tuple)) and _big(v):
                if run:
                    yield ("" if first else ",") + _dumps(run)[1:-1]
                    first, run = False, []
                if not first:
                    yield ","
                first = False
                yield from json_pieces(v)
            else:
                run.append(v)
                if len(run) >= _BIG:
                    yield ("" if first else ",") + _dumps(run)[1:-1]
                    first, run = False, []
        if run:
            yield ("" if first else ",") + _dumps(run)[1:-1]
        yield "]"
    else:
        yield _dumps(obj)


def encode_json_frame(kind: int, obj) -> bytes:
    """``encode_frame(kind, encode_json(obj))`` (the same payload once decompressed), with the
    JSON text of a large object made and compressed a piece at a time (``json_pieces``): the
    peak is the compressed frame plus one piece, not the whole text twice (str, then bytes)."""
    c = None
    out: list[bytes] = []
    buf: list[str] = []
    size = 0
    for piece in json_pieces(obj):
        buf.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            if c is None:
                c = zlib.compressobj(ZLIB_LEVEL)
            out.append(c.compress("".join(buf).encode()))
            buf, size = [], 0
    tail = "".join(buf).encode()
    if c is None:
        return encode_frame(kind, tail)
    out.append(c.compress(tail))
    out.append(c.flush())
    payload = b"".join(out)
    head = struct.pack("<IBBHI", FRAME_MAGIC, kind, FLAG_ZLIB, 0, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def decode_json(payload: bytes):
    return json.loads(payload.decode("utf-8", "surrogateescape"))


@dataclass
class Frame:
    kind: int
    payload: bytes        # decompressed
    offset: int           # of the frame header in its file
    size: int             # bytes on disk, header included


@dataclass
class FrameScan:
    """What reading one segment found: its frames, and where it stopped early (``torn``:
    ``(offset, reason)``, None when the file ended cleanly after a whole frame)."""

    path: str
    version: int = FORMAT_VERSION
    frames: list[Frame] = field(default_factory=list)
    torn: tuple[int, str] | None = None
    size: int = 0


def check_segment_header(data: bytes, path: str) -> int:
    """The segment's format version; RecordingError when it is not a segment this pyoomd
    can read."""
    if len(data) < SEGMENT_HEADER.size:
        if SEGMENT_MAGIC.startswith(data[:8]) or not data:
            raise RecordingError(f"{path}: empty or truncated recording (no segment header)")
        raise RecordingError(f"{path}: not a pyoomd recording")
    magic, version, _flags, _res = SEGMENT_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise RecordingError(f"{path}: not a pyoomd recording")
    if version > FORMAT_VERSION:
        raise RecordingError(f"{path}: recording format version {version} is newer than this "
                             f"pyoomd reads (version {FORMAT_VERSION}); use a newer pyoomd")
    if version < 1:
        raise RecordingError(f"{path}: bad recording format version {version}")
    return version


def iter_frames(data: bytes, start: int = SEGMENT_HEADER.size,
                scan: FrameScan | None = None) -> Iterator[Frame]:
    """Frames of a segment's bytes from ``start``; stops at the first bad one, noting why in
    ``scan.torn``."""
    pos = start
    n = len(data)
    hs = FRAME_HEADER.size
    while pos < n:
        if n - pos < hs:
            _torn(scan, pos, "truncated frame header")
            return
        magic, kind, flags, _res, length, crc = FRAME_HEADER.unpack_from(data, pos)
        if magic != FRAME_MAGIC:
            _torn(scan, pos, "bad frame magic")
            return
        if length > MAX_FRAME:
            _torn(scan, pos, f"frame length {length} out of range")
            return
        end = pos + hs + length
        if end > n:
            _torn(scan, pos, "truncated frame")
            return
        body = data[pos + hs:end]
        if zlib.crc32(body, zlib.crc32(data[pos:pos + 12])) != crc:
            _torn(scan, pos, "frame checksum mismatch")
            return
        if flags & ~(FLAG_ZLIB | FLAG_ZSTD) or flags == FLAG_ZLIB | FLAG_ZSTD \
                or kind not in KIND_NAMES:
            _torn(scan, pos, f"unknown frame kind {kind} or flags {flags}")
            return
        if flags & FLAG_ZSTD:
            try:
                size = zstandard.frame_content_size(body)
                if not 0 <= size <= MAX_FRAME:
                    raise zstandard.ZstdError("content size unknown or out of range")
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=MAX_FRAME)
                if len(body) != size:
                    raise zstandard.ZstdError("bad length")
            except zstandard.ZstdError:
                _torn(scan, pos, "frame does not decompress")
                return
        elif flags & FLAG_ZLIB:
            try:
                d = zlib.decompressobj()
                body = d.decompress(body, MAX_FRAME)
                if d.unconsumed_tail or not d.eof:
                    raise zlib.error("bad length")
            except zlib.error:
                _torn(scan, pos, "frame does not decompress")
                return
        yield Frame(kind, bytes(body), pos, end - pos)
        pos = end


def _torn(scan: FrameScan | None, pos: int, why: str) -> None:
    if scan is not None:
        scan.torn = (pos, why)


def scan_segment(path: str, f: BinaryIO | None = None) -> FrameScan:
    """Read one segment file whole: its frames up to the first bad one."""
    try:
        if f is None:
            with open(path, "rb") as fh:
                data = fh.read()
        else:
            data = f.read()
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory, not a recording segment") from None
    except OSError as e:
        raise RecordingError(f"{path}: cannot read: {e.strerror}") from None
    version = check_segment_header(data, path)
    scan = FrameScan(path, version, size=len(data))
    scan.frames = list(iter_frames(data, scan=scan))
    return scan
