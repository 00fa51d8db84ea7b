"""Mapping a network onto FINN-style streaming hardware: one Matrix-Vector-Threshold Unit
(MVTU) per dense layer, folded by PE (output channels in parallel) and SIMD (input elements in
parallel), chained through FIFOs.

Streams carry integers in the golden model's encoding (``accel.nn.golden``): a bipolar element
is one bit (1 means +1, 0 means -1), a signed element is two's complement, an unsigned one is
plain binary. The host quantizes the input (the network's first ``Quant``) and streams integers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.nn import golden
from accel.nn.ir import DataType, Dense, Flatten, MultiThreshold, Network, Quant


@dataclass(frozen=True)
class Element:
    """How one stream element is encoded: ``bits`` wide, signed two's complement or not, or
    bipolar (one bit)."""

    bits: int
    signed: bool
    bipolar: bool = False

    @staticmethod
    def of(dtype: DataType) -> "Element":
        if dtype.is_float:
            raise ConfigError("FINN streams carry integers; a float tensor cannot be mapped")
        if dtype.bipolar:
            return Element(1, False, True)
        return Element(dtype.bits, dtype.signed)

    def encode(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64)
        if self.bipolar:
            return (values > 0).astype(np.int64)
        return values & ((1 << self.bits) - 1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64)
        if self.bipolar:
            return 2 * codes - 1
        if self.signed:
            return np.where(codes >= 1 << (self.bits - 1), codes - (1 << self.bits), codes)
        return codes


@dataclass
class LayerMapping:
    """One MVTU: ``weights`` (mh, mw) integers; ``thresholds`` (mh, steps) or None (raw
    accumulator output); output integer = count + ``out_offset`` (bipolar: 2*count - 1)."""

    name: str
    mw: int
    mh: int
    pe: int
    simd: int
    vectors: int
    input: Element
    weight: Element
    accumulator: Element
    output: Element
    weights: np.ndarray = field(repr=False)
    thresholds: np.ndarray | None = field(repr=False, default=None)
    out_offset: int = 0

    @property
    def neuron_fold(self) -> int:
        return self.mh // self.pe

    @property
    def synapse_fold(self) -> int:
        return self.mw // self.simd

    @property
    def cycles_per_frame(self) -> int:
        """FINN's formula: (MH/PE) * (MW/SIMD) * input vectors."""
        return self.neuron_fold * self.synapse_fold * self.vectors

    @property
    def steps(self) -> int:
        return 0 if self.thresholds is None else self.thresholds.shape[1]


@dataclass
class FinnMapping:
    network: str
    layers: list[LayerMapping]
    fifo_depths: list[int]  # in consumer beats, between consecutive layers (len(layers) - 1)
    count_events: bool = True

    @property
    def input(self) -> Element:
        return self.layers[0].input

    @property
    def initiation_interval(self) -> int:
        """Cycles between frames in steady state: the slowest stage's."""
        return max(layer.cycles_per_frame for layer in self.layers)

    def manifest(self) -> dict:
        layers = []
        for layer in self.layers:
            entry = {k: v for k, v in asdict(layer).items() if k not in ("weights", "thresholds")}
            entry["cycles_per_frame"] = layer.cycles_per_frame
            entry["weight_memory_depth"] = layer.mw * layer.mh // (layer.pe * layer.simd)
            layers.append(entry)
        return {"arch": "finn", "network": self.network, "layers": layers,
                "fifo_depths": self.fifo_depths,
                "expected_cycles_per_frame": self.initiation_interval}


DEFAULT_FIFO_DEPTH = 2  # the smallest FIFO the generator places


def legal_folds(size: int) -> list[int]:
    return [d for d in range(1, size + 1) if size % d == 0]


def load_folding(spec) -> dict:
    """A folding from a dict, or a JSON/YAML file: {layer name: {"pe": P, "simd": S}}."""
    if spec is None or isinstance(spec, dict):
        return dict(spec or {})
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"no such folding file: {path}")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise ConfigError(f"{path}: not valid {path.suffix[1:] or 'JSON'} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a folding maps layer names to {{pe, simd}}")
    return data


