"""Train five small Brevitas networks on the digits split and export each to QONNX.

They reproduce export formats that Brevitas produces for ordinary models: a float bias before
an activation quantizer, data-path reshapes, per-output-channel weight scales, XNOR-Net style
binary weights with a per-filter scale, and the FINN TFC w1a1 family (binary input quantizer).
The exported files are committed under tests/data/ (brevitas_<name>.onnx): tests read them
without Brevitas. tests/data/brevitas_exports.json records each file's input preprocessing,
input shape ("from_digits_split": the same preprocessing on digits_split()'s values s), the
test-split accuracy Brevitas itself measured, and the versions that exported it.

Inputs. ``digits_split()`` returns pixels divided by 16 (floats in [0, 1]); these networks take
the raw pixel counts instead:
  - float_bias, reshape_cnn, per_channel, xnor_cnn: ``x`` = the raw pixels 0..16 as float,
    i.e. ``16 * digits_split().x_test`` (xnor_cnn reshaped to (N, 1, 8, 8));
  - w1a1_tfc: ``2*x/16 - 1`` (= ``2 * digits_split().x_test - 1``, in [-1, 1]): that
    preprocessed float is what a user feeds; it is not part of the graph, which starts with the
    input's BipolarQuant (FINN's TFC does ``2x - 1`` inside its forward; here it is outside).

Environment used for the committed files: brevitas 0.13.0, torch 2.12.1 (brevitas 0.13.0
requires setuptools<70 and torch 2.13.0 setuptools>=77.0.3, so pip resolves torch 2.12.1),
onnx 1.23.2; Brevitas's export also needs onnxoptimizer. The exported files are reproducible
byte for byte (seeded, deterministic algorithms).

Run (in an environment with brevitas, onnxoptimizer, torch, scikit-learn and accel installed):
    python tools/make_brevitas_exports.py [--out-dir tests/data] [--predictions-dir DIR]
--predictions-dir writes <name>_predictions.npy and <name>_outputs.npy (Brevitas's test-split
argmax and outputs) for checks against other executors.
"""

import argparse
import json
from pathlib import Path

import brevitas
import numpy as np
import onnx
import torch
from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.stats import StatsOp
from brevitas.export import export_qonnx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.solver import WeightQuantSolver
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from torch import nn

from accel.nn.data import DIGITS_PIXEL_MAX, digits_split

SEED = 0


class SignedBinaryWeightPerChannelAbsAve(WeightQuantSolver):
    """XNOR-Net weights: sign(W) times a per-filter alpha = mean |W| over the filter.

    Exported as a BipolarQuant whose scale has one entry per output channel.
    """
    quant_type = QuantType.BINARY
    bit_width = 1
    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_channel = True
    restrict_scaling_type = RestrictValueType.FP
    narrow_range = True
    signed = True


def float_bias():
    return nn.Sequential(
        QuantIdentity(bit_width=8, signed=False, return_quant_tensor=True),
        # Brevitas's default bias: bias=True, bias_quant=None, so the bias stays float
        QuantLinear(64, 32, bias=True, weight_bit_width=4),
        QuantReLU(bit_width=4, return_quant_tensor=True),
        QuantLinear(32, 10, bias=False, weight_bit_width=4),
    )


