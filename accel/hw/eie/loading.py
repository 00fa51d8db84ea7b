"""Run-time loadable parameters for the EIE engine (``EIENetworkMapping.loadable_weights``):
every PE's pointer banks, sparse-matrix SRAM, codebook memory and bias memory get write ports
on one parameter port (``accel.hw.common.parameters``), so a retrained or re-pruned network of
the same shape runs on the same bitstream, as EIE's own SRAMs are loaded rather than built in.

Memories in address order, per PE k: ``pe{k}_pointers_even``, ``pe{k}_pointers_odd``,
``pe{k}_sparse``, ``pe{k}_codebook`` and, if the network has more than one layer,
``pe{k}_bias``; words packed as the generator packs their initial contents
(``accel.hw.eie.rtl``), in the design's widths. A loadable engine's sparse-matrix SRAM holds a
fixed capacity of entries per PE (``EIENetworkMapping.sparse_capacity``), its codebooks are a
memory per PE instead of constants, and its accumulators are sized for any weights of the
type.

A network fits a design when its layers have the design's shapes, its requantization between
layers is the design's (ReLU, shift, output bits and sign; the biases are loaded), its
weights and activations are no wider, its accumulators no wider (its biases set them beyond
the weights'), and every PE's entries fit the capacity; otherwise ``load_words`` refuses it
naming the first difference. The last layer's bias is the host's, as in a fixed design. Load
while ``run`` is low: loading counts no event and the cycle model does not time it.
"""

from __future__ import annotations

from accel.errors import ConfigError
from accel.hw.common.parameters import ParameterLayout
from accel.hw.eie.mapping import CODEBOOK_ENTRIES, EIENetworkMapping, map_network
from accel.hw.eie.model import ENTRY_BITS
from accel.hw.eie.rtl import (POINTER_FLAG_BITS, bias_words, codebook_bits, codebook_words,
                              pointer_bits, pointer_words, sparse_depth, sparse_words)


def _memories(design: EIENetworkMapping, source: EIENetworkMapping):
    """(name, stage, depth, width, words) of ``design``'s parameter memories holding
    ``source``'s parameters (``source`` fits ``design``), in address order; a memory's stage is
    its PE."""
    per_word = design.entries_per_word
    pointer_width = pointer_bits(design) + POINTER_FLAG_BITS
    codebook_width = codebook_bits(design)
    codebooks = codebook_words(source)
    memories = []
    for k in range(design.num_pes):
        pointers = pointer_words(source, k)
        for parity, half in (("even", pointers[0::2]), ("odd", pointers[1::2])):
            memories.append((f"pe{k}_pointers_{parity}", k, max(len(half), 2), pointer_width,
                             half))
        memories.append((f"pe{k}_sparse", k, sparse_depth(design, k), ENTRY_BITS * per_word,
                         sparse_words(source, k)))
        memories.append((f"pe{k}_codebook", k, CODEBOOK_ENTRIES * len(design.layers),
                         codebook_width, codebooks))
        if design.requantize:
            biases = bias_words(source, k)[0]
            memories.append((f"pe{k}_bias", k, max(len(biases), 2), design.accumulator_bits,
                             biases))
    return memories


def parameter_layout(mapping: EIENetworkMapping) -> ParameterLayout:
    return ParameterLayout.of(f"network {mapping.name}",
                              [(name, stage, depth, width)
                               for name, stage, depth, width, _ in _memories(mapping, mapping)])


def parameter_writes(mapping: EIENetworkMapping) -> list[tuple[int, int]]:
    """The parameter port's writes of the mapping's own network (the manifest lists them)."""
    return fitted_writes(mapping, mapping)


def fitted_writes(design: EIENetworkMapping,
                  source: EIENetworkMapping) -> list[tuple[int, int]]:
    """The parameter port's writes that store ``source`` (``fitted_mapping``'s result) in
    ``design``."""
    return parameter_layout(design).writes([words for *_, words in _memories(design, source)])


def fitted_mapping(design: EIENetworkMapping, network) -> EIENetworkMapping:
    """``network`` mapped as ``design`` was built (its PEs, queues, words and capacity), after
    checking that it fits (module documentation); a misfit is refused naming the first
    difference."""
    if not design.loadable_weights:
        raise ConfigError("the design has no parameter port (generate it with "
                          "--loadable-weights)")
    source = map_network(network, num_pes=design.num_pes, queue_depth=design.queue_depth,
                         count_events=design.count_events,
                         entries_per_word=design.entries_per_word, loadable_weights=True,
                         sparse_capacity=design.sparse_capacity)
    if len(source.layers) != len(design.layers):
        raise ConfigError(f"network {network.name} has {len(source.layers)} dense layers, the "
                          f"design {len(design.layers)}")
    for built, wanted in zip(design.layers, source.layers):
        if (wanted.rows, wanted.cols) != (built.rows, built.cols):
            raise ConfigError(f"network {network.name}: layer {wanted.name} is {wanted.rows} x "
                              f"{wanted.cols}, the design's {built.name} {built.rows} x "
                              f"{built.cols}")
    for built, wanted, name in zip(design.requantize, source.requantize, source.layers):
        if _requantization(wanted) != _requantization(built):
            raise ConfigError(
                f"network {network.name}: the requantization after layer {name.name} (ReLU "
                f"{wanted.relu}, shift {wanted.shift}, {wanted.bits}-bit "
                f"{'signed' if wanted.signed else 'unsigned'}) is not the design's (ReLU "
                f"{built.relu}, shift {built.shift}, {built.bits}-bit "
                f"{'signed' if built.signed else 'unsigned'}); only biases are loaded")
    for what, needed, held in (
            ("codebook values", codebook_bits(source), codebook_bits(design)),
            ("activations", source.activation_bits, design.activation_bits),
            ("accumulators", source.accumulator_bits, design.accumulator_bits)):
        if needed > held:
            raise ConfigError(f"network {network.name} needs {needed}-bit {what}, the design "
                              f"has {held}")
    return source


def _requantization(rule) -> tuple:
    """What a loadable engine builds into its logic of a requantization (its bias is loaded)."""
    return rule.relu, rule.shift, rule.bits, rule.signed


def load_words(design: EIENetworkMapping, network) -> list[tuple[int, int]]:
    """The parameter port's writes that make ``design`` (built with loadable weights) run
    ``network`` (``fitted_mapping``)."""
    return fitted_writes(design, fitted_mapping(design, network))