def map_network(network: Network, folding=None, fifo_depths=None,
                count_events: bool = True) -> FinnMapping:
    """Validate that ``network`` fits the FINN architecture and fix every parameter."""
    folding = load_folding(folding)
    layers = network.layers
    types = network.tensor_types()
    index = 0
    if layers and isinstance(layers[0], Quant):
        index = 1  # the host quantizes the input
    if types[index][1].is_float:
        raise ConfigError(f"network {network.name}: FINN needs a quantized input (a Quant first)")
    mapped: list[LayerMapping] = []
    unknown = set(folding) - {layer.name for layer in layers if isinstance(layer, Dense)}
    if unknown:
        raise ConfigError(f"folding names layers that are not dense layers of {network.name}: "
                          f"{', '.join(sorted(unknown))}")
    while index < len(layers):
        layer = layers[index]
        in_shape, in_type = types[index]
        if isinstance(layer, Flatten):
            if len(in_shape) != 2:
                raise ConfigError(f"layer {layer.name}: flattening feature maps needs the "
                                  "sliding-window unit, which is not implemented yet")
            index += 1
            continue
        if not isinstance(layer, Dense):
            raise ConfigError(f"layer {layer.name} ({layer.op}): not supported by the FINN "
                              "mapper yet (dense layers with thresholds)")
        acc_type = types[index + 1][1]
        thresholds, out_offset, out_type = None, 0, acc_type
        if index + 1 < len(layers) and isinstance(layers[index + 1], MultiThreshold):
            act: MultiThreshold = layers[index + 1]
            out_type = types[index + 2][1]
            thresholds = _clamped_thresholds(act, layer, in_type)
            out_offset = 0 if act.is_bipolar else act.offset
            index += 2
        else:
            index += 1
            if index < len(layers):
                raise ConfigError(f"layer {layer.name}: a dense layer must be followed by a "
                                  "MultiThreshold, or be the last layer (raw output)")
        fold = folding.get(layer.name, {})
        pe, simd = int(fold.get("pe", 1)), int(fold.get("simd", 1))
        if layer.outputs % pe:
            raise ConfigError(f"layer {layer.name}: PE={pe} does not divide MH={layer.outputs}; "
                              f"legal PE: {legal_folds(layer.outputs)}")
        if layer.inputs % simd:
            raise ConfigError(f"layer {layer.name}: SIMD={simd} does not divide "
                              f"MW={layer.inputs}; legal SIMD: {legal_folds(layer.inputs)}")
        mapped.append(LayerMapping(
            name=layer.name, mw=layer.inputs, mh=layer.outputs, pe=pe, simd=simd, vectors=1,
            input=Element.of(in_type), weight=Element.of(layer.weight_type),
            accumulator=Element(acc_type.bits, True), output=Element.of(out_type)
            if thresholds is not None else Element(acc_type.bits, True),
            weights=layer.weights.astype(np.int64), thresholds=thresholds,
            out_offset=out_offset))
        if layer.bias is not None:
            raise ConfigError(f"layer {layer.name}: biases must be folded into thresholds for "
                              "FINN")
    if not mapped:
        raise ConfigError(f"network {network.name} has no dense layers to map")
    for before, after in zip(mapped, mapped[1:]):
        if before.pe % after.simd and after.simd % before.pe:
            raise ConfigError(f"layers {before.name} -> {after.name}: PE={before.pe} and the "
                              f"next SIMD={after.simd} must divide one another (stream width "
                              "conversion)")
    # A consumer takes its input only during its first neuron fold, one beat per cycle, and
    # replays it for the others. A FIFO that holds one whole frame of the consumer's input
    # beats lets the producer run a frame ahead: then each stage works at its own rate and the
    # dataflow's initiation interval is the slowest stage's (FINN's goal). Smaller FIFOs (an
    # override) save memory but serialize neighbouring stages.
    depths = list(fifo_depths) if fifo_depths is not None else \
        [max(DEFAULT_FIFO_DEPTH, layer.synapse_fold * layer.vectors) for layer in mapped[1:]]
    if len(depths) != len(mapped) - 1 or any(d < 1 for d in depths):
        raise ConfigError(f"need {len(mapped) - 1} positive FIFO depths, got {depths}")
    return FinnMapping(network.name, mapped, depths, count_events)


def _clamped_thresholds(act: MultiThreshold, layer: Dense, in_type: DataType) -> np.ndarray:
    """Thresholds per output channel, clamped to [lowest accumulator, highest + 1]: the same
    counts for every reachable accumulator, in a register one bit wider than the accumulator."""
    lo, hi = golden.accumulator_range(layer, in_type)
    t = act.thresholds
    if t.shape[0] == 1:
        t = np.repeat(t, layer.outputs, axis=0)
    return np.clip(t, lo.min(), hi.max() + 1)


def auto_fold(network: Network, target_fps: float, clock_mhz: float) -> dict:
    """The cheapest folding (fewest PE x SIMD lanes in total) whose every layer finishes a
    frame within the initiation interval ``clock / target_fps``: FINN's balancing, where no
    layer is made faster than the target needs. Raises if even full unfolding is too slow."""
    if target_fps <= 0 or clock_mhz <= 0:
        raise ConfigError("target frames per second and clock must be positive")
    budget = int(clock_mhz * 1e6 // target_fps)
    dense = map_network(network)  # validates the network; every layer at PE = SIMD = 1
    options = []
    for layer in dense.layers:
        fits = sorted(((pe * simd, -simd, pe, simd) for pe in legal_folds(layer.mh)
                       for simd in legal_folds(layer.mw)
                       if (layer.mh // pe) * (layer.mw // simd) * layer.vectors <= budget))
        if not fits:
            raise ConfigError(f"layer {layer.name}: even fully unfolded it needs "
                              f"{layer.vectors} cycles per frame, more than the "
                              f"{budget}-cycle budget of {target_fps:g} frames/s at "
                              f"{clock_mhz:g} MHz")
        options.append([(pe, simd) for _, _, pe, simd in fits])

    def search(k: int, previous_pe: int | None):
        if k == len(options):
            return []
        for pe, simd in options[k]:
            if previous_pe is not None and previous_pe % simd and simd % previous_pe:
                continue
            rest = search(k + 1, pe)
            if rest is not None:
                return [(pe, simd)] + rest
        return None

    chosen = search(0, None)
    if chosen is None:
        raise ConfigError("no folding meets the target with compatible neighbouring widths")
    return {layer.name: {"pe": pe, "simd": simd} for layer, (pe, simd) in zip(dense.layers, chosen)}
