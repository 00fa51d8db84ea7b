"""One function per reference model: train it with torch, convert it to the integer IR.

Every recipe takes ``(seed, data)`` and runs inside ``accel.train.common.deterministic(seed)``
(``accel.train.train`` sets that up), so the same seed gives the same network, bit for bit.
Hyper-parameters are module constants, recorded in each model's metadata; they were chosen on a
validation fifth of the training part (``digits_data(validation=True)``), never on the test
images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from accel.compress.prune import iterative_schedule, magnitude_mask
from accel.compress.quantize import to_fixed_point
from accel.compress.share import finetune_centroids, kmeans_codebook
from accel.nn.ir import Network
from accel.train.common import (Data, as_images, fit, phase_rng, power_of_two_scale,
                                torch_accuracy)
from accel.train.models import (MLP, BinaryCNV, BinaryMLP, BinaryWeightCNN, binary_cnv_network,
                                binary_mlp_network, binary_weight_cnn_network, float_mlp_network,
                                sparse_mlp_network)


@dataclass
class Trained:
    """A recipe's result: the converted network (metadata still to be completed by
    ``accel.train.train``), the torch model's accuracy on the evaluation images, and extra
    metadata (strings) describing the compression or the quantization."""

    network: Network
    torch_accuracy: float
    metadata: dict[str, str] = field(default_factory=dict)


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


# ------------------------------------------------------------------------------------------ mlp

MLP_RECIPE = {"sizes": [64, 256, 128, 10], "epochs": 80, "batch_size": 32, "lr": 5e-3,
              "weight_decay": 1e-4, "dropout": 0.3}


def _float_mlp(seed: int, data: Data) -> MLP:
    r = MLP_RECIPE
    model = MLP(r["sizes"], dropout=r["dropout"])
    fit(model, model.parameters(), data.x_train, data.y_train, epochs=r["epochs"],
        batch_size=r["batch_size"], lr=r["lr"], weight_decay=r["weight_decay"],
        rng=phase_rng(seed, 0))
    return model


def mlp(seed: int, data: Data) -> Trained:
    model = _float_mlp(seed, data)
    network = float_mlp_network(model, "mlp")
    return Trained(network, torch_accuracy(model, data.x_eval, data.y_eval),
                   {"recipe": _json(MLP_RECIPE)})


# ----------------------------------------------------------------------------------- mlp-sparse

SPARSE_RECIPE = {
    "sparsity": {"fc0": 0.92, "fc1": 0.92, "fc2": 0.75},  # final, per layer
    "prune_steps": 4, "prune_epochs": 15, "prune_lr": 1e-3, "prune_dropout": 0.1,
    "codebook_entries": 16, "share_epochs": 20, "centroid_lr": 1e-2, "bias_lr": 1e-3,
    "bits": 16, "input_scale": 2.0 ** -14,
}


def _masked(model: MLP, masks: list[torch.Tensor]):
    """after_backward / after_step hooks that keep pruned weights at zero."""
    def clear_gradients(_progress):
        for linear, mask in zip(model.linears, masks):
            linear.weight.grad.mul_(mask)

    def apply_masks():
        with torch.no_grad():
            for linear, mask in zip(model.linears, masks):
                linear.weight.mul_(mask)
    return clear_gradients, apply_masks


def _activation_scales(model: MLP, x: np.ndarray, bits: int) -> tuple[list[float], list[float]]:
    """Per hidden layer, the largest ReLU output over the training images and the power-of-two
    scale that fits it into a signed ``bits``-bit integer."""
    trace: list[torch.Tensor] = []
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(np.array(x, dtype=np.float32)), trace=trace)
    maxima = [float(t.max()) for t in trace]
    return maxima, [power_of_two_scale(m, (1 << (bits - 1)) - 1) for m in maxima]


def mlp_sparse(seed: int, data: Data) -> Trained:
    from accel.compress.report import CompressedLayer, compression_report

    r = SPARSE_RECIPE
    model = _float_mlp(seed, data)  # the mlp of the same seed, bit for bit
    names = [f"fc{i}" for i in range(len(model.linears))]
    stages = {"dense": torch_accuracy(model, data.x_eval, data.y_eval)}  # reported, not used
    model.dropout = r["prune_dropout"]

    # 1. iterative magnitude pruning with retraining (Deep Compression step 1)
    schedules = [iterative_schedule(r["sparsity"][name], r["prune_steps"]) for name in names]
    masks: list[torch.Tensor] = []
    for step in range(r["prune_steps"]):
        masks = [torch.from_numpy(magnitude_mask(linear.weight.detach().numpy(),
                                                 schedule[step]).astype(np.float32))
                 for linear, schedule in zip(model.linears, schedules)]
        clear_gradients, apply_masks = _masked(model, masks)
        apply_masks()
        fit(model, model.parameters(), data.x_train, data.y_train, epochs=r["prune_epochs"],
            batch_size=MLP_RECIPE["batch_size"], lr=r["prune_lr"], rng=phase_rng(seed, 1 + step),
            after_backward=clear_gradients, after_step=apply_masks)
    kept = [mask.numpy().astype(bool) for mask in masks]
    stages["pruned"] = torch_accuracy(model, data.x_eval, data.y_eval)

    # 2. 16-bit fixed-point activations: power-of-two scales from the training range
    bits = r["bits"]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    maxima, scales = _activation_scales(model, data.x_train, bits)
    model.in_quant = (r["input_scale"], lo, hi)
    model.act_quant = [(scale, lo, hi) for scale in scales]

    # 3. weight sharing: k-means with linear initialization, entry 0 = 0 for pruned weights,
    #    then centroid fine-tuning while retraining (Deep Compression step 2)
    codebooks, indices = [], []
    for linear, mask in zip(model.linears, kept):
        codebook, index = kmeans_codebook(linear.weight.detach().numpy(), mask,
                                          clusters=r["codebook_entries"], zero_entry=True,
                                          seed=seed)
        codebooks.append(codebook)
        indices.append(index)

    def shared_weights():
        with torch.no_grad():
            for linear, codebook, index in zip(model.linears, codebooks, indices):
                linear.weight.copy_(torch.from_numpy(codebook[index]).to(torch.float32))

    def update_centroids(progress):
        lr = r["centroid_lr"] * 0.5 * (1.0 + np.cos(np.pi * progress))
        for number, linear in enumerate(model.linears):
            codebooks[number] = finetune_centroids(codebooks[number], indices[number],
                                                   linear.weight.grad.numpy(), lr)
            linear.weight.grad = None

    shared_weights()
    biases = [linear.bias for linear in model.linears]
    fit(model, biases, data.x_train, data.y_train, epochs=r["share_epochs"],
        batch_size=MLP_RECIPE["batch_size"], lr=r["bias_lr"], rng=phase_rng(seed, 100),
        after_backward=update_centroids, after_step=shared_weights)

    # 4. codebooks as 16-bit fixed point, one power-of-two scale per layer
    frac_bits, int_codebooks = [], []
    for codebook in codebooks:
        largest = float(np.abs(codebook).max())
        frac = int(np.floor(np.log2(hi / largest)))
        frac_bits.append(frac)
        int_codebooks.append(to_fixed_point(codebook, bits, frac))
    network = sparse_mlp_network(model, "mlp-sparse", int_codebooks, indices, frac_bits, bits)
    stages["pruned_shared_16bit"] = torch_accuracy(model, data.x_eval, data.y_eval)

    total = sum(index.size for index in indices)
    zeros = sum(int(np.count_nonzero(index == 0)) for index in indices)
    report = compression_report([CompressedLayer(name, index.shape, index,
                                                 r["codebook_entries"], 4)
                                 for name, index in zip(names, indices)])
    metadata = {
        "recipe": _json(r),
        "parent": "mlp trained with the same seed (its recipe: " + _json(MLP_RECIPE) + ")",
        "sparsity": f"{zeros / total:.6f}",
        "sparsity_per_layer": _json({name: round(float(np.mean(index == 0)), 6)
                                     for name, index in zip(names, indices)}),
        "codebooks": _json({name: {"frac_bits": frac, "values": codebook.tolist()}
                            for name, frac, codebook in zip(names, frac_bits, int_codebooks)}),
        "codebook_format": "per layer: 16 entries, signed 16-bit integers of 2**-frac_bits; "
                           "entry 0 = 0 is the pruned weight; weight = values[index]",
        "activation_format": f"signed {bits}-bit; input scale 2**{int(np.log2(r['input_scale']))}; "
                             "after each hidden ReLU a Quant (ROUND) whose power-of-two scale "
                             "fits the largest ReLU output seen on the training images",
        "activation_scales": _json({f"quant{i}": f"2**{int(np.log2(s))}"
                                    for i, s in enumerate(scales)}),
        "activation_max_train": _json({f"relu{i}": round(m, 4) for i, m in enumerate(maxima)}),
        "torch_accuracy_stages": _json({k: round(v, 6) for k, v in stages.items()}),
        "deep_compression": f"{report.compressed_bytes} bytes (4-bit weights, 4-bit relative "
                            f"indices, float codebooks), {report.ratio:.1f}x smaller than dense "
                            f"float32; {report.huffman_ratio:.1f}x with Huffman coding",
    }
    return Trained(network, torch_accuracy(model, data.x_eval, data.y_eval), metadata)


# ------------------------------------------------------------------- fine-tuning a pruned mlp

# The settings of one of mlp-sparse's prune-and-retrain rounds (SPARSE_RECIPE)
FINETUNE_RECIPE = {"epochs": SPARSE_RECIPE["prune_epochs"], "lr": SPARSE_RECIPE["prune_lr"],
                   "dropout": SPARSE_RECIPE["prune_dropout"],
                   "batch_size": MLP_RECIPE["batch_size"]}


def finetune_pruned(network: Network, x: np.ndarray, y: np.ndarray, seed: int) -> Network:
    """A float chain of dense layers with ReLU between them, retrained on ``(x, y)`` with its
    zero weights held at zero (the global fine-tuning after energy-aware or magnitude pruning)."""
    dense = [layer for layer in network.layers if layer.op == "dense"]
    sizes = [dense[0].weights.shape[1]] + [layer.weights.shape[0] for layer in dense]
    r = FINETUNE_RECIPE
    model = MLP(sizes, dropout=r["dropout"])
    with torch.no_grad():
        for linear, layer in zip(model.linears, dense):
            linear.weight.copy_(torch.from_numpy(np.asarray(layer.weights, dtype=np.float32)))
            bias = layer.bias if layer.bias is not None else np.zeros(len(layer.weights))
            linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    masks = [torch.from_numpy((np.asarray(layer.weights) != 0).astype(np.float32))
             for layer in dense]
    clear_gradients, apply_masks = _masked(model, masks)
    fit(model, model.parameters(), x, y, epochs=r["epochs"], batch_size=r["batch_size"],
        lr=r["lr"], rng=phase_rng(seed, 200), after_backward=clear_gradients,
        after_step=apply_masks)
    tuned = float_mlp_network(model, network.name)
    tuned.metadata = dict(network.metadata)
    return tuned


# ------------------------------------------------------------------------------------- bnn-mlp

BNN_MLP_RECIPE = {"sizes": [64, 128, 128, 10], "epochs": 100, "batch_size": 64, "lr": 1e-2}


def _thresholds_metadata(network: Network) -> dict[str, str]:
    from accel.nn.ir import MultiThreshold

    return {"thresholds": "batch-norm + sign folded into one integer threshold per channel "
                          "(out = +1 where accumulator >= threshold, else -1); channels with a "
                          "negative batch-norm gain have their weights negated",
            "threshold_layers": _json({layer.name: layer.thresholds.shape[0]
                                       for layer in network.layers
                                       if isinstance(layer, MultiThreshold)})}


def bnn_mlp_model(seed: int, data: Data) -> BinaryMLP:
    """The trained torch model of bnn-mlp (latent weights, batch-norm statistics)."""
    r = BNN_MLP_RECIPE
    model = BinaryMLP(r["sizes"])
    fit(model, model.parameters(), data.x_train, data.y_train, epochs=r["epochs"],
        batch_size=r["batch_size"], lr=r["lr"], rng=phase_rng(seed, 0), after_step=model.clip)
    return model


def bnn_mlp(seed: int, data: Data) -> Trained:
    r = BNN_MLP_RECIPE
    model = bnn_mlp_model(seed, data)
    network = binary_mlp_network(model, "bnn-mlp")
    return Trained(network, torch_accuracy(model, data.x_eval, data.y_eval),
                   {"recipe": _json(r), **_thresholds_metadata(network)})


# ------------------------------------------------------------------------------------- bnn-cnv

BNN_CNV_RECIPE = {"channels": [32, 32], "hidden": 128, "epochs": 60, "batch_size": 64,
                  "lr": 1e-2}


def bnn_cnv(seed: int, data: Data) -> Trained:
    r = BNN_CNV_RECIPE
    model = BinaryCNV(r["channels"], r["hidden"])
    fit(model, model.parameters(), as_images(data.x_train), data.y_train, epochs=r["epochs"],
        batch_size=r["batch_size"], lr=r["lr"], rng=phase_rng(seed, 0), after_step=model.clip)
    network = binary_cnv_network(model, "bnn-cnv")
    return Trained(network, torch_accuracy(model, as_images(data.x_eval), data.y_eval),
                   {"recipe": _json(r), **_thresholds_metadata(network)})


# ------------------------------------------------------------------------------------- bwn-cnn

BWN_CNN_RECIPE = {"channels": [32, 32, 64], "epochs": 60, "batch_size": 64, "lr": 3e-3,
                  "quant_epochs": 10, "quant_lr": 1e-3, "bits": 12}


def bwn_cnn(seed: int, data: Data) -> Trained:
    r = BWN_CNN_RECIPE
    model = BinaryWeightCNN(r["channels"])
    x_train = as_images(data.x_train)
    fit(model, model.parameters(), x_train, data.y_train, epochs=r["epochs"],
        batch_size=r["batch_size"], lr=r["lr"], rng=phase_rng(seed, 0), after_step=model.clip)
    x_eval = as_images(data.x_eval)
    stages = {"float_activations": torch_accuracy(model, x_eval, data.y_eval)}  # reported only
    # 12-bit activations: power-of-two scales from the training range, then a short
    # quantization-aware fine-tuning with those scales fixed
    trace: list[torch.Tensor] = []
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(np.array(x_train)), trace=trace)
    bits = r["bits"]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    maxima = [float(t.max()) for t in trace]
    scales = [power_of_two_scale(m, hi) for m in maxima]
    model.act_quant = [(scale, lo, hi) for scale in scales]
    fit(model, model.parameters(), x_train, data.y_train, epochs=r["quant_epochs"],
        batch_size=r["batch_size"], lr=r["quant_lr"], rng=phase_rng(seed, 1),
        after_step=model.clip)
    network = binary_weight_cnn_network(model, "bwn-cnn")
    stages["12bit_activations"] = torch_accuracy(model, x_eval, data.y_eval)
    metadata = {
        "recipe": _json(r),
        "activation_format": f"signed {bits}-bit; input scale 2**-10; after each ReLU a Quant "
                             "(ROUND) whose power-of-two scale fits the largest ReLU output "
                             "seen on the training images (before fine-tuning)",
        "activation_scales": _json({f"quant{i}": f"2**{int(np.log2(s))}"
                                    for i, s in enumerate(scales)}),
        "activation_max_train": _json({f"relu{i}": round(m, 4) for i, m in enumerate(maxima)}),
        "weight_scales": _json({layer.name: f"2**{int(np.log2(layer.weight_type.scale))}"
                                for layer in network.layers if hasattr(layer, "weight_type")}),
        "bias_format": "integers in units of (input scale x weight scale) of each layer",
        "torch_accuracy_stages": _json({k: round(v, 6) for k, v in stages.items()}),
    }
    return Trained(network, stages["12bit_activations"], metadata)
