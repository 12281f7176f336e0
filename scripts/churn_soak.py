#!/usr/bin/env python3
"""Churn soak (issue 7 item 5): a 1,000-cgroup tree with cgroups created and removed all the
time, while a target process (the pyoomd daemon) watches it; the target's fd count and RSS are
sampled and must stay flat.

    # real cgroup2 cgroups under <mount>/pyoomd-test-<pid>-<rand> (root, cgroup2 needed):
    python scripts/churn_soak.py --mode real --minutes 10 -- \\
        python -m oomd --cgroup-fs {cgroup_fs} --config {config} --interval 1 \\
            --runtime-dir {runtime_dir} --kmsg-override {kmsg}

    # a fake tree of directories and files in the kernel's formats (no root needed):
    python scripts/churn_soak.py --mode fake --minutes 10 -- python -m oomd ...

The command after ``--`` is started by the driver, with these placeholders filled in:
``{cgroup_fs}`` (what to pass as --cgroup-fs: the cgroup2 mount, or for a fake tree a path that
starts with the mount textually and leads to the fake root), ``{tree}`` (absolute path of the
tree's parent cgroup), ``{tree_rel}`` (the same relative to {cgroup_fs}), ``{config}`` (the file
given with --config, or one that reads every cgroup of the tree each tick and kills nothing:
``default_config``), ``{runtime_dir}``
and ``{kmsg}`` (fresh temporary paths). ``--pid PID`` watches a process started elsewhere
instead. The target's stdout and stderr go to a log file, scanned at the end for
``--fail-pattern`` lines (default: tick failures and tracebacks).

Each churn step is one create and one remove: half the steps add a cgroup under
``churn.slice`` and remove the oldest one there (a pool of --pool live cgroups), half remove a
leaf of the main tree and create it again under the same name (new inode: the target must
notice the recreate). ``--rate`` is creates per minute (>= 1000 for the issue's soak).

The report gives, for fds and RSS, the first sample after --warmup seconds, the last, the
maximum and the least-squares slope per minute, the churn achieved per minute, and the log
findings; a JSON line with the same figures ends it. Exit status 1 if the target died, a fail
pattern matched, or growth exceeded --max-fd-growth / --max-rss-growth-kib.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oomd.testing import faketree, realcg  # noqa: E402

DEFAULT_FAIL_PATTERNS = [r"tick failed", r"Traceback \(most recent call last\)"]


# -- trees ----------------------------------------------------------------------------------------


class FakeTree:
    """Directories with cgroup files under a temporary root, in the kernel's formats."""

    def __init__(self, parent_dir: str | None = None) -> None:
        self._rng = random.Random(0)
        self.root = tempfile.mkdtemp(prefix="pyoomd-churn-", dir=parent_dir)
        faketree.write_tree(self.root, {"": faketree.cgroup(current=None)})
        self.tree_rel = "soak"
        self.tree = os.path.join(self.root, self.tree_rel)
        os.mkdir(self.tree)
        self._write(self.tree)
        mount = realcg.cgroup2_mount()
        if mount:  # pyoomd (like oomd) wants --cgroup-fs to start with the cgroup2 mount, textually
            depth = len([c for c in mount.split("/") if c])
            self.cgroup_fs = mount + "/.." * depth + self.root
        else:
            self.cgroup_fs = self.root

    def _write(self, path: str) -> None:
        files = faketree.cgroup(
            current=self._rng.randrange(1 << 20, 1 << 30),
            mem_pressure=(0.0, 0.0, 0.0), io_pressure=(0.0, 0.0, 0.0),
            memory_stat={"anon": 0, "file": 0, "shmem": 0, "pgscan": 0},
            nr_dying_descendants=0, procs=[],
        )
        for name, content in files.items():
            with open(os.path.join(path, name), "w") as f:
                f.write(content)

    def create(self, rel: str) -> None:
        """Make the cgroup (and missing parents); like mkdir, fails if the leaf exists."""
        comps = [c for c in rel.split("/") if c]
        path = self.tree
        for i, comp in enumerate(comps):
            path = os.path.join(path, comp)
            if i < len(comps) - 1 and os.path.isdir(path):
                continue
            os.mkdir(path)
            self._write(path)

    def remove(self, rel: str) -> None:
        path = os.path.join(self.tree, rel)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)

    def cleanup(self) -> list[str]:
        shutil.rmtree(self.root, ignore_errors=True)
        return [self.root] if os.path.exists(self.root) else []


class RealTree:
    """Real cgroup2 cgroups under the harness's pyoomd-test-<pid>-<rand> parent."""

    def __init__(self) -> None:
        self.cg = realcg.RealCgroups()
        self.cgroup_fs = self.cg.cgroup2
        self.tree = self.cg.parent
        self.tree_rel = self.cg.name

    def create(self, rel: str) -> None:
        self.cg.create(rel)

    def remove(self, rel: str) -> None:
        self.cg.remove(rel)

    def cleanup(self) -> list[str]:
        self.cg.cleanup()
        return self.cg.leftovers() + self.cg.cleanup_problems


