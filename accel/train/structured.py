"""Structured pruning of a binarized MLP (FINN's bnn-mlp): whole hidden neurons removed, which
shrinks the next layer's MW and this layer's MH (and so cycles and weight memory), for
``accel prune`` on architectures with binary weights.

A QONNX file of a binarized network holds only signs and integer thresholds; pruning and
fine-tuning need the latent float weights and batch-norm statistics, so a shipped reference
model is retrained by its own recipe and seed (deterministic: the result must equal the file
bit for bit where torch runs the kernels it was trained with; ``parent`` says how far it is).
"""

from __future__ import annotations

import numpy as np
import torch

from accel.nn.ir import Network
from accel.train.common import deterministic, fit, phase_rng
from accel.train.models import BinaryMLP, binary_mlp_network

# fine-tuning after pruning: a tenth of bnn-mlp's schedule at a tenth of its learning rate
FINETUNE_BINARY = {"epochs": 10, "batch_size": 64, "lr": 1e-3}


def parent(network: Network, x: np.ndarray, y: np.ndarray) -> tuple[BinaryMLP, Network, str]:
    """(the torch model of ``network``, a shipped bnn-mlp, retrained by its recipe with the
    seed its metadata records, on ``x``, ``y``; that model's network; a note saying how far it
    is from the file). ``accel prune`` retrains on the fit part only, so that the validation
    fifth its decisions are taken on is held out (the file was trained on all of the training
    split, so it would score 100 % there); the retrained network, not the file, is the parent.
    (Even on the same images torch reproduces the file bit for bit only with the CPU kernels it
    was trained with: tests/test_train.py, SHIPPED_CPU_CAPABILITY.)"""
    from accel.train import recipes
    from accel.train.common import Data

    # which networks qualify is accel.explore.prune.check_prunable's to say (it runs first)
    seed = int(network.metadata["train_seed"])
    with deterministic(seed):
        model = recipes.bnn_mlp_model(seed, Data(x, y, x, y, "training"))
    model.eval()
    retrained = to_network(model, network.name, network.metadata)
    differing = _differing_fraction(retrained, network)
    note = (f"bnn-mlp retrained by its recipe and seed {seed} on {len(y)} images "
            f"({100 * differing:.1f} % of its weight signs and thresholds differ from the "
            "file's); the reference accuracy and energy are the retrained network's")
    return model, retrained, note


def _differing_fraction(a: Network, b: Network) -> float:
    differ = total = 0
    for left, right in zip(a.layers, b.layers, strict=True):
        for attribute in ("weights", "thresholds"):
            mine, theirs = getattr(left, attribute, None), getattr(right, attribute, None)
            if mine is not None and theirs is not None:
                differ += int(np.count_nonzero(np.asarray(mine) != np.asarray(theirs)))
                total += np.asarray(mine).size
    return differ / max(total, 1)


@torch.no_grad()
def hidden_outputs(model: BinaryMLP, x: np.ndarray) -> list[np.ndarray]:
    """Each hidden layer's +-1 outputs on ``x`` (evaluation mode), float64 (n, width)."""
    from accel.train.models import INPUT_BITS_BNN, INPUT_SCALE_BNN, quantize_input

    model.eval()
    # a copy: torch.from_numpy warns on a read-only array (a memory-mapped dataset's)
    h = quantize_input(torch.from_numpy(np.array(x, dtype=np.float32)), INPUT_BITS_BNN,
                       INPUT_SCALE_BNN, signed=False)
    outputs = []
    for linear, norm in zip(model.linears, model.norms):
        h = norm(linear(h))
        outputs.append(h.numpy().astype(np.float64))
    return outputs


def incoming_l1(model: BinaryMLP, layer: int) -> np.ndarray:
    """Per neuron of hidden layer ``layer``, the L1 norm of its latent incoming weights (the
    structured magnitude criterion: Li et al., "Pruning filters for efficient ConvNets")."""
    return model.linears[layer].weight.detach().abs().sum(dim=1).numpy().astype(np.float64)


@torch.no_grad()
def without_neurons(model: BinaryMLP, layer: int, keep: np.ndarray,
                    removed_mean: np.ndarray | None = None) -> BinaryMLP:
    """A copy of ``model`` keeping only neurons ``keep`` of hidden layer ``layer``. With
    ``removed_mean`` (each neuron's mean output), the next layer's accumulators keep the removed
    neurons' mean contribution: a hidden next layer's batch-norm mean moves by it (the
    least-squares refit of its bias with the weights fixed); the output layer has no bias in
    FINN's form, so there it is dropped."""
    keep = np.sort(np.asarray(keep, dtype=np.int64))
    sizes = list(model.sizes)
    sizes[layer + 1] = len(keep)
    pruned = BinaryMLP(sizes)
    pruned.load_state_dict(_sliced_state(model, layer, keep))
    if removed_mean is not None and layer + 1 < len(model.norms):
        gone = np.setdiff1d(np.arange(model.sizes[layer + 1]), keep)
        weights = model.linears[layer + 1].binary_weight().numpy()[:, gone]
        shift = weights @ removed_mean[gone]
        pruned.norms[layer + 1].bn.running_mean -= torch.from_numpy(shift.astype(np.float32))
    pruned.eval()
    return pruned


def _sliced_state(model: BinaryMLP, layer: int, keep: np.ndarray) -> dict:
    index = torch.from_numpy(keep)
    state = {}
    for name, value in model.state_dict().items():
        if name.startswith(f"linears.{layer}."):
            value = value[index]
        elif name.startswith(f"linears.{layer + 1}."):
            value = value[:, index]
        elif name.startswith(f"norms.{layer}.") and value.dim() == 1:
            value = value[index]
        state[name] = value.clone()
    return state


def finetune(model: BinaryMLP, x: np.ndarray, y: np.ndarray, seed: int) -> BinaryMLP:
    """``model`` retrained (latent weights, batch-norm) on ``(x, y)``; deterministic."""
    r = FINETUNE_BINARY
    with deterministic(seed):
        fit(model, model.parameters(), x, y, epochs=r["epochs"], batch_size=r["batch_size"],
            lr=r["lr"], rng=phase_rng(seed, 300), after_step=model.clip)
    model.eval()
    return model


def to_network(model: BinaryMLP, name: str, metadata: dict) -> Network:
    network = binary_mlp_network(model, name)
    network.metadata = dict(metadata)
    return network
