"""The golden model: the one definition of the arithmetic every hardware model must match.

Integers throughout: a quantized tensor is an int64 array ``q`` whose real value is
``q * dtype.scale`` (see ``accel.nn.ir``). Rules, all defined here and nowhere else:

- **Quant of a float tensor** (the network input): exactly QONNX's float32 evaluation,
  ``x / scale`` in float32, clamp to the integer range, then round by the layer's mode.
- **Quant of an integer tensor** (requantization): the real value ``q * s_in / s_out`` is an
  exact rational; it is clamped and rounded exactly (``round_rational``). With power-of-two
  scales this is a shift with rounding, which is what hardware implements.
- **Dense** and **Conv2d**: ``acc = q @ W.T + bias`` (convolution: over zero-padded windows) in
  exact integers; the accumulator's datatype is the narrowest that holds the worst case over the
  actual weights (``dense_accumulator_type``).
- **MaxPool2d**: the maximum of each window (for bipolar values, a boolean OR of "is +1").
- **MultiThreshold**: ``count(q >= T)`` per channel with integer thresholds (in units of the
  input scale), then ``count + offset`` (bipolar: ``2 * count - 1``).
- **BipolarQuant**: ``+1`` where the value is >= 0, else ``-1`` (zero maps to +1).
- **Relu**: ``max(q, 0)``. **Flatten** and **Reshape** relabel axes (memory order kept).
- A last layer's per-channel scale or real bias (``ir._check_channel_vectors``) is applied by
  the host to the integer outputs (``output_values``); classes are the argmax of those.
- A float layer (float32 weights) computes in float32, as QONNX's executor does.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from accel.errors import ConfigError
from accel.nn.ir import (ROUNDING_MODES, BipolarQuant, Conv2d, DataType, Dense, Flatten, Layer,
                         MaxPool2d, MultiThreshold, Network, Quant, Relu, Reshape,
                         int_bits_for_range)

MAX_EXACT_BITS = 62  # int64 headroom for exact accumulation


def round_rational(numerator: np.ndarray, denominator: int, mode: str) -> np.ndarray:
    """Exact ``round(numerator / denominator)`` by a QONNX rounding mode (denominator > 0)."""
    p = np.asarray(numerator)
    d = int(denominator)
    q = p // d  # floor
    r = p - q * d  # 0 <= r < d
    mode = mode.upper()
    if mode == "FLOOR":
        return q
    if mode == "CEIL":
        return q + (r > 0)
    if mode == "DOWN":  # toward zero
        return np.where(p < 0, q + (r > 0), q)
    if mode == "UP":  # away from zero
        return np.where(p < 0, q, q + (r > 0))
    twice = 2 * r
    above, exact_half = twice > d, twice == d
    if mode in ("ROUND", "HALF_EVEN"):
        return q + above + (exact_half & (q % 2 == 1))
    if mode == "HALF_UP":  # half away from zero
        return q + above + (exact_half & (p >= 0))
    if mode == "HALF_DOWN":  # half toward zero
        return q + above + (exact_half & (p < 0))
    raise ConfigError(f"unknown rounding mode {mode!r}")


def _round_up(x):
    return np.sign(x) * np.ceil(np.abs(x))


def _round_half_up(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _round_half_down(x):
    return np.sign(x) * np.ceil(np.abs(x) - 0.5)


# QONNX's rounding functions, formula for formula (qonnx 1.0.0 resolve_rounding_mode), so that
# quantizing a float tensor agrees with qonnx's executor on every value, including the rare
# ones where its ``|x| + 0.5`` itself rounds (x = 0.49999999999999994 gives 1 under HALF_UP).
FLOAT_ROUNDING = {
    "ROUND": np.round,
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": _round_up,
    "DOWN": np.fix,
    "HALF_UP": _round_half_up,
    "HALF_DOWN": _round_half_down,
}
assert set(FLOAT_ROUNDING) == set(ROUNDING_MODES)


def float_round(values: np.ndarray, mode: str) -> np.ndarray:
    """Round floats to integral floats by a QONNX rounding mode (case-insensitive)."""
    if not isinstance(mode, str) or mode.upper() not in FLOAT_ROUNDING:
        raise ConfigError(f"unknown rounding mode {mode!r}; choose one of "
                          f"{', '.join(ROUNDING_MODES)}")
    return FLOAT_ROUNDING[mode.upper()](values)


def accumulator_range(layer: Dense | Conv2d, in_type: DataType) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel, the lowest and highest value ``x @ W.T + b`` (or the convolution)
    can take for inputs in range (zero padding lies inside every input range we accept)."""
    w = layer.weights.reshape(layer.weights.shape[0], -1)
    lo_in, hi_in = min(in_type.min_int, 0), max(in_type.max_int, 0)
    bias = np.zeros(w.shape[0], np.int64) if layer.bias is None else layer.bias.astype(np.int64)
    # Exact: int64 when the worst case provably fits it, else Python integers (object arrays),
    # so a range beyond int64 is computed, reported and refused, never wrapped.
    magnitude = int(np.abs(w).max(initial=0)) * max(-lo_in, hi_in) * w.shape[1] \
        + int(np.abs(bias).max(initial=0))
    if magnitude.bit_length() >= 63:
        w, bias = w.astype(object), bias.astype(object)
    hi = np.maximum(w * lo_in, w * hi_in).sum(axis=1) + bias
    lo = np.minimum(w * lo_in, w * hi_in).sum(axis=1) + bias
    return lo, hi


