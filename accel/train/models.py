"""The torch models of the reference networks and their conversion to accel's integer IR.

Conventions shared by every conversion:

- The network input is float32 (pixels in [0, 1]); a first ``Quant`` layer turns it into integers,
  except in the float mlp.
- Scales are powers of two, so that every requantization is a shift in hardware.
- A torch model's evaluation (``model.eval()``) computes what the converted network computes:
  quantizers are QONNX's (round half to even), binary weights are signs, and batch-norm + sign
  is folded into integer thresholds found by evaluating the model's own float32 batch-norm
  expression on every accumulator value (no algebra that float32 could disagree with).
  For the binarized models and the binary-weight CNN the torch evaluation is exact (all sums are
  integers below 2**24 in units of their scale), so torch and the golden model agree image for
  image; for the float and 16-bit models they differ only by float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from accel.nn.ir import (Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold, Network,
                         Quant, Relu)
from accel.train.common import fake_quant, sign_ste

DIGITS_FEATURES = 64
DIGITS_CLASSES = 10


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def float32_exact_ints(ints: np.ndarray) -> np.ndarray:
    """Integers moved to the nearest value with at most 24 significant bits, so that
    ``int * power_of_two_scale`` is exact in float32, the type of the QONNX file's initializers
    (a bias stored there then reads back as the very same integer)."""
    return np.asarray(ints, dtype=np.float64).astype(np.float32).astype(np.int64)


# ---------------------------------------------------------------------------------- float MLP

class MLP(nn.Module):
    """Dense layers with ReLU between them. Optional QONNX quantizers (``in_quant``,
    ``act_quant[i]`` after hidden layer i's ReLU, each ``(scale, lo, hi)``) and fixed weights
    (``set_weights``) turn it into the fixed-point model of mlp-sparse."""

    def __init__(self, sizes=(DIGITS_FEATURES, 256, 128, DIGITS_CLASSES), dropout: float = 0.0):
        super().__init__()
        self.sizes = tuple(sizes)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout
        self.in_quant: tuple[float, int, int] | None = None
        self.act_quant: list[tuple[float, int, int]] | None = None

    def forward(self, x, trace: list | None = None):
        if self.in_quant is not None:
            x = fake_quant(x, *self.in_quant)
        last = len(self.linears) - 1
        for index, linear in enumerate(self.linears):
            x = linear(x)
            if index < last:
                x = F.relu(x)
                if trace is not None:
                    trace.append(x.detach())
                if self.act_quant is not None:
                    x = fake_quant(x, *self.act_quant[index])
                if self.dropout and self.training:
                    x = F.dropout(x, self.dropout)
        return x


def float_mlp_network(model: MLP, name: str) -> Network:
    layers = []
    last = len(model.linears) - 1
    for index, linear in enumerate(model.linears):
        layers.append(Dense(f"fc{index}", weights=_numpy(linear.weight),
                            weight_type=DataType.float32(), bias=_numpy(linear.bias)))
        if index < last:
            layers.append(Relu(f"relu{index}"))
    return Network(name, (1, model.sizes[0]), layers)


def sparse_mlp_network(model: MLP, name: str, codebooks: list[np.ndarray],
                       indices: list[np.ndarray], weight_frac_bits: list[int],
                       bits: int = 16) -> Network:
    """The fixed-point mlp-sparse: ``codebooks[i]`` are integers of 2**-weight_frac_bits[i],
    weights are ``codebooks[i][indices[i]]``; biases are rounded to the product scale."""
    in_scale, _, _ = model.in_quant
    layers = [Quant("quant_in", bits=bits, signed=True, scale=in_scale, rounding="ROUND")]
    scale = in_scale
    last = len(model.linears) - 1
    for index, linear in enumerate(model.linears):
        weight_type = DataType(bits, True, 2.0 ** -weight_frac_bits[index])
        weights = codebooks[index][indices[index]]
        with torch.no_grad():  # torch evaluates the exported weights too
            linear.weight.copy_(torch.from_numpy(weights * weight_type.scale).to(torch.float32))
        bias = round_bias(linear, scale * weight_type.scale)
        layers.append(Dense(f"fc{index}", weights=weights, weight_type=weight_type, bias=bias))
        if index < last:
            act_scale = model.act_quant[index][0]
            layers += [Relu(f"relu{index}"),
                       Quant(f"quant{index}", bits=bits, signed=True, scale=act_scale,
                             rounding="ROUND")]
            scale = act_scale
    return Network(name, (1, model.sizes[0]), layers)


# ------------------------------------------------------------------------- binarized layers

class BinaryLinear(nn.Module):
    """Dense layer with bipolar weights sign(latent) times a fixed power-of-two ``scale``;
    latent float weights are trained through the straight-through sign and clipped to [-1, 1]."""

    def __init__(self, inputs: int, outputs: int, bias: bool = False, scale: float = 1.0):
        super().__init__()
        bound = 1.0 / math.sqrt(inputs)
        self.weight = nn.Parameter(torch.empty(outputs, inputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(outputs)) if bias else None
        self.scale = scale

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.weight) * self.scale

    def forward(self, x):
        return F.linear(x, self.binary_weight(), self.bias)

    def clip(self):
        with torch.no_grad():
            self.weight.clamp_(-1.0, 1.0)

    def signs(self) -> np.ndarray:
        return np.where(_numpy(self.weight) >= 0, 1, -1).astype(np.int64)


class BinaryConv2d(BinaryLinear):
    """Square convolution with bipolar weights (see BinaryLinear)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, padding: int = 0,
                 bias: bool = False, scale: float = 1.0):
        super().__init__(in_channels * kernel * kernel, out_channels, bias, scale)
        self.weight = nn.Parameter(self.weight.detach().reshape(
            out_channels, in_channels, kernel, kernel).contiguous())
        self.padding = padding

    def forward(self, x):
        return F.conv2d(x, self.binary_weight(), self.bias, padding=self.padding)


