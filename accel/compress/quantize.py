"""Fixed-point quantization and binarization.

Rounding is the golden model's (``accel.nn.golden.float_round``): QONNX's modes, formula for
formula, so a mode read from a QONNX file means the same thing here and in every hardware model.
"""

from __future__ import annotations

import numpy as np

from accel.compress._checks import check_int, check_weights
from accel.errors import ConfigError
from accel.nn.golden import float_round

# 53 bits: every integer of the range, and both saturation bounds, are exact in float64.
MAX_TOTAL_BITS = 53


def integer_range(total_bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """(lowest, highest) integer of a ``total_bits``-wide register.

    ``narrow`` is QONNX's narrow-range flag: it drops the most negative value of a signed range
    (-127..127 at 8 bits) and the largest value of an unsigned one (0..254).
    """
    total_bits = check_int("total_bits", total_bits, low=1, high=MAX_TOTAL_BITS)
    if signed:
        lowest, highest = -(1 << (total_bits - 1)), (1 << (total_bits - 1)) - 1
        return (lowest + 1 if narrow else lowest), highest
    highest = (1 << total_bits) - 1
    return 0, (highest - 1 if narrow else highest)


def to_fixed_point(values, total_bits: int, frac_bits: int, signed: bool = True,
                   rounding: str = "ROUND", narrow: bool = False) -> np.ndarray:
    """Integers ``q`` with ``q * 2**-frac_bits`` approximating ``values``, saturated to the
    ``total_bits``-wide range. Returns int64 of ``values``' shape.

    ``frac_bits`` may be negative (steps coarser than 1) or exceed ``total_bits``.
    Infinite values saturate; NaN is refused.
    """
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError("values to quantize must be numbers") from exc
    if np.isnan(array).any():
        raise ConfigError("values to quantize contain NaN")
    frac_bits = check_int("frac_bits", frac_bits)
    lowest, highest = integer_range(total_bits, signed, narrow)
    scaled = np.ldexp(array, frac_bits)
    # Saturating before rounding is equivalent (the bounds are integers and every mode is
    # monotonic and keeps integers) and keeps infinities out of the rounding arithmetic.
    clipped = np.clip(scaled, lowest, highest)
    return float_round(clipped, rounding).astype(np.int64)


def from_fixed_point(integers, frac_bits: int) -> np.ndarray:
    """The real values ``integers * 2**-frac_bits`` as float64."""
    array = np.asarray(integers)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ConfigError(f"fixed-point values must be an integer array, got dtype {array.dtype}")
    frac_bits = check_int("frac_bits", frac_bits)
    return np.ldexp(array.astype(np.float64), -frac_bits)


def binarize(weights, per_filter_scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Signs and scales of a binarized weight tensor: ``weights ~ signs * scale[row]``.

    ``signs`` (int64, ``weights``' shape) is +1 for w >= 0 and -1 otherwise (zero maps to +1, as
    QONNX's BipolarQuant). ``scale`` (float64, one per row along axis 0, i.e. per output neuron
    or filter) is the row's mean |w| with ``per_filter_scale`` (XNOR-Net's optimal scale) and
    1.0 otherwise, so callers broadcast it the same way in both cases.
    """
    weights = check_weights("weights", weights)
    signs = np.where(weights >= 0, 1, -1).astype(np.int64)
    rows = weights.shape[0]
    if per_filter_scale:
        if weights.size == 0:
            scale = np.ones(rows, dtype=np.float64)
        else:
            scale = np.abs(weights).reshape(rows, -1).mean(axis=1)
    else:
        scale = np.ones(rows, dtype=np.float64)
    return signs, scale
