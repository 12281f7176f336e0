"""Fake trees, configs and a runner for the lint tests (``from lintfakes import ...``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from oomd.lint import Host, lint
from oomd.lint.findings import Finding
from oomd.testing.faketree import cgroup, write_proc, write_tree

MIB = 1 << 20
CONTROLLERS = "cpu io memory pids"


def full(current: int = 64 * MIB, controllers: str = CONTROLLERS, **kw) -> dict[str, str]:
    """A cgroup with every file a plugin reads (every controller enabled, PSI on)."""
    extra = {"io.stat": "", "cgroup.subtree_control": "", "cgroup.pressure": "1\n"}
    extra.update(kw.pop("extra", {}))
    return cgroup(current, mem_pressure=(0.0, 0.0, 0.0), io_pressure=(0.0, 0.0, 0.0),
                  swap_current=0, swap_max="max", nr_dying_descendants=0,
                  memory_stat={"anon": 0, "file": 0, "active_file": 0, "inactive_file": 0,
                               "pgscan": 0, "pgsteal": 0},
                  controllers=controllers, extra=extra, **kw)


def bare(controllers: str = "") -> dict[str, str]:
    """A cgroup whose parent enables no memory or io controller for it: PSI and core files."""
    return {"cgroup.controllers": controllers + "\n", "cgroup.events": "populated 1\nfrozen 0\n",
            "cgroup.stat": "nr_descendants 0\nnr_dying_descendants 0\n",
            "cgroup.subtree_control": "\n", "cgroup.pressure": "1\n",
            "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            "io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"}


def tree_spec() -> dict[str, dict[str, str]]:
    """system.slice/{a,b}.service, workload.slice/job/{t1,t2}, other.slice: all complete."""
    return {rel: full() for rel in (
        "", "system.slice", "system.slice/a.service", "system.slice/b.service",
        "workload.slice", "workload.slice/job", "workload.slice/job/t1", "workload.slice/job/t2",
        "other.slice")}


def det(name: str, **args) -> dict:
    return {"name": name, "args": {k: str(v) for k, v in args.items()}}


act = det


def watch(cgroup: str = "system.slice") -> list:
    """A detector group as shipped configs write them: pressure for a while, with reclaim."""
    return [f"{cgroup} under pressure",
            det("pressure_above", cgroup=cgroup, resource="memory", threshold=60, duration=30),
            det("memory_reclaim", cgroup=cgroup, duration=10)]


def ruleset(name: str = "r", detectors=None, actions=None, **keys) -> dict:
    rs = {"name": name,
          "detectors": detectors if detectors is not None else [watch()],
          "actions": actions if actions is not None else [
              act("kill_by_memory_size_or_growth", cgroup="system.slice/*")]}
    rs.update(keys)
    return rs


def config(*rulesets) -> dict:
    return {"rulesets": list(rulesets) or [ruleset()]}


class Lint:
    """Writes a tree, a proc root and configs under ``tmp``, and runs lint on them."""

    def __init__(self, tmp: Path, spec=None, **proc) -> None:
        self.tmp = tmp
        self.root = write_tree(tmp / "cg", tree_spec() if spec is None else spec)
        proc.setdefault("swap_devices", [("/swapfile", 4 << 20, 0)])
        self.proc = write_proc(tmp / "proc", **proc)
        self.file = str(tmp / "c.json")

    def write(self, name: str, content) -> str:
        path = self.tmp / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    def run(self, cfg=None, drop_ins=(), *, interval: float = 5, devices=(), daemon_cgroup=None,
            cgroup_fs=None, ignore=()) -> list[Finding]:
        return self.report(cfg, drop_ins, interval=interval, devices=devices,
                           daemon_cgroup=daemon_cgroup, cgroup_fs=cgroup_fs,
                           ignore=ignore).findings

    def report(self, cfg=None, drop_ins=(), *, interval: float = 5, devices=(),
               daemon_cgroup=None, cgroup_fs=None, ignore=()):
        self.write("c.json", cfg if cfg is not None else config())
        paths = [self.write(name, content) for name, content in drop_ins]
        host = Host(cgroup_fs=str(cgroup_fs or self.root), proc_root=str(self.proc),
                    interval=interval, devices=tuple(devices), daemon_cgroup=daemon_cgroup)
        return lint(self.file, paths, host, ignore=ignore)

    def at(self, path: str) -> str:
        return f"{self.root}/{path}" if path else str(self.root)


def lint_as_nobody(lnt: Lint, cfg=None) -> list[dict]:
    """Lint in a forked child running as uid/gid 65534 (the tree must be readable by all):
    the findings as JSON dicts. Needs root (to drop to nobody)."""
    import pickle

    import oomd.context  # noqa: F401 - what lint imports lazily, while the stdlib is readable
    import oomd.daemon  # noqa: F401 - (the interpreter may live where nobody cannot read)

    lnt.write("c.json", cfg if cfg is not None else config())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            report = lint(lnt.file, [], Host(str(lnt.root), proc_root=str(lnt.proc)))
            os.write(w, pickle.dumps([f.to_json() for f in report.findings]))
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            import traceback

            os.write(w, pickle.dumps(RuntimeError(f"{e!r}\n{traceback.format_exc()}")))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = pickle.loads(data)
    if isinstance(result, Exception):
        raise result
    return result


def world_readable(tmp: Path) -> None:
    """Make a tree made by Lint readable (and its directories searchable) by every user."""
    os.chmod(tmp, 0o755)
    for dirpath, _dirnames, filenames in os.walk(tmp):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
