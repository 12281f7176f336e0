"""Tick frames: what one tick of the context read, captured on the tick's thread, encoded as
"what changed since the previous tick frame" off it, and decoded again for replay and export.

Capture (``Capturer.capture``, on the tick thread, no encoding): the tick number and times, the
system context (``SystemContext.snapshot``), the rows (slot -> relative path, shared until the
tree changes), and a copy of every reader column that some row loaded this tick (a metric a
plugin read), plus the identity and validity columns (``cgid``, ``parent``, ``valid``,
``loaded``, ``status``, and ``nchild``: how many child directories the row's last listing
had, -1 when it was never listed, which tells replay whether it knows all of a row's
children). The rows are the reader's row slots, so a replayed plugin sees the same row numbers.

Encoding (``TickEncoder``): per column, a bitmap of the rows whose value changed (byte-wise)
since the previous frame and the changed values; a column with no change, or not read this
tick, is left out ("unchanged": the decoder keeps its last values, and the ``valid`` and
``loaded`` columns say which values belong to this tick). Rows added or removed since the last
frame, and system values that changed. A key frame (the first after ``reset``) is the same
encoding against an empty state, so it stands alone.

Payload layout: ``u32 n`` JSON header length, the JSON header, then the binary sections in the
order the header lists them::

    {"t": tick, "now": monotonic s, "wall": unix s, "n": row slots, "key": bool,
     "add": [[slot, path], ...], "del": [slot, ...],
     "sys": {key: value}, "mi": {meminfo changes}, "vm": {vmstat changes},
     "sysdel": [[part, key], ...], "so": [bps, bps60, bps300],
     "fired": [[ruleset label, detector group], ...], "starved": bool,
     "cols": [[name, dtype, [tail shape], changed rows, mask bytes, data bytes], ...]}

Every column of the snapshot is listed, unchanged ones with zeros (so the decoder knows what
this tick read); a listed column with changes is followed by its row bitmap (``packbits``, n
bits) and the changed rows' values, C order.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from oomd.context.metric_table import METRICS
from oomd.record.format import RecordingError, encode_json

# ---- which columns a tick frame holds -----------------------------------------------------------

IDENTITY_COLUMNS = ("cgid", "parent", "valid", "loaded", "status", "nchild")
MAX_SLOTS = 1 << 22
_DTYPES = frozenset(("|u1", "|i1", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"))
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
PSI_KEYS = ("mem_some", "mem_full", "io_some", "io_full")


def _loaded_bits() -> dict[str, int]:
    """Reader column -> the ``loaded`` bits that mean some row read it this tick."""
    from oomd import _fastcg

    need: dict[str, int] = {}
    for m in METRICS.values():
        if m.column is None or m.column in IDENTITY_COLUMNS:
            continue
        bits = m.kinds
        if m.derive is not None:
            bits |= 1 << _fastcg.D[m.derive]
        need[m.column] = need.get(m.column, 0) | bits
    return need


DATA_COLUMNS: dict[str, int] = _loaded_bits()


@dataclass
class TickSnapshot:
    """One tick as captured (raw arrays, not yet encoded). ``paths`` is shared between
    snapshots until ``rows_version`` changes: never mutate it."""

    tick: int
    now: float
    wall: float
    n: int
    rows_version: int
    paths: dict[int, str]
    columns: dict[str, np.ndarray]
    system: dict
    fired: list = field(default_factory=list)
    starved: bool = False

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.columns.values())


class Capturer:
    """Takes ``TickSnapshot``s of one live ``OomdContext`` (one per context: it keeps the last
    row table it handed out, so an unchanged tree costs no copy)."""

    def __init__(self) -> None:
        self._tree_key = None
        self._rows_version = 0
        self._paths: dict[int, str] = {}
        self._gen = np.empty(0, dtype=np.uint32)
        self._nchild = np.empty(0, dtype=np.int32)

    def capture(self, ctx, fired=(), wall: float | None = None, copy: bool = True) -> TickSnapshot:
        """``copy=False``: the columns are views of the reader's, valid only until the next
        tick (for an encoder that runs at once on the tick's thread: the flight recorder)."""
        cols = ctx.reader_columns()
        live = cols["live"]
        nz = np.flatnonzero(live)
        n = int(nz[-1]) + 1 if len(nz) else 0
        key = ctx.rows_key()
        gen = cols["gen"][:n]
        changed = key != self._tree_key
        if changed:
            self._tree_key = key
            self._rows_version += 1
            self._paths = dict(ctx.row_paths())
        if changed or len(gen) != len(self._gen) or not np.array_equal(gen, self._gen):
            self._gen = gen.copy()
            nchild = np.full(n, -1, dtype=np.int32)
            for row, count in ctx.listing_counts().items():
                if row < n:
                    nchild[row] = count
            self._nchild = nchild
        loaded = cols["loaded"][:n]
        any_loaded = int(np.bitwise_or.reduce(loaded)) if n else 0
        out: dict[str, np.ndarray] = {}
        for name in IDENTITY_COLUMNS:
            out[name] = self._nchild if name == "nchild" else \
                (cols[name][:n].copy() if copy else cols[name][:n])
        for name, bits in DATA_COLUMNS.items():
            if any_loaded & bits:
                out[name] = cols[name][:n].copy() if copy else cols[name][:n]
        return TickSnapshot(
            tick=ctx.tick, now=float(ctx.now), wall=time.time() if wall is None else wall, n=n,
            rows_version=self._rows_version, paths=self._paths, columns=out,
            system=ctx.system.snapshot(), fired=list(fired), starved=bool(ctx.starved))


# ---- encoding -------------------------------------------------------------------------------


def _as_uint(a: np.ndarray, n: int) -> np.ndarray:
    """The array's bytes as unsigned ints, one row per slot (a byte-wise comparison: NaN and
    -0.0 compare as what they are)."""
    return a.view(_UINT[a.dtype.itemsize]).reshape(n, -1)


def _json_value(v):
    if isinstance(v, tuple):
        return [float(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


class TickEncoder:
    """Encodes snapshots as differences from the previous one it encoded. ``reset()``: the
    next frame is a key frame (a new segment or a flight-recorder file starts)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev: dict[str, np.ndarray] = {}
        self._paths: dict[int, str] = {}
        self._version = None
        self._sys: dict[str, dict] = {"sys": {}, "mi": {}, "vm": {}}
        self._key = True

    def encode(self, s: TickSnapshot) -> bytes:
        key = self._key
        self._key = False
        n = s.n
        head: dict = {"t": s.tick, "now": s.now, "wall": s.wall, "n": n, "key": key}
        if key or s.rows_version != self._version:
            old = {} if key else self._paths
            new = s.paths
            head["add"] = [[slot, p] for slot, p in new.items() if old.get(slot) != p]
            head["del"] = [slot for slot in old if slot not in new]
            self._paths = new
            self._version = s.rows_version
        self._encode_system(s.system, head, key)
        if s.fired:
            head["fired"] = [list(x) for x in s.fired]
        if s.starved:
            head["starved"] = True
        cols = []
        blobs: list[bytes] = []
        for name, cur in s.columns.items():
            prev = self._prev.get(name)
            if prev is None or prev.dtype != cur.dtype or prev.shape[1:] != cur.shape[1:]:
                prev = np.zeros((max(n, 1),) + cur.shape[1:], dtype=cur.dtype)
                self._prev[name] = prev
            elif len(prev) < n:
                grown = np.zeros((max(n, 2 * len(prev)),) + cur.shape[1:], dtype=cur.dtype)
                grown[:len(prev)] = prev
                prev = self._prev[name] = grown
            if not n:
                ch = None
            elif np.array_equal(_as_uint(cur, n), _as_uint(prev[:n], n)):
                cols.append([name, cur.dtype.str, list(cur.shape[1:]), 0, 0, 0])
                continue      # nothing changed (one pass, no per-row mask)
            elif cur.ndim == 1:   # one value per row: compare the bytes directly
                u = _UINT[cur.dtype.itemsize]
                ch = cur.view(u) != prev[:n].view(u)
            else:
                ch = (_as_uint(cur, n) != _as_uint(prev[:n], n)).any(axis=1)
            idx = np.flatnonzero(ch) if n else ()
            if len(idx) == 0:
                cols.append([name, cur.dtype.str, list(cur.shape[1:]), 0, 0, 0])
                continue
            vals = cur[idx]
            prev[idx] = vals
            mask = np.packbits(ch).tobytes()
            data = vals.tobytes()
            cols.append([name, cur.dtype.str, list(cur.shape[1:]), len(idx), len(mask), len(data)])
            blobs.append(mask)
            blobs.append(data)
        head["cols"] = cols
        hj = encode_json(head)
        return struct.pack("<I", len(hj)) + hj + b"".join(blobs)

    def _encode_system(self, system: dict, head: dict, key: bool) -> None:
        dels = []
        for part, src in (("sys", system.get("vals") or {}), ("mi", system.get("meminfo") or {}),
                          ("vm", system.get("vmstat") or {})):
            prev = self._sys[part]
            changed = {}
            for k, v in src.items():
                if type(v) not in _PLAIN:
                    v = _json_value(v)
                if key or prev.get(k, _MISSING) != v:
                    changed[k] = v
                    prev[k] = v
            for k in [k for k in prev if k not in src]:
                del prev[k]
                dels.append([part, k])
            if changed:
                head[part] = changed
        if dels:
            head["sysdel"] = dels
        head["so"] = [float(x) for x in system.get("swapout", (0.0, 0.0, 0.0))]


_MISSING = object()
_PLAIN = frozenset((int, float, str, bool))   # JSON values as they are (no conversion)


# ---- decoding -------------------------------------------------------------------------------


@dataclass
class TickFrame:
    """A decoded tick. ``columns`` are views of the decoder's state: valid until the next
    ``decode`` (copy what you keep). ``rows_version`` changes whenever rows were added or
    removed or a row's cgroup id changed."""

    tick: int
    now: float
    wall: float
    n: int
    key: bool
    paths: dict[int, str]
    rows_version: int
    columns: dict[str, np.ndarray]
    system: dict
    fired: list
    starved: bool
    added: list
    removed: list
    read: list            # the columns this tick's snapshot held (read by some plugin)


class TickDecoder:
    """Decodes a segment's tick frames in order (``reset()`` at each segment). A malformed
    frame raises ``RecordingError`` and leaves the decoder unusable until ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cols: dict[str, np.ndarray] = {}
        self._paths: dict[int, str] = {}
        self._sys: dict[str, dict] = {"sys": {}, "mi": {}, "vm": {}}
        self._so = (0.0, 0.0, 0.0)
        self._version = 0
        self.started = False

    def decode(self, payload: bytes) -> TickFrame:
        try:
            return self._decode(payload)
        except RecordingError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
                struct.error, json.JSONDecodeError, UnicodeDecodeError, MemoryError, RecursionError) as e:
            raise RecordingError(f"malformed tick frame ({type(e).__name__}: {e})") from None

    def _decode(self, payload: bytes) -> TickFrame:
        if len(payload) < 4:
            raise RecordingError("malformed tick frame (short)")
        (hl,) = struct.unpack_from("<I", payload)
        if hl > len(payload) - 4:
            raise RecordingError("malformed tick frame (header length)")
        head = json.loads(payload[4:4 + hl].decode("utf-8", "surrogateescape"))
        if not isinstance(head, dict):
            raise RecordingError("malformed tick frame (header)")
        key = bool(head.get("key"))
        if key:
            self.reset()
        elif not self.started:
            raise RecordingError("tick frame before the segment's key frame")
        tick = int(head["t"])
        now = float(head["now"])
        wall = float(head["wall"])
        n = int(head["n"])
        if not 0 <= n <= MAX_SLOTS:
            raise RecordingError(f"malformed tick frame (row slots {n})")
        added = head.get("add") or []
        removed = head.get("del") or []
        if added or removed:
            for slot in removed:
                self._paths.pop(int(slot), None)
            for slot, path in added:
                if not isinstance(path, str) or not 0 <= int(slot) < MAX_SLOTS:
                    raise RecordingError("malformed tick frame (row)")
                self._paths[int(slot)] = path
            self._version += 1
        for part in ("sys", "mi", "vm"):
            ch = head.get(part)
            if ch:
                if not isinstance(ch, dict):
                    raise RecordingError("malformed tick frame (system)")
                self._sys[part].update(ch)
        for part, k in head.get("sysdel") or []:
            self._sys[part].pop(k, None)
        so = head.get("so")
        if so is not None:
            self._so = (float(so[0]), float(so[1]), float(so[2]))
        pos = 4 + hl
        cgid_changed = False
        read: list[str] = []
        for entry in head.get("cols") or []:
            name, dts, tail, count, mlen, dlen = entry
            if not isinstance(name, str) or dts not in _DTYPES:
                raise RecordingError(f"malformed tick frame (column {name!r})")
            tail = tuple(int(x) for x in tail)
            if len(tail) > 1 or any(not 0 < x <= 64 for x in tail):
                raise RecordingError(f"malformed tick frame (column {name} shape)")
            dt = np.dtype(dts)
            width = dt.itemsize * (tail[0] if tail else 1)
            count, mlen, dlen = int(count), int(mlen), int(dlen)
            read.append(name)
            if count == 0 and mlen == 0 and dlen == 0:
                self._column(name, dt, tail, n)
                continue
            if mlen != (n + 7) // 8 or dlen != count * width or pos + mlen + dlen > len(payload):
                raise RecordingError(f"malformed tick frame (column {name} sizes)")
            ch = np.unpackbits(np.frombuffer(payload, np.uint8, mlen, pos), count=n).astype(bool)
            pos += mlen
            idx = np.flatnonzero(ch)
            if len(idx) != count:
                raise RecordingError(f"malformed tick frame (column {name} count)")
            vals = np.frombuffer(payload, dt, count * (tail[0] if tail else 1), pos)
            pos += dlen
            if tail:
                vals = vals.reshape(count, tail[0])
            col = self._column(name, dt, tail, n)
            col[idx] = vals
            if name == "cgid":
                cgid_changed = True
        if pos != len(payload):
            raise RecordingError("malformed tick frame (trailing bytes)")
        if cgid_changed:
            self._version += 1
        self.started = True
        columns = {}
        for name, col in self._cols.items():
            if len(col) < n:
                col = self._column(name, col.dtype, col.shape[1:], n)
            columns[name] = col[:n]
        fired = [(str(a), str(b)) for a, b in head.get("fired") or []]
        vals = dict(self._sys["sys"])
        for k in PSI_KEYS:
            v = vals.get(k)
            if v is not None:
                vals[k] = tuple(np.float32(x) for x in v)
        system = {"vals": vals, "meminfo": dict(self._sys["mi"]),
                  "vmstat": dict(self._sys["vm"]), "swapout": self._so}
        return TickFrame(tick, now, wall, n, key, self._paths, self._version, columns, system,
                         fired, bool(head.get("starved")), added, removed, read)

    def _column(self, name: str, dt: np.dtype, tail: tuple, n: int) -> np.ndarray:
        col = self._cols.get(name)
        if col is None or col.dtype != dt or col.shape[1:] != tail:
            col = np.zeros((max(n, 1),) + tail, dtype=dt)
            self._cols[name] = col
        elif len(col) < n:
            grown = np.zeros((max(n, 2 * len(col)),) + tail, dtype=dt)
            grown[:len(col)] = col
            col = self._cols[name] = grown
        return col
