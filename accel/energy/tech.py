"""Technology tables: per-operation and per-access energies, from YAML data files.

A table names its operations (integer add and multiply by width, floating point), SRAM read
energies at a few capacities (64-bit words) and DRAM energy per bit. Everything else is derived
here, each with its rule:

- integer add/multiply at other widths: a power law through the two nearest table points
  (log-log interpolation; extrapolated from the end points outside them);
- XNOR of n bit pairs: n/8 of an 8-bit add (one full-adder cell per bit is about the cost of one
  XNOR gate plus its share of wiring; an 8-bit ripple adder is 8 such cells);
- popcount of n bits: an adder tree of n - 1 one-bit adds = (n - 1)/8 of an 8-bit add;
- comparison of two w-bit numbers: a w-bit subtraction, i.e. a w-bit add;
- register or FIFO slot write/read of w bits: w/64 of a 64-bit read of the smallest table SRAM
  scaled down to the register file's capacity by the SRAM fit (flip-flop arrays behave like a
  tiny SRAM); at least 1% of a 64-bit 8 KB read per access;
- leading-nonzero detection over n inputs: n/8 of an 8-bit add (a tree of OR/priority cells);
- SRAM of any capacity and width: E = a * capacity_bytes ** b * width / 64, with a and b fitted
  by least squares in log space to the table's 64-bit points (``sram_fit`` reports the error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accel.errors import ConfigError

TABLE_DIR = Path(__file__).resolve().parent / "tables"
REQUIRED = {
    "operations": ("int_add", "int_mult", "fp16_add", "fp16_mult", "fp32_add", "fp32_mult"),
    "sram": ("read_64bit",),
    "dram": ("pj_per_bit",),
}


@dataclass
class Technology:
    name: str
    operations: dict
    sram_points: dict[int, float]
    dram_pj_per_bit: float

    def __post_init__(self):
        capacities = np.log(np.array(sorted(self.sram_points), dtype=float))
        energies = np.log(np.array([self.sram_points[c] for c in sorted(self.sram_points)]))
        self.sram_exponent, log_scale = np.polyfit(capacities, energies, 1)
        self.sram_scale = math.exp(log_scale)

    # ---- arithmetic
    def _by_width(self, name: str, bits: int) -> float:
        points = self.operations[name]
        if not isinstance(points, dict):
            return float(points)
        widths = sorted(points)
        if bits in points:
            return float(points[bits])
        lo = max([w for w in widths if w < bits], default=widths[0])
        hi = min([w for w in widths if w > bits], default=widths[-1])
        if lo == hi:  # outside the table: use the two nearest points
            lo, hi = (widths[0], widths[1]) if bits < widths[0] else (widths[-2], widths[-1])
        exponent = math.log(points[hi] / points[lo]) / math.log(hi / lo)
        return float(points[lo] * (bits / lo) ** exponent)

    def add(self, bits: int) -> float:
        return self._by_width("int_add", bits)

    def mult(self, bits: int) -> float:
        return self._by_width("int_mult", bits)

    def xnor(self, pairs: int) -> float:
        return pairs * self.add(8) / 8

    def popcount(self, bits: int) -> float:
        return max(bits - 1, 0) * self.add(8) / 8

    def compare(self, bits: int) -> float:
        return self.add(bits)

    def lnzd(self, inputs: int) -> float:
        return inputs * self.add(8) / 8

    # ---- memories
    def sram_read(self, capacity_bytes: float, width_bits: int) -> float:
        capacity_bytes = max(capacity_bytes, 1.0)
        return self.sram_scale * capacity_bytes ** self.sram_exponent * width_bits / 64

    def register(self, width_bits: int, capacity_bytes: float) -> float:
        floor = 0.01 * self.sram_read(8192, 64) * width_bits / 64
        return max(self.sram_read(capacity_bytes, width_bits), floor)

    def dram(self, bits: int) -> float:
        return bits * self.dram_pj_per_bit

    def sram_fit(self) -> list[tuple[int, float, float]]:
        """(capacity, table pJ, fitted pJ) at the table's points: the fit's error."""
        return [(c, e, self.sram_read(c, 64)) for c, e in sorted(self.sram_points.items())]


def load_technology(name_or_path: str | Path = "45nm") -> Technology:
    """A shipped table by name (``45nm``) or a user's YAML file (at most
    ``accel.io.MAX_CONFIG_BYTES``, read by the guarded YAML loader: no aliases, no objects)."""
    from accel.io import load_yaml, read_config_text

    path = Path(name_or_path)
    if not path.is_file():
        path = TABLE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            shipped = sorted(p.stem for p in TABLE_DIR.glob("*.yaml"))
            raise ConfigError(f"no technology table {name_or_path!r} (shipped: "
                              f"{', '.join(shipped)}; or give a YAML file)")
    data = load_yaml(read_config_text(path, "technology table"), path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a technology table is a mapping")
    for section, keys in REQUIRED.items():
        if not isinstance(data.get(section), dict):
            raise ConfigError(f"{path}: missing section '{section}'")
        for key in keys:
            if key not in data[section]:
                raise ConfigError(f"{path}: missing entry '{section}.{key}'")
    _check_numbers(path, data)
    # interpolated and fitted on a log scale: sizes and energies must be positive
    points = _positive_points(path, "sram.read_64bit", data["sram"]["read_64bit"], "capacities")
    if len(points) < 2:
        raise ConfigError(f"{path}: 'sram.read_64bit' needs at least two capacities")
    operations = {}
    for op, entry in data["operations"].items():
        if op in ("int_add", "int_mult"):
            if not isinstance(entry, dict) or len(entry) < 2:
                raise ConfigError(f"{path}: 'operations.{op}' needs energies at two widths or "
                                  "more")
            operations[op] = _positive_points(path, f"operations.{op}", entry, "widths")
        else:
            operations[op] = _positive_points(path, f"operations.{op}", entry, "widths") \
                if isinstance(entry, dict) else float(entry)
    return Technology(str(data.get("name", path.stem)), operations, points,
                      float(data["dram"]["pj_per_bit"]))


def _positive_points(path: Path, where: str, entry, what: str) -> dict[int, float]:
    """{size: energy}: sizes positive integers, energies positive (a power law through them)."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: '{where}' maps {what} to energies")
    points = {}
    for key, value in entry.items():
        if isinstance(key, bool) or not (isinstance(key, int) or isinstance(key, str)
                                         and key.isdigit()) or int(key) < 1:
            raise ConfigError(f"{path}: '{where}' {what} must be positive integers, got "
                              f"{key!r}")
        if value <= 0:
            raise ConfigError(f"{path}: '{where}.{key}' must be a positive number (energies are "
                              f"interpolated on a log scale), got {value!r}")
        points[int(key)] = float(value)
    return points


def _check_numbers(path: Path, data: dict, prefix: str = "") -> None:
    for key, value in data.items():
        where = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_numbers(path, value, where + ".")
        elif key not in ("name", "source") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0):
            raise ConfigError(f"{path}: entry '{where}' must be a non-negative number, "
                              f"got {value!r}")
