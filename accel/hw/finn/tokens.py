"""The FINN dataflow's timing per token, not per cycle: when every beat crosses every port.

Every port moves at most one beat per cycle, and each beat's transfer cycle is the earliest
cycle that satisfies a few constraints on earlier beats (the RTL's handshakes, written as
inequalities; ``accel.hw.finn.model`` steps the same handshakes cycle by cycle):

  FIFO k (depth D)    push[n] >= pop[n - D] + 1 (full until then); pop[n] >= push[n] + 1
  MVTU                steps in order, one per cycle; a fold-0 step takes an input beat
                      (>= its arrival); a last-synapse step needs one of its S output
                      slots free (>= output m - S's transfer + 1; unpipelined, S = 1 and the
                      slot may be read in that cycle: >= the transfer); output m leaves in
                      order, >= its step + 1 + P (pipeline P) and when downstream accepts it;
                      later
                      folds' other steps are unconstrained, so only inputs and outputs are
                      tokens (SF + NF - 1 per vector, not NF * SF)
  sliding window      input beat n of global row R is written once the reader's lowest
                      needed row >= R - rows + 1 (the cycle after the reader's beat that got it
                      there); window beat k leaves >= the input beat it shows + 1 (none for
                      padding) and when downstream accepts it
  max-pool            input beats one per cycle; a window's closing beat needs the output
                      register free (>= the previous output's transfer); output m leaves
                      >= its closing beat + 1 and when downstream accepts it
  width converters    gather: the first piece of group j waits for group j - 1's push;
                      split: input j + 1 waits for the push of input j's last piece

Each stage's sequence x_i = max(x_{i-1} + gap_i, bound_i) is a running maximum (``_chain``),
one numpy call. Stages depend on each other both ways (arrivals forwards, FIFO space
backwards), so the schedule is the least fixed point of these equations, reached by sweeping
the stages forwards and backwards until nothing changes (monotone max-plus iteration from "no
back-pressure": every sweep only raises times towards the real ones, and the real schedule is
the only fixed point).

Frames: the equations are the same for every frame, and each references at most ``reach``
frames back (FIFO depths over beats per frame). Once ``reach + 1`` consecutive frames repeat
the previous one shifted by the same period, every later frame does too, so a run of any
length costs a few frames. Events are those of the tokens scheduled before the run's end, plus
each stage's counts per frame for every frame inserted in the periodic middle (all of whose
work happens before the end).

``token_timing`` returns None where the sweeps do not settle within ``MAX_SWEEPS`` (tight FIFOs
between stages in lockstep); the stepping model covers those.
"""

from __future__ import annotations

import numpy as np

from accel.hw.finn.mapping import FinnMapping, LayerMapping, PoolMapping, WindowMapping
from accel.hw.finn.stages import (LINE_READ, LINE_WRITE, event_declarations, fifo_name,
                                  frame_events, kind_of, pool_positions, stage_names)

NEVER = -(1 << 62)  # a bound that constrains nothing
# The arrival of an input beat that never comes. Times saturate there: beats that never happen
# can wait for each other in a cycle (a deadlock), which would otherwise rise without end.
ABSENT = 1 << 40
# Back-pressure travels one stage per sweep, and through a lockstep pair (a depth-1 FIFO between
# stages at one beat per cycle) one beat per sweep; past this many sweeps the stepping model is
# faster, and ``token_timing`` declines.
MAX_SWEEPS = 60


