"""Mapping a dense layer of shared weights onto the EIE engine: codebook, per-PE CSC storage,
widths."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from accel.compress.eie import EIEMatrix, encode_eie
from accel.compress.network import codebook_indices
from accel.errors import ConfigError
from accel.hw.eie.model import ENTRIES_PER_WORD

CODEBOOK_ENTRIES = 16


@dataclass
class EIELayerMapping:
    name: str
    num_pes: int
    queue_depth: int
    codebook: np.ndarray = field(repr=False)  # 16 integers, entry 0 is 0
    matrix: EIEMatrix = field(repr=False)
    weight_bits: int  # codebook entry width
    activation_bits: int
    accumulator_bits: int

    @property
    def rows(self) -> int:
        return self.matrix.rows

    @property
    def cols(self) -> int:
        return self.matrix.cols

    @property
    def local_rows(self) -> int:
        return -(-self.rows // self.num_pes)


def map_layer(name: str, weights: np.ndarray, *, num_pes: int, queue_depth: int = 8,
              weight_bits: int = 16, activation_bits: int = 16,
              accumulator_bits: int = 40) -> EIELayerMapping:
    """``weights`` (outputs, inputs) integers with at most 15 distinct nonzero values."""
    if num_pes < 1 or queue_depth < 1:
        raise ConfigError(f"layer {name}: PEs and queue depth must be positive")
    indices, size = codebook_indices(weights)
    if size > CODEBOOK_ENTRIES:
        raise ConfigError(f"layer {name}: {size - 1} distinct nonzero weights; EIE's codebook "
                          f"holds {CODEBOOK_ENTRIES - 1} (share the weights first)")
    codebook = np.zeros(CODEBOOK_ENTRIES, dtype=np.int64)
    codebook[indices] = weights  # every weight with the same index has the same value
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    if codebook.min() < lo or codebook.max() > hi:
        raise ConfigError(f"layer {name}: weights do not fit {weight_bits}-bit codebook entries")
    return EIELayerMapping(name, num_pes, queue_depth, codebook, encode_eie(indices, num_pes),
                           weight_bits, activation_bits, accumulator_bits)


@dataclass
class Requantize:
    """Between layers: add ``bias`` (units of the product scale), ReLU, then shift right by
    ``shift`` with the golden model's rounding (ROUND: half to even) and saturate to
    ``bits``-bit signed or unsigned integers: the next layer's fixed-point activations."""

    bias: np.ndarray = field(repr=False)
    relu: bool
    shift: int
    bits: int
    signed: bool = True

    @property
    def range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


