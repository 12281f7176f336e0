"""Peak RSS of a daemon-like process: ``python bench/rss_probe.py <tree root> <ticks>``.

Compiles the bench's typical config with the real compiler, runs its Engine.tick on an
OomdContext over the tree for ``ticks`` ticks, ranks every leaf once through
kill_by_memory_size_or_growth (a kill decision) half way, and prints {"vmhwm_kib": ...}.
Imports numpy the way the daemon does (one BLAS thread).
"""

import json
import os
import sys

from oomd import cli, logs

cli.import_numpy_single_threaded()

from benchlib import HOST_RULESET, action, compile_engine  # noqa: E402
from oomd.context import OomdContext, fd_budget_from_rlimit  # noqa: E402


def main(root: str, ticks: int) -> None:
    logs.setup(inline=True, stream=open(os.devnull, "w"))    # the tick counter logs a line
    clock = {"now": 0.0}
    ctx = OomdContext(root, cache_files=True, fd_budget=fd_budget_from_rlimit(), interval=1)
    engine = compile_engine(root, clock=lambda: clock["now"])
    killer = action(engine, HOST_RULESET)
    for t in range(ticks):
        clock["now"] = float(t + 1)
        engine.tick(ctx)
        if t == ticks // 2:
            killer.rank(ctx, ctx.resolve(killer.cgroup))
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"vmhwm_kib": hwm, "rows": ctx.nrows}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