def _chain(gaps: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """x_i = max(x_{i-1} + gaps_i, bounds_i) with x_{-1} = -1 (the first event at cycle >= 0)."""
    total = np.cumsum(gaps)
    return np.minimum(total + np.maximum(np.maximum.accumulate(bounds - total), -1), ABSENT)


def _shifted(values: np.ndarray, by: int, offset: int) -> np.ndarray:
    """values[i - by] + offset, NEVER where i - by < 0."""
    out = np.full(len(values), NEVER, dtype=np.int64)
    if by < len(values):
        out[by:] = values[:len(values) - by] + offset
    return out


class _Stage:
    """One stage's tokens over ``frames`` frames; ``solve(arrive, down)`` returns (taken,
    left): the transfer cycles of its input and output beats, given the cycles from which each
    input beat is there (``arrive``) and the cycles before which downstream refuses each output
    beat (``down``)."""

    def __init__(self, spec, frames: int):
        self.spec = spec


class MVTUTokens(_Stage):
    def __init__(self, spec: LayerMapping, frames: int):
        super().__init__(spec, frames)
        sf, nf = spec.synapse_fold, spec.neuron_fold
        vectors = spec.vectors * frames
        per = sf + nf - 1
        self.gaps = np.tile(np.array([1] * sf + [sf] * (nf - 1), dtype=np.int64), vectors)
        position = np.arange(vectors)[:, None] * per
        self.input_at = (position + np.arange(sf)).ravel()
        self.output_at = (position + np.array([sf - 1] + [sf - 1 + f for f in range(1, nf)])
                          ).ravel()

    def solve(self, arrive, down):
        bounds = np.full(len(self.gaps), NEVER, dtype=np.int64)
        bounds[self.input_at] = arrive
        # a last-synapse step waits for one of the unit's S output slots: output m - S must
        # have left (unpipelined: or leave in that cycle), which is when downstream lets it,
        # the outputs leaving in order (steps come at least one cycle apart, so output m - S
        # is ready by step m anyway)
        slots = self.spec.output_slots
        ordered = _chain(np.ones(len(down), dtype=np.int64), down)
        bounds[self.output_at[slots:]] = np.maximum(bounds[self.output_at[slots:]],
                                                    ordered[:-slots] + (self.spec.pipeline > 0))
        self.last_bounds = bounds
        steps = _chain(self.gaps, bounds)
        ready = steps[self.output_at] + 1 + self.spec.pipeline
        return steps[self.input_at], _chain(np.ones(len(ready), dtype=np.int64),
                                            np.maximum(ready, down))


class PoolTokens(_Stage):
    def __init__(self, spec: PoolMapping, frames: int):
        super().__init__(spec, frames)
        inside, _, last = pool_positions(spec)
        closing = inside & last
        # closing beats in input order are the outputs in order (one per channel beat)
        self.closing_at = (np.flatnonzero(closing)[None, :]
                           + spec.beats_in * np.arange(frames)[:, None]).ravel()
        self.gaps = np.ones(spec.beats_in * frames, dtype=np.int64)

    def solve(self, arrive, down):
        bounds = arrive.copy()
        bounds[self.closing_at[1:]] = np.maximum(bounds[self.closing_at[1:]], down[:-1])
        taken = _chain(self.gaps, bounds)
        return taken, np.minimum(np.maximum(taken[self.closing_at] + 1, down), ABSENT)


class WindowTokens(_Stage):
    def __init__(self, spec: WindowMapping, frames: int):
        super().__init__(spec, frames)
        s = spec
        beats, k = s.channel_beats, s.kernel
        oy, ox, ky, kx, beat = np.meshgrid(np.arange(s.out_height), np.arange(s.out_width),
                                           np.arange(k), np.arange(k), np.arange(beats),
                                           indexing="ij")
        iy, ix = (oy + ky - s.padding).ravel(), (ox + kx - s.padding).ravel()
        padded = (iy < 0) | (iy >= s.height) | (ix < 0) | (ix >= s.width)
        local_input = (iy * s.width + ix) * beats + beat.ravel()
        frame = np.arange(frames)[:, None]
        shown = np.where(padded[None, :], -1, local_input[None, :] + frame * s.beats_in)
        self.shown = shown.ravel()  # the input beat each window beat shows (-1: padding)
        # rows relative to the reader's frame (bottom padding needs the next frame's first)
        lowest = np.minimum(np.maximum(oy.ravel() - s.padding, 0), s.height)
        # the reader's lowest needed global row when the next beat it emits is k (k up to the
        # end of the run), and the row each input beat is written to
        reader = np.concatenate([(lowest[None, :] + frame * s.height).ravel(),
                                 [frames * s.height]])
        row = (np.arange(s.beats_in * frames) // beats) // s.width
        self.gate = np.searchsorted(reader, row - s.rows + 1, side="left") - 1
        self.gaps_in = np.ones(s.beats_in * frames, dtype=np.int64)
        self.gaps_out = np.ones(len(self.shown), dtype=np.int64)
        self.left = np.full(len(self.shown), NEVER, dtype=np.int64)

    def solve(self, arrive, down):
        # the writer waits for the reader and the reader for the writer: iterate locally
        gated = self.gate >= 0
        shows = self.shown >= 0
        left = self.left
        for _ in range(MAX_SWEEPS):
            bounds_in = arrive.copy()
            bounds_in[gated] = np.maximum(bounds_in[gated], left[self.gate[gated]] + 1)
            taken = _chain(self.gaps_in, bounds_in)
            bounds_out = down.copy()
            bounds_out[shows] = np.maximum(bounds_out[shows], taken[self.shown[shows]] + 1)
            new = _chain(self.gaps_out, bounds_out)
            if np.array_equal(new, left):
                break
            left = new
        else:
            raise _NoFixedPoint
        self.left = left
        return taken, left


class _NoFixedPoint(Exception):
    pass


class _Link:
    """Width converter k and FIFO k between a producer and a consumer stage: given the
    producer's output transfers (``left``) and the consumer's input transfers (``popped``),
    when each FIFO push happens and the producer's ``down`` bounds."""

    def __init__(self, producer, consumer, depth: int, frames: int):
        self.depth = depth
        a, b = producer.out_elements, consumer.in_elements
        self.gather = b // a if b > a else 0
        self.split = a // b if a > b else 0
        self.pushes = consumer.beats_in * frames
        self.pushed = np.full(self.pushes, NEVER, dtype=np.int64)
        self.outputs = producer.beats_out * frames

    def down(self, popped) -> np.ndarray:
        if self.gather:
            down = np.full(self.outputs, NEVER, dtype=np.int64)
            # the first piece of group j waits until group j - 1 is pushed
            down[self.gather::self.gather] = self.pushed[:-1]
            return down
        if self.split:
            down = np.full(self.outputs, NEVER, dtype=np.int64)
            down[1:] = self.pushed[self.split - 1:-1:self.split]
            return down
        return _shifted(popped, self.depth, 1)  # the FIFO has room for push n

    def push(self, left, popped) -> np.ndarray:
        space = _shifted(popped, self.depth, 1)
        if self.gather:
            pushed = np.minimum(np.maximum(left[self.gather - 1::self.gather] + 1, space),
                                ABSENT)
        elif self.split:
            bounds = space.copy()
            bounds[::self.split] = np.maximum(bounds[::self.split], left + 1)
            pushed = _chain(np.ones(self.pushes, dtype=np.int64), bounds)
        else:
            pushed = left
        self.pushed = pushed
        return pushed


def _schedule(mapping: FinnMapping, frames: int, phantom: bool):
    """Every stage's (taken, left) over ``frames`` frames at full input rate and an
    always-ready sink, and with ``phantom`` one more frame whose input never comes; None if the
    sweeps do not settle."""
    specs = mapping.stages
    real = frames
    frames += phantom
    stages = [kind_of(spec).token_stage(spec, frames) for spec in specs]
    links = [_Link(a, b, depth, frames)
             for a, b, depth in zip(specs, specs[1:], mapping.fifo_depths)]
    popped = [np.full(link.pushes, NEVER, dtype=np.int64) for link in links]
    arrive0 = np.zeros(specs[0].beats_in * frames, dtype=np.int64)  # the source never waits
    arrive0[specs[0].beats_in * real:] = ABSENT
    sink = np.full(specs[-1].beats_out * frames, NEVER, dtype=np.int64)
    result = [None] * len(stages)
    order = list(range(len(stages)))
    try:
        for sweep in range(MAX_SWEEPS):
            changed = False
            for k in (order if sweep % 2 == 0 else order[::-1]):
                arrive = arrive0 if k == 0 else links[k - 1].pushed + 1
                down = sink if k == len(stages) - 1 else links[k].down(popped[k])
                taken, left = stages[k].solve(arrive, down)
                if k > 0 and not np.array_equal(popped[k - 1], taken):
                    popped[k - 1], changed = taken, True
                if k < len(links):
                    before = links[k].pushed
                    if not np.array_equal(before, links[k].push(left, popped[k])):
                        changed = True
                if result[k] is None or not np.array_equal(result[k][1], left):
                    changed = True
                result[k] = (taken, left)
            if not changed and sweep > 0:
                for stage, link in zip(stages, links):
                    stage.link = link
                return stages, result
    except _NoFixedPoint:
        return None
    return None


def _reach(mapping: FinnMapping) -> int:
    """How many frames back a frame's equations look: one (the previous output, the reader's
    position), or more where a FIFO holds more than a frame's beats (push n waits for pop
    n - depth)."""
    reach = 1
    for depth, consumer in zip(mapping.fifo_depths, mapping.stages[1:]):
        reach = max(reach, -(-depth // consumer.beats_in))
    for layer in mapping.layers:  # a step waits for the output its slots back
        reach = max(reach, -(-layer.output_slots // layer.beats_out))
    return reach


def _period(result, mapping: FinnMapping, frames: int, reach: int) -> int | None:
    """The shift between consecutive frames if the last ``reach + 1`` frames of every stream
    repeat the frame before them by the same shift, else None."""
    period = None
    for spec, (taken, left) in zip(mapping.stages, result):
        for values, per in ((taken, spec.beats_in), (left, spec.beats_out)):
            frames_view = values[:frames * per].reshape(frames, per)
            steps = frames_view[frames - reach - 1:] - frames_view[frames - reach - 2:-1]
            if np.any(steps != steps[0, 0]) or (period is not None and steps[0, 0] != period):
                return None
            period = int(steps[0, 0])
    return period


def token_timing(mapping: FinnMapping, frames: int):
    """(cycles of the run, cycles of frame 0, events of the run) of ``frames`` frames through
    the harness, or None where the token equations do not apply.

    Events are those of the cycles before the run's end. A sliding window with padding emits
    the next frame's first (padding) beats without any input, so until the run ends the stages
    behind it work on a frame that never comes: that frame is scheduled too (input absent)."""
    reach = _reach(mapping)
    phantom = any(isinstance(spec, WindowMapping) and spec.padding for spec in mapping.stages)
    # the frames compared for a period start at frame ``reach``: earlier ones see the empty
    # pipeline (pop[n - D] with n < D)
    computed = min(frames, 2 * reach + 2)
    out_per_frame = mapping.stages[-1].beats_out
    while True:
        scheduled = _schedule(mapping, computed, phantom)
        if scheduled is None:
            return None
        stages, result = scheduled
        last = result[-1][1]
        latency = int(last[out_per_frame - 1]) + 1
        end = int(last[computed * out_per_frame - 1]) + 1
        period = 0 if computed == frames else _period(result, mapping, computed, reach)
        if period is not None:
            # the frames added in the periodic middle do all their work before the end
            counted = _events_before(mapping, stages, result, end)
            events = {name: counted[name] + (frames - computed) * count
                      for name, count in frame_events(mapping).items()}
            return end + (frames - computed) * period, latency, events
        computed = min(frames, 2 * computed)


def _events_before(mapping: FinnMapping, stages, result, end: int) -> dict[str, int]:
    """Events of every scheduled token in the cycles before ``end`` (the run's last cycle):
    not every beat is handled by then (a max-pool discards the rows after its last window, so
    the stages before it are still at work on them; a padded window starts the next frame)."""
    events = dict.fromkeys(event_declarations(mapping), 0)
    for name, spec, stage, (taken, left) in zip(stage_names(mapping), mapping.stages, stages,
                                                result):
        took = taken < end
        if isinstance(stage, MVTUTokens):
            sf, nf = spec.synapse_fold, spec.neuron_fold
            outputs = _chain(stage.gaps, stage.last_bounds)[stage.output_at].reshape(-1, nf)
            # the steps of fold f > 0 are the SF - 1 cycles after fold f - 1's output step,
            # then its own output step
            replays = int(np.clip(end - 1 - outputs[:, :-1], 0, sf - 1).sum()
                          + (outputs[:, 1:] < end).sum())
            counts = kind_of(spec).counts(spec, int(took.sum()) + replays, replays,
                                          int((outputs < end).sum()))
        elif isinstance(stage, WindowTokens):
            counts = {LINE_WRITE: int(took.sum()),
                      LINE_READ: int((left[stage.shown >= 0] < end).sum())}
        else:
            counts = kind_of(spec).counts(spec, took)
        for action, count in counts.items():
            events[f"{name}.{action}"] = count
    for k, stage in enumerate(stages[:-1]):
        events[fifo_name(k)] = int((stage.link.pushed < end).sum())
    return events