class ReshapeCnn(nn.Module):
    """Flat (N, 64) input, reshaped to (N, 1, 8, 8) after the input quantizer."""

    def __init__(self):
        super().__init__()
        self.quant_input = QuantIdentity(bit_width=8, signed=False)
        self.conv = QuantConv2d(1, 8, 3, padding=1, bias=False, weight_bit_width=2)
        self.bn = nn.BatchNorm2d(8)
        self.relu = QuantReLU(bit_width=2)
        self.pool = nn.MaxPool2d(2)
        self.fc = QuantLinear(8 * 4 * 4, 10, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.quant_input(x).view(-1, 1, 8, 8)
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(x.flatten(1))


def per_channel():
    return nn.Sequential(
        QuantIdentity(bit_width=8, signed=False, return_quant_tensor=True),
        QuantLinear(64, 32, bias=False, weight_bit_width=4,
                    weight_scaling_per_output_channel=True),
        nn.BatchNorm1d(32),
        QuantReLU(bit_width=4, return_quant_tensor=True),
        QuantLinear(32, 10, bias=False, weight_bit_width=4,
                    weight_scaling_per_output_channel=True),
    )


def xnor_cnn():
    binary = SignedBinaryWeightPerChannelAbsAve
    return nn.Sequential(
        QuantIdentity(bit_width=8, signed=False),
        QuantConv2d(1, 16, 3, padding=1, bias=False, weight_quant=binary),
        nn.BatchNorm2d(16),
        QuantReLU(bit_width=4),
        QuantConv2d(16, 16, 3, bias=False, weight_quant=binary),  # 8x8 -> 6x6
        nn.BatchNorm2d(16),
        QuantReLU(bit_width=4),
        nn.MaxPool2d(2),  # -> 3x3
        nn.Flatten(),
        QuantLinear(16 * 3 * 3, 10, bias=False, weight_quant=binary),
    )


def w1a1_tfc():
    """FINN's TFC (brevitas_examples.bnn_pynq FC) with w1a1 and 64 hidden, without dropout and
    the final TensorNorm; the input quantizer is binary (IN_BIT_WIDTH 1)."""
    layers = [QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
    features = 64
    for _ in range(3):
        layers += [QuantLinear(features, 64, bias=False, weight_quant=CommonWeightQuant,
                               weight_bit_width=1),
                   nn.BatchNorm1d(64),
                   QuantIdentity(act_quant=CommonActQuant, bit_width=1)]
    layers.append(QuantLinear(64, 10, bias=False, weight_quant=CommonWeightQuant,
                              weight_bit_width=1))
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, QuantLinear):
            nn.init.uniform_(module.weight.data, -1, 1)  # as FINN's FC does
    return model


def raw_pixels(x):
    return x * DIGITS_PIXEL_MAX


def bipolar_pixels(x):
    return 2 * raw_pixels(x) / DIGITS_PIXEL_MAX - 1


# the same preprocessing written on digits_split()'s values s = x / 16
FROM_DIGITS_SPLIT = {"x": "16*s", "2*x/16-1": "2*s-1"}

# name: (builder, preprocessing name, preprocessing, input shape, epochs, learning rate)
NETWORKS = {
    "float_bias": (float_bias, "x", raw_pixels, (1, 64), 15, 1e-2),
    "reshape_cnn": (ReshapeCnn, "x", raw_pixels, (1, 64), 30, 1e-2),
    "per_channel": (per_channel, "x", raw_pixels, (1, 64), 15, 1e-2),
    "xnor_cnn": (xnor_cnn, "x", raw_pixels, (1, 1, 8, 8), 15, 1e-2),
    "w1a1_tfc": (w1a1_tfc, "2*x/16-1", bipolar_pixels, (1, 64), 30, 1e-2),
}


def train(model, x, y, epochs, lr, clip=False):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            if clip:  # FINN's bnn_pynq trainer keeps binary latent weights in [-1, 1]
                for module in model.modules():
                    if isinstance(module, QuantLinear):
                        module.weight.data.clamp_(-1, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", default="tests/data")
    parser.add_argument("--predictions-dir", default=None)
    parser.add_argument("--only", nargs="*", choices=sorted(NETWORKS), default=None)
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    out_dir = Path(args.out_dir)
    split = digits_split()
    summary_path = out_dir / "brevitas_exports.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.only or NETWORKS:
        builder, preprocessing, prepare, shape, epochs, lr = NETWORKS[name]
        torch.manual_seed(SEED)
        np.random.seed(SEED)
        x_train = torch.tensor(prepare(split.x_train)).reshape(-1, *shape[1:])
        x_test = torch.tensor(prepare(split.x_test)).reshape(-1, *shape[1:])
        model = builder()
        train(model, x_train, torch.tensor(split.y_train), epochs, lr, clip=name == "w1a1_tfc")
        model.eval()
        with torch.no_grad():
            outputs = model(x_test).numpy()
        predictions = outputs.argmax(1)
        accuracy = float((predictions == split.y_test).mean())
        print(f"{name}: brevitas test accuracy {accuracy:.4f}")
        path = out_dir / f"brevitas_{name}.onnx"
        # external_data=False: torch writes no .data file (Brevitas re-saves the model with the
        # weights inside the .onnx file either way)
        export_qonnx(model, input_t=torch.zeros(shape), export_path=str(path),
                     external_data=False)
        print(f"wrote {path}")
        if args.predictions_dir:
            np.save(Path(args.predictions_dir) / f"{name}_predictions.npy", predictions)
            np.save(Path(args.predictions_dir) / f"{name}_outputs.npy", outputs)
        summary[path.name] = {
            "preprocessing": preprocessing,
            "from_digits_split": FROM_DIGITS_SPLIT[preprocessing],
            "input_shape": list(shape),
            "brevitas_test_accuracy": round(accuracy, 6),
            "exported_with": {"brevitas": brevitas.__version__, "torch": torch.__version__,
                              "onnx": onnx.__version__},
        }
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"wrote {summary_path}")


if __name__ == "__main__":
    main()
