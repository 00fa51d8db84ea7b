"""`accel generate`, `accel simulate` and `accel estimate` for the FINN and EIE architectures."""

import json

import pytest

from accel.sim.lint import check_lint
from tests.conftest import run_cli
from tests.test_cli_nn import BREVITAS

CONTRACT = {"arch", "model", "images", "accuracy", "predictions", "bit_exact",
            "cycles_per_inference", "model_cycles_per_inference", "latency_us",
            "throughput_fps", "clock_mhz", "events"}


def test_generate_writes_verilog_and_manifest(tmp_path):
    result = run_cli("generate", "--arch", "finn", BREVITAS, "--target-fps", "1e5",
                     "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "finn_top.json").read_text())
    assert manifest["expected_cycles_per_frame"] <= 2000  # 200 MHz / 1e5 frames/s
    assert "s_axis_tdata" in manifest["ports"] and manifest["events"]
    verilog = (tmp_path / "out" / "finn_top.v").read_text()
    assert "module finn_top" in verilog and "s_axis_tready" in verilog
    assert "event_counts" in verilog
    bare = run_cli("generate", "--arch", "finn", BREVITAS, "--no-counters", "-o",
                   str(tmp_path / "bare"))
    assert bare.returncode == 0, bare.stderr
    assert "event_counts" not in (tmp_path / "bare" / "finn_top.v").read_text()
    for directory in ("out", "bare"):
        check_lint(tmp_path / directory / "finn_top.v", "finn_top")
    assert json.loads((tmp_path / "bare" / "finn_top.json").read_text())["events"] == []


def test_simulate_json_contract(tmp_path):
    folding = tmp_path / "fold.json"
    folding.write_text(json.dumps({"node_linear": {"pe": 16, "simd": 8},
                                   "node_linear_1": {"pe": 8, "simd": 16},
                                   "node_linear_2": {"pe": 2, "simd": 8}}))
    out = tmp_path / "sim.json"
    result = run_cli("simulate", "--arch", "finn", BREVITAS, "--folding", str(folding),
                     "--images", "25", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert CONTRACT <= set(data)
    assert data["images"] == 25 and len(data["predictions"]) == 25
    assert data["bit_exact"] and data["model_events_equal"]
    assert data["cycles_per_inference"] == data["model_cycles_per_inference"]
    assert data["events"]["l0.pe.mac"] == 64 * 64
    assert data["energy_uj_per_inference"] == data["model_energy_uj_per_inference"] > 0
    assert sum(data["energy_breakdown_uj"].values()) == pytest.approx(
        data["energy_uj_per_inference"])
    assert set(data["energy_by_layer_uj"]) == {"l0", "l1", "l2", "fifo0", "fifo1"}


def test_hardware_errors_are_one_line(tmp_path):
    bad = tmp_path / "fold.yaml"
    bad.write_text("node_linear: {pe: 5}\n")
    for args, message in [
        (["simulate", "--arch", "systolic", BREVITAS], "invalid choice: 'systolic'"),
        (["generate", "--arch", "eie", "mlp-sparse", "--pes", "0", "-o", str(tmp_path / "x")],
         "--pes must be a positive integer"),
        (["generate", "--arch", "eie", "bnn-mlp", "-o", str(tmp_path / "x")],
         "EIE requantizes by one power-of-two shift"),
        (["simulate", "--arch", "eie", "mlp-sparse", "--target-fps", "10"],
         "--target-fps is an option of --arch finn, not of eie"),
        (["estimate", "--arch", "eie", "mlp-sparse", "--clock-mhz", "nan"], "positive number"),
        (["simulate", "--arch", "eie", "mlp-sparse", "--tech", "7nm"], "no technology table"),
        (["energy", str(tmp_path / "none.json")], "no such result file"),
        (["simulate", "--arch", "finn", BREVITAS, "--pes", "4"],
         "--pes is an option of --arch eie, not of finn"),
        (["estimate", "--arch", "finn", BREVITAS, "--pes", "x"], "--pes is an option of"),
        (["generate", "--arch", "eie", "mlp-sparse", "--sparse-word-bits", "24", "-o",
          str(tmp_path / "x")], "power of two"),
        (["generate", "--arch", "eie", "mlp-sparse", "--sparse-word-bits", "12", "-o",
          str(tmp_path / "x")], "whole"),
        (["simulate", "--arch", "eie", "mlp-sparse", "--on-chip-kib", "-1"], "non-negative"),
        (["energy", str(bad)], "not JSON"),
        (["generate", "--arch", "finn", BREVITAS, "--folding", str(bad), "-o", str(tmp_path)],
         "legal PE"),
        (["generate", "--arch", "finn", "mlp", "-o", str(tmp_path / "x")], "quantized input"),
        (["simulate", "--arch", "finn", BREVITAS, "--images", "0"], "must be positive"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_eie_generate_writes_lint_clean_verilog_and_manifest(tmp_path, small_sparse_mlp):
    result = run_cli("generate", "--arch", "eie", str(small_sparse_mlp), "--pes", "2", "-o",
                     str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "eie_top.json").read_text())
    assert manifest["num_pes"] == 2 and manifest["queue_depth"] == 8
    assert [layer["rows"] for layer in manifest["layers"]] == [24, 16, 10]
    assert manifest["activation_bank_rows"] == 32  # 64 input columns over 2 banks
    assert "l2.pe.sparse_sram.read" in manifest["events"]
    bare = run_cli("generate", "--arch", "eie", str(small_sparse_mlp), "--pes", "2",
                   "--no-counters", "-o", str(tmp_path / "bare"))
    assert bare.returncode == 0, bare.stderr
    assert "event_counts" not in (tmp_path / "bare" / "eie_top.v").read_text()
    for directory in ("out", "bare"):
        check_lint(tmp_path / directory / "eie_top.v", "eie_top")


def test_eie_simulate_json_contract(tmp_path, small_sparse_mlp):
    out = tmp_path / "sim.json"
    common = ("simulate", "--arch", "eie", str(small_sparse_mlp), "--pes", "4",
              "--queue-depth", "2")
    result = run_cli(*common, "--images", "40", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert CONTRACT <= set(data)
    assert data["images"] == 40 and data["bit_exact"] and data["model_events_equal"]
    assert data["cycles_per_inference"] == data["model_cycles_per_inference"]
    assert 0 < data["load_balance_efficiency"] <= 1
    # between layers every PE writes back one row per cycle: 24/4 and 16/4 rows
    assert data["events"]["l0.pe.act_bank.write"] == 4 * 6
    assert data["events"]["l1.pe.act_bank.write"] == 4 * 4
    assert data["events"]["l2.pe.act_bank.write"] == 0  # the last layer is read out, not written
    assert data["energy_uj_per_inference"] == data["model_energy_uj_per_inference"] > 0
    # the layers' events, and the PEs' and the central control's registers clocked every
    # cycle whatever layer runs
    assert set(data["energy_by_layer_uj"]) == {"l0", "l1", "l2", "pe", "control"}
    assert "pe.sparse_sram" in data["energy_by_component_uj"]
    macs = sum(data["events"][f"l{i}.pe.mult.mac"] for i in range(3))
    assert data["pj_per_mac"] == pytest.approx(1e6 * data["energy_uj_per_inference"] / macs)
    off_chip = run_cli(*common, "--images", "3", "--on-chip-kib", "0.1", "--json",
                       str(tmp_path / "dram.json"))
    assert off_chip.returncode == 0, off_chip.stderr
    spilled = json.loads((tmp_path / "dram.json").read_text())
    assert "pe.sparse_sram" in spilled["energy_off_chip_memories"]
    assert spilled["energy_breakdown_uj"]["dram"] > 0
    assert spilled["energy_uj_per_inference"] > 2 * data["energy_uj_per_inference"]

    chart = tmp_path / "chart"
    table = run_cli("energy", str(out), str(tmp_path / "dram.json"), "--chart", str(chart),
                    env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "eie mlp-small (4 PEs, queue 2)" in table.stdout
    assert f"{1e3 * data['energy_uj_per_inference']:.3f}" in table.stdout
    assert chart.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in chart.with_suffix(".svg").read_text()


@pytest.mark.slow
def test_demo_runs_every_architecture(tmp_path):
    """The README's first command (on 30 images: the full split is the slow FINN/EIE tests)."""
    result = run_cli("demo", "--images", "30", "--out", str(tmp_path), env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    for model in ("bnn-mlp", "bnn-cnv", "mlp-sparse", "bwn-cnn"):
        assert model in result.stdout
    assert " NO " not in result.stdout
    runs = {path.name: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert set(runs) == {"finn-bnn-mlp.json", "finn-bnn-cnv.json", "eie-mlp-sparse.json",
                         "yodann-bwn-cnn.json"}
    assert all(run["images"] == 30 and run["bit_exact"] for run in runs.values())
    assert (tmp_path / "energy.png").is_file() and (tmp_path / "energy.svg").is_file()
