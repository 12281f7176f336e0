"""The flight recorder: without ``--record``, the daemon keeps the last ticks in memory and, on
every kill (and dry kill), writes them with the decision record to ``<runtime-dir>/kills/`` as
a small self-contained recording, so ``pyoomd explain <file>`` can answer for every kill
afterwards (docs/explain.md).

* After each tick, on the tick's thread, the tick is encoded straight from the reader's
  columns into the ring (``oomd.record.writer.TickRing``: only what changed since the last
  tick, compressed): no copy of the columns is made, which is most of what the recorder would
  otherwise cost (bench/test_bench_flight.py). A worker thread writes the files.
* A kill's file is named before it is written, so the kill's log line can name it; it is
  written by the worker once the kill's tick is in the ring, after the tick: never on the
  kill's path. The write goes through a temporary file and a rename; a write that fails (a
  full disk, a missing directory) is logged and counted, and the daemon goes on.
* The directory keeps the newest ``keep`` files (default 50); leftover temporary files of an
  interrupted write are removed, files that are not ours are left alone.
* How many ticks: as many as the longest detector ``duration`` needs at the daemon's interval
  (plus a few), at most ``MAX_TICKS``.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import deque

from oomd import logs
from oomd.decision import longest_duration
from oomd.record.format import DECISION, SEGMENT_SUFFIX, encode_json_frame
from oomd.record.session import RecordSession
from oomd.record.writer import TickRing, write_recording_file

MAX_TICKS = 120
MIN_TICKS = 8
KEEP = 50
WRITES_STAT = "pyoomd.flight_recorder_files"
FAILED_STAT = "pyoomd.flight_recorder_failures"
_NAME = re.compile(r"^kill-\d{8}T\d{6}Z-t\d+-\d+" + re.escape(SEGMENT_SUFFIX) + r"$")
_TMP = re.compile(r"^kill-.*" + re.escape(SEGMENT_SUFFIX) + r"\.tmp\d+$")


def ticks_for(engine, interval: float) -> int:
    """The ring's length for ``engine``: the longest detector duration in ticks, plus a few."""
    longest = 0.0
    for base in getattr(engine, "rulesets", ()):
        for rs in [base.ruleset] + [d.ruleset for d in base.dropins]:
            longest = max(longest, longest_duration(rs))
    need = math.ceil(longest / max(interval, 0.01)) + 4
    return max(MIN_TICKS, min(MAX_TICKS, need))


def kills_possible(engine) -> bool:
    """Whether a running ruleset (drop-ins included) has a kill plugin: without one no kill
    can happen, so the recorder keeps no ticks (an idle daemon pays nothing for it)."""
    from oomd.plugins.base_kill import BaseKillPlugin

    for base in getattr(engine, "rulesets", ()):
        for rs in [base.ruleset] + [d.ruleset for d in base.dropins]:
            if any(isinstance(a, BaseKillPlugin) for a in rs.actions):
                return True
    return False


