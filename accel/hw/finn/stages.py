"""What each kind of FINN stage is, in one place: its event names (the actions below, counted
as ``<stage>.<action>``), what each event is physically (energy specs), the RTL block and the
strobes its counters take, its pieces of the two cycle models (per token and per cycle), its
events per frame and its manifest entry. The top, the energy declaration, the models and the
manifest ask ``kind_of(stage)``; nothing else decides what a stage is.

FIFO k between stages k and k+1 counts ``fifo<k>.push`` (``FIFO_PUSH``).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from accel.energy.model import EventSpec
from accel.hw.finn.mapping import (FinnMapping, LayerMapping, PoolMapping, ThresholdMapping,
                                   WindowMapping, tree_cuts)

# MVTU
WEIGHT_READ = "weight_mem.read"
BUFFER_WRITE = "input_buffer.write"  # an input beat kept for the later folds
BUFFER_READ = "input_buffer.read"  # a later fold's replay
THRESHOLD_READ = "threshold_mem.read"
THRESHOLD_COMPARE = "threshold.compare"
# sliding window
LINE_WRITE = "line_buffer.write"
LINE_READ = "line_buffer.read"
# max-pool
ROW_READ = "row_buffer.read"
ROW_WRITE = "row_buffer.write"
MAX_COMPARE = "max.compare"
FIFO_PUSH = "push"


def operation(layer: LayerMapping) -> str:
    """The MVTU lane's action: ``pe.xnor_popcount`` (both operands bipolar) or ``pe.mac``."""
    return "pe.xnor_popcount" if layer.input.bipolar and layer.weight.bipolar else "pe.mac"


