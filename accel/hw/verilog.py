"""Emitting Verilog from Amaranth components, reproducibly."""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.lib import wiring


def to_verilog(top: wiring.Component, name: str) -> str:
    """Verilog text of ``top`` as module ``name``; no source locations, so it is reproducible."""
    return verilog.convert(top, name=name, emit_src=False)
