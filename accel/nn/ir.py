"""The network IR: a graph of typed layers whose tensors carry their datatype.

A ``Network`` is a networkx ``DiGraph`` whose nodes are layer names (attribute ``layer``) and
whose edges carry tensors; accel's networks are chains (one input, one output, each layer fed by
the previous one), which the hardware mappers rely on, and ``Network`` checks that.

Numbers. A quantized tensor is an integer array ``q`` plus a ``DataType`` saying what ``q``
means: the real value is ``q * scale``. Hardware moves ``q``; the scale is bookkeeping that lets
the golden model and QONNX agree on real values. A float tensor (``DataType.float32()``) is not
quantized: only the float path of the golden model runs such layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from accel.errors import ConfigError

# The widest quantized operand (an input, weight or activation) accel accepts. Wider integers
# would not come from a quantizer any exporter emits, and the golden model quantizes float
# inputs in float32, as qonnx does, which is exact for integers below 2^24 and stays in range
# (clamped) up to here.
MAX_OPERAND_BITS = 32
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "FLOOR", "CEIL", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


@dataclass(frozen=True)
class DataType:
    """What the numbers of a tensor are: ``bits``-bit integers (``signed``), or bipolar values
    {-1, +1}, or float32 (``bits == 32`` and ``is_float``), each scaled by ``scale``."""

    bits: int
    signed: bool
    scale: float = 1.0
    bipolar: bool = False
    is_float: bool = False

    @staticmethod
    def float32() -> "DataType":
        return DataType(32, True, 1.0, is_float=True)

    @staticmethod
    def bipolar_type(scale: float = 1.0) -> "DataType":
        return DataType(1, True, scale, bipolar=True)

    @property
    def min_int(self) -> int:
        if self.bipolar:
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        if self.bipolar:
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def scale_is_power_of_two(self) -> bool:
        mantissa, _ = math.frexp(self.scale)
        return self.scale > 0 and mantissa == 0.5

    def describe(self) -> str:
        if self.is_float:
            return "float32"
        kind = "bipolar" if self.bipolar else f"{'s' if self.signed else 'u'}int{self.bits}"
        return kind if self.scale == 1.0 else f"{kind}*{self.scale:g}"


def int_bits_for_range(lo: int, hi: int) -> DataType:
    """The narrowest integer type holding every value in [lo, hi]."""
    if lo >= 0:
        return DataType(max(1, int(hi).bit_length()), False)
    bits = max(int(-lo - 1).bit_length(), int(hi).bit_length()) + 1
    return DataType(bits, True)


@dataclass
class Layer:
    """Base of all layers. ``name`` is unique in its network."""

    name: str

    op = "layer"

    def check(self, in_type: DataType, in_shape: tuple[int, ...]) -> None:
        """Raise ConfigError naming this layer if the input does not fit."""

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape

    def _fail(self, problem: str):
        raise ConfigError(f"layer {self.name} ({self.op}): {problem}")


@dataclass
class Quant(Layer):
    """QONNX ``Quant``: real value to ``bits``-bit integers of ``scale``; clamp, then round."""

    bits: int = 8
    signed: bool = True
    narrow: bool = False
    scale: float = 1.0
    rounding: str = "ROUND"

    op = "quant"

    def __post_init__(self):
        if self.bits < 2 and self.signed:
            self._fail("a 1-bit signed quantizer is bipolar: use BipolarQuant")
        if not 1 <= self.bits <= MAX_OPERAND_BITS or not np.isfinite(self.scale) \
                or self.scale <= 0:
            self._fail(f"needs 1 <= bits <= {MAX_OPERAND_BITS} and a positive finite scale, got "
                       f"{self.bits}, {self.scale}")
        if self.rounding.upper() not in ROUNDING_MODES:
            self._fail(f"unknown rounding mode {self.rounding!r}")

    @property
    def out_type(self) -> DataType:
        return DataType(self.bits, self.signed, self.scale)

    @property
    def int_range(self) -> tuple[int, int]:
        t = self.out_type
        lo = t.min_int + (1 if self.narrow and self.signed else 0)
        hi = t.max_int - (1 if self.narrow and not self.signed else 0)
        return lo, hi


@dataclass
class BipolarQuant(Layer):
    """QONNX ``BipolarQuant``: +scale where x >= 0, else -scale."""

    scale: float = 1.0
    op = "bipolar_quant"


@dataclass
class Dense(Layer):
    """``y = x @ W.T + b``: ``weights`` are integers of ``weight_type`` with shape
    (outputs, inputs); ``bias`` (optional) is in units of the product scale."""

    weights: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.int64))
    weight_type: DataType = field(default_factory=lambda: DataType(8, True))
    bias: np.ndarray | None = None
    channel_scale: np.ndarray | None = None
    real_bias: np.ndarray | None = None

    op = "dense"

    def __post_init__(self):
        w = np.asarray(self.weights)
        if w.ndim != 2:
            self._fail(f"weights must be 2-D (outputs, inputs), got shape {w.shape}")
        self.weights = _check_weight_values(self, w, self.weight_type)
        _check_channel_vectors(self, self.outputs)

    @property
    def outputs(self) -> int:
        return self.weights.shape[0]

    @property
    def inputs(self) -> int:
        return self.weights.shape[1]

    def check(self, in_type, in_shape):
        if in_shape[-1] != self.inputs or len(in_shape) < 2:
            self._fail(f"expects input (N, {self.inputs}) or, per position, (N, ..., "
                       f"{self.inputs}), got {in_shape}")
        if in_type.is_float != self.weight_type.is_float:
            self._fail("mixes float and quantized operands "
                       f"({in_type.describe()} x {self.weight_type.describe()})")

    def out_shape(self, in_shape):
        """(N, outputs); an input with more axes, such as FINN's NHWC (N, H, W, C) MatMul, is
        a batch of positions, each multiplied alone (ONNX MatMul broadcasting)."""
        return (*in_shape[:-1], self.outputs)


def _check_channel_vectors(layer, channels: int) -> None:
    """Validate the optional per-output-channel vectors of a dense or conv layer.

    ``bias``: added to the integer accumulator, in units of the product scale (integers once
    the importer has resolved them). ``channel_scale``: a per-output-channel factor on
    ``weight_type.scale`` (per-channel weight quantizers, XNOR-Net's alpha): the real
    accumulator of channel c is ``acc * in_scale * weight_type.scale * channel_scale[c]``.
    ``real_bias``: a real-valued bias added after that scaling (a float bias no quantizer
    follows). Neither of the last two is integer arithmetic: the importer folds them into the
    thresholds of a following quantizer, and only a network's last layer may keep them (the
    host applies them to the integer outputs, ``golden.output_values``)."""
    for name in ("bias", "channel_scale", "real_bias"):
        value = getattr(layer, name)
        if value is None:
            continue
        value = np.asarray(value)
        if value.shape != (channels,):
            layer._fail(f"{name} shape {value.shape} != ({channels},)")
        if not np.all(np.isfinite(value)):
            layer._fail(f"{name} contains NaN or infinity")
        if name == "channel_scale":
            value = value.astype(np.float64)
            if np.any(value <= 0):
                layer._fail("channel scales must be positive")
        setattr(layer, name, value)


def has_host_epilogue(layer) -> bool:
    """Whether a dense or conv layer carries a per-channel scale or a real bias (see
    ``_check_channel_vectors``), which only a network's last layer may."""
    return getattr(layer, "channel_scale", None) is not None or \
        getattr(layer, "real_bias", None) is not None


