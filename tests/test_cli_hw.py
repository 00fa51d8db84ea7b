"""`accel generate` and `accel simulate` for the FINN architecture."""

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
        (["simulate", "--arch", "eie", BREVITAS], "unknown architecture"),
        (["generate", "--arch", "finn", BREVITAS, "--folding", str(bad), "-o", str(tmp_path)],
         "legal PE"),
        (["generate", "--arch", "finn", "mlp", "-o", str(tmp_path / "x")], "quantized input"),
        (["simulate", "--arch", "finn", BREVITAS, "--images", "0"], "must be positive"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
