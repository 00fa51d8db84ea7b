"""FINN's resource model (``accel.hw.resources``): per stage of ``accel.hw.finn.top.FinnTop``
(MVTUs with their output FIFOs, sliding-window units, max-pools, thresholding stages, and
between stages a width converter and a FIFO), the structural counts of what
``accel/hw/finn/*.py`` generate, and the fitted coefficients that turn them into LUT4s and
flip-flops. Memories are exact (``memory_resources``)."""

from __future__ import annotations

from accel.hw.finn.loading import parameter_layout
from accel.hw.finn.mapping import (FinnMapping, LayerMapping, PoolMapping, ThresholdMapping,
                                   WindowMapping)
from accel.hw.finn.stages import beat_copy_bits, clocked_bits, stage_names
from accel.hw.resources import (Resources, apply, counter_bits, fifo, memory_resources,
                                 prefixed, tree_bits, rom_columns)

# Fitted by ``python benchmarks/resources.py --fit`` (non-negative least squares, relative
# error, on the per-module counts of synth_ecp5 -noflatten and the flattened totals, yosys 0.70,
# of the FINN designs it lists).
LUT_COEFFICIENTS: dict[str, float] = {
    "convert.counter_bits": 5.0822, "fifo.lutram_read_mux": 1.0359, "fifo.pointer_bits": 1.7593,
    "mvtu.accumulator_bits": 0.1797, "mvtu.beat_bits": 1.7248, "mvtu.counter_bits": 3.1869,
    "mvtu.lutram_read_mux": 0.3524, "mvtu.negate_bits": 1.2394, "mvtu.parameter_bits": 0.7278,
    "mvtu.popcount_bits": 1.0633, "mvtu.rom_lut_bits": 0.2316,
    "mvtu.weight_rom_integer_lane_bits": 0.7698, "mvtu.weight_rom_lut_bits": 1.1512,
    "pool.compare_bits": 0.6611, "pool.counter_bits": 8.1324, "swu.beat_bits": 0.581,
    "swu.counter_bits": 8.2418, "swu.stage": 2.6372,
}
FF_COEFFICIENTS: dict[str, float] = {
    "convert.counter_bits": 0.9033, "convert.gather_bits": 1.0439, "convert.stage": 0.0942,
    "fifo.lutram_read_mux": 0.0326, "fifo.pointer_bits": 0.85, "mvtu.clocked_bits": 0.8241,
    "mvtu.lutram_read_mux": 0.8085, "mvtu.negate_bits": 0.0157, "mvtu.parameter_bits": 0.3564,
    "mvtu.weight_rom_lut_bits": 0.0167, "pool.compare_bits": 0.6699, "pool.counter_bits": 3.224,
    "swu.beat_bits": 0.0211, "swu.counter_bits": 1.1125, "swu.stage": 12.5061,
}


def _mvtu(stage: LayerMapping, loadable: bool) -> Resources:
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
        weights = memory_resources(simd * w.bits, max(nf * sf, 2), writable=loadable,
                                   sync_read=sync, weights=True,
                                   columns=None if loadable else rom_columns(lanes, w.bits))
        # weights in LUTs: priced apart from the thresholds; read combinationally into integer
        # lanes, per input bit (yosys merges each weight bit's ROM with its x-or-minus-x select)
        rom = weights.features.pop("rom_lut_bits", 0)
        fused = not a.bipolar and not sync
        lane = "weight_rom_integer_lane_bits" if fused else "weight_rom_lut_bits"
        weights.features[lane] = rom * (a.bits if fused else 1)
        memories.append(weights)
        if stage.thresholds is not None:
            memories.append(memory_resources(
                stage.steps * field_bits, max(nf, 2), writable=loadable, sync_read=sync,
                columns=None if loadable else rom_columns(stage.thresholds[p::pe], field_bits)))
    binary = a.bipolar and w.bipolar
    if binary:
        popcount, adder, negate, multiply = tree_bits(simd, 1), 0, 0, 0
    elif w.bipolar or a.bipolar:
        term = (a.bits if w.bipolar else w.bits) + 1
        popcount, adder, negate, multiply = 0, tree_bits(simd, term), simd * term, 0
    else:
        term = a.bits + w.bits
        popcount, adder, negate, multiply = 0, tree_bits(simd, term), 0, simd * a.bits * w.bits
    features = {
        "stage": 1, "pe": pe, "popcount_bits": pe * popcount, "adder_bits": pe * adder,
        "negate_bits": pe * negate, "multiply_bits": pe * multiply,
        "accumulator_bits": pe * stage.register_bits,
        "compare_bits": pe * stage.steps * (stage.register_bits + 1),
        "beat_bits": in_width,
        "counter_bits": counter_bits(nf) + counter_bits(sf) + counter_bits(nf * sf),
        # the beat's per-PE copies are kept registers, a flip-flop each (below), which the
        # coefficient, fitted on designs without them, would undercount (SFC-max's fc0 alone:
        # FF -12.3 % against yosys with them priced by it)
        "clocked_bits": clocked_bits(stage) - beat_copy_bits(stage),
    }
    if loadable:  # the parameter memories' bits: their write side, all columns live
        features["parameter_bits"] = pe * (simd * w.bits + stage.steps * field_bits)
    out = Resources(ff=beat_copy_bits(stage), features=prefixed("mvtu", features))
    for memory in memories:
        out = out + memory.under("mvtu")
    if stage.pipeline:
        out = out + fifo(pe * stage.output.bits, stage.output_slots)
    return out


