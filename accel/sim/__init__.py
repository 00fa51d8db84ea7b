"""Simulation: the lint gate, the cached Verilator/cocotb runner and the cocotb testbenches."""
