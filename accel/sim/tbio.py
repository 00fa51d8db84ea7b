"""Files that carry data into and out of a cocotb testbench.

The runner writes the inputs as JSON and names the file in ``ACCEL_TB_INPUTS``; the testbench
writes its outputs to the file named in ``ACCEL_TB_OUTPUTS``. Both sides import this module, so
the convention lives in one place.
"""

from __future__ import annotations

import json
import os
from typing import Any

INPUT_ENV = "ACCEL_TB_INPUTS"
OUTPUT_ENV = "ACCEL_TB_OUTPUTS"


def to_json(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot pass {type(value).__name__} to a testbench")


def inputs() -> dict[str, Any]:
    path = os.environ.get(INPUT_ENV)
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def write_outputs(outputs: dict[str, Any]) -> None:
    path = os.environ[OUTPUT_ENV]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(outputs, f, default=to_json)
    os.replace(tmp, path)