# -- the target ---------------------------------------------------------------------------------


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mt) * (v - mv) for t, v in samples) / var


def default_config(tree_rel: str) -> str:
    """pyoomd's per-tick work over every leaf of the tree: pressure_above reads each leaf's
    memory.pressure, kill_by_pressure (dry) would rank them, nr_dying_descendants reads the
    slices' cgroup.stat. The threshold is out of reach, so nothing is killed."""
    leaves, slices = f"{tree_rel}/*/*", f"{tree_rel}/*"
    return json.dumps({"rulesets": [{
        "name": "churn soak",
        "detectors": [
            ["leaves under pressure", {"name": "pressure_above", "args": {
                "cgroup": leaves, "resource": "memory", "threshold": "101", "duration": "30"}}],
            ["slices with dying children", {"name": "nr_dying_descendants", "args": {
                "cgroup": slices, "count": "1000000", "lte": "false"}}],
        ],
        "actions": [{"name": "kill_by_pressure", "args": {
            "cgroup": leaves, "resource": "memory", "dry": "true"}}],
    }]}, indent=2)


# -- the run ------------------------------------------------------------------------------------


def build(tree, size: int, per_slice: int) -> list[str]:
    leaves = []
    for i in range(size):
        rel = f"w{i // per_slice:03d}.slice/c{i:05d}.service"
        tree.create(rel)
        leaves.append(rel)
    return leaves


