"""Sweep throughput: points per second of `accel explore` on EIE mlp-sparse with 1 and 2 local
Dask workers (issue 14's target: >= 1,000 EIE points in under 10 minutes on 2 cores).

    python benchmarks/explore_throughput.py              # the 1,152-point grid below
    python benchmarks/explore_throughput.py --points 200 # a seeded random sample of it

Each run starts from an empty store in a temporary directory, so every point is computed; the
wall time includes starting the LocalCluster and the workers' imports. Measured on a shared,
busy 2-core machine the figures vary by tens of percent from run to run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SPEC = """\
model: mlp-sparse
arch: eie
parameters:
  pes: [1, 2, 4, 8, 16, 32]
  queue_depth: [1, 2, 4, 8]
  sparse_word_bits: [32, 64, 128]
  on_chip_kib: [null, 8]
compression:
  sparsity: {{fc0: [null, 0.95], fc1: [null, 0.95]}}
  codebook_size: [16, 8]
search: {search}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, help="a random sample of this many points")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from rich.console import Console

    from accel.explore import run_sweep

    console = Console(stderr=True)
    search = "{method: grid}" if args.points is None else \
        f"{{method: random, samples: {args.points}, seed: 0}}"
    print(f"EIE mlp-sparse sweep on {os.cpu_count()} cores (load average "
          f"{os.getloadavg()[0]:.1f} at the start)")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "throughput.yaml"
            spec.write_text(SPEC.format(search=search))
            start, cpu = time.perf_counter(), time.process_time()
            outcome = run_sweep(spec, store=Path(tmp) / "store.sqlite", workers=workers,
                                out_dir=Path(tmp) / "out", console=console)
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
        rate = outcome.computed / wall
        print(f"{workers} worker{'s' * (workers > 1)}: {outcome.computed} points in {wall:.1f} s "
              f"= {rate:.2f} points/s (cluster start and the front included); 1,000 points "
              f"would take {1000 / rate / 60:.1f} min; the client (scheduler, store, "
              f"progress) used {cpu:.1f} s of CPU; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
