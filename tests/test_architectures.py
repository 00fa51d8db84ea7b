"""The architecture interface's contract, for every registered architecture and for a third one
written only as a test fixture (``tests/fixtures/passthrough_arch.py``): RTL outputs bit-exact
with the golden model, RTL cycles and every event equal to the cycle model's, ``estimate``
equal to ``simulate``, and the CLI, the energy report and re-pricing working for an architecture
they have never heard of."""

import json

import pytest

from accel.cli import main
from accel.energy.model import reprice
from accel.hw import evaluate
from accel.hw.registry import ARCHITECTURES, architecture, register, unregister
from accel.nn import save
from tests.fixtures.passthrough_arch import PASSTHROUGH


@pytest.fixture
def registered():
    register(PASSTHROUGH)  # the one line that adds an architecture
    yield
    unregister(PASSTHROUGH.name)


def evaluate_both(arch):
    network, options, inputs = arch.example()
    mapping = arch.configure(network, options, clock_mhz=200.0)
    common = dict(model=network.name, clock_mhz=200.0)
    return (evaluate.simulate(arch, mapping, network, inputs, **common),
            evaluate.estimate(arch, mapping, network, inputs, **common))


# the fixture proves the interface in the default suite; the real architectures' RTL runs
# through the same path in their own default tests (tests/test_finn.py, tests/test_eie_rtl.py)
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(ARCHITECTURES)] + [PASSTHROUGH.name])
def test_three_parts_agree_and_estimate_equals_simulate(name, registered):
    simulated, estimated = evaluate_both(architecture(name))
    assert simulated.source == "verilator" and estimated.source == "cycle model"
    assert simulated.bit_exact and simulated.model_events_equal and simulated.agrees
    assert estimated.bit_exact is None and estimated.agrees is None
    assert estimated.predictions == simulated.predictions
    for key in ("cycles_per_inference", "latency_cycles", "events", "throughput_fps"):
        assert getattr(estimated, key) == getattr(simulated, key), key
    for key in ("energy_uj_per_inference", "energy_by_component_uj", "pj_per_event",
                "config_label"):
        assert estimated.extra[key] == simulated.extra[key], key
    assert simulated.extra["energy_uj_per_inference"] > 0


def test_a_new_architecture_needs_no_change_to_the_cli_energy_or_result(tmp_path, registered,
                                                                        capsys):
    network, _, inputs = PASSTHROUGH.example()
    model = save(network, tmp_path / "net.onnx")
    data = tmp_path / "x.npy"
    import numpy as np

    np.save(data, inputs)
    out = tmp_path / "run.json"
    assert main(["estimate", "--arch", "passthrough", str(model), "--registers", "3",
                 "--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["arch"] == "passthrough" and result["source"] == "cycle model"
    assert result["cycles_per_inference"] == (inputs.size + 3) / len(inputs)
    assert main(["energy", str(out), "--chart", str(tmp_path / "chart")]) == 0
    assert "passthrough net" in capsys.readouterr().out
    repriced = tmp_path / "repriced.json"
    assert main(["energy", str(out), "--on-chip-kib", "0", "--chart", str(tmp_path / "chart"),
                 "--json", str(repriced)]) == 0
    assert "(re-priced)" in capsys.readouterr().out
    assert json.loads(repriced.read_text())[0]["on_chip_bytes"] == 0
    assert main(["estimate", "--arch", "passthrough", str(model), "--pes", "4"]) == 2
    assert "--pes is an option of --arch eie, not of passthrough" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_a_stored_result_reprices_like_a_fresh_estimate(name, tmp_path):
    """Another technology table (every energy doubled) and an on-chip budget of nothing."""
    import yaml

    from accel.energy.tech import TABLE_DIR

    table = yaml.safe_load((TABLE_DIR / "45nm.yaml").read_text())

    def doubled(value):
        if isinstance(value, dict):
            return {k: doubled(v) for k, v in value.items()}
        return 2 * value if isinstance(value, (int, float)) else value

    table = {**doubled(table), "name": "45nm-doubled"}
    other = tmp_path / "doubled.yaml"
    other.write_text(yaml.safe_dump(table))
    arch = architecture(name)
    network, options, inputs = arch.example()
    mapping = arch.configure(network, options, clock_mhz=200.0)
    stored = evaluate.estimate(arch, mapping, network, inputs, model="m", clock_mhz=200.0)
    fresh = evaluate.estimate(arch, mapping, network, inputs, model="m", clock_mhz=200.0,
                              tech=str(other), on_chip_bytes=0)
    repriced = reprice(json.loads(json.dumps(stored.to_json())), str(other), 0)
    expected = fresh.to_json()
    for key in ("tech", "energy_uj_per_inference", "energy_breakdown_uj", "pj_per_event",
                "energy_off_chip_memories", "average_power_mw", "pj_per_mac"):
        assert repriced[key] == pytest.approx(expected[key]), key
    assert repriced["energy_uj_per_inference"] != stored.extra["energy_uj_per_inference"]


@pytest.mark.parametrize("name", ["finn", "yodann"])
@pytest.mark.parametrize("values,message", [
    ({"loadable_weights": "yes"}, "loadable_weights is true or false, got 'yes'"),
    ({"loadable_weights": 1}, "loadable_weights is true or false, got 1"),
    ({"loadable": True}, "unknown option loadable; this architecture takes .*loadable_weights"),
])
def test_options_from_a_mapping_check_names_and_flags(name, values, message):
    """A sweep point's or reference configuration's options: unknown names and a flag given
    anything but true or false are one-line errors, for every architecture with the flag."""
    from accel.errors import ConfigError
    from accel.hw.architecture import options_from_mapping

    with pytest.raises(ConfigError, match=message):
        options_from_mapping(architecture(name).Options, values)
    assert options_from_mapping(architecture(name).Options,
                                {"loadable_weights": True}).loadable_weights is True
