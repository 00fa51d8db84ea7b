"""accel's YodaNN engine at the paper's configuration against YodaNN's published figures.

The engine: 32 SoP units of 7x7 taps, 32 input channels, 12-bit activations, image rows of 32
columns (the reconstruction in the field notes). The layers: one binary-weight convolution of
32 -> 32 channels on a 32 x 32 image ("same" padding) per kernel size, 7x7, 5x5 and 3x3, each
simulated in Verilator with its outputs checked bit-exact and its cycles and every event
checked equal to the cycle model (``--model-only``: the cycle model alone, seconds).

Printed, per kernel size, beside the paper's figures (1 binary MAC = 2 Op, as ETH counts):
  binary MACs per cycle    per SoP cycle (the array's peak: 32 x k^2) and averaged over the
                           layer's passes (image-bank prologues, row fills, filter loads, the
                           second stripe); the host stream, one activation per beat, is left
                           out: at full rate it adds exactly one cycle per input and output
                           value (32,768 each way here), which the frame column shows
  utilization              binary MACs / (32 x 49 x cycles): 100 % / 51 % / 18 % in the paper
  GOp/s at 481 MHz         the paper's 1.2 V clock: 1510 / 770 / 277
  fJ/Op and TOp/s/W        at 65 nm 1.2 V and 0.6 V (17.5 MHz): ~101 fJ/Op (9.87 TOp/s/W) and
                           16.3 fJ/Op (61.2 TOp/s/W) derived from the paper's power figures;
                           ours for the whole engine and for its core alone (without the
                           activation buffers, which stand in for the paper's off-chip image
                           stream, and without the weight memory the paper streams in too)
Then the same network on FINN and on YodaNN, side by side (cycle models, which the tests hold
equal to the RTL): FINN needs threshold activations, and 12-bit ones would be 4,095 thresholds
per channel, so both run a twin of bwn-cnn with 4-bit unsigned activations (scales calibrated
on the training split, powers of two; the biases after them rescaled): ReLU + quantizer on
YodaNN, the same function as thresholds (checked equal by the golden model) on FINN, folded
for YodaNN's frame rate. Cycles per frame, energy per frame (45 nm), storage bits.
The engine is built as an ASIC at YodaNN's clock would be: SoP trees without pipeline
registers (``--sop-stage-levels 0``; the FPGA default cuts them every two levels, and those
registers, clocked every cycle, would cost 22,436 flip-flops on the 7x7 engine).
Usage: python benchmarks/yodann_paper.py [--model-only]
"""

import argparse
import time
from dataclasses import replace

import numpy as np

from accel.energy.tech import load_technology
from accel.hw import evaluate
from accel.hw.registry import architecture
from accel.nn import Conv2d, DataType, Dense, MultiThreshold, Network, Quant, Relu, golden, load
from accel.nn.data import digits_split
from accel.nn.evaluate import network_inputs

PAPER_GOPS = {7: 1510, 5: 770, 3: 277}
PAPER_UTILIZATION = {7: 1.00, 5: 0.51, 3: 0.18}
PAPER_FJ_PER_OP = {1.2: 101.0, 0.6: 16.3}  # derived from 1.5 TOp/s at 153 mW; 61.2 TOp/s/W
NOT_IN_PAPER_CORE = ("act_buffer", "weight_mem")  # what the paper's chip receives over I/O
ASIC = architecture("yodann").Options(sop_stage_levels=0)  # the paper's engine, as an ASIC


