"""Faults at the read layer never cause a kill, never stop the tick, and are counted (issue 7
item 4).

One fake tree, one config: ``pressure_above`` (threshold 50) watches
``workload.slice/hog.service`` and ``kill_by_pressure`` ranks ``workload.slice/*``. With healthy
files the hog's memory pressure (90) fires the detector and the hog is killed. Each test breaks
the hog's ``memory.pressure`` (or the whole cgroup) in one way, runs ticks through the real
``OomdContext`` and engine, and checks: no kill, the tick returned, the reader counted the
problem under the right heading; then it repairs the fault and checks the next tick fires again
(so the no-kill is the fault's doing). The killer only records.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import traceback
from pathlib import Path

import numpy.ma  # noqa: F401 - numpy imports it lazily in the first tick; see below
import pytest

from killfakes import FakeClock, RecordingKiller, VanishAwareKiller, kill_engine
from support import no_free_fds
from oomd.context import OomdContext
from oomd.stats import Stats
from oomd.testing.faketree import cgroup, psi, write_proc, write_tree

HOG = "workload.slice/hog.service"
DECOY = "workload.slice/decoy.service"
HEALTHY_PSI = psi(some=(90.0, 90.0, 90.0), full=(90.0, 90.0, 90.0), some_total=9, full_total=9)
PROBLEMS = ("malformed", "unreadable", "missing", "vanished")
CONFIG = {"rulesets": [{
    "name": "pressure",
    "detectors": [["hog under pressure", {"name": "pressure_above", "args": {
        "cgroup": HOG, "resource": "memory", "threshold": "50", "duration": "0"}}]],
    "actions": [{"name": "kill_by_pressure", "args": {"cgroup": "workload.slice/*",
                                                      "resource": "memory"}}],
    "post_action_delay": "0",
}]}


def sysfs_write_only_file() -> str | None:
    """A sysfs file that refuses to be opened for reading even by root (EACCES): bus uevent
    files are write-only. None if this host has none."""
    for path in sorted(glob.glob("/sys/bus/*/uevent")):
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except PermissionError:
            return path
        except OSError:
            continue
    return None


class Bench:
    """The fake tree, a context over it and an engine whose killer records."""

    def __init__(self, tmp_path: Path, *, killer=None, context_class=OomdContext) -> None:
        self.root = tmp_path / "cg"
        write_tree(self.root, {
            "": cgroup(current=None),
            "workload.slice": cgroup(mem_pressure=(50.0, 50.0, 50.0)),
            HOG: cgroup(64 << 20, mem_pressure=HEALTHY_PSI),
            DECOY: cgroup(64 << 20, mem_pressure=(1.0, 1.0, 1.0)),
        })
        self.stats = Stats()
        self.ctx = context_class(str(self.root), proc_root=str(write_proc(tmp_path / "proc")),
                                 cache_files=False, stats=self.stats)
        self.killer = killer or RecordingKiller()
        self.clock = FakeClock()
        self.engine = kill_engine(CONFIG, killer=self.killer, clock=self.clock, stats=self.stats,
                                  cgroup_fs=str(self.root))

    @property
    def hog_psi(self) -> Path:
        return self.root / HOG / "memory.pressure"

    def tick(self) -> None:
        self.engine.tick(self.ctx)
        self.clock.advance(1)

    def problems(self, fname: str = "memory.pressure") -> dict[str, int]:
        """Problem counters of one file name (the fake cgroups lack some files on purpose)."""
        stats = self.ctx.read_stats
        return {k: stats.get(f"{k}:{fname}", 0) for k in PROBLEMS}

    def kills(self) -> list[str]:
        return [os.path.relpath(p, self.root) for p in self.killer.killed]

    def repair(self) -> None:
        p = self.hog_psi
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            p.rmdir()
        elif p.exists():  # a FIFO
            p.unlink()
        p.write_text(HEALTHY_PSI)


def _garbage(p: Path) -> None:
    p.write_text("this is not pressure stall information\n")


def _short(p: Path) -> None:
    p.write_text(HEALTHY_PSI[: HEALTHY_PSI.index("full") + 14])  # cut inside the full line


def _empty(p: Path) -> None:
    p.write_text("")


def _binary(p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 8)


def _huge(p: Path) -> None:
    p.write_text("some " + "x" * (1 << 20) + "\n")


def _fifo(p: Path) -> None:
    p.unlink()
    os.mkfifo(p)


def _directory(p: Path) -> None:
    p.unlink()
    p.mkdir()


def _missing(p: Path) -> None:
    p.unlink()


def _dangling(p: Path) -> None:
    p.unlink()
    p.symlink_to(p.parent / "no-such-file")


def _eacces(p: Path) -> None:
    target = sysfs_write_only_file()
    if target is None:
        pytest.skip("no write-only sysfs file on this host to make a read fail with EACCES")
    p.unlink()
    p.symlink_to(target)


FAULTS = {
    # name: (breaks memory.pressure, heading it is counted under)
    "garbage": (_garbage, "malformed"),
    "short read": (_short, "malformed"),
    "empty": (_empty, "malformed"),
    "binary": (_binary, "malformed"),
    "huge": (_huge, "malformed"),
    "fifo that never gets a writer": (_fifo, "malformed"),
    "directory": (_directory, "unreadable"),
    "EACCES": (_eacces, "unreadable"),
    "missing": (_missing, "missing"),
    "dangling symlink": (_dangling, "missing"),
}


def test_healthy_tree_fires_and_kills_the_hog(tmp_path):
    bench = Bench(tmp_path)
    bench.tick()
    assert bench.kills() == [HOG]
    assert bench.problems() == dict.fromkeys(PROBLEMS, 0)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_unreadable_pressure_never_kills_and_is_counted(tmp_path, fault):
    bench = Bench(tmp_path)
    breaker, heading = FAULTS[fault]
    breaker(bench.hog_psi)
    for _ in range(3):
        bench.tick()
    assert bench.kills() == []
    assert bench.ctx.read_stats[f"{heading}:memory.pressure"] >= 3
    assert bench.ctx.tick == 3
    bench.repair()
    bench.tick()
    assert bench.kills() == [HOG]


class VanishesAfterListing(OomdContext):
    """Removes the hog's directory right after the patterns were resolved (the listing), before
    its files are read: the window between ``readdir`` and ``openat``."""

    remove: Path | None = None

    def resolve(self, patterns):
        rows = super().resolve(patterns)
        if self.remove is not None and self._tree.in_refresh:
            shutil.rmtree(self.remove)
            self.remove = None
        return rows


def test_cgroup_vanishing_between_listing_and_reading_is_counted_and_not_killed(tmp_path):
    bench = Bench(tmp_path, context_class=VanishesAfterListing)
    bench.tick()  # the hog's row exists from now on
    bench.killer.killed.clear()
    bench.ctx.remove = bench.root / HOG
    bench.tick()
    bench.tick()
    assert bench.kills() == []
    assert bench.ctx.read_stats["vanished"] >= 1  # on the first of its files that was read
    assert bench.ctx.read_stats["evicted"] >= 1
    assert bench.ctx.tick == 3


class RemovesVictimAfterRanking(VanishAwareKiller):
    """The victim's directory disappears between ranking and the kill (the process exited and
    systemd removed the unit's cgroup): the kill through its directory fd finds nothing."""

    def kill(self, abspath, dir_fd=None, **kw):
        if Path(abspath).exists():
            shutil.rmtree(abspath)
        return super().kill(abspath, dir_fd, **kw)


