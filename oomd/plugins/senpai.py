"""``senpai``: proactive reclaim by steering memory.high (oomd ``plugins/Senpai.cpp``, reference
§4.18). Always returns CONTINUE; never kills.

Each resolved cgroup is tracked by directory inode. Default mode: new cgroups get memory.high
(or ``memory.high.tmp`` where the kernel has it) set to their current usage; then every tick the
stall time of ``memory.pressure``'s ``some total`` since the last look accumulates; above
``pressure_ms`` the limit backs off (grows), otherwise, every ``interval`` ticks, it probes
(shrinks), each time clamped to [limit_min, limit_max] and rounded down to 4 KiB.
``immediate_backoff`` mode instead reclaims a slice of the reclaimable memory every ``interval``
ticks while memory and io pressure stay below their targets (``memory.reclaim`` where the cgroup
has it, else memory.high poked down and straight back to max), optionally lowering
``/proc/sys/vm/swappiness`` meanwhile.

Values come from the context (read at the start of the tick); writes go through the cgroup's
directory fd: the existing file opened write-only, no truncation, no newline. Where oomd aborts
(``memory.pressure`` without ``total=``, ``memory.stat`` without ``active_file``) senpai logs,
forgets the cgroup for this tick and goes on. ``pressure_ms`` must be positive (0 divides by
zero in oomd).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from oomd import logs, parsing
from oomd.errors import PluginArgError
from oomd.names import shown
from oomd.plugin import Arg, BasePlugin, PluginRet, register
from oomd import fs

INT64_MAX = (1 << 63) - 1
GIB = float(1 << 30)
HIGH_TMP_DURATION_US = 20_000_000  # memory.high.tmp is written for 20 s


def _positive_ms(text: str) -> int:
    value = parsing.int64_parse(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be positive")
    return value


@dataclass
class _State:
    limit: int
    last_total: int  # µs
    ticks: int
    cumulative: int = 0  # µs
    probe_bytes: int = 0
    probe_count: int = 0


@register("senpai")
class Senpai(BasePlugin):
    ARGS = (
        Arg("cgroup", parsing.cgroup_patterns, required=True),
        Arg("limit_min_bytes", parsing.uint64_parse, default=100 << 20),
        Arg("limit_max_bytes", parsing.uint64_parse, default=10 << 30),
        Arg("interval", parsing.uint64_parse, default=6),
        Arg("pressure_ms", _positive_ms, default=10),
        Arg("pressure_pct", parsing.double_parse, default=0.1),
        Arg("io_pressure_pct", parsing.double_parse, default=0.1),
        Arg("max_probe", parsing.double_parse, default=0.01),
        Arg("max_backoff", parsing.double_parse, default=1.0),
        Arg("coeff_probe", parsing.double_parse, default=10.0),
        Arg("coeff_backoff", parsing.double_parse, default=20.0),
        Arg("immediate_backoff", parsing.bool_parse, default=False),
        Arg("memory_high_timeout_ms", parsing.milliseconds, default=0),
        Arg("swap_threshold", parsing.double_parse, default=0.8),
        Arg("swapout_bps_threshold", parsing.uint64_parse, default=1 << 20),
        Arg("swap_validation", parsing.bool_parse, default=False),
        Arg("modulate_swappiness", parsing.bool_parse, default=False),
        Arg("log_interval", parsing.uint64_parse, default=60),
    )
    METRICS = ("id", "current_usage", "memory_high", "memory_high_tmp", "memory_max", "memory_min",
               "mem_pressure_some_total", "mem_pressure_some", "io_pressure_some", "active_file",
               "inactive_file", "active_anon", "inactive_anon", "effective_swap_free",
               "effective_swap_max", "effective_swap_util_pct")

    def setup(self, context) -> None:
        try:
            meminfo = fs.read_meminfo(os.path.join(context.proc_root, "meminfo"))
        except OSError:
            raise PluginArgError("Cannot read host MemTotal") from None
        self.host_mem_total = int(meminfo.get("MemTotal", 0))
        self.proc_root = context.proc_root
        self.tracked: dict[int, _State] = {}
        self.log_ticks = 0
        self.has_memory_reclaim: bool | None = None
        self.has_memory_high_tmp: bool | None = None
        self.problems = 0

    # -- run -----------------------------------------------------------------------------------

    def run(self, ctx) -> PluginRet:
        rows = [int(r) for r in ctx.resolve(self.cgroup)]
        self.log_ticks += 1
        do_log = self.log_ticks >= self.log_interval
        if do_log:
            self.log_ticks = 0
        tracked: dict[int, _State] = {}
        for cid, row in sorted((ctx.cgroup_id(r), r) for r in rows):
            state = self.tracked.get(cid)
            if state is None:
                new = self._initialize(ctx, row)
                if new is not None:
                    tracked[cid] = new
                continue
            ok = (self._tick_immediate_backoff(ctx, row, state) if self.immediate_backoff
                  else self._tick(ctx, row, state))
            if not ok:
                continue
            if do_log:
                logs.log(f"cgroup {shown(ctx.relpath(row))} {state.probe_count} probe attempts "
                         f"({state.probe_bytes / GIB:.3f} gb)")
                state.probe_count = 0
                state.probe_bytes = 0
            tracked[cid] = state
        self.tracked = tracked
        return PluginRet.CONTINUE

    # -- reading -------------------------------------------------------------------------------

    def _problem(self, ctx, row: int, what: str) -> None:
        self.problems += 1
        logs.log(f"cgroup {shown(ctx.relpath(row))}: {what}; skipping it this tick", logs.WARNING)

    def _memory_high_tmp(self, ctx, row: int) -> bool | None:
        """Whether this kernel has memory.high.tmp (decided once, from the first cgroup that
        has either file)."""
        if self.has_memory_high_tmp is None:
            if ctx.value("memory_high_tmp", row) is not None:
                self.has_memory_high_tmp = True
            elif ctx.value("memory_high", row) is not None:
                self.has_memory_high_tmp = False
        return self.has_memory_high_tmp

    def _read_memhigh(self, ctx, row: int) -> int | None:
        tmp = self._memory_high_tmp(ctx, row)
        if tmp is None:
            return None
        return ctx.value("memory_high_tmp" if tmp else "memory_high", row)

    def _pressure_total(self, ctx, row: int) -> int | None:
        total = ctx.value("mem_pressure_some_total", row)
        if total is None and ctx.value("mem_pressure_some", row) is not None:
            self._problem(ctx, row, "memory.pressure has no total=")
        return total

    def _reclaimable(self, ctx, row: int) -> int | None:
        active, inactive = ctx.value("active_file", row), ctx.value("inactive_file", row)
        if active is None or inactive is None:
            if ctx.value("anon_usage", row):
                self._problem(ctx, row, "memory.stat lacks active_file/inactive_file")
            return None
        swappable = 0
        system = ctx.system
        if system.swap_total > 0 and system.swappiness > 0:
            free = ctx.value("effective_swap_free", row)
            if free is None:
                return None
            if free > 0:
                aa, ia = ctx.value("active_anon", row), ctx.value("inactive_anon", row)
                if aa is None or ia is None:
                    return None
                swappable = min(free, aa + ia)
        return active + inactive + swappable

    def _limit_min(self, ctx, row: int) -> int | None:
        current = ctx.value("current_usage", row)
        reclaimable = self._reclaimable(ctx, row) if current is not None else None
        memory_min = ctx.value("memory_min", row)
        if current is None or reclaimable is None or memory_min is None:
            return None
        return max(self.limit_min_bytes + current - reclaimable, memory_min)

    def _limit_max(self, ctx, row: int) -> int | None:
        current = ctx.value("current_usage", row)
        if current is None:
            return None
        limit = min(self.host_mem_total, self.limit_max_bytes + current)
        tmp = self._memory_high_tmp(ctx, row)
        if tmp is None:
            return None
        if tmp:
            high = ctx.value("memory_high", row)
            if high is None:
                return None
            limit = min(limit, high)
        memory_max = ctx.value("memory_max", row)
        if memory_max is None:
            return None
        return min(limit, memory_max)

    # -- writing -------------------------------------------------------------------------------

    @staticmethod
    def _write_at(ctx, row: int, name: str, text: str) -> bool:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.dir_fd(row))
        except OSError:
            return False
        try:
            data = text.encode()
            while data:
                n = os.write(fd, data)
                data = data[n:]
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _write_memhigh(self, ctx, row: int, value: int) -> bool:
        tmp = self._memory_high_tmp(ctx, row)
        if tmp is None:
            return False
        if tmp:
            return self._write_at(ctx, row, "memory.high.tmp", f"{value} {HIGH_TMP_DURATION_US}")
        return self._write_at(ctx, row, "memory.high", str(value))

    def _write_memhigh_timeout(self, ctx, row: int, value: int, timeout_ms: int) -> bool:
        """The write in a thread, waited for at most ``timeout_ms``: the kernel can block a
        memory.high write for long when the target is low. On timeout the cgroup is assumed
        valid (checked next tick) and the loop goes on."""
        result: list[bool] = []
        t = threading.Thread(target=lambda: result.append(self._write_memhigh(ctx, row, value)),
                             daemon=True)
        t.start()
        t.join(timeout_ms / 1000.0)
        if t.is_alive():
            logs.log(f"Failed to write memory limit for {shown(ctx.relpath(row))}: "
                     "Timed out waiting execution")
            return True
        return result[0]

    def _reset_memhigh(self, ctx, row: int) -> bool:
        tmp = self._memory_high_tmp(ctx, row)
        if tmp is None:
            return False
        if tmp:
            return self._write_at(ctx, row, "memory.high.tmp", f"{INT64_MAX} 0")
        return self._write_at(ctx, row, "memory.high", str(INT64_MAX))

    def _memory_reclaim(self, ctx, row: int) -> bool | None:
        if self.has_memory_reclaim is None:
            try:
                fd = os.open("cgroup.controllers", os.O_RDONLY | os.O_CLOEXEC,
                             dir_fd=ctx.dir_fd(row))
                try:
                    words = os.read(fd, 4096).decode(errors="replace").split()
                finally:
                    os.close(fd)
            except OSError:
                return None
            if "memory" in words:
                try:
                    os.stat("memory.reclaim", dir_fd=ctx.dir_fd(row))
                    self.has_memory_reclaim = True
                except OSError:
                    self.has_memory_reclaim = False
        return self.has_memory_reclaim

    def _reclaim(self, ctx, row: int, size: int) -> bool:
        if self._memory_reclaim(ctx, row):
            return self._write_at(ctx, row, "memory.reclaim", str(size))
        current = ctx.value("current_usage", row)
        if current is None:
            return False
        limit = current - size
        if self.memory_high_timeout_ms > 0:
            ok = self._write_memhigh_timeout(ctx, row, limit, self.memory_high_timeout_ms)
        else:
            ok = self._write_memhigh(ctx, row, limit)
        return ok and self._reset_memhigh(ctx, row)

    def _set_swappiness(self, value: int) -> None:
        path = os.path.join(self.proc_root, "sys", "vm", "swappiness")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.write(fd, str(value).encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    # -- state machine -------------------------------------------------------------------------

    def _initialize(self, ctx, row: int) -> _State | None:
        start = 0
        if not self.immediate_backoff:
            current = ctx.value("current_usage", row)
            if current is None or not self._write_memhigh(ctx, row, current):
                return None
            start = current
        total = self._pressure_total(ctx, row)
        if total is None:
            return None
        return _State(start, total, self.interval)

    def _adjust(self, ctx, row: int, state: _State, factor: float) -> bool:
        lo = self._limit_min(ctx, row)
        hi = self._limit_max(ctx, row) if lo is not None else None
        if lo is None or hi is None:
            return False
        limit = int(state.limit + state.limit * factor)  # C++: int64 += double, truncated
        limit = max(lo, min(hi, limit)) & ~0xFFF
        state.limit = limit
        state.ticks = self.interval
        state.cumulative = 0
        return self._write_memhigh(ctx, row, limit)

    def _tick(self, ctx, row: int, state: _State) -> bool:
        name = ctx.abspath(row)
        limit = self._read_memhigh(ctx, row)
        if limit is None:
            return False
        if limit != state.limit:
            logs.log(f"cgroup {shown(name)} memory.high {limit} does not match recorded state "
                     f"{state.limit}. Resetting cgroup")
            new = self._initialize(ctx, row)
            if new is None:
                return False
            state.__dict__.update(new.__dict__)
            return True
        total = self._pressure_total(ctx, row)
        if total is None:
            return False
        delta = total - state.last_total
        state.last_total = total
        state.cumulative += delta
        cumulative = state.cumulative
        target_us = self.pressure_ms * 1000
        if cumulative >= target_us:
            error = cumulative // target_us
            factor = (error / self.coeff_backoff) ** 2
            factor = min(factor * self.max_backoff, self.max_backoff)
            if not self._adjust(ctx, row, state, factor):
                return False
            logs.log(f"cgroup {shown(name)} limitgb {limit / GIB:.3f} totalus {total} "
                     f"deltaus {delta} cumus {cumulative} ticks {state.ticks} adjust {factor:.3g}")
        elif state.ticks:
            state.ticks -= 1
        else:
            error = target_us // max(cumulative, 1)
            factor = (error / self.coeff_probe) ** 2
            factor = -min(factor * self.max_probe, self.max_probe)
            if not self._adjust(ctx, row, state, factor):
                return False
            if limit > state.limit:
                state.probe_count += 1
                state.probe_bytes += limit - state.limit
        return True

    def _validate_pressure(self, ctx, row: int) -> bool | None:
        mem = ctx.value("mem_pressure_some", row)
        io = ctx.value("io_pressure_some", row)
        if mem is None or io is None:
            return None
        return (float(max(mem[0], mem[1])) < self.pressure_pct
                and float(max(io[0], io[1])) < self.io_pressure_pct)

    def _validate_swap(self, ctx, row: int) -> bool | None:
        system = ctx.system
        if system.swap_total == 0 or system.swappiness == 0:
            return True
        swap_max = ctx.value("effective_swap_max", row)
        if swap_max is None:
            return None
        if swap_max == 0:
            return True
        util = ctx.value("effective_swap_util_pct", row)
        if util is None:
            return None
        return util >= self.swap_threshold  # sic (reference Appendix B): kept as in oomd

    def _swappiness_factor(self, ctx, row: int) -> float | None:
        if self.swap_threshold <= 0:
            return 0.0
        system = ctx.system
        bps = max(system.swapout_bps_60, system.swapout_bps_300)
        if bps >= self.swapout_bps_threshold:
            return 0.0
        by_rate = 1.0 - bps / self.swapout_bps_threshold
        util = ctx.value("effective_swap_util_pct", row)
        if util is None:
            return None
        if util >= self.swap_threshold:
            return 0.0
        return min(by_rate, 1.0 - util / self.swap_threshold)

    def _tick_immediate_backoff(self, ctx, row: int, state: _State) -> bool:
        if state.ticks:
            state.ticks -= 1
            return True
        valid = self._validate_pressure(ctx, row)
        if valid is None:
            return False
        if self.swap_validation:
            swap_ok = self._validate_swap(ctx, row)
            if swap_ok is None:
                return False
            valid = valid and swap_ok
        if not valid:
            return True
        lo = self._limit_min(ctx, row)
        current = ctx.value("current_usage", row)
        if lo is None or current is None:
            return False
        if current <= lo:
            return True
        original = None
        if self.modulate_swappiness:
            original = ctx.system.swappiness
            factor = self._swappiness_factor(ctx, row)
            if factor is None:
                return False
            self._set_swappiness(int(original * factor))
        try:
            size = int((current - lo) * self.max_probe) & ~0xFFF
            if not self._reclaim(ctx, row, size):
                return False
        finally:
            if original is not None:
                self._set_swappiness(original)
        state.probe_count += 1
        state.probe_bytes += size
        state.ticks = self.interval
        return True
