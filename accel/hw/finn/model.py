"""Cycle model of the FINN dataflow harness: cycles, frame-0 latency and every event count,
equal to the RTL's (``tests/test_finn.py`` holds them equal).

Outputs come from the golden model: the datapath computes exactly its arithmetic, and timing in
this architecture does not depend on data. ``simulate`` computes the timing per token
(``accel.hw.finn.tokens``: when each beat crosses each port, a few numpy passes per stage) and
falls back to ``step`` where the token equations do not apply; tests hold the two equal.

``step`` steps the harness cycle by cycle, register for register (source, stages, width
converters, FIFOs, sink). Each stage first evaluates its
handshakes from the current registers, then all registers update, as in the RTL. Because timing
is data-independent the pipeline settles into a periodic regime; once the whole state at the
start of a frame repeats, the frames but the last are skipped over by adding whole periods,
which makes the model fast for any number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.hw.common.harness import xorshift32
from accel.hw.common.stream_harness import Stimulus
from accel.hw.finn.mapping import FinnMapping, LayerMapping, WindowMapping
from accel.hw.finn.stages import (LINE_READ, LINE_WRITE, MAX_COMPARE, ROW_READ, ROW_WRITE,
                                  THRESHOLD_COMPARE, THRESHOLD_READ,
                                  event_declarations, fifo_name, kind_of, stage_names)


@dataclass
class FinnTiming:
    cycles: int
    frame0_cycles: int
    events: dict[str, int]


def _add(events: dict, name: str, counts: dict) -> None:
    for action, count in counts.items():
        events[f"{name}.{action}"] += count


class MVTUStepper:
    """``accel.hw.finn.mvtu.MVTU``: a last-synapse step issues when one of its output slots
    (``LayerMapping.output_slots``) is free (unpipelined: or read in that cycle); its result is
    stored ``pipeline`` cycles after the step and visible from the cycle after that."""

    def __init__(self, spec: LayerMapping, name: str):
        self.spec, self.name = spec, name
        self.nf = self.sf = 0
        self.stored = 0  # results in the output slots
        self.in_flight: list[int] = []  # per result in the pipeline: cycles until it is stored
        self.stepped = False
        self.replayed = False  # the last cycle was a step of a later fold that gave no output
        self.arrived = 0  # results the last cycle stored from the pipeline

    @property
    def out_valid(self):
        return self.stored > 0

    def state(self):
        return (self.nf, self.sf, self.stored, tuple(self.in_flight))

    def replay(self, cycles: int, events) -> None:
        """``cycles`` more steps of a later fold before its last synapse: nothing but this
        unit's fold counter and its read events change."""
        self.sf += cycles
        _add(events, self.name, kind_of(self.spec).counts(self.spec, cycles, cycles, 0))

    def _credit(self, out_ready):
        pending = self.stored + len(self.in_flight)
        if self.spec.pipeline == 0:
            return pending == 0 or out_ready
        return pending < self.spec.output_slots

    def in_ready(self, out_ready):
        last_synapse = self.sf == self.spec.synapse_fold - 1
        return self.nf == 0 and (not last_synapse or self._credit(out_ready))

    def cycle(self, in_valid, out_ready, events):
        """Handshakes of this cycle from the current registers; returns (takes input, update)."""
        spec = self.spec
        last_synapse = self.sf == spec.synapse_fold - 1
        step = (self.nf != 0 or in_valid) and (not last_synapse or self._credit(out_ready))
        output_step = step and last_synapse
        popped = self.out_valid and out_ready
        self.stepped = step
        self.replayed = step and self.nf != 0 and not last_synapse
        name = self.name
        if step:
            _add(events, name, kind_of(spec).counts(spec, 1, int(self.nf != 0), int(output_step)))

        def update():
            if step:
                if last_synapse:
                    self.sf = 0
                    self.nf = 0 if self.nf == spec.neuron_fold - 1 else self.nf + 1
                else:
                    self.sf += 1
            arriving = [left - 1 for left in self.in_flight]
            self.in_flight = [left for left in arriving if left > 0]
            self.arrived = len(arriving) - len(self.in_flight)
            self.stored += self.arrived - popped
            if output_step:
                if spec.pipeline == 0:
                    self.stored += 1
                else:
                    self.in_flight.append(spec.pipeline)

        return step and self.nf == 0, update


