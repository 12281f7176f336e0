"""_fastcg.pick_psi (pressure_above's and pressure_rising_beyond's choice of the cgroup to
watch) against the numpy expression it replaced, which is oomd's PressureAbove.cpp rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from oomd import _fastcg


def reference(values: np.ndarray, valid: np.ndarray) -> int:
    p = np.where(valid[:, None], values, np.float32(0)).astype(np.float32, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):     # 3.4e38 * 3 is inf, as in C
        score = p[:, 0] * np.float32(3) + p[:, 1] * np.float32(2) + p[:, 2]
    best = int(np.argmax(score))
    return best if score[best] > np.float32(0) else -1


PSI = st.one_of(st.sampled_from([0.0, 0.01, 1.0, 33.33, 99.99, 100.0, 1e30, float("nan"),
                                 -0.0, 3.4e38]),
                st.floats(0, 100, width=32))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float32, (n, 3), elements=PSI), hnp.arrays(np.bool_, n))))
def test_pick_psi_matches_the_numpy_rule(case):
    values, valid = case
    assert _fastcg.pick_psi(np.ascontiguousarray(values), valid.view(np.uint8)) == \
        reference(values, valid)


def test_pick_psi_ties_go_to_the_first_row_and_rounding_is_float32():
    values = np.array([[1, 1, 1], [2, 0, 0], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], np.float32)
    # 6 == 6: the first of the tie; float32 rounding of 0.3 + 0.4 + 0.3 decides nothing here
    assert _fastcg.pick_psi(values, np.ones(4, np.uint8)) == 0
    assert _fastcg.pick_psi(values, np.array([0, 1, 1, 1], np.uint8)) == 1
    assert _fastcg.pick_psi(values[2:], np.ones(2, np.uint8)) == 0
    assert _fastcg.pick_psi(np.zeros((3, 3), np.float32), np.ones(3, np.uint8)) == -1
