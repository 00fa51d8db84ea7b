"""A binary-weight CNN on the YodaNN-style engine: which layers run how, as plain data.

The engine (``accel.hw.yodann.rtl``) computes one layer at a time from on-chip activation
buffers; a layer is a binary-weight convolution followed by the output stage (per-channel bias,
optional ReLU, a fixed-point scale and the activation format's rounding and saturation) and an
optional max-pool on the output path. ``map_network`` groups the network's layers into such
engine layers and fixes their schedule: output-channel passes of at most ``n_out`` channels,
input-channel passes of at most ``n_in`` (partial sums kept at full width between them) and
vertical stripes of at most ``w_max`` image columns (``k - 1`` columns of overlap).

Accepted layer chains (everything else is refused with the layer's name):
  Conv2d [Relu] [Quant] [Relu] [MaxPool2d]     binary weights, stride 1, k <= k_max
  Conv2d MultiThreshold [MaxPool2d]            per-channel thresholds on the accumulator: what
                                               an importer folds batch-norm and per-channel
                                               (XNOR-Net) weight scales into, exactly
  [Flatten] Dense [Relu] [Quant] [Relu]        binary weights: a k x k convolution without
                                               padding on the k x k image when the flattened
                                               tensor is square (k <= k_max), else a 1 x 1
                                               convolution of a 1 x 1 image whose channels are
                                               the flattened values
The network's first layer is its input quantizer, applied by the host; a Quant between engine
layers must requantize by a ratio ``multiplier / 2**shift`` (power-of-two scales give
multiplier 1), exactly what the output stage's fixed-point scale computes. A Reshape to
(N, F) counts as a Flatten. The last layer may keep a per-channel scale or real bias: the engine
outputs its integers and the host applies them (``golden.output_values``), as for FINN and EIE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from accel.errors import ConfigError
from accel.nn import golden
from accel.nn.ir import (Conv2d, Dense, Flatten, MaxPool2d, MultiThreshold, Network, Quant, Relu,
                         Reshape)

MAX_SCALE_BITS = 16  # the output stage's multiplier (alpha) width
# cycles from the output stage's read of the pool memory to its write of the same value
# (``accel.hw.yodann.rtl``: read, registered word, compare, write)
POOL_READ_TO_WRITE = 3


@dataclass(frozen=True)
class EngineConfig:
    """The engine's size: ``n_out`` sum-of-products units, ``n_in`` input channels in the image
    memory and filter bank, ``k_max`` x ``k_max`` taps per SoP, image rows of ``w_max``
    columns, ``activation_bits`` per activation (two's complement)."""

    n_out: int = 32
    n_in: int = 32
    k_max: int = 7
    w_max: int = 32
    activation_bits: int = 12
    # adder levels between the SoP trees' pipeline registers (after their first level; 0:
    # no register inside a tree, as an ASIC at YodaNN's clock needs none)
    sop_stage_levels: int = 2


@dataclass(frozen=True)
class Requant:
    """The output stage's fixed-point scale: ``clamp(round(value * multiplier / 2**shift))``
    by a QONNX rounding mode into ``[lo, hi]``."""

    multiplier: int
    shift: int
    rounding: str
    lo: int
    hi: int


@dataclass(frozen=True)
class Stripe:
    """Output columns ``[out_start, out_start + out_cols)`` of a layer, computed from image
    columns ``[out_start - padding, ... + out_cols + k - 1)`` (those outside the image are
    zeros and are not stored)."""

    out_start: int
    out_cols: int


@dataclass
class EngineLayer:
    name: str  # the convolution (or dense) layer's name
    weights: np.ndarray  # (out, in, k, k) of +1/-1
    bias: np.ndarray  # (out,) integers, in accumulator units
    height: int  # input image
    width: int
    kernel: int
    padding: int
    relu: bool
    requant: Requant | None  # None: the raw accumulator (+ bias) leaves the engine
    pool: int  # 1: none
    out_bits: int  # what the output stage writes
    out_signed: bool
    source_layers: list[str] = field(default_factory=list)  # every network layer it covers
    # instead of the requantization: per output channel, count the thresholds the
    # accumulator reaches (out, steps), then count + offset (bipolar: 2 count - 1)
    thresholds: np.ndarray | None = None
    threshold_offset: int = 0
    bipolar_out: bool = False

    @property
    def in_channels(self) -> int:
        return self.weights.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weights.shape[0]

    @property
    def conv_height(self) -> int:
        """Output rows computed: the convolution's, less those a pool drops."""
        rows = self.height + 2 * self.padding - self.kernel + 1
        return rows // self.pool * self.pool

    @property
    def conv_width(self) -> int:
        cols = self.width + 2 * self.padding - self.kernel + 1
        return cols // self.pool * self.pool

    @property
    def out_height(self) -> int:
        return self.conv_height // self.pool

    @property
    def out_width(self) -> int:
        return self.conv_width // self.pool

    @property
    def out_values(self) -> int:
        return self.out_channels * self.out_height * self.out_width

    @property
    def in_values(self) -> int:
        return self.in_channels * self.height * self.width


@dataclass
class YodaNNMapping:
    name: str
    config: EngineConfig
    layers: list[EngineLayer]
    input_shape: tuple[int, int, int]  # (C, H, W) the host sends, pixel by pixel (HWC)
    output_shape: tuple[int, ...]  # the golden model's final tensor, per frame
    output_hwc: bool  # the engine writes the final tensor pixel by pixel: reorder it
    count_events: bool = True
    # weight, bias, threshold and program memories writable through a parameter port
    # (``accel.hw.yodann.loading``)
    loadable_weights: bool = False

    @property
    def buffer_values(self) -> int:
        """Values of the larger of a layer's input and output: each activation buffer's
        size (the two alternate as source and destination)."""
        return max(max(layer.in_values, layer.out_values) for layer in self.layers)

    @property
    def psum_words(self) -> int:
        """Pixels of partial sums kept between input-channel passes (0: no layer needs it)."""
        words = [layer.conv_height * max(s.out_cols for s in stripes(layer, self.config))
                 for layer in self.layers if input_passes(layer, self.config) > 1]
        return max(words, default=0)

    @property
    def out_bits(self) -> int:
        return max(max(layer.out_bits for layer in self.layers), self.config.activation_bits)


def output_passes(layer: EngineLayer, config: EngineConfig) -> list[tuple[int, int]]:
    """(first channel, channels) of each output-channel pass."""
    n = config.n_out
    return [(start, min(n, layer.out_channels - start))
            for start in range(0, layer.out_channels, n)]


def input_passes(layer: EngineLayer, config: EngineConfig) -> int:
    return -(-layer.in_channels // config.n_in)


def input_pass_ranges(layer: EngineLayer, config: EngineConfig) -> list[tuple[int, int]]:
    n = config.n_in
    return [(start, min(n, layer.in_channels - start))
            for start in range(0, layer.in_channels, n)]


def stripes(layer: EngineLayer, config: EngineConfig) -> list[Stripe]:
    """Vertical stripes whose image span (output columns + k - 1) fits ``w_max``, each a
    whole number of pool windows wide."""
    span = config.w_max - layer.kernel + 1
    per = span // layer.pool * layer.pool
    if per < 1:
        raise ConfigError(f"layer {layer.name}: --w-max {config.w_max} cannot hold one "
                          f"{layer.kernel}x{layer.kernel} window"
                          + (f" per {layer.pool}x{layer.pool} pool window" * (layer.pool > 1))
                          + f"; use at least {layer.kernel - 1 + layer.pool}")
    return [Stripe(start, min(per, layer.conv_width - start))
            for start in range(0, layer.conv_width, per)]


def _requant(name: str, quant: Quant, in_scale: float) -> Requant:
    ratio = Fraction(in_scale) / Fraction(quant.scale)
    shift = ratio.denominator.bit_length() - 1
    if ratio.denominator != 1 << shift or ratio.numerator >= 1 << MAX_SCALE_BITS:
        raise ConfigError(
            f"layer {quant.name}: requantizes {name}'s accumulator by {float(ratio):g}, which "
            f"the output stage's {MAX_SCALE_BITS}-bit fixed-point scale cannot hold exactly "
            "(it takes multiplier / 2**shift; power-of-two scales always fit)")
    lo, hi = quant.int_range
    return Requant(ratio.numerator, shift, quant.rounding.upper(), lo, hi)


def map_network(network: Network, config: EngineConfig, *, count_events: bool = True,
                loadable_weights: bool = False) -> YodaNNMapping:
    """Group ``network`` into engine layers (see the module documentation) and check that
    each fits ``config``."""
    _check_config(config)
    types = network.tensor_types()  # (shape, datatype) after each layer
    layers = list(network.layers)
    if not layers or not isinstance(layers[0], Quant):
        raise ConfigError(f"network {network.name}: YodaNN takes a network whose first layer "
                          "quantizes its input (the host applies it)")
    shape, in_type = types[1]
    _check_activation(layers[0].name, in_type, config)
    if len(shape) not in (2, 4):
        raise ConfigError(f"network {network.name}: YodaNN takes (N, C, H, W) or (N, F) inputs")
    shape = (shape[1], 1, 1) if len(shape) == 2 else tuple(shape[1:])
    input_shape = shape
    index = 1
    engine_layers: list[EngineLayer] = []
    current = shape  # (C, H, W) in the activation buffer, pixel by pixel
    flattened = False
    while index < len(layers):
        layer = layers[index]
        start = index
        if isinstance(layer, Flatten) or isinstance(layer, Reshape) \
                and len(types[index + 1][0]) == 2:
            flattened = True
            index += 1
            continue
        if isinstance(layer, Conv2d):
            if flattened:
                raise ConfigError(f"layer {layer.name}: a convolution after a Flatten")
            conv, weights, kernel, padding = layer, layer.weights, layer.kernel, layer.padding
            if layer.stride != 1:
                raise ConfigError(f"layer {layer.name}: stride {layer.stride}; the engine "
                                  "convolves at stride 1")
            if layer.padding >= layer.kernel:
                raise ConfigError(f"layer {layer.name}: padding {layer.padding} for a "
                                  f"{layer.kernel}x{layer.kernel} kernel; the engine pads at "
                                  "most kernel - 1 columns (a wider border computes nothing)")
        elif isinstance(layer, Dense):
            conv = layer
            channels, height, width = current
            if not flattened and (height, width) != (1, 1):
                raise ConfigError(f"layer {layer.name}: a dense layer on a {height}x{width} "
                                  "image without a Flatten before it multiplies each position "
                                  "alone; the engine runs dense layers on flattened tensors")
            if height == width and height <= config.k_max:
                weights = layer.weights.reshape(layer.outputs, channels, height, width)
                kernel, padding = height, 0
            else:
                # a 1 x 1 image whose channels are the buffer's values in their order (HWC)
                weights = layer.weights.reshape(layer.outputs, channels, height, width) \
                    .transpose(0, 2, 3, 1).reshape(layer.outputs, -1, 1, 1)
                kernel, padding = 1, 0
                current = (channels * height * width, 1, 1)
            flattened = False
        else:
            raise ConfigError(f"layer {layer.name} ({layer.op}): YodaNN runs convolutions and "
                              "dense layers (each with [Relu] [Quant] [Relu] [MaxPool2d] after "
                              "it); this layer has no place on the engine")
        if not conv.weight_type.bipolar:
            raise ConfigError(f"layer {conv.name}: {conv.weight_type.describe()} weights; "
                              "YodaNN takes binary (+1/-1) weights")
        if kernel > config.k_max:
            raise ConfigError(f"layer {conv.name}: a {kernel}x{kernel} kernel; the engine's "
                              f"SoP units have {config.k_max}x{config.k_max} taps (--k-max)")
        dtype = types[index][1]
        acc_type = golden.output_type(conv, dtype)
        index += 1
        relu = False
        requant = None
        pool = 1
        thresholds = None
        out_type = acc_type
        while index < len(layers) and isinstance(layers[index],
                                                 (Relu, Quant, MaxPool2d, MultiThreshold)):
            follower = layers[index]
            if isinstance(follower, MultiThreshold):
                if relu or requant is not None or thresholds is not None or pool > 1:
                    break
                if follower.channels_last:
                    raise ConfigError(f"layer {follower.name}: channels-last thresholds after "
                                      f"{conv.name}; the engine's layers are channels-first")
                thresholds = follower
                _check_activation(follower.name, follower.out_type, config)
            elif isinstance(follower, Relu):
                if requant is not None and relu or thresholds is not None:
                    break
                relu = True
            elif isinstance(follower, Quant):
                if requant is not None or thresholds is not None or pool > 1:
                    break
                requant = _requant(conv.name, follower, acc_type.scale)
                _check_activation(follower.name, follower.out_type, config)
            else:
                if isinstance(conv, Dense) or pool > 1:
                    break
                if follower.stride != follower.kernel:
                    raise ConfigError(f"layer {follower.name}: max-pool stride "
                                      f"{follower.stride} != kernel {follower.kernel}; the "
                                      "output path pools non-overlapping windows")
                pool = follower.kernel
            out_type = golden.output_type(follower, out_type)
            index += 1
        if (conv.channel_scale is not None or conv.real_bias is not None) \
                and index < len(layers):
            raise ConfigError(f"layer {conv.name}: per-channel scales or a real bias before "
                              f"{layers[index].name}; they must be folded into thresholds")
        if requant is None and thresholds is None and index < len(layers):
            raise ConfigError(f"layer {conv.name}: its accumulator feeds "
                              f"{layers[index].name} without a quantizer; the engine's "
                              "activations between layers are quantized")
        channels, height, width = current
        bias = np.zeros(conv.weights.shape[0], np.int64) if conv.bias is None else \
            conv.bias.astype(np.int64)
        engine = EngineLayer(conv.name, np.asarray(weights, np.int64), bias, height, width,
                             kernel, padding, relu, requant, pool, out_type.bits, out_type.signed,
                             [x.name for x in layers[start:index]])
        if thresholds is not None:
            engine.thresholds = np.broadcast_to(
                thresholds.thresholds, (engine.out_channels, thresholds.steps)).astype(np.int64)
            engine.bipolar_out = thresholds.is_bipolar
            engine.threshold_offset = 0 if thresholds.is_bipolar else thresholds.offset
        if engine.conv_height < 1 or engine.conv_width < 1:
            raise ConfigError(f"layer {conv.name}: no output pixel on a {height}x{width} image")
        stripes(engine, config)  # refuses a w_max too small
        engine_layers.append(engine)
        current = (engine.out_channels, engine.out_height, engine.out_width)
    if not engine_layers:
        raise ConfigError(f"network {network.name}: no convolution or dense layer to run")
    final = types[-1][0]
    return YodaNNMapping(network.name, config, engine_layers, input_shape, tuple(final[1:]),
                         len(final) == 4, count_events, loadable_weights)


def _check_activation(name: str, dtype, config: EngineConfig) -> None:
    """Activations are ``activation_bits`` two's complement in the engine's memories."""
    needed = dtype.bits + (not dtype.signed)
    if needed > config.activation_bits:
        raise ConfigError(f"layer {name}: its {dtype.describe()} activations need "
                          f"{needed} bits in two's complement; the engine holds "
                          f"{config.activation_bits} (--activation-bits)")


def _check_config(config: EngineConfig) -> None:
    from accel.hw.architecture import check_positive

    for flag, value in (("--n-out", config.n_out), ("--n-in", config.n_in),
                        ("--k-max", config.k_max), ("--w-max", config.w_max),
                        ("--activation-bits", config.activation_bits)):
        check_positive(flag, value, integer=True, maximum=4096)
    if config.activation_bits < 2 or config.activation_bits > 32:
        raise ConfigError(f"--activation-bits {config.activation_bits}: 2 to 32")
    if config.k_max > 15:
        raise ConfigError(f"--k-max {config.k_max}: at most 15")


ROUNDING_CODES = {"FLOOR": 0, "CEIL": 1, "DOWN": 2, "UP": 3, "ROUND": 4, "HALF_EVEN": 4,
                  "HALF_UP": 5, "HALF_DOWN": 6}


@dataclass(frozen=True)
class Pass:
    """One pass of the engine: an output-channel group of one layer, on one stripe, over
    one input-channel group; the RTL's sequencer runs these in order (its program)."""

    layer: int
    in_base: int  # first input channel
    in_count: int  # C: cycles per output pixel on the SoPs
    out_base: int
    out_count: int
    stripe: Stripe
    first: bool  # the first input-channel pass of this output group and stripe
    last: bool  # the last: the output stage runs, else partial sums are stored
    weight_base: int  # first filter word in the weight memory
    bias_base: int  # first output channel's entry in the bias/scale memory
    source: int  # activation buffer read (0 or 1); the other is written
    pooled: bool = False  # the layer max-pools: its output stage keeps running maxima

    def pixel_cycles(self) -> int:
        """P: an output pixel takes max(C, the output stage's drain of its channels); on a
        pooled layer also more than the pool memory's read-to-write distance, so a channel's
        running maximum is written before the next pixel's value for it reads it."""
        if not self.last:
            return self.in_count
        return max(self.in_count, self.out_count,
                   POOL_READ_TO_WRITE + 1 if self.pooled else 1)


def layer_filter_words(layer: EngineLayer, config: EngineConfig) -> int:
    """Weight-memory words of a layer: one per output-channel group and input channel."""
    return len(output_passes(layer, config)) * layer.in_channels


def filter_word_count(mapping: "YodaNNMapping") -> int:
    return sum(layer_filter_words(layer, mapping.config) for layer in mapping.layers)


def threshold_rows(mapping: "YodaNNMapping") -> int:
    """Threshold-memory words: one per output channel of each layer with thresholds."""
    return sum(layer.out_channels for layer in mapping.layers if layer.thresholds is not None)


def passes(mapping: "YodaNNMapping") -> list[Pass]:
    config = mapping.config
    program, weight_base, bias_base = [], 0, 0
    for index, layer in enumerate(mapping.layers):
        ranges = input_pass_ranges(layer, config)
        for out_base, out_count in output_passes(layer, config):
            for stripe in stripes(layer, config):
                for k, (in_base, in_count) in enumerate(ranges):
                    program.append(Pass(index, in_base, in_count, out_base, out_count, stripe,
                                        k == 0, k == len(ranges) - 1,
                                        weight_base + out_base // config.n_out
                                        * layer.in_channels + in_base,
                                        bias_base + out_base, index % 2, layer.pool > 1))
        weight_base += layer_filter_words(layer, config)
        bias_base += layer.out_channels
    return program


def carry_count_bits(config: EngineConfig) -> int:
    """Bits of a SoP unit's carry count (0 to k_max**2)."""
    return (config.k_max ** 2).bit_length()


def filter_word_bits(config: EngineConfig) -> int:
    """A weight-memory and filter-bank word: every unit's taps, then every unit's carry count."""
    return config.n_out * (config.k_max ** 2 + carry_count_bits(config))


def carry_count_field(config: EngineConfig, unit: int) -> slice:
    """Where SoP ``unit``'s carry count lies in a filter word (after every unit's taps)."""
    start = config.n_out * config.k_max ** 2 + unit * carry_count_bits(config)
    return slice(start, start + carry_count_bits(config))


def filter_words(mapping: "YodaNNMapping") -> list[int]:
    """The weight memory: per layer, output-channel group and input channel, one word of
    ``filter_word_bits``: ``n_out`` x ``k_max**2`` weight bits, SoP j's taps in bits
    [j*k_max**2, (j+1)*k_max**2), tap (row i, column jj) of a k x k kernel at
    i * k_max + (k_max - k + jj) (the image bank's newest columns), bit 1 = +1; then SoP j's
    carry count (its -1 weights: x * -1 = ~x + 1, so each adds a carry) in
    ``carry_count_field``. Counting the carries here
    keeps a popcount out of the path from the filter bank to the SoP trees. Unused taps and
    SoPs hold +1: with zero operands they add nothing and raise no carry."""
    config = mapping.config
    km = config.k_max
    taps = km * km
    words = []
    for layer in mapping.layers:
        k = layer.kernel
        for out_base, out_count in output_passes(layer, config):
            for channel in range(layer.in_channels):
                word = (1 << (config.n_out * taps)) - 1
                for j in range(out_count):
                    kernel = layer.weights[out_base + j, channel]
                    for i in range(k):
                        for jj in range(k):
                            if kernel[i, jj] < 0:
                                word &= ~(1 << (j * taps + i * km + km - k + jj))
                    word |= int((kernel < 0).sum()) << carry_count_field(config, j).start
                words.append(word)
    return words


def fill_rows(layer: EngineLayer) -> int:
    """Image rows the filler writes: those some computed output row needs."""
    return min(layer.height, layer.conv_height + layer.kernel - 1 - layer.padding)


def stripe_columns(layer: EngineLayer, stripe: Stripe) -> tuple[int, int]:
    """The image columns a stripe reads, [lo, hi) (its padded columns are not read)."""
    first = stripe.out_start - layer.padding
    return max(first, 0), min(first + stripe.out_cols + layer.kernel - 1, layer.width)
