"""Energy from the hardware's own activity counts: technology tables, per-architecture event
maps, and the estimate (``estimate``).

What an architecture uses: ``EventSpec`` declarations (``sram``, ``scm`` latch arrays,
``register``, operators, ``clock`` for state clocked every cycle, ...), ``estimate`` and
``load_technology`` (``"65nm@0.6V"``: a table at a supply voltage; ``Technology.at_voltage``,
``Technology.clock_mhz`` for the clock the alpha-power law allows there)."""

from accel.energy.model import EventSpec, estimate
from accel.energy.tech import Technology, load_technology

__all__ = ["EventSpec", "Technology", "estimate", "load_technology"]