class WindowStepper:
    def __init__(self, spec: WindowMapping, name: str):
        self.spec, self.name = spec, name
        self.write_row = self.write_x = self.write_beat = 0
        self.frame_row = self.oy = self.ox = self.ky = self.kx = self.beat = 0

    def state(self):
        # rows relative to the reader's frame, so that frames in the same phase compare equal
        return (self.write_row - self.frame_row, self.write_x, self.write_beat, self.oy, self.ox,
                self.ky, self.kx, self.beat)

    def _position(self):
        s = self.spec
        iy, ix = self.oy + self.ky - s.padding, self.ox + self.kx - s.padding
        padded = iy < 0 or iy >= s.height or ix < 0 or ix >= s.width
        return iy, ix, padded

    @property
    def out_valid(self):
        iy, ix, padded = self._position()
        needed = self.frame_row + iy
        written = self.write_row > needed or (self.write_row == needed and (
            self.write_x > ix or (self.write_x == ix and self.write_beat > self.beat)))
        return padded or written

    def in_ready(self, out_ready):
        lowest = self.frame_row + min(max(self.oy - self.spec.padding, 0), self.spec.height)
        return self.write_row < lowest + self.spec.rows

    def cycle(self, in_valid, out_ready, events):
        s = self.spec
        take = in_valid and self.in_ready(out_ready)
        emit = self.out_valid and out_ready
        padded = self._position()[2]
        if take:
            events[f"{self.name}.{LINE_WRITE}"] += 1
        if emit and not padded:
            events[f"{self.name}.{LINE_READ}"] += 1

        def update():
            if take:
                self.write_beat += 1
                if self.write_beat == s.channel_beats:
                    self.write_beat = 0
                    self.write_x += 1
                    if self.write_x == s.width:
                        self.write_x = 0
                        self.write_row += 1
            if emit:
                window_done = (self.ky == s.kernel - 1 and self.kx == s.kernel - 1
                               and self.beat == s.channel_beats - 1)
                last_window = self.oy == s.out_height - 1 and self.ox == s.out_width - 1
                carry = True
                for field, size in (("beat", s.channel_beats), ("kx", s.kernel),
                                    ("ky", s.kernel), ("ox", s.out_width), ("oy", s.out_height)):
                    if not carry:
                        break
                    value = getattr(self, field) + 1
                    carry = value == size
                    setattr(self, field, 0 if carry else value)
                if window_done and last_window:
                    self.frame_row += s.height

        return take, update


class PoolStepper:
    def __init__(self, spec, name: str):
        self.spec, self.name = spec, name
        self.y = self.x = self.beat = self.ky = self.kx = self.ox = 0
        self.out_valid = False

    def state(self):
        return (self.y, self.x, self.beat, self.ky, self.kx, self.ox, self.out_valid)

    def _window(self):
        s = self.spec
        inside = self.y < s.out_height * s.kernel and self.x < s.out_width * s.kernel
        first = self.ky == 0 and self.kx == 0
        last = self.ky == s.kernel - 1 and self.kx == s.kernel - 1
        return inside, first, last

    def in_ready(self, out_ready):
        inside, _, last = self._window()
        return not (inside and last) or not self.out_valid or out_ready

    def cycle(self, in_valid, out_ready, events):
        s = self.spec
        take = in_valid and self.in_ready(out_ready)
        inside, first, last = self._window()
        if take and inside:
            if not first:
                events[f"{self.name}.{ROW_READ}"] += 1
                events[f"{self.name}.{MAX_COMPARE}"] += s.lanes
            if not last:
                events[f"{self.name}.{ROW_WRITE}"] += 1

        def update():
            if take and inside and last:
                self.out_valid = True
            elif out_ready:
                self.out_valid = False
            if take:
                row_end = self.x == s.width - 1 and self.beat == s.channel_beats - 1
                frame_end = row_end and self.y == s.height - 1
                if self.beat == s.channel_beats - 1:
                    if self.kx == s.kernel - 1:
                        self.kx, self.ox = 0, self.ox + 1
                    else:
                        self.kx += 1
                self.beat = (self.beat + 1) % s.channel_beats
                if self.beat == 0:
                    self.x = (self.x + 1) % s.width
                    if self.x == 0:
                        self.y = (self.y + 1) % s.height
                if row_end:
                    self.kx = self.ox = 0
                    self.ky = 0 if self.ky == s.kernel - 1 or frame_end else self.ky + 1

        return take, update


class ThresholdStepper:
    """``accel.hw.finn.threshold.ThresholdUnit``, cycle by cycle."""

    def __init__(self, spec, name: str):
        self.spec, self.name = spec, name
        self.group = 0
        self.out_valid = False

    def state(self):
        return (self.group, self.out_valid)

    def in_ready(self, out_ready):
        return not self.out_valid or out_ready

    def cycle(self, in_valid, out_ready, events):
        s = self.spec
        take = in_valid and self.in_ready(out_ready)
        if take:
            events[f"{self.name}.{THRESHOLD_READ}"] += 1
            events[f"{self.name}.{THRESHOLD_COMPARE}"] += s.lanes * s.steps

        def update():
            if take:
                self.out_valid = True
                self.group = (self.group + 1) % s.channel_beats
            elif out_ready:
                self.out_valid = False

        return take, update


class _Converter:
    def __init__(self, in_elements, out_elements):
        self.gather = out_elements // in_elements if out_elements > in_elements else 0
        self.split = in_elements // out_elements if in_elements > out_elements else 0
        self.count = 0  # gather: pieces held; split: index of the next piece
        self.held = False  # split only

    @property
    def passthrough(self):
        return not (self.gather or self.split)

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

    def update(self, took, gave):
        if self.gather:
            if took:
                self.count = (0 if self.count == self.gather else self.count) + 1
            elif gave:
                self.count = 0
        elif self.split:
            if took:
                self.held, self.count = True, 0
            elif gave:
                if self.count == self.split - 1:
                    self.held, self.count = False, 0
                else:
                    self.count += 1


