"""The tick encoder's compiled loop (oomd.record._delta) against numpy doing the same, the
system parts the flight recorder leaves out, and the ring's uncompressed small frames."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from oomd.record import format as fmt
from oomd.record._delta import ColumnDeltas, delta
from oomd.record.reader import Recording
from oomd.record.replay_ctx import ReplayGap, ReplaySystem
from oomd.record.ticks import TickDecoder, TickEncoder
from oomd.record.writer import TickRing, base_meta

from test_record_format import PATHS, snap

SHAPES = [("<f4", (3,)), ("<i8", ()), ("<i8", (4,)), ("|u1", ()), ("|i1", ()), ("<u4", ()),
          ("<i4", ()), ("<f8", ()), ("<u8", ())]


def _reference(cur, prev, n):
    a = cur[:n].view(np.uint8).reshape(n, -1)
    b = prev[:n].view(np.uint8).reshape(n, -1)
    ch = (a != b).any(axis=1)
    return int(ch.sum()), np.packbits(ch).tobytes(), cur[:n][ch].tobytes()


@pytest.mark.parametrize("dts,tail", SHAPES)
def test_delta_matches_numpy_byte_for_byte(dts, tail):
    rng = np.random.default_rng(7)
    for n in (1, 7, 8, 9, 64, 1000):
        raw = rng.integers(0, 256, size=(n + 5) * np.dtype(dts).itemsize
                           * (tail[0] if tail else 1), dtype=np.uint8)
        cur = raw.view(dts).reshape((n + 5,) + tail)
        prev = cur.copy()
        flip = rng.random(n) < 0.3
        pv = prev.view(np.uint8).reshape(n + 5, -1)
        pv[:n][flip, -1] ^= 0x5A                  # last byte of a row: partial-row changes count
        want = _reference(cur, prev, n)
        before = prev.copy()
        got = delta(cur, prev, n)
        if want[0] == 0:
            assert got == (0, None, None)
        else:
            assert got == want
        assert prev[:n].tobytes() == cur[:n].tobytes()             # copied where changed
        assert prev[n:].tobytes() == before[n:].tobytes()          # nothing past n touched


def test_delta_compares_bytes_nan_and_negative_zero():
    cur = np.array([np.nan, -0.0, 1.0], dtype="<f4")
    prev = np.array([np.nan, 0.0, 1.0], dtype="<f4")
    count, mask, vals = delta(cur, prev, 3)
    assert count == 1 and mask == bytes([0b01000000])
    assert np.frombuffer(vals, "<f4").tobytes() == np.array([-0.0], "<f4").tobytes()
    assert delta(cur, prev, 3) == (0, None, None)


def test_delta_refuses_arrays_that_do_not_fit():
    with pytest.raises(ValueError):
        delta(np.zeros(4, "<i8"), np.zeros(3, "<i8"), 4)
    with pytest.raises(ValueError):
        delta(np.zeros((4, 3), "<f4"), np.zeros((4, 2), "<f4"), 4)
    with pytest.raises(ValueError):
        delta(np.zeros((4, 2))[:, 0], np.zeros(4), 4)            # not contiguous
    assert delta(np.zeros(0), np.zeros(0), 0) == (0, None, None)


def test_column_deltas_entries_and_growth():
    cd = ColumnDeltas()
    cols = {"a": np.arange(3, dtype="<i8"), "b": np.zeros((3, 3), "<f4"),
            "c": np.arange(6, dtype="<i8")[::2]}                  # a strided view is copied
    entries, blobs = cd.encode(cols, 3)
    assert entries[0] == '["a","<i8",[],2,1,16]'                 # rows 1 and 2 differ from zeros
    assert entries[1] == '["b","<f4",[3],0,0,0]'
    assert entries[2] == '["c","<i8",[],2,1,16]'
    assert blobs[0] == bytes([0b01100000])
    entries, blobs = cd.encode(cols, 3, skip=("a",))
    assert entries == ['["a","<i8",[],0,0,0]', '["b","<f4",[3],0,0,0]', '["c","<i8",[],0,0,0]']
    grown = {"a": np.arange(40, dtype="<i8")}
    entries, blobs = cd.encode(grown, 40)                        # more rows than kept: grows
    assert entries == ['["a","<i8",[],37,5,296]'] and len(blobs[1]) == 296


def test_flight_capture_leaves_out_system_parts_no_plugin_read():
    enc, dec = TickEncoder(), TickDecoder()
    s1 = snap(1, PATHS, [1, 2, 3])
    got = dec.decode(enc.encode(s1))
    assert got.system["vals"]["mem_total"] == 1 << 30 and not got.system["unread"]
    s2 = snap(2, PATHS, [1, 2, 3])
    s2.system = {"vals": None, "meminfo": None, "vmstat": None, "swapout": (1.0, 2.0, 3.0),
                 "unread": {"sys", "vm"}}
    payload = enc.encode(s2)
    assert b'"ns":["sys","vm"]' in payload
    got = dec.decode(payload)
    assert got.system["unread"] == {"sys", "vm"} and got.system["vals"] == {}
    assert got.system["swapout"] == (1.0, 2.0, 3.0)
    # a replay asking for what was not recorded stops on a gap (never a silent None)
    gaps = []

    def fail(gap):
        gaps.append(gap)
        raise gap

    system = ReplaySystem(got.system, fail, got.tick)
    with pytest.raises(ReplayGap, match="system value not recorded.*mem_total"):
        system.mem_total
    with pytest.raises(ReplayGap):
        system.vmstat
    # the next recorded tick applies on top of the last recorded state
    s3 = snap(3, PATHS, [1, 2, 3])
    s3.system["vals"] = dict(s3.system["vals"], mem_total=2 << 30)
    got = dec.decode(enc.encode(s3))
    assert got.system["vals"]["mem_total"] == 2 << 30
    assert got.system["vals"]["mem_full"] == (np.float32(1.5), np.float32(2), np.float32(3))
    assert got.system["vmstat"] == {"pswpout": 3}


def test_ring_keeps_small_frames_raw_and_writes_them_compressed(tmp_path):
    ring = TickRing(6, keyframe_every=4)
    for t in range(1, 20):
        ring.add(snap(t, PATHS, [1, 2, t]))
    frames = ring.frames()
    assert len(frames) == len(ring) >= 6
    assert all(fmt.FRAME_HEADER.unpack_from(f)[2] == 0 for f in frames)   # uncompressed
    path = str(tmp_path / "f.pyoomdrec")
    ring.write(path, base_meta())
    data = open(path, "rb").read()
    scan = fmt.scan_segment(path)
    assert all(fr.kind != fmt.TICK or
               fmt.FRAME_HEADER.unpack_from(data, fr.offset)[2] & fmt.FLAG_ZSTD
               for fr in scan.frames)
    assert [f.tick for f in Recording.open(path).ticks()][-6:] == list(range(14, 20))
    assert fmt.compressed(frames[0]) != frames[0]
    assert fmt.compressed(fmt.compressed(frames[0])) == fmt.compressed(frames[0])
    big = fmt.encode_frame(fmt.TICK, zlib.compress(b"x"))          # already compressed: as is
    assert fmt.compressed(big) == big


def test_zlib_frames_of_the_first_recordings_still_read():
    payload = b'{"victim": "a"}'
    body = zlib.compress(payload, 1)
    head = fmt.FRAME_HEADER.pack(fmt.FRAME_MAGIC, fmt.DECISION, fmt.FLAG_ZLIB, 0, len(body), 0)[:12]
    frame = head + zlib.crc32(body, zlib.crc32(head)).to_bytes(4, "little") + body
    (got,) = list(fmt.iter_frames(fmt.segment_header() + frame))
    assert got.payload == payload
    # both flags at once, or a zstd frame that lies about its size: damage, not a frame
    bad = bytearray(frame)
    bad[5] = fmt.FLAG_ZLIB | fmt.FLAG_ZSTD
    bad[12:16] = zlib.crc32(body, zlib.crc32(bytes(bad[:12]))).to_bytes(4, "little")
    scan = fmt.FrameScan("x", 1, size=0)
    assert list(fmt.iter_frames(fmt.segment_header() + bytes(bad), scan=scan)) == []
    assert "flags" in scan.torn[1]


MEMINFO = b"MemTotal:       16333780 kB\nMemFree:          812345 kB\nHugePages_Total:       0\n"
VMSTAT = b"nr_free_pages 203086\npswpin 0\npswpout %d\nbogus line here\npgscan_kswapd 77\n"


def _raw_snap(tick, meminfo, vmstat):
    s = snap(tick, PATHS, [1, 2, 3])
    s.system = {"vals": {"mem_total": 1}, "meminfo_raw": meminfo, "vmstat_raw": vmstat,
                "swapout": (0.0, 0.0, 0.0), "unread": set()}
    return s


def test_meminfo_and_vmstat_are_recorded_as_changed_values_and_read_back_as_parsed():
    from oomd import _fastcg

    enc, dec = TickEncoder(), TickDecoder()
    sizes = []
    files = [(MEMINFO, VMSTAT % 5), (MEMINFO, VMSTAT % 5), (MEMINFO.replace(b"812345", b"812000"),
             VMSTAT % 6), (MEMINFO + b"Shmem:    12 kB\n", VMSTAT % 6)]
    for t, (mi, vm) in enumerate(files, 1):
        payload = enc.encode(_raw_snap(t, mi, vm))
        sizes.append(len(payload))
        got = dec.decode(payload)
        assert got.system["meminfo"] == _fastcg.parse_meminfo_dict(mi)
        assert got.system["vmstat"] == _fastcg.parse_vmstat_dict(vm)[0]
    assert sizes[1] < sizes[0] and sizes[2] < sizes[0]       # unchanged / one value: no names
    names, vals = _fastcg.system_values(VMSTAT % 9, False)
    assert names == b"nr_free_pages\0pswpin\0pswpout\0pgscan_kswapd\0"
    assert list(vals) == [203086, 0, 9, 77]


def test_recordings_with_the_files_as_read_still_decode():
    """Frames of the first format revision carry /proc/meminfo and vmstat as read ("mr"/"vr")."""
    import json
    import struct

    from oomd import _fastcg

    enc, dec = TickEncoder(), TickDecoder()
    payload = enc.encode(snap(1, PATHS, [1, 2, 3]))
    hl = struct.unpack_from("<I", payload)[0]
    head = json.loads(payload[4:4 + hl])
    head.update({"mr": len(MEMINFO), "vr": len(VMSTAT % 3)})
    hj = json.dumps(head).encode()
    old = struct.pack("<I", len(hj)) + hj + MEMINFO + (VMSTAT % 3) + payload[4 + hl:]
    got = dec.decode(old)
    assert got.system["meminfo"] == _fastcg.parse_meminfo_dict(MEMINFO)
    assert got.system["vmstat"]["pswpout"] == 3


def test_a_large_frame_is_compressed_part_by_part_with_its_size_in_the_header():
    import zstandard

    parts = [b"x" * 20000, np.arange(100000, dtype=np.int64).view(np.uint8), b"tail"]
    frame = fmt.encode_frame_parts(fmt.TICK, parts)
    assert zstandard.frame_content_size(frame[fmt.FRAME_HEADER.size:]) == 820004
    (got,) = list(fmt.iter_frames(fmt.segment_header() + frame))
    assert got.payload == b"".join(bytes(memoryview(p)) for p in parts)


def test_version_1_segments_still_read(tmp_path):
    ring = TickRing(3, keyframe_every=3)
    for t in range(1, 5):
        ring.add(snap(t, PATHS, [1, 2, t]))
    path = tmp_path / "v1.pyoomdrec"
    ring.write(str(path), base_meta())
    data = bytearray(path.read_bytes())
    assert data[8:10] == fmt.FORMAT_VERSION.to_bytes(2, "little") and fmt.FORMAT_VERSION == 2
    data[8:10] = (1).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    assert [f.tick for f in Recording.open(str(path)).ticks()][-1] == 4
