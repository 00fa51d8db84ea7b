"""Technology tables and the event-to-energy estimate."""

import importlib.util
import math
from pathlib import Path

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
    w0 = tech.sram_fixed_bits  # fixed cost per access plus a cost per bit
    assert tech.sram_read(32768, 32) == pytest.approx(tech.sram_read(32768, 64) * (w0 + 32)
                                                      / (w0 + 64))
    assert tech.dram(32) == 640.0


def test_sram_fixed_plus_per_bit_fit_reproduces_the_cacti_points():
    """CACTI 40 nm (448 B x 16 bit 0.50 pJ, 8 KB x 64 bit 5.26 pJ, 100 KB x 64 bit 32.1 pJ): three
    points, three parameters, an exact fit (w0 137.5 bits, capacity exponent 0.716)."""
    tech = load_technology("45nm")
    fit = tech.sram_width_fit()
    assert [(c, w, e) for c, w, e, _ in fit] == [(448, 16, 0.50), (8192, 64, 5.26),
                                                  (102400, 64, 32.1)]
    for _, _, source, fitted in fit:
        assert fitted == pytest.approx(source, rel=1e-6)
    assert tech.sram_fixed_bits == pytest.approx(137.5, abs=0.1)
    # the 64-bit reads keep Horowitz's capacity fit; narrow reads pay the fixed cost
    assert tech.sram_read(8192, 64) == pytest.approx(10.0, rel=0.03)
    quarter = tech.sram_read(16384, 16) / tech.sram_read(16384, 64)
    assert quarter == pytest.approx((tech.sram_fixed_bits + 16) / (tech.sram_fixed_bits + 64))
    assert quarter > 0.7  # not a quarter: the decode/sense cost is paid per access
    assert tech.sram_read(1024, 1) < tech.sram_read(1024, 2) < tech.sram_read(2048, 2)


# Stillmaker & Baas (2017) energy fits P(V) = a V^2 + b V + c, as stated in 65nm.yaml
STILLMAKER_BAAS = {65: (3.755, -4.398, 1.975), 45: (1.103, -0.362, 0.2767)}


def stillmaker_baas(node, volts):
    a, b, c = STILLMAKER_BAAS[node]
    return a * volts ** 2 + b * volts + c


def test_65nm_table_is_the_45nm_table_scaled_by_the_stated_rule():
    t45, t65 = load_technology("45nm"), load_technology("65nm")
    assert (t45.voltage, t65.voltage) == (0.9, 1.2)
    factor = stillmaker_baas(65, 1.2) / stillmaker_baas(45, 0.9)
    assert factor == pytest.approx(2.4926, abs=1e-4)
    prices = [lambda t: t.add(8), lambda t: t.add(16), lambda t: t.add(32),
              lambda t: t.mult(8), lambda t: t.mult(16), lambda t: t.mult(32),
              lambda t: t.sram_read(8192, 64), lambda t: t.sram_read(100_000, 16),
              lambda t: t.sram_read(1 << 20, 64), lambda t: t.register(16, 128),
              lambda t: t.clock(100), lambda t: t.scm_access(128, 32),
              lambda t: t.scm_access(1000, 12)] + [
        (lambda op: lambda t: t.operations[op])(op)
        for op in ("fp16_add", "fp16_mult", "fp32_add", "fp32_mult")]
    for price in prices:
        assert price(t65) / price(t45) == pytest.approx(factor, rel=2e-4)
    assert t65.sram_fixed_bits == pytest.approx(t45.sram_fixed_bits)
    assert t65.dram(64) == t45.dram(64)  # off chip: not scaled


def test_supply_voltage_scales_dynamic_energy_with_v_squared():
    nominal = load_technology("65nm")
    low = nominal.at_voltage(0.6)
    assert low.name == "65nm@0.6V" and low.voltage == 0.6
    same = load_technology("65nm@0.6V")
    for t in (low, same):
        for price in (lambda t: t.add(12), lambda t: t.mult(16), lambda t: t.xnor(49),
                      lambda t: t.sram_read(4096, 32), lambda t: t.register(8, 64),
                      lambda t: t.clock(23), lambda t: t.scm_access(7 * 32, 12)):
            assert price(t) == pytest.approx(price(nominal) * (0.6 / 1.2) ** 2)
        assert t.dram(32) == nominal.dram(32)
    specs = {"img.read": EventSpec("scm", "memory", {"words": 224, "width": 12}),
             "sop.add": EventSpec("add", "compute", {"bits": 18})}
    counts = {"img.read": 100, "sop.add": 49}
    assert estimate(counts, specs, "65nm@0.6V").total_pj == pytest.approx(
        estimate(counts, specs, "65nm").total_pj / 4)
    with pytest.raises(ConfigError, match="positive number of volts"):
        load_technology("65nm@fast")
    with pytest.raises(ConfigError, match="positive number of volts"):
        nominal.at_voltage(-1)