class MVTUKind:
    prefix = "l"
    manifest_kind = "mvtu"

    def block(self, spec: LayerMapping, layout=None, memories=()):
        """The RTL block; with a parameter layout (loadable weights), its memories' entries."""
        from accel.hw.finn.mvtu import MVTU

        return MVTU(spec, layout, memories)

    def events(self, spec: LayerMapping) -> dict[str, int]:
        """Action -> the largest increment in one cycle."""
        events = {WEIGHT_READ: spec.pe, BUFFER_WRITE: 1, BUFFER_READ: 1,
                  operation(spec): spec.pe * spec.simd}
        if spec.thresholds is not None:
            events[THRESHOLD_READ] = spec.pe
            events[THRESHOLD_COMPARE] = spec.pe * spec.steps
        return events

    def strobes(self, block, spec: LayerMapping) -> dict:
        """Action -> the Amaranth value its counter adds each cycle."""
        strobes = {WEIGHT_READ: block.step * spec.pe, BUFFER_WRITE: block.input_step,
                   BUFFER_READ: block.step & ~block.input_step,
                   operation(spec): block.step * (spec.pe * spec.simd)}
        if spec.thresholds is not None:
            strobes[THRESHOLD_READ] = block.output_step * spec.pe
            strobes[THRESHOLD_COMPARE] = block.output_step * (spec.pe * spec.steps)
        return strobes

    def specs(self, spec: LayerMapping) -> dict[str, EventSpec]:
        word = spec.simd * spec.weight.bits
        depth = spec.neuron_fold * spec.synapse_fold
        beat = spec.simd * spec.input.bits
        buffer = {"capacity_bytes": spec.synapse_fold * beat / 8, "width": beat}
        lane = {"acc_bits": spec.register_bits, "simd": spec.simd,
                "bits": max(spec.input.bits, spec.weight.bits)}
        kind = "xnor_popcount_lane" if operation(spec) == "pe.xnor_popcount" else (
            "negate_add_lane" if spec.weight.bipolar or spec.input.bipolar else "mac")
        specs = {WEIGHT_READ: EventSpec("sram", "memory", {"capacity_bytes": depth * word / 8,
                                                           "width": word}),
                 BUFFER_WRITE: EventSpec("register", "memory", buffer),
                 BUFFER_READ: EventSpec("register", "memory", buffer),
                 operation(spec): EventSpec(kind, "compute", lane)}
        if spec.thresholds is not None:
            row = spec.steps * (spec.register_bits + 1)
            specs[THRESHOLD_READ] = EventSpec(
                "register", "memory", {"capacity_bytes": spec.neuron_fold * row / 8,
                                       "width": row})
            specs[THRESHOLD_COMPARE] = EventSpec("compare", "compute",
                                                 {"bits": spec.register_bits + 1})
        return specs

    def counts(self, spec: LayerMapping, steps: int, replays: int, outputs: int) -> dict:
        """Events of ``steps`` steps, ``replays`` of them in later folds, ``outputs`` of them
        filling the output register."""
        counts = {WEIGHT_READ: spec.pe * steps, operation(spec): spec.pe * spec.simd * steps,
                  BUFFER_WRITE: steps - replays, BUFFER_READ: replays}
        if spec.thresholds is not None:
            counts[THRESHOLD_READ] = spec.pe * outputs
            counts[THRESHOLD_COMPARE] = spec.pe * spec.steps * outputs
        return counts

    def frame_events(self, spec: LayerMapping) -> dict[str, int]:
        nf, sf, vectors = spec.neuron_fold, spec.synapse_fold, spec.vectors
        return self.counts(spec, nf * sf * vectors, (nf - 1) * sf * vectors, nf * vectors)

    def manifest(self, spec: LayerMapping) -> dict:
        return {"weight_memory_depth": spec.mw * spec.mh // (spec.pe * spec.simd)}

    def token_stage(self, spec, frames):
        from accel.hw.finn.tokens import MVTUTokens

        return MVTUTokens(spec, frames)

    def step_stage(self, spec, name):
        from accel.hw.finn.model import MVTUStepper

        return MVTUStepper(spec, name)


class WindowKind:
    prefix = "swu"
    manifest_kind = "sliding_window"

    def block(self, spec: WindowMapping):
        from accel.hw.finn.window import SlidingWindowUnit

        return SlidingWindowUnit(spec)

    def events(self, spec: WindowMapping) -> dict[str, int]:
        return {LINE_WRITE: 1, LINE_READ: 1}

    def strobes(self, block, spec: WindowMapping) -> dict:
        return {LINE_WRITE: block.write_step, LINE_READ: block.read_step}

    def specs(self, spec: WindowMapping) -> dict[str, EventSpec]:
        lines = {"capacity_bytes": spec.rows * spec.width * spec.channels * spec.element.bits / 8,
                 "width": spec.simd * spec.element.bits}
        return {LINE_WRITE: EventSpec("sram", "memory", lines),
                LINE_READ: EventSpec("sram", "memory", lines)}

    def frame_events(self, spec: WindowMapping) -> dict[str, int]:
        return {LINE_WRITE: spec.beats_in, LINE_READ: shown_beats(spec)}

    def manifest(self, spec: WindowMapping) -> dict:
        return {}

    def token_stage(self, spec, frames):
        from accel.hw.finn.tokens import WindowTokens

        return WindowTokens(spec, frames)

    def step_stage(self, spec, name):
        from accel.hw.finn.model import WindowStepper

        return WindowStepper(spec, name)


class PoolKind:
    prefix = "pool"
    manifest_kind = "maxpool"

    def block(self, spec: PoolMapping):
        from accel.hw.finn.window import MaxPoolUnit

        return MaxPoolUnit(spec)

    def events(self, spec: PoolMapping) -> dict[str, int]:
        return {ROW_READ: 1, ROW_WRITE: 1, MAX_COMPARE: spec.lanes}

    def strobes(self, block, spec: PoolMapping) -> dict:
        compared = block.window_step & ~block.first_step
        return {ROW_READ: compared, ROW_WRITE: block.window_step & ~block.last_step,
                MAX_COMPARE: compared * spec.lanes}

    def specs(self, spec: PoolMapping) -> dict[str, EventSpec]:
        row = {"capacity_bytes": spec.out_width * spec.channels * spec.element.bits / 8,
               "width": spec.lanes * spec.element.bits}
        return {ROW_READ: EventSpec("register", "memory", row),
                ROW_WRITE: EventSpec("register", "memory", row),
                MAX_COMPARE: EventSpec("compare", "compute", {"bits": spec.element.bits})}

    def counts(self, spec: PoolMapping, taken: np.ndarray) -> dict[str, int]:
        """Events of the input beats marked in ``taken`` (a mask over whole frames)."""
        inside, first, last = (np.tile(flags, len(taken) // spec.beats_in)
                               for flags in pool_positions(spec))
        compared = int((taken & inside & ~first).sum())
        return {ROW_READ: compared, MAX_COMPARE: compared * spec.lanes,
                ROW_WRITE: int((taken & inside & ~last).sum())}

    def frame_events(self, spec: PoolMapping) -> dict[str, int]:
        return self.counts(spec, np.ones(spec.beats_in, dtype=bool))

    def manifest(self, spec: PoolMapping) -> dict:
        return {}

    def token_stage(self, spec, frames):
        from accel.hw.finn.tokens import PoolTokens

        return PoolTokens(spec, frames)

    def step_stage(self, spec, name):
        from accel.hw.finn.model import PoolStepper

        return PoolStepper(spec, name)


class ThresholdKind:
    prefix = "thr"
    manifest_kind = "thresholding"

    def block(self, spec: ThresholdMapping, layout=None, memories=()):
        from accel.hw.finn.threshold import ThresholdUnit

        return ThresholdUnit(spec, layout, memories)

    def events(self, spec: ThresholdMapping) -> dict[str, int]:
        return {THRESHOLD_READ: 1, THRESHOLD_COMPARE: spec.lanes * spec.steps}

    def strobes(self, block, spec: ThresholdMapping) -> dict:
        return {THRESHOLD_READ: block.step,
                THRESHOLD_COMPARE: block.step * (spec.lanes * spec.steps)}

    def specs(self, spec: ThresholdMapping) -> dict[str, EventSpec]:
        row = spec.lanes * spec.steps * spec.threshold_bits
        return {THRESHOLD_READ: EventSpec("register", "memory",
                                          {"capacity_bytes": spec.channel_beats * row / 8,
                                           "width": row}),
                THRESHOLD_COMPARE: EventSpec("compare", "compute", {"bits": spec.threshold_bits})}

    def counts(self, spec: ThresholdMapping, taken: np.ndarray) -> dict[str, int]:
        """Events of the input beats marked in ``taken``."""
        beats = int(np.count_nonzero(taken))
        return {THRESHOLD_READ: beats, THRESHOLD_COMPARE: beats * spec.lanes * spec.steps}

    def frame_events(self, spec: ThresholdMapping) -> dict[str, int]:
        return self.counts(spec, np.ones(spec.beats_in, dtype=bool))

    def manifest(self, spec: ThresholdMapping) -> dict:
        return {}

    def token_stage(self, spec, frames):
        from accel.hw.finn.tokens import PoolTokens

        return PoolTokens(spec, frames)  # a max-pool of one element: the same timing

    def step_stage(self, spec, name):
        from accel.hw.finn.model import ThresholdStepper

        return ThresholdStepper(spec, name)


KINDS = {LayerMapping: MVTUKind(), WindowMapping: WindowKind(), PoolMapping: PoolKind(),
         ThresholdMapping: ThresholdKind()}


def kind_of(stage):
    return KINDS[type(stage)]


def stage_names(mapping: FinnMapping) -> list[str]:
    """Event prefix of each stage: MVTUs l0, l1, ...; sliding-window units swu0, ...; pooling
    units pool0, ...; thresholding stages thr0, ... (each kind counted on its own, in stream
    order)."""
    seen: dict[str, int] = {}
    names = []
    for stage in mapping.stages:
        prefix = kind_of(stage).prefix
        names.append(f"{prefix}{seen.get(prefix, 0)}")
        seen[prefix] = seen.get(prefix, 0) + 1
    return names


def fifo_name(k: int) -> str:
    return f"fifo{k}.{FIFO_PUSH}"


def event_declarations(mapping: FinnMapping) -> dict[str, int]:
    """Every event the top counts, with the largest increment per cycle."""
    events = {f"{name}.{action}": increment
              for name, stage in zip(stage_names(mapping), mapping.stages)
              for action, increment in kind_of(stage).events(stage).items()}
    events.update({fifo_name(k): 1 for k in range(len(mapping.stages) - 1)})
    return events


def _counter_bits(count: int) -> int:
    return max(count - 1, 1).bit_length()  # Signal(range(max(count, 2)))


def beat_copy_bits(stage: LayerMapping) -> int:
    """Flip-flops of the per-PE copies of the selected input beat (the second beat stage,
    ``PipelineStages.beat``): kept apart for synthesis, so each is a flip-flop as built."""
    return (stage.pipeline_stages.beat == 2) * stage.pe * stage.simd * stage.input.bits


def _pipeline_bits(stage: LayerMapping) -> int:
    """Flip-flops of an MVTU's pipeline (``LayerMapping.pipeline_stages``): the registered
    input beat, the step's control travelling with it, the adder tree's registers at the
    widths of the levels they cut (as ``accel.hw.finn.mvtu.balanced_sum`` places them; term
    widths as the generator's: a popcount bit, a signed product or negation), the totals
    before the compare and the count of issued outputs; with an address stage, the weight
    address the copies load from and the input buffer's delayed read address, with beat
    stages the registered beat, each PE's copy of it and the address's further registers; the
    input buffer's registered write (``LayerMapping.buffer_write_lag``: its address, its
    enable and, where no pipeline register holds the beat already, its data)."""
    stages = stage.pipeline_stages
    a, w = stage.input, stage.weight
    fetch = stages.fetch
    write = stage.buffer_write_lag * (_counter_bits(stage.synapse_fold) + 1
                                      + (stage.simd * a.bits if fetch == 0 else 0))
    if stage.pipeline == 0:
        return write
    term = 1 if a.bipolar and w.bipolar else (
        a.bits + 2 if w.bipolar else w.bits + 2 if a.bipolar else a.bits + w.bits)
    cuts = tree_cuts(stage.simd, stages.tree, stage.tree_tail)
    tree = sum(stage.pe * -(-stage.simd // (1 << level)) * (term + level) for level in cuts)
    accumulate_at = fetch + stages.tree
    control = 2 * accumulate_at + stage.pipeline + (accumulate_at + stages.compare
                                                     - stages.read) * _counter_bits(stage.neuron_fold)
    address = (stages.address * _counter_bits(stage.synapse_fold)
               + (stages.address + stages.beat)
               * _counter_bits(stage.neuron_fold * stage.synapse_fold))
    beat = min(stages.beat, 1) * stage.simd * a.bits + beat_copy_bits(stage)
    return (stages.select * (stage.simd * a.bits + 1) + control + address + beat
            + write + tree
            + stages.compare * stage.pe * stage.register_bits
            + _counter_bits(stage.output_slots + 1))


def clocked_bits(stage) -> int:
    """Flip-flops a stage clocks every cycle (priced per cycle, busy or idle): an MVTU's
    accumulators, output register, fold counters, weight address (or a copy per PE) and pipeline
    registers (accel/hw/finn/mvtu.py); a max-pool's or thresholding stage's output register and
    valid flag. Not counted: the sliding-window unit's and max-pool's position counters and the
    width converters (tens of bits each); memories and FIFOs are written a row at a time (their
    clock is in the write)."""
    if isinstance(stage, LayerMapping):
        nf, sf = stage.neuron_fold, stage.synapse_fold
        return (stage.pe * (stage.register_bits + stage.output.bits) + _counter_bits(nf)
                + _counter_bits(sf) + stage.weight_address_registers * _counter_bits(nf * sf)
                + 1 + _pipeline_bits(stage))
    if isinstance(stage, (PoolMapping, ThresholdMapping)):
        return stage.out_elements * stage.output.bits + 1
    return 0


def event_specs(mapping: FinnMapping) -> dict[str, EventSpec]:
    """What each FINN event is, physically: the architecture's declaration for the energy
    model. A FIFO push is written once and read once. Each stage's registers clocked every
    cycle are a per-cycle ``clock`` spec, ``<stage>.registers.clock``."""
    specs = {f"{name}.{action}": spec
             for name, stage in zip(stage_names(mapping), mapping.stages)
             for action, spec in kind_of(stage).specs(stage).items()}
    specs.update({f"{name}.registers.clock": EventSpec("clock", "compute",
                                                       {"bits": clocked_bits(stage)})
                  for name, stage in zip(stage_names(mapping), mapping.stages)
                  if clocked_bits(stage)})
    for k, (depth, consumer) in enumerate(zip(mapping.fifo_depths, mapping.stages[1:])):
        beat = consumer.in_elements * consumer.input.bits
        specs[fifo_name(k)] = EventSpec("register", "queues",
                                        {"capacity_bytes": depth * beat / 8, "width": 2 * beat})
    return specs


def frame_events(mapping: FinnMapping) -> dict[str, int]:
    """Every event's count per frame (each stage handles every beat of a frame alike)."""
    events = dict.fromkeys(event_declarations(mapping), 0)
    for name, stage in zip(stage_names(mapping), mapping.stages):
        for action, count in kind_of(stage).frame_events(stage).items():
            events[f"{name}.{action}"] = count
    for k, consumer in enumerate(mapping.stages[1:]):
        events[fifo_name(k)] = consumer.beats_in
    return events


def stage_manifest(stage) -> dict:
    kind = kind_of(stage)
    entry = {k: v for k, v in asdict(stage).items() if k not in ("weights", "thresholds")}
    return {**entry, "kind": kind.manifest_kind, "cycles_per_frame": stage.cycles_per_frame,
            **kind.manifest(stage)}


def shown_beats(spec: WindowMapping) -> int:
    """Window beats of a frame that show an input pixel (not padding)."""
    def inside(size: int, out: int) -> int:  # (output, kernel offset) pairs within the image
        position = np.arange(out)[:, None] + np.arange(spec.kernel) - spec.padding
        return int(((position >= 0) & (position < size)).sum())

    return (inside(spec.height, spec.out_height) * inside(spec.width, spec.out_width)
            * spec.channel_beats)


def pool_positions(spec: PoolMapping):
    """Per input beat of a frame: inside a window, opening it, closing it."""
    beat = np.arange(spec.beats_in)
    pixel = beat // spec.channel_beats
    y, x, k = pixel // spec.width, pixel % spec.width, spec.kernel
    inside = (y < spec.out_height * k) & (x < spec.out_width * k)
    return inside, (y % k == 0) & (x % k == 0), (y % k == k - 1) & (x % k == k - 1)
