"""cocotb testbenches. Each reads its inputs with ``tbio.inputs()``, drives the design without
Python in the per-cycle loop, and reports with ``tbio.write_outputs``."""
