"""Where every memory of a generated design goes on an FPGA, decided here and not by the tools.

Each memory is built by ``placed_memory``, which attaches yosys's ``ram_style`` (writable) or
``rom_style`` (read only) attribute from one rule (``placement``):

- ``block``: a block RAM (DP16KD on ECP5, RAMB18/36 on 7-series). Only memories whose every
  read port is synchronous (a block RAM registers its read), and only from
  ``BLOCK_RAM_MIN_BITS`` bits up: below that a block RAM would be mostly empty. Memories that
  store a network's weights (FINN's weight memories, EIE's sparse matrix and column pointers,
  YodaNN's filter and bias stores; not YodaNN's filter bank, a few words as wide as the SoP array,
  written as a layer starts) from ``WEIGHT_BLOCK_RAM_MIN_BITS``: the datapath reads them
  every cycle, and as LUTs their read mux trees grow with their depth and sit on its critical
  paths. On EIE at 16 PEs (1.7 to 4 kbit per memory) moving them to 54 DP16KD took 22,365
  LUT4 to 14,895 and the post-route clock from 103.9 to 119.4 MHz (ECP5, yosys 0.70,
  nextpnr 0.11, before its pointer reads moved ahead of the queues). A read-only memory only
  above ``LUT_WORDS`` words: up to 16 words, one bit of a ROM is one LUT4 with no read mux
  behind it, while a block RAM holds at most 16 x 36 of its 18,432 bits (FINN SFC-max's first
  layer keeps 784 bits x 16 words per PE: 22 DP16KD each, 352 for the layer against the 85k
  ECP5's 208, or 784 LUT4).
- ``distributed``: LUT RAM (ECP5's DPR16X4, 7-series RAM32M/64M), every other writable memory,
  however shallow: a 2-deep, 128-bit FIFO is 32 DPR16X4 against 256 flip-flops and 138 LUT4s
  as registers (measured with yosys 0.70 on bnn-mlp).
- ``logic``: LUTs, for read-only memories that cannot or should not be a block RAM (a ROM in
  LUTs is a constant function of its address).

The resource model (``accel.hw.resources``) counts block RAMs with the same rule and
``dp16kd_blocks``, so its block-RAM figure is exact as long as yosys honours the attribute.
"""

from __future__ import annotations

from math import ceil

from amaranth.hdl import Shape
from amaranth.lib import memory

BLOCK_RAM_MIN_BITS = 4096  # below 4 kbit, under a quarter of an 18-kbit block would be used
WEIGHT_BLOCK_RAM_MIN_BITS = 1024  # weights: from an eighteenth of a block
LUT_WORDS = 16  # the words an ECP5 LUT4 holds (one bit each): no shallower ROM is a block
# ECP5 DP16KD (18 kbit) configurations, depth x width: yosys picks the one needing the fewest
# blocks; 36 bits wide only as a simple dual port (one read and one write port, or a ROM).
DP16KD_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def placement(width: int, depth: int, *, writable: bool, sync_read: bool,
              weights: bool = False) -> str:
    """``block``, ``distributed`` or ``logic`` for a memory of ``depth`` words of ``width``
    bits, holding a network's weights or not (the rule of the module docstring)."""
    threshold = WEIGHT_BLOCK_RAM_MIN_BITS if weights else BLOCK_RAM_MIN_BITS
    if sync_read and width * depth >= threshold and (writable or depth > LUT_WORDS):
        return "block"
    return "distributed" if writable else "logic"


def dp16kd_blocks(width: int, depth: int) -> int:
    """ECP5 DP16KD blocks for one ``depth`` x ``width`` memory (the cheapest configuration)."""
    return min(ceil(width / w) * ceil(depth / d) for d, w in DP16KD_SHAPES)


def placed_memory(*, shape, depth: int, init, writable: bool, sync_read: bool,
                  weights: bool = False) -> memory.Memory:
    """An Amaranth memory carrying the placement attribute yosys reads."""
    width = Shape.cast(shape).width
    style = placement(width, depth, writable=writable, sync_read=sync_read, weights=weights)
    key = "ram_style" if writable else "rom_style"
    return memory.Memory(shape=shape, depth=depth, init=init, attrs={key: style})
