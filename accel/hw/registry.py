"""Architectures by name: the CLI, the energy model and sweeps look them up here, so adding an
architecture adds a folder and a line, not branches elsewhere."""

from __future__ import annotations

import importlib

from accel.errors import ConfigError

ARCHITECTURES = {
    "finn": "accel.hw.finn.arch",
    "eie": "accel.hw.eie.arch",
}


def architecture(name: str):
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; available: "
                          f"{', '.join(sorted(ARCHITECTURES))}")
    return importlib.import_module(ARCHITECTURES[name])