def _check_weight_values(layer: Layer, weights: np.ndarray, weight_type: DataType) -> np.ndarray:
    """Validated weights: float32 for a float type, else int64 inside the type's range."""
    if not np.all(np.isfinite(weights)):
        layer._fail("weights contain NaN or infinity")
    if weight_type.is_float:
        return weights.astype(np.float32)
    if weight_type.bits > MAX_OPERAND_BITS:
        layer._fail(f"{weight_type.bits}-bit weights; accel accepts at most {MAX_OPERAND_BITS}")
    if np.any(weights != np.round(weights)):
        layer._fail("integer weights contain non-integers")
    weights = weights.astype(np.int64)
    if weights.size and (weights.min() < weight_type.min_int or weights.max() > weight_type.max_int):
        layer._fail(f"weights outside the {weight_type.describe()} range")
    if weight_type.bipolar and np.any(weights == 0):
        layer._fail("bipolar weights must be -1 or +1")
    return weights


@dataclass
class Conv2d(Layer):
    """2-D convolution on NCHW tensors: ``weights`` (out_channels, in_channels, k, k) integers
    of ``weight_type`` (or float32), symmetric zero ``padding``, ``stride``; ``bias`` in units of
    the product scale."""

    weights: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1), np.int64))
    weight_type: DataType = field(default_factory=lambda: DataType(8, True))
    bias: np.ndarray | None = None
    padding: int = 0
    stride: int = 1
    channel_scale: np.ndarray | None = None
    real_bias: np.ndarray | None = None

    op = "conv2d"

    def __post_init__(self):
        w = np.asarray(self.weights)
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            self._fail(f"weights must be (out, in, k, k), got shape {w.shape}")
        if self.padding < 0 or self.stride < 1:
            self._fail(f"needs padding >= 0 and stride >= 1, got {self.padding}, {self.stride}")
        self.weights = _check_weight_values(self, w, self.weight_type)
        _check_channel_vectors(self, self.out_channels)

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weights.shape[1]

    @property
    def kernel(self) -> int:
        return self.weights.shape[2]

    def check(self, in_type, in_shape):
        if len(in_shape) != 4 or in_shape[1] != self.in_channels:
            self._fail(f"expects input (N, {self.in_channels}, H, W), got {in_shape}")
        if min(in_shape[2:]) + 2 * self.padding < self.kernel:
            self._fail(f"a {self.kernel}x{self.kernel} kernel does not fit input {in_shape}")
        if in_type.is_float != self.weight_type.is_float:
            self._fail("mixes float and quantized operands "
                       f"({in_type.describe()} x {self.weight_type.describe()})")

    def out_shape(self, in_shape):
        size = [(d + 2 * self.padding - self.kernel) // self.stride + 1 for d in in_shape[2:]]
        return (in_shape[0], self.out_channels, *size)


@dataclass
class MaxPool2d(Layer):
    """Max over ``kernel`` x ``kernel`` windows of NCHW tensors, no padding."""

    kernel: int = 2
    stride: int | None = None

    op = "maxpool2d"

    def __post_init__(self):
        if self.stride is None:
            self.stride = self.kernel
        if self.kernel < 1 or self.stride < 1:
            self._fail(f"needs kernel and stride >= 1, got {self.kernel}, {self.stride}")

    def check(self, in_type, in_shape):
        if len(in_shape) != 4 or min(in_shape[2:]) < self.kernel:
            self._fail(f"expects input (N, C, H, W) of at least {self.kernel}x{self.kernel}, "
                       f"got {in_shape}")

    def out_shape(self, in_shape):
        size = [(d - self.kernel) // self.stride + 1 for d in in_shape[2:]]
        return (*in_shape[:2], *size)


@dataclass
class MultiThreshold(Layer):
    """QONNX ``MultiThreshold``: per channel, count the thresholds the input reaches
    (x >= t), then ``out_scale * count + out_bias``. ``thresholds`` (channels or 1, steps) are
    integers in units of the input's scale, ascending along each row."""

    thresholds: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), np.int64))
    out_scale: float = 1.0
    out_bias: float = 0.0
    channels_last: bool = False  # QONNX data_layout NHWC: the channel axis is the last one

    op = "multithreshold"

    def __post_init__(self):
        t = np.asarray(self.thresholds)
        if t.ndim != 2 or t.shape[1] < 1:
            self._fail(f"thresholds must be 2-D (channels, steps), got shape {t.shape}")
        if not np.all(np.isfinite(t)) or np.any(t != np.round(t)):
            self._fail("thresholds must be finite integers in units of the input scale")
        self.thresholds = t.astype(np.int64)
        if np.any(np.diff(self.thresholds, axis=1) < 0):
            self._fail("thresholds must be ascending along each channel")
        offset = self.out_bias / self.out_scale if self.out_scale else math.nan
        if not self.is_bipolar and (self.out_scale <= 0 or offset != round(offset)):
            self._fail("out_bias must be an integer multiple of a positive out_scale "
                       "(or, with one threshold, -out_scale/2: bipolar)")

    @property
    def is_bipolar(self) -> bool:
        """One threshold mapped to {-s, +s} (out_scale 2s, out_bias -s), as FINN's sign."""
        return self.steps == 1 and self.out_scale > 0 and self.out_bias == -self.out_scale / 2

    @property
    def offset(self) -> int:
        """The output integer is count + offset (in units of out_scale)."""
        return int(round(self.out_bias / self.out_scale))

    @property
    def steps(self) -> int:
        return self.thresholds.shape[1]

    @property
    def channel_axis(self) -> int:
        return -1 if self.channels_last else 1

    @property
    def out_type(self) -> DataType:
        if self.is_bipolar:
            return DataType.bipolar_type(self.out_scale / 2)
        offset = self.offset
        t = int_bits_for_range(offset, offset + self.steps)
        return DataType(t.bits, t.signed, self.out_scale)

    def check(self, in_type, in_shape):
        if len(in_shape) < 2:
            self._fail(f"expects a channel axis (N, C, ...), got {in_shape}")
        channels = in_shape[self.channel_axis]
        if self.thresholds.shape[0] not in (1, channels):
            self._fail(f"{self.thresholds.shape[0]} threshold rows for {channels} channels")
        if in_type.is_float:
            self._fail("thresholds on a float tensor; quantize it first")


