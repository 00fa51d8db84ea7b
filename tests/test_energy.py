"""Technology tables and the event-to-energy estimate."""

import pytest

from accel.energy.model import EventSpec, estimate
from accel.energy.tech import load_technology
from accel.errors import ConfigError


def test_table_points_and_derived_rules():
    tech = load_technology("45nm")
    assert tech.add(8) == 0.03 and tech.add(32) == 0.1 and tech.mult(8) == 0.2
    assert tech.mult(16) == pytest.approx(0.787, abs=0.002)  # power law through 8 and 32 bits
    for capacity, table, fitted in tech.sram_fit():
        assert fitted == pytest.approx(table, rel=0.03)  # the fit's error on its own points
    assert tech.sram_read(32768, 32) == pytest.approx(tech.sram_read(32768, 64) / 2)
    assert tech.dram(32) == 640.0


def test_estimate_adds_up_by_group_component_and_layer():
    specs = {"l0.weight_mem.read": EventSpec("sram", "memory",
                                              {"capacity_bytes": 8192, "width": 64}),
             "l0.pe.mac": EventSpec("mac", "compute", {"bits": 8, "acc_bits": 32}),
             "fifo0.push": EventSpec("register", "queues", {"capacity_bytes": 16, "width": 8})}
    report = estimate({"l0.weight_mem.read": 10, "l0.pe.mac": 100, "fifo0.push": 4}, specs)
    assert report.by_group_pj["compute"] == pytest.approx(100 * (0.2 + 0.1))
    assert report.total_pj == pytest.approx(sum(report.by_group_pj.values()))
    assert report.by_layer_pj["l0"] == pytest.approx(report.total_pj - report.by_layer_pj["fifo0"])
    assert set(report.by_component_pj) == {"l0.weight_mem", "l0.pe", "fifo0"}
    with pytest.raises(ConfigError, match="no energy declaration for events: l1.x.read"):
        estimate({"l1.x.read": 1}, specs)


@pytest.mark.parametrize("text,message", [
    ("name: t\noperations: {}\nsram: {read_64bit: {1: 1, 2: 2}}\ndram: {pj_per_bit: 1}\n",
     "missing entry 'operations.int_add'"),
    ("name: t\n", "missing section 'operations'"),
    ("operations: {int_add: {8: 0.03, 16: x}, int_mult: {8: 1, 32: 2}, fp16_add: 1, "
     "fp16_mult: 1, fp32_add: 1, fp32_mult: 1}\nsram: {read_64bit: {1: 1, 2: 2}}\n"
     "dram: {pj_per_bit: 1}\n", "'operations.int_add.16' must be a non-negative number"),
    ("[1, 2", "not valid YAML"),
])
def test_malformed_tables_name_the_problem(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_technology(path)


def test_unknown_table_name():
    with pytest.raises(ConfigError, match="no technology table 'nope'"):
        load_technology("nope")


def test_memories_beyond_the_on_chip_capacity_are_priced_as_dram():
    big = {"capacity_bytes": 64 * 1024, "width": 64, "instance": "pe.big"}
    small = {"capacity_bytes": 1024, "width": 16}
    specs = {"l0.pe.big.read": EventSpec("sram", "memory", big),
             "l1.pe.big.read": EventSpec("sram", "memory", big),  # the same instance
             "l0.small.read": EventSpec("sram", "memory", small),
             "l0.regs.read": EventSpec("register", "memory", small)}
    events = {"l0.pe.big.read": 3, "l1.pe.big.read": 2, "l0.small.read": 7, "l0.regs.read": 1}
    on_chip = estimate(events, specs)
    assert on_chip.off_chip == [] and on_chip.by_group_pj["dram"] == 0
    assert set(on_chip.by_component_pj) == {"pe.big", "l0.small", "l0.regs"}
    # 65 KiB fits only if the shared instance is counted once
    assert estimate(events, specs, on_chip_bytes=65 * 1024).off_chip == []
    spilled = estimate(events, specs, on_chip_bytes=2048)
    assert spilled.off_chip == ["pe.big"]  # the largest first, until the rest fits
    assert spilled.by_group_pj["dram"] == pytest.approx(5 * 64 * 20.0)
    assert spilled.by_component_pj["l0.small"] == on_chip.by_component_pj["l0.small"]
    nothing = estimate(events, specs, on_chip_bytes=0)
    assert nothing.off_chip == ["pe.big", "l0.small"]  # register files stay on chip
    with pytest.raises(ConfigError, match="non-negative"):
        estimate(events, specs, on_chip_bytes=-1)