def layer_network(kernel: int, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    return Network(f"conv{kernel}x{kernel}", (1, 32, 32, 32), [
        Quant("quant", bits=12, signed=True, scale=2.0**-9),
        Conv2d("conv", weights=np.where(rng.random((32, 32, kernel, kernel)) < 0.5, -1, 1),
               weight_type=DataType.bipolar_type(2.0**-4), bias=rng.integers(-64, 65, 32),
               padding=kernel // 2),
        Relu("relu"),
        Quant("requant", bits=12, signed=True, scale=2.0**-7),
    ])


def run(kernel: int, tech: str, clock_mhz: float, model_only: bool):
    arch = architecture("yodann")
    network = layer_network(kernel)
    mapping = arch.configure(network, ASIC, clock_mhz=clock_mhz)
    inputs = np.random.default_rng(kernel).uniform(-4, 4, (1, 32, 32, 32))
    path = evaluate.estimate if model_only else evaluate.simulate
    result = path(arch, mapping, network, inputs, model=network.name, clock_mhz=clock_mhz,
                  tech=tech)
    if not model_only:
        assert result.bit_exact and result.model_events_equal and result.agrees, kernel
    return result


def low_bit_twins(network: Network, calibration: np.ndarray, bits: int = 4):
    """(YodaNN form, FINN form) of ``network`` with every ReLU + quantizer after a layer
    replaced by a ``bits``-bit unsigned one: the quantizer's scale a power of two times the
    old one, covering the calibration's 99.9th percentile; the FINN form has the same function
    as thresholds (the layer's bias folded in) and the last layer's bias on the host."""
    types = network.tensor_types()
    trace = golden.run(network, calibration, return_all=True)
    layers = network.layers
    yodann, finn = [], []
    index, rescale = 0, 1.0  # rescale: how much coarser the current layer's input scale is
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, Relu) and isinstance(layers[index + 1], Quant):
            quant = layers[index + 1]
            peak = max(float(np.percentile(trace[index + 1], 99.9)), 1.0)  # in quant's units
            scale = quant.scale * 2.0 ** max(int(np.ceil(np.log2(peak / ((1 << bits) - 1)))), 0)
            yodann += [layer, Quant(quant.name, bits=bits, signed=False, scale=scale,
                                    rounding=quant.rounding)]
            shift = int(round(-np.log2(types[index][1].scale * rescale / scale)))
            candidates = np.arange(0, (1 << bits) << shift)
            levels = np.clip(golden.round_rational(candidates, 1 << shift, quant.rounding), 0,
                             (1 << bits) - 1)
            steps = np.array([candidates[np.argmax(levels >= k)] for k in range(1, 1 << bits)])
            producer = finn.pop()
            finn += [replace(producer, bias=None), MultiThreshold(
                quant.name, thresholds=steps[None, :] - producer.bias[:, None],
                out_scale=scale)]
            rescale = scale / quant.scale
            index += 2
            continue
        if isinstance(layer, (Conv2d, Dense)) and layer.bias is not None and rescale != 1:
            # the bias is in units of the input's scale, now ``rescale`` times coarser
            layer = replace(layer, bias=np.rint(layer.bias / rescale).astype(np.int64))
        yodann.append(layer)
        if index == len(layers) - 1 and getattr(layer, "bias", None) is not None:
            unit = types[index][1].scale * rescale * layer.weight_type.scale
            layer = replace(layer, bias=None, real_bias=layer.bias * unit)  # FINN: the host's
        finn.append(layer)
        index += 1
    name = f"{network.name}-a{bits}"
    return (Network(name, network.input_shape, yodann, network.input_type),
            Network(f"{name}-thresholds", network.input_shape, finn, network.input_type))


def side_by_side() -> None:
    split = digits_split()
    original = load("bwn-cnn")
    twins = low_bit_twins(original, network_inputs(original, split.x_train))
    inputs = network_inputs(original, split.x_test)
    outputs = [golden.output_values(net, golden.run(net, inputs)) for net in twins]
    assert np.array_equal(*outputs), "the twins differ"
    accuracy = (outputs[0].argmax(1) == split.y_test).mean()
    print(f"\nbwn-cnn with 4-bit activations ({100 * accuracy:.2f} % on the test split; 12-bit: "
          f"98.05 %), cycle models at 200 MHz, 45 nm:")
    print(f"{'engine':38s} {'cycles/frame':>12} {'nJ/frame':>9} {'storage bits':>12}")
    yodann, finn = architecture("yodann"), architecture("finn")
    fps = None
    for label, arch, network, options in (
            ("YodaNN, paper engine (32x32 SoPs, 7x7)", yodann, twins[0], ASIC),
            ("YodaNN, 32x32 SoPs of 3x3", yodann, twins[0], replace(ASIC, k_max=3)),
            ("FINN, folded for YodaNN's frame rate", finn, twins[1], None)):
        if options is None:
            options = finn.Options(target_fps=fps)
        mapping = arch.configure(network, options, clock_mhz=200.0)
        result = evaluate.estimate(arch, mapping, network, inputs, split.y_test,
                                   model=network.name, clock_mhz=200.0)
        fps = fps or result.throughput_fps
        print(f"{label:38s} {result.cycles_per_inference:12.0f} "
              f"{1e3 * result.extra['energy_uj_per_inference']:9.1f} "
              f"{arch.size_estimate(mapping)['storage_bits']:12,d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-only", action="store_true",
                        help="the cycle model alone (no Verilator)")
    args = parser.parse_args()
    low = load_technology("65nm@0.6V")
    source = "cycle model" if args.model_only else "RTL counters (Verilator), = cycle model"
    print(f"YodaNN engine 32 x 32 SoPs, 7x7 taps, 12-bit; 32 -> 32 channels, 32 x 32 image; "
          f"figures from the {source}")
    print(f"{'kernel':>6} {'frame cycles':>12} {'MAC/SoP-cycle':>13} {'MAC/cycle':>9} "
          f"{'util':>6} {'paper':>6} "
          f"{'GOp/s@481':>9} {'paper':>6} | {'fJ/Op 1.2V':>10} {'core':>6} {'paper':>6} "
          f"{'fJ/Op 0.6V':>10} {'core':>6} {'paper':>6} {'TOp/s/W 0.6V':>12}")
    for kernel in (7, 5, 3):
        start = time.perf_counter()
        nominal = run(kernel, "65nm", 481.0, args.model_only)
        # the same events at 0.6 V: the cycle model (equal to the RTL, checked just above)
        scaled = run(kernel, "65nm@0.6V", low.clock_mhz(), model_only=True)
        macs = nominal.events["sop.mac"]
        sop_cycles = nominal.events["filter_bank.read"]
        frame = nominal.cycles_per_inference
        cycles = frame - nominal.events["input.beat"] - nominal.events["output.beat"]
        ops = 2 * macs
        row = [f"{kernel}x{kernel:<4}", f"{frame:12.0f}", f"{macs / sop_cycles:13.0f}",
               f"{macs / cycles:9.0f}",
               f"{macs / (32 * 49 * cycles):6.1%}", f"{PAPER_UTILIZATION[kernel]:6.0%}",
               f"{ops / cycles * 481e6 / 1e9:9.0f}", f"{PAPER_GOPS[kernel]:6d}", "|"]
        for result, volts in ((nominal, 1.2), (scaled, 0.6)):
            total_pj = result.extra["energy_uj_per_inference"] * 1e6
            breakdown = result.extra["energy_by_component_uj"]
            core_pj = total_pj - 1e6 * sum(value for name, value in breakdown.items()
                                           if name.startswith(NOT_IN_PAPER_CORE))
            row += [f"{total_pj / ops * 1e3:10.1f}", f"{core_pj / ops * 1e3:6.1f}",
                    f"{PAPER_FJ_PER_OP[volts]:6.1f}"]
        row.append(f"{1e3 / (scaled.extra['energy_uj_per_inference'] * 1e6 / ops * 1e3):12.1f}")
        print(" ".join(row), f"({time.perf_counter() - start:.0f} s)")
    side_by_side()


if __name__ == "__main__":
    main()
