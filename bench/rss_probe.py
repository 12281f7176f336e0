"""Peak RSS of a daemon-like process: ``python bench/rss_probe.py <tree root> <ticks>``.

Builds an OomdContext with the bench's typical config, runs the ticks with the detectors'
access pattern, ranks every leaf once (a kill decision), and prints {"vmhwm_kib": ...}.
"""

import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from oomd.cgpath import CgroupPatterns  # noqa: E402
from oomd.context import OomdContext, fd_budget_from_rlimit, rank_memory_size_or_growth  # noqa: E402

import numpy as np  # noqa: E402


def main(root: str, ticks: int) -> None:
    pats = [CgroupPatterns.parse("system.slice/*"), CgroupPatterns.parse("workload.slice/*/*")]
    ctx = OomdContext(root, cache_files=True, fd_budget=fd_budget_from_rlimit(), interval=1)
    ctx.set_monitored([(CgroupPatterns.parse("/"), ["mem_pressure"])]
                      + [(p, ["mem_pressure", "current_usage", "average_usage"]) for p in pats])
    for t in range(ticks):
        ctx.refresh(float(t))
        for p in pats:
            rows = ctx.resolve(p)
            pr, pv = ctx.get("mem_pressure", rows)
            cur, cv = ctx.get("current_usage", rows)
            np.where(pv, 3 * pr[:, 0] + 2 * pr[:, 1] + pr[:, 2], 0).argmax()
            ctx.get("average_usage", rows)
        if t == ticks // 2:
            rank_memory_size_or_growth(ctx, ctx.resolve(CgroupPatterns.parse(
                "system.slice/*,workload.slice/*/*")))
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"vmhwm_kib": hwm, "rows": ctx.nrows}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
