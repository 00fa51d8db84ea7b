"""The shipped reference models: their recorded accuracy is the golden model's, they meet their
targets, qonnx's executor agrees with the golden model on them, and retraining with the recorded
seed reproduces the shipped file byte for byte."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import accel
from accel.errors import ConfigError
from accel.nn import golden, zoo
from accel.nn.data import digits_split
from accel.nn.ir import Conv2d, Dense, MultiThreshold, Quant
from accel.nn.qonnx_io import load
from accel.train import REFERENCE_MODELS, train, train_command

SMALLEST = "bnn-mlp"  # fewest weights, shortest training (about 10 s on one core)
BIT_EXACT = ("bnn-mlp", "bnn-cnv", "bwn-cnn")  # all sums below 2**24 units: float32 is exact
# qonnx evaluates in float32; the golden model of a float network in float32 too, but with
# another summation order, and exactly for the 16-bit network, whose 16 x 16-bit products and
# 256-term sums exceed float32's 24-bit mantissa (and whose 16-bit requantizers then may differ
# by one unit). Tolerance on |golden - qonnx|, relative to the image's largest |output|; the
# measured figures are about 2**-21 (mlp) and 2**-17 (mlp-sparse).
FLOAT_TOLERANCE = {"mlp": 2.0 ** -16, "mlp-sparse": 2.0 ** -13}
QONNX_IMAGES = 100

# Byte-identical retraining holds with the same torch release on a CPU with the same vector
# kernels (DEVELOPERS.md). The shipped files were trained where torch dispatches to its AVX2
# kernels: evidence, not a record (the files do not store it): on an AVX512 Xeon (torch picks
# AVX512) retraining bnn-mlp differs even at the commit that shipped it, and forcing torch's
# AVX2 dispatch (ATEN_CPU_CAPABILITY=avx2) gives the shipped file's exact test accuracy
# (97.77 %) but not its bytes (MKL/oneDNN paths differ by microarchitecture too). Elsewhere the
# comparison says nothing, so it is skipped; determinism on this machine is checked instead.
SHIPPED_CPU_CAPABILITY = "AVX2"


def _cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


same_kernels = pytest.mark.skipif(
    "_cpu_capability() != SHIPPED_CPU_CAPABILITY",
    reason=f"the shipped models were trained with torch's {SHIPPED_CPU_CAPABILITY} CPU kernels; "
           "other kernels give other bits (see SHIPPED_CPU_CAPABILITY)")


def _is_power_of_two(value: float) -> bool:
    mantissa, _ = np.frexp(value)
    return value > 0 and mantissa == 0.5


def _inputs(network, x):
    return x.reshape(-1, 1, 8, 8) if len(network.input_shape) == 4 else x


@pytest.fixture(scope="module")
def split():
    return digits_split()


@pytest.fixture(scope="module")
def shipped():
    return {name: load(zoo.model_path(name)) for name in zoo.shipped_models()}


def test_every_reference_model_is_shipped():
    assert zoo.shipped_models() == sorted(REFERENCE_MODELS)
    assert zoo.SHIPPED_DIR == Path(accel.__file__).parent / "models"
    for name in REFERENCE_MODELS:
        assert zoo.model_path(name) == zoo.SHIPPED_DIR / f"{name}.onnx"


def test_unknown_model_names_the_available_ones():
    with pytest.raises(ConfigError, match="no shipped model named 'lenet'.*bnn-cnv.*mlp-sparse"):
        zoo.model_path("lenet")


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_shipped_accuracy_is_the_golden_models_and_meets_the_target(name, shipped, split):
    network = shipped[name]
    meta = network.metadata
    for key in ("accuracy", "train_seed", "description", "accuracy_count", "torch_accuracy"):
        assert isinstance(meta.get(key), str) and meta[key], key
    assert meta["reference_model"] == name
    correct = int(np.sum(golden.predict(network, _inputs(network, split.x_test)) == split.y_test))
    total = len(split.y_test)
    assert meta["accuracy_count"] == f"{correct}/{total}"
    assert meta["accuracy"] == f"{correct / total:.6f}"
    accuracies = {other: float(shipped[other].metadata["accuracy"]) for other in shipped}
    required = REFERENCE_MODELS[name].required(accuracies)
    assert correct / total >= required, f"{name}: {correct / total:.4f} < {required:.4f}"


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_shipped_models_are_hardware_numbers(name, shipped):
    """Power-of-two scales everywhere; the datatypes each reference model promises."""
    network = shipped[name]
    for layer, (_, dtype) in zip(network.layers, network.tensor_types()[1:]):
        assert dtype.is_float or _is_power_of_two(dtype.scale), layer.name
        if isinstance(layer, (Dense, Conv2d)):
            wt = layer.weight_type
            assert wt.is_float or _is_power_of_two(wt.scale), layer.name
            if name.startswith(("bnn", "bwn")):
                assert wt.bipolar, layer.name
            if name == "mlp-sparse":
                assert (wt.bits, wt.signed) == (16, True) and not wt.bipolar
            if name == "mlp":
                assert wt.is_float
        if isinstance(layer, Quant):
            expected = {"mlp-sparse": 16, "bwn-cnn": 12}.get(name, 8)
            assert layer.bits == expected, layer.name
        if isinstance(layer, MultiThreshold):
            assert layer.is_bipolar and name.startswith("bnn")
        if isinstance(layer, Conv2d) and name == "bnn-cnv":
            assert layer.padding == 0  # bipolar activations must not be zero-padded
    if name == "mlp":
        assert network.input_type.is_float and not any(isinstance(x, Quant)
                                                        for x in network.layers)


def test_mlp_sparse_is_pruned_and_shared(shipped):
    network = shipped["mlp-sparse"]
    meta = network.metadata
    codebooks = json.loads(meta["codebooks"])
    per_layer = json.loads(meta["sparsity_per_layer"])
    dense = [layer for layer in network.layers if isinstance(layer, Dense)]
    zeros = sum(int(np.count_nonzero(layer.weights == 0)) for layer in dense)
    total = sum(layer.weights.size for layer in dense)
    assert zeros / total >= 0.90
    assert meta["sparsity"] == f"{zeros / total:.6f}"
    for layer in dense:
        book = codebooks[layer.name]
        assert len(book["values"]) == 16 and book["values"][0] == 0
        assert layer.weight_type.scale == 2.0 ** -book["frac_bits"]
        assert set(np.unique(layer.weights)) <= set(book["values"])
        assert per_layer[layer.name] == round(float(np.mean(layer.weights == 0)), 6)
        assert layer.bias is not None and np.all(layer.bias == np.round(layer.bias))
    assert abs(float(meta["accuracy"]) - float(shipped["mlp"].metadata["accuracy"])) <= 0.01


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_qonnx_executor_agrees_with_the_golden_model(name, shipped, split):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    network = shipped[name]
    x = _inputs(network, split.x_test[:QONNX_IMAGES])
    ours = golden.real_values(golden.run(network, x), network.output_type)
    model = ModelWrapper(str(zoo.model_path(name)))
    reference = np.concatenate([execute_onnx(model, {"global_in": image[None]})["global_out"]
                                for image in x])
    if name in BIT_EXACT:
        np.testing.assert_array_equal(ours, reference)
    else:
        np.testing.assert_array_equal(np.argmax(ours, axis=1), np.argmax(reference, axis=1))
        largest = np.abs(ours).max(axis=1, keepdims=True)
        assert np.all(np.abs(ours - reference) <= FLOAT_TOLERANCE[name] * largest)


@same_kernels
def test_retraining_the_smallest_model_reproduces_the_shipped_file(tmp_path, shipped):
    seed = int(shipped[SMALLEST].metadata["train_seed"])
    summary = train_command(SMALLEST, seed, tmp_path)
    written = tmp_path / f"{SMALLEST}.onnx"
    assert f"byte-identical to the shipped {SMALLEST}.onnx" in summary
    assert written.read_bytes() == zoo.model_path(SMALLEST).read_bytes()
    accuracy = float(load(written).metadata["accuracy"])
    assert accuracy >= REFERENCE_MODELS[SMALLEST].target
    assert re.search(r"target >= 95\.0%: met", summary)


@pytest.mark.slow
def test_retraining_is_deterministic_on_this_machine(tmp_path, shipped):
    """Whatever the CPU: the same seed twice gives the same file, and it meets its target."""
    seed = int(shipped[SMALLEST].metadata["train_seed"])
    runs = []
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        _, report = train(SMALLEST, seed, tmp_path / attempt)
        assert report["meets_target"]
        runs.append(report["path"].read_bytes())
    assert runs[0] == runs[1]


@pytest.mark.slow
@same_kernels
@pytest.mark.parametrize("name", sorted(set(REFERENCE_MODELS) - {SMALLEST}))
def test_retraining_reproduces_every_shipped_file(name, tmp_path, shipped):
    seed = int(shipped[name].metadata["train_seed"])
    _, report = train(name, seed, tmp_path)
    assert report["path"].read_bytes() == zoo.model_path(name).read_bytes()
    assert report["meets_target"]


def test_training_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown reference model 'vgg'.*bnn-mlp"):
        train("vgg")
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        train("mlp", seed=-1)
    with pytest.raises(ConfigError, match="does not exist"):
        train("mlp", out_dir=tmp_path / "missing")


def test_thresholds_reproduce_batch_norm_and_sign_on_every_accumulator():
    torch = pytest.importorskip("torch")
    from accel.train.models import BatchNormSign, fold_thresholds

    # rising, falling, constant +1 and -1 (zero gain, or the crossing outside the range),
    # falling with its crossing on an accumulator value (y = 0 there, which maps to +1)
    gain = [1.5, -0.7, 0.0, 0.0, 2.0, -3.0, -2.0]
    shift = [0.3, 0.2, 0.5, -0.5, -40.0, 40.0, 0.5]
    norm = BatchNormSign(len(gain), spatial=False)
    with torch.no_grad():
        norm.bn.weight.copy_(torch.tensor(gain))
        norm.bn.bias.copy_(torch.tensor(shift))
        norm.bn.running_mean.copy_(torch.tensor([1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        norm.bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0, 1.0, 1.0, 1.0, 1.0]))
        norm.bn.eps = 0.0
    norm.eval()
    bound, scale = 600, 2.0 ** -8
    thresholds, flip = fold_thresholds(norm, bound, scale)
    acc = np.arange(-bound, bound + 1)
    values = torch.tensor(acc * scale, dtype=torch.float32)[:, None].expand(-1, len(gain))
    expected = norm(values).numpy()
    assert np.all(expected[acc == 64, 6] == 1) and np.all(expected[acc == 65, 6] == -1)
    signed_acc = acc[:, None] * np.where(flip, -1, 1)[None, :]
    ours = np.where(signed_acc >= thresholds[:, 0][None, :], 1, -1)
    np.testing.assert_array_equal(ours, expected)
    assert flip.tolist() == [False, True, False, False, False, False, True]
    assert thresholds[2:6, 0].tolist() == [-bound, bound + 1, bound + 1, -bound]


def test_only_accel_train_imports_torch():
    root = Path(accel.__file__).parent
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if "train" not in path.relative_to(root).parts[:1]
                 and re.search(r"^\s*(import|from)\s+torch\b", path.read_text(), re.M)]
    assert offenders == []
    code = ("import sys, accel.nn, accel.nn.zoo, accel.compress, accel.train, accel.cli; "
            "accel.nn.zoo.load_model('mlp'); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
