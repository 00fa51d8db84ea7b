"""Train a small binarized MLP with Brevitas on the digits split and export it to QONNX.

The exported file, tests/data/brevitas_bnn.onnx, is committed: tests read it without Brevitas.
Run (in an environment with brevitas, torch and accel installed):
    python tools/make_brevitas_model.py [--out tests/data/brevitas_bnn.onnx]
"""

import argparse

import numpy as np
import torch
from brevitas.core.quant import QuantType
from brevitas.export import export_qonnx
from brevitas.nn import QuantIdentity, QuantLinear
from torch import nn

from accel.nn.data import digits_split
from make_brevitas_exports import train  # the one training loop (same directory: tools/)

SEED = 0
HIDDEN = 64


def build():
    return nn.Sequential(
        # 8-bit unsigned input, scale learned by Brevitas (a float, not a power of two)
        QuantIdentity(bit_width=8, signed=False, return_quant_tensor=True),
        QuantLinear(64, HIDDEN, bias=False, weight_quant_type=QuantType.BINARY,
                    weight_bit_width=1),
        nn.BatchNorm1d(HIDDEN),
        QuantIdentity(quant_type=QuantType.BINARY, bit_width=1, return_quant_tensor=True),
        QuantLinear(HIDDEN, HIDDEN, bias=False, weight_quant_type=QuantType.BINARY,
                    weight_bit_width=1),
        nn.BatchNorm1d(HIDDEN),
        QuantIdentity(quant_type=QuantType.BINARY, bit_width=1, return_quant_tensor=True),
        QuantLinear(HIDDEN, 10, bias=False, weight_quant_type=QuantType.BINARY,
                    weight_bit_width=1),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tests/data/brevitas_bnn.onnx")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    split = digits_split()
    x = torch.tensor(split.x_train)
    y = torch.tensor(split.y_train)
    model = build()
    train(model, x, y, args.epochs, 1e-2)
    model.eval()
    with torch.no_grad():
        predictions = model(torch.tensor(split.x_test)).argmax(1).numpy()
    accuracy = float((predictions == split.y_test).mean())
    print(f"brevitas test accuracy: {accuracy:.4f}")
    export_qonnx(model, input_t=torch.zeros(1, 64), export_path=args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
