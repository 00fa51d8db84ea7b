"""FINN's resource model (``accel.hw.resources``): per stage of ``accel.hw.finn.top.FinnTop``
(MVTUs with their output FIFOs, sliding-window units, max-pools, thresholding stages, and
between stages a width converter and a FIFO), the structural counts of what
``accel/hw/finn/*.py`` generate, and the fitted coefficients that turn them into LUT4s and
flip-flops. Memories are exact (``memory_resources``)."""

from __future__ import annotations

from accel.hw.finn.mapping import (FinnMapping, LayerMapping, PoolMapping, ThresholdMapping,
                                   WindowMapping)
from accel.hw.finn.stages import clocked_bits, stage_names
from accel.hw.resources import Resources, apply, counter_bits, memory_resources, \
    varying_bits

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares on the
# per-module counts of synth_ecp5 -noflatten, yosys 0.70, of the designs it lists).
LUT_COEFFICIENTS: dict[str, float] = {
    "convert.counter_bits": 5.4092, "convert.gather_bits": 0.27,
    "fifo.lutram_read_mux": 0.5151, "fifo.pointer_bits": 2.3245, "fifo.stage": 8.4158,
    "mvtu.adder_bits": 0.6729, "mvtu.beat_bits": 2.8637, "mvtu.compare_bits": 0.3755,
    "mvtu.counter_bits": 2.0588, "mvtu.negate_bits": 0.2327, "mvtu.popcount_bits": 0.0233,
    "mvtu.rom_lut_bits": 0.3228, "mvtu.weight_rom_lut_bits": 2.1037,
    "pool.counter_bits": 5.6943, "pool.lutram_read_mux": 8.5947, "swu.counter_bits": 8.6394,
    "swu.lutram_read_mux": 1.4,
}
FF_COEFFICIENTS: dict[str, float] = {
    "convert.counter_bits": 4.2528, "convert.gather_bits": 0.3449, "convert.stage": 4.7478,
    "fifo.lutram_read_mux": 0.3208, "fifo.pointer_bits": 0.1614, "mvtu.adder_bits": 0.0712,
    "mvtu.clocked_bits": 0.8013, "mvtu.lutram_read_mux": 0.2972, "mvtu.popcount_bits": 0.0352,
    "mvtu.rom_lut_bits": 0.0466, "mvtu.stage": 15.2532, "pool.counter_bits": 3.636,
    "pool.lutram_read_mux": 1.1686, "swu.counter_bits": 5.8983,
}


