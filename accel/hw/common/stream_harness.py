"""Simulation harness for any top with AXI-Stream ports (``s_axis_tdata/tvalid/tready`` in,
``m_axis_tdata/tvalid/tready`` out, optionally ``event_counts`` and a ``counters`` bank): an
input memory, loaded a whole frame at a time before the run, streams every frame into the top
(held in reset until ``run``); a sink stores the output beats, read back through a port after
the run. Counts the cycles of the run and of frame 0 (its latency). ``accel.sim.tb.stream_tb``
drives it with no Python per cycle and none per beat.

Stimulus knobs, as in ``accel.hw.common.harness.FIFOHarness``: the source offers beats with
pseudo-random gaps and the sink applies pseudo-random back-pressure, each from an xorshift32
generator whose seed and probability (``threshold`` / 256) are ports, so one build serves every
pattern. Source: ``valid`` is a register; while ``run`` is low it loads
``draw(seed)``, and each run cycle it becomes ``(valid and not taken) or (beats remain and
draw(r))`` with r the generator's state (first ``xorshift32(seed)``), advanced every cycle: an
offered beat stays valid until taken (AXI-Stream). Sink: ``ready = draw(r')`` with r' the sink
generator's state (first the seed itself), advanced every cycle. draw(x) = x's low byte <
threshold; threshold 256 is "always", which is the full-rate harness.

Ports: ``frame_data`` (one frame's input beats, beat k in bits [k*width, (k+1)*width)) and
``frame_start`` (a pulse: the next ``frame_beats`` cycles write that frame after the previous
one), ``run`` (hold high for the run; low resets the top and the counts), ``beats_in``,
``beats_out``, ``frame_beats_out`` (beats of the run, output beats of one frame),
``valid_threshold``, ``ready_threshold``, ``source_seed``, ``sink_seed``, ``done`` (all output
beats arrived), ``cycles``, ``frame0_cycles``, ``read_addr/read_data`` (output beat,
combinational), ``event_counts``; and, for a top with a parameter port (``param_addr/data/en``,
loadable weights), the parameter loader's batch port
(``accel.hw.common.parameters.ParameterBatchLoader``), used before the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Module, ResetInserter, Signal

from accel.errors import ConfigError, SimulationError
from accel.hw.common.harness import ALWAYS, check_seed, xorshift32_hw
from accel.hw.common.parameters import ParameterBatchLoader

TESTBENCH = "accel.sim.tb.stream_tb"


def axi_stream_ports(in_width: int, out_width: int, counters) -> dict:
    """The signature members of a top the harness takes: AXI-Stream in and out, and the
    counter bank's ``event_counts`` when it is enabled."""
    ports = {"s_axis_tdata": In(in_width), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
             "m_axis_tdata": Out(out_width), "m_axis_tvalid": Out(1), "m_axis_tready": In(1)}
    if counters.enabled:
        ports["event_counts"] = Out(len(counters.counts))
    return ports


def harness_capacity(count: int) -> int:
    """Harness memories rounded up to powers of two, so runs of similar length share a build."""
    return 1 << max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class Stimulus:
    """The harness's source and sink patterns (module documentation): the probability that
    a source beat is offered / the sink is ready in a cycle is ``threshold`` / 256."""

    valid_threshold: int = ALWAYS
    ready_threshold: int = ALWAYS
    source_seed: int = 1
    sink_seed: int = 1

    def __post_init__(self):
        for seed in (self.source_seed, self.sink_seed):
            check_seed(seed)
        for threshold in (self.valid_threshold, self.ready_threshold):
            if not 1 <= threshold <= ALWAYS:
                raise ConfigError(f"stimulus thresholds are 1..{ALWAYS}, got {threshold}")

    @property
    def full_rate(self) -> bool:
        return self.valid_threshold == ALWAYS and self.ready_threshold == ALWAYS

    def ports(self) -> dict:
        return {"valid_threshold": self.valid_threshold,
                "ready_threshold": self.ready_threshold, "source_seed": self.source_seed,
                "sink_seed": self.sink_seed}
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out


