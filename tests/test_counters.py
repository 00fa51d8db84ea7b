"""Event counter bank: naming rule, decoding, and behaviour in Amaranth's simulator."""

import pytest
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.hw.verilog import to_verilog
from accel.hw.common.counters import EventCounterBank, check_event_name, decode_counts


@pytest.mark.parametrize("name", ["mac", "Weight.read", "a..b", "a.b.", "1a.read", "a.b-c", ""])
def test_bad_event_names_are_rejected(name):
    with pytest.raises(ConfigError, match="component.action"):
        check_event_name(name)


@pytest.mark.parametrize("name", ["weight_sram.read", "layer0.weight_mem.read", "pe.mac"])
def test_good_event_names(name):
    check_event_name(name)


def test_bank_rejects_bad_declarations():
    with pytest.raises(ConfigError):
        EventCounterBank({})
    with pytest.raises(ConfigError):
        EventCounterBank({"pe.mac": 0})
    bank = EventCounterBank(["pe.mac"])
    with pytest.raises(ConfigError, match="no event named"):
        bank.increment("pe.add")
    to_verilog(bank, "bank")  # use it, so Amaranth does not warn about an unused elaboratable


def test_decode_roundtrip():
    bank = EventCounterBank({"a.read": 1, "b.write": 5}, width=10)
    packed = 7 | (1023 << 10)
    assert bank.decode(packed) == {"a.read": 7, "b.write": 1023}
    assert decode_counts(bank.manifest(), packed) == bank.decode(packed)
    to_verilog(bank, "bank")


def test_counts_multibit_increments_clear_and_wrap():
    bank = EventCounterBank({"pe.mac": 6, "mem.read": 1}, width=5)
    increments = [(6, 1), (3, 0), (0, 1), (6, 1), (6, 1), (6, 1)]  # 27 MACs, 5 reads
    seen = {}

    async def testbench(ctx):
        for macs, reads in increments:
            ctx.set(bank.increment("pe.mac"), macs)
            ctx.set(bank.increment("mem.read"), reads)
            await ctx.tick()
        ctx.set(bank.increments, 0)
        await ctx.tick()
        seen["before_clear"] = bank.decode(ctx.get(bank.counts))
        for _ in range(2):  # 12 more macs: 39 wraps to 7 in 5 bits
            ctx.set(bank.increment("pe.mac"), 6)
            await ctx.tick()
        ctx.set(bank.increments, 0)
        await ctx.tick()
        seen["wrapped"] = bank.decode(ctx.get(bank.counts))
        ctx.set(bank.clear, 1)
        ctx.set(bank.increment("mem.read"), 1)  # clear wins over a simultaneous event
        await ctx.tick()
        seen["cleared"] = bank.decode(ctx.get(bank.counts))

    sim = Simulator(bank)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["before_clear"] == {"pe.mac": 27, "mem.read": 5}
    assert seen["wrapped"] == {"pe.mac": 39 % 32, "mem.read": 5}
    assert seen["cleared"] == {"pe.mac": 0, "mem.read": 0}


def test_disabled_bank_has_no_counters():
    bank = EventCounterBank(["pe.mac"], enabled=False)
    assert "counts" not in bank.signature.members
    assert len(bank.increment("pe.mac")) == 1
    verilog = to_verilog(bank, "bank")  # still elaborates, with no registers
    assert "reg " not in verilog
