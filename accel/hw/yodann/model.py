"""The YodaNN engine's cycle model: cycles and every event of ``accel.hw.yodann.rtl``, from
the schedule alone, one image row at a time (the RTL's timing does not depend on the data).

Within a pass, cycle 0 is its first cycle after the START cycle (a FETCH cycle, which loads
the pass's fields into their registers, precedes START). Rows of the filler and of the
computer each begin with one cycle that checks the row may start (the RTL's WAIT), so:
  filler row r      checks at w_r, reads at w_r + 1 .. w_r + M (M = C x the stripe's image
                    columns), writes one cycle later; the computer sees it from w_r + M + 2.
                    w_0 = 0; w_r = max(w_{r-1} + M + 1, the cycle the computer's rows_done
                    reaches r + padding - k, if positive)
  computer row y    checks at v_y, shifts at v_y + 1 .. v_y + L (L = (k - 1) C + columns x P);
                    rows_done counts it from v_y + L + 1. v_y = max(v_{y-1} + L + 1, the
                    cycle its last needed image row is visible, C + 1 when the filter bank is
                    loaded)
  end of the pass   the first cycle on which the computer is past its last row (two cycles
                    after it) and the last pixel has left the channel summers (3 + S cycles
                    after its last SoP cycle, S: WINDOW_STAGES, the new column's and the
                    taps' registers, and the SoP tree's registers) and, on a last input
                    pass, the output stage has drained its channels through its
                    OUTPUT_STAGES registers.
Per frame: the input beats (the first accepted before the frame starts counting idle), the
passes (a START cycle each), the output beats.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from accel.hw.yodann.mapping import (YodaNNMapping, fill_rows, passes, stripe_columns)
from accel.hw.yodann.rtl import (OUTPUT_STAGES, WINDOW_STAGES, event_declarations,
                                 sop_pipeline_registers)


@dataclass
class PassTiming:
    cycles: int  # START cycle included
    compute_cycles: int  # cycles that fed the SoPs
    events: Counter


def pass_timing(mapping: YodaNNMapping, step) -> PassTiming:
    layer = mapping.layers[step.layer]
    k, p, C = layer.kernel, layer.padding, step.in_count
    col_lo, col_hi = stripe_columns(layer, step.stripe)
    columns = col_hi - col_lo
    cols_out = step.stripe.out_cols
    P = step.pixel_cycles()
    M = C * columns
    L = (k - 1) * C + cols_out * P
    rows, fills = layer.conv_height, fill_rows(layer)

    fill_check: list[int] = []  # w_r
    row_check: list[int] = []  # v_y

    def extend_fill(upto: int) -> None:
        while len(fill_check) <= upto:
            r = len(fill_check)
            start = 0 if r == 0 else fill_check[-1] + M + 1
            done_needed = r + p - k
            if done_needed >= 1:
                start = max(start, row_check[done_needed - 1] + L + 1)
            fill_check.append(start)

    for y in range(rows):
        need = min(y - p + k, fills)
        extend_fill(need - 1)
        start = max(0 if y == 0 else row_check[-1] + L + 1, C + 1,
                    fill_check[need - 1] + M + 2)
        row_check.append(start)
    extend_fill(fills - 1)
    last = row_check[-1]
    last_sop = last + L - (P - C)
    sop_stages = WINDOW_STAGES + sop_pipeline_registers(mapping.config)
    drained = step.out_count + OUTPUT_STAGES if step.last else 0
    end = max(last + L + 2, last_sop + 3 + sop_stages + drained)
    cycles = end + 1 + 1 + 1  # the pass's last cycle, its START and its FETCH

    pixels = rows * cols_out
    compute = pixels * C
    events = Counter()
    events["weight_mem.read"] = events["filter_bank.write"] = C
    events["act_buffer.read"] = events["image_mem.write"] = fills * M
    events["image_bank.shift"] = rows * C * (k - 1 + cols_out)
    events["image_mem.read"] = C * columns * sum(
        sum(1 for i in range(k) if 0 <= y - p + i < layer.height) for y in range(rows))
    events["filter_bank.read"] = compute
    events["sop.mac"] = compute * step.out_count * k * k
    events["channel_summer.accumulate"] = compute * step.out_count
    if not step.first:
        events["psum_mem.read"] = pixels
    if step.last:
        windows = (rows // layer.pool) * (cols_out // layer.pool)
        events["bias_mem.read"] = pixels * step.out_count  # one per drained channel
        if layer.thresholds is None:
            events["output_stage.scale"] = pixels * step.out_count
        else:
            events["threshold_mem.read"] = pixels * step.out_count
            events["output_stage.compare"] = pixels * step.out_count * layer.thresholds.shape[1]
        events["pool.compare"] = (pixels - windows) * step.out_count
        events["act_buffer.write"] = windows * step.out_count
    else:
        events["psum_mem.write"] = pixels
    events["engine.idle"] = cycles - compute
    return PassTiming(cycles, compute, events)


@dataclass
class FrameTiming:
    cycles: int
    compute_cycles: int
    events: dict[str, int]


def frame_timing(mapping: YodaNNMapping) -> FrameTiming:
    """One frame at full rate (input offered every cycle, output always accepted)."""
    in_values = mapping.layers[0].in_values
    out_values = mapping.layers[-1].out_values
    events = Counter({name: 0 for name in event_declarations(mapping)})
    cycles = in_values + out_values
    compute = 0
    for step in passes(mapping):
        timing = pass_timing(mapping, step)
        events.update(timing.events)
        cycles += timing.cycles
        compute += timing.compute_cycles
    events["input.beat"] += in_values
    events["act_buffer.write"] += in_values
    events["output.beat"] += out_values
    events["act_buffer.read"] += out_values
    events["engine.idle"] += in_values - 1 + out_values
    return FrameTiming(cycles, compute, dict(events))
