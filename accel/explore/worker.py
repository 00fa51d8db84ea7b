"""What one Dask task does with one sweep point: compress the model as the point says,
configure the architecture and run ``accel.hw.evaluate.estimate`` (the cycle model; no
Verilator). A worker keeps the model, the data, technology tables and the last compressed
networks in memory between tasks (keyed by the model file's sha256 and the choices).

A task returns plain data, never raises for the point's own problems:
  {"status": "ok", "result": JSON text, "seconds": s}      the SimResult JSON (sorted keys)
                                                           plus "compression" (per layer)
  {"status": "error", "error": line, "seconds": s}         an ``AccelError`` of this point
                                                           (stored: rerunning cannot help)
  {"status": "fatal", "error": line}                       the model file is not the one the
                                                           sweep hashed (nothing is stored)
Any other exception is a bug: Dask retries the task and then reports it to the client.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from accel.errors import AccelError, ConfigError

_NETWORKS: dict[tuple[str, str], object] = {}
_DATA: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_TECH: dict[str, object] = {}
_COMPRESSED: OrderedDict = OrderedDict()
COMPRESSED_CACHE = 32


def evaluation_data(network, data: str, images: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels): the digits test split, or the validation fifth of the training part
    (``accel.nn.data.validation_indices``), its first ``images``."""
    from accel.nn.data import digits_split, validation_indices
    from accel.nn.evaluate import network_inputs

    key = (data, network.input_shape, images)
    if key not in _DATA:
        split = digits_split()
        if data == "test":
            x, y = split.x_test, split.y_test
        elif data == "validation":
            _, held = validation_indices()
            x, y = split.x_train[held], split.y_train[held]
        else:
            raise ConfigError(f"unknown data {data!r}: test or validation")
        inputs = network_inputs(network, x, f"digits {data}")
        _DATA[key] = (inputs[:images], np.asarray(y)[:images])
    return _DATA[key]


def _technology(name: str):
    from accel.energy.tech import load_technology

    if name not in _TECH:
        _TECH[name] = load_technology(name)
    return _TECH[name]


def configure_point(point: dict, network, model_sha256: str):
    """(architecture, compressed network, mapping, compression summary) of ``point`` on
    ``network`` (the model file of that sha256: compressed networks are cached by it)."""
    from accel.explore.compression import compress
    from accel.explore.spec import canonical_json
    from accel.hw.architecture import options_from_mapping
    from accel.hw.registry import architecture

    compression = point.get("compression")
    cache_key = (model_sha256, canonical_json(compression))
    if cache_key in _COMPRESSED:
        _COMPRESSED.move_to_end(cache_key)
        compressed, summary = _COMPRESSED[cache_key]
    else:
        compressed, summary = compress(network, compression)
        _COMPRESSED[cache_key] = (compressed, summary)
        while len(_COMPRESSED) > COMPRESSED_CACHE:
            _COMPRESSED.popitem(last=False)
    arch = architecture(point["arch"])
    options = options_from_mapping(arch.Options, point["options"])
    mapping = arch.configure(compressed, options, clock_mhz=point["clock_mhz"])
    return arch, compressed, mapping, summary


def _network(model_path: str, model_sha256: str):
    from accel.explore.spec import file_sha256
    from accel.nn import load

    key = (model_path, model_sha256)
    if key not in _NETWORKS:
        if file_sha256(Path(model_path)) != model_sha256:
            return None
        _NETWORKS[key] = load(model_path)
    return _NETWORKS[key]


def evaluate_point(point: dict, model_path: str, model_sha256: str) -> dict:
    """The Dask task of one point (see the module documentation)."""
    from accel.hw import evaluate
    from accel.sim.tbio import to_json

    start = time.perf_counter()
    try:
        network = _network(model_path, model_sha256)
    except (OSError, AccelError) as exc:
        return {"status": "fatal", "error": f"cannot read the model {model_path} on this "
                                            f"worker: {exc}"}
    if network is None:
        return {"status": "fatal", "error": f"the model {model_path} on this worker is not the "
                                            f"file the sweep hashed (sha256 {model_sha256[:12]})"}
    try:
        result, summary = _run_point(evaluate.estimate, point, network, model_sha256)
    except AccelError as exc:
        return {"status": "error", "error": str(exc),
                "seconds": time.perf_counter() - start}
    data = result.to_json()
    data["compression"] = summary
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=to_json,
                      allow_nan=False)
    return {"status": "ok", "result": text, "seconds": time.perf_counter() - start}


def _run_point(run, point: dict, network, model_sha256: str):
    """``point``'s network, compressed and configured, through ``run`` (``evaluate.estimate``
    or ``evaluate.simulate``): (the SimResult, the compression summary)."""
    inputs, labels = evaluation_data(network, point["data"], point["images"])
    arch, compressed, mapping, summary = configure_point(point, network, model_sha256)
    on_chip = point.get("on_chip_kib")
    result = run(arch, mapping, compressed, inputs, labels, model=point["model"],
                 clock_mhz=point["clock_mhz"], tech=_technology(point["tech"]),
                 on_chip_bytes=None if on_chip is None else 1024 * on_chip)
    return result, summary


# what a Verilator replay must reproduce of the stored estimate, exactly
REPLAYED = ("cycles_per_inference", "latency_cycles", "events", "energy_uj_per_inference",
            "accuracy", "predictions")


def verify_point(point: dict, model_path: str, model_sha256: str, estimate: dict) -> dict:
    """The Dask task replaying one stored point in Verilator (``accel.hw.evaluate.simulate``):
    {"status": "ok", "bit_exact", "agrees" (RTL == cycle model in cycles, events, energy),
    "equal" (the RTL's figures equal the stored estimate's, ``REPLAYED``), "differ" (the keys
    that do not), "seconds"} or {"status": "error", "error": line}."""
    from accel.hw import evaluate

    start = time.perf_counter()
    network = _network(model_path, model_sha256)
    if network is None:
        return {"status": "error", "error": f"the model {model_path} on this worker is not the "
                                            "file the sweep hashed"}
    try:
        result, _ = _run_point(evaluate.simulate, point, network, model_sha256)
    except AccelError as exc:
        return {"status": "error", "error": str(exc), "seconds": time.perf_counter() - start}
    data = json.loads(json.dumps(result.to_json(), default=_plain))
    differ = [key for key in REPLAYED if data.get(key) != estimate.get(key)]
    return {"status": "ok", "bit_exact": bool(result.bit_exact), "agrees": bool(result.agrees),
            "equal": not differ, "differ": differ, "seconds": time.perf_counter() - start}


def _plain(value):
    from accel.sim.tbio import to_json

    return to_json(value)