def simulate(mapping: FinnMapping, frames: int, stimulus: Stimulus | None = None) -> FinnTiming:
    """Cycles, frame-0 latency and events of streaming ``frames`` frames through the harness,
    its source and sink driven by ``stimulus`` (default: full rate)."""
    from accel.hw.finn.tokens import token_timing

    timing = token_timing(mapping, frames) if stimulus is None or stimulus.full_rate else None
    if timing is None:
        return step(mapping, frames, stimulus)
    return FinnTiming(*timing)


def step(mapping: FinnMapping, frames: int, stimulus: Stimulus | None = None) -> FinnTiming:
    """``simulate`` by stepping every register cycle by cycle (the reference), with the
    harness's source and sink generators (``accel.hw.common.stream_harness``)."""
    stimulus = stimulus or Stimulus()
    full_rate = stimulus.full_rate
    specs = mapping.stages
    stages = [kind_of(spec).step_stage(spec, name)
              for spec, name in zip(specs, stage_names(mapping))]
    converters = [_Converter(a.out_elements, b.in_elements) for a, b in zip(specs, specs[1:])]
    levels = [0] * len(converters)
    depths = mapping.fifo_depths
    beats_in, beats_out = specs[0].beats_in, specs[-1].beats_out
    total_in, total_out = beats_in * frames, beats_out * frames
    names = list(event_declarations(mapping))
    events = dict.fromkeys(names, 0)
    sent = received = cycles = frame0 = 0
    boundaries: dict[int, tuple] = {}
    skipped = not full_rate  # random patterns do not repeat: no frame is skipped over
    source_random, sink_random = xorshift32(stimulus.source_seed), stimulus.sink_seed
    source_valid = total_in > 0 and (stimulus.source_seed & 0xFF) < stimulus.valid_threshold

    while received != total_out:
        frame = sent // beats_in
        if not skipped and sent == frame * beats_in and frame not in boundaries and frame > 0:
            state = (tuple(stage.state() for stage in stages),
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
                for stage in stages:
                    if isinstance(stage, WindowStepper):
                        stage.frame_row += skip * stage.spec.height
                        stage.write_row += skip * stage.spec.height
                skipped = True
                continue

        # handshakes from registers: FIFO and converter readies never depend on a later block
        fifo_ready = [levels[k] < depths[k] for k in range(len(converters))]
        sink_ready = (sink_random & 0xFF) < stimulus.ready_threshold
        out_ready = [c.in_ready(fifo_ready[k]) for k, c in enumerate(converters)] + [sink_ready]
        in_valid = [source_valid] + [level > 0 for level in levels]
        out_valid = [stage.out_valid for stage in stages]
        results = [stage.cycle(in_valid[k], out_ready[k], events)
                   for k, stage in enumerate(stages)]
        converter_in = [out_valid[k] and out_ready[k] for k in range(len(converters))]
        converter_out = [c.out_valid and fifo_ready[k] for k, c in enumerate(converters)]
        fifo_push = [converter_in[k] if c.passthrough else converter_out[k]
                     for k, c in enumerate(converters)]
        fifo_pop = [results[k + 1][0] for k in range(len(converters))]
        for k, push in enumerate(fifo_push):
            events[fifo_name(k)] += push

        if received != total_out:
            cycles += 1
        if received < beats_out:
            frame0 += 1

        for _, update in results:
            update()
        for k, converter in enumerate(converters):
            levels[k] += fifo_push[k] - fifo_pop[k]
            converter.update(converter_in[k], converter_out[k])
        sent += results[0][0]
        received += out_valid[-1] and sink_ready
        source_valid = (source_valid and not results[0][0]) or (
            sent < total_in and (source_random & 0xFF) < stimulus.valid_threshold)
        source_random, sink_random = xorshift32(source_random), xorshift32(sink_random)

        # A quiet cycle (no transfer anywhere, no output register filled, no result in an
        # MVTU's pipeline): only MVTUs replaying a later fold moved, and the next cycles stay
        # quiet until one of them reaches its last synapse. Those cycles are added at once.
        replaying = [stage for stage in stages if isinstance(stage, MVTUStepper) and stage.replayed]
        if full_rate and replaying and not (results[0][0] or out_valid[-1] or any(fifo_push)
                              or any(fifo_pop) or any(converter_in) or any(converter_out)) \
                and all(isinstance(stage, MVTUStepper) and (stage.replayed or not stage.stepped)
                        and not stage.in_flight and not stage.arrived
                        for stage in stages if isinstance(stage, MVTUStepper)):
            quiet = min(stage.spec.synapse_fold - 1 - stage.sf for stage in replaying)
            for stage in replaying:
                stage.replay(quiet, events)
            cycles += quiet
            if received < beats_out:
                frame0 += quiet
    return FinnTiming(cycles, frame0, events)
