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

from dataclasses import dataclass

from amaranth.lib.wiring import In

from accel.errors import ConfigError
from accel.hw.finn.mapping import (FinnMapping, LayerMapping, ThresholdMapping, map_network,
                                   pack_codes)


@dataclass(frozen=True)
class ParameterMemory:
    """One writable parameter memory: ``index`` in the address map, ``stage`` its position in
    ``FinnMapping.stages``, ``depth`` words of ``width`` bits as built."""

    name: str
    stage: int
    index: int
    depth: int
    width: int


@dataclass(frozen=True)
class ParameterLayout:
    memories: tuple[ParameterMemory, ...]
    word_bits: int  # the word address inside a memory
    index_bits: int  # the memory index above it
    data_bits: int  # the widest memory word

    @property
    def addr_bits(self) -> int:
        return self.word_bits + self.index_bits

    def of_stage(self, stage: int) -> tuple[ParameterMemory, ...]:
        return tuple(memory for memory in self.memories if memory.stage == stage)

    def port_members(self) -> dict:
        """The parameter port, as members of a ``wiring.Signature`` (all inputs)."""
        return {"param_addr": In(self.addr_bits), "param_data": In(self.data_bits),
                "param_en": In(1)}

    def manifest(self) -> dict:
        return {"addr_bits": self.addr_bits, "word_bits": self.word_bits,
                "data_bits": self.data_bits,
                "memories": [{"name": m.name, "index": m.index, "depth": m.depth,
                              "width": m.width} for m in self.memories]}


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
    memories = []
    for position, stage in enumerate(mapping.stages):
        for name, depth, width, _ in _stage_memories(stage):
            memories.append(ParameterMemory(name, position, len(memories), depth, width))
    if not memories:
        raise ConfigError(f"network {mapping.network}: no weight or threshold memory to load")
    return ParameterLayout(
        tuple(memories), word_bits=max((m.depth - 1).bit_length() for m in memories),
        index_bits=max(1, (len(memories) - 1).bit_length()),
        data_bits=max(m.width for m in memories))


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
    layout = parameter_layout(mapping)
    writes = []
    for memory, words in zip(layout.memories, parameter_words(mapping)):
        writes += [(memory.index << layout.word_bits | address, word)
                   for address, word in enumerate(words)]
    return writes


def connect_parameter_write(m, memory, block, entry: ParameterMemory,
                            layout: ParameterLayout) -> None:
    """Give ``memory`` (an Amaranth memory of ``block``) a write port on the parameter port."""
    write = memory.write_port()
    selected = block.param_addr[layout.word_bits:] == entry.index
    m.d.comb += [write.addr.eq(block.param_addr[:layout.word_bits]),
                 write.data.eq(block.param_data[:entry.width]),
                 write.en.eq(block.param_en & selected)]