def test_victim_vanishing_between_ranking_and_kill_fails_that_kill_and_the_tick_goes_on(tmp_path):
    killer = RemovesVictimAfterRanking()
    bench = Bench(tmp_path, killer=killer)
    bench.tick()
    # The hog was chosen first; its kill failed because its directory was gone. oomd then
    # tries the next candidate (reference §4.11), and so do we: the decoy is a candidate that
    # was ranked on its own, readable numbers.
    assert bench.kills() == [HOG, DECOY]
    assert not (bench.root / HOG).exists()
    bench.tick()
    bench.tick()
    assert bench.ctx.tick == 3
    assert bench.ctx.read_stats["evicted"] >= 1


def test_garbage_in_proc_files_is_counted_and_the_tick_goes_on(tmp_path):
    bench = Bench(tmp_path)
    proc = Path(bench.ctx.proc_root)
    (proc / "meminfo").write_text("MemTotal: lots\n\x00\x01\n")
    (proc / "vmstat").write_text("pswpout\n")
    (proc / "pressure" / "memory").write_text("garbage\n")
    bench.tick()
    stats = bench.ctx.read_stats
    assert stats["system_malformed"] >= 1
    assert bench.kills() == [HOG]  # the hog's own file is healthy: the detector still sees it


# The tests below take every free fd away for a tick or two. The daemon has imported what its
# tick needs by then (numpy loads numpy.ma on the first np.unique of the first tick); a test
# that starts with an exhausted tick would otherwise fail on that import, not on pyoomd's code.


