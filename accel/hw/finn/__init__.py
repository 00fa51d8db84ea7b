"""FINN-style streaming dataflow: one folded MVTU per dense layer, FIFOs between stages."""

from accel.hw.finn.mapping import FinnMapping, map_network

__all__ = ["FinnMapping", "map_network"]
