"""Cycle and event model of an EIE-style sparse engine (Han et al., ISCA 2016) for one layer.

This is the timing specification the EIE RTL is built to (issue 5); until the RTL exists it is
the architecture's fast model for exploration at sizes RTL cannot reach.

Microarchitecture modelled
--------------------------
- N PEs; row i of the (outputs x inputs) matrix belongs to PE i mod N; each PE stores its rows
  in EIE's CSC format (``accel.compress.eie``): 8-bit entries, padding entries for gaps over
  15, ``entries_per_word`` entries per sparse-matrix SRAM word (8 for 64-bit words).
- Central control: a leading-nonzero detector selects one nonzero activation (j, a_j) per
  cycle, in column order, from cycle ``FIRST_SELECT`` of a layer; ``BROADCAST_STAGES``
  registers carry it to every PE's activation queue (depth ``queue_depth``), one of them a
  relay to a copy beside each PE, the last of them each PE's read of the column's pointer
  pair from its even/odd banks (synchronous SRAM reads, p_j and p_j+1 together), which the
  queue holds with the value, so the first push is in cycle
  ``LNZD_LATENCY``. A column is selected only if every queue will have a free slot for it
  whatever the PEs pop: fewer than depth items stored and in flight together, as a register
  decided a cycle ahead from registered copies of the queues' levels. That keeps the queues
  out of the detector's timing path; in the recurrence a freed slot takes a push
  ``QUEUE_ROOM_LAG`` cycles after the pop that freed it.
- Issue stage: takes (pops) the column at its queue's head once its previous column is done
  (a pushed column is at the head in the cycle after its push) and issues one entry per cycle
  to the sparse-matrix SRAM (64-bit words, synchronous; a word is read for a column's
  first entry and whenever an entry starts a new word), so a column costs max(1, entries)
  cycles, one cycle for a column with no entries in this PE.
- Execute pipeline, ``PIPELINE_TAIL`` stages after issue (EIE's pipelined PE): the word is
  registered; the entry is picked from it; its row is found from the zero count and its
  codebook value looked up; the product is formed while the destination accumulator is read;
  the sum is written back. An entry hitting the row the entry before it is writing takes that
  sum through a bypass. A layer is done ``DONE_LATENCY`` cycles after the first cycle in which every
  queue and stage is empty.
- Between layers, every PE requantizes one local row per cycle through ``WRITEBACK_LATENCY``
  register stages (the read address, the read, the bias add, ReLU and the rounding shift,
  saturation), then into the bank.

Recurrences (column order t = 0, 1, ... over the nonzero activations; per PE k):
    broadcast[t] = max(broadcast[t-1] + 1, max_k pop[k][t - depth] + QUEUE_ROOM_LAG)
    pop[k][t]    = start[k][t] = max(broadcast[t] + 1, finish[k][t-1])
    finish[k][t] = start[k][t] + max(1, entries[k][column t])
    cycles       = max_k max_t (finish[k][t] + PIPELINE_TAIL if entries[k][column t] else
                                finish[k][t])      (FIRST_SELECT with no nonzero column)
                   + DONE_LATENCY
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accel.compress.eie import EIEMatrix, encode_eie
from accel.errors import ConfigError

FIRST_SELECT = 1  # the cycle of a layer in which the detector first selects a column
BROADCAST_STAGES = 5  # registers from the detector's choice to the push into the queues
LNZD_LATENCY = FIRST_SELECT + BROADCAST_STAGES  # the cycle of the first push
# a slot popped in cycle c is in the queue's level in c + 1, its registered copy in c + 2,
# the room register in c + 3 (a selection then)
QUEUE_ROOM_LAG = BROADCAST_STAGES + 3  # and so a push from c + this
PIPELINE_TAIL = 5  # execute stages after issue: word, entry, row/codebook, product/read, sum
# (the entry select and the codebook lookup in one stage was the critical path at 16 PEs)
DONE_LATENCY = 2  # a layer is done two cycles after it drains: each PE's part registered, then
# their AND (so no path crosses the die from a PE's logic to the control)
WRITEBACK_LATENCY = 5  # register stages from a row's turn to its bank write
ENTRY_BITS = 8  # 4-bit codebook index, 4-bit zero count
ENTRIES_PER_WORD = 8  # 64-bit sparse-matrix SRAM words
# Every event the engine counts, per layer (``layer_event``), in the order of the RTL's bank.
EVENTS = ("control.lnzd.broadcast", "pe.act_bank.write", "pe.act_queue.push",
          "pe.act_queue.pop", "pe.pointer_even.read", "pe.pointer_odd.read",
          "pe.sparse_sram.read", "pe.codebook.read", "pe.mult.mac", "pe.act_regfile.read",
          "pe.act_regfile.write", "pe.idle.cycle")


def layer_event(index: int, event: str) -> str:
    """Networks count every event per layer: ``l0.pe.mult.mac``, ``l1.pe.mult.mac``, ..."""
    return f"l{index}.{event}"


@dataclass
class EIELayerTiming:
    cycles: int
    ideal_cycles: float  # total work spread perfectly over the PEs
    busy_cycles: np.ndarray  # per PE
    events: dict[str, int]

    @property
    def load_balance_efficiency(self) -> float:
        return self.ideal_cycles / self.cycles if self.cycles else 1.0


def simulate_layer(matrix: EIEMatrix, activations: np.ndarray, queue_depth: int = 8,
                   entries_per_word: int = ENTRIES_PER_WORD) -> EIELayerTiming:
    """Cycles and events of one layer for one input vector (``activations``, length cols)."""
    activations = np.asarray(activations)
    if activations.shape != (matrix.cols,):
        raise ConfigError(f"activations of shape {activations.shape} for {matrix.cols} columns")
    batch = simulate_layer_batch(matrix, activations[None, :], queue_depth, entries_per_word)
    return EIELayerTiming(int(batch.cycles[0]), float(batch.ideal_cycles[0]),
                          batch.busy_cycles[0], batch.events)


@dataclass
class EIELayerBatch:
    """One layer for each of V input vectors: per-vector cycles and ideal cycles, per-vector
    per-PE busy cycles (V, N), and every event summed over the vectors."""

    cycles: np.ndarray
    ideal_cycles: np.ndarray
    busy_cycles: np.ndarray
    events: dict[str, int]


def simulate_layer_batch(matrix: EIEMatrix, activations: np.ndarray, queue_depth: int = 8,
                         entries_per_word: int = ENTRIES_PER_WORD) -> EIELayerBatch:
    """The recurrences of the module documentation for V vectors at once (``activations``:
    V x cols): one step per column position t, vectorised over vectors and PEs; a vector with
    fewer nonzero columns than the longest keeps its state through the steps past its last."""
    if queue_depth < 1:
        raise ConfigError(f"queue depth must be positive, got {queue_depth}")
    activations = np.asarray(activations)
    if activations.ndim != 2 or activations.shape[1] != matrix.cols:
        raise ConfigError(f"activations of shape {activations.shape} for {matrix.cols} columns")
    pointers = np.stack(matrix.pointers)  # (N, cols + 1)
    n_pes = len(pointers)
    # per column and PE: entries, cycles (at least one), sparse-matrix words read
    column_entries = (pointers[:, 1:] - pointers[:, :-1]).T  # (cols, N)
    column_costs = np.maximum(column_entries, 1)
    column_words = np.where(column_entries > 0, (pointers[:, 1:].T - 1) // entries_per_word
                            - pointers[:, :-1].T // entries_per_word + 1, 0)
    nonzero = activations != 0
    counts = nonzero.sum(axis=1)  # (V,)
    steps = int(counts.max()) if len(counts) else 0
    vectors = len(activations)
    # each vector's nonzero columns in column order, then (unused) padding
    columns = np.argsort(~nonzero, axis=1, kind="stable")[:, :steps]
    costs = column_costs[columns.T]  # (T, V, N): steps outermost, so a block is contiguous

    # With cost >= 1 the recurrences are, per vector and PE (start[-1] = finish[-1] = 0):
    #   broadcast[t] = max(broadcast[t-1] + 1, max_k pop[k][t-D] + QUEUE_ROOM_LAG)
    #   pop[t] = start[t] = max(broadcast[t] + 1, start[t-1] + cost[t-1])
    # Broadcasts of D consecutive steps depend only on pops D steps back, so a block of D steps
    # is two running maxima (broadcast, then start), not D sequential steps. Steps past a
    # vector's last column compute values nothing valid reads (valid steps are a prefix).
    depth = queue_depth
    start = np.empty((steps, vectors, n_pes), dtype=np.int64)
    broadcast_before = np.full(vectors, LNZD_LATENCY - 1, dtype=np.int64)
    start_before = np.zeros((vectors, n_pes), dtype=np.int64)
    finish_before = np.zeros((vectors, n_pes), dtype=np.int64)
    for t0 in range(0, steps, depth):
        t1 = min(t0 + depth, steps)
        span = np.arange(1, t1 - t0 + 1)[:, None]
        if t0 >= depth:
            bounds = start[t0 - depth:t1 - depth].max(axis=2) + QUEUE_ROOM_LAG - span
            block = span + np.maximum(broadcast_before, np.maximum.accumulate(bounds, axis=0))
        else:
            block = span + broadcast_before
        # start: gaps cost[t-1] (the first from the carried finish), bounds broadcast + 1
        gaps = np.empty((t1 - t0, vectors, n_pes), dtype=np.int64)
        gaps[0] = finish_before - start_before
        gaps[1:] = costs[t0:t1 - 1]
        total = np.cumsum(gaps, axis=0)
        start[t0:t1] = total + np.maximum(
            start_before, np.maximum.accumulate(block[:, :, None] + 1 - total, axis=0))
        broadcast_before = block[-1]
        start_before = start[t1 - 1]
        finish_before = start_before + costs[t1 - 1]
    # finish[t] = start[t] + cost[t] rises with t, so a PE drains after its last column or
    # PIPELINE_TAIL cycles after its last column with entries, whichever is later
    if steps:
        finish = start + costs
        valid = (np.arange(steps)[:, None] < counts[None, :])[:, :, None]
        has_entries = column_entries[columns.T] > 0  # (T, V, N)
        drained = np.where(valid, finish + PIPELINE_TAIL * has_entries, 0).max(axis=0)
        cycles = np.where(counts > 0, drained.max(axis=1), FIRST_SELECT) + DONE_LATENCY
    else:
        cycles = np.full(vectors, FIRST_SELECT + DONE_LATENCY, dtype=np.int64)
    taken = nonzero.astype(np.int64)
    busy = taken @ column_costs  # (V, N)
    total_entries = int((taken @ column_entries).sum())
    broadcasts = int(counts.sum())
    events = {
        "control.lnzd.broadcast": broadcasts,
        "pe.act_queue.push": broadcasts * n_pes,
        "pe.act_queue.pop": broadcasts * n_pes,
        "pe.pointer_even.read": broadcasts * n_pes,
        "pe.pointer_odd.read": broadcasts * n_pes,
        "pe.sparse_sram.read": int((taken @ column_words).sum()),
        "pe.codebook.read": total_entries,
        "pe.mult.mac": total_entries,
        # each entry reads and writes its destination accumulator (a bypassed read included)
        "pe.act_regfile.read": total_entries,
        "pe.act_regfile.write": total_entries,
        "pe.idle.cycle": int(cycles.sum() * n_pes - busy.sum()),
    }
    return EIELayerBatch(cycles, busy.sum(axis=1) / n_pes, busy, events)


def synthetic_layer(inputs: int, outputs: int, weight_density: float, activation_density: float,
                    num_pes: int, seed: int = 0) -> tuple[EIEMatrix, np.ndarray]:
    """A random layer of the given size and densities in EIE format, and an input vector with
    exactly round(activation_density * inputs) nonzeros."""
    rng = np.random.default_rng(seed)
    mask = rng.random((outputs, inputs), dtype=np.float32) < weight_density
    indices = np.zeros((outputs, inputs), dtype=np.uint8)
    indices[mask] = rng.integers(1, 16, int(mask.sum()), dtype=np.uint8)
    del mask
    matrix = encode_eie(indices, num_pes)
    activations = np.zeros(inputs, dtype=np.int64)
    chosen = rng.choice(inputs, int(round(activation_density * inputs)), replace=False)
    activations[chosen] = rng.integers(1, 1 << 15, len(chosen))
    return matrix, activations


@dataclass
class EIENetworkTiming:
    cycles: int
    layers: list[EIELayerTiming]
    events: dict[str, int]

    @property
    def compute_cycles(self) -> int:
        """The layers' cycles, without the writeback between them."""
        return sum(layer.cycles for layer in self.layers)

    @property
    def ideal_cycles(self) -> float:
        return sum(layer.ideal_cycles for layer in self.layers)

    @property
    def load_balance_efficiency(self) -> float:
        """Perfectly balanced work over the layers' actual cycles (writeback excluded: it is
        the same for any balance)."""
        return self.ideal_cycles / self.compute_cycles if self.compute_cycles else 1.0