@dataclass
class EIENetworkMapping:
    """Layers run one after another on the same PEs; between them the accumulators go
    through ``requantize[l]`` into the activation registers (the ping-pong buffer)."""

    name: str
    layers: list[EIELayerMapping]
    requantize: list[Requantize]  # len(layers) - 1
    final_bias: np.ndarray | None = field(repr=False, default=None)
    count_events: bool = True  # without: no event counters (smaller FPGA builds)
    entries_per_word: int = ENTRIES_PER_WORD  # sparse-matrix SRAM word = 8 bits x this
    # writable parameter memories (``accel.hw.eie.loading``); then every PE's sparse-matrix
    # SRAM holds ``sparse_capacity`` entries, whatever this network's PEs store
    loadable_weights: bool = False
    sparse_capacity: int = 0

    def __post_init__(self):
        words = self.entries_per_word
        if words < 2 or words > 64 or words & (words - 1):
            raise ConfigError(f"sparse-matrix SRAM words of {words} entries: use a power of "
                              "two from 2 to 64 (16- to 512-bit words)")

    @property
    def num_pes(self) -> int:
        return self.layers[0].num_pes

    def stored_entries(self) -> list[int]:
        """Per PE, the sparse-matrix SRAM entries this network fills: every layer's CSC
        entries, each layer from a word boundary (``accel.hw.eie.rtl.pe_storage``)."""
        stored = [0] * self.num_pes
        for spec in self.layers:
            for k in range(self.num_pes):
                stored[k] += -stored[k] % self.entries_per_word + len(spec.matrix.v[k])
        return stored

    @property
    def sparse_entries(self) -> int:
        """Entries of the largest PE's sparse-matrix SRAM as built: the capacity of a
        loadable design, else the most any PE stores."""
        return self.sparse_capacity or max(self.stored_entries())

    @property
    def queue_depth(self) -> int:
        return self.layers[0].queue_depth

    @property
    def max_cols(self) -> int:
        return max(layer.cols for layer in self.layers)

    @property
    def max_local_rows(self) -> int:
        return max(layer.local_rows for layer in self.layers)

    @property
    def bank_rows(self) -> int:
        """Rows of each PE's activation bank: column j lives in bank j mod N, row j // N."""
        return -(-self.max_cols // self.num_pes)

    @property
    def activation_bits(self) -> int:
        return self.layers[0].activation_bits

    @property
    def accumulator_bits(self) -> int:
        return max(layer.accumulator_bits for layer in self.layers)


def single_layer(layer: EIELayerMapping,
                 entries_per_word: int = ENTRIES_PER_WORD) -> EIENetworkMapping:
    return EIENetworkMapping(layer.name, [layer], [], entries_per_word=entries_per_word)


def map_network(network, *, num_pes: int, queue_depth: int = 8, count_events: bool = True,
                entries_per_word: int = ENTRIES_PER_WORD, loadable_weights: bool = False,
                sparse_capacity: int | None = None) -> EIENetworkMapping:
    """A chain Quant -> (Dense -> [Relu] -> Quant)* -> Dense of shared weights, with
    power-of-two scales, onto the EIE engine. Activations are held as signed integers wide
    enough for every Quant (16 bits for signed 16-bit fixed point, 17 for unsigned).

    With ``loadable_weights`` the weights can be replaced at run time: accumulators are sized
    for every weight the weight type allows, and every PE's sparse-matrix SRAM holds
    ``sparse_capacity`` entries (rounded up to whole words; default: the most any PE stores
    here, rounded up to a power of two words, the depths block RAM comes in)."""
    from accel.nn.golden import any_weights_accumulator_type
    from accel.nn.ir import Dense, MultiThreshold, Quant, Relu

    if sparse_capacity is not None and not loadable_weights:
        raise ConfigError("a sparse-matrix capacity is for a loadable design (--loadable-weights);"
                          " a fixed design's memories hold its own network's entries")

    layers = network.layers
    types = network.tensor_types()
    if not layers or not isinstance(layers[0], Quant) or layers[0].bits > 16 or \
            layers[0].narrow:
        raise ConfigError(f"network {network.name}: EIE needs a Quant of at most 16 bits first")
    quants = [layer for layer in layers if isinstance(layer, Quant)]
    activation_bits = max(q.bits + (0 if q.signed else 1) for q in quants)
    mapped, requantize = [], []
    index = 1
    final_bias = None
    while index < len(layers):
        layer = layers[index]
        if not isinstance(layer, Dense):
            raise ConfigError(f"layer {layer.name} ({layer.op}): EIE maps dense layers, each "
                              "followed by Relu and a Quant, the last one raw")
        if len(types[index][0]) != 2:
            raise ConfigError(f"layer {layer.name}: EIE multiplies one vector per inference, "
                              f"not one per position of {types[index][0]}")
        acc_type = types[index + 1][1]
        acc_bits = acc_type.bits
        if loadable_weights:  # and the network's own biases, which the engine adds later
            acc_bits = max(acc_bits, any_weights_accumulator_type(
                layer.inputs, types[index][1], layer.weight_type, 1.0).bits)
        mapped.append(map_layer(layer.name, layer.weights, num_pes=num_pes,
                                queue_depth=queue_depth,
                                # bipolar weights (+-1) need two bits as integers
                                weight_bits=max(layer.weight_type.bits, 2),
                                activation_bits=activation_bits,
                                accumulator_bits=acc_bits + 1))
        bias = np.zeros(layer.outputs, np.int64) if layer.bias is None else \
            layer.bias.astype(np.int64)
        rest = layers[index + 1:]
        if not rest:
            final_bias = bias
            break
        relu = isinstance(rest[0], Relu)
        quant = rest[1] if relu and len(rest) > 1 else rest[0]
        if isinstance(quant, MultiThreshold):
            raise ConfigError(f"layer {quant.name}: EIE requantizes by one power-of-two shift per "
                              "layer and has no thresholds (these come from the file or were "
                              "folded from a batch-norm, a float bias or per-channel weight "
                              "scales, which would need per-row requantization)")
        if not isinstance(quant, Quant) or quant.narrow \
                or quant.rounding.upper() not in ("ROUND", "HALF_EVEN"):
            raise ConfigError(f"layer {layer.name}: must be followed by [Relu] and a Quant "
                              "(not narrow) with ROUND rounding for EIE")
        ratio = quant.scale / acc_type.scale
        shift = int(round(np.log2(ratio)))
        if ratio < 1 or 2.0 ** shift != ratio:
            raise ConfigError(f"layer {quant.name}: requantization by {ratio:g} is not a "
                              "right shift (power-of-two scales needed)")
        requantize.append(Requantize(bias, relu, shift, quant.bits, quant.signed))
        index += 3 if relu else 2
    mapping = EIENetworkMapping(network.name, mapped, requantize, final_bias, count_events,
                                entries_per_word, loadable_weights)
    if loadable_weights:
        mapping.sparse_capacity = _capacity(mapping, sparse_capacity)
    return mapping


def _capacity(mapping: EIENetworkMapping, asked: int | None) -> int:
    """A loadable design's sparse-matrix SRAM entries per PE (``map_network``)."""
    per_word = mapping.entries_per_word
    stored = mapping.stored_entries()
    needed = max(stored)
    if asked is None:
        words = max(-(-needed // per_word), 2)
        return per_word << (words - 1).bit_length()
    if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
        raise ConfigError(f"--sparse-capacity {asked!r}: give a positive number of entries")
    if asked < needed:
        pe = stored.index(needed)
        raise ConfigError(f"network {mapping.name}: PE {pe} stores {needed} sparse-matrix "
                          f"entries (padding and word alignment included), more than the "
                          f"capacity of {asked}")
    return -(-asked // per_word) * per_word
