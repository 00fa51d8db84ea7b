"""``accel demo``: the shipped models through every architecture in Verilator, one table of
accuracy, bit-exactness, cycles, latency and energy per inference."""

from __future__ import annotations

from pathlib import Path

from accel.hw import evaluate
from accel.hw.reference import DEMO_RUNS, REFERENCE_CLOCK_MHZ, configure
from accel.hw.result import SimResult
from accel.io import write_json
from accel.nn import load
from accel.nn.evaluate import load_data


def run_demo(images: int | None = None, out_dir: Path | None = None, progress=None,
             tech: str = "45nm") -> list[tuple[str, SimResult]]:
    """(label, result) per run of ``DEMO_RUNS`` on the digits test split (its first ``images``
    images); with ``out_dir``, each result's JSON and the energy chart are written there."""
    results = []
    for arch_name, model, label, options in DEMO_RUNS:
        if progress:
            progress(f"{model} on {arch_name} ({label}): building and simulating in Verilator")
        network = load(model)
        inputs, labels, _ = load_data(None, None, network)
        if images is not None:
            inputs, labels = inputs[:images], labels[:images]
        arch, mapping = configure(arch_name, network, options)
        results.append((label, evaluate.simulate(arch, mapping, network, inputs, labels,
                                                 model=model, clock_mhz=REFERENCE_CLOCK_MHZ,
                                                 tech=tech)))
    if out_dir is not None:
        from accel.energy.report import stacked_bar_chart

        out_dir.mkdir(parents=True, exist_ok=True)
        for _, result in results:
            write_json(out_dir / f"{result.arch}-{result.model}.json", result.to_json())
        stacked_bar_chart([result.to_json() for _, result in results], out_dir / "energy")
    return results
