"""Networks: the IR, the golden model, QONNX import/export and data sets.

``load`` and ``save`` are the entry points for files; ``golden.run`` is the one arithmetic.
"""

from accel.nn.ir import (BipolarQuant, Conv2d, DataType, Dense, Flatten, Layer, MaxPool2d,
                         MultiThreshold, Network, Quant, Relu, Reshape)
from accel.nn.qonnx_io import load, save

__all__ = ["BipolarQuant", "Conv2d", "DataType", "Dense", "MaxPool2d", "Flatten", "Layer", "MultiThreshold", "Network",
           "Quant", "Relu", "Reshape", "load", "save"]
