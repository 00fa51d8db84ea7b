"""Design-space sweeps over architecture parameters and compression choices (issue 14).

A sweep is a YAML spec (``accel.explore.spec``: the model, the architecture, the values of its
options, of the on-chip capacity and of the compression choices, and a search: grid, seeded
random, or Optuna's NSGA-II). Each point is one Dask task (``accel.explore.worker``) that
compresses the model as the point says and runs ``accel.hw.evaluate.estimate`` (the cycle
model: no Verilator). The client (``accel.explore.sweep``) alone writes the results store
(``accel.explore.store``: SQLite, WAL, one row per finished point, committed as it arrives),
so a sweep killed at any moment resumes where it stopped: run the same command again. At the
end the Pareto front (``accel.explore.pareto``) is printed, written to ``pareto.json`` and
plotted.

This package sits above ``accel.hw``, ``accel.compress`` and ``accel.energy``; nothing below
imports it.
"""

from accel.explore.spec import Spec, load_spec
from accel.explore.sweep import SweepOutcome, run_sweep

__all__ = ["Spec", "SweepOutcome", "load_spec", "run_sweep"]