class BatchNormSign(nn.Module):
    """Batch-norm followed by sign (+1 for >= 0). Training uses torch's batch-norm on batch
    statistics and the straight-through sign; evaluation uses ``affine`` on running statistics,
    a fixed sequence of elementwise float32 operations whose results do not depend on the
    tensor's layout, which is what ``fold_thresholds`` evaluates."""

    def __init__(self, channels: int, spatial: bool, momentum: float = 0.1):
        super().__init__()
        self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(channels, momentum=momentum)

    def affine(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        shape = (1, -1) + (1,) * (x.dim() - 2)
        gain = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return (x - bn.running_mean.view(shape)) * gain.view(shape) + bn.bias.view(shape)

    def forward(self, x):
        if self.training:
            return sign_ste(self.bn(x))
        y = self.affine(x)
        return torch.where(y >= 0, torch.ones_like(y), -torch.ones_like(y))


@torch.no_grad()
def fold_thresholds(norm: BatchNormSign, bound: int, acc_scale: float):
    """One integer threshold per channel for ``sign(batchnorm(acc * acc_scale)) == +1``, over
    the accumulator integers ``-bound..bound``, and which channels' weights must be negated.

    The expression is evaluated on every integer of the range, so the thresholds agree with the
    float32 model on every input. A rising channel gets ``T`` = its first +1 (out = acc >= T); a
    falling channel (negative batch-norm gain) gets its weights negated and ``T = -last +1``,
    since acc <= v  <=>  -acc >= -v. A constant channel gets ``-bound`` (always +1) or
    ``bound + 1`` (never).
    """
    ints = torch.arange(-bound, bound + 1, dtype=torch.float64)
    values = (ints * acc_scale).to(torch.float32)
    assert torch.equal(values.to(torch.float64) / acc_scale, ints), "accumulator not exact"
    channels = norm.bn.num_features
    positive = (norm.affine(values[:, None].expand(-1, channels).contiguous()) >= 0).numpy()
    thresholds = np.empty(channels, dtype=np.int64)
    flip = np.zeros(channels, dtype=bool)
    for channel in range(channels):
        column = positive[:, channel]
        first = int(np.argmax(column))
        last = column.size - 1 - int(np.argmax(column[::-1]))
        if column.all():
            thresholds[channel] = -bound
        elif not column.any():
            thresholds[channel] = bound + 1
        elif column[first:].all():
            thresholds[channel] = first - bound
        elif column[:last + 1].all():
            flip[channel] = True
            thresholds[channel] = -(last - bound)
        else:  # an affine float32 map is monotonic; this is a bug, not a user error
            raise AssertionError(f"channel {channel}: batch-norm + sign is not monotonic")
    return thresholds[:, None], flip


def _bipolar_threshold(name: str, thresholds: np.ndarray) -> MultiThreshold:
    return MultiThreshold(name, thresholds=thresholds, out_scale=2.0, out_bias=-1.0)


def _flipped(signs: np.ndarray, flip: np.ndarray) -> np.ndarray:
    factor = np.where(flip, -1, 1).reshape((-1,) + (1,) * (signs.ndim - 1))
    return signs * factor


# -------------------------------------------------------------------------------- bnn-mlp

INPUT_BITS_BNN = 8
INPUT_SCALE_BNN = 2.0 ** -8  # pixels in [0, 1]; 1.0 saturates to 255/256


def quantize_input(x: torch.Tensor, bits: int, scale: float, signed: bool) -> torch.Tensor:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return fake_quant(x, scale, lo, hi)


class BinaryMLP(nn.Module):
    """FINN-style binarized MLP: 8-bit input; (bipolar dense -> batch-norm -> sign) per hidden
    layer; a bipolar dense output layer whose integer accumulators are the class scores (a fixed
    positive factor sets the softmax temperature in training and does not change the argmax)."""

    def __init__(self, sizes=(DIGITS_FEATURES, 128, 128, DIGITS_CLASSES)):
        super().__init__()
        self.sizes = tuple(sizes)
        self.linears = nn.ModuleList(BinaryLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.norms = nn.ModuleList(BatchNormSign(b, spatial=False) for b in sizes[1:-1])
        self.temperature = 1.0 / math.sqrt(sizes[-2])

    def forward(self, x):
        x = quantize_input(x, INPUT_BITS_BNN, INPUT_SCALE_BNN, signed=False)
        for linear, norm in zip(self.linears, self.norms):
            x = norm(linear(x))
        return self.linears[-1](x) * self.temperature

    def clip(self):
        for linear in self.linears:
            linear.clip()


def binary_mlp_network(model: BinaryMLP, name: str) -> Network:
    layers = [Quant("quant_in", bits=INPUT_BITS_BNN, signed=False, scale=INPUT_SCALE_BNN)]
    in_max, in_scale = (1 << INPUT_BITS_BNN) - 1, INPUT_SCALE_BNN
    for index, (linear, norm) in enumerate(zip(model.linears, model.norms)):
        signs = linear.signs()
        thresholds, flip = fold_thresholds(norm, signs.shape[1] * in_max, in_scale)
        layers += [Dense(f"fc{index}", weights=_flipped(signs, flip),
                         weight_type=DataType.bipolar_type()),
                   _bipolar_threshold(f"sign{index}", thresholds)]
        in_max, in_scale = 1, 1.0
    index = len(model.linears) - 1
    layers.append(Dense(f"fc{index}", weights=model.linears[-1].signs(),
                        weight_type=DataType.bipolar_type()))
    return Network(name, (1, model.sizes[0]), layers)


# -------------------------------------------------------------------------------- bnn-cnv

class BinaryCNV(nn.Module):
    """FINN-style binarized CNN on 1x8x8: 8-bit input; conv3x3 (valid) -> BN -> sign twice
    (8x8 -> 6x6 -> 4x4); max-pool 2 (4x4 -> 2x2; on bipolar values an OR); flatten; dense ->
    BN -> sign; dense output (raw integer scores)."""

    def __init__(self, channels=(32, 32), hidden: int = 128):
        super().__init__()
        self.channels, self.hidden = tuple(channels), hidden
        c0, c1 = channels
        self.convs = nn.ModuleList([BinaryConv2d(1, c0, 3), BinaryConv2d(c0, c1, 3)])
        self.conv_norms = nn.ModuleList([BatchNormSign(c0, True), BatchNormSign(c1, True)])
        self.fc = BinaryLinear(c1 * 2 * 2, hidden)
        self.fc_norm = BatchNormSign(hidden, False)
        self.out = BinaryLinear(hidden, DIGITS_CLASSES)
        self.temperature = 1.0 / math.sqrt(hidden)

    def forward(self, x):
        x = quantize_input(x, INPUT_BITS_BNN, INPUT_SCALE_BNN, signed=False)
        for conv, norm in zip(self.convs, self.conv_norms):
            x = norm(conv(x))
        x = F.max_pool2d(x, 2).flatten(1)
        x = self.fc_norm(self.fc(x))
        return self.out(x) * self.temperature

    def clip(self):
        for layer in (*self.convs, self.fc, self.out):
            layer.clip()


def binary_cnv_network(model: BinaryCNV, name: str) -> Network:
    layers = [Quant("quant_in", bits=INPUT_BITS_BNN, signed=False, scale=INPUT_SCALE_BNN)]
    in_max, in_scale = (1 << INPUT_BITS_BNN) - 1, INPUT_SCALE_BNN
    for index, (conv, norm) in enumerate(zip(model.convs, model.conv_norms)):
        signs = conv.signs()
        fan_in = int(np.prod(signs.shape[1:]))
        thresholds, flip = fold_thresholds(norm, fan_in * in_max, in_scale)
        layers += [Conv2d(f"conv{index}", weights=_flipped(signs, flip),
                          weight_type=DataType.bipolar_type()),
                   _bipolar_threshold(f"sign{index}", thresholds)]
        in_max, in_scale = 1, 1.0
    layers += [MaxPool2d("pool", kernel=2), Flatten("flatten")]
    signs = model.fc.signs()
    thresholds, flip = fold_thresholds(model.fc_norm, signs.shape[1], 1.0)
    layers += [Dense("fc0", weights=_flipped(signs, flip), weight_type=DataType.bipolar_type()),
               _bipolar_threshold("sign_fc0", thresholds),
               Dense("fc1", weights=model.out.signs(), weight_type=DataType.bipolar_type())]
    return Network(name, (1, 1, 8, 8), layers)


# -------------------------------------------------------------------------------- bwn-cnn

ACT_BITS_BWN = 12
INPUT_SCALE_BWN = 2.0 ** -10  # signed 12-bit: pixels k/16 in [0, 1] are exact


def weight_scale_for(fan_in: int) -> float:
    """A power of two near 1/sqrt(fan_in): keeps a binary-weight layer's outputs near unit size
    without batch-norm (the scale is bookkeeping; hardware sees +-1)."""
    return 2.0 ** -round(math.log2(math.sqrt(fan_in)))


class BinaryWeightCNN(nn.Module):
    """YodaNN-style: 12-bit signed input; three conv3x3 (padding 1) with bipolar weights, bias,
    ReLU and a 12-bit requantizer, max-pool 2 after the second and third; a bipolar dense output
    layer with bias. ``act_quant`` (per conv, ``(scale, lo, hi)``) is None until calibrated."""

    def __init__(self, channels=(32, 32, 64)):
        super().__init__()
        self.channels = tuple(channels)
        ins = (1, *channels[:-1])
        self.convs = nn.ModuleList(
            BinaryConv2d(a, b, 3, padding=1, bias=True, scale=weight_scale_for(9 * a))
            for a, b in zip(ins, channels))
        features = channels[-1] * 2 * 2
        self.out = BinaryLinear(features, DIGITS_CLASSES, bias=True,
                                scale=weight_scale_for(features))
        self.act_quant: list[tuple[float, int, int]] | None = None

    def forward(self, x, trace: list | None = None):
        x = quantize_input(x, ACT_BITS_BWN, INPUT_SCALE_BWN, signed=True)
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if trace is not None:
                trace.append(x.detach())
            if self.act_quant is not None:
                x = fake_quant(x, *self.act_quant[index])
            if index >= 1:
                x = F.max_pool2d(x, 2)
        return self.out(x.flatten(1))

    def clip(self):
        for layer in (*self.convs, self.out):
            layer.clip()


def round_bias(layer: BinaryLinear, product_scale: float) -> np.ndarray:
    """The layer's bias as integers of the product scale; the torch layer takes the rounded
    value too, so that torch evaluates the very network that is exported."""
    ints = float32_exact_ints(np.round(_numpy(layer.bias).astype(np.float64) / product_scale))
    with torch.no_grad():
        layer.bias.copy_(torch.from_numpy(ints * product_scale).to(torch.float32))
    return ints


def binary_weight_cnn_network(model: BinaryWeightCNN, name: str) -> Network:
    layers = [Quant("quant_in", bits=ACT_BITS_BWN, signed=True, scale=INPUT_SCALE_BWN)]
    scale = INPUT_SCALE_BWN
    for index, conv in enumerate(model.convs):
        weight_type = DataType.bipolar_type(conv.scale)
        bias = round_bias(conv, scale * conv.scale)
        act_scale = model.act_quant[index][0]
        layers += [Conv2d(f"conv{index}", weights=conv.signs(), weight_type=weight_type,
                          bias=bias, padding=conv.padding),
                   Relu(f"relu{index}"),
                   Quant(f"quant{index}", bits=ACT_BITS_BWN, signed=True, scale=act_scale)]
        if index >= 1:
            layers.append(MaxPool2d(f"pool{index}", kernel=2))
        scale = act_scale
    layers.append(Flatten("flatten"))
    bias = round_bias(model.out, scale * model.out.scale)
    layers.append(Dense("fc", weights=model.out.signs(),
                        weight_type=DataType.bipolar_type(model.out.scale), bias=bias))
    return Network(name, (1, 1, 8, 8), layers)