class FlightRecorder:
    """What the daemon holds when it runs without ``--record``. ``observer(inner)`` wraps the
    engine's observer; ``after_tick(ctx)`` follows every tick; ``close()`` at exit."""

    def __init__(self, runtime_dir: str, ticks: int, *, keep: int = KEEP, meta: dict | None = None,
                 stats=None, log=None) -> None:
        self.directory = os.path.join(runtime_dir, "kills")
        self.keep = max(1, int(keep))
        self.meta = dict(meta or {})
        self.stats = stats
        self._log = log or logs.log
        self.ring = TickRing(ticks)
        self.session = RecordSession(ring=None, log=self._log)
        self.session.decision = self._decision       # kills come here (RecordingObserver)
        self._pending: list[tuple[str, dict]] = []   # decided this tick, written after it
        self._queue: deque = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._seq = 0
        self._inflight = 0
        self._told: set[str] = set()
        self.written: list[str] = []
        self._thread = threading.Thread(target=self._run, name="pyoomd-flight", daemon=True)
        self._thread.start()

    # -- the tick's thread --------------------------------------------------------------------

    def observer(self, inner):
        return self.session.observer(inner)

    def set_ticks(self, ticks: int) -> None:
        """A reload changed the longest detector duration."""
        with self._cv:
            self.ring.ticks = max(1, int(ticks))

    def path_for(self, record: dict) -> str:
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(record.get("wall") or time.time()))
        name = f"kill-{stamp}-t{int(record.get('tick') or 0)}-{self._seq}{SEGMENT_SUFFIX}"
        return os.path.join(self.directory, name)

    def _decision(self, record: dict) -> None:
        """A kill or dry kill, in its tick: name its file now (the log line says where the
        explanation will be), write it after the tick."""
        path = self.path_for(record)
        # encoded now (the kill is done): a compressed frame is a tenth of the record's
        # objects at 10k candidates, and nothing of the tick's is held until the write; the
        # JSON text is made and compressed a piece at a time (never whole: 1 MB at 10k)
        try:
            frame = encode_json_frame(DECISION, record)
        except (TypeError, ValueError) as e:
            self._tell("encode", f"could not encode a decision record: {e}")
            return
        self._pending.append((path, frame))
        victim = record.get("victim")
        what = "dry kill" if record.get("dry") else "kill"
        self._log(f'[flight-recorder] {what} of "{victim}" by {record.get("plugin")} in ruleset '
                  f'"{record.get("ruleset")}": explained by pyoomd explain {path}', logs.INFO)

    def after_tick(self, ctx) -> None:
        """Capture the tick for the ring (the worker encodes it), then queue the files of this
        tick's kills. Never raises."""
        fired, self.session.fired = self.session.fired, []
        pending, self._pending = self._pending, []
        try:
            snap = self.session.capturer.capture(ctx, fired, copy=False, only_read_system=True)
            frames = None
            with self._cv:   # the worker may be reading the ring for a file
                self.ring.add(snap)
                if pending:
                    frames = self.ring.frames()
        except Exception as e:  # noqa: BLE001 - the recorder never fails a tick
            self._tell("capture", f"could not record a tick: {type(e).__name__}: {e}")
            frames = self.ring.frames() if pending else None
        if not pending:
            return
        with self._cv:
            for path, frame in pending:
                self._queue.append((path, frame, frames))
            self._cv.notify()

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
                self._inflight += 1
            try:
                self._write(*item)
            except Exception as e:  # noqa: BLE001 - the worker outlives any one item
                self._tell("worker", f"{type(e).__name__}: {e}")
            finally:
                with self._cv:
                    self._inflight -= 1

    def _write(self, path: str, decision: bytes, frames: list[bytes]) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            meta = dict(self.meta, flight_recorder=True, ticks=len(frames))
            # the decision first: a file damaged later (a torn tail) still explains the kill
            write_recording_file(path, meta, [decision] + frames)
        except OSError as e:
            self._count(FAILED_STAT)
            self._tell("write", f"could not write {path}: {e.strerror or e}; the kill stands, "
                       "only its explanation file is missing")
            return
        self._count(WRITES_STAT)
        self.written.append(path)
        del self.written[:-self.keep]
        self.prune()

    def prune(self) -> None:
        """Keep the newest ``keep`` kill files; remove leftover temporary files."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        ours = sorted((n for n in names if _NAME.match(n)), key=self._age)
        doomed = ours[:-self.keep] + [n for n in names if _TMP.match(n)
                                      and not n.endswith(f".tmp{os.getpid()}")]
        for n in doomed:
            try:
                os.unlink(os.path.join(self.directory, n))
            except OSError:
                pass

    def _age(self, name: str) -> tuple:
        """Oldest first: by modification time, then by name."""
        try:
            return (os.stat(os.path.join(self.directory, name)).st_mtime_ns, name)
        except OSError:
            return (0, name)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until the worker has done everything queued (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cv:
                if not self._queue and not self._inflight:
                    break
            time.sleep(0.01)

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(10.0)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        if self.stats is not None:
            self.stats.increment(key)

    def _tell(self, what: str, message: str) -> None:
        if what in self._told:
            return
        self._told.add(what)
        self._log(f"[flight-recorder] {message} (logged once)", logs.WARNING)
