"""Mapping a network onto FINN-style streaming hardware: one Matrix-Vector-Threshold Unit
(MVTU) per dense layer, folded by PE (output channels in parallel) and SIMD (input elements in
parallel), chained through FIFOs.

Streams carry integers in the golden model's encoding (``accel.nn.golden``): a bipolar element
is one bit (1 means +1, 0 means -1), a signed element is two's complement, an unsigned one is
plain binary. The host computes the network's leading reshapes and input quantizer (a ``Quant``
or ``BipolarQuant``; ``host_layers``) and streams the integers, feature maps (NCHW) pixel by
pixel in NHWC order, anything else in memory order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.hw.common.memory import placement
from accel.nn import golden
from accel.nn.ir import (BipolarQuant, Conv2d, DataType, Dense, Flatten, MaxPool2d,
                         MultiThreshold, Network, Quant, Reshape, int_bits_for_range)


def pack_codes(codes, bits: int) -> int:
    """One memory word or stream beat: code k in bits [k*bits, (k+1)*bits)."""
    word = 0
    for k, code in enumerate(codes):
        word |= (int(code) & ((1 << bits) - 1)) << (k * bits)
    return word


@dataclass(frozen=True)
class Element:
    """How one stream element is encoded: ``bits`` wide, signed two's complement or not, or
    bipolar (one bit)."""

    bits: int
    signed: bool
    bipolar: bool = False

    @staticmethod
    def of(dtype: DataType) -> "Element":
        if dtype.is_float:
            raise ConfigError("FINN streams carry integers; a float tensor cannot be mapped")
        if dtype.bipolar:
            return Element(1, False, True)
        return Element(dtype.bits, dtype.signed)

    @property
    def min_int(self) -> int:
        return DataType(self.bits, self.signed, bipolar=self.bipolar).min_int

    @property
    def max_int(self) -> int:
        return DataType(self.bits, self.signed, bipolar=self.bipolar).max_int

    def encode(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (values > 0).astype(np.int64)
        return values & ((1 << self.bits) - 1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        if self.bipolar:
            return 2 * codes - 1
        if self.signed:
            return np.where(codes >= 1 << (self.bits - 1), codes - (1 << self.bits), codes)
        return codes


# Weight-word bits (over all PEs) one address register may drive. nextpnr does not replicate
# registers: SFC-max's second layer (16 PEs x 256 one-bit lanes, 16-word LUT ROMs) put 4,096
# LUTs on each address bit, and placed and routed alone on ECP5 it reached 110.5 MHz with that
# net as its critical path; with a copy per PE, 155.8 MHz, +164 LUT4 (yosys 0.70, nextpnr 0.11).
# The resource records' designs drive at most 256; the "wide" foldings of bnn-mlp and bnn-cnv
# 2,048.
ADDRESS_FANOUT_BITS = 1024
# A PE's weight word in LUT ROM wider than this gets one read port per slice of at most this
# many bits, each with its own address register (``LayerMapping.weight_read_ports``): SFC-max's
# first layer (784 bits per PE) with one copy per PE placed and routed alone at 134.4 MHz, its
# critical path a copy's route to its 784 ROM LUTs (7.2 of 7.4 ns).
ADDRESS_COPY_BITS = 256


def copies_weight_address(pe: int, simd: int, weight_bits: int) -> bool:
    """Whether an MVTU's PEs read their weights through copies of the address (their weight
    words together exceed ``ADDRESS_FANOUT_BITS``). Loading every copy with the step's next
    address left the fold counters' step logic in front of the copies' fanout: SFC-max's first
    layer (16 PEs, 64 copies) routed alone at 147.5 MHz with the synapse-fold counter into a
    copy's next value as its critical path (3 levels, 6.4 of 6.8 ns routing), so the copies
    get a pipeline stage of their own (``PipelineStages.address``); with it, and the input
    buffer's write registered, the input beat's selection and broadcast to the PEs' lanes were
    next (142.6 MHz, 2 levels, 6.7 of 7.0 ns routing); a copy of the beat per PE loaded
    straight from the selection did not help (the second layer alone: 163.4 MHz, from 176.0,
    the selection flag into a PE's copy), so the selected beat is registered first, then
    copied per PE (``PipelineStages.beat``): first layer 170.6 MHz, second 209.4, third 208.6,
    each alone on ECP5 (README: SFC-max)."""
    return pe * simd * weight_bits > ADDRESS_FANOUT_BITS


@dataclass(frozen=True)
class PipelineStages:
    """An MVTU's pipeline registers after the issuing step: ``read`` (1: registered weight,
    threshold and input-buffer reads), ``address`` (1: the weight address's copies load the
    step's address a cycle late, from one register, so no logic sits before their fanout),
    ``beat`` (1: the selected input beat is registered; 2: each PE then takes it into a
    register of its own, so the beat's selection and its broadcast to every PE get a cycle
    each; the weight reads lag with them),
    ``tree`` (registers cutting the adder/popcount tree), ``compare`` (1: the threshold compare
    in its own stage)."""

    read: int
    tree: int
    compare: int
    address: int = 0
    beat: int = 0

    @property
    def select(self) -> int:
        """Cycles from the step to the input beat's selection (buffer read or stream beat)."""
        return self.address + self.read

    @property
    def fetch(self) -> int:
        """Cycles from the step to its weight word and input beat at the PEs' lanes."""
        return self.select + self.beat


@dataclass
class LayerMapping:
    """One MVTU: ``weights`` (mh, mw) integers; ``thresholds`` (mh, steps) or None (raw
    accumulator output); output integer = count + ``out_offset`` (bipolar: 2*count - 1)."""

    name: str
    mw: int
    mh: int
    pe: int
    simd: int
    vectors: int
    input: Element
    weight: Element
    accumulator: Element
    output: Element
    weights: np.ndarray = field(repr=False)
    thresholds: np.ndarray | None = field(repr=False, default=None)
    out_offset: int = 0
    pipeline: int = 0  # cycles a step's result takes beyond the next (``pipeline_stages``)
    loadable: bool = False  # weights and thresholds writable (``FinnMapping.loadable_weights``)

    @property
    def output_slots(self) -> int:
        """Results an MVTU holds, in its pipeline and waiting to leave: unpipelined, its
        output register, which a step may refill in the cycle it is read; pipelined,
        ``pipeline + 2``, the slots counted without looking at the reader (so no path runs
        from downstream's ready into the step), which still lets outputs issue every cycle."""
        return 1 if self.pipeline == 0 else self.pipeline + 2

    @property
    def tree_tail(self) -> int:
        """Adder levels after the dot product's tree in its last pipeline segment
        (``tree_cuts``): the accumulate, and for an XNOR-popcount its offset (2 * count -
        SIMD)."""
        return 2 if self.input.bipolar and self.weight.bipolar else 1

    @property
    def pipeline_stages(self) -> PipelineStages:
        """Where the ``pipeline`` registers go: first the memory reads (registered, so block
        RAM can hold weights and thresholds), then (with thresholds, from 2) the threshold
        compare in its own stage, then, where the weight address is copied
        (``weight_address_copied``), one before the copies and two for the input beat (a
        register after its selection, then each PE's copy), the rest into the dot product's
        adder tree."""
        if self.pipeline == 0:
            return PipelineStages(0, 0, 0)
        compare = int(self.thresholds is not None and self.pipeline >= 2)
        copied = self.weight_address_copied
        address = int(copied and self.pipeline - 1 - compare >= 1)
        beat = min(2, self.pipeline - 1 - compare - address) if copied else 0
        return PipelineStages(1, self.pipeline - 1 - compare - address - beat, compare, address,
                              beat)

    @property
    def buffer_write_lag(self) -> int:
        """Cycles the input buffer's write lags its step: 1 (address, data and enable
        registered, so no path runs from the step's control into the buffer's write enable,
        a LUT-RAM's or block RAM's) wherever the buffer is replayed (more than one neuron
        fold) and the first replay of a word reads it at least two cycles after its step
        (``synapse_fold`` plus the address stage's lag on the reads); else 0. On ECP5 that
        path, fold counter to write enable, was critical in bnn-mlp's reference design
        (156.8 MHz, seed 1) and in SFC-max's third layer alone (150.5 MHz)."""
        return int(self.neuron_fold > 1
                   and self.synapse_fold + self.pipeline_stages.address >= 2)

    @property
    def weight_address_registers(self) -> int:
        """Registers holding the weight memories' address: one, or one beside each PE's memory
        once the PEs' weight words together exceed ``ADDRESS_FANOUT_BITS`` bits (each bit of a
        LUT-ROM word is a LUT on every address bit)."""
        wide = copies_weight_address(self.pe, self.simd, self.weight.bits)
        return self.pe * self.weight_read_ports if wide else 1

    @property
    def weight_address_copied(self) -> bool:
        """Whether the weight address is held in copies (``weight_address_registers``): the
        one test for the address and beat stages, by default and in ``pipeline_stages``. A
        single PE whose wide weights sit in block RAM (one read port) keeps one register."""
        return self.weight_address_registers > 1

    @property
    def weight_read_ports(self) -> int:
        """Read ports of each PE's weight memory: one, or, where the PEs' address registers are
        copied and the memory is a ROM in LUTs, one per ``ADDRESS_COPY_BITS`` of its word, each
        port's slice of the word used (synthesis drops the LUTs of the rest, so the slices cost
        no more LUTs than one port)."""
        word = self.simd * self.weight.bits
        in_luts = placement(word, max(self.neuron_fold * self.synapse_fold, 2),
                            writable=self.loadable, sync_read=self.pipeline > 0,
                            weights=True) == "logic"
        if self.pe * word <= ADDRESS_FANOUT_BITS or not in_luts:
            return 1
        return -(-word // ADDRESS_COPY_BITS)

    @property
    def register_bits(self) -> int:
        """Width of the PE's accumulator register, signed two's complement: the accumulator's
        range, one bit wider when that range is unsigned (so values above half of it stay
        positive)."""
        return self.accumulator.bits + (0 if self.accumulator.signed else 1)

    @property
    def neuron_fold(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_fold(self) -> int:
        return self.mw // self.simd

    @property
    def cycles_per_frame(self) -> int:
        """FINN's formula: (MH/PE) * (MW/SIMD) * input vectors."""
        return self.neuron_fold * self.synapse_fold * self.vectors

    @property
    def steps(self) -> int:
        return 0 if self.thresholds is None else self.thresholds.shape[1]

    in_elements = property(lambda self: self.simd)
    out_elements = property(lambda self: self.pe)

    @property
    def beats_in(self) -> int:
        return self.synapse_fold * self.vectors

    @property
    def beats_out(self) -> int:
        return self.neuron_fold * self.vectors


class _PixelStage:
    """A stage on a feature map streamed pixel by pixel (NHWC), ``lanes`` channels per beat,
    each element encoded as ``element`` on both sides."""

    channel_beats = property(lambda self: self.channels // self.lanes)
    in_elements = property(lambda self: self.lanes)
    out_elements = property(lambda self: self.lanes)
    input = property(lambda self: self.element)
    output = property(lambda self: self.element)
    beats_in = property(lambda self: self.height * self.width * self.channel_beats)


@dataclass
class WindowMapping(_PixelStage):
    """Sliding-window unit: streaming im2col over a line buffer. Input: pixels in NHWC order,
    ``simd`` channels per beat; output: for each output pixel (row-major), the K x K window in
    (ky, kx, channel) order, ``simd`` channels per beat, zeros where the window overhangs the
    padded border."""

    name: str
    height: int
    width: int
    channels: int
    kernel: int
    padding: int
    simd: int
    element: Element

    @property
    def out_height(self) -> int:
        return self.height + 2 * self.padding - self.kernel + 1

    @property
    def out_width(self) -> int:
        return self.width + 2 * self.padding - self.kernel + 1

    @property
    def rows(self) -> int:
        """Rows the line buffer holds: the window's K plus one being written, rounded up to a
        power of two so the row index is the global row count's low bits."""
        return 1 << (self.kernel).bit_length()

    lanes = property(lambda self: self.simd)

    @property
    def beats_out(self) -> int:
        return self.out_height * self.out_width * self.kernel ** 2 * self.channel_beats

    @property
    def cycles_per_frame(self) -> int:
        return self.beats_out


@dataclass
class PoolMapping(_PixelStage):
    """Max-pool with kernel == stride over NHWC pixels, ``lanes`` channels per beat (for
    bipolar elements the maximum is a boolean OR)."""

    name: str
    height: int
    width: int
    channels: int
    kernel: int
    lanes: int
    element: Element

    out_height = property(lambda self: self.height // self.kernel)
    out_width = property(lambda self: self.width // self.kernel)

    @property
    def beats_out(self) -> int:
        return self.out_height * self.out_width * self.channel_beats

    @property
    def cycles_per_frame(self) -> int:
        return self.beats_in


@dataclass
class ThresholdMapping(_PixelStage):
    """A standalone MultiThreshold (FINN's Thresholding layer) on a stream whose channels are
    innermost (NHWC pixels, or a vector), ``lanes`` channels per beat: per element, the count
    of its channel's ``thresholds`` it reaches, plus ``out_offset`` (bipolar: the count is the
    code). One beat in, one beat out; ``height`` x ``width`` positions of ``channels``."""

    name: str
    height: int
    width: int
    channels: int
    lanes: int
    element: Element
    out_element: Element
    thresholds: np.ndarray = field(repr=False)
    out_offset: int = 0

    output = property(lambda self: self.out_element)
    kernel = 1  # as a max-pool of one element: the same handshake and timing
    out_height = property(lambda self: self.height)
    out_width = property(lambda self: self.width)
    beats_out = property(lambda self: self.beats_in)
    cycles_per_frame = property(lambda self: self.beats_in)

    @property
    def steps(self) -> int:
        return self.thresholds.shape[1]

    @property
    def threshold_bits(self) -> int:
        """Width of a threshold, signed: the input range and one past its top."""
        t = int_bits_for_range(self.element.min_int, self.element.max_int + 1)
        return t.bits + (0 if t.signed else 1)


@dataclass
class FinnMapping:
    network: str
    stages: list  # LayerMapping (MVTU), WindowMapping, PoolMapping, ThresholdMapping
    fifo_depths: list[int]  # in consumer beats, between consecutive layers (len(layers) - 1)
    count_events: bool = True
    host_layers: int = 0  # the network's leading layers the host computes (host_layers)
    input_nchw: bool = False  # the host streams its 4-D NCHW result pixel by pixel (NHWC)
    # weight and threshold memories writable through the top's parameter port
    # (``accel.hw.finn.loading``), accumulators sized for any weights of the weight type
    loadable_weights: bool = False

    @property
    def layers(self) -> list[LayerMapping]:
        """The MVTUs."""
        return [stage for stage in self.stages if isinstance(stage, LayerMapping)]

    @property
    def input(self) -> Element:
        return self.stages[0].input

    @property
    def initiation_interval(self) -> int:
        """Cycles between frames in steady state: the slowest stage's."""
        return max(stage.cycles_per_frame for stage in self.stages)

    def manifest(self) -> dict:
        from accel.hw.finn.stages import stage_manifest

        return {"network": self.network, "stages": [stage_manifest(s) for s in self.stages],
                "fifo_depths": self.fifo_depths,
                "expected_cycles_per_frame": self.initiation_interval}


DEFAULT_FIFO_DEPTH = 2  # the smallest FIFO the generator places
MAX_PIPELINE = 16  # an MVTU's registers after the issuing step (auto: at most 9)


def legal_folds(size: int) -> list[int]:
    return [d for d in range(1, size + 1) if size % d == 0]


FOLD_KEYS = ("pe", "simd")


def load_folding(spec) -> dict:
    """A folding from a dict, or a JSON/YAML file: {layer name: {"pe": P, "simd": S}}, each
    value a positive integer. Anything else (a scalar, an unknown key, 0, 2.7, true, null, a
    string, NaN) is a ConfigError naming the layer and the key, never coerced or ignored."""
    import numbers

    if spec is None:
        return {}
    where = "folding"
    if isinstance(spec, dict):
        data = spec
    else:
        from accel.io import load_json, load_yaml, read_config_text

        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"no such folding file: {path}")
        text = read_config_text(path, "folding file")
        data = load_yaml(text, path) if path.suffix in (".yaml", ".yml") else \
            load_json(text, path, allow_nan=True)  # a NaN is refused below, by layer and key
        where = str(path)

    def shown(value) -> str:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."

    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a folding maps layer names to {{pe, simd}}, got "
                          f"{shown(data)}")
    folding = {}
    for name, fold in data.items():
        if not isinstance(name, str):
            raise ConfigError(f"{where}: layer names must be strings, got {shown(name)}")
        if not isinstance(fold, dict):
            raise ConfigError(f"{where}: layer {name}: expected a mapping {{pe: P, simd: S}}, "
                              f"got {shown(fold)}")
        for key, value in fold.items():
            if key not in FOLD_KEYS:
                raise ConfigError(f"{where}: layer {name}: unknown key {shown(key)} (a layer "
                                  f"takes {', '.join(FOLD_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"{where}: layer {name}: {key} must be a positive integer, "
                                  f"got {shown(value)}")
        folding[name] = {key: int(value) for key, value in fold.items()}
    return folding


def tree_cuts(terms: int, registers: int, tail: int = 0) -> list[int]:
    """After which levels of a balanced adder tree over ``terms`` its ``registers`` pipeline
    registers go (levels 1..depth; at least 1, so a one-term "tree" is delayed too): spread
    evenly, rounded down, over the tree's levels with one level of the terms' own logic before
    them (input select, XNOR, sign) and ``tail`` levels after them that share the last segment
    (an MVTU's accumulate, and a bipolar dot product's offset). Counting the tail keeps the
    rounding's slack off the last segment: at SIMD 256, bipolar, four registers cut after
    levels 1, 3, 5, 7 (two levels per segment, the last three with its tail), where spreading
    over the tree alone cut after 1, 3, 4, 6 and left levels 7, 8, the offset and the
    accumulate in one cycle (SFC-max's fc2 on ECP5: 146.5 MHz, critical there)."""
    depth = (terms - 1).bit_length()
    levels = 1 + depth + tail
    return [max(1, min(depth, (k + 1) * levels // (registers + 1) - 1))
            for k in range(registers)]


def auto_pipeline(simd: int, thresholds: bool, address_copies: bool = False) -> int:
    """The default pipeline of an MVTU: registered memory reads, the threshold compare in its
    own stage, the address and two beat stages where the weight address is copied, a register
    every two levels of its SIMD-input adder tree (on an ECP5 that keeps every stage to about
    two carry chains: the README's synthesis table)."""
    levels = (simd - 1).bit_length()
    return 1 + int(thresholds) + 3 * int(address_copies) + (levels + 1) // 2


def map_network(network: Network, folding=None, fifo_depths=None,
                count_events: bool = True, pipeline: int | None = None,
                loadable_weights: bool = False) -> FinnMapping:
    """Validate that ``network`` fits the FINN architecture and fix every parameter.

    Dense layers (with their MultiThreshold) become MVTUs; a Conv2d becomes a sliding-window
    unit feeding an MVTU with MW = K*K*Cin over OH*OW vectors; a MaxPool2d becomes a pooling
    stage. Feature maps stream pixel by pixel in NHWC order, so a Flatten before a dense layer
    only permutes that layer's weight columns. Every MVTU gets ``pipeline`` registers after
    its issuing step (``LayerMapping.pipeline_stages``; None: ``auto_pipeline`` per MVTU).
    With ``loadable_weights`` the parameters can be replaced at run time, so an accumulator is
    sized for every weight its type allows, not only for this network's weights."""
    if pipeline is not None and (isinstance(pipeline, bool) or not isinstance(pipeline, int)
                                 or not 0 <= pipeline <= MAX_PIPELINE):
        raise ConfigError(f"the MVTU pipeline takes 0 to {MAX_PIPELINE} registers, got "
                          f"{pipeline!r}")
    folding = load_folding(folding)
    layers = network.layers
    types = network.tensor_types()
    index = host_layers(network)
    if types[index][1].is_float:
        raise ConfigError(f"network {network.name}: FINN needs a quantized input (a Quant or "
                          "BipolarQuant first, or an integer input datatype)")
    if index == len(layers):
        raise ConfigError(f"network {network.name} has no layers for the hardware after the "
                          "host's input quantizer and reshapes")
    host_shape = types[index][0]
    input_nchw = len(host_shape) == 4 and _channels_first(layers[index])
    foldable = {layer.name for layer in layers[index:]
                if isinstance(layer, (Dense, Conv2d)) or isinstance(layer, MultiThreshold)
                and not _follows_producer(layers, layer)}
    unknown = set(folding) - foldable
    if unknown:
        raise ConfigError(f"folding names layers that are not dense or conv layers of "
                          f"{network.name}: {', '.join(sorted(unknown))}")
    stages: list = []
    column_order = None  # stream position -> weight column, set by a Flatten of feature maps
    channels_first = input_nchw  # whether the current 4-D tensor streams as NCHW pixels
    while index < len(layers):
        layer = layers[index]
        in_shape, in_type = types[index]
        if isinstance(layer, (Flatten, Reshape)):
            out_shape = layer.out_shape(in_shape)
            streamed = _stream_order(in_shape, channels_first)
            if column_order is not None:
                streamed = column_order
            if np.array_equal(streamed, _stream_order(out_shape, len(out_shape) == 4)):
                column_order = None  # the stream is already in the order the next layer reads
            elif len(out_shape) == 2 and index + 1 < len(layers) \
                    and isinstance(layers[index + 1], Dense):
                column_order = streamed  # the dense layer's weight columns follow the stream
            else:
                raise ConfigError(f"layer {layer.name}: this {layer.op} would reorder the stream "
                                  f"({in_shape} -> {out_shape}); FINN maps a reshape only into "
                                  "the next dense layer's weights or where it keeps the order")
            channels_first = len(out_shape) == 4
            index += 1
            continue
        if isinstance(layer, MultiThreshold):
            stages.append(_threshold_stage(layer, in_shape, in_type, types[index + 1][1],
                                           folding.get(layer.name, {}), stages,
                                           channels_first))
            index += 1
            continue
        if isinstance(layer, MaxPool2d):
            _, c, h, w = in_shape
            if layer.stride != layer.kernel:
                raise ConfigError(f"layer {layer.name}: FINN pooling needs stride == kernel")
            lanes = stages[-1].out_elements if stages else 1
            if c % lanes:
                lanes = 1
            stages.append(PoolMapping(layer.name, h, w, c, layer.kernel, lanes,
                                      Element.of(in_type)))
            index += 1
            continue
        if not isinstance(layer, (Dense, Conv2d)):
            raise ConfigError(f"layer {layer.name} ({layer.op}): not supported by the FINN "
                              "mapper (dense, conv2d, max-pool, thresholds)")
        fold = folding.get(layer.name, {})
        pe, simd = fold.get("pe", 1), fold.get("simd", 1)  # positive ints (load_folding)
        if isinstance(layer, Conv2d):
            _, c, h, w = in_shape
            if not channels_first:
                raise ConfigError(f"layer {layer.name}: a convolution needs an NCHW feature map")
            if layer.stride != 1:
                raise ConfigError(f"layer {layer.name}: the sliding-window unit supports stride "
                                  f"1, got {layer.stride}")
            if c % simd:
                raise ConfigError(f"layer {layer.name}: SIMD={simd} must divide the "
                                  f"{c} input channels; legal SIMD: {legal_folds(c)}")
            element = Element.of(in_type)
            if layer.padding and element.bipolar:
                raise ConfigError(f"layer {layer.name}: zero padding of bipolar activations is "
                                  "not representable; use 'valid' (padding 0)")
            stages.append(WindowMapping(f"{layer.name}_window", h, w, c, layer.kernel,
                                        layer.padding, simd, element))
            k = layer.kernel
            weights = layer.weights.transpose(0, 2, 3, 1).reshape(layer.out_channels, k * k * c)
            out_shape = layer.out_shape(in_shape)
            vectors = out_shape[2] * out_shape[3]
        else:
            weights = layer.weights
            if column_order is not None:
                weights = weights[:, column_order]
                column_order = None
            if len(in_shape) > 2 and channels_first:
                raise ConfigError(f"layer {layer.name}: a dense layer over the last axis of an "
                                  f"NCHW feature map {in_shape} does not match the NHWC stream")
            vectors = int(np.prod(in_shape[1:-1]))  # positions, each multiplied alone
        channels_first = isinstance(layer, Conv2d)
        mh, mw = weights.shape
        acc_type = types[index + 1][1]
        if loadable_weights:
            acc_type = golden.any_weights_accumulator_type(mw, in_type, layer.weight_type,
                                                           acc_type.scale)
        thresholds, out_offset, out_type = None, 0, acc_type
        if index + 1 < len(layers) and isinstance(layers[index + 1], MultiThreshold):
            act: MultiThreshold = layers[index + 1]
            out_type = types[index + 2][1]
            thresholds = _clamped_thresholds(act, layer, in_type)
            out_offset = 0 if act.is_bipolar else act.offset
            index += 2
        else:
            index += 1
            if index < len(layers) and not isinstance(layers[index], Flatten):
                raise ConfigError(f"layer {layer.name}: a dense or conv layer must be followed "
                                  "by a MultiThreshold, or be the last layer (raw output)")
        if mh % pe:
            raise ConfigError(f"layer {layer.name}: PE={pe} does not divide MH={mh}; "
                              f"legal PE: {legal_folds(mh)}")
        if mw % simd:
            raise ConfigError(f"layer {layer.name}: SIMD={simd} does not divide "
                              f"MW={mw}; legal SIMD: {legal_folds(mw)}")
        if layer.bias is not None:
            raise ConfigError(f"layer {layer.name}: biases must be folded into thresholds for "
                              "FINN")
        stage = LayerMapping(
            name=layer.name, mw=mw, mh=mh, pe=pe, simd=simd, vectors=vectors,
            input=Element.of(in_type), weight=Element.of(layer.weight_type),
            accumulator=Element.of(acc_type),
            output=Element.of(out_type if thresholds is not None else acc_type),
            weights=weights.astype(np.int64), thresholds=thresholds, out_offset=out_offset,
            # (the default pipeline depends on whether the address is copied, which depends
            # on the memory's placement only through whether its reads are registered: any
            # pipeline registers them, so 1 stands in for the default until it is known)
            pipeline=1 if pipeline is None else pipeline, loadable=loadable_weights)
        if pipeline is None:
            stage = dataclasses.replace(stage, pipeline=auto_pipeline(
                simd, thresholds is not None, stage.weight_address_copied))
        stages.append(stage)
    if not isinstance(stages[-1], (LayerMapping, ThresholdMapping)):
        raise ConfigError(f"network {network.name}: the last layer must be dense, conv or "
                          "thresholds")
    for before, after in zip(stages, stages[1:]):
        if before.out_elements % after.in_elements and after.in_elements % before.out_elements:
            raise ConfigError(f"stages {before.name} -> {after.name}: {before.out_elements} "
                              f"elements per beat out and {after.in_elements} in must divide "
                              "one another (stream width conversion)")
    depths = list(fifo_depths) if fifo_depths is not None else \
        [default_fifo_depth(before, after) for before, after in zip(stages, stages[1:])]
    if len(depths) != len(stages) - 1 or any(d < 1 for d in depths):
        raise ConfigError(f"need {len(stages) - 1} positive FIFO depths, got {depths}")
    return FinnMapping(network.name, stages, depths, count_events,
                       host_layers=host_layers(network), input_nchw=input_nchw,
                       loadable_weights=loadable_weights)


def host_layers(network: Network) -> int:
    """How many of the network's leading layers the host computes before streaming: reshapes
    and, for a float input, one quantizer (Quant or BipolarQuant: how Brevitas declares the
    input of its w1a1 networks)."""
    count, quantized = 0, not network.input_type.is_float
    for layer in network.layers:
        if isinstance(layer, (Flatten, Reshape)):
            count += 1
        elif isinstance(layer, (Quant, BipolarQuant)) and not quantized:
            count, quantized = count + 1, True
        else:
            break
    return count


def _channels_first(layer) -> bool:
    """Whether ``layer`` reads a 4-D tensor as NCHW (so the stream is its NHWC pixels)."""
    if isinstance(layer, MultiThreshold):
        return not layer.channels_last
    return isinstance(layer, (Conv2d, MaxPool2d, Flatten, Reshape))


def _stream_order(shape: tuple, channels_first: bool) -> np.ndarray:
    """Stream position -> memory (row-major) index of a tensor of ``shape``: NHWC pixels of a
    4-D NCHW feature map, memory order otherwise."""
    size = int(np.prod(shape[1:]))
    if len(shape) == 4 and channels_first:
        _, c, h, w = shape
        return np.arange(size).reshape(c, h, w).transpose(1, 2, 0).ravel()
    return np.arange(size)


def _follows_producer(layers: list, layer: MultiThreshold) -> bool:
    """Whether a MultiThreshold is a dense or conv layer's activation (part of its MVTU)."""
    position = layers.index(layer)
    return position > 0 and isinstance(layers[position - 1], (Dense, Conv2d))


def _threshold_stage(layer: MultiThreshold, in_shape: tuple, in_type: DataType,
                     out_type: DataType, fold: dict, stages: list,
                     channels_first: bool) -> ThresholdMapping:
    """A standalone MultiThreshold as a thresholding stage on the channels-innermost stream."""
    element = Element.of(in_type)
    if element.bipolar:
        raise ConfigError(f"layer {layer.name}: thresholds on bipolar values; fold them into "
                          "the producer instead")
    if len(in_shape) == 4 and channels_first == layer.channels_last:
        raise ConfigError(f"layer {layer.name}: its data layout does not match the stream's")
    channels = in_shape[layer.channel_axis]
    positions = int(np.prod(in_shape[1:])) // channels
    default = stages[-1].out_elements if stages and channels % stages[-1].out_elements == 0 \
        else 1
    if "simd" in fold:
        raise ConfigError(f"layer {layer.name}: a thresholding stage is folded by pe alone")
    lanes = int(fold.get("pe", default))
    if lanes < 1 or channels % lanes:
        raise ConfigError(f"layer {layer.name}: PE={lanes} must divide its {channels} channels; "
                          f"legal PE: {legal_folds(channels)}")
    thresholds = layer.thresholds
    if thresholds.shape[0] == 1:
        thresholds = np.repeat(thresholds, channels, axis=0)
    # the same counts for every input in range, in a register of threshold_bits
    thresholds = np.clip(thresholds, element.min_int, element.max_int + 1)
    return ThresholdMapping(layer.name, positions, 1, channels, lanes, element,
                            Element.of(out_type), thresholds,
                            0 if layer.is_bipolar else layer.offset)


def default_fifo_depth(producer, consumer) -> int:
    """FIFO depth (in consumer beats) the generator places between two stages.

    An MVTU takes its input only during its first neuron fold, one beat per cycle, and replays
    it for the others; fed by a slower stage, a FIFO holding one whole frame of its input lets
    the producer run a frame ahead, so each stage works at its own rate and the initiation
    interval is the slowest stage's (FINN's goal). A sliding-window unit gets a frame of its
    input for the same reason. Otherwise two beats decouple the handshakes."""
    if isinstance(consumer, LayerMapping) and not isinstance(producer, WindowMapping):
        return max(DEFAULT_FIFO_DEPTH, consumer.beats_in)
    if isinstance(consumer, WindowMapping):
        return max(DEFAULT_FIFO_DEPTH, consumer.beats_in)
    return DEFAULT_FIFO_DEPTH


def _clamped_thresholds(act: MultiThreshold, layer: Dense | Conv2d,
                        in_type: DataType) -> np.ndarray:
    """Thresholds per output channel, clamped to [lowest accumulator, highest + 1]: the same
    counts for every reachable accumulator, in a register one bit wider than the accumulator
    register (``LayerMapping.register_bits``)."""
    lo, hi = golden.accumulator_range(layer, in_type)
    t = act.thresholds
    if t.shape[0] == 1:
        t = np.repeat(t, layer.outputs, axis=0)
    return np.clip(t, lo.min(), hi.max() + 1)


def auto_fold(network: Network, target_fps: float, clock_mhz: float) -> dict:
    """The cheapest folding (fewest PE x SIMD lanes in total) under which every stage finishes
    a frame within the initiation interval ``clock / target_fps``: FINN's balancing, where no
    layer is made faster than the target needs. Raises if even full unfolding is too slow."""
    if target_fps <= 0 or clock_mhz <= 0:
        raise ConfigError("target frames per second and clock must be positive")
    budget = int(clock_mhz * 1e6 // target_fps)
    base = map_network(network)  # validates the network; every layer at PE = SIMD = 1
    options = []
    for position, stage in enumerate(base.stages):
        if not isinstance(stage, LayerMapping):
            continue
        window = base.stages[position - 1] if position else None
        channels = window.channels if isinstance(window, WindowMapping) else stage.mw
        fits = []
        for pe in legal_folds(stage.mh):
            for simd in legal_folds(channels):
                cycles = (stage.mh // pe) * (stage.mw // simd) * stage.vectors
                if isinstance(window, WindowMapping):
                    cycles = max(cycles, window.beats_out // simd)
                if cycles <= budget:
                    fits.append((pe * simd, -simd, pe, simd))
        if not fits:
            raise ConfigError(f"layer {stage.name}: even fully unfolded it needs more than the "
                              f"{budget}-cycle budget of {target_fps:g} frames/s at "
                              f"{clock_mhz:g} MHz")
        options.append((stage.name, [(pe, simd) for _, _, pe, simd in sorted(fits)]))

    def search(k: int, chosen: dict):
        if k == len(options):
            try:
                mapping = map_network(network, chosen)
            except ConfigError:
                return None
            return dict(chosen) if mapping.initiation_interval <= budget else None
        name, candidates = options[k]
        for pe, simd in candidates:
            found = search(k + 1, {**chosen, name: {"pe": pe, "simd": simd}})
            if found is not None:
                return found
        return None

    folding = search(0, {})
    if folding is None:
        raise ConfigError("no folding meets the target with compatible neighbouring widths")
    return folding
