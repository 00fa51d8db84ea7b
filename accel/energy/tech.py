"""Technology tables: per-operation and per-access energies, from YAML data files.

A table names its operations (integer add and multiply by width, floating point), SRAM read
energies at a few capacities (64-bit words) and DRAM energy per bit; optionally (each section
documents its source in the table file) SRAM reads at other widths (``sram.width_points``),
the clock energy of a flip-flop (``clock``), a latch-based standard-cell memory (``scm``), the
table's supply voltage (``voltage``) and an alpha-power law for the clock at a voltage
(``alpha_power``). Everything else is derived here, each with its rule:

- integer add/multiply at other widths: a power law through the two nearest table points
  (log-log interpolation; extrapolated from the end points outside them);
- XNOR of n bit pairs: n/8 of an 8-bit add (one full-adder cell per bit is about the cost of one
  XNOR gate plus its share of wiring; an 8-bit ripple adder is 8 such cells);
- popcount of n bits: an adder tree of n - 1 one-bit adds = (n - 1)/8 of an 8-bit add;
- comparison of two w-bit numbers: a w-bit subtraction, i.e. a w-bit add;
- register or FIFO slot write/read of w bits: w/64 of a 64-bit read of the smallest table SRAM
  scaled down to the register file's capacity by the SRAM capacity fit (flip-flop arrays behave
  like a tiny SRAM, but without bit-line precharge or sense amplifiers: no fixed term); at least
  1% of a 64-bit 8 KB read per access;
- leading-nonzero detection over n inputs: n/8 of an 8-bit add (a tree of OR/priority cells);
- SRAM of any capacity C and width w: a fixed cost per access (decoder, word line, sense
  amplifiers, control) plus a cost per bit, E = E64(C) * (w0 + w) / (w0 + 64). E64(C) = a * C**b
  is fitted by least squares in log space to the table's 64-bit points (``sram_fit`` reports
  the error); w0, the fixed cost in bit-equivalents, is fitted to ``sram.width_points`` with
  the model E = k * C**b' * (w0 + w) (its own scale k and capacity exponent b': only the shape
  is taken from those points; ``sram_width_fit`` reports the fit). Without width points, w0 = 0
  (linear in width);
- clock: ``clock(bits)`` is the energy per cycle of ``bits`` flip-flops clocked every cycle
  (clock pin and local clock tree), the table's ``clock.pj_per_bit_cycle``;
- SCM (latch array) of ``words`` x ``width``: E = e_bit * width * (words / words_ref) **
  capacity_exponent, from the table's ``scm`` reference point;
- supply voltage: ``at_voltage(V)`` scales every on-chip dynamic energy by (V / V_table)**2
  (DRAM is off chip and keeps its energy); ``clock_mhz(V)`` is the alpha-power law
  f = k * (V - Vth)**alpha / V with alpha from the table and Vth and k solved from the table's
  two calibration points (``alpha_power``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from accel.errors import ConfigError

TABLE_DIR = Path(__file__).resolve().parent / "tables"
REQUIRED = {
    "operations": ("int_add", "int_mult", "fp16_add", "fp16_mult", "fp32_add", "fp32_mult"),
    "sram": ("read_64bit",),
    "dram": ("pj_per_bit",),
}
OPTIONAL = {
    "clock": ("pj_per_bit_cycle",),
    "scm": ("pj_per_bit", "words", "width", "capacity_exponent"),
    "voltage": ("nominal",),
    "alpha_power": ("alpha", "points"),
}


def fit_fixed_plus_per_bit(points: dict[int, dict[int, float]]) -> tuple[float, float, float]:
    """(k, b, w0) of E = k * C**b * (w0 + w) fitted in log space to {C: {w: E}} (least squares
    over log k and b for each w0, w0 by a scan then a golden-section refinement, w0 >= 0)."""
    return _fit_rows(tuple(sorted((c, w, e) for c, widths in points.items()
                                  for w, e in widths.items())))


@functools.lru_cache(maxsize=64)
def _fit_rows(rows: tuple) -> tuple[float, float, float]:
    log_c = np.log([c for c, _, _ in rows])
    log_e = np.log([e for _, _, e in rows])
    widths = np.array([w for _, w, _ in rows], dtype=float)
    design = np.column_stack([np.ones(len(rows)), log_c])

    def solve(w0):
        target = log_e - np.log(w0 + widths)
        (log_k, b), *_ = np.linalg.lstsq(design, target, rcond=None)
        residual = design @ np.array([log_k, b]) - target
        return float(residual @ residual), float(log_k), float(b)

    grid = np.concatenate([[0.0], np.geomspace(1e-3, 1e5, 801)])
    errors = [solve(w0)[0] for w0 in grid]
    best = int(np.argmin(errors))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if solve(x1)[0] <= solve(x2)[0]:
            hi = x2
        else:
            lo = x1
    w0 = float((lo + hi) / 2)
    _, log_k, b = solve(w0)
    return math.exp(log_k), b, w0


@dataclass
class Technology:
    name: str
    operations: dict
    sram_points: dict[int, float]
    dram_pj_per_bit: float
    sram_width_points: dict[int, dict[int, float]] = field(default_factory=dict)
    clock_pj_per_bit_cycle: float = 0.0
    scm: dict | None = None
    voltage_nominal: float | None = None
    alpha_power: dict | None = None
    voltage: float | None = None  # the operating point (default: the table's own voltage)

    def __post_init__(self):
        capacities = np.log(np.array(sorted(self.sram_points), dtype=float))
        energies = np.log(np.array([self.sram_points[c] for c in sorted(self.sram_points)]))
        self.sram_exponent, log_scale = np.polyfit(capacities, energies, 1)
        self.sram_scale = math.exp(log_scale)
        self.sram_fixed_bits = 0.0
        if self.sram_width_points:
            self._width_fit = fit_fixed_plus_per_bit(self.sram_width_points)
            self.sram_fixed_bits = self._width_fit[2]
        if self.voltage is None:
            self.voltage = self.voltage_nominal
        self.voltage_factor = 1.0 if self.voltage_nominal is None \
            else (self.voltage / self.voltage_nominal) ** 2

    # ---- supply voltage
    def at_voltage(self, volts: float) -> "Technology":
        """The same table at another supply voltage: on-chip energies x (V / V_table)**2."""
        if self.voltage_nominal is None:
            raise ConfigError(f"technology table {self.name!r} states no supply voltage "
                              "('voltage.nominal'): it cannot be scaled to another voltage")
        if not isinstance(volts, (int, float)) or isinstance(volts, bool) \
                or not math.isfinite(volts) or volts <= 0:
            raise ConfigError(f"supply voltage must be a positive number of volts, got "
                              f"{volts!r}")
        base = self.name.split("@", 1)[0]
        return replace(self, name=f"{base}@{volts:g}V", voltage=float(volts))

    def alpha_power_law(self) -> tuple[float, float, float]:
        """(alpha, Vth, k) of f_MHz = k * (V - Vth)**alpha / V, Vth and k solved from the
        table's two calibration points."""
        if not self.alpha_power:
            raise ConfigError(f"technology table {self.name!r} has no 'alpha_power' "
                              "calibration: no clock frequency at a voltage")
        alpha = self.alpha_power["alpha"]
        (v1, f1), (v2, f2) = sorted(self.alpha_power["points"].items(), reverse=True)

        def mismatch(vth):  # log f1/f2 of the law minus the calibration's
            return (alpha * math.log((v1 - vth) / (v2 - vth)) - math.log(v1 / v2)
                    - math.log(f1 / f2))

        lo, hi = -10.0, v2 * (1 - 1e-12)  # mismatch rises from below zero to +inf at v2
        if mismatch(lo) > 0:
            raise ConfigError(f"technology table {self.name!r}: no threshold voltage fits "
                              "the alpha-power calibration points")
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mismatch(mid) < 0 else (lo, mid)
        vth = (lo + hi) / 2
        return alpha, vth, f1 * v1 / (v1 - vth) ** alpha

    def clock_mhz(self, volts: float | None = None) -> float:
        """The highest clock at ``volts`` (default: this operating point) by the alpha-power
        law; 0 at or below the fitted threshold."""
        alpha, vth, k = self.alpha_power_law()
        volts = self.voltage if volts is None else volts
        if volts is None:
            raise ConfigError(f"technology table {self.name!r} states no supply voltage")
        return k * (volts - vth) ** alpha / volts if volts > vth else 0.0

    # ---- arithmetic
    def _by_width(self, name: str, bits: int) -> float:
        points = self.operations[name]
        if not isinstance(points, dict):
            return float(points) * self.voltage_factor
        widths = sorted(points)
        if bits in points:
            return float(points[bits]) * self.voltage_factor
        lo = max([w for w in widths if w < bits], default=widths[0])
        hi = min([w for w in widths if w > bits], default=widths[-1])
        if lo == hi:  # outside the table: use the two nearest points
            lo, hi = (widths[0], widths[1]) if bits < widths[0] else (widths[-2], widths[-1])
        exponent = math.log(points[hi] / points[lo]) / math.log(hi / lo)
        return float(points[lo] * (bits / lo) ** exponent) * self.voltage_factor

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
    def sram_read_64bit(self, capacity_bytes: float) -> float:
        """E64(C): the capacity fit through the table's 64-bit points."""
        capacity_bytes = max(capacity_bytes, 1.0)
        return self.sram_scale * capacity_bytes ** self.sram_exponent * self.voltage_factor

    def sram_read(self, capacity_bytes: float, width_bits: int) -> float:
        """Fixed cost per access plus a cost per bit (see the module documentation)."""
        w0 = self.sram_fixed_bits
        return self.sram_read_64bit(capacity_bytes) * (w0 + width_bits) / (w0 + 64)

    def register(self, width_bits: int, capacity_bytes: float) -> float:
        per_bit = self.sram_read_64bit(capacity_bytes) / 64
        floor = 0.01 * self.sram_read_64bit(8192) / 64
        return max(per_bit, floor) * width_bits

    def clock(self, bits: float) -> float:
        """Energy per cycle of ``bits`` flip-flops clocked every cycle."""
        return bits * self.clock_pj_per_bit_cycle * self.voltage_factor

    def scm_access(self, words: float, width_bits: int) -> float:
        """One read or write of ``width_bits`` in a latch array of ``words`` words."""
        if not self.scm:
            raise ConfigError(f"technology table {self.name!r} has no 'scm' section: no "
                              "latch-array (SCM) memory model")
        s = self.scm
        words = max(words, 1.0)
        return (s["pj_per_bit"] * width_bits * (words / s["words"]) ** s["capacity_exponent"]
                * self.voltage_factor)

    def dram(self, bits: int) -> float:
        return bits * self.dram_pj_per_bit

    def sram_fit(self) -> list[tuple[int, float, float]]:
        """(capacity, table pJ, fitted pJ) at the table's 64-bit points: the fit's error."""
        return [(c, e, self.sram_read_64bit(c) / self.voltage_factor)
                for c, e in sorted(self.sram_points.items())]

    def sram_width_fit(self) -> list[tuple[int, int, float, float]]:
        """(capacity, width, source pJ, fitted pJ) at the width points, by the fixed-plus-per-
        bit fit E = k * C**b' * (w0 + w) (the shape from which w0 is taken)."""
        if not self.sram_width_points:
            return []
        k, b, w0 = self._width_fit
        return [(c, w, e, k * c ** b * (w0 + w))
                for c, widths in sorted(self.sram_width_points.items())
                for w, e in sorted(widths.items())]