def test_alpha_power_law_meets_the_yodann_calibration_points():
    tech = load_technology("65nm")
    alpha, vth, _ = tech.alpha_power_law()
    assert alpha == 1.3 and vth == pytest.approx(0.571, abs=1e-3)
    assert tech.clock_mhz(1.2) == pytest.approx(481.0, rel=1e-9)
    assert tech.clock_mhz(0.6) == pytest.approx(17.5, rel=1e-9)
    assert load_technology("65nm@0.6V").clock_mhz() == pytest.approx(17.5, rel=1e-9)
    clocks = [tech.clock_mhz(v) for v in (0.58, 0.7, 0.9, 1.0, 1.2, 1.3)]
    assert clocks == sorted(clocks) and clocks[0] > 0
    assert tech.clock_mhz(0.5) == 0.0  # below the fitted threshold
    with pytest.raises(ConfigError, match="no 'alpha_power' calibration"):
        load_technology("45nm").clock_mhz(0.9)


def test_scm_model_grows_with_words_and_width():
    for name in ("45nm", "65nm"):
        tech = load_technology(name)
        scm = tech.scm
        assert tech.scm_access(scm["words"], scm["width"]) == pytest.approx(
            scm["pj_per_bit"] * scm["width"])
        by_words = [tech.scm_access(words, 12) for words in (1, 8, 64, 512, 4096)]
        by_width = [tech.scm_access(64, width) for width in (1, 4, 12, 32, 64)]
        assert all(a < b for a, b in zip(by_words, by_words[1:]))
        assert all(a < b for a, b in zip(by_width, by_width[1:]))
    # Meinerzhagen et al. (ESSCIRC 2012): 14 fJ per accessed bit at 0.5 V, 65 nm, 4 kb
    assert load_technology("65nm@0.5V").scm_access(128, 32) / 32 == pytest.approx(0.014)


def test_an_architecture_declares_scm_memories_clocked_state_and_a_voltage():
    """What the YodaNN engine will declare: latch-array memories, registers clocked every
    cycle (idle cycles cost energy), and the operating voltage through the technology."""
    specs = {"l0.image_mem.write": EventSpec("scm", "memory", {"words": 7 * 32, "width": 12}),
             "l0.image_mem.read": EventSpec("scm", "memory", {"words": 7 * 32, "width": 12}),
             "sop.clock": EventSpec("clock", "compute", {"bits": 32 * 18, "instances": 1}),
             "idle.cycle": EventSpec("free", "control")}
    busy = {"l0.image_mem.write": 10, "l0.image_mem.read": 70, "idle.cycle": 0}
    idle = {**busy, "idle.cycle": 50}
    tech = load_technology("65nm@0.6V")
    report = estimate(busy, specs, tech, cycles=100)
    assert report.by_component_pj["sop"] == pytest.approx(100 * tech.clock(32 * 18))
    assert report.by_component_pj["l0.image_mem"] == pytest.approx(
        80 * tech.scm_access(224, 12))
    assert estimate(idle, specs, tech, cycles=150).total_pj > report.total_pj
    assert report.tech == "65nm@0.6V"
    with pytest.raises(ConfigError, match="needs the cycle count"):
        estimate(busy, specs, tech)
    with pytest.raises(ConfigError, match="must not be counted"):
        estimate({**busy, "sop.clock": 3}, specs, tech, cycles=100)
    import accel.energy as energy

    assert energy.load_technology is load_technology and energy.EventSpec is EventSpec


def load_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "energy_validation.py"
    spec = importlib.util.spec_from_file_location("energy_validation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eie_per_pe_split_is_within_ten_points_of_the_paper():
    """benchmarks/energy_validation.py's first check: EIE Alex-7 on the paper's PE."""
    benchmark = load_benchmark()
    report, _, per_pe_mw, shares = benchmark.eie_alex7_split(load_technology("45nm"))
    assert set(shares) == set(benchmark.PAPER_SHARES)
    for share, (ours, paper) in shares.items():
        assert abs(ours - paper) <= benchmark.SHARE_TOLERANCE_POINTS, share
    # the named units account for the PE's energy (the LNZD is the only other part)
    assert sum(ours for ours, _ in shares.values()) == pytest.approx(
        100 * (1 - report.by_group_pj["control"] / report.total_pj))
    assert math.isfinite(per_pe_mw) and per_pe_mw > 0


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
