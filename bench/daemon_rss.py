#!/usr/bin/env python3
"""Peak RSS of the whole pyoomd daemon by number of monitored cgroups: what ``MemoryMin=`` and
``MemoryLow=`` of the systemd unit must cover (systemd/README.md).

    python bench/daemon_rss.py [--sizes 1000,10000,20000] [--ticks 20]

For each size, a tree from ``oomd.testing.gentree`` (server-shaped: system.slice/*.service and
workload.slice/*/*) under /dev/shm, then a fresh process running ``oomd.daemon.Daemon`` as the
unit does (start-up, the loop, stats socket, metrics textfile, the logging thread, mlockall)
on ``configs/server.json`` (``idle``: what it holds while nothing fires) and on the same plus
one ruleset that fires every tick and ranks every leaf with a dry
``kill_by_memory_size_or_growth`` (``ranking``: a kill decision and its candidate dump each
tick, the most memory the daemon needs), for ``--ticks`` ticks at 1 s; a mode ending in
``+record`` runs the daemon with ``--record`` (issue 15). The tree is read as on cgroup2
(files kept open, configuration values kept), which the daemon would not do on tmpfs by itself.
Prints VmHWM (peak RSS) and VmRSS at the end, per size; where a cgroup v1 memory controller is
mounted, the process runs in a memory cgroup of its own and the peak memory charged to it is
printed too (``memory.max_usage_in_bytes``: RSS plus the kernel memory of its open files,
dentries, inotify marks, sockets, which is what a unit's memory.min/low compare against on
cgroup2), then how many ticks could not read
every cgroup for lack of file descriptors (kill plugins abstain in those ticks): on a machine
whose hard RLIMIT_NOFILE is below what the tree needs (the unit sets 524288), the larger sizes
say so instead of giving a figure that means nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RANK_EVERY_TICK = {
    "name": "rank every leaf (dry)",
    "post_action_delay": "0",
    "detectors": [["always", {"name": "exists", "args": {"cgroup": "workload.slice"}}]],
    "actions": [{"name": "kill_by_memory_size_or_growth",
                 "args": {"cgroup": "system.slice/*,workload.slice/*/*", "dry": "true"}}],
}


def child(tree: str, work: str, ticks: int, mode: str) -> None:
    from oomd import cli
    from oomd.config.jsonc import loads

    cli.import_numpy_single_threaded()
    from oomd.daemon import Daemon
    from oomd.testing.oracle import fake_cgroup_fs

    config = loads((REPO / "configs" / "server.json").read_text())
    record = mode.endswith("+record")
    mode = mode.removesuffix("+record")
    no_flight = mode.endswith("+noflight")   # the flight recorder off (oomd.flight)
    mode = mode.removesuffix("+noflight")
    if mode == "ranking":
        config["rulesets"].append(RANK_EVERY_TICK)
    path = os.path.join(work, "pyoomd.json")
    with open(path, "w") as f:
        json.dump(config, f)
    options = cli.parse_options([
        "--config", path, "--interval", "1", "--max-ticks", str(ticks),
        "--cgroup-fs", fake_cgroup_fs(tree), "--runtime-dir", os.path.join(work, "run"),
        "--kmsg-override", os.path.join(work, "kmsg"),
        "--metrics-textfile", os.path.join(work, "pyoomd.prom")]
        + (["--record", os.path.join(work, "rec")] if record else [])
        + (["--flight-recorder", "0"] if no_flight else []))

    class AsOnCgroup2(Daemon):
        def make_context(self):
            from oomd.context import OomdContext

            ctx = OomdContext(self.o.cgroup_fs.rstrip("/"), stats=self.stats, cache_files=True)
            ctx.kmsg = self.kmsg
            return ctx

    d = AsOnCgroup2(options)
    code = d.main()
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    print(json.dumps({"exit": code, "vmhwm_kib": int(status["VmHWM"].split()[0]),
                      "vmrss_kib": int(status["VmRSS"].split()[0]),
                      "rows": int(getattr(d.ctx, "nrows", 0)), "ticks": d.ticks}))


def _memcg(name: str) -> str | None:
    from oomd.testing.realcg import v1_memory_mount

    mount = v1_memory_mount()
    if mount is None or os.geteuid() != 0:
        return None
    path = os.path.join(mount, name)
    os.mkdir(path)
    return path


def _join(memcg: str) -> None:
    with open(os.path.join(memcg, "cgroup.procs"), "w") as f:
        f.write("0")


def _read_int(memcg: str | None, name: str) -> int | None:
    if memcg is None:
        return None
    try:
        with open(os.path.join(memcg, name)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _measure(size: int, mode: str, tree: Path, work: Path, ticks: int) -> None:
    memcg = _memcg(f"pyoomd-rss-{os.getpid()}-{size}-{mode}")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--ticks", str(ticks), "--child", str(tree), str(work),
             mode], cwd=REPO, capture_output=True, text=True, timeout=1800,
            preexec_fn=None if memcg is None else lambda: _join(memcg))
        charged = _read_int(memcg, "memory.max_usage_in_bytes")
        kmem = _read_int(memcg, "memory.kmem.max_usage_in_bytes")
    finally:
        if memcg is not None:
            os.rmdir(memcg)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        print(f"{size:>8} {mode:>8} failed: {out.stderr[-1500:]}")
        return
    got = json.loads(lines[-1])
    starved = out.stderr.count("Not killing: cgroups could not be read")
    starved += out.stderr.count("out of file descriptors") if mode == "idle" else 0
    mem = "" if charged is None else f"{charged / (1 << 20):>9.1f} MiB"
    km = "" if kmem is None else f" (kernel {kmem / (1 << 20):.1f} MiB)"
    print(f"{size:>8} {mode:>8} {got['rows']:>8} {got['vmhwm_kib'] / 1024:>15.1f} MiB "
          f"{got['vmrss_kib'] / 1024:>9.1f} MiB {starved:>8}/{got['ticks']}  {mem}{km}",
          flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,5000,10000,20000")
    ap.add_argument("--modes", default="idle,ranking",
                    help="idle, ranking; either with +record: the same with --record, or "
                         "+noflight: without the flight recorder")
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--child", nargs=3, metavar=("TREE", "WORK", "MODE"), help=argparse.SUPPRESS)
    o = ap.parse_args(argv)
    if o.child:
        child(o.child[0], o.child[1], o.ticks, o.child[2])
        return 0
    from oomd.testing import gentree

    base = Path(tempfile.mkdtemp(prefix="pyoomd-rss-", dir="/dev/shm"))
    try:
        print(f"{'leaves':>8} {'config':>8} {'rows':>8} {'peak RSS (VmHWM)':>18} {'RSS at end':>12} "
              f"{'starved ticks':>14}  {'peak charged to its memcg':>26}")
        for size in (int(s) for s in o.sizes.split(",") if s):
            tree = base / f"tree-{size}"
            gentree.generate(tree, size)
            for mode in o.modes.split(","):
                work = base / f"work-{size}-{mode}"
                work.mkdir()
                _measure(size, mode, tree, work, o.ticks)
                shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(tree, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
