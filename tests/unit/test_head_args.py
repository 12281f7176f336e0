"""oomd HEAD's plugin arguments (reference §10) and the kill decisions ``--compat head`` changes,
on injected values (kill plugins) or small fake trees (detectors, the killer, hooks)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from detectorfakes import Rig
from killfakes import MB, FakeContext
from oomd import dbus, logs, plugin
from oomd.compat import HEAD, V050
from oomd.engine import ActionContext
from oomd.kill import Killer, KillResult
from oomd.plugin import MonitoredResources, PluginConstructionContext, PluginRet
from oomd.plugins import base_kill
from oomd.plugins.systemd_restart import SystemdRestart


class Recording:
    """``Killer.kill`` with HEAD's keyword arguments; records them."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def kill(self, abspath, dir_fd=None, *, reap_memory=True, **kw):
        self.calls.append((abspath, kw))
        return KillResult(True, killed=1, method="recorded", verified=True)


def make(name, args, compat=V050, killer=None, **ctx_kw):
    p = plugin.create(name)
    ctx = PluginConstructionContext(killer=killer or Recording(), compat=compat, **ctx_kw)
    assert p.init(MonitoredResources(), {"cgroup": "w/*", **args}, ctx) == 0, p.init_error
    return p


def run(p, ctx):
    with logs.capture() as lines:
        ret = p.run(ctx)
    return ret, logs.messages(lines)


def victims(p):
    return [a for a, _ in p.killer.calls]


# -- kill plugins: arguments ------------------------------------------------------------------


def head_kwargs(calls):
    """The killer calls with only oomd HEAD's keyword arguments (the exit's follow-up ones,
    ``exit_timeout`` and ``on_event``, are in every call)."""
    return [(path, {k: v for k, v in kw.items() if k in ("kernel_kill", "user_xattrs")})
            for path, kw in calls]


def test_kernelkill_and_user_xattrs_reach_the_killer():
    ctx = FakeContext({"w/a": {"current_usage": MB, "mem_pressure": (9, 9, 9)}})
    p = make("kill_by_pressure", {"resource": "memory", "kernelkill": "true"})
    run(p, ctx)
    assert head_kwargs(p.killer.calls) == [("/fake/w/a", {"kernel_kill": True})]
    p = make("kill_by_pressure", {"resource": "memory"}, compat=HEAD)
    run(p, ctx)
    assert head_kwargs(p.killer.calls) == [("/fake/w/a", {"user_xattrs": True})]
    p = make("kill_by_pressure", {"resource": "memory"})
    run(p, ctx)
    assert head_kwargs(p.killer.calls) == [("/fake/w/a", {})]  # 0.5.0: nothing of HEAD's


def test_log_kmemalloc_prekill_copies_the_profile_to_kmsg_after_the_record(tmp_path, monkeypatch):
    profile = tmp_path / "oomd_kmemalloc_profiler"
    profile.write_text("slab kmalloc-64 123\nslab dentry 456\n")
    monkeypatch.setattr(base_kill, "KMEMALLOC_PROFILER", str(profile))

    class K:
        lines = []

        def kill_record(self, body):
            self.lines.append("oomd kill: " + body)

        def write(self, text):
            self.lines.append(text)

    ctx = FakeContext({"w/a": {"current_usage": MB, "mem_pressure": (9, 9, 9)}}, kmsg=K())
    p = make("kill_by_pressure", {"resource": "memory", "dry": "true",
                                  "log_kmemalloc_prekill": "true"})
    run(p, ctx)
    assert ctx.kmsg.lines[1:] == ["slab kmalloc-64 123", "slab dentry 456"]
    assert ctx.kmsg.lines[0].startswith("oomd kill: ")
    profile.unlink()
    K.lines = []
    run(p, ctx)
    assert len(ctx.kmsg.lines) == 1  # no profile: just the record


