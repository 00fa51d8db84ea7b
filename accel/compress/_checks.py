"""Argument checks shared by the compression modules; each failure is a one-line ConfigError."""

from __future__ import annotations

import numbers

import numpy as np

from accel.errors import ConfigError


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    # bool is an Integral, but True as a bit width or seed is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be an integer {bounds}, got {value}")
    return value


def check_fraction(name: str, value, *, allow_one: bool = True) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (value == 1.0 and not allow_one):
        upper = "1" if allow_one else "1 (exclusive)"
        raise ConfigError(f"{name} must be between 0 and {upper}, got {value}")
    return value


def check_weights(name: str, weights, *, ndim: int | None = None) -> np.ndarray:
    """A finite float64 array (a copy is not made when the input already is one)."""
    try:
        array = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array") from exc
    if ndim is not None and array.ndim != ndim:
        raise ConfigError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    if array.ndim == 0:
        raise ConfigError(f"{name} must be an array, got a scalar")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} contains NaN or infinite values")
    return array


def check_index_array(name: str, indices, *, ndim: int | None = None,
                      limit: int | None = None) -> np.ndarray:
    """An int64 array of non-negative integers, each below ``limit`` when one is given."""
    array = np.asarray(indices)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ConfigError(f"{name} must be an integer array, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ConfigError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ConfigError(f"{name} must not contain negative values, found {array.min()}")
    if limit is not None and array.size and array.max() >= limit:
        raise ConfigError(f"{name} holds {array.max()}, which does not fit: values must be "
                          f"below {limit}")
    return array
