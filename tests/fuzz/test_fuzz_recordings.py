"""Bad recordings (issue 15): truncated, bit-flipped, empty, not a recording, a newer format:
a clear error or the intact prefix, never a traceback; and a seeded mutation fuzzer over the
bytes of a real recording (``PYOOMD_RECORD_FUZZ_CASES``, default 10,000; the long run is the
same test with a bigger number).

Mutations are the ones damage and torn writes make (truncation, bit flips, overwritten,
inserted, deleted or duplicated byte runs), and half of the damaged frames get their CRC
recomputed, so the payload decoders see garbage that the container accepted."""

from __future__ import annotations

import json
import os
import random
import struct
import zlib

import zstandard
from pathlib import Path

import pytest

from oomd.commands import record_info as record_info_cmd
from oomd.commands import replay as replay_cmd
from oomd.record import format as fmt
from oomd.record.reader import Recording
from oomd.record.replay import replay
from oomd.testing import faketree
from oomd.testing.record_run import run_recorded
from oomd.testing.scenario import Scenario

CASES = int(os.environ.get("PYOOMD_RECORD_FUZZ_CASES", "10000"))
MB = 1 << 20

CONFIG = {"rulesets": [{
    "name": "r", "post_action_delay": 0,
    "detectors": [["g", {"name": "pressure_above", "args": {
        "cgroup": "work.slice", "resource": "memory", "threshold": "50", "duration": "0"}}]],
    "actions": [{"name": "kill_by_memory_size_or_growth", "args": {"cgroup": "work.slice/*"}}]}]}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A small real recording: 12 ticks, a cgroup appearing, kills from tick 5."""
    base = tmp_path_factory.mktemp("rec")
    tree = {"": faketree.cgroup(), "work.slice": faketree.cgroup(MB * 900),
            "work.slice/a": faketree.cgroup(300 * MB), "work.slice/b": faketree.cgroup(200 * MB)}
    trajectory = {t: {"work.slice/a": {"memory.current": f"{(300 + t) * MB}\n"}}
                  for t in range(2, 13)}
    trajectory[4]["work.slice/c\udcff"] = faketree.cgroup(100 * MB)
    for t in range(5, 13):
        trajectory[t]["work.slice"] = {"memory.pressure": faketree.psi(full=(80, 80, 80))}
    scenario = Scenario("fuzz-base", CONFIG, 12, tree, trajectory)
    live = run_recorded(scenario, base / "rec", base / "live")
    assert len(live.decisions) == 8
    (seg,) = os.listdir(base / "rec")
    (base / "config.json").write_text(json.dumps(CONFIG))
    return {"dir": base / "rec", "segment": base / "rec" / seg,
            "bytes": (base / "rec" / seg).read_bytes(), "config": base / "config.json",
            "decisions": live.decisions}


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, end) of each frame of a good segment."""
    out = []
    pos = fmt.SEGMENT_HEADER.size
    while pos < len(data):
        length = struct.unpack_from("<I", data, pos + 8)[0]
        end = pos + fmt.FRAME_HEADER.size + length
        out.append((pos, end))
        pos = end
    return out


def test_truncated_recording_keeps_the_whole_frames_before_the_cut(recording, tmp_path):
    data = recording["bytes"]
    frames = _frames(data)
    cut = (frames[6][0] + frames[6][1]) // 2          # in the middle of the 7th frame
    path = tmp_path / "cut.pyoomdrec"
    path.write_bytes(data[:cut])
    rec = Recording.open(str(path))
    events = list(rec.events())
    assert len(events) == 6
    assert rec.problems == [f"{path}: stopped at byte {frames[6][0]}: truncated frame; "
                            "the frames before it are used"]
    result = replay(str(path), str(recording["config"]))
    assert result.ticks == sum(1 for e in events if e.kind == "tick")
    assert result.problems == rec.problems


