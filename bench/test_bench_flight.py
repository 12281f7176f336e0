"""The flight recorder's cost (issue 16), side by side in one run: the daemon's steady tick on
the typical config without and with the recorder (the tick's capture plus the worker's encoding
into the ring, waited for, so every CPU second it costs is counted), interleaved so both see
the same machine. Acceptance (issue 16): at most 5 % more CPU per tick at 10,000 cgroups.
Smaller trees are printed for the record: the recorder's fixed part (the capture's
bookkeeping, one memcmp per column, the frame's header; small frames stay uncompressed in the
ring) is about 0.1 ms a tick, about 5 % of a 1,000-cgroup tick.

    python -m pytest bench/test_bench_flight.py -p no:cacheprovider -s
"""

from __future__ import annotations

import statistics
import time

from benchlib import record
from test_bench_core import Daemonish, daemon  # noqa: F401 - the fixture
from oomd.flight import FlightRecorder


def test_flight_recorder_steady_tick_cpu(daemon, tmp_path, size):  # noqa: F811
    daemon.settle()
    flight = FlightRecorder(str(tmp_path), 120, stats=daemon.ctx.stats)
    try:
        def plain():
            daemon.tick()

        def with_recorder():
            daemon.tick()
            flight.after_tick(daemon.ctx)
            flight.flush()

        for _ in range(130):        # fill the ring: its steady state, key frames included
            with_recorder()
        samples = {"plain": [], "flight": []}
        for _ in range(40 if size <= 1000 else 20):
            for key, fn in (("plain", plain), ("flight", with_recorder)):
                t = time.process_time()
                fn()
                samples[key].append(time.process_time() - t)
        plain_med = statistics.median(samples["plain"])
        flight_med = statistics.median(samples["flight"])
        ratio = flight_med / plain_med
        record(size, "flight_tick_cpu", flight_med)
        record(size, "plain_tick_cpu", plain_med)
        record(size, "flight_over_plain", ratio)
        print(f"\n{size} cgroups: tick {plain_med * 1e3:.2f} ms, with the flight recorder "
              f"{flight_med * 1e3:.2f} ms (x{ratio:.3f}); ring {len(flight.ring)} frames, "
              f"{flight.ring.nbytes / 1024:.0f} KiB")
        if size >= 10000:
            assert ratio <= 1.05
    finally:
        flight.close()