def _tree_bits(terms: int, leaf_bits: int) -> int:
    """Output bits of every two-input adder of ``accel.hw.finn.mvtu.balanced_sum`` over
    ``terms`` leaves of ``leaf_bits`` bits (each level one bit wider)."""
    bits, width, level = 0, leaf_bits, terms
    while level > 1:
        width += 1
        bits += (level // 2) * width
        level = -(-level // 2)
    return bits


def _prefixed(kind: str, features: dict) -> dict:
    return {f"{kind}.{name}": value for name, value in features.items()}


def _mvtu(stage: LayerMapping) -> Resources:
    a, w, pe, simd = stage.input, stage.weight, stage.pe, stage.simd
    stages = stage.pipeline_stages
    sync = stages.read > 0
    nf, sf = stage.neuron_fold, stage.synapse_fold
    in_width = simd * a.bits
    codes = w.encode(stage.weights)
    field_bits = stage.register_bits + 1  # a threshold's field (accel.hw.finn.mvtu)
    memories = [memory_resources(in_width, max(sf, 2), writable=True, sync_read=sync)]
    for p in range(pe):  # PE p holds output channels p, p + PE, ...
        lanes = codes[p::pe].reshape(nf * sf, simd)
        weights = memory_resources(simd * w.bits, max(nf * sf, 2), writable=False,
                                   sync_read=sync, varying=varying_bits(lanes, w.bits))
        # weights in LUTs feed the lanes directly: priced apart from the thresholds
        weights.features = {f"weight_{name}": value for name, value in weights.features.items()}
        memories.append(weights)
        if stage.thresholds is not None:
            memories.append(memory_resources(
                stage.steps * field_bits, max(nf, 2), writable=False, sync_read=sync,
                varying=varying_bits(stage.thresholds[p::pe], field_bits)))
    binary = a.bipolar and w.bipolar
    if binary:
        popcount, adder, negate, multiply = _tree_bits(simd, 1), 0, 0, 0
    elif w.bipolar or a.bipolar:
        term = (a.bits if w.bipolar else w.bits) + 1
        popcount, adder, negate, multiply = 0, _tree_bits(simd, term), simd * term, 0
    else:
        term = a.bits + w.bits
        popcount, adder, negate, multiply = 0, _tree_bits(simd, term), 0, simd * a.bits * w.bits
    features = {
        "stage": 1, "pe": pe, "popcount_bits": pe * popcount, "adder_bits": pe * adder,
        "negate_bits": pe * negate, "multiply_bits": pe * multiply,
        "accumulator_bits": pe * stage.register_bits,
        "compare_bits": pe * stage.steps * (stage.register_bits + 1),
        "beat_bits": in_width,
        "counter_bits": counter_bits(nf) + counter_bits(sf) + counter_bits(nf * sf),
        "clocked_bits": clocked_bits(stage),
    }
    out = Resources(features=_prefixed("mvtu", features))
    for memory in memories:
        out = out + Resources(memory.lut, memory.ff, memory.lutram, memory.bram,
                              _prefixed("mvtu", memory.features))
    if stage.pipeline:
        out = out + fifo(pe * stage.output.bits, stage.output_slots)
    return out


def fifo(width: int, depth: int) -> Resources:
    """``accel.hw.common.fifo.StreamFIFO``: a register at depth 1, else LUT RAM with read and
    write pointers and a fill level."""
    control = {"stage": 1, "pointer_bits": 1 + counter_bits(depth + 1)}
    if depth == 1:
        return Resources(ff=width, features=_prefixed("fifo", control))
    storage = memory_resources(width, depth, writable=True, sync_read=False)
    control["pointer_bits"] += 2 * counter_bits(depth)
    return Resources(storage.lut, storage.ff, storage.lutram, storage.bram,
                     _prefixed("fifo", {**control, **storage.features}))


def converter(element_bits: int, in_elements: int, out_elements: int) -> Resources:
    """``StreamWidthConverter``: a wire, a gathering register, or a held beat and its
    output select."""
    if in_elements == out_elements:
        return Resources()
    if out_elements > in_elements:
        ratio = out_elements // in_elements
        return Resources(features=_prefixed("convert", {
            "stage": 1, "gather_bits": element_bits * out_elements,
            "counter_bits": counter_bits(ratio + 1)}))
    ratio = in_elements // out_elements
    return Resources(features=_prefixed("convert", {
        "stage": 1, "held_bits": element_bits * in_elements,
        "split_mux_bits": element_bits * out_elements * (ratio - 1),
        "counter_bits": counter_bits(ratio)}))


def _window(stage: WindowMapping) -> Resources:
    beat = stage.in_elements * stage.input.bits
    storage = memory_resources(beat, stage.rows * stage.width * stage.channel_beats,
                               writable=True, sync_read=False)
    return Resources(storage.lut, storage.ff, storage.lutram, storage.bram, _prefixed("swu", {
        "stage": 1, "beat_bits": stage.out_elements * stage.output.bits,
        "counter_bits": counter_bits(stage.height) + counter_bits(stage.width)
        + counter_bits(stage.rows) + counter_bits(stage.channel_beats * stage.kernel ** 2),
        **storage.features}))


def _pool(stage: PoolMapping) -> Resources:
    beat = stage.in_elements * stage.input.bits
    storage = memory_resources(beat, max(stage.out_width * stage.channel_beats, 2),
                               writable=True, sync_read=False)
    return Resources(storage.lut, storage.ff, storage.lutram, storage.bram, _prefixed("pool", {
        "stage": 1, "compare_bits": beat,
        "counter_bits": counter_bits(stage.height) + counter_bits(stage.width),
        **storage.features}))


def _threshold(stage: ThresholdMapping) -> Resources:
    word = stage.lanes * stage.steps * stage.threshold_bits
    fields = stage.thresholds.reshape(stage.channel_beats, stage.lanes * stage.steps)
    storage = memory_resources(word, max(stage.channel_beats, 2), writable=False,
                               sync_read=False,
                               varying=varying_bits(fields, stage.threshold_bits))
    return Resources(storage.lut, storage.ff, storage.lutram, storage.bram, _prefixed("thr", {
        "stage": 1, "compare_bits": word, "beat_bits": stage.out_elements * stage.output.bits,
        **storage.features}))


_STAGE_MODELS = {LayerMapping: _mvtu, WindowMapping: _window, PoolMapping: _pool,
                 ThresholdMapping: _threshold}


def structural(mapping: FinnMapping) -> dict[str, Resources]:
    """Per module of the top (``l0``, ``swu0``, ..., ``convert0``, ``fifo0``, ...): exact
    memories and the features the coefficients price. An MVTU's output FIFO is part of it."""
    stages = mapping.stages
    parts = {name: _STAGE_MODELS[type(stage)](stage)
             for name, stage in zip(stage_names(mapping), stages)}
    for k, (before, after) in enumerate(zip(stages, stages[1:])):
        parts[f"convert{k}"] = converter(before.output.bits, before.out_elements,
                                         after.in_elements)
        parts[f"fifo{k}"] = fifo(after.in_elements * after.input.bits, mapping.fifo_depths[k])
    return parts


def resources(mapping: FinnMapping) -> dict[str, Resources]:
    """The design's ECP5 resources per module (without event counters: FPGA builds leave them
    out)."""
    return {name: apply(LUT_COEFFICIENTS, FF_COEFFICIENTS, part)
            for name, part in structural(mapping).items()}
