"""One candidate never makes a kill impossible (issue 13 item 5): a candidate whose values
cannot be read or rendered, or whose kill raises before anything was delivered, is skipped
(counted, logged once) and the search goes on with the next; what happens after a delivered
kill never turns it into a failure. Fake context with injected values, recording killer."""

from __future__ import annotations

import pytest

from killfakes import MB, FakeContext, RecordingKiller, kill_engine, one_action
from support import FakeClock
from oomd import logs
from oomd.kmsg import Kmsg
from oomd.plugins.base_kill import SKIPPED_STAT
from oomd.stats import Stats

BAD = "workload.slice/b"   # the worst candidate: b (30) > c (20) > a (10)


def cg(level: int) -> dict:
    return {"current_usage": level * MB, "effective_usage": level * MB, "memory_growth": 1.0,
            "is_populated": True, "mem_pressure": (level, level, level)}


TREE = {"": {}, "workload.slice": cg(60), "workload.slice/a": cg(10),
        "workload.slice/b": cg(30), "workload.slice/c": cg(20)}


class Raising(FakeContext):
    """``value(metric)`` raises for ``BAD``."""

    def __init__(self, *a, metric: str, **kw):
        super().__init__(*a, **kw)
        self.raise_on = metric

    def value(self, metric, row):
        if metric == self.raise_on and self.paths[row] == BAD:
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
        return super().value(metric, row)


class Run:
    def __init__(self, tmp_path, *, ctx=None, killer=None, plugin="kill_by_memory_size_or_growth",
                 args=None, kmsg=None):
        self.stats = Stats()
        self.ctx = ctx or FakeContext(TREE)
        self.ctx.stats = self.stats
        self.kmsg_path = tmp_path / "kmsg"
        self.ctx.kmsg = kmsg or Kmsg(str(self.kmsg_path))
        self.killer = killer or RecordingKiller()
        self.clock = FakeClock()
        action = {"name": plugin, "args": {"cgroup": "workload.slice/*", **(args or {})}}
        self.engine = kill_engine(one_action(action), killer=self.killer, clock=self.clock,
                                  stats=self.stats)

    def tick(self) -> list[str]:
        with logs.capture() as lines:
            self.engine.tick(self.ctx)
        self.clock.advance(60)
        return logs.messages(lines)

    @property
    def killed(self) -> list[str]:
        return [p.removeprefix("/fake/") for p in self.killer.killed]


def skipped(lines):
    return [ln for ln in lines if ln.startswith("Skipping kill candidate")]


@pytest.mark.parametrize("metric", ["is_populated", "current_usage", "mem_pressure"])
def test_a_candidate_whose_values_raise_is_skipped_and_the_next_one_dies(tmp_path, metric):
    run = Run(tmp_path, ctx=Raising(TREE, metric=metric))
    lines = run.tick()
    assert run.killed == ["workload.slice/c"]
    assert skipped(lines) == [
        f'Skipping kill candidate "{BAD}": UnicodeEncodeError: \'utf-8\' codec can\'t encode '
        "character '\\udcff' in position 0: surrogates not allowed; going on with the next "
        f"candidate (logged once per cgroup, counted in {SKIPPED_STAT})"]
    assert not any("treated as STOP" in ln for ln in lines)
    assert run.stats.get(SKIPPED_STAT) == 1 and run.stats.get("oomd.kills") == 1
    again = run.tick()
    assert run.killed == ["workload.slice/c"] * 2
    assert skipped(again) == [] and run.stats.get(SKIPPED_STAT) == 2


def test_a_candidate_whose_picked_line_raises_is_skipped(tmp_path, monkeypatch):
    run = Run(tmp_path, plugin="kill_by_pressure", args={"resource": "memory"})
    plugin = run.engine.rulesets[0].ruleset.actions[0]
    real = plugin.log_kill_target

    def log_kill_target(ctx, row, peers):
        if ctx.relpath(row) == BAD:
            raise ValueError("cannot render")
        return real(ctx, row, peers)

    monkeypatch.setattr(plugin, "log_kill_target", log_kill_target)
    assert len(skipped(run.tick())) == 1
    assert run.killed == ["workload.slice/c"]


def test_a_kill_that_raises_before_delivery_moves_on_to_the_next(tmp_path):
    class Killer(RecordingKiller):
        def kill(self, abspath, dir_fd=None, **kw):
            if abspath.endswith("/b"):
                raise OSError(24, "Too many open files")
            return super().kill(abspath, dir_fd, **kw)

    run = Run(tmp_path, killer=Killer())
    lines = run.tick()
    assert run.killed == ["workload.slice/c"] and len(skipped(lines)) == 1


def test_nothing_after_a_delivered_kill_makes_it_a_failure(tmp_path):
    class BrokenKmsg:
        def kill_record(self, body):
            raise OSError(28, "No space left on device")

    run = Run(tmp_path, kmsg=BrokenKmsg())
    lines = run.tick()
    assert run.killed == [BAD]               # one kill, never a second victim
    assert run.stats.get("oomd.kills") == 1
    assert any(ln.startswith("Could not complete the kill record (OSError") for ln in lines)
    assert skipped(lines) == []


def test_a_prekill_hook_that_raises_lets_the_kill_go_ahead(tmp_path):
    run = Run(tmp_path)

    class Engine:
        def fire_prekill_hook(self, *a):
            raise RuntimeError("hook broke")

    run.ctx.engine = Engine()   # the plugin asks the context's engine for the hook
    plugin = run.engine.rulesets[0].ruleset.actions[0]
    with logs.capture() as lines:
        plugin.run(run.ctx)
    assert run.killed == [BAD]
    assert any(ln.startswith(f"Prekill hook for {BAD} raised RuntimeError: hook broke")
               for ln in logs.messages(lines))


def test_every_candidate_failing_kills_nothing_and_the_chain_goes_on(tmp_path):
    run = Run(tmp_path)
    orig = run.ctx.value

    def value(metric, row):
        if metric == "is_populated":
            raise KeyError(metric)
        return orig(metric, row)

    run.ctx.value = value
    lines = run.tick()
    assert run.killed == [] and len(skipped(lines)) == 3
    assert run.stats.get(SKIPPED_STAT) == 3
    assert any("returned CONTINUE" in ln for ln in lines)
