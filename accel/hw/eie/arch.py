"""The EIE-style sparse engine's faces (``accel.hw.architecture``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.errors import ConfigError
from accel.hw.architecture import Architecture, RTLRun, Timing, check_positive, option
from accel.hw.common.counters import DEFAULT_COUNTER_WIDTH
from accel.hw.eie.energy import event_specs, storage_of
from accel.hw.eie.loading import fitted_mapping, parameter_writes
from accel.hw.eie.mapping import EIENetworkMapping, map_network
from accel.hw.eie.model import ENTRIES_PER_WORD, ENTRY_BITS
from accel.hw.eie.rtl import (POINTER_FLAG_BITS, EIEHarness, EIEVectorLoader,
                              event_declarations, pointer_bits)
from accel.hw.eie.run import model_timing, network_layer_inputs, run_rtl
from accel.nn import golden

MAX_QUEUE_DEPTH = 1024  # EIE's paper uses 8: gains flatten past it


@dataclass(frozen=True)
class EIEOptions:
    pes: int = option(4, help="processing elements", parse=int, metavar="N")
    queue_depth: int = option(8, help="activation queue depth per PE", parse=int, metavar="D")
    sparse_word_bits: int = option(ENTRIES_PER_WORD * ENTRY_BITS,
                                   help="sparse-matrix SRAM word width, 16 to 512", parse=int,
                                   metavar="BITS")
    loadable_weights: bool = option(
        False, help="pointer, sparse-matrix, codebook and bias memories writable through a "
                    "parameter port (param_addr/data/en), so a network of the same shape runs "
                    "without resynthesis; accumulators are sized for any weights of the type",
        parse=bool)
    sparse_capacity: int | None = option(
        help="with --loadable-weights: sparse-matrix entries each PE holds (default: the "
             "network's largest PE, rounded up to a power of two words)", parse=int,
        metavar="ENTRIES")


class EIEArchitecture(Architecture):
    name = "eie"
    title = "EIE-style sparse engine (CSC per PE, shared weights, nonzero activations only)"
    Options = EIEOptions
    top_name = "eie_top"
    # elaboration time grows faster than the PE count (4 PEs 11 s, 16 PEs 24 s, 64 PEs 56 s,
    # 256 PEs unfinished after 8 minutes, on mlp-sparse); the cycle model's tables are PEs x
    # columns (4096 x 4096: 2.7 GB for 5 images); 64 PEs on VGG-6 (25088 columns) fit
    size_budget = {"pes": 128}
    model_budget = {"pe_columns": 1 << 23}
    size_labels = {"pes": "PEs", "pe_columns": "pe columns per image (PEs x layer columns)"}

    def configure(self, network, options: EIEOptions, *, clock_mhz: float,
                  count_events: bool = True) -> EIENetworkMapping:
        """``pes`` PEs with activation queues of ``queue_depth`` and sparse-matrix SRAM words
        of ``sparse_word_bits``; the clock only states times (EIE's timing does not depend on
        it)."""
        from accel.nn.ir import Dense

        for flag, value in (("--pes", options.pes), ("--queue-depth", options.queue_depth),
                            ("--sparse-word-bits", options.sparse_word_bits)):
            check_positive(flag, value, integer=True)
        check_positive("--queue-depth", options.queue_depth, integer=True,
                       maximum=MAX_QUEUE_DEPTH)
        # before mapping, which allocates per PE: a PE beyond the widest layer's rows would own
        # no row of any layer
        dense = [layer for layer in network.layers if isinstance(layer, Dense)]
        if dense:
            widest = max(dense, key=lambda layer: layer.outputs)
            if options.pes > widest.outputs:
                raise ConfigError(f"--pes {options.pes}: more PEs than the {widest.outputs} rows "
                                  f"of the widest layer ({widest.name}), so some would never "
                                  f"work; use at most {widest.outputs}")
        if options.sparse_word_bits % ENTRY_BITS:
            raise ConfigError(f"--sparse-word-bits {options.sparse_word_bits}: a word holds "
                              f"whole {ENTRY_BITS}-bit entries")
        return map_network(network, num_pes=options.pes, queue_depth=options.queue_depth,
                           count_events=count_events,
                           entries_per_word=options.sparse_word_bits // ENTRY_BITS,
                           loadable_weights=options.loadable_weights,
                           sparse_capacity=options.sparse_capacity)

    def rtl(self, mapping: EIENetworkMapping) -> EIEHarness:
        return EIEHarness(mapping)

    def harness(self, mapping: EIENetworkMapping, frames: int) -> EIEVectorLoader:
        return EIEVectorLoader(mapping)

    def run_rtl(self, mapping: EIENetworkMapping, network, inputs: np.ndarray, *,
                max_cycles: int) -> RTLRun:
        vectors = network_layer_inputs(network, golden.run(network, inputs,
                                                           return_all=True))[0]
        # a loadable design loads the network through its parameter port
        results = run_rtl(mapping, vectors, max_cycles=max_cycles,
                          network=network if mapping.loadable_weights else None)
        events = {name: sum(r["events"][name] for r in results)
                  for name in results[0]["events"]}
        return RTLRun(np.array([r["outputs"] for r in results]),
                      sum(r["cycles"] for r in results), results[0]["cycles"], events,
                      results[0]["seconds"])

    def estimate(self, mapping: EIENetworkMapping, network, inputs: np.ndarray) -> Timing:
        """The cycle model of ``mapping`` running ``network``: a loadable design runs the
        network it is loaded with (its sparse matrices set the cycles), a fixed one its own."""
        if mapping.loadable_weights:
            mapping = fitted_mapping(mapping, network)
        trace = golden.run(network, inputs, return_all=True)
        batch = model_timing(mapping, network_layer_inputs(network, trace))
        return Timing(len(inputs), int(batch.cycles.sum()), int(batch.cycles[0]), batch.events,
                      {"ideal_cycles": batch.ideal_cycles,
                       "compute_cycles": batch.compute_cycles})

    def event_specs(self, mapping: EIENetworkMapping) -> dict:
        return event_specs(storage_of(mapping))

    resource_model = True

    def resources(self, mapping) -> dict:
        from accel.hw.eie.resources import resources

        return resources(mapping)

    def block_ram_groups(self, mapping: EIENetworkMapping) -> list[str]:
        """Each PE's pointer banks and sparse-matrix SRAM (``pe{k}_``): a PE's logic sits
        between them, so apart they string it out across the die."""
        return [f"pe{k}_" for k in range(mapping.num_pes)]

    def size_estimate(self, mapping: EIENetworkMapping) -> dict[str, int]:
        """Per PE: pointer banks, sparse-matrix words, accumulators, biases, the activation
        bank and queue, touched bits; the nonzero flags and counters; the widest of the
        flags, the sparse word and the counter readout (the harness: the input vector)."""
        n, per_word = mapping.num_pes, mapping.entries_per_word
        pointers = [sum(len(spec.matrix.pointers[k]) for spec in mapping.layers)
                    for k in range(n)]
        entries = [max(stored, mapping.sparse_capacity) for stored in mapping.stored_entries()]
        pointer_width = pointer_bits(mapping)
        local_rows = max(mapping.max_local_rows, 2)
        acc, act = mapping.accumulator_bits, mapping.activation_bits
        # a queued column (``QueuedColumn``, without its pe_storage pass): pointers, flags, value
        queued = 2 * pointer_width + POINTER_FLAG_BITS + act
        word = per_word * ENTRY_BITS
        per_pe = [pointers[k] * pointer_width + -(-entries[k] // per_word) * word
                  + local_rows * (2 * acc + 1) * len(mapping.layers)  # accumulators, biases
                  + max(mapping.bank_rows, 2) * act + mapping.queue_depth * queued
                  for k in range(n)]
        events = event_declarations(mapping)
        counters = DEFAULT_COUNTER_WIDTH * len(events) if mapping.count_events else 0
        column_signal = (max(mapping.max_cols, 2) - 1).bit_length()
        widest = max(n, local_rows, word, acc, pointer_width, counters,
                     sum(count.bit_length() for count in events.values()),
                     # the broadcast's one-hot "sent" update: a shift by the column number
                     mapping.max_cols + (1 << column_signal) - 1)
        return {"storage_bits": sum(per_pe) + 2 * mapping.max_cols + counters,
                "widest_bits": widest,
                "harness_widest_bits": max(widest, mapping.max_cols * act),
                "pes": n, "pe_columns": n * sum(spec.cols for spec in mapping.layers)}

    def macs(self, events_per_inference) -> float:
        return sum(count for name, count in events_per_inference.items()
                   if name.endswith(".pe.mult.mac"))

    def manifest(self, mapping: EIENetworkMapping, top: EIEHarness) -> dict:
        n = mapping.num_pes
        layers = []
        for spec in mapping.layers:
            layers.append({"name": spec.name, "rows": spec.rows, "cols": spec.cols,
                           "nonzero_weights":
                           spec.matrix.total_entries - spec.matrix.padding_entries,
                           "padding_entries": int(spec.matrix.padding_entries),
                           "codebook": [int(c) for c in spec.codebook],
                           "local_rows_per_pe": spec.local_rows})
        return {
            "network": mapping.name, "num_pes": n,
            "queue_depth": mapping.queue_depth, "activation_bits": mapping.activation_bits,
            "accumulator_bits": mapping.accumulator_bits, "pointer_bits": pointer_bits(mapping),
            "sparse_word_bits": mapping.entries_per_word * ENTRY_BITS,
            "sparse_entries_per_pe": mapping.stored_entries(),
            **({"sparse_capacity_per_pe": mapping.sparse_capacity}
               if mapping.loadable_weights else {}),
            "activation_bank_rows": mapping.bank_rows, "layers": layers,
            "protocol": (
                "hold run low; load input activation j with load_bank = j mod num_pes, "
                "load_row = j div num_pes, load_data (two's complement), load_en high for one "
                "cycle each (zeros included: every column of the widest layer); raise run and "
                "hold it; when done is high, output row i is on read_data one clock edge after "
                "read_pe = i mod num_pes, read_row = i div num_pes are set (the last layer's "
                "accumulator, before its bias); cycles counts the run; lower run before the "
                "next input"),
            "final_bias": None if mapping.final_bias is None else
            [int(b) for b in mapping.final_bias],
            "events": list(event_declarations(mapping)) if mapping.count_events else [],
            **({"event_counter_width": top.counters.width}
               if mapping.count_events else {}),
            **({"parameter_port": top.layout.manifest(parameter_writes(mapping))}
               if mapping.loadable_weights else {}),
        }

    def summary(self, mapping: EIENetworkMapping, timing: Timing) -> dict:
        compute = timing.extra["compute_cycles"]
        return {"load_balance_efficiency":
                timing.extra["ideal_cycles"] / compute if compute else 1.0,
                "writeback_cycles_per_inference": (timing.cycles - compute) / timing.frames,
                "num_pes": mapping.num_pes, "queue_depth": mapping.queue_depth,
                "sparse_word_bits": mapping.entries_per_word * ENTRY_BITS}

    def summary_rows(self, result) -> list[tuple[str, str]]:
        return [("load-balance efficiency", f"{result['load_balance_efficiency']:.3f}")]

    def label(self, result) -> str:
        return f"{result['num_pes']} PEs, queue {result['queue_depth']}"

    def example(self):
        from accel.nn import DataType, Dense, Network, Quant, Relu

        rng = np.random.default_rng(0)
        weights = [np.where(rng.random(shape) < 0.3, rng.integers(-3, 4, shape), 0)
                   for shape in ((12, 16), (5, 12))]
        network = Network("eie_example", (1, 16), [
            Quant("quant", bits=8, signed=True, scale=2.0**-4),
            Dense("fc0", weights=weights[0], weight_type=DataType(3, True)),
            Relu("relu0"),
            Quant("quant1", bits=8, signed=True, scale=2.0**-2),
            Dense("fc1", weights=weights[1], weight_type=DataType(3, True)),
        ])
        inputs = np.where(rng.random((6, 16)) < 0.5, rng.uniform(-4, 4, (6, 16)), 0.0)
        return network, EIEOptions(pes=3, queue_depth=2), inputs


ARCHITECTURE = EIEArchitecture()
