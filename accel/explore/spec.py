"""A sweep spec: what to vary, and how to search, read from YAML and validated field by field.

```yaml
model: mlp-sparse          # a shipped model's name, or an ONNX/QONNX file (relative to the spec)
arch: eie                  # a registered architecture
clock_mhz: 200             # optional (default 200): times and frame-rate targets
tech: 45nm                 # optional: a shipped technology table or a YAML file
data: test                 # optional: test (the digits test split, default) or validation
                           # (a fifth of the training part, as accel.train chooses recipes)
images: 359                # optional: the first N images (default all)
parameters:                # the architecture's options (``accel estimate --arch A --help``)
  pes: [1, 2, 4, 8, 16]    # and on_chip_kib (null: everything on chip); each a list of
  queue_depth: {min: 2, max: 8, step: 2}   # values or an inclusive {min, max, step} range
  on_chip_kib: [null, 8]
compression:               # optional; layers with integer, non-binary weights only
  sparsity: {fc0: [null, 0.95], fc1: [0.92, 0.96]}  # per layer (null: as in the file), or
                           # one list for every such layer: magnitude pruning to that fraction
                           # of zeros (accel.compress.magnitude_mask; a sparser layer stays)
  codebook_size: [16, 8]   # k-means re-sharing of the kept weights (entry 0 is the zero)
  seed: 0                  # the k-means seed (default 0)
search:                    # optional (default grid)
  method: grid             # grid | random (samples, seed) | nsga2 (trials, population, seed)
objectives: [energy, latency, accuracy]   # the Pareto front's (and NSGA-II's); also
                           # throughput and power (average, running back to back)
```

Every problem is one ``ConfigError`` line naming the spec, the field and what it takes; unknown
keys are refused (a typo must not silently sweep the default). The points are plain data
(``Spec.point``): everything their result depends on except the model file, whose sha256 and
accel's version join the point's canonical JSON in its store key (``point_key``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accel.errors import AccelError, ConfigError

MAX_VALUES = 10_000  # values of one dimension
MAX_POINTS = 1_000_000  # a grid larger than this should be sampled (random or nsga2)
MAX_CODEBOOK = 1 << 16
DEFAULT_CLOCK_MHZ = 200.0
ON_CHIP = "on_chip_kib"

TOP_KEYS = ("model", "arch", "clock_mhz", "tech", "data", "images", "parameters",
            "compression", "search", "objectives", "description")
SEARCH_KEYS = {"grid": ("method",), "random": ("method", "samples", "seed"),
               "nsga2": ("method", "trials", "population", "seed")}
COMPRESSION_KEYS = ("sparsity", "codebook_size", "seed")
DATA_CHOICES = ("test", "validation")

# name -> (result key, direction, column heading, display factor)
OBJECTIVES = {
    "energy": ("energy_uj_per_inference", "min", "energy nJ/inf.", 1e3),
    "latency": ("latency_us", "min", "latency us", 1.0),
    "accuracy": ("accuracy", "max", "accuracy %", 100.0),
    "throughput": ("throughput_fps", "max", "inferences/s", 1.0),
    "power": ("average_power_mw", "min", "power mW", 1.0),
    # the resource model's ECP5 LUT4s (accel.hw.resources)
    "luts": ("lut_ecp5", "min", "LUT4 (ECP5 model)", 1.0),
}
DEFAULT_OBJECTIVES = ("energy", "latency", "accuracy")



@dataclass(frozen=True)
class Dimension:
    """One swept quantity: ``name`` as the spec gives it (``pes``, ``on_chip_kib``,
    ``sparsity.fc0``, ``sparsity``, ``codebook_size``), its values, and what it sets."""

    name: str
    kind: str  # option | on_chip | sparsity_all | sparsity | codebook
    values: tuple
    target: str | None = None  # the option's field or the layer


@dataclass(frozen=True)
class Search:
    method: str = "grid"
    samples: int | None = None  # random
    trials: int | None = None  # nsga2
    population: int | None = None  # nsga2
    seed: int = 0


@dataclass
class Spec:
    path: Path
    model: str  # as the spec names it
    model_path: Path
    model_sha256: str
    arch: str
    clock_mhz: float
    tech: str  # a shipped table's name or a file's absolute path
    data: str
    images: int
    dimensions: list[Dimension]
    compression_seed: int
    search: Search
    objectives: tuple[str, ...]
    prunable: tuple[str, ...]  # layers the compression choices apply to
    file_digests: dict[str, str] = field(default_factory=dict)  # files points name -> sha256
    description: str = ""

    @property
    def grid_size(self) -> int:
        return math.prod(len(d.values) for d in self.dimensions)

    @property
    def total(self) -> int:
        """Points (grid, random) or trials (nsga2) the sweep runs."""
        if self.search.method == "grid":
            return self.grid_size
        if self.search.method == "random":
            return min(self.search.samples, self.grid_size)
        return self.search.trials

    def point(self, choice: dict[str, int] | tuple[int, ...]) -> dict:
        """The point of one value index per dimension (a dict by name or a tuple in order)."""
        if not isinstance(choice, dict):
            choice = {d.name: index for d, index in zip(self.dimensions, choice)}
        options: dict[str, Any] = {}
        on_chip = None
        sparsity: dict[str, float] = {}
        codebook = None
        for dim in self.dimensions:
            value = dim.values[choice[dim.name]]
            if dim.kind == "option":
                options[dim.target] = value
            elif dim.kind == "on_chip":
                on_chip = value
            elif dim.kind == "sparsity_all":
                if value is not None:
                    sparsity = dict.fromkeys(self.prunable, value)
            elif dim.kind == "sparsity":
                if value is not None:
                    sparsity[dim.target] = value
            else:
                codebook = value
        compression = None
        if sparsity or codebook is not None:
            compression = {"sparsity": dict(sorted(sparsity.items())),
                           "codebook_size": codebook, "seed": self.compression_seed}
        point = {"model": self.model, "arch": self.arch, "clock_mhz": self.clock_mhz,
                 "tech": self.tech, "data": self.data, "images": self.images,
                 "options": options, "on_chip_kib": on_chip, "compression": compression}
        if self.file_digests:
            point["file_sha256"] = dict(sorted(self.file_digests.items()))
        return point

    def points(self) -> list[dict]:
        """Every point of a grid (compression choices outermost, then the parameters, each in
        the spec's order, the last fastest), or the seeded
        random sample: distinct points, the same ones on every run of the same spec."""
        if self.search.method == "grid":
            return [self.point(c) for c in itertools.product(
                *(range(len(d.values)) for d in self.dimensions))]
        if self.search.method == "random":
            return [self.point(c) for c in self._random_choices()]
        raise ConfigError("an nsga2 search chooses its points as it goes (accel.explore.sweep)")

    def _random_choices(self) -> list[tuple[int, ...]]:
        sizes = [len(d.values) for d in self.dimensions]
        total = self.grid_size
        wanted = min(self.search.samples, total)
        rng = np.random.default_rng(self.search.seed)
        if wanted * 2 >= total:  # dense: a permutation of the whole grid
            order = rng.permutation(total)[:wanted]
            return [_unravel(int(i), sizes) for i in order]
        seen: dict[tuple[int, ...], None] = {}
        while len(seen) < wanted:
            draw = tuple(int(rng.integers(size)) for size in sizes)
            seen.setdefault(draw, None)
        return list(seen)


def _unravel(index: int, sizes: list[int]) -> tuple[int, ...]:
    out = []
    for size in reversed(sizes):
        index, rest = divmod(index, size)
        out.append(rest)
    return tuple(reversed(out))


def canonical_json(value) -> str:
    """Sorted keys, no spaces: the text a point is hashed as."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_key(point: dict, accel_version: str, model_sha256: str) -> str:
    """The store key of a point: sha256 of its canonical JSON with accel's version and the
    model file's sha256."""
    text = canonical_json({"point": point, "accel_version": accel_version,
                           "model_sha256": model_sha256})
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ reading

def _read_yaml(path: Path):
    from accel.io import load_yaml, read_config_text

    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a sweep spec")
    return load_yaml(read_config_text(path, "sweep spec"), path)


class _Fields:
    """Error messages that name the spec and the field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise ConfigError(f"{self.path}: {where}: {problem}")

    def mapping(self, value, where: str, allowed) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {_show(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(where, f"keys must be names, got {_show(key)}")
        unknown = [key for key in value if key not in allowed]
        if unknown:
            self.fail(where, f"unknown key{'s' * (len(unknown) > 1)} "
                             f"{', '.join(map(repr, unknown))}; it takes "
                             f"{', '.join(allowed) or 'none'}")
        return value

    def integer(self, value, where: str, low: int | None = None, high: int | None = None):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.fail(where, f"must be an integer, got {_show(value)}")
        value = int(value)
        if low is not None and value < low or high is not None and value > high:
            bounds = (f"from {low} to {high}" if high is not None else f"at least {low}")
            self.fail(where, f"must be {bounds}, got {value}")
        return value

    def number(self, value, where: str):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            self.fail(where, f"must be a finite number, got {_show(value)}")
        return value

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"must be a non-empty string, got {_show(value)}")
        return value


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _values(f: _Fields, raw, where: str) -> list:
    """A dimension's values: a non-empty list without repeats, or an inclusive
    {min, max, step} range of numbers."""
    if isinstance(raw, dict):
        f.mapping(raw, where, ("min", "max", "step"))
        if "min" not in raw or "max" not in raw:
            f.fail(where, "a range needs min and max (and step, default 1)")
        low, high = f.number(raw["min"], f"{where}.min"), f.number(raw["max"], f"{where}.max")
        step = f.number(raw.get("step", 1), f"{where}.step")
        if step <= 0:
            f.fail(f"{where}.step", f"must be positive, got {step}")
        if high < low:
            f.fail(where, f"max {high} is below min {low}")
        count = int(math.floor((high - low) / step + 1e-9)) + 1
        if count > MAX_VALUES:
            f.fail(where, f"{count:,} values; at most {MAX_VALUES:,}")
        exact = all(isinstance(v, numbers.Integral) for v in (low, high, step))
        return [int(low + i * step) if exact else round(low + i * step, 12)
                for i in range(count)]
    if not isinstance(raw, list) or not raw:
        f.fail(where, f"must be a non-empty list of values or a {{min, max, step}} range, "
                      f"got {_show(raw)}")
    if len(raw) > MAX_VALUES:
        f.fail(where, f"{len(raw):,} values; at most {MAX_VALUES:,}")
    return list(raw)


def _no_repeats(f: _Fields, values: list, where: str) -> tuple:
    seen = set()
    for index, value in enumerate(values):
        try:
            key = canonical_json(value)
        except (TypeError, ValueError):
            f.fail(f"{where}[{index}]", f"{_show(value)} is not plain data")
        if key in seen:
            f.fail(f"{where}[{index}]", f"{_show(value)} is listed twice")
        seen.add(key)
    return tuple(values)


def _model(f: _Fields, raw, spec_dir: Path) -> tuple[str, Path]:
    from accel.nn.zoo import model_path, shipped_models

    name = f.text(raw, "model")
    if name in shipped_models():
        return name, model_path(name)
    path = Path(name)
    path = path if path.is_absolute() else spec_dir / path
    if not path.is_file():
        f.fail("model", f"{name!r} is neither a shipped model ({', '.join(shipped_models())}) "
                        f"nor a file (relative paths are read from {spec_dir})")
    return name, path.resolve()


def _file_value(value, spec_dir: Path, digests: dict[str, str]):
    """A string naming a file next to the spec becomes its absolute path, and the point's key
    includes the file's sha256 (the content decides the point, not the name)."""
    if isinstance(value, str) and value.strip():
        candidate = Path(value) if Path(value).is_absolute() else spec_dir / value
        if candidate.is_file():
            resolved = str(candidate.resolve())
            digests[resolved] = file_sha256(candidate)
            return resolved
    return value


def _option_value(f: _Fields, item, value, where: str, spec_dir: Path, digests):
    if value is None:
        return None
    parse = item.metadata.get("parse", str)
    if parse is int:
        return f.integer(value, where)
    if parse is float:
        return float(f.number(value, where))
    return _file_value(value, spec_dir, digests)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a sweep spec (see the module documentation)."""
    from accel.hw.registry import ARCHITECTURES

    path = Path(path)
    f = _Fields(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep spec is a mapping (model, arch, parameters, ...), "
                          f"got {_show(raw)}")
    f.mapping(raw, "top level", TOP_KEYS)
    for required in ("model", "arch"):
        if required not in raw:
            f.fail(required, "missing (a sweep needs a model and an architecture)")
    spec_dir = path.resolve().parent
    model, model_file = _model(f, raw["model"], spec_dir)
    arch_name = f.text(raw["arch"], "arch")
    if arch_name not in ARCHITECTURES:
        f.fail("arch", f"unknown architecture {arch_name!r}; available: "
                       f"{', '.join(sorted(ARCHITECTURES))}")
    arch = ARCHITECTURES[arch_name]
    clock = raw.get("clock_mhz", DEFAULT_CLOCK_MHZ)
    clock = float(f.number(clock, "clock_mhz"))
    if clock <= 0:
        f.fail("clock_mhz", f"must be positive, got {clock:g}")
    digests: dict[str, str] = {}
    tech = f.text(raw.get("tech", "45nm"), "tech")
    tech = _file_value(tech, spec_dir, digests)
    try:
        from accel.energy.tech import load_technology

        load_technology(tech)
    except AccelError as exc:
        f.fail("tech", str(exc))
    data = raw.get("data", "test")
    if data not in DATA_CHOICES:
        f.fail("data", f"must be one of {', '.join(DATA_CHOICES)}, got {_show(data)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        f.fail("description", f"must be text, got {_show(description)}")
    objectives = raw.get("objectives", list(DEFAULT_OBJECTIVES))
    if not isinstance(objectives, list) or not objectives:
        f.fail("objectives", f"must be a non-empty list of {', '.join(OBJECTIVES)}, "
                             f"got {_show(objectives)}")
    for index, name in enumerate(objectives):
        if name not in OBJECTIVES:
            f.fail(f"objectives[{index}]", f"unknown objective {_show(name)}; choose from "
                                           f"{', '.join(OBJECTIVES)}")
        if objectives.index(name) != index:
            f.fail(f"objectives[{index}]", f"{name} is listed twice")
        if name == "luts" and not arch.resource_model:
            f.fail(f"objectives[{index}]", f"luts: {arch_name} has no resource model yet "
                                           "(accel.hw.resources)")
    search = _search(f, raw.get("search", {"method": "grid"}))

    from accel.nn import load

    try:
        network = load(model_file)
    except AccelError as exc:
        f.fail("model", str(exc))
    from accel.explore.worker import evaluation_data

    available = len(evaluation_data(network, data, None)[0])
    images = raw.get("images", available)
    images = f.integer(images, "images", 1, available)

    dimensions: list[Dimension] = []
    fields = {item.name: item for item in dataclasses.fields(arch.Options)}
    parameters = raw.get("parameters", {})
    f.mapping(parameters, "parameters", (*fields, ON_CHIP))
    for name, raw_values in parameters.items():
        where = f"parameters.{name}"
        values = _values(f, raw_values, where)
        if name == ON_CHIP:
            values = [None if v is None else float(f.number(v, f"{where}[{i}]"))
                      for i, v in enumerate(values)]
            for i, v in enumerate(values):
                if v is not None and v < 0:
                    f.fail(f"{where}[{i}]", f"must be non-negative (KiB) or null, got {v:g}")
            dimensions.append(Dimension(name, "on_chip", _no_repeats(f, values, where)))
            continue
        values = [_option_value(f, fields[name], v, f"{where}[{i}]", spec_dir, digests)
                  for i, v in enumerate(values)]
        dimensions.append(Dimension(name, "option", _no_repeats(f, values, where), name))

    from accel.explore.compression import prunable_layers

    prunable = tuple(prunable_layers(network))
    compressing: list[Dimension] = []
    compression = raw.get("compression", {}) or {}
    f.mapping(compression, "compression", COMPRESSION_KEYS)
    seed = f.integer(compression.get("seed", 0), "compression.seed", 0)
    if ("sparsity" in compression or "codebook_size" in compression) and not prunable:
        f.fail("compression", f"{model} has no layers with integer, non-binary weights to "
                              "prune or share (binary networks are pruned structurally; float "
                              "ones are compressed first: accel compress)")
    if "sparsity" in compression:
        sparsity = compression["sparsity"]
        if isinstance(sparsity, dict):
            f.mapping(sparsity, "compression.sparsity", prunable)
            for layer, raw_values in sparsity.items():
                where = f"compression.sparsity.{layer}"
                values = _sparsities(f, _values(f, raw_values, where), where)
                compressing.append(Dimension(f"sparsity.{layer}", "sparsity", values, layer))
        else:
            where = "compression.sparsity"
            values = _sparsities(f, _values(f, sparsity, where), where)
            compressing.append(Dimension("sparsity", "sparsity_all", values))
    if "codebook_size" in compression:
        where = "compression.codebook_size"
        values = _values(f, compression["codebook_size"], where)
        values = [None if v is None else f.integer(v, f"{where}[{i}]", 2, MAX_CODEBOOK)
                  for i, v in enumerate(values)]
        compressing.append(Dimension("codebook_size", "codebook", _no_repeats(f, values, where)))

    # compression choices vary slowest in a grid: a worker compresses the network once per
    # choice and keeps the last few (accel.explore.worker), whatever the architecture options
    dimensions = compressing + dimensions
    spec = Spec(path=path, model=model, model_path=model_file,
                model_sha256=file_sha256(model_file), arch=arch_name, clock_mhz=clock,
                tech=tech, data=data, images=images, dimensions=dimensions,
                compression_seed=seed, search=search, objectives=tuple(objectives),
                prunable=prunable, file_digests=digests, description=description)
    if spec.search.method == "grid" and spec.grid_size > MAX_POINTS:
        f.fail("search", f"a grid of {spec.grid_size:,} points; at most {MAX_POINTS:,} "
                         "(use method: random or nsga2)")
    _check_values(spec, network, f)
    return spec


def _sparsities(f: _Fields, values: list, where: str) -> tuple:
    out = []
    for index, value in enumerate(values):
        if value is not None:
            value = float(f.number(value, f"{where}[{index}]"))
            if not 0.0 <= value < 1.0:
                f.fail(f"{where}[{index}]", f"a sparsity is in [0, 1), got {value:g}")
        out.append(value)
    return _no_repeats(f, out, where)


def _search(f: _Fields, raw) -> Search:
    if not isinstance(raw, dict):
        f.fail("search", f"must be a mapping with a method, got {_show(raw)}")
    method = raw.get("method", "grid")
    if method not in SEARCH_KEYS:
        f.fail("search.method", f"must be one of {', '.join(SEARCH_KEYS)}, got {_show(method)}")
    f.mapping(raw, f"search ({method})", SEARCH_KEYS[method])
    seed = f.integer(raw.get("seed", 0), "search.seed", 0)
    if method == "random":
        if "samples" not in raw:
            f.fail("search.samples", "missing (how many points a random search draws)")
        return Search("random", samples=f.integer(raw["samples"], "search.samples", 1,
                                                  MAX_POINTS), seed=seed)
    if method == "nsga2":
        if "trials" not in raw:
            f.fail("search.trials", "missing (how many points NSGA-II evaluates)")
        trials = f.integer(raw["trials"], "search.trials", 1, MAX_POINTS)
        population = f.integer(raw.get("population", 20), "search.population", 2, MAX_POINTS)
        return Search("nsga2", trials=trials, population=population, seed=seed)
    return Search("grid", seed=seed)


def _check_values(spec: Spec, network, f: _Fields) -> None:
    """Configure the first point, then each value alone (every other dimension at its first
    value), on the client before any task runs: a value no point can use fails in a second, as
    one line naming it, instead of as hundreds of stored errors. Combinations that fail only
    together (e.g. a FINN folding and a target frame rate) are stored as failed points."""
    from accel.explore.worker import configure_point

    first = {d.name: 0 for d in spec.dimensions}

    def check(choice, where):
        try:
            configure_point(spec.point(choice), network, spec.model_sha256)
        except AccelError as exc:
            f.fail(where, str(exc))

    check(first, "the first point")
    for dim in spec.dimensions:
        section = "compression." if dim.kind in ("sparsity", "sparsity_all", "codebook") \
            else "parameters."
        for index in range(1, len(dim.values)):
            check({**first, dim.name: index},
                  f"{section}{dim.name}[{index}] = {_show(dim.values[index])}")
