"""Architectures by name: the CLI, the energy report, the demo and sweeps look them up here,
so adding an architecture adds a folder and one line below, not branches elsewhere."""

from __future__ import annotations

from accel.errors import ConfigError
from accel.hw.architecture import Architecture
from accel.hw.eie.arch import ARCHITECTURE as EIE
from accel.hw.finn.arch import ARCHITECTURE as FINN
from accel.hw.yodann.arch import ARCHITECTURE as YODANN

ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    if not isinstance(arch, Architecture):
        raise ConfigError(f"{arch!r} does not implement accel.hw.architecture.Architecture")
    ARCHITECTURES[arch.name] = arch
    return arch


def unregister(name: str) -> None:
    ARCHITECTURES.pop(name, None)


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {name!r}; available: "
                          f"{', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


register(FINN)
register(EIE)
register(YODANN)
