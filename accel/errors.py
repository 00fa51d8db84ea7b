"""User-facing errors.

Every problem a user can cause or fix (bad input, missing tool, failed build) is raised as an
``AccelError`` subclass whose message is one line. The CLI prints that line to stderr and exits
with code 2; anything else escaping is a bug in accel and keeps its traceback.
"""


class AccelError(Exception):
    """Base class of every error accel reports to its user."""

    def __init__(self, message: str):
        # One line, always: the CLI contract prints exactly this and nothing else.
        super().__init__(" ".join(str(message).split()))


class ToolchainError(AccelError):
    """A tool accel drives (Verilator, a C++ compiler, yosys) is missing or unusable."""


class ConfigError(AccelError):
    """A parameter or configuration value is invalid."""


class LintError(AccelError):
    """Generated Verilog failed the lint gate."""


class SimulationError(AccelError):
    """A Verilator build or a cocotb simulation failed."""
