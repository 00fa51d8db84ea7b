"""The reference configurations whose Verilog and manifests are committed under ``rtl/``, for
FPGA users who never run Python. Regenerate them with ``python -m accel.hw.reference``; a test
fails when the committed files drift from the generators."""

from __future__ import annotations

import sys
from pathlib import Path

from accel.hw.registry import architecture
from accel.nn import load

# Foldings of the binarized reference models exercised by the slow tests and the throughput
# benchmark: fully folded, medium and wide. A string "<N> fps" asks the auto-folder.
FINN_FOLDINGS = {
    "bnn-mlp": {
        "fully folded": {},
        "medium": {"fc0": {"pe": 4, "simd": 16}, "fc1": {"pe": 8, "simd": 16},
                   "fc2": {"pe": 2, "simd": 16}},
        "wide": {"fc0": {"pe": 32, "simd": 64}, "fc1": {"pe": 32, "simd": 128},
                 "fc2": {"pe": 10, "simd": 32}},
    },
    "bnn-cnv": {
        "fully folded": {},
        "medium": "2e5 fps",
        "wide": {"conv0": {"pe": 32, "simd": 1}, "conv1": {"pe": 32, "simd": 32},
                 "fc0": {"pe": 16, "simd": 128}, "fc1": {"pe": 10, "simd": 16}},
    },
}
REFERENCE_CLOCK_MHZ = 200.0


def finn_folding(network, spec) -> dict:
    """A FINN_FOLDINGS entry as a folding dict (resolving "<N> fps" with the auto-folder)."""
    from accel.hw.finn.mapping import auto_fold

    if isinstance(spec, str):
        return auto_fold(network, float(spec.split()[0]), REFERENCE_CLOCK_MHZ)
    return spec


def configure(arch_name: str, network, options: dict, *, count_events: bool = True):
    """(architecture, mapping) of a configuration given as an options dict."""
    from accel.hw.architecture import options_from_mapping

    arch = architecture(arch_name)
    return arch, arch.configure(network, options_from_mapping(arch.Options, options),
                                clock_mhz=REFERENCE_CLOCK_MHZ, count_events=count_events)


# What `accel demo` runs: (architecture, shipped model, label, options)
DEMO_RUNS = [
    ("finn", "bnn-mlp", "medium folding", {"folding": FINN_FOLDINGS["bnn-mlp"]["medium"]}),
    ("finn", "bnn-cnv", "medium folding", {"target_fps": 2e5}),
    ("eie", "mlp-sparse", "16 PEs, queue 8", {"pes": 16, "queue_depth": 8}),
]

# (architecture, shipped model, options)
REFERENCE_CONFIGS = [
    ("finn", "bnn-mlp", {"folding": {"fc0": {"pe": 1, "simd": 64},
                                     "fc1": {"pe": 1, "simd": 128},
                                     "fc2": {"pe": 1, "simd": 8}}}),
    ("eie", "mlp-sparse", {"pes": 4, "queue_depth": 8}),
]


def reference_dir(root: Path, arch: str, model: str) -> Path:
    return root / arch / model


def regenerate(root: Path) -> list[Path]:
    written = []
    for arch_name, model, options in REFERENCE_CONFIGS:
        arch, mapping = configure(arch_name, load(model), options)
        written += arch.generate(mapping, reference_dir(root, arch_name, model))
    return written


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "rtl"
    for path in regenerate(root):
        print(f"wrote {path}")