def load_technology(name_or_path: str | Path = "45nm") -> Technology:
    """A shipped table by name (``45nm``, ``65nm``) or a user's YAML file (at most
    ``accel.io.MAX_CONFIG_BYTES``, read by the guarded YAML loader: no aliases, no objects).
    ``NAME@VOLTSV`` (``65nm@0.6V``) is the table at that supply voltage (``at_voltage``)."""
    from accel.io import load_yaml, read_config_text

    path = Path(name_or_path)
    volts = None
    if not path.is_file() and isinstance(name_or_path, str) and "@" in name_or_path:
        name_or_path, _, spec = name_or_path.rpartition("@")
        try:
            volts = float(spec[:-1]) if spec[-1:] in ("V", "v") else float("nan")
        except ValueError:
            volts = float("nan")
        if not math.isfinite(volts) or volts <= 0:
            raise ConfigError(f"technology {name_or_path}@{spec}: the voltage is written as "
                              "a positive number of volts with a V, e.g. 65nm@0.6V")
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
    for section, keys in OPTIONAL.items():
        if section in data:
            if not isinstance(data[section], dict):
                raise ConfigError(f"{path}: section '{section}' must be a mapping")
            for key in keys:
                if key not in data[section]:
                    raise ConfigError(f"{path}: missing entry '{section}.{key}'")
    _check_numbers(path, data)
    # interpolated and fitted on a log scale: sizes and energies must be positive
    points = _positive_points(path, "sram.read_64bit", data["sram"]["read_64bit"], "capacities")
    if len(points) < 2:
        raise ConfigError(f"{path}: 'sram.read_64bit' needs at least two capacities")
    width_points = {}
    if "width_points" in data["sram"]:
        entry = data["sram"]["width_points"]
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: 'sram.width_points' maps capacities to "
                              "{width: energy}")
        for capacity, widths in _positive_keys(path, "sram.width_points", entry,
                                               "capacities").items():
            width_points[capacity] = _positive_points(
                path, f"sram.width_points.{capacity}", widths, "widths")
        count = sum(len(w) for w in width_points.values())
        if count < 3 or len({w for ws in width_points.values() for w in ws}) < 2 \
                or len(width_points) < 2:
            raise ConfigError(f"{path}: 'sram.width_points' needs three points or more, at "
                              "two capacities and two widths at least (a fixed cost, a cost "
                              "per bit and a capacity exponent are fitted)")
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
    scm = None
    if "scm" in data:
        scm = {key: float(data["scm"][key]) for key in OPTIONAL["scm"]}
        for key in ("pj_per_bit", "words", "width"):
            if scm[key] <= 0:
                raise ConfigError(f"{path}: 'scm.{key}' must be a positive number")
    nominal = None
    if "voltage" in data:
        nominal = float(data["voltage"]["nominal"])
        if nominal <= 0:
            raise ConfigError(f"{path}: 'voltage.nominal' must be a positive number of volts")
    alpha = None
    if "alpha_power" in data:
        calibration = data["alpha_power"]["points"]
        if not isinstance(calibration, dict) or len(calibration) != 2 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                for v in calibration) or any(f <= 0 for f in calibration.values()):
            raise ConfigError(f"{path}: 'alpha_power.points' maps two positive voltages to "
                              "positive clock frequencies (MHz)")
        alpha = {"alpha": float(data["alpha_power"]["alpha"]),
                 "points": {float(v): float(f) for v, f in calibration.items()}}
        if alpha["alpha"] <= 0:
            raise ConfigError(f"{path}: 'alpha_power.alpha' must be positive")
    tech = Technology(str(data.get("name", path.stem)), operations, points,
                      float(data["dram"]["pj_per_bit"]), width_points,
                      float(data.get("clock", {}).get("pj_per_bit_cycle", 0.0)), scm, nominal,
                      alpha)
    if alpha:
        tech.alpha_power_law()  # refuse a calibration no threshold voltage fits, now
    return tech if volts is None else tech.at_voltage(volts)


def _positive_keys(path: Path, where: str, entry: dict, what: str) -> dict[int, object]:
    out = {}
    for key, value in entry.items():
        if isinstance(key, bool) or not (isinstance(key, int) or isinstance(key, str)
                                         and key.isdigit()) or int(key) < 1:
            raise ConfigError(f"{path}: '{where}' {what} must be positive integers, got "
                              f"{key!r}")
        out[int(key)] = value
    return out


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