def simulate_network(matrices: list[EIEMatrix], layer_inputs: list[np.ndarray],
                     queue_depth: int = 8,
                     entries_per_word: int = ENTRIES_PER_WORD) -> EIENetworkTiming:
    """One input vector through the layers (``layer_inputs[l]``: layer l's activations)."""
    timings = [simulate_layer(matrix, inputs, queue_depth, entries_per_word)
               for matrix, inputs in zip(matrices, layer_inputs)]
    events = _network_events(matrices, [t.events for t in timings], vectors=1)
    return EIENetworkTiming(sum(t.cycles for t in timings) + _between_layers(matrices),
                            timings, events)


@dataclass
class EIENetworkBatch:
    cycles: np.ndarray  # per vector
    ideal_cycles: float  # summed over vectors and layers
    compute_cycles: int  # the layers' cycles without the writeback, summed
    events: dict[str, int]  # summed over vectors


def simulate_network_batch(matrices: list[EIEMatrix], layer_inputs: list[np.ndarray],
                           queue_depth: int = 8,
                           entries_per_word: int = ENTRIES_PER_WORD) -> EIENetworkBatch:
    """V vectors through the layers, one after another (``layer_inputs[l]``: V x cols_l, the
    golden model's activations of layer l, since which columns are skipped depends on them).

    Between layer l and l+1: one cycle (the cycle in which layer l is found done; it clears the
    nonzero flags), then ceil(rows_l / N) writeback cycles, in each of which every PE reads one
    local row for requantization into its activation bank (``pe.act_bank.write``), then
    ``WRITEBACK_LATENCY`` cycles in which the last rows reach the banks."""
    batches = [simulate_layer_batch(matrix, inputs, queue_depth, entries_per_word)
               for matrix, inputs in zip(matrices, layer_inputs)]
    vectors = len(layer_inputs[0])
    compute = sum(batch.cycles for batch in batches)
    return EIENetworkBatch(compute + _between_layers(matrices),
                           float(sum(batch.ideal_cycles.sum() for batch in batches)),
                           int(compute.sum()),
                           _network_events(matrices, [b.events for b in batches], vectors))


def _written_rows(matrices: list[EIEMatrix]) -> list[int]:
    """Local rows each PE writes back after each layer (every layer but the last)."""
    n_pes = len(matrices[0].pointers)
    return [-(-matrix.rows // n_pes) for matrix in matrices[:-1]] + [0]


def _between_layers(matrices: list[EIEMatrix]) -> int:
    return (len(matrices) - 1) * (1 + WRITEBACK_LATENCY) + sum(_written_rows(matrices))


def _network_events(matrices, layer_events: list[dict], vectors: int) -> dict[str, int]:
    n_pes = len(matrices[0].pointers)
    events: dict[str, int] = {}
    for index, (rows, counted) in enumerate(zip(_written_rows(matrices), layer_events)):
        for name in EVENTS:
            events[layer_event(index, name)] = counted.get(name, 0)
        events[layer_event(index, "pe.act_bank.write")] = rows * n_pes * vectors
    return events