class StreamHarness(wiring.Component):
    def __init__(self, top, frame_beats: int, input_beats: int, output_beats: int):
        self.top = top
        self.frame_beats = frame_beats
        self.input_beats = input_beats
        self.output_beats = output_beats
        self.in_width = len(top.s_axis_tdata)
        self.out_width = len(top.m_axis_tdata)
        self.counters = getattr(top, "counters", None)
        members = {
            "frame_data": In(frame_beats * self.in_width), "frame_start": In(1),
            "run": In(1), "beats_in": In(32), "beats_out": In(32), "frame_beats_out": In(32),
            "valid_threshold": In(9), "ready_threshold": In(9), "source_seed": In(32),
            "sink_seed": In(32),
            "done": Out(1), "cycles": Out(32), "frame0_cycles": Out(32),
            "read_addr": In(range(output_beats)), "read_data": Out(self.out_width),
        }
        if "event_counts" in top.signature.members:
            members["event_counts"] = Out(len(top.event_counts))
        self.parameter_loader = ParameterBatchLoader(top) \
            if "param_en" in top.signature.members else None
        if self.parameter_loader:
            members.update(self.parameter_loader.members())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # The top is held in reset until the run starts: a stage may emit beats without any
        # input (a sliding-window unit's padding) and must not run ahead while loading.
        m.submodules.top = ResetInserter({"sync": ~self.run})(self.top)
        top = self.top
        m.submodules.frames_in = frames_in = memory.Memory(
            shape=self.in_width, depth=self.input_beats, init=[])
        m.submodules.beats_out_mem = outputs = memory.Memory(
            shape=self.out_width, depth=self.output_beats, init=[])
        load = frames_in.write_port()
        source = frames_in.read_port(domain="comb")
        sink = outputs.write_port()
        readback = outputs.read_port(domain="comb")

        # the frame loader: frame_beats cycles per frame_start, one beat per cycle
        load_addr = Signal(range(self.input_beats + 1))
        load_beat = Signal(range(max(self.frame_beats, 2)))
        loading = Signal()
        with m.If(self.frame_start):
            m.d.sync += [loading.eq(1), load_beat.eq(0)]
        with m.Elif(loading):
            m.d.sync += [load_addr.eq(load_addr + 1), load_beat.eq(load_beat + 1)]
            with m.If(load_beat == self.frame_beats - 1):
                m.d.sync += loading.eq(0)
        m.d.comb += [load.addr.eq(load_addr), load.en.eq(loading),
                     load.data.eq(self.frame_data.word_select(load_beat, self.in_width))]

        sent = Signal(32)
        received = Signal(32)
        source_random = Signal(32)
        sink_random = Signal(32)
        source_valid = Signal()
        push = top.s_axis_tvalid & top.s_axis_tready
        sent_next = sent + push
        m.d.comb += [
            source.addr.eq(sent),
            top.s_axis_tdata.eq(source.data),
            top.s_axis_tvalid.eq(self.run & source_valid),
            top.m_axis_tready.eq(self.run & (sink_random[:8] < self.ready_threshold)),
            sink.addr.eq(received), sink.data.eq(top.m_axis_tdata),
            sink.en.eq(top.m_axis_tvalid & top.m_axis_tready),
            readback.addr.eq(self.read_addr), self.read_data.eq(readback.data),
            self.done.eq(received == self.beats_out),
        ]
        with m.If(~self.run):
            m.d.sync += [sent.eq(0), received.eq(0), self.cycles.eq(0), self.frame0_cycles.eq(0),
                         source_random.eq(xorshift32_hw(self.source_seed)),
                         sink_random.eq(self.sink_seed),
                         source_valid.eq((self.beats_in != 0)
                                         & (self.source_seed[:8] < self.valid_threshold))]
        with m.Else():
            m.d.sync += [
                sent.eq(sent_next),
                source_random.eq(xorshift32_hw(source_random)),
                sink_random.eq(xorshift32_hw(sink_random)),
                source_valid.eq((source_valid & ~push) | ((sent_next < self.beats_in)
                                & (source_random[:8] < self.valid_threshold))),
            ]
            with m.If(sink.en):
                m.d.sync += received.eq(received + 1)
            with m.If(~self.done):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(received < self.frame_beats_out):
                m.d.sync += self.frame0_cycles.eq(self.frame0_cycles + 1)
        if "event_counts" in self.signature.members:
            m.d.comb += self.event_counts.eq(top.event_counts)
        if self.parameter_loader:
            self.parameter_loader.elaborate(m, self, top)
        return m


def run_stream_harness(harness: StreamHarness, name: str, beats: list[int], beats_out: int,
                       frame_beats_out: int, *, max_cycles: int,
                       stimulus: "Stimulus | None" = None,
                       parameter_writes: list[tuple[int, int]] = ()) -> dict:
    """Lint, build (cached) and run ``harness`` as Verilog module ``name`` on input ``beats``
    (whole frames) with ``stimulus`` (default: full rate), after ``parameter_writes``
    (address, data) through the top's parameter port; returns the output beats, ``cycles``,
    ``frame0_cycles``, decoded ``events`` and the simulation's wall ``seconds``."""
    if parameter_writes and not harness.parameter_loader:
        raise ConfigError("parameter writes given, but the design has no parameter port")
    from accel.hw.verilog import to_verilog
    from accel.sim import runner
    from accel.sim.lint import check_lint

    verilog = to_verilog(harness, name)
    check_lint(verilog, name)
    stimulus = stimulus or Stimulus()
    per, width = harness.frame_beats, harness.in_width
    frames = [sum(int(beat) << (k * width) for k, beat in enumerate(beats[start:start + per]))
              for start in range(0, len(beats), per)]
    batches = harness.parameter_loader.batches(list(parameter_writes)) \
        if parameter_writes else []
    result = runner.run(runner.build(verilog, name), TESTBENCH, inputs={
        "frames": frames, "frame_beats": per, "beats_in": len(beats), "beats_out": beats_out,
        "frame_beats_out": frame_beats_out, "max_cycles": max_cycles,
        "parameter_batches": batches, **stimulus.ports()})
    got = result.outputs
    if len(got["outputs"]) != beats_out:
        raise SimulationError(f"expected {beats_out} output beats, got {len(got['outputs'])}")
    events = harness.counters.decode(got["event_counts"]) if "event_counts" in got else {}
    return {"outputs": got["outputs"], "cycles": got["cycles"],
            "frame0_cycles": got["frame0_cycles"], "events": events, "seconds": result.seconds}
