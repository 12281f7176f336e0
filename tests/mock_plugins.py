"""Test plugins (oomd's ``DEFINE_MOCK_PLUGIN``): they count their calls by an ``id`` argument.

``mock`` args: ``id`` (required), ``ret`` (comma list of continue/stop/async, one per run; the
last repeats), ``raise`` (``run`` or ``prerun``), ``log`` (a line logged in run and prerun),
``pause`` (seconds: ask the invoking ruleset to pause, like a kill plugin's post_action_delay),
``cgroup`` (patterns it monitors, with the metric ``current_usage``).
"""

from __future__ import annotations

from collections import defaultdict

from oomd import logs, parsing
from oomd.cgpath import CgroupPatterns
from oomd.plugin import Arg, BasePlugin, PluginRet, register

RUNS: defaultdict[str, int] = defaultdict(int)
PRERUNS: defaultdict[str, int] = defaultdict(int)
SEEN_CONTEXTS: defaultdict[str, list] = defaultdict(list)

_RETS = {"continue": PluginRet.CONTINUE, "stop": PluginRet.STOP, "async": PluginRet.ASYNC_PAUSE}


def _rets(text: str) -> list[PluginRet]:
    try:
        return [_RETS[t] for t in text.split(",")]
    except KeyError as e:
        raise ValueError(f"unknown return {e.args[0]!r}") from None


def reset() -> None:
    RUNS.clear()
    PRERUNS.clear()
    SEEN_CONTEXTS.clear()


@register("mock")
class MockPlugin(BasePlugin):
    ARGS = (
        Arg("id", str, required=True),
        Arg("ret", _rets, default=[PluginRet.CONTINUE]),
        Arg("raise", str, attr="raise_in", default=""),
        Arg("log", str, default=""),
        Arg("pause", parsing.int_parse, default=None),
        Arg("cgroup", CgroupPatterns.parse, default=None),
    )
    METRICS = ("current_usage",)

    def prerun(self, ctx) -> None:
        PRERUNS[self.id] += 1
        if self.log:
            logs.log(f"prerun {self.log}")
        if self.raise_in == "prerun":
            raise RuntimeError(f"mock {self.id} fails in prerun")

    def run(self, ctx) -> PluginRet:
        n = RUNS[self.id]
        RUNS[self.id] += 1
        ac = ctx.action_context
        SEEN_CONTEXTS[self.id].append((ac.ruleset, ac.detectorgroup) if ac else None)
        if self.log:
            logs.log(f"run {self.log}")
        if self.raise_in == "run":
            raise RuntimeError(f"mock {self.id} fails in run")
        if self.pause is not None:
            ctx.invoking_ruleset.pause_actions(self.pause)
        return self.ret[min(n, len(self.ret) - 1)]
