"""Oracle conformance on a fixed seed set (issue 7 item 2): pyoomd makes oomd 0.5.0's decisions.

The scenarios come from scripts/conformance.py's generator (random trees, counter trajectories
over 4-10 ticks, configs drawn from every plugin of the 0.5.0 binary, kill plugins dry), seeds
0-31. The real oomd runs each in lock-step (oomd.testing.oracle), pyoomd in-process
(oomd.testing.pyoomd_run); kill records, engine lines and the ending must be the same, or the
difference must be a tie broken by docs/compat.md's rule. The long run (>= 1,000 scenarios) is
``python scripts/conformance.py``; its figures are in docs/reliability.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from oomd.testing.oracle import unavailable_reason
from oomd.testing.oracle_cpu import block_device

_why = unavailable_reason()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"oracle: {_why}")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "conformance.py"
spec = importlib.util.spec_from_file_location("conformance", SCRIPT)
conformance = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conformance)

SEEDS = range(32)
DEVICE = block_device()


@pytest.fixture(scope="module")
def outcomes():
    scenarios = [conformance.generate(seed, DEVICE) for seed in SEEDS]
    return {r.scenario.name: (r.kind, r.diff) for r in conformance.run(scenarios)}


def test_generator_is_deterministic_and_its_scenarios_are_safe():
    a, b = conformance.generate(7, DEVICE), conformance.generate(7, DEVICE)
    assert a.to_dict() == b.to_dict()
    assert a.validate() is a and a.lint() == []


def test_generated_configs_cover_every_plugin_of_the_binary():
    names = set()
    for seed in range(200):
        cfg = conformance.generate(seed, DEVICE).config
        for rs in cfg["rulesets"]:
            names.update(p["name"] for group in rs["detectors"] for p in group[1:])
            names.update(a["name"] for a in rs["actions"])
        names.update(h["name"] for h in cfg.get("prekill_hooks", []))
    expected = {*conformance.DETECTORS, *conformance.KILLERS, *conformance.OTHER_ACTIONS,
                "dummy_prekill_hook"}
    assert expected <= names


@pytest.mark.parametrize("seed", SEEDS)
def test_pyoomd_decides_as_oomd_does(outcomes, seed):
    kind, diff = outcomes[f"scn-{seed:05d}"]
    assert kind in ("agree", "tie"), str(diff)
