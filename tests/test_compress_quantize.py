"""Fixed-point conversion (rounding modes, saturation) and binarization."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from accel.compress import binarize, from_fixed_point, integer_range, to_fixed_point
from accel.errors import ConfigError

HALVES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.2, 1.7, -1.7, 0.0]
EXPECTED = {
    "ROUND":         [-2, -2, 0, 0, 2, 2, -1, 2, -2, 0],
    "FLOOR":         [-3, -2, -1, 0, 1, 2, -2, 1, -2, 0],
    "CEIL":          [-2, -1, 0, 1, 2, 3, -1, 2, -1, 0],
    "DOWN":          [-2, -1, 0, 0, 1, 2, -1, 1, -1, 0],
    "UP":            [-3, -2, -1, 1, 2, 3, -2, 2, -2, 0],
    "HALF_UP":       [-3, -2, -1, 1, 2, 3, -1, 2, -2, 0],
    "HALF_DOWN":     [-2, -1, 0, 0, 1, 2, -1, 2, -2, 0],
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_rounding_modes_on_halves(mode):
    assert to_fixed_point(HALVES, 8, 0, rounding=mode).tolist() == EXPECTED[mode]


def test_mode_names_are_case_insensitive_with_qonnx_aliases():
    assert to_fixed_point(HALVES, 8, 0, rounding="half_even").tolist() == EXPECTED["ROUND"]
    assert to_fixed_point(HALVES, 8, 0, rounding="down").tolist() == EXPECTED["DOWN"]


def _exact_reference(value: float, frac_bits: int, mode: str, low: int, high: int) -> int:
    scaled = Fraction(value) * Fraction(2) ** frac_bits
    low_int, fraction = math.floor(scaled), scaled - math.floor(scaled)
    nearest_down = fraction < Fraction(1, 2)
    away = math.ceil(abs(scaled)) if scaled >= 0 else -math.ceil(abs(scaled))
    result = {
        "ROUND": round(scaled),  # Fraction rounds halves to even
        "FLOOR": low_int,
        "CEIL": math.ceil(scaled),
        "DOWN": math.trunc(scaled),
        "UP": away,
        "HALF_UP": (low_int if nearest_down else low_int + 1) if fraction != Fraction(1, 2)
        else (low_int + 1 if scaled > 0 else low_int),
        "HALF_DOWN": (low_int if nearest_down else low_int + 1) if fraction != Fraction(1, 2)
        else (low_int if scaled > 0 else low_int + 1),
    }[mode]
    return min(max(result, low), high)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.floats(-300, 300) | st.sampled_from([-2.5, 1.5, 0.5]),
                       min_size=1, max_size=8),
       total_bits=st.integers(1, 16), frac_bits=st.integers(-3, 10), signed=st.booleans(),
       mode=st.sampled_from(sorted(EXPECTED)))
def test_against_exact_rational_arithmetic(values, total_bits, frac_bits, signed, mode):
    # QONNX's half-rounding formulas add 0.5 in floating point; exclude the values where that
    # addition itself rounds (e.g. 0.49999999999999994), on which QONNX, and so accel, differ
    # from exact arithmetic by design.
    assume(all((abs(v) * 2.0**frac_bits + 0.5) - 0.5 == abs(v) * 2.0**frac_bits for v in values))
    low, high = integer_range(total_bits, signed)
    result = to_fixed_point(values, total_bits, frac_bits, signed, mode)
    assert result.dtype == np.int64
    assert result.tolist() == [_exact_reference(value, frac_bits, mode, low, high)
                               for value in values]


def test_agrees_with_qonnx_rounding():
    intquant = pytest.importorskip("qonnx.custom_op.general.intquant")
    values = np.random.default_rng(0).uniform(-20, 20, 2000).round(1)  # many exact .5 cases
    values = np.concatenate([values, HALVES])
    for mode in sorted(EXPECTED):
        reference = intquant.resolve_rounding_mode(mode)(values)
        assert to_fixed_point(values, 16, 0, rounding=mode).tolist() == reference.tolist(), mode


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [True, False])
def test_ranges_agree_with_qonnx(signed, narrow):
    intquant = pytest.importorskip("qonnx.custom_op.general.intquant")
    for bits in (1, 2, 8):
        assert integer_range(bits, signed, narrow) == (
            intquant.min_int(signed, narrow, bits), intquant.max_int(signed, narrow, bits))


def test_saturation_and_ranges():
    assert integer_range(8) == (-128, 127)
    assert integer_range(8, signed=False) == (0, 255)
    assert integer_range(8, narrow=True) == (-127, 127)
    assert integer_range(8, signed=False, narrow=True) == (0, 254)
    assert integer_range(1) == (-1, 0)
    assert to_fixed_point([1e9, -1e9, np.inf, -np.inf], 8, 4).tolist() == [127, -128, 127, -128]
    assert to_fixed_point([-3.0, 300.0], 8, 0, signed=False).tolist() == [0, 255]
    assert to_fixed_point([-1e9], 8, 0, narrow=True).tolist() == [-127]


def test_fixed_point_round_trip_error_is_half_a_step():
    values = np.random.default_rng(1).uniform(-7.9, 7.9, 1000)
    integers = to_fixed_point(values, 16, 12)
    restored = from_fixed_point(integers, 12)
    assert np.max(np.abs(restored - values)) <= 2.0 ** -13
    assert from_fixed_point(np.array([3, -5]), -2).tolist() == [12.0, -20.0]


@pytest.mark.parametrize("call", [
    lambda: to_fixed_point([1.0], 0, 0),
    lambda: to_fixed_point([1.0], 54, 0),
    lambda: to_fixed_point([1.0], 8, 1.5),
    lambda: to_fixed_point([np.nan], 8, 0),
    lambda: to_fixed_point([1.0], 8, 0, rounding="STOCHASTIC"),
    lambda: from_fixed_point(np.array([0.5]), 2),
])
def test_bad_fixed_point_arguments(call):
    with pytest.raises(ConfigError):
        call()


def test_binarize_signs_map_zero_to_plus_one():
    weights = np.array([[0.0, -0.5, 2.0], [-1.0, -3.0, 0.25]])
    signs, scale = binarize(weights)
    assert signs.tolist() == [[1, -1, 1], [-1, -1, 1]]
    assert scale.tolist() == [1.0, 1.0]


def test_binarize_per_filter_scale_is_the_row_mean_magnitude():
    filters = np.random.default_rng(2).normal(size=(4, 3, 3, 3))
    signs, scale = binarize(filters, per_filter_scale=True)
    assert scale.shape == (4,)
    assert scale == pytest.approx(np.abs(filters).reshape(4, -1).mean(axis=1))
    # XNOR-Net: the mean magnitude is the scale that minimises ||W - scale * sign(W)||.
    row = filters[0].ravel()
    best = np.sum((row - scale[0] * signs[0].ravel()) ** 2)
    for other in (scale[0] * 0.9, scale[0] * 1.1):
        assert np.sum((row - other * signs[0].ravel()) ** 2) > best