def alone(test):
    """Run the test body in a forked child: only this thread exists there, so no thread left
    behind by an earlier test can close an fd (opening a hole) while the fds are exhausted."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                test(*args, **kwargs)
                report = b""
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                report = traceback.format_exc().encode() or b"failed"
            os.write(w, report)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            report = f.read()
        os.waitpid(pid, 0)
        if report:
            pytest.fail("in the forked child:\n" + report.decode(), pytrace=False)

    return run


@alone
def test_fd_exhaustion_is_counted_never_kills_and_the_next_tick_recovers(tmp_path):
    bench = Bench(tmp_path)
    with no_free_fds():
        bench.tick()
        bench.tick()
    assert bench.kills() == []
    stats = bench.ctx.read_stats
    assert stats["unreadable"] + stats["dir_unopenable"] >= 1
    bench.tick()  # the cgroups whose directories could not be opened are retried at once
    assert bench.kills() == [HOG]


@alone
def test_cgroup_directory_that_cannot_be_opened_is_counted(tmp_path):
    bench = Bench(tmp_path)
    with no_free_fds():
        bench.tick()  # the first tick opens the cgroup directories: EMFILE for each
    assert bench.ctx.read_stats["dir_unopenable"] >= 1
    assert bench.kills() == []


@alone
def test_no_kill_when_a_worse_cgroup_cannot_be_opened_for_lack_of_fds(tmp_path):
    """The partial view: the known cgroups read fine through cached fds, but a new, worse one
    cannot be opened. Ranking what could be read would kill the wrong cgroup."""

    class CachingContext(OomdContext):
        def __init__(self, *a, **kw):
            kw["cache_files"] = True
            super().__init__(*a, **kw)

    bench = Bench(tmp_path, context_class=CachingContext)
    bench.engine.rulesets[0].ruleset.post_action_delay = 60
    bench.tick()
    assert bench.kills() == [HOG]
    bench.clock.advance(61)
    write_tree(bench.root, {"workload.slice/worse.service": cgroup(
        64 << 20, mem_pressure=psi(some=(99.0, 99.0, 99.0), full=(99.0, 99.0, 99.0)))})
    with no_free_fds():
        bench.tick()
    assert bench.kills() == [HOG]  # nothing more while the view was partial
    # (the directory may open in an fd a parked leaf gave back; its files then cannot)
    st = bench.ctx.read_stats
    assert st["dir_unopenable"] + st["fd_exhausted"] >= 1
    bench.clock.advance(1)
    bench.tick()
    assert bench.kills() == [HOG, "workload.slice/worse.service"]
