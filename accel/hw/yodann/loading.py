"""Run-time loadable parameters for the YodaNN engine (``YodaNNMapping.loadable_weights``):
the weight memory, the bias memory, the threshold memory (if a layer has thresholds) and the
scale memory (the sequencer program's scale fields, ``SCALE_FIELDS``: multiplier, shift and
rounding mode per pass, which a loadable engine keeps apart from its program ROM) get write
ports on one parameter port (``accel.hw.common.parameters``), so a retrained network of the
same shape runs on the same bitstream.

Memories in address order: ``weight_mem``, ``bias_rom``, ``threshold_mem``, ``scale_mem``;
words packed as the generator packs their initial contents, in the design's widths. A network
fits a design when its program differs from the design's only in the scale fields (so the
layers' shapes, kernels, padding, pooling, activations and output types are the same), each
scale value fits its field, and its accumulator is no wider than the design's (the biases set
it: the design's is sized by its own network's largest bias). Load between frames, with the
engine idle: a frame in flight may read a memory either side of a write. Loading counts no
event and the cycle model does not time it.
"""

from __future__ import annotations

from amaranth import Shape

from accel.errors import ConfigError
from accel.hw.common.parameters import ParameterLayout
from accel.hw.yodann.mapping import (YodaNNMapping, filter_word_bits, filter_words,
                                     map_network, passes)
from accel.hw.yodann.rtl import (SCALE_FIELDS, bias_words, engine_widths, program_fields,
                                 program_words, threshold_steps, threshold_words)


def _memories(design: YodaNNMapping, source: YodaNNMapping):
    """(name, depth, width, words) of ``design``'s parameter memories holding ``source``'s
    parameters (``source`` fits ``design``), in address order."""
    acc = engine_widths(design)["acc"]
    weights, biases = filter_words(source), bias_words(source)
    shapes, values = program_fields(design), program_fields(source)
    scale_width, scales = program_words({name: (values[name][0], shapes[name][1])
                                         for name in SCALE_FIELDS})
    memories = [("weight_mem", max(len(weights), 2), filter_word_bits(design.config), weights),
                ("bias_rom", max(len(biases), 2), acc, biases)]
    steps = threshold_steps(design)
    if steps:
        thresholds = threshold_words(source, acc + 1)
        memories.append(("threshold_mem", max(len(thresholds), 2), steps * (acc + 1),
                         thresholds))
    memories.append(("scale_mem", max(len(scales), 2), scale_width, scales))
    return memories


def parameter_layout(mapping: YodaNNMapping) -> ParameterLayout:
    return ParameterLayout.of(f"network {mapping.name}",
                              [(name, 0, depth, width)
                               for name, depth, width, _ in _memories(mapping, mapping)])


def parameter_writes(mapping: YodaNNMapping) -> list[tuple[int, int]]:
    """The parameter port's writes of the mapping's own network (the manifest lists them)."""
    return parameter_layout(mapping).writes(
        [words for *_, words in _memories(mapping, mapping)])


def _fits(value: int, shape) -> bool:
    shape = Shape.cast(shape)
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    return low <= value < low + (1 << shape.width)


def load_words(design: YodaNNMapping, network) -> list[tuple[int, int]]:
    """The parameter port's writes that make ``design`` (built with loadable weights) run
    ``network``; a network that does not fit (module documentation) is refused, naming the
    first difference."""
    if not design.loadable_weights:
        raise ConfigError("the design has no parameter port (generate it with "
                          "--loadable-weights)")
    source = map_network(network, design.config, count_events=design.count_events,
                         loadable_weights=True)
    built, wanted = program_fields(design), program_fields(source)
    if (source.input_shape, source.output_shape) != (design.input_shape, design.output_shape):
        raise ConfigError(f"network {network.name} takes {source.input_shape} to "
                          f"{source.output_shape}; the design {design.input_shape} to "
                          f"{design.output_shape}")
    if len(passes(source)) != len(passes(design)):
        raise ConfigError(f"network {network.name} runs in a different number of passes "
                          "than the design (its layers differ)")
    for name, (values, _) in wanted.items():
        if name not in SCALE_FIELDS and values != built[name][0]:
            raise ConfigError(f"network {network.name} does not fit the design: its program's "
                              f"{name!r} differs (the layers' shapes, kernels, padding, "
                              "pooling or output types are not the design's)")
        misfit = next((v for v in values if not _fits(v, built[name][1])), None)
        if misfit is not None:
            raise ConfigError(f"network {network.name}: a scale {name} of {misfit} does not "
                              f"fit the design's {Shape.cast(built[name][1]).width}-bit field")
    needed, held = engine_widths(source)["acc"], engine_widths(design)["acc"]
    if needed > held:
        raise ConfigError(f"network {network.name} needs a {needed}-bit accumulator (its "
                          f"biases are larger), the design has {held}")
    return parameter_layout(design).writes(
        [words for *_, words in _memories(design, source)])