@dataclass
class Relu(Layer):
    op = "relu"


@dataclass
class Flatten(Layer):
    """Flatten all axes but the batch axis (ONNX Flatten axis=1, or a Reshape to (N, -1))."""

    op = "flatten"

    def out_shape(self, in_shape):
        return (in_shape[0], int(np.prod(in_shape[1:])))


@dataclass
class Reshape(Layer):
    """ONNX Reshape of everything but the batch axis to ``shape`` (0 copies the input's axis,
    one -1 is inferred): the elements keep their memory (NCHW, row-major) order, only the axes
    are relabelled, e.g. a flat (N, 64) input viewed as (N, 1, 8, 8) before a convolution."""

    shape: tuple[int, ...] = ()

    op = "reshape"

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if not self.shape or sum(d == -1 for d in self.shape) > 1 or min(self.shape) < -1:
            self._fail(f"target shape {self.shape} needs at least one axis, at most one -1 and "
                       "no other negative sizes")

    def check(self, in_type, in_shape):
        self.out_shape(in_shape)

    def out_shape(self, in_shape):
        rest = in_shape[1:]
        dims = [rest[i] if d == 0 and i < len(rest) else d for i, d in enumerate(self.shape)]
        if 0 in dims:
            self._fail(f"target {self.shape} copies an axis the input {in_shape} lacks")
        total = int(np.prod(rest))
        known = int(np.prod([d for d in dims if d != -1]))
        if -1 in dims:
            if total % known:
                self._fail(f"cannot reshape {in_shape} to (N, {self.shape})")
            dims[dims.index(-1)] = total // known
        if int(np.prod(dims)) != total:
            self._fail(f"cannot reshape {in_shape} ({total} elements per image) to "
                       f"(N, {', '.join(map(str, dims))})")
        return (in_shape[0], *dims)


