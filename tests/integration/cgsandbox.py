"""Real cgroups and real processes for kill tests, cleaned up even when a test fails.

``CgroupSandbox`` makes a private directory under the cgroup2 mount (found in /proc/mounts),
creates cgroups below it, starts ``sleep`` processes directly inside them and, on close, kills
every process it started and removes every cgroup it made, deepest first (the harness of
``oomd.testing.realcg`` does that part). It never touches a cgroup or process it did not
create.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from oomd.fs import cgroup2_mount
from oomd.testing.realcg import RealCgroups


def why_no_sandbox() -> str | None:
    """None when real cgroup tests can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root to create cgroups and move processes"
    mount = cgroup2_mount()
    if mount is None:
        return "no cgroup2 mount in /proc/mounts"
    if not os.path.exists(os.path.join(mount, "cgroup.procs")):
        return f"{mount} does not look like a cgroup2 root"
    probe = Path(mount) / f"pyoomd-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as e:
        return f"cannot create a cgroup under {mount}: {e.strerror}"
    try:
        if not (probe / "cgroup.events").exists():
            return "cgroup2 without cgroup.events"
    finally:
        probe.rmdir()
    return None


class CgroupSandbox:
    """Kill-test helpers over ``oomd.testing.realcg.RealCgroups``, which owns the cgroups and
    processes and removes them on ``close`` (processes killed, cgroups deepest first)."""

    def __init__(self, tag: str = "kill") -> None:
        self.cgroups = RealCgroups(prefix=f"pyoomd-test-{tag}")
        self.mount = Path(self.cgroups.cgroup2)
        self.root = Path(self.cgroups.parent)

    def relpath(self, path: Path) -> str:
        return str(path.relative_to(self.mount))

    def mkcg(self, rel: str) -> Path:
        return Path(self.cgroups.create(rel))

    def spawn(self, cg: Path, argv=("sleep", "1000")) -> subprocess.Popen:
        """``argv`` started directly inside ``cg``: the child moves itself in before exec, so
        there is no window where it runs elsewhere."""
        procs_file = str(cg / "cgroup.procs")

        def move_self():
            with open(procs_file, "w") as f:
                f.write("0")

        return self._start(argv, preexec_fn=move_self)

    def spawn_outside(self, argv=("sleep", "1000")) -> subprocess.Popen:
        return self._start(argv)

    def _start(self, argv, **popen) -> subprocess.Popen:
        return self.cgroups.start(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True, **popen)

    def spawn_with_pid(self, pid: int, cg: Path | None = None, tries: int = 50):
        """A process that gets exactly ``pid`` (via ns_last_pid), or None if other processes
        on the machine keep taking it."""
        for _ in range(tries):
            try:
                with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                    f.write(str(pid - 1))
            except OSError:
                return None
            p = self.spawn(cg) if cg is not None else self.spawn_outside()
            if p.pid == pid:
                return p
            p.kill()
            p.wait()
        return None

    @staticmethod
    def procs_of(cg: Path) -> list[int]:
        return [int(x) for x in (cg / "cgroup.procs").read_text().split()]

    @staticmethod
    def alive(p: subprocess.Popen) -> bool:
        return p.poll() is None

    @staticmethod
    def wait_dead(p: subprocess.Popen, timeout: float = 5.0) -> bool:
        try:
            p.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    @staticmethod
    def move(pid: int, cg: Path) -> None:
        (cg / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        self.cgroups.cleanup()
