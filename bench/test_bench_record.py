"""Recording benchmarks (issue 15), side by side in one run, at each tree size:

* the CPU a tick costs with ``--record``'s machinery (capture and encoding on the tick's
  thread, then the writer's write, drained on the same thread so that its CPU is in the
  sample) against the same tick without it, measured in turn on a tree whose counters
  (memory.current and memory.pressure of every leaf) change every tick;
* the bytes a recording takes per cgroup per tick on that tree, with zstd level 1 (what the
  writer uses) next to zlib levels 1 and 6 and lzma on the same encoded ticks;
* replay speed: ticks per second of ``oomd.record.replay.replay`` (the check pass and the run)
  over the recording just made, with the same config.

* whole daemons (what the issue's budget is about): three ``python -m oomd`` processes on the
  same ``--assume-cgroup2`` fake tree and typical config, measured from outside over the same
  window (utime+stime per second, ``--daemon-seconds``): as users run it (the flight recorder
  on), with ``--flight-recorder 0``, and with ``--record DIR``; once on the tree as it is and,
  at 1k, once while a thread of this process rewrites every leaf's memory.current and
  memory.pressure every second (its CPU is not the daemons').

The first three on in-process engine ticks of ``oomd.testing.gentree`` trees (the typical
config of ``benchlib.typical_config``). Peak RSS of the daemon with ``--record``:
``bench/daemon_rss.py --modes idle+record,ranking+record``.
"""

from __future__ import annotations

import lzma
import os
import statistics
import time
import zlib

import zstandard

from benchlib import RECORD_RESULTS, compile_engine, typical_config
from oomd import protect
from oomd.context import OomdContext, fd_budget_from_rlimit
from oomd.record.session import RecordSession, decision_metrics
from oomd.record.ticks import TickEncoder
from oomd.record.writer import Recorder, base_meta


