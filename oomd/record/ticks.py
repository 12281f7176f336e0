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
     "lst": [[slot, [child name, ...]], ...]   (listed child directories that are not rows,
                                              the whole map, when it changed),
     "sys": {key: value} (the reader's system values that changed),
     "mk": [name, ...], "vk": [name, ...]   (/proc/meminfo's and /proc/vmstat's names, in the
                                             file's order, when they changed),
     "mv": [count, mask bytes, value bytes], "vv": [...]   (their values that changed, int64,
                                             as a column's: the first binary sections, meminfo
                                             first; "mr"/"vr": the file as read instead, older
                                             recordings or a value beyond int64),
     "sysdel": [[part, key], ...], "so": [bps, bps60, bps300],
     "ns": ["sys", "vm"]   (system parts not recorded at this tick: no plugin read them; the
                            flight recorder leaves them out, ``--record`` never does),
     "fired": [[ruleset label, detector group], ...], "starved": bool,
     "cols": [[name, dtype, [tail shape], changed rows, mask bytes, data bytes], ...]}

Every column of the snapshot is listed, unchanged ones with zeros (so the decoder knows what
this tick read); a listed column with changes is followed by its row bitmap (``packbits``, n
bits) and the changed rows' values, C order.
"""

from __future__ import annotations

import json
import math
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from oomd import _fastcg
from oomd.context.metric_table import METRICS
from oomd.record._delta import ColumnDeltas, delta
from oomd.record.format import RecordingError, encode_json

# ---- which columns a tick frame holds -----------------------------------------------------------

IDENTITY_COLUMNS = ("cgid", "parent", "valid", "loaded", "status", "nchild")
MAX_SLOTS = 1 << 22
_DTYPES = frozenset(("|u1", "|i1", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"))
PSI_KEYS = ("mem_some", "mem_full", "io_some", "io_full")


def _loaded_bits() -> dict[str, int]:
    """Reader column -> the ``loaded`` bits that mean some row read it this tick."""
    need: dict[str, int] = {}
    for m in METRICS.values():
        if m.column is None or m.column in IDENTITY_COLUMNS:
            continue
        # a derived column holds this tick's values only where it was computed (its D bit)
        bits = m.kinds if m.derive is None else 1 << _fastcg.D[m.derive]
        need[m.column] = need.get(m.column, 0) | bits
    return need


DATA_COLUMNS: dict[str, int] = _loaded_bits()

# dtype and per-row shape of every column the encoder writes (the reader's, oomd/_reader/table)
_I8, _F4, _F8, _U1 = "<i8", "<f4", "<f8", "|u1"
COLUMN_TYPES: dict[str, tuple[str, tuple]] = {
    "cgid": ("<u8", ()), "parent": ("<i4", ()), "valid": ("<u8", ()), "loaded": ("<u4", ()),
    "status": (_U1, ()), "nchild": ("<i4", ()),
    "mem_some": (_F4, (3,)), "mem_full": (_F4, (3,)), "io_some": (_F4, (3,)),
    "io_full": (_F4, (3,)), "psi_total": (_I8, (4,)), "populated": (_U1, ()),
    "oom_group": (_U1, ()), "kill_preference": ("|i1", ()), "io_cost_cumulative": (_F8, ()),
    "io_cost_rate": (_F8, ()), "effective_swap_util_pct": (_F8, ()),
}


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
    listings_version: int = 0
    unopened: dict = field(default_factory=dict)   # row -> child dirs listed but not rows

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
        self._unopened: dict[int, list[str]] = {}
        self._lversion = 0

    def capture(self, ctx, fired=(), wall: float | None = None, copy: bool = True,
                only_read_system: bool = False) -> TickSnapshot:
        """This tick's snapshot. ``copy=False``: the columns are views of the reader's, valid
        until the context's next refresh (encode them before: ``Recorder.tick`` and
        ``TickRing.add`` do). ``only_read_system`` (the flight recorder): the system files
        no plugin read this tick are not read for it, and the frame says they were not
        recorded (``SystemContext.snapshot``)."""
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
            unopened = {r: names for r, names in ctx.unopened_children().items() if r < n}
            if unopened != self._unopened:
                self._unopened = unopened
                self._lversion += 1
        loaded = cols["loaded"][:n]
        any_loaded = int(np.bitwise_or.reduce(loaded)) if n else 0
        out: dict[str, np.ndarray] = {}
        for name in IDENTITY_COLUMNS:
            out[name] = self._nchild if name == "nchild" else cols[name][:n]
        for name, bits in DATA_COLUMNS.items():
            if any_loaded & bits:
                out[name] = cols[name][:n]
        if copy:
            out = {name: a.copy() for name, a in out.items()}
        return TickSnapshot(
            tick=ctx.tick, now=float(ctx.now), wall=time.time() if wall is None else wall, n=n,
            rows_version=self._rows_version, paths=self._paths, columns=out,
            system=ctx.system.snapshot(only_read_system), fired=list(fired), starved=bool(ctx.starved),
            listings_version=self._lversion, unopened=self._unopened)


# ---- encoding -------------------------------------------------------------------------------


def _head_rest(head: dict) -> bytes:
    """The header's optional keys as the end of a JSON object (``,"k":v...}``). A steady tick
    has only the swap-out rates and the unrecorded system parts: written without json."""
    if head.keys() <= {"so", "ns"}:
        so = head.get("so")
        ns = head.get("ns")
        out = b""
        if so is not None and all(math.isfinite(x) for x in so):
            out += b',"so":[%s]' % ",".join(map(repr, so)).encode()
        elif so is not None:
            out += b',"so":' + encode_json(so)
        if ns is not None:
            out += b',"ns":[%s]' % ",".join('"%s"' % x for x in ns).encode()
        return out + b"}"
    return b"," + encode_json(head)[1:] if head else b"}"


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
        self._cols = ColumnDeltas()
        self._paths: dict[int, str] = {}
        self._version = None
        self._lversion = None
        self._sys: dict[str, dict] = {"sys": {}, "mi": {}, "vm": {}}
        self._raw: dict[str, bytes] = {}
        self._sv: dict[str, tuple] = {}       # "m"/"v" -> (names as system_values gives them, last values)
        self._raw_vals: dict = {}
        self._n = -1
        self._nchild = None
        self._key = True

    @property
    def next_is_key(self) -> bool:
        return self._key

    def encode(self, s: TickSnapshot) -> bytes:
        """The tick frame's payload."""
        return b"".join(bytes(memoryview(p)) if not isinstance(p, bytes) else p
                        for p in self.encode_parts(s))

    def encode_parts(self, s: TickSnapshot) -> list:
        """The payload as a list of buffers (bytes and C-contiguous arrays) that concatenate
        to ``encode(s)``: for ``format.encode_frame_parts``, which compresses them without
        copying them together first."""
        key = self._key
        self._key = False
        n = s.n
        head: dict = {}     # what the frame has beyond its fixed fields and columns
        if key or s.rows_version != self._version:
            old = {} if key else self._paths
            new = s.paths
            head["add"] = [[slot, p] for slot, p in new.items() if old.get(slot) != p]
            head["del"] = [slot for slot in old if slot not in new]
            self._paths = new
            self._version = s.rows_version
        if key or s.listings_version != self._lversion:
            head["lst"] = [[slot, list(names)] for slot, names in s.unopened.items()]
            self._lversion = s.listings_version
        raw_blobs = self._encode_system(s.system, head, key)
        if s.fired:
            head["fired"] = [list(x) for x in s.fired]
        if s.starved:
            head["starved"] = True
        rows_same = not key and "add" not in head and n == self._n
        self._n = n
        skip = ()
        nchild = s.columns.get("nchild")
        if rows_same:
            # the same rows (cgroup ids change only with them); the capturer's same array
            skip = ("cgid", "nchild") if nchild is self._nchild else ("cgid",)
        self._nchild = nchild
        cols, blobs = self._cols.encode(s.columns, n, skip)
        # the header as text: a few numbers, what json gives for the rest, the column entries
        hj = b"".join((b'{"t":%d,"now":%s,"wall":%s,"n":%d,"key":%s' % (
            s.tick, repr(float(s.now)).encode(), repr(float(s.wall)).encode(), n,
            b"true" if key else b"false"), b',"cols":[', ",".join(cols).encode(), b"]",
            _head_rest(head)))
        return [struct.pack("<I", len(hj)) + hj, *raw_blobs, *blobs]

    def _encode_system(self, system: dict, head: dict, key: bool) -> list[bytes]:
        """The system values into the header; returns the binary sections of /proc/meminfo
        and /proc/vmstat: their values (int64, in the file's order) that changed since the
        last frame, as a column's (``"mv"``/``"vv"``: count, mask bytes, value bytes; the names
        in ``"mk"``/``"vk"`` when they changed), meminfo first."""
        blobs = []
        unread = system.get("unread") or ()
        if unread:
            # parts no plugin read this tick: not recorded, and the state they are diffed
            # against stays as it was at the last tick that recorded them
            head["ns"] = sorted(unread)
        for tag, part, name in (("m", "mi", "meminfo_raw"), ("v", "vm", "vmstat_raw")):
            raw = system.get(name)
            if raw is None or (not key and raw == self._raw.get(tag)):
                continue
            self._raw[tag] = raw
            blob, vals = _fastcg.system_values(raw, part == "mi")
            kept = self._sv.get(tag)
            if key or kept is None or kept[0] != blob:
                names = [x.decode("utf-8", "surrogateescape") for x in blob.split(b"\0")[:-1]]
                if len(set(names)) != len(names):
                    # a name twice (never seen): the file as read, parsed as live
                    head[tag + "r"] = len(raw)
                    blobs.append(raw)
                    self._sv.pop(tag, None)
                    continue
                head[tag + "k"] = names
                kept = self._sv[tag] = (blob, np.zeros(max(len(names), 1), np.int64))
            count, mask, data = delta(vals, kept[1], len(vals))
            if count:
                head[tag + "v"] = [count, len(mask), len(data)]
                blobs.append(mask)
                blobs.append(data)
        dels = []
        for part, src in (("sys", system.get("vals") or {}), ("mi", system.get("meminfo") or {}),
                          ("vm", system.get("vmstat") or {})):
            if part in unread:
                continue
            prev = self._sys[part]
            if part == "sys":
                # the reader's values (PSI as tuples of float32): compared as read, converted
                # for JSON only when they changed
                last, self._raw_vals = self._raw_vals, src
                changed = {k: _json_value(v) for k, v in src.items()
                           if key or k not in last or _differ(last[k], v)}
            else:
                # meminfo and vmstat dicts hold ints: compared as they are
                changed = src if key else {k: v for k, v in src.items()
                                           if prev.get(k, _MISSING) != v}
            if changed:
                prev.update(changed)
                head[part] = changed
            if len(prev) != len(src):
                for k in [k for k in prev if k not in src]:
                    del prev[k]
                    dels.append([part, k])
        if dels:
            head["sysdel"] = dels
        head["so"] = [float(x) for x in system.get("swapout", (0.0, 0.0, 0.0))]
        return blobs


