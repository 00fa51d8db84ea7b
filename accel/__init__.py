"""accel: compressed and binarized neural networks to RTL, cycles and joules."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("accel")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