def run(o, argv_cmd: list[str]) -> int:
    tree = RealTree() if o.mode == "real" else FakeTree(o.fake_dir)
    scratch = tempfile.mkdtemp(prefix="pyoomd-churn-run-")
    proc = log = None
    log_path = o.log or os.path.join(scratch, "target.log")
    report: dict = {"mode": o.mode}
    try:
        leaves = build(tree, o.cgroups, o.per_slice)
        tree.create("churn.slice")
        parents = len(leaves) // o.per_slice + 2
        print(f"tree: {len(leaves)} leaf cgroups (+{parents} parents) under {tree.tree}",
              flush=True)
        config = o.config
        if config is None:
            config = os.path.join(scratch, "config.json")
            Path(config).write_text(default_config(tree.tree_rel))
        subs = {"cgroup_fs": tree.cgroup_fs, "tree": tree.tree, "tree_rel": tree.tree_rel,
                "config": config, "runtime_dir": os.path.join(scratch, "run"),
                "kmsg": os.path.join(scratch, "kmsg")}
        if argv_cmd:
            cmd = [a.format(**subs) for a in argv_cmd]
            print(f"target: {' '.join(cmd)}", flush=True)
            log = open(log_path, "wb")
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=o.cwd or str(REPO))
            pid = proc.pid
        else:
            pid = o.pid
        report["pid"] = pid

        rng = random.Random(o.seed)
        pool: collections.deque[str] = collections.deque()
        seq = creates = removes = errors = 0
        fds: list[tuple[float, float]] = []
        rss: list[tuple[float, float]] = []
        step_every = 60.0 / o.rate
        start = time.monotonic()
        end = start + o.minutes * 60.0
        next_step = next_sample = start
        died = False
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                if not alive(pid, proc):
                    died = True
                    break
                f, r = fd_count(pid), rss_kib(pid)
                if f is not None and r is not None:
                    fds.append((now - start, f))
                    rss.append((now - start, r))
                next_sample += o.sample_seconds
            if now >= next_step:
                try:
                    if seq % 2 == 0:
                        rel = f"churn.slice/x{seq:08d}.scope"
                        tree.create(rel)
                        creates += 1
                        pool.append(rel)
                        if len(pool) > o.pool:
                            tree.remove(pool.popleft())
                            removes += 1
                    else:
                        rel = leaves[rng.randrange(len(leaves))]
                        tree.remove(rel)
                        removes += 1
                        tree.create(rel)
                        creates += 1
                except OSError as e:
                    errors += 1
                    if errors <= 5:
                        print(f"churn step failed: {e}", file=sys.stderr)
                seq += 1
                next_step += step_every
            time.sleep(max(0.0, min(next_step, next_sample) - time.monotonic()))
        elapsed = time.monotonic() - start
        minutes = max(elapsed / 60.0, 1e-9)
        report.update(seconds=round(elapsed, 1), creates=creates, removes=removes,
                      churn_errors=errors, creates_per_minute=round(creates / minutes),
                      removes_per_minute=round(removes / minutes),
                      target_died=died or not alive(pid, proc))
        for name, series in (("fds", fds), ("rss_kib", rss)):
            settled = [s for s in series if s[0] >= o.warmup] or series
            if settled:
                report[name] = {"start": settled[0][1], "end": settled[-1][1],
                                "max": max(v for _, v in settled),
                                "min": min(v for _, v in settled),
                                "slope_per_minute": round(slope_per_minute(settled), 2),
                                "late_slope_per_minute": round(
                                    slope_per_minute(settled[len(settled) // 2:]), 2),
                                "samples": len(settled)}
        if o.samples:
            with open(o.samples, "w") as f:
                f.write("seconds,fds,rss_kib\n")
                f.writelines(f"{t:.1f},{fv:.0f},{rv:.0f}\n" for (t, fv), (_, rv) in zip(fds, rss))
    finally:
        if proc is not None:
            realcg.terminate(proc, 15.0)
        if log is not None:
            log.close()
        left = tree.cleanup()
        report["left_behind"] = left

    findings = collections.Counter()
    if proc is not None and os.path.exists(log_path):
        patterns = [re.compile(p) for p in (o.fail_pattern or DEFAULT_FAIL_PATTERNS)]
        with open(log_path, errors="replace") as f:
            for line in f:
                for p in patterns:
                    if p.search(line):
                        findings[p.pattern] += 1
        report["exit_status"] = proc.returncode
    report["log_findings"] = dict(findings)
    shutil.rmtree(scratch, ignore_errors=True)

    problems = []
    if report.get("target_died"):
        problems.append("the target exited during the soak")
    if findings:
        problems.append(f"fail patterns in the target's log: {dict(findings)}")
    if "fds" in report and report["fds"]["end"] - report["fds"]["start"] > o.max_fd_growth:
        problems.append(f"fd count grew by {report['fds']['end'] - report['fds']['start']}")
    rss_growth = report["rss_kib"]["end"] - report["rss_kib"]["start"] if "rss_kib" in report else 0
    if rss_growth > o.max_rss_growth_kib:
        problems.append(f"RSS grew by {rss_growth} KiB")
    if left:
        problems.append(f"left behind: {left}")

    print(f"\nchurn: {report['creates']} creates, {report['removes']} removes in "
          f"{report['seconds']} s ({report['creates_per_minute']}/min created, "
          f"{report['removes_per_minute']}/min removed), {report['churn_errors']} failed steps")
    for name, unit in (("fds", ""), ("rss_kib", " KiB")):
        if name in report:
            r = report[name]
            print(f"{name:>8}: start {r['start']:.0f}{unit}, end {r['end']:.0f}{unit}, "
                  f"max {r['max']:.0f}{unit}, slope {r['slope_per_minute']:+.2f}{unit}/min "
                  f"({r['late_slope_per_minute']:+.2f} over the second half) "
                  f"over {r['samples']} samples after {o.warmup:g} s")
    print(f"target: pid {report['pid']}, {'died' if report['target_died'] else 'alive to the end'}"
          + (f", exit status {report.get('exit_status')}" if proc is not None else ""))
    print(f"verdict: {'FAIL: ' + '; '.join(problems) if problems else 'flat, no findings'}")
    print("json: " + json.dumps(report, sort_keys=True))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["real", "fake"], default="real")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cgroups", type=int, default=1000, help="leaf cgroups (default 1000)")
    ap.add_argument("--per-slice", type=int, default=50, help="leaves per slice (default 50)")
    ap.add_argument("--rate", type=float, default=1200.0,
                    help="cgroups created per minute (default 1200)")
    ap.add_argument("--pool", type=int, default=100, help="live cgroups kept under churn.slice")
    ap.add_argument("--sample-seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds before the 'start' sample")
    ap.add_argument("--config", default=None, help="config file for {config} (default: generated)")
    ap.add_argument("--pid", type=int, default=None,
                    help="watch this process instead of starting one")
    ap.add_argument("--log", default=None, help="keep the target's output in this file")
    ap.add_argument("--samples", default=None, help="write every fd/RSS sample to this CSV")
    ap.add_argument("--cwd", default=None, help="target's working directory (default: the repo)")
    ap.add_argument("--fake-dir", default=None, help="where the fake tree goes (default: $TMPDIR)")
    ap.add_argument("--fail-pattern", action="append",
                    help="regex of a log line that fails the soak")
    ap.add_argument("--max-fd-growth", type=int, default=0)
    ap.add_argument("--max-rss-growth-kib", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    o = ap.parse_args(argv)
    if bool(cmd) == (o.pid is not None):
        ap.error("give either a command after -- or --pid")
    if o.mode == "real":
        why = realcg.skip_reason(need_pressure=False)
        if why:
            print(f"cannot run in real mode: {why}", file=sys.stderr)
            return 2
    return run(o, cmd)


if __name__ == "__main__":
    sys.exit(main())
