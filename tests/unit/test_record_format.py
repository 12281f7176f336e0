"""The recording format: frames, tick encoding ("unchanged" rows and columns), segments, torn
frames, the in-memory ring of the last ticks (oomd.record)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from oomd.record import format as fmt
from oomd.record.reader import Recording
from oomd.record.ticks import TickDecoder, TickEncoder, TickSnapshot
from oomd.record.writer import Recorder, TickRing, base_meta


def snap(tick, paths, current, *, version=1, valid=None, pressure=None, fired=()):
    n = len(current)
    cols = {
        "cgid": np.arange(100, 100 + n, dtype=np.uint64),
        "parent": np.array([-1] + [0] * (n - 1), dtype=np.int32),
        "valid": np.full(n, 1, dtype=np.uint64) if valid is None else np.asarray(valid, np.uint64),
        "loaded": np.full(n, 1, dtype=np.uint32),
        "status": np.zeros(n, dtype=np.uint8),
        "nchild": np.array([n - 1] + [0] * (n - 1), dtype=np.int32),
        "current": np.asarray(current, dtype=np.int64),
    }
    if pressure is not None:
        cols["mem_full"] = np.asarray(pressure, dtype=np.float32)
    system = {"vals": {"mem_total": 1 << 30, "mem_full": (np.float32(1.5), np.float32(2), np.float32(3))},
              "meminfo": {"MemTotal": 1 << 30}, "vmstat": {"pswpout": tick},
              "swapout": (0.0, 0.0, 0.0)}
    return TickSnapshot(tick=tick, now=100.0 + tick, wall=1e9 + tick, n=n, rows_version=version,
                        paths=paths, columns=cols, system=system, fired=list(fired))


PATHS = {0: "", 1: "a", 2: "b"}


def test_ticks_round_trip_through_encoder_and_decoder():
    enc, dec = TickEncoder(), TickDecoder()
    pressure = [[0, 0, 0], [1.25, 2, 3], [np.nan, -0.0, 7]]
    frames = [snap(1, PATHS, [10, 20, 30], pressure=pressure, fired=[("r", "g")]),
              snap(2, PATHS, [10, 21, 30], pressure=pressure),
              snap(3, {0: "", 1: "a", 3: "c\udcff"}, [10, 21, 30, 40], version=2)]
    for s in frames:
        got = dec.decode(enc.encode(s))
        assert got.tick == s.tick and got.now == s.now and got.n == s.n
        assert got.paths == s.paths
        for name, a in s.columns.items():
            assert got.columns[name].tobytes() == a.tobytes(), name
        assert got.system["vals"]["mem_full"] == (np.float32(1.5), np.float32(2), np.float32(3))
        assert got.system["vmstat"] == {"pswpout": s.tick}
        assert got.fired == [tuple(x) for x in s.fired]
    # not read on tick 3: the decoder keeps the last values (valid/loaded say what is current)
    assert "mem_full" in got.columns


def test_unchanged_rows_and_columns_are_not_stored():
    enc = TickEncoder()
    first = enc.encode(snap(1, PATHS, [10, 20, 30]))
    same = enc.encode(snap(2, PATHS, [10, 20, 30]))
    one = enc.encode(snap(3, PATHS, [10, 20, 31]))
    assert len(same) < len(first)
    assert b'["current","<i8",[],0,0,0]' in same      # listed (read), nothing stored
    assert len(same) == 4 + int.from_bytes(same[:4], "little")   # no binary section at all
    assert b'"current","<i8",[],1,1,8' in one


def test_key_frame_after_reset_stands_alone():
    enc = TickEncoder()
    enc.encode(snap(1, PATHS, [1, 2, 3]))
    enc.reset()
    payload = enc.encode(snap(2, PATHS, [1, 2, 4]))
    got = TickDecoder().decode(payload)
    assert got.key and got.paths == PATHS
    assert list(got.columns["current"]) == [1, 2, 4]


def test_delta_frame_without_key_frame_is_refused():
    enc = TickEncoder()
    enc.encode(snap(1, PATHS, [1, 2, 3]))
    payload = enc.encode(snap(2, PATHS, [1, 2, 4]))
    with pytest.raises(fmt.RecordingError, match="before the segment's key frame"):
        TickDecoder().decode(payload)


def test_frame_checksum_detects_a_flipped_bit():
    frame = bytearray(fmt.encode_frame(fmt.DECISION, b'{"victim":"a"}'))
    frame[-3] ^= 0x10
    scan = fmt.FrameScan("x")
    assert list(fmt.iter_frames(bytes(frame), 0, scan)) == []
    assert scan.torn == (0, "frame checksum mismatch")


def _record(tmp_path, ticks, **kw):
    rec = Recorder(str(tmp_path / "rec"), base_meta(cgroup_fs="/x"), **kw)
    for t in range(1, ticks + 1):
        assert rec.tick(snap(t, PATHS, [1, 2, t]))
        rec.flush()
    rec.decision({"tick": ticks, "victim": "a", "ruleset": "r"})
    rec.close()
    return rec


def test_recorder_writes_segments_that_read_back(tmp_path):
    _record(tmp_path, 20)
    r = Recording.open(str(tmp_path / "rec"))
    kinds = [e.kind for e in r.events()]
    assert kinds[0] == "meta" and kinds.count("tick") == 20 and "decision" in kinds
    assert [f.tick for f in r.ticks()] == list(range(1, 21))
    assert r.problems == []


def test_reader_keeps_everything_before_a_torn_last_frame(tmp_path):
    _record(tmp_path, 10)
    (seg,) = [p for p in os.listdir(tmp_path / "rec")]
    path = tmp_path / "rec" / seg
    data = path.read_bytes()
    path.write_bytes(data[:-7])           # the last frame (the end note) torn
    r = Recording.open(str(tmp_path / "rec"))
    assert [f.tick for f in r.ticks()] == list(range(1, 11))
    assert len(r.problems) == 1 and "truncated frame" in r.problems[0]


def test_segments_rotate_and_the_oldest_go_beyond_max_bytes(tmp_path):
    rec = Recorder(str(tmp_path / "rec"), base_meta(), max_bytes=256 << 10,
                   segment_bytes=8 << 10)
    paths = {i: f"c{i}" if i else "" for i in range(200)}
    for t in range(1, 400):
        rec.tick(snap(t, paths, list(np.random.default_rng(t).integers(0, 1 << 60, 200))))
        rec.flush()
    rec.close()
    files = sorted(os.listdir(tmp_path / "rec"))
    assert len(files) > 2 and files[0] != "seg-00000001.pyoomdrec"
    assert sum(os.path.getsize(tmp_path / "rec" / f) for f in files) <= 256 << 10
    ticks = [f.tick for f in Recording.open(str(tmp_path / "rec")).ticks()]
    assert ticks == list(range(ticks[0], 400))     # whole segments, each from a key frame


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    lines = []
    rec = Recorder(str(tmp_path / "rec"), base_meta(), queue_ticks=2, start=False,
                   log=lambda msg, *a: lines.append(msg))
    results = [rec.tick(snap(t, PATHS, [1, 2, t])) for t in range(1, 6)]
    assert results == [True, True, False, False, False]
    assert rec.dropped == 3 and len(lines) == 1 and "dropping tick frames" in lines[0]
    rec.close()
    r = Recording.open(str(tmp_path / "rec"))
    notes = [e.data for e in r.events() if e.kind == "note"]
    assert {"dropped": 3} in notes


def test_ring_keeps_the_last_ticks_and_writes_a_self_contained_file(tmp_path):
    ring = TickRing(5, keyframe_every=4)
    for t in range(1, 31):
        ring.add(snap(t, PATHS, [1, 2, t]))
    assert 5 <= len(ring) <= 5 + 4
    path = str(tmp_path / "flight.pyoomdrec")
    ring.write(path, base_meta(), [(fmt.DECISION, {"tick": 30, "victim": "b"})])
    r = Recording.open(path)
    ticks = list(r.ticks())
    assert [f.tick for f in ticks][-5:] == [26, 27, 28, 29, 30]
    assert list(ticks[-1].columns["current"]) == [1, 2, 30]
    assert [e.data for e in r.events() if e.kind == "decision"] == [{"tick": 30, "victim": "b"}]


def test_newer_format_version_is_a_clear_error(tmp_path):
    path = tmp_path / "new.pyoomdrec"
    path.write_bytes(fmt.segment_header(fmt.FORMAT_VERSION + 1))
    with pytest.raises(fmt.RecordingError, match="newer than this pyoomd reads"):
        Recording.open(str(path))


def test_full_disk_drops_frames_and_the_recording_goes_on_after(tmp_path, monkeypatch):
    import errno

    from oomd.record import writer

    lines = []
    rec = Recorder(str(tmp_path / "rec"), base_meta(), start=False,
                   log=lambda msg, *a: lines.append(msg))
    real_write = os.write
    full = {"on": False}

    def write(fd, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writer.os, "write", write)
    for t in range(1, 13):
        full["on"] = 5 <= t <= 8
        rec.tick(snap(t, PATHS, [1, 2, t]))
        rec._drain()
    rec.close()
    assert rec.dropped == 4 and len(lines) == 1 and "No space left" in lines[0]
    r = Recording.open(str(tmp_path / "rec"))
    assert [f.tick for f in r.ticks()] == [1, 2, 3, 4, 9, 10, 11, 12]
    assert {"dropped": 4} in [e.data for e in r.events() if e.kind == "note"]
    assert r.problems == []


def _nested(rng, depth=0):
    r = rng.random()
    if depth > 1 or r < 0.3:
        return rng.choice([1, -3, 2.5, None, True, "x\u00e9\"\\", (1, 2), "\udcff"])
    if r < 0.6:
        sizes = [0, 1, 3, 600] if depth else [0, 1, 3, 600, 5000]
        return [_nested(rng, depth + 1) for _ in range(rng.choice(sizes))]
    if r < 0.65:
        return {1: "int key", "long": list(range(700))}
    return {f"k{i}": _nested(rng, depth + 1) for i in range(rng.choice([0, 1, 4]))}


def test_json_frames_are_made_a_piece_at_a_time_with_the_same_text():
    """A decision record of 10,000s of candidates is encoded without its whole JSON text in
    memory: the pieces join to exactly ``encode_json``'s text, the frame decodes to it."""
    import random

    rng = random.Random(7)
    for _ in range(60):
        obj = _nested(rng)
        assert "".join(fmt.json_pieces(obj)).encode() == fmt.encode_json(obj)
    record = {"kind": "pyoomd.decision", "victim": "a/b", "peer_sets": [
        {"names": [f"workload.slice/job-{i // 100}/task-{i}" for i in range(20000)],
         "components": {"size": list(range(20000)), "ok": [i % 3 == 0 for i in range(20000)],
                        "rate": [i / 7 for i in range(20000)]},
         "filtered": [{"cgroup": f"c{i}", "reason": "r"} for i in range(1500)]},
        {"names": ["x"], "components": {"size": [1]}}], "visits": [{"cgroup": "a/b"}]}
    pieces = list(fmt.json_pieces(record))
    assert max(map(len, pieces)) < len(fmt.encode_json(record)) // 4
    frame = fmt.encode_json_frame(fmt.DECISION, record)
    (kind, payload), = [(f.kind, f.payload) for f in fmt.iter_frames(fmt.segment_header() + frame)]
    assert kind == fmt.DECISION and payload == fmt.encode_json(record)
    small = {"a": [1, 2]}
    assert fmt.encode_json_frame(fmt.DECISION, small) == fmt.encode_frame(
        fmt.DECISION, fmt.encode_json(small))
