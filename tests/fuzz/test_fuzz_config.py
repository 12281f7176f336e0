"""Fuzzing the config pipeline: any text gives an Engine or a clear ConfigError (issue 7 item 3).

CI runs a fixed, modest number of examples per target (derandomized, so a run is repeatable; set
``PYOOMD_FUZZ_EXAMPLES`` for more). ``scripts/fuzz_config.py`` is the long run (>= 100,000 inputs)
over the same generators and properties. Every input runs under a hang guard.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzgen

EXAMPLES = int(os.environ.get("PYOOMD_FUZZ_EXAMPLES", "150"))
HANG_GUARD = 10.0
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PROMISES = {
    "structured": "near-valid config compiles or fails with a located error",
    "mutated": "config with syntax damage fails with a located error",
    "raw": "arbitrary text never escapes as another exception",
    "deep": "deeply nested JSON is a config error, not a recursion error",
    "dropin": "drop-in over a valid base merges or fails with a located error",
    "values": "value parsers return their type or raise ValueError",
}


def test_every_fuzz_target_has_a_test():
    assert set(PROMISES) == set(fuzzgen.TARGETS)


@pytest.mark.parametrize("target", sorted(PROMISES), ids=[PROMISES[t] for t in sorted(PROMISES)])
@fuzz
@given(data=st.data())
def test_fuzz_target_holds_its_property(target, data):
    with fuzzgen.time_limit(HANG_GUARD):
        fuzzgen.run_target(target, fuzzgen.HypothesisChooser(data))
