"""Run-time loadable parameters (FINN's runtime-writeable weights): with
``FinnMapping.loadable_weights`` every weight and threshold memory of the design gets a write
port, driven from one parameter port on the top, so a retrained network of the same shape and
types runs on the same bitstream.

The port: ``param_addr``, ``param_data``, ``param_en``, one word per cycle, never refused,
registered once inside the top (flip-flops without a reset, so words land while the datapath
is held in reset). ``param_addr`` = memory index << ``word_bits`` | word; the memories are
numbered in stage order (an MVTU: the weights of PE 0..P-1, then its thresholds of PE
0..P-1; a thresholding stage: its one memory); a word is in the low bits of ``param_data``,
packed as the generator packs its initial contents. Load between frames: a frame in flight
may read a memory either side of a write, so its result is undefined. Loading is not part of
an inference: it counts no event and the cycle model does not time it.

``parameter_words`` lists a network's words in this order, ``parameter_writes`` the port's
(address, data) writes; ``load_words`` checks that a network fits a design (same stages,
shapes and types) and gives its writes.
"""

from __future__ import annotations

from accel.errors import ConfigError
from accel.hw.common.parameters import ParameterLayout
from accel.hw.finn.mapping import (FinnMapping, LayerMapping, ThresholdMapping, map_network,
                                   pack_codes)


def _stage_memories(stage) -> list[tuple[str, int, int, list[int]]]:
    """(name, depth, width, words) of a stage's parameter memories, in address order, as the
    generator builds them (the one place that order is decided)."""
    if isinstance(stage, LayerMapping):
        depth = max(stage.neuron_fold * stage.synapse_fold, 2)
        memories = [(f"{stage.name}.weights_pe{p}", depth, stage.simd * stage.weight.bits,
                     weight_words(stage, p)) for p in range(stage.pe)]
        if stage.thresholds is not None:
            row = stage.steps * (stage.register_bits + 1)
            memories += [(f"{stage.name}.thresholds_pe{p}", max(stage.neuron_fold, 2), row,
                          threshold_words(stage, p)) for p in range(stage.pe)]
        return memories
    if isinstance(stage, ThresholdMapping):
        return [(f"{stage.name}.thresholds", max(stage.channel_beats, 2),
                 stage.lanes * stage.steps * stage.threshold_bits, stage_threshold_words(stage))]
    return []


def parameter_layout(mapping: FinnMapping) -> ParameterLayout:
    return ParameterLayout.of(
        f"network {mapping.network}",
        [(name, position, depth, width) for position, stage in enumerate(mapping.stages)
         for name, depth, width, _ in _stage_memories(stage)])


def weight_words(layer: LayerMapping, pe: int) -> list[int]:
    """Contents of an MVTU's PE ``pe`` weight memory: word nf*SF + sf holds the SIMD weights
    of output channel nf*PE + pe for input elements sf*SIMD .. sf*SIMD + SIMD - 1."""
    words = []
    codes = layer.weight.encode(layer.weights)
    for nf in range(layer.neuron_fold):
        row = codes[nf * layer.pe + pe]
        for sf in range(layer.synapse_fold):
            words.append(pack_codes(row[sf * layer.simd:(sf + 1) * layer.simd],
                                    layer.weight.bits))
    return words


def threshold_words(layer: LayerMapping, pe: int) -> list[int]:
    """Contents of an MVTU's PE ``pe`` threshold memory: word nf holds the thresholds of output
    channel nf*PE + pe, each a field one bit wider than the accumulator register."""
    return [pack_codes(layer.thresholds[nf * layer.pe + pe], layer.register_bits + 1)
            for nf in range(layer.neuron_fold)]


def stage_threshold_words(spec: ThresholdMapping) -> list[int]:
    """Contents of a thresholding stage's memory: word g holds channel group g's thresholds,
    lane by lane."""
    return [pack_codes(spec.thresholds[g * spec.lanes:(g + 1) * spec.lanes].ravel(),
                       spec.threshold_bits) for g in range(spec.channel_beats)]


def parameter_words(mapping: FinnMapping) -> list[list[int]]:
    """Per memory of ``parameter_layout(mapping)``, its words for the mapping's network."""
    return [words for stage in mapping.stages for *_, words in _stage_memories(stage)]


def folding_of(mapping: FinnMapping) -> dict:
    """The folding that maps a network as ``mapping`` is mapped (``map_network``'s form)."""
    folding = {stage.name: {"pe": stage.pe, "simd": stage.simd} for stage in mapping.layers}
    folding.update({stage.name: {"pe": stage.lanes} for stage in mapping.stages
                    if isinstance(stage, ThresholdMapping)})
    return folding


def _hardware_shape(stage) -> tuple:
    """What a stage's hardware is fixed by, apart from its parameters' values."""
    if isinstance(stage, LayerMapping):
        return ("mvtu", stage.mw, stage.mh, stage.pe, stage.simd, stage.vectors, stage.input,
                stage.weight, stage.register_bits, stage.output, stage.steps, stage.out_offset)
    if isinstance(stage, ThresholdMapping):
        return ("thresholds", stage.height, stage.width, stage.channels, stage.lanes,
                stage.element, stage.out_element, stage.steps, stage.out_offset)
    return (type(stage).__name__, stage)


def load_words(design: FinnMapping, network) -> list[tuple[int, int]]:
    """The parameter port's writes that make ``design`` (built with loadable weights) run
    ``network``; a network whose stages, shapes or types differ from the design's is refused,
    naming the first difference."""
    if not design.loadable_weights:
        raise ConfigError("the design has no parameter port (generate it with "
                          "--loadable-weights)")
    mapping = map_network(network, folding_of(design), design.fifo_depths,
                          count_events=design.count_events, loadable_weights=True)
    if len(mapping.stages) != len(design.stages):
        raise ConfigError(f"network {network.name} maps to {len(mapping.stages)} stages, the "
                          f"design has {len(design.stages)}")
    for built, wanted in zip(design.stages, mapping.stages):
        if _hardware_shape(built) != _hardware_shape(wanted):
            raise ConfigError(f"network {network.name}: stage {wanted.name} does not fit the "
                              f"design's {built.name} (shape, folding or types differ)")
    return parameter_writes(mapping)


def parameter_writes(mapping: FinnMapping) -> list[tuple[int, int]]:
    """The parameter port's (address, data) writes of the mapping's own network, memory by
    memory (what ``accel generate --loadable-weights`` lists in the manifest)."""
    return parameter_layout(mapping).writes(parameter_words(mapping))
