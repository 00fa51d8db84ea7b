"""Cycle model of the FINN dataflow harness: cycles, frame-0 latency and every event count,
equal to the RTL's (``tests/test_finn.py`` holds them equal).

Outputs come from the golden model: the datapath computes exactly its arithmetic, and timing in
this architecture does not depend on data. The model steps the harness cycle by cycle, register
for register (source, MVTUs, FIFOs, width converters, sink). Because timing is data-independent
the pipeline settles into a periodic regime; once the whole state at the start of a frame
repeats, the remaining frames but the last are skipped over by adding whole periods, which makes
the model fast for any number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.hw.finn.mapping import FinnMapping
from accel.hw.finn.top import event_declarations, operation_name


@dataclass
class FinnTiming:
    cycles: int
    frame0_cycles: int
    events: dict[str, int]


class _Stage:
    def __init__(self, layer):
        self.layer = layer
        self.nf = self.sf = 0
        self.out_valid = False


class _Converter:
    def __init__(self, in_elements, out_elements):
        self.gather = out_elements // in_elements if out_elements > in_elements else 0
        self.split = in_elements // out_elements if in_elements > out_elements else 0
        self.count = 0  # gather: pieces held; split: index of the next piece
        self.held = False  # split only

    @property
    def out_valid(self):
        if self.gather:
            return self.count == self.gather
        return self.held

    def in_ready(self, out_ready):
        if self.gather:
            return self.count != self.gather or out_ready
        if self.split:
            return not self.held or (out_ready and self.count == self.split - 1)
        return out_ready


def simulate(mapping: FinnMapping, frames: int) -> FinnTiming:
    """Cycles to stream ``frames`` frames through the harness at full input rate."""
    layers = mapping.layers
    stages = [_Stage(layer) for layer in layers]
    converters = [_Converter(a.pe, b.simd) for a, b in zip(layers, layers[1:])]
    levels = [0] * len(converters)
    depths = mapping.fifo_depths
    beats_in = layers[0].synapse_fold * layers[0].vectors
    beats_out = layers[-1].neuron_fold * layers[-1].vectors
    total_in, total_out = beats_in * frames, beats_out * frames
    names = list(event_declarations(mapping))
    events = dict.fromkeys(names, 0)
    sent = received = cycles = frame0 = 0
    boundaries: dict[int, tuple] = {}
    skipped = False
    last = len(stages) - 1

    while received != total_out:
        frame = sent // beats_in
        if not skipped and sent == frame * beats_in and frame not in boundaries and frame > 0:
            state = (tuple((s.nf, s.sf, s.out_valid) for s in stages),
                     tuple((c.count, c.held) for c in converters), tuple(levels),
                     received - frame * beats_out)
            boundaries[frame] = (state, cycles, dict(events), frame0)
            previous = boundaries.get(frame - 1)
            if previous and previous[0] == state and frame < frames - 1 and frame0 == previous[3]:
                period = cycles - previous[1]
                skip = frames - 1 - frame
                cycles += skip * period
                for name in names:
                    events[name] += skip * (events[name] - previous[2][name])
                sent += skip * beats_in
                received += skip * beats_out
                skipped = True
                continue

        # handshakes: every ready depends on registers only, except a stage's input ready,
        # which depends on its output ready (a register-based FIFO or converter ready)
        fifo_ready = [levels[k] < depths[k] for k in range(len(converters))]
        out_ready = [converters[k].in_ready(fifo_ready[k]) for k in range(len(converters))]
        out_ready.append(True)  # the sink
        in_valid = [sent < total_in] + [level > 0 for level in levels]
        in_ready, steps = [], []
        for k, stage in enumerate(stages):
            layer = stage.layer
            last_synapse = stage.sf == layer.synapse_fold - 1
            out_free = not stage.out_valid or out_ready[k]
            in_ready.append(stage.nf == 0 and (not last_synapse or out_free))
            step = (stage.nf != 0 or in_valid[k]) and (not last_synapse or out_free)
            steps.append((step, step and stage.nf == 0, step and last_synapse))
        converter_in = [stages[k].out_valid and out_ready[k] for k in range(len(converters))]
        converter_out = [c.out_valid and fifo_ready[k] for k, c in enumerate(converters)]
        fifo_push = [converter_out[k] if (c.gather or c.split) else converter_in[k]
                     for k, c in enumerate(converters)]
        fifo_pop = [levels[k] > 0 and in_ready[k + 1] for k in range(len(converters))]
        source_transfer = in_valid[0] and in_ready[0]
        sink_transfer = stages[last].out_valid

        # events of this cycle
        for k, (stage, (step, input_step, output_step)) in enumerate(zip(stages, steps)):
            layer = stage.layer
            if step:
                events[f"l{k}.weight_mem.read"] += layer.pe
                events[f"l{k}.pe.{operation_name(layer)}"] += layer.pe * layer.simd
                if input_step:
                    events[f"l{k}.input_buffer.write"] += 1
                else:
                    events[f"l{k}.input_buffer.read"] += 1
            if output_step and layer.thresholds is not None:
                events[f"l{k}.threshold_mem.read"] += layer.pe
                events[f"l{k}.threshold.compare"] += layer.pe * layer.steps
        for k, push in enumerate(fifo_push):
            events[f"fifo{k}.push"] += push

        # counters of the harness (done and frame 0 are read before this cycle's transfers)
        if received != total_out:
            cycles += 1
        if received < beats_out:
            frame0 += 1

        # register updates
        for k, (stage, (step, _, output_step)) in enumerate(zip(stages, steps)):
            layer = stage.layer
            if step:
                if output_step:
                    stage.sf = 0
                    stage.nf = 0 if stage.nf == layer.neuron_fold - 1 else stage.nf + 1
                else:
                    stage.sf += 1
            if output_step:
                stage.out_valid = True
            elif out_ready[k]:
                stage.out_valid = False
        for k, converter in enumerate(converters):
            levels[k] += fifo_push[k] - fifo_pop[k]
            if converter.gather:
                if converter_in[k]:
                    index = 0 if converter.count == converter.gather else converter.count
                    converter.count = index + 1
                elif converter_out[k]:
                    converter.count = 0
            elif converter.split:
                if converter_in[k]:
                    converter.held, converter.count = True, 0
                elif converter_out[k]:
                    if converter.count == converter.split - 1:
                        converter.held, converter.count = False, 0
                    else:
                        converter.count += 1
        sent += source_transfer
        received += sink_transfer
    return FinnTiming(cycles, frame0, events)
