"""The reference configurations whose Verilog and manifests are committed under ``rtl/``, for
FPGA users who never run Python. Regenerate them with ``python -m accel.hw.reference``; a test
fails when the committed files drift from the generators."""

from __future__ import annotations

import sys
from pathlib import Path

from accel.hw.registry import architecture
from accel.nn import load

# (architecture, shipped model, configuration)
REFERENCE_CONFIGS = [
    ("finn", "bnn-mlp", {"folding": {"fc0": {"pe": 1, "simd": 64},
                                     "fc1": {"pe": 1, "simd": 128},
                                     "fc2": {"pe": 1, "simd": 8}}}),
]


def reference_dir(root: Path, arch: str, model: str) -> Path:
    return root / arch / model


def regenerate(root: Path) -> list[Path]:
    written = []
    for arch_name, model, config in REFERENCE_CONFIGS:
        arch = architecture(arch_name)
        mapping = arch.configure(load(model), **config)
        written += arch.generate(mapping, reference_dir(root, arch_name, model))
    return written


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "rtl"
    for path in regenerate(root):
        print(f"wrote {path}")