def converter(element_bits: int, in_elements: int, out_elements: int) -> Resources:
    """``StreamWidthConverter``: a wire, a gathering register, or a held beat and its
    output select."""
    if in_elements == out_elements:
        return Resources()
    if out_elements > in_elements:
        ratio = out_elements // in_elements
        return Resources(features=prefixed("convert", {
            "stage": 1, "gather_bits": element_bits * out_elements,
            "counter_bits": counter_bits(ratio + 1)}))
    ratio = in_elements // out_elements
    return Resources(features=prefixed("convert", {
        "stage": 1, "held_bits": element_bits * in_elements,
        "split_mux_bits": element_bits * out_elements * (ratio - 1),
        "counter_bits": counter_bits(ratio)}))


def _window(stage: WindowMapping, loadable: bool) -> Resources:
    beat = stage.in_elements * stage.input.bits
    storage = memory_resources(beat, stage.rows * stage.width * stage.channel_beats,
                               writable=True, sync_read=False)
    return storage.under("swu", {
        "stage": 1, "beat_bits": stage.out_elements * stage.output.bits,
        "counter_bits": counter_bits(stage.height) + counter_bits(stage.width)
        + counter_bits(stage.rows) + counter_bits(stage.channel_beats * stage.kernel ** 2),
    })


def _pool(stage: PoolMapping, loadable: bool) -> Resources:
    beat = stage.in_elements * stage.input.bits
    storage = memory_resources(beat, max(stage.out_width * stage.channel_beats, 2),
                               writable=True, sync_read=False)
    return storage.under("pool", {
        "stage": 1, "compare_bits": beat,
        "counter_bits": counter_bits(stage.height) + counter_bits(stage.width),
    })


def _threshold(stage: ThresholdMapping, loadable: bool) -> Resources:
    word = stage.lanes * stage.steps * stage.threshold_bits
    fields = stage.thresholds.reshape(stage.channel_beats, stage.lanes * stage.steps)
    storage = memory_resources(word, max(stage.channel_beats, 2), writable=loadable,
                               sync_read=False,
                               columns=None if loadable else rom_columns(fields,
                                                                         stage.threshold_bits))
    return storage.under("thr", {
        "stage": 1, "compare_bits": word, "beat_bits": stage.out_elements * stage.output.bits,
        **({"parameter_bits": word} if loadable else {}),
    })


_STAGE_MODELS = {LayerMapping: _mvtu, WindowMapping: _window, PoolMapping: _pool,
                 ThresholdMapping: _threshold}


def structural(mapping: FinnMapping) -> dict[str, Resources]:
    """Per module of the top (``l0``, ``swu0``, ..., ``convert0``, ``fifo0``, ...): exact
    memories and the features the coefficients price. An MVTU's output FIFO is part of it.
    With loadable weights the parameter memories are RAMs holding every column, and
    ``param`` is the port's register; the write side is priced per parameter bit."""
    stages = mapping.stages
    loadable = mapping.loadable_weights
    parts = {name: _STAGE_MODELS[type(stage)](stage, loadable)
             for name, stage in zip(stage_names(mapping), stages)}
    if loadable:
        layout = parameter_layout(mapping)
        parts["param"] = Resources(ff=layout.addr_bits + layout.data_bits + 1)
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