_MISSING = object()


def _differ(a, b) -> bool:
    return type(a) is not type(b) or bool(a != b)


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
    unopened: dict        # row -> child directories its listing showed that are not rows


def _parse_system_file(part: str, raw: bytes) -> dict:
    """A recorded /proc/meminfo or /proc/vmstat, parsed as the live SystemContext parses it."""
    if part == "mi":
        return _fastcg.parse_meminfo_dict(raw)
    return _fastcg.parse_vmstat_dict(raw)[0]


class TickDecoder:
    """Decodes a segment's tick frames in order (``reset()`` at each segment). A malformed
    frame raises ``RecordingError`` and leaves the decoder unusable until ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cols: dict[str, np.ndarray] = {}
        self._paths: dict[int, str] = {}
        self._unopened: dict[int, list[str]] = {}
        self._sys: dict[str, dict] = {"sys": {}, "mi": {}, "vm": {}}
        self._so = (0.0, 0.0, 0.0)
        self._sv: dict[str, tuple] = {}       # "m"/"v" -> (names, values)
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
        lst = head.get("lst")
        if lst is not None:
            unopened = {}
            for slot, names in lst:
                if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                    raise RecordingError("malformed tick frame (listing)")
                unopened[int(slot)] = names
            self._unopened = unopened
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
        for tag, part in (("m", "mi"), ("v", "vm")):
            size = head.get(tag + "r")
            if size is not None:
                # the file as read (what recordings before the values encoding hold)
                size = int(size)
                if not 0 <= size <= len(payload) - pos:
                    raise RecordingError("malformed tick frame (system file length)")
                raw = bytes(payload[pos:pos + size])
                pos += size
                self._sys[part] = _parse_system_file(part, raw)
                self._sv.pop(tag, None)
                continue
            names = head.get(tag + "k")
            if names is not None:
                if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                    raise RecordingError("malformed tick frame (system names)")
                self._sv[tag] = (names, np.zeros(len(names), np.int64))
            ch = head.get(tag + "v")
            if ch is not None:
                kept = self._sv.get(tag)
                if kept is None:
                    raise RecordingError("malformed tick frame (system values without names)")
                count, mlen, dlen = (int(x) for x in ch)
                k = len(kept[0])
                if mlen != (k + 7) // 8 or dlen != 8 * count or pos + mlen + dlen > len(payload):
                    raise RecordingError("malformed tick frame (system values sizes)")
                idx = np.flatnonzero(np.unpackbits(np.frombuffer(payload, np.uint8, mlen, pos),
                                                   count=k))
                pos += mlen
                if len(idx) != count:
                    raise RecordingError("malformed tick frame (system values count)")
                kept[1][idx] = np.frombuffer(payload, "<i8", count, pos)
                pos += dlen
            if names is not None or ch is not None:
                kept = self._sv[tag]
                self._sys[part] = dict(zip(kept[0], kept[1].tolist()))
        cgid_changed = False
        read: list[str] = []
        for entry in head.get("cols") or []:
            name, dts, tail, count, mlen, dlen = entry
            if not isinstance(name, str) or dts not in _DTYPES:
                raise RecordingError(f"malformed tick frame (column {name!r})")
            tail = tuple(int(x) for x in tail)
            if len(tail) > 1 or any(not 0 < x <= 64 for x in tail):
                raise RecordingError(f"malformed tick frame (column {name} shape)")
            want = COLUMN_TYPES.get(name)
            if want is None and name == "memory_stat":
                want = (_I8, tail)
            if (want or (_I8, ())) != (dts, tail) and (want is not None or name in DATA_COLUMNS):
                raise RecordingError(f"malformed tick frame (column {name} type)")
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
        for name in IDENTITY_COLUMNS:
            if name not in self._cols:
                raise RecordingError(f"malformed tick frame (no {name} column)")
        if self._paths and max(self._paths) >= n:
            raise RecordingError("malformed tick frame (a row beyond the row slots)")
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
        unread = head.get("ns", [])
        if not isinstance(unread, list) or not set(unread) <= {"sys", "vm"}:
            raise RecordingError("malformed tick frame (unrecorded system parts)")
        unread = frozenset(unread)
        # parts not recorded at this tick (no plugin read them live) are empty for it; the
        # state that later ticks' changes apply to is kept
        system = {"vals": {} if "sys" in unread else vals,
                  "meminfo": {} if "sys" in unread else dict(self._sys["mi"]),
                  "vmstat": {} if "vm" in unread else dict(self._sys["vm"]),
                  "swapout": self._so, "unread": unread}
        return TickFrame(tick, now, wall, n, key, self._paths, self._version, columns, system,
                         fired, bool(head.get("starved")), added, removed, read,
                         self._unopened)

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
