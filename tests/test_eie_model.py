"""The EIE cycle model's recurrences on cases with known answers, and its properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accel.compress.eie import encode_eie
from accel.errors import ConfigError
from accel.hw.eie.model import (DONE_LATENCY, LNZD_LATENCY, PIPELINE_TAIL, simulate_layer,
                                synthetic_layer)


def test_one_pe_without_stalls_costs_its_entries():
    # column 0: 3 entries, column 1: none (still one cycle), column 2: 1 entry + padding
    dense = np.zeros((40, 3), dtype=np.int64)
    dense[[0, 5, 9], 0] = [1, 2, 3]
    dense[35, 2] = 4  # 35 zeros above it: two padding entries, then the entry
    matrix = encode_eie(dense, 1)
    timing = simulate_layer(matrix, np.array([7, 1, 2]), queue_depth=8)
    # broadcast t at LNZD_LATENCY + t (its pointers read on the way); the PE takes column 0
    # from its queue's head the cycle after its push, the later columns as each finishes
    assert timing.cycles == LNZD_LATENCY + 1 + (3 + 1 + 3) + PIPELINE_TAIL + DONE_LATENCY
    assert timing.events["pe.codebook.read"] == 3 + 0 + 3
    assert timing.events["control.lnzd.broadcast"] == 3


def test_zero_activations_are_skipped():
    matrix = encode_eie(np.ones((8, 4), dtype=np.int64), 2)
    timing = simulate_layer(matrix, np.array([0, 5, 0, 0]), queue_depth=1)
    assert timing.events["control.lnzd.broadcast"] == 1
    assert timing.events["pe.mult.mac"] == 8
    empty = simulate_layer(matrix, np.zeros(4, dtype=np.int64))
    assert empty.events["pe.mult.mac"] == 0


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 16), st.floats(0.02, 0.5), st.floats(0.1, 1.0), st.integers(0, 1000))
def test_deeper_queues_never_slow_down_and_efficiency_is_at_most_one(pes, wd, ad, seed):
    matrix, activations = synthetic_layer(64, 96, wd, ad, pes, seed=seed)
    cycles = [simulate_layer(matrix, activations, depth).cycles for depth in (1, 2, 4, 8, 64)]
    assert all(a >= b for a, b in zip(cycles, cycles[1:]))
    timing = simulate_layer(matrix, activations, 8)
    assert 0 < timing.load_balance_efficiency <= 1
    assert timing.events["pe.codebook.read"] == sum(
        int(np.diff(p)[activations != 0].sum()) for p in matrix.pointers)


def test_bad_arguments():
    matrix = encode_eie(np.ones((4, 4), dtype=np.int64), 2)
    with pytest.raises(ConfigError, match="queue depth"):
        simulate_layer(matrix, np.ones(4), queue_depth=0)
    with pytest.raises(ConfigError, match="for 4 columns"):
        simulate_layer(matrix, np.ones(5))