class Churn:
    """Rewrites memory.current and memory.pressure of every leaf: new values every tick."""

    def __init__(self, tree) -> None:
        self.leaves = [os.fsencode(str(tree.root / rel)) for rel in tree.leaves]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        t = self.t
        for i, d in enumerate(self.leaves):
            cur = (64 << 20) + ((i * 7919 + t * 4099) % (256 << 20))
            a10 = (i + t) % 100
            psi = (b"some avg10=%d.00 avg60=%d.50 avg300=1.00 total=%d\n"
                   b"full avg10=%d.00 avg60=%d.25 avg300=0.50 total=%d\n"
                   % (a10, a10 // 2, t * 1000 + i, a10 // 2, a10 // 4, t * 500 + i))
            for name, data in ((b"/memory.current", b"%d\n" % cur), (b"/memory.pressure", psi)):
                fd = os.open(d + name, os.O_WRONLY | os.O_TRUNC)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)


class Ticker:
    """An engine and a context over the tree, optionally recording into ``record_dir``."""

    def __init__(self, tree, config, record_dir=None) -> None:
        self.now = 0.0
        self.ctx = OomdContext(str(tree.root), cache_files=True, interval=1,
                               fd_budget=fd_budget_from_rlimit() // 2)
        self.engine = compile_engine(tree.root, clock=lambda: self.now, config=config)
        self.session = None
        if record_dir is not None:
            self.recorder = Recorder(str(record_dir), base_meta(
                cgroup_fs=str(tree.root), interval=1, config=_json(config), config_file="x.json",
                compat="0.5.0", devices=[]), start=False, queue_ticks=1 << 20)
            self.session = RecordSession(self.recorder)
            self.engine.observer = self.session.observer(None)
            self.engine.extra_monitored = decision_metrics

    def tick(self) -> None:
        self.now += 1.0
        self.engine.tick(self.ctx)
        if self.session is not None:
            self.session.after_tick(self.ctx)
            self.recorder._drain()         # the writer thread's work, measured here

    def close(self) -> None:
        if self.session is not None:
            self.recorder.close()
        self.ctx.close()


def _json(config) -> str:
    import json

    return json.dumps(config)


def test_bench_recording_overhead_bytes_and_replay(tree, size, tmp_path):
    config = typical_config()
    ticks = 40 if size <= 2000 else 12
    churn = Churn(tree)
    plain = Ticker(tree, config)
    rec_dir = tmp_path / "rec"
    recorded = Ticker(tree, config, rec_dir)
    try:
        for _ in range(3):
            churn.step()
            plain.tick()
            recorded.tick()
        protect.freeze_gc()
        base_bytes = recorded.recorder.bytes_written
        plain_cpu, rec_cpu = [], []
        snaps = []
        for i in range(ticks):
            churn.step()
            first, second = (plain, recorded) if i % 2 == 0 else (recorded, plain)
            for t in (first, second):
                c = time.process_time()
                t.tick()
                (plain_cpu if t is plain else rec_cpu).append(time.process_time() - c)
            snaps = (snaps + [recorded.session.capturer.capture(recorded.ctx)])[-6:]
        steady_bytes = recorded.recorder.bytes_written - base_bytes
        rows = recorded.ctx.nrows
        # the same with nothing changing (a quiet host: configuration and PSI steady)
        still_plain, still_rec = [], []
        for i in range(ticks):
            first, second = (plain, recorded) if i % 2 == 0 else (recorded, plain)
            for t in (first, second):
                c = time.process_time()
                t.tick()
                (still_plain if t is plain else still_rec).append(time.process_time() - c)
    finally:
        plain.close()
        recorded.close()
    r = RECORD_RESULTS.setdefault(str(size), {})
    r["rows"] = rows
    r["tick_cpu"] = statistics.median(plain_cpu)
    r["tick_rec_cpu"] = statistics.median(rec_cpu)
    r["overhead"] = r["tick_rec_cpu"] / r["tick_cpu"] - 1
    r["overhead_min"] = min(rec_cpu) / min(plain_cpu) - 1
    r["overhead_static"] = statistics.median(still_rec) / statistics.median(still_plain) - 1
    r["bytes_per_cgroup_tick"] = steady_bytes / (ticks * rows)
    r["bytes_per_tick"] = steady_bytes / ticks
    r["ticks_measured"] = ticks

    # compressors on the same encoded ticks (the last six; the first is the key frame)
    enc = TickEncoder()
    payloads = [enc.encode(sn) for sn in snaps]
    steady = payloads[1:]
    zstd1 = zstandard.ZstdCompressor(level=1)
    for name, fn in (("zstd1", zstd1.compress), ("zlib1", lambda b: zlib.compress(b, 1)),
                     ("zlib6", lambda b: zlib.compress(b, 6)),
                     ("lzma0", lambda b: lzma.compress(b, preset=0))):
        c = time.process_time()
        out = sum(len(fn(p)) for p in steady)
        r[f"{name}_bytes"] = out / len(steady) / rows
        r[f"{name}_cpu"] = (time.process_time() - c) / len(steady)
    r["raw_bytes"] = sum(len(p) for p in steady) / len(steady) / rows

    # replay speed over what was just recorded (its check pass and the run)
    from oomd.record.replay import replay

    cfg = tmp_path / "config.json"
    cfg.write_text(_json(config))
    c, w = time.process_time(), time.perf_counter()
    result = replay(str(rec_dir), str(cfg))
    cpu, wall = time.process_time() - c, time.perf_counter() - w
    r["replay_ticks"] = result.ticks
    r["replay_ticks_per_s"] = result.ticks / wall
    r["replay_ticks_per_cpu_s"] = result.ticks / cpu
    r["replay_hour_s"] = 3600 * wall / result.ticks
    assert result.ticks == 2 * ticks + 3


def _daemons_with_and_without_recording(tree, size, seconds, churn: bool) -> None:
    import shutil
    import threading

    import daemonbench as db

    work = db.tmpdir("pyoomd-bench-record-")
    config = typical_config()
    cases = {"default": ("--assume-cgroup2",),
             "no flight": ("--assume-cgroup2", "--flight-recorder", "0"),
             "record": ("--assume-cgroup2", "--record", str(work / "rec"))}
    stop = threading.Event()
    writer = None
    if churn:
        c = Churn(tree)

        def run():
            while not stop.wait(max(0.0, 1.0 - (time.monotonic() % 1.0))):
                c.step()

        writer = threading.Thread(target=run, daemon=True)
        writer.start()
    daemons = [db.start_pyoomd(str(tree.root), config, work / name.replace(" ", "-"), extra=extra)
               for name, extra in cases.items()]
    for d, name in zip(daemons, cases):
        d.name = name
    try:
        got = db.measure(daemons, seconds)
    finally:
        stop.set()
        db.stop(daemons)
        if writer is not None:
            writer.join(5)
        shutil.rmtree(work, ignore_errors=True)
    r = RECORD_RESULTS.setdefault(str(size), {})
    tag = "churn" if churn else "static"
    for name in cases:
        assert "cpu_ms_per_s" in got[name], got[name]
        r[f"daemon_{tag}_{name}"] = got[name]["cpu_ms_per_s"] / 1e3
    r[f"daemon_{tag}_overhead"] = got["record"]["cpu_ms_per_s"] / got["default"]["cpu_ms_per_s"] - 1
    r[f"daemon_{tag}_overhead_noflight"] = (
        got["record"]["cpu_ms_per_s"] / got["no flight"]["cpu_ms_per_s"] - 1)


def test_bench_daemon_recording_overhead(tree, size, request):
    seconds = float(request.config.getoption("--daemon-seconds"))
    _daemons_with_and_without_recording(tree, size, seconds, churn=False)
    if size <= 2000:
        _daemons_with_and_without_recording(tree, size, seconds, churn=True)