def test_bit_flip_ends_the_segment_at_the_damaged_frame(recording, tmp_path):
    data = bytearray(recording["bytes"])
    frames = _frames(bytes(data))
    start, end = frames[8]
    data[(start + end) // 2] ^= 0x04
    path = tmp_path / "flip.pyoomdrec"
    path.write_bytes(bytes(data))
    rec = Recording.open(str(path))
    assert len(list(rec.events())) == 8
    assert "frame checksum mismatch" in rec.problems[0]


def test_damaged_segment_does_not_hide_the_next_one(recording, tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    data = recording["bytes"]
    (d / "seg-00000001.pyoomdrec").write_bytes(data[: len(data) // 2])
    (d / "seg-00000002.pyoomdrec").write_bytes(data)
    rec = Recording.open(str(d))
    ticks = [f.tick for f in rec.ticks()]
    assert ticks[-12:] == list(range(1, 13)) and len(rec.problems) == 1


def test_empty_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "empty.pyoomdrec"
    path.write_bytes(b"")
    assert record_info_cmd.main([str(path)]) == 1
    assert capsys.readouterr().err == (
        f"pyoomd record-info: {path}: empty or truncated recording (no segment header)\n")


def test_directory_that_is_not_a_recording_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert replay_cmd.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"pyoomd replay: {tmp_path}: not a recording (no seg-*.pyoomdrec files in the "
        "directory)\n")


def test_file_that_is_not_a_recording_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    assert record_info_cmd.main([str(path)]) == 1
    assert capsys.readouterr().err == f"pyoomd record-info: {path}: not a pyoomd recording\n"


def test_newer_format_version_is_refused_with_both_versions(recording, tmp_path, capsys):
    data = bytearray(recording["bytes"])
    struct.pack_into("<H", data, 8, fmt.FORMAT_VERSION + 1)
    path = tmp_path / "newer.pyoomdrec"
    path.write_bytes(bytes(data))
    assert replay_cmd.main([str(path)]) == 1
    assert capsys.readouterr().err == (
        f"pyoomd replay: {path}: recording format version {fmt.FORMAT_VERSION + 1} is newer "
        f"than this pyoomd reads (version {fmt.FORMAT_VERSION}); use a newer pyoomd\n")


# ---- the fuzzer ------------------------------------------------------------------------------


def _fix_crcs(data: bytearray) -> None:
    """Recompute the CRC of every frame whose header still parses (the payload stays bad)."""
    pos = fmt.SEGMENT_HEADER.size
    while pos + fmt.FRAME_HEADER.size <= len(data):
        magic, _k, _f, _r, length, _crc = fmt.FRAME_HEADER.unpack_from(data, pos)
        end = pos + fmt.FRAME_HEADER.size + length
        if magic != fmt.FRAME_MAGIC or end > len(data):
            return
        body = bytes(data[pos + 16:end])
        struct.pack_into("<I", data, pos + 12, zlib.crc32(body, zlib.crc32(bytes(data[pos:pos + 12]))))
        pos = end


def _recompress_garbage(rng: random.Random, data: bytearray, frames) -> bytearray:
    """Replace one frame's payload by a mutated version of its decompressed payload,
    recompressed and with a correct CRC: the decoders see well-framed garbage."""
    start, end = rng.choice(frames)
    head = bytes(data[start:start + 16])
    kind, flags = head[4], head[5]
    body = bytes(data[start + 16:end])
    if flags & fmt.FLAG_ZSTD:
        body = zstandard.ZstdDecompressor().decompress(body)
    elif flags & fmt.FLAG_ZLIB:
        body = zlib.decompress(body)
    body = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        if body:
            i = rng.randrange(len(body))
            body[i] = rng.randrange(256) if rng.random() < 0.5 else body[i] ^ (1 << rng.randrange(8))
    if rng.random() < 0.2 and body:
        del body[rng.randrange(len(body)):]
    return bytearray(data[:start]) + fmt.encode_frame(kind, bytes(body)) + data[end:]


def mutate(rng: random.Random, data: bytes, frames) -> bytes:
    d = bytearray(data)
    op = rng.randrange(7)
    if op == 0:
        d = d[: rng.randrange(len(d))]
    elif op == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
    elif op == 2:
        i = rng.randrange(len(d))
        d[i:i + rng.randint(1, 32)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    elif op == 3:
        i = rng.randrange(len(d))
        del d[i:i + rng.randint(1, 64)]
    elif op == 4:
        i, j = sorted(rng.randrange(len(d)) for _ in range(2))
        d[i:i] = d[j:j + rng.randint(1, 200)]
    elif op == 5:
        return bytes(_recompress_garbage(rng, d, frames))
    else:
        a, b = rng.sample(frames, 2)
        d = d[:a[0]] + d[b[0]:b[1]] + d[a[0]:]        # a frame repeated out of order
    if rng.random() < 0.5:
        _fix_crcs(d)
    return bytes(d)


def test_fuzzed_recordings_never_raise_past_a_clear_error(recording, tmp_path):
    data = recording["bytes"]
    frames = _frames(data)
    rng = random.Random(15)
    path = tmp_path / "fuzz.pyoomdrec"
    outcomes = {"error": 0, "prefix": 0, "whole": 0}
    replayed = 0
    for case in range(CASES):
        path.write_bytes(mutate(rng, data, frames))
        try:
            rec = Recording.open(str(path))
        except fmt.RecordingError as e:
            assert str(e).startswith(str(path)), e
            outcomes["error"] += 1
            continue
        events = list(rec.events())
        outcomes["prefix" if rec.problems else "whole"] += 1
        for ev in events:
            assert ev.kind in ("meta", "tick", "decision", "config", "note")
        if (outcomes["prefix"] + outcomes["whole"]) % 100 == 1:
            replayed += 1
            try:
                replay(str(path), str(recording["config"]))
            except fmt.RecordingError:
                pass
    assert outcomes["error"] and outcomes["prefix"] and replayed >= CASES // 200