class Network:
    """A chain of layers from one input to one output (see the module documentation)."""

    def __init__(self, name: str, input_shape: tuple[int, ...], layers: list[Layer],
                 input_type: DataType | None = None):
        self.name = name
        self.input_shape = tuple(int(d) for d in input_shape)
        self.input_type = input_type or DataType.float32()
        self.graph = nx.DiGraph()
        previous = None
        for layer in layers:
            if layer.name in self.graph:
                raise ConfigError(f"network {name}: two layers named {layer.name}")
            self.graph.add_node(layer.name, layer=layer)
            if previous is not None:
                self.graph.add_edge(previous, layer.name)
            previous = layer.name
        self.metadata: dict[str, str] = {}
        self.tensor_types()  # validates shapes and types now, with the layer's name

    @property
    def layers(self) -> list[Layer]:
        return [self.graph.nodes[n]["layer"] for n in nx.topological_sort(self.graph)]

    def layer(self, name: str) -> Layer:
        if name not in self.graph:
            raise ConfigError(f"network {self.name} has no layer {name}")
        return self.graph.nodes[name]["layer"]

    def tensor_types(self) -> list[tuple[tuple[int, ...], DataType]]:
        """(shape, datatype) of the input and of every layer's output, batch size 1."""
        from accel.nn.golden import output_type  # the one place that defines arithmetic

        shape, dtype = (1, *self.input_shape[1:]), self.input_type
        result = [(shape, dtype)]
        layers = self.layers
        for layer in layers:
            if has_host_epilogue(layer) and layer is not layers[-1]:
                layer._fail("a per-channel scale or real-valued bias must be folded into the "
                            "thresholds of the quantizer after it (or end the network)")
            layer.check(dtype, shape)
            dtype = output_type(layer, dtype)
            shape = layer.out_shape(shape)
            result.append((shape, dtype))
        return result

    @property
    def output_type(self) -> DataType:
        return self.tensor_types()[-1][1]

    def summary(self) -> str:
        lines = [f"network {self.name}: input {self.input_shape} {self.input_type.describe()}"]
        for layer, (shape, dtype) in zip(self.layers, self.tensor_types()[1:]):
            lines.append(f"  {layer.name:24s} {layer.op:16s} -> {shape} {dtype.describe()}")
        return "\n".join(lines)