def dense_accumulator_type(layer: Dense | Conv2d, in_type: DataType) -> DataType:
    """Narrowest integer type holding ``x @ W.T + b`` (or the convolution) for every input in
    range."""
    lo, hi = accumulator_range(layer, in_type)
    acc = int_bits_for_range(int(lo.min()), int(hi.max()))
    if acc.bits > MAX_EXACT_BITS:
        raise ConfigError(f"layer {layer.name}: its accumulator needs {acc.bits} bits; the golden "
                          f"model computes at most {MAX_EXACT_BITS}-bit accumulators exactly")
    return DataType(acc.bits, acc.signed, in_type.scale * layer.weight_type.scale)


def any_weights_accumulator_type(inputs: int, in_type: DataType, weight_type: DataType,
                                  scale: float) -> DataType:
    """The narrowest accumulator for a dot product of ``inputs`` terms of any input and any
    weight of their types: a loadable design's (no bias: FINN folds biases into thresholds,
    EIE adds them after the dot product)."""
    corners = [x * w for x in (min(in_type.min_int, 0), max(in_type.max_int, 0))
               for w in (weight_type.min_int, weight_type.max_int)]
    acc = int_bits_for_range(inputs * min(corners), inputs * max(corners))
    if acc.bits > MAX_EXACT_BITS:
        raise ConfigError(f"a loadable {inputs}-input layer needs a {acc.bits}-bit accumulator; "
                          f"the golden model computes at most {MAX_EXACT_BITS} bits exactly")
    return DataType(acc.bits, acc.signed, scale)


def output_type(layer: Layer, in_type: DataType) -> DataType:
    """The datatype of ``layer``'s output for an input of ``in_type``."""
    if isinstance(layer, Quant):
        return layer.out_type
    if isinstance(layer, BipolarQuant):
        return DataType.bipolar_type(layer.scale)
    if isinstance(layer, (Dense, Conv2d)):
        if in_type.is_float:
            return DataType.float32()
        return dense_accumulator_type(layer, in_type)
    if isinstance(layer, MultiThreshold):
        return layer.out_type
    if isinstance(layer, Relu):
        if in_type.is_float:
            return in_type
        t = int_bits_for_range(0, in_type.max_int)
        return DataType(t.bits, False, in_type.scale)
    if isinstance(layer, (Flatten, Reshape, MaxPool2d)):
        return in_type
    raise ConfigError(f"layer {layer.name}: the golden model has no rule for {layer.op}")


def apply_layer(layer: Layer, values: np.ndarray, in_type: DataType) -> np.ndarray:
    """One layer of the golden model: integer (or float32) values in, values out."""
    if isinstance(layer, Quant):
        lo, hi = layer.int_range
        if in_type.is_float:
            scaled = values.astype(np.float32) / np.float32(layer.scale)
            clamped = np.clip(scaled, np.float32(lo), np.float32(hi))
            # float32 cannot hold every bound above 2^24: clamp the integers again
            return np.clip(float_round(clamped, layer.rounding).astype(np.int64), lo, hi)
        ratio = Fraction(in_type.scale) / Fraction(layer.scale)
        worst = int(np.abs(values).max(initial=0)) * ratio.numerator
        numerator = values.astype(object) * ratio.numerator if worst.bit_length() >= 63 \
            else values * ratio.numerator
        rounded = round_rational(numerator, ratio.denominator, layer.rounding)
        return np.clip(rounded, lo, hi).astype(np.int64)
    if isinstance(layer, BipolarQuant):
        return np.where(values >= 0, 1, -1).astype(np.int64)
    if isinstance(layer, Dense):
        if in_type.is_float:
            out = values.astype(np.float32) @ layer.weights.T
            return out + layer.bias.astype(np.float32) if layer.bias is not None else out
        acc = values.astype(np.int64) @ layer.weights.T
        return acc + layer.bias.astype(np.int64) if layer.bias is not None else acc
    if isinstance(layer, Conv2d):
        return _conv2d(layer, values, in_type)
    if isinstance(layer, MaxPool2d):
        windows = _windows(values, layer.kernel, layer.stride)
        return windows.max(axis=(-2, -1))
    if isinstance(layer, MultiThreshold):
        counts = (values[..., None] >= _broadcast_thresholds(layer, values)).sum(axis=-1)
        if layer.is_bipolar:
            return 2 * counts - 1
        return counts + layer.offset
    if isinstance(layer, Relu):
        return np.maximum(values, 0)
    if isinstance(layer, Flatten):
        return values.reshape(values.shape[0], -1)
    if isinstance(layer, Reshape):
        return values.reshape(layer.out_shape(values.shape))
    raise ConfigError(f"layer {layer.name}: the golden model has no rule for {layer.op}")


