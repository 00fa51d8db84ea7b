"""The hand-off testbenches that ``python -m accel.hw.reference`` copies into ``sim/<arch>/<design>/``
next to their vectors and Makefile. They import only cocotb and the standard library, so that an
FPGA engineer runs them against the committed Verilog with no accel installed: nothing in accel
imports these modules."""
