"""What every recipe shares: determinism, the data, straight-through estimators, the training
loop and the measurement of accuracy (torch's and the golden model's)."""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from accel.nn import golden
from accel.nn.data import digits_split, validation_indices
from accel.nn.ir import Network


# ---------------------------------------------------------------------------------- determinism

@contextlib.contextmanager
def deterministic(seed: int):
    """Seed every generator and make torch deterministic and single-threaded for the duration;
    the previous thread count, determinism setting and global generator states come back after."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_rng_state(),
             np.random.get_state(), random.getstate())
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        threads, enabled, warn_only, torch_state, np_state, py_state = saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


def phase_rng(seed: int, phase: int) -> np.random.Generator:
    """An independent, reproducible generator for one training phase (batch order)."""
    return np.random.default_rng([seed, phase])


# ----------------------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Data:
    """Training images and labels, and the images a model is measured on. ``evaluation`` is
    "test" (the fixed split) or "validation" (a stratified fifth of the training part, for
    choosing hyper-parameters without looking at the test images)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    evaluation: str


def digits_data(validation: bool = False) -> Data:
    split = digits_split()
    if not validation:
        return Data(split.x_train, split.y_train, split.x_test, split.y_test, "test")
    fit, held = validation_indices()
    return Data(split.x_train[fit], split.y_train[fit], split.x_train[held],
                split.y_train[held], "validation")


def as_images(x: np.ndarray) -> np.ndarray:
    """(N, 64) digits rows as (N, 1, 8, 8) NCHW images."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1, 1, 8, 8))


# ----------------------------------------------------------------------- straight-through ops

class SignSTE(torch.autograd.Function):
    """+1 where x >= 0, else -1 (zero maps to +1, as QONNX's BipolarQuant and FINN's
    thresholds); the gradient passes where |x| <= 1 (the hardtanh gradient of BinaryNet)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class RoundSTE(torch.autograd.Function):
    """Round half to even (QONNX's ROUND) forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    return SignSTE.apply(x)


def fake_quant(x: torch.Tensor, scale: float, lo: int, hi: int) -> torch.Tensor:
    """QONNX Quant (ROUND) in float: clamp(round(x / scale), lo, hi) * scale; the gradient
    passes straight through inside the range and stops outside it."""
    return torch.clamp(RoundSTE.apply(x / scale), lo, hi) * scale


def power_of_two_scale(max_value: float, max_int: int) -> float:
    """The smallest power of two ``s`` with ``max_value / s <= max_int``."""
    if not max_value > 0:
        return 1.0
    return 2.0 ** math.ceil(math.log2(max_value / max_int))


# ------------------------------------------------------------------------------------- training

def fit(model: torch.nn.Module, params, x: np.ndarray, y: np.ndarray, *, epochs: int,
        batch_size: int, lr: float, rng: np.random.Generator, weight_decay: float = 0.0,
        after_backward=None, after_step=None) -> None:
    """Adam with a cosine learning-rate decay to zero over ``epochs`` of shuffled mini-batches
    (cross-entropy loss). ``after_backward()`` runs between backward and the step (gradient
    edits, centroid updates), ``after_step()`` after it (weight clipping, masks)."""
    xt = torch.from_numpy(np.array(x, dtype=np.float32))  # copies: the split is read-only
    yt = torch.from_numpy(np.array(y, dtype=np.int64))
    params = [p for p in params]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if params else None
    batches = math.ceil(len(xt) / batch_size)
    total, step = epochs * batches, 0
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(xt)))
        model.train()
        for start in range(0, len(xt), batch_size):
            index = order[start:start + batch_size]
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
                optimizer.zero_grad(set_to_none=True)
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xt[index]), yt[index])
            loss.backward()
            if after_backward is not None:
                after_backward(step / total)
            if optimizer is not None:
                optimizer.step()
            if after_step is not None:
                after_step()
            step += 1
    model.eval()


@torch.no_grad()
def torch_predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    out = model(torch.from_numpy(np.array(x, dtype=np.float32)))
    return out.argmax(dim=1).numpy()


def torch_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(torch_predict(model, x) == y))


def golden_correct(network: Network, x: np.ndarray, y: np.ndarray) -> int:
    """How many of the images the golden model classifies correctly."""
    return int(np.sum(golden.predict(network, x) == np.asarray(y)))
