"""Simulation harness for any top with AXI-Stream ports (``s_axis_tdata/tvalid/tready`` in,
``m_axis_tdata/tvalid/tready`` out, optionally ``event_counts`` and a ``counters`` bank): an
input memory, loaded through a port before the run, streams every frame into the top (held in
reset until ``run``) at full rate; an always-ready sink stores the output beats, read back
through a port after the run. Counts the cycles of the run and of frame 0 (its latency).
``accel.sim.tb.stream_tb`` drives it with no Python per cycle.

Ports: ``load_addr/load_data/load_en`` (write input beat ``load_addr``), ``run`` (hold high for
the run; low resets the top and the counts), ``beats_in/beats_out/frame_beats_out`` (beats of
the run and output beats of one frame), ``done`` (all output beats arrived), ``cycles``,
``frame0_cycles``, ``read_addr/read_data`` (output beat, combinational), ``event_counts``.
"""

from __future__ import annotations

from amaranth import Module, ResetInserter, Signal

from accel.errors import SimulationError

TESTBENCH = "accel.sim.tb.stream_tb"
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out


class StreamHarness(wiring.Component):
    def __init__(self, top, input_beats: int, output_beats: int):
        self.top = top
        self.input_beats = input_beats
        self.output_beats = output_beats
        self.in_width = len(top.s_axis_tdata)
        self.out_width = len(top.m_axis_tdata)
        self.counters = getattr(top, "counters", None)
        members = {
            "load_addr": In(range(input_beats)), "load_data": In(self.in_width),
            "load_en": In(1),
            "run": In(1), "beats_in": In(32), "beats_out": In(32), "frame_beats_out": In(32),
            "done": Out(1), "cycles": Out(32), "frame0_cycles": Out(32),
            "read_addr": In(range(output_beats)), "read_data": Out(self.out_width),
        }
        if "event_counts" in top.signature.members:
            members["event_counts"] = Out(len(top.event_counts))
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
        sent = Signal(32)
        received = Signal(32)
        m.d.comb += [
            load.addr.eq(self.load_addr), load.data.eq(self.load_data), load.en.eq(self.load_en),
            source.addr.eq(sent),
            top.s_axis_tdata.eq(source.data),
            top.s_axis_tvalid.eq(self.run & (sent < self.beats_in)),
            top.m_axis_tready.eq(self.run),
            sink.addr.eq(received), sink.data.eq(top.m_axis_tdata),
            sink.en.eq(top.m_axis_tvalid & top.m_axis_tready),
            readback.addr.eq(self.read_addr), self.read_data.eq(readback.data),
            self.done.eq(received == self.beats_out),
        ]
        with m.If(~self.run):
            m.d.sync += [sent.eq(0), received.eq(0), self.cycles.eq(0), self.frame0_cycles.eq(0)]
        with m.Else():
            with m.If(top.s_axis_tvalid & top.s_axis_tready):
                m.d.sync += sent.eq(sent + 1)
            with m.If(sink.en):
                m.d.sync += received.eq(received + 1)
            with m.If(~self.done):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(received < self.frame_beats_out):
                m.d.sync += self.frame0_cycles.eq(self.frame0_cycles + 1)
        if "event_counts" in self.signature.members:
            m.d.comb += self.event_counts.eq(top.event_counts)
        return m


def run_stream_harness(harness: StreamHarness, name: str, beats: list[int], beats_out: int,
                       frame_beats_out: int, *, max_cycles: int) -> dict:
    """Lint, build (cached) and run ``harness`` as Verilog module ``name`` on input ``beats``;
    returns the output beats, ``cycles``, ``frame0_cycles``, decoded ``events`` and the
    simulation's wall ``seconds``."""
    from accel.hw.verilog import to_verilog
    from accel.sim import runner
    from accel.sim.lint import check_lint

    verilog = to_verilog(harness, name)
    check_lint(verilog, name)
    result = runner.run(runner.build(verilog, name), TESTBENCH, inputs={
        "beats": beats, "beats_out": beats_out, "frame_beats_out": frame_beats_out,
        "max_cycles": max_cycles})
    got = result.outputs
    if len(got["outputs"]) != beats_out:
        raise SimulationError(f"expected {beats_out} output beats, got {len(got['outputs'])}")
    events = harness.counters.decode(got["event_counts"]) if "event_counts" in got else {}
    return {"outputs": got["outputs"], "cycles": got["cycles"],
            "frame0_cycles": got["frame0_cycles"], "events": events, "seconds": result.seconds}
