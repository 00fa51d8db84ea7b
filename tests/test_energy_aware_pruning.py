"""accel prune: the restore and refit steps, the whole procedure on the shipped mlp for EIE
(budget, output file, energy equal to an independent estimate of it), bad input, and (slow)
both criteria's final networks in Verilator."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from accel.cli import main
from accel.explore import prune as eap
from accel.nn import golden, load
from accel.nn.ir import Network
from tests.conftest import run_cli

EIE16 = ["--arch", "eie", "--pes", "16", "--queue-depth", "8"]


def test_restore_swaps_the_most_damaging_pruned_weights_for_the_least_damaging_kept_ones():
    mask = np.array([[True, True, False, False], [True, False, False, True]])
    damage = np.array([[5.0, 0.5, 9.0, 0.1], [4.0, 3.0, 0.2, 0.3]])
    restored = eap._restore(mask, damage, share=0.5)  # 2 of the 4 kept may swap
    # 9.0 and 3.0 come in, 0.3 and 0.5 go out; the kept count is unchanged
    assert restored.tolist() == [[True, False, True, False], [True, True, False, False]]
    assert restored.sum() == mask.sum()
    # a swap that would raise the damage is not made
    assert eap._restore(mask, np.where(mask, 10.0, 1.0), share=1.0).tolist() == mask.tolist()


def test_refit_is_least_squares_on_each_rows_kept_weights_and_bias():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6))
    target = x @ rng.normal(size=(6, 3)) + rng.normal(size=3) + 0.1 * rng.normal(size=(200, 3))
    mask = np.array([[True, False, True, False, True, False],
                     [False, False, False, False, False, False],
                     [True, True, True, True, True, True]])
    weights, bias = eap._refit(mask, x, target)
    assert np.all(weights[~mask] == 0)
    for row in range(3):
        columns = np.flatnonzero(mask[row])
        design = np.hstack([x[:, columns], np.ones((len(x), 1))])
        expected, *_ = np.linalg.lstsq(design, target[:, row], rcond=None)
        np.testing.assert_allclose(weights[row, columns], expected[:-1], rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(bias[row], expected[-1], rtol=1e-5, atol=1e-8)


def test_the_magnitude_candidate_keeps_the_largest_weights_unchanged():
    network = load("mlp")
    pruner = eap._LayerPruner("magnitude", network, network, "fc2",
                              eap.PruneData.digits().x_train)
    pruned = next(layer for layer in pruner.candidate(0.5).layers if layer.name == "fc2")
    original = next(layer for layer in network.layers if layer.name == "fc2").weights
    kept = pruned.weights != 0
    assert kept.sum() == original.size // 2
    np.testing.assert_array_equal(pruned.weights[kept], original[kept])
    assert np.abs(original[kept]).min() >= np.abs(original[~kept]).max()


def test_energy_aware_pruning_of_mlp_on_eie_holds_the_budget_and_reports_its_energy(tmp_path):
    out, report_path = tmp_path / "mlp-eap.onnx", tmp_path / "report.json"
    assert main(["prune", "--energy-aware", *EIE16, "mlp", "--report", str(report_path),
                 "-o", str(out)]) == 0
    report = json.loads(report_path.read_text())["reports"][0]
    assert report["criterion"] == "energy"
    assert report["validation_drop_points"] <= 1.0 + 1e-9  # the decisions' own budget
    # cross-validated on every training image, by parents that never saw their fold: the
    # file, trained on all of them, would score (nearly) 100 % there
    from accel.nn.data import digits_split

    split = digits_split()
    assert report["extra"]["folds"] == eap.FOLDS
    assert report["extra"]["validation_images"] == len(split.y_train)
    file_accuracy = float(np.mean(golden.predict(load("mlp"), split.x_train) == split.y_train))
    assert report["reference_validation_accuracy"] < file_accuracy - 0.01
    # the layers were visited by their energy on EIE, highest first
    energy = {layer["name"]: layer["energy_before_uj"] for layer in report["layers"]}
    assert report["order"] == sorted(energy, key=lambda name: -energy[name])
    assert report["energy_after_uj"] < report["energy_before_uj"]
    # the file is a QONNX model qonnx's executor agrees with, and an independent estimate of
    # it on the test split gives the report's energy and kept weights
    checked = run_cli("eval", str(out), "--check-qonnx")
    assert checked.returncode == 0, checked.stderr
    estimate_json = tmp_path / "estimate.json"
    assert main(["estimate", *EIE16, str(out), "--json", str(estimate_json)]) == 0
    estimated = json.loads(estimate_json.read_text())
    assert estimated["energy_uj_per_inference"] == pytest.approx(report["energy_after_uj"],
                                                                 rel=1e-12)
    assert estimated["accuracy"] == pytest.approx(report["test_accuracy"], abs=1e-12)
    pruned = load(out)
    kept = {layer.name: int(np.count_nonzero(layer.weights)) for layer in pruned.layers
            if layer.op == "dense"}
    assert kept == {layer["name"]: layer["kept"] for layer in report["layers"]}


def test_prune_on_the_users_data_cross_validates_and_reports_no_test_figures(tmp_path):
    from accel.nn.data import digits_split

    split = digits_split()
    np.save(tmp_path / "x.npy", split.x_train[:700])
    np.save(tmp_path / "y.npy", split.y_train[:700])
    report_path = tmp_path / "report.json"
    assert main(["prune", *EIE16, "mlp", "--criterion", "magnitude", "--no-finetune",
                 "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--report", str(report_path), "-o", str(tmp_path / "out.onnx")]) == 0
    report = json.loads(report_path.read_text())["reports"][0]
    assert report["test_accuracy"] is None and report["test_drop_points"] is None
    assert report["extra"]["energy_measured_on"] == "the training images"
    assert (report["extra"]["folds"], report["extra"]["validation_images"]) == (eap.FOLDS, 700)
    assert report["extra"]["parent"] == "the file, for every fold"
    assert report["validation_drop_points"] <= 1.0 + 1e-9
    assert report["energy_after_uj"] < report["energy_before_uj"]


@pytest.mark.parametrize("args, message", [
    (["--arch", "finn", "bnn-cnv"], "accel prune takes a float chain of dense layers"),
    ([*EIE16, "mlp", "--energy-aware", "--criterion", "magnitude"], "contradict"),
    ([*EIE16, "mlp", "--max-accuracy-drop", "150"], "accuracy budget"),
    ([*EIE16, "mlp", "--data", "x.npy"], "--data needs --labels"),
    ([*EIE16, "mlp", "--pes", "0"], "pes"),
    ([*EIE16, "mlp", "--folds", "0"], "--folds must be a positive integer"),
])
def test_bad_prune_requests_are_one_line_errors(tmp_path, args, message):
    result = run_cli("prune", *args, "-o", str(tmp_path / "out.onnx"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.onnx").exists()


def test_stratified_folds_cover_every_image_once_with_every_class_in_every_fold():
    from accel.errors import ConfigError
    from accel.nn.data import digits_split, stratified_folds

    labels = digits_split().y_train
    folds = stratified_folds(labels, 5, seed=1)
    every = np.concatenate(folds)
    assert sorted(every.tolist()) == list(range(len(labels)))  # disjoint and covering
    for fold in folds:
        assert set(labels[fold]) == set(labels)
        assert abs(len(fold) - len(labels) / 5) <= 10  # one image per class at most apart
    assert [f.tolist() for f in stratified_folds(labels, 5, seed=1)] == [f.tolist() for f in folds]
    with pytest.raises(ConfigError, match="class 1 has 2"):
        stratified_folds(np.array([0, 0, 0, 1, 1]), 3, seed=0)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        stratified_folds(labels, 1, seed=0)


def test_a_fold_is_validated_on_images_its_parent_was_not_trained_on(monkeypatch):
    """Each fold's parent is the recipe retrained on the fold's fit images alone."""
    from accel import train

    trained_on = []

    def recording(network, x, y):
        trained_on.append(np.asarray(x).copy())
        return network  # the file, so the test need not train

    monkeypatch.setattr(train, "retrain_parent", recording)
    monkeypatch.setattr(eap, "_TRAINED_PARENTS", {})
    data = eap.PruneData.digits()
    flow = eap._WeightFlow(load("mlp"), data, seed=0)
    assert len(trained_on) == len(flow.folds) == eap.FOLDS
    def rows(x):
        return sorted(row.tobytes() for row in x)

    validated = []
    for seen, member in zip(trained_on, flow.folds):
        np.testing.assert_array_equal(seen, member.fold.x_fit)
        # fit and validation images together are the training images, each once
        assert rows(np.vstack([seen, member.fold.x_validation])) == rows(data.x_train)
        validated.append(member.fold.x_validation)
    assert rows(np.vstack(validated)) == rows(data.x_train)  # every image validated once


def test_removing_a_constant_neuron_with_the_refit_changes_no_output():
    """A hidden neuron whose output never changes contributes a constant to the next layer:
    the refit moves the next batch-norm's mean by it, so the pruned model computes the same."""
    import torch

    from accel.train import structured
    from accel.train.models import BinaryMLP

    torch.manual_seed(0)
    model = BinaryMLP((64, 16, 16, 10))
    with torch.no_grad():
        for norm in model.norms:
            norm.bn.running_mean.uniform_(-2, 2)
            norm.bn.running_var.uniform_(1, 4)
        model.norms[0].bn.bias[5] = 1e6  # neuron 5 of layer 0: always +1
        model.norms[0].bn.bias[9] = -1e6  # neuron 9: always -1
    model.eval()
    x = np.random.default_rng(1).random((200, 64)).astype(np.float32)
    outputs = structured.hidden_outputs(model, x)
    assert set(outputs[0][:, 5]) == {1.0} and set(outputs[0][:, 9]) == {-1.0}
    keep = np.setdiff1d(np.arange(16), [5, 9])
    refit = structured.without_neurons(model, 0, keep, outputs[0].mean(axis=0))
    plain = structured.without_neurons(model, 0, keep)
    assert refit.sizes == (64, 14, 16, 10)
    with torch.no_grad():
        before = model(torch.from_numpy(x)).numpy()
        after = refit(torch.from_numpy(x)).numpy()
        without = plain(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    assert not np.allclose(without, before, atol=1e-3)  # without the refit it is not the same


def test_a_finn_folding_follows_the_pruned_widths():
    target = eap.Target("finn", {"folding": {"fc0": {"pe": 4, "simd": 64},
                                             "fc1": {"pe": 1, "simd": 128}}}, clock_mhz=200)
    network = load("bnn-mlp")
    layers = []
    for layer in network.layers:  # fc0 keeps 72 of its 128 neurons
        if layer.name == "fc0":
            layer = dataclasses.replace(layer, weights=layer.weights[:72])
        elif layer.name == "sign0":
            layer = dataclasses.replace(layer, thresholds=layer.thresholds[:72])
        elif layer.name == "fc1":
            layer = dataclasses.replace(layer, weights=layer.weights[:, :72])
        layers.append(layer)
    pruned = Network(network.name, network.input_shape, layers, network.input_type)
    folding = target._options_for(pruned).folding
    assert folding == {"fc0": {"pe": 4, "simd": 64}, "fc1": {"pe": 1, "simd": 72}}
    target.configure(pruned)  # a valid folding of the pruned network


def test_an_unwritable_output_fails_before_pruning(tmp_path):
    result = run_cli("prune", *EIE16, "mlp", "-o", str(tmp_path / "no" / "such" / "out.onnx"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_both_criteria_final_networks_run_bit_exact_in_verilator_at_the_estimated_energy():
    """The networks both criteria produce, on EIE at 16 PEs, in Verilator on the whole test
    split: bit-exact, cycles and events equal to the cycle model, and the RTL-counted energy
    equal to the estimate the pruning loop reported."""
    network = load("mlp")
    target = eap.Target("eie", {"pes": 16, "queue_depth": 8}, clock_mhz=200)
    data = eap.PruneData.digits()
    for criterion in eap.CRITERIA:
        final, report = eap.prune(network, target, criterion=criterion, data=data)
        result, energy = target.run(final, data.x_test, data.y_test, simulate=True)
        assert result.bit_exact and result.agrees, criterion
        assert result.to_json()["energy_uj_per_inference"] == pytest.approx(
            report.energy_after_uj, rel=1e-12)
        assert {c.name: energy[c.name] for c in report.layers} == pytest.approx(
            {c.name: c.energy_after_uj for c in report.layers}, rel=1e-12)


@pytest.mark.slow
def test_finn_structured_pruning_of_bnn_mlp_runs_bit_exact_in_verilator():
    """bnn-mlp pruned neuron by neuron for FINN's reference folding, both criteria: the final
    networks in Verilator are bit-exact, agree with the cycle model, and have the energy the
    pruning reported; the decisions held the budget in cross-validation."""
    from accel.hw.reference import REFERENCE_CONFIGS

    folding = next(options for arch, model, options in REFERENCE_CONFIGS
                   if (arch, model) == ("finn", "bnn-mlp"))
    target = eap.Target("finn", folding, clock_mhz=200)
    data = eap.PruneData.digits()
    for criterion in eap.CRITERIA:
        final, report = eap.prune(load("bnn-mlp"), target, criterion=criterion, data=data)
        assert report.validation_drop_points <= 1.0 + 1e-9
        assert report.extra["pruned"] == "neurons"
        result, _ = target.run(final, data.x_test, data.y_test, simulate=True)
        assert result.bit_exact and result.agrees, criterion
        assert result.to_json()["energy_uj_per_inference"] == pytest.approx(
            report.energy_after_uj, rel=1e-12)


def test_a_missed_budget_is_said_and_exits_1(tmp_path, monkeypatch, capsys):
    """When even no pruning cannot hold the budget (fine-tuning and sharing alone lose it),
    accel prune writes the network but says so and exits 1."""
    real_prune = eap.prune

    def missing(*args, **kwargs):
        final, report = real_prune(*args, **kwargs)
        return final, dataclasses.replace(report, budget_met=False)

    monkeypatch.setattr(eap, "prune", missing)
    out = tmp_path / "out.onnx"
    assert main(["prune", *EIE16, "mlp", "--criterion", "magnitude", "--no-finetune",
                 "-o", str(out)]) == 1
    assert "over the 1-point budget" in capsys.readouterr().err
    assert out.exists()