def test_biased_swap_kill_ranks_by_swap_beyond_the_protected_share(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        1048576 kB\nSwapTotal:        524288 kB\n")  # ratio 0.5
    ctx = FakeContext({
        "w/protected": {"current_usage": MB, "swap_usage": 300 * MB, "memory_protection": 500 * MB},
        "w/bare": {"current_usage": MB, "swap_usage": 200 * MB, "memory_protection": 0},
        "w/unknown": {"current_usage": MB, "swap_usage": 60 * MB},
    })
    plain = make("kill_by_swap_usage", {"meminfo_location": str(meminfo)})
    assert [ctx.relpath(int(r)) for r in plain.rank(ctx, ctx.resolve(plain.cgroup))] == [
        "w/protected", "w/bare", "w/unknown"]
    biased = make("kill_by_swap_usage", {"meminfo_location": str(meminfo),
                                         "biased_swap_kill": "true"})
    # excess: protected 300-250 = 50MB, bare 200MB, unknown protection: all 60MB
    assert [ctx.relpath(int(r)) for r in biased.rank(ctx, ctx.resolve(biased.cgroup))] == [
        "w/bare", "w/unknown", "w/protected"]
    _, lines = run(biased, ctx)
    assert 'Picked "w/bare" (1MB) based on swap usage at 200MB exceeding swapLow value by 200MB' \
        in lines


def test_biased_swap_kill_without_memtotal_in_int32_range_uses_raw_swap(tmp_path):
    # oomd HEAD keeps MemTotal (bytes) in an int: 4 GiB wraps to 0, so no ratio
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        4194304 kB\nSwapTotal:        524288 kB\n")
    p = make("kill_by_swap_usage", {"meminfo_location": str(meminfo), "biased_swap_kill": "1"})
    assert p.swap_ratio == 0
    ctx = FakeContext({"w/a": {"swap_usage": 300 * MB, "memory_protection": 500 * MB}})
    assert p.swap_excess(ctx, np.array([0], np.int32)).tolist() == [300 * MB]


# -- kill plugins: what --compat head changes --------------------------------------------------


def test_zero_anon_candidate_is_skipped_with_compat_head_only():
    tree = {"w/empty": {"current_usage": 9 * MB, "mem_pressure": (90, 90, 90), "anon_usage_strict": 0},
            "w/unknown": {"current_usage": 8 * MB, "mem_pressure": (80, 80, 80)},
            "w/busy": {"current_usage": MB, "mem_pressure": (10, 10, 10), "anon_usage_strict": MB}}
    for compat, victim in ((V050, "/fake/w/empty"), (HEAD, "/fake/w/unknown")):
        p = make("kill_by_pressure", {"resource": "memory"}, compat=compat)
        run(p, FakeContext(tree))
        assert victims(p) == [victim]  # a missing anon value is not 0: not skipped


def test_swap_filter_is_strict_with_compat_head():
    tree = {"w/at": {"current_usage": MB, "swap_usage": 64 * MB}}
    old = make("kill_by_swap_usage", {"threshold": "64M"})
    new = make("kill_by_swap_usage", {"threshold": "64M"}, compat=HEAD)
    ctx = FakeContext(tree)
    assert len(old.rank(ctx, ctx.resolve(old.cgroup))) == 1
    assert len(new.rank(ctx, ctx.resolve(new.cgroup))) == 0


def test_pg_scan_zero_rates_are_no_candidates_with_compat_head():
    ctx = FakeContext({"w/idle": {"current_usage": MB, "pg_scan_rate": 0},
                       "w/unread": {"current_usage": MB}})
    old = make("kill_by_pg_scan", {})
    new = make("kill_by_pg_scan", {}, compat=HEAD)
    assert len(old.rank(ctx, ctx.resolve(old.cgroup))) == 2
    assert len(new.rank(ctx, ctx.resolve(new.cgroup))) == 0


def test_memory_growth_log_texts_with_compat_head():
    def mem(cur, eff, growth=1.0):
        return {"current_usage": cur * MB, "effective_usage": eff * MB, "memory_growth": growth}

    ctx = FakeContext({"w/big": mem(60, 60), "w/small": mem(10, 4)})
    p = make("kill_by_memory_size_or_growth", {}, compat=HEAD)
    rows = p.rank(ctx, ctx.resolve(p.cgroup))
    with logs.capture() as lines:
        p.log_kill_target(ctx, ctx.row_of("w/big"), rows)
        p.log_kill_target(ctx, ctx.row_of("w/small"), rows)
    assert logs.messages(lines) == [
        'Picked "w/big" (60MB) based on size > 50% of sibling total 70MB with kill preference '
        "NORMAL",
        f'Picked "w/small" (10MB) based on effective usage of {4 * MB}MB with kill preference '
        "NORMAL"]


def test_growing_size_percentile_zero_means_threshold_zero_with_compat_head():
    def mem(cur, eff, growth):
        return {"current_usage": cur * MB, "effective_usage": eff, "memory_growth": growth}

    # effective usages -5 and 0: 0.5.0's threshold is the smallest (-5), HEAD's is 0
    ctx = FakeContext({"w/neg": mem(1, -5, 3.0), "w/zero": mem(1, 0, 1.0)})
    args = {"growing_size_percentile": "0", "size_threshold": "100"}
    old = make("kill_by_memory_size_or_growth", args)
    new = make("kill_by_memory_size_or_growth", args, compat=HEAD)
    assert old.classify(ctx, ctx.resolve(old.cgroup)).growth_threshold == -5
    assert new.classify(ctx, ctx.resolve(new.cgroup)).growth_threshold == 0


def test_compat_head_logs_memory_stat_before_the_kill_and_heads_failure_line(tmp_path):
    d = tmp_path / "w" / "a"
    d.mkdir(parents=True)
    (d / "memory.stat").write_text("anon 4096\nfile 0\n")

    class Failing(Recording):
        def kill(self, abspath, dir_fd=None, *, reap_memory=True, **kw):
            return KillResult(False, reason="no process to kill")

    class Ctx(FakeContext):
        def dir_fd(self, row):
            return os.open(tmp_path / self.paths[row], os.O_RDONLY | os.O_DIRECTORY)

    ctx = Ctx({"w/a": {"current_usage": MB, "mem_pressure": (9, 9, 9)}})
    p = make("kill_by_pressure", {"resource": "memory"}, compat=HEAD, killer=Failing())
    ret, lines = run(p, ctx)
    assert ret == PluginRet.CONTINUE
    i = lines.index("memory.stat for w/a: ")
    assert lines[i + 1:i + 3] == ["anon 4096", "file 0"]
    assert "Failed to kill cgroup w/a: no process to kill" in lines


# -- the killer: kernelkill, user xattrs ---------------------------------------------------------


class FakeKernel(Killer):
    """A killer on a plain directory: writing cgroup.kill empties the cgroup, as the kernel
    would; freezes are recorded."""

    def __init__(self):
        super().__init__(background=False)  # the exit is followed inline (cgroup.events)
        self.freezes: list[bytes] = []

    def _write_kill(self, dir_fd):
        super()._write_kill(dir_fd)
        fd = os.open("cgroup.events", os.O_WRONLY | os.O_TRUNC, dir_fd=dir_fd)
        os.write(fd, b"populated 0\nfrozen 0\n")
        os.close(fd)

    def _write_freeze(self, dir_fd, value):
        super()._write_freeze(dir_fd, value)
        self.freezes.append(value)


def cgroup_dir(tmp_path, kill_file=True):
    d = tmp_path / "victim"
    d.mkdir()
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (d / "cgroup.freeze").write_text("0\n")
    (d / "cgroup.procs").write_text("")
    if kill_file:
        (d / "cgroup.kill").write_text("")
    return d


def test_kernelkill_freezes_kills_through_cgroup_kill_and_thaws(tmp_path):
    d = cgroup_dir(tmp_path)
    k = FakeKernel()
    with logs.capture() as lines:
        result = k.kill(str(d), kernel_kill=True, reap_memory=False)
    assert result.success and result.method == "cgroup.kill"
    assert k.freezes == [b"1", b"0"]
    assert (d / "cgroup.kill").read_text() == "1"
    assert logs.messages(lines)[0] == f"Trying to kill {d} with cgroup.freeze and cgroup.kill"


def test_kernelkill_without_cgroup_kill_fails_without_signalling(tmp_path):
    d = cgroup_dir(tmp_path, kill_file=False)
    k = FakeKernel()
    k._signal = lambda *a: pytest.fail("kernelkill must not fall back to signals")
    result = k.kill(str(d), kernel_kill=True, reap_memory=False)
    assert not result.success
    assert k.freezes == [b"1", b"0"]  # thawed again


def test_user_xattrs_are_written_beside_the_trusted_ones(tmp_path):
    d = cgroup_dir(tmp_path)
    try:
        os.setxattr(d, "user.probe", b"1")
        os.setxattr(d, "trusted.probe", b"1")
    except OSError as e:
        pytest.skip(f"{tmp_path} has no user/trusted xattrs ({e.strerror})")
    FakeKernel().kill(str(d), user_xattrs=True, reap_memory=False, kill_uuid="abc")
    for ns in ("trusted", "user"):
        assert os.getxattr(d, f"{ns}.oomd_kill_uuid") == b"abc"
        assert os.getxattr(d, f"{ns}.oomd_ooms") == b"1"
        assert os.getxattr(d, f"{ns}.oomd_kill") == b"1"
    FakeKernel().kill(str(d), reap_memory=False)
    assert os.getxattr(d, "trusted.oomd_ooms") == b"2"
    assert os.getxattr(d, "user.oomd_ooms") == b"1"  # 0.5.0 mode: trusted. only


# -- swap_free's swapout_bps_threshold --------------------------------------------------------------


def test_swap_free_waits_for_the_swap_out_rate(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=[("/dev/s", 1000 << 10, 950 << 10)],
              vmstat={"pswpin": 0, "pswpout": 1000, "pgscan_kswapd": 0, "pgscan_direct": 0})
    rig.add("swap_free", threshold_pct="10", swapout_bps_threshold="1000000")

    def more_swapping(i):
        rig.set_proc(vmstat={"pswpin": 0, "pswpout": 1000 + 500 * i, "pgscan_kswapd": 0,
                             "pgscan_direct": 0})

    assert rig.run(3, between=more_swapping) == "SCC"   # 500 pages/s = 2048000 bps
    assert rig.log[-1] == "SwapOut rate 2048000bps is greater than the threshold of 1000000bps"


def test_swap_free_without_the_threshold_ignores_the_rate(tmp_path):
    rig = Rig(tmp_path, {}, swap_devices=[("/dev/s", 1000 << 10, 950 << 10)])
    rig.add("swap_free", threshold_pct="10")
    assert rig.run(1) == "C"
    assert not any("SwapOut" in ln for ln in rig.log)


# -- systemd_restart's machine_type ---------------------------------------------------------------


def test_machine_bus_is_reached_through_the_leaders_root(tmp_path):
    (tmp_path / "netos").write_text("NAME=netos\nLEADER=4242\nCLASS=container\n")
    assert dbus.machine_bus_address("netos", str(tmp_path)) == (
        "unix:path=/proc/4242/root/run/dbus/system_bus_socket")
    assert dbus.machine_bus_address(".host", str(tmp_path)) == "SYSTEM"
    for bad in ("../etc", ".hidden", ""):
        with pytest.raises(ValueError):
            dbus.machine_bus_address(bad, str(tmp_path))
    with pytest.raises(OSError):
        dbus.machine_bus_address("absent", str(tmp_path))


def test_systemd_restart_restarts_in_the_machine(monkeypatch):
    calls = []
    monkeypatch.setattr(dbus, "call_systemd_manager",
                        lambda method, unit, **kw: calls.append((method, unit, kw)) or "/job/1")
    p = SystemdRestart()
    p.set_name("systemd_restart")
    assert p.init(MonitoredResources(), {"service": "wedge.service", "machine_type": "netos"},
                  PluginConstructionContext()) == 0
    with logs.capture() as lines:
        assert p.restart()
    assert calls == [("RestartUnit", "wedge.service", {"timeout": dbus.DEFAULT_TIMEOUT,
                                                        "machine": "netos"})]
    assert logs.messages(lines) == ['Restarting systemd service "wedge.service" on machine=netos']


# -- prekill hooks matching by xattr --------------------------------------------------------------


def test_prekill_hook_matches_a_victim_carrying_its_xattr(tmp_path):
    from oomd.engine import Engine

    hook = plugin.create("dummy_prekill_hook", plugin.PREKILL_HOOK_REGISTRY)
    assert hook.init(MonitoredResources(), {"xattr": "user.oomd_hook"},
                     PluginConstructionContext()) == 0
    engine = Engine([], [hook])
    marked, plain = tmp_path / "marked", tmp_path / "plain"
    marked.mkdir()
    plain.mkdir()
    try:
        os.setxattr(marked, "user.oomd_hook", b"")
    except OSError as e:
        pytest.skip(f"no user xattrs on {tmp_path}: {e.strerror}")
    ac = ActionContext("r", "g")
    for d, fires in ((marked, True), (plain, False)):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with logs.capture() as lines:
                got = engine.fire_prekill_hook(d.name, str(d), ac, fd)
        finally:
            os.close(fd)
        assert (got is not None) == fires
        assert logs.messages(lines) == ([f"Prekill hook fired on {d.name}"] if fires else [])