def _windows(values: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, C, H', W', k, k) views of the k x k windows at the given stride."""
    view = np.lib.stride_tricks.sliding_window_view(values, (kernel, kernel), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


def _conv2d(layer: Conv2d, values: np.ndarray, in_type: DataType) -> np.ndarray:
    dtype = np.float32 if in_type.is_float else np.int64
    p = layer.padding
    padded = np.pad(values.astype(dtype), ((0, 0), (0, 0), (p, p), (p, p)))
    windows = _windows(padded, layer.kernel, layer.stride)  # N, Cin, H', W', k, k
    out = np.einsum("nchwij,ocij->nohw", windows, layer.weights.astype(dtype))
    if layer.bias is not None:
        out = out + layer.bias.astype(dtype)[None, :, None, None]
    return out


def _broadcast_thresholds(layer: MultiThreshold, values: np.ndarray) -> np.ndarray:
    # thresholds (C, steps) against values (N, C, ...): channel axis 1, as QONNX's NC and NCHW
    # layouts, or the last axis (NHWC)
    t = layer.thresholds
    shape = [1] * values.ndim + [t.shape[1]]
    shape[layer.channel_axis % values.ndim] = t.shape[0]
    return t.reshape(shape)


def run(network: Network, inputs: np.ndarray, *, return_all: bool = False):
    """Run ``network`` on a batch. Returns the final values (int64 for a quantized output,
    float32 for a float one) or, with ``return_all``, the list of every layer's output."""
    x = np.asarray(inputs)
    if x.shape[1:] != network.input_shape[1:]:
        raise ConfigError(f"network {network.name} expects inputs of shape "
                          f"(N, {', '.join(map(str, network.input_shape[1:]))}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError("inputs contain NaN or infinity")
    types = network.tensor_types()
    values = x.astype(np.float32) if network.input_type.is_float else x.astype(np.int64)
    trace = []
    for layer, (_, in_type) in zip(network.layers, types):
        values = apply_layer(layer, values, in_type)
        trace.append(values)
    return trace if return_all else values


def real_values(values: np.ndarray, dtype: DataType) -> np.ndarray:
    """The real numbers an integer tensor stands for."""
    return values.astype(np.float64) * dtype.scale


def output_values(network: Network, outputs: np.ndarray) -> np.ndarray:
    """The real numbers the network's (integer or float) outputs stand for, with the last
    layer's per-channel scale and real bias applied (the host's epilogue)."""
    out_type = network.output_type
    values = np.asarray(outputs, dtype=np.float64)
    if not out_type.is_float:
        values = values * out_type.scale
    last = network.layers[-1] if network.layers else None
    if isinstance(last, (Dense, Conv2d)):
        axis = 1 if isinstance(last, Conv2d) else -1
        shape = [1] * values.ndim
        shape[axis % values.ndim] = last.outputs if isinstance(last, Dense) else last.out_channels
        if last.channel_scale is not None:
            values = values * last.channel_scale.reshape(shape)
        if last.real_bias is not None:
            values = values + last.real_bias.astype(np.float64).reshape(shape)
    return values


def classify(network: Network, outputs: np.ndarray) -> np.ndarray:
    """Class predictions from the network's outputs: argmax of their real values (ties to the
    lowest index)."""
    values = output_values(network, outputs)
    return np.argmax(values.reshape(len(values), -1), axis=1)


def predict(network: Network, inputs: np.ndarray) -> np.ndarray:
    """Class predictions of the golden model."""
    return classify(network, run(network, inputs))
