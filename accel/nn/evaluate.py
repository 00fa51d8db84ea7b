"""Accuracy of a network on data by the golden model, and the cross-check against qonnx.

When does qonnx's executor agree exactly? It evaluates the fake-quantized graph in float32, so
it is integer-exact only while every accumulated value, counted in units of the product's scale,
stays below 2**24 (field notes, QONNX semantics). ``qonnx_exact`` decides that from the
datatypes: every layer quantized and every tensor narrower than 25 bits. There, agreement means
equal integers (qonnx's output divided by the output scale and rounded). Beyond the bound (e.g.
16-bit x 16-bit layers with long dot products) or for float networks, our integer golden model
is the reference, and agreement means equal predictions on every image and outputs within
``FLOAT32_TOLERANCE`` of the output's largest magnitude, per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.nn import golden
from accel.nn.ir import Network

FLOAT32_BOUND_BITS = 24
FLOAT32_TOLERANCE = 1e-4  # relative to max |output| of the image: float32 accumulation error


def qonnx_exact(network: Network) -> bool:
    """Whether qonnx's float32 evaluation of ``network`` is integer-exact (module docstring)."""
    types = [dtype for _, dtype in network.tensor_types()[1:]]
    return all(not t.is_float and t.bits <= FLOAT32_BOUND_BITS for t in types)


def network_inputs(network: Network, data: np.ndarray, what: str = "data") -> np.ndarray:
    """``data`` shaped as the network's input: (N, *input) or flat (N, prod(input)), N >= 1.
    Values must be finite in float32; for an integer-typed input (no float quantizer first)
    they must be integers of that type's range (a float input is clamped by its quantizer)."""
    data = np.asarray(data)
    if data.dtype.kind not in "fiu":
        raise ConfigError(f"{what}: expected numbers, got dtype {data.dtype}")
    shape = network.input_shape[1:]
    if data.ndim >= 1 and data.shape[1:] == shape:
        pass
    elif data.ndim == 2 and data.shape[1] == int(np.prod(shape)):
        data = data.reshape((data.shape[0], *shape))
    else:
        raise ConfigError(f"{what}: shape {data.shape} does not match the model input "
                          f"(N, {', '.join(map(str, shape))})")
    if len(data) == 0:
        raise ConfigError(f"{what}: no images (0 rows)")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ConfigError(f"{what}: contains NaN or infinity")
    dtype = network.input_type
    if not dtype.is_float:
        _check_integers(data, dtype, what)
        return data.astype(np.float32) if dtype.bits <= 24 else data.astype(np.float64)
    with np.errstate(over="ignore"):
        values = data.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise ConfigError(f"{what}: contains NaN or infinity in float32 (values beyond "
                          f"{float(np.finfo(np.float32).max):.3g})")
    return values


def _check_integers(data: np.ndarray, dtype, what: str) -> None:
    """Integer-typed inputs reach the hardware as they are: integers of the input type."""
    lo, hi = dtype.min_int, dtype.max_int
    kind = dtype.describe()
    if data.dtype.kind == "f":
        fractional = data != np.rint(data)
        if fractional.any():
            bad = data[fractional].flat[0]
            raise ConfigError(f"{what}: the network's input is {kind}: values must be integers "
                              f"in [{lo}, {hi}], got {bad:g}")
    outside = (data < lo) | (data > hi)
    if outside.any():
        bad = data[outside].flat[0]
        raise ConfigError(f"{what}: the network's input is {kind}: values must be integers in "
                          f"[{lo}, {hi}], got {bad:g}")


def output_count(network: Network) -> int:
    """Classes a prediction can name: the elements of the network's output."""
    return int(np.prod(network.tensor_types()[-1][0][1:]))


def load_data(data_path: str | Path | None, labels_path: str | Path | None,
              network: Network) -> tuple[np.ndarray, np.ndarray | None, str]:
    """User data from .npy files, or the digits test split; returns (inputs, labels, source).
    Labels are integers in [0, outputs of the network)."""
    if data_path is None:
        if labels_path is not None:
            raise ConfigError("--labels needs --data")
        from accel.nn.data import digits_split

        split = digits_split()
        return network_inputs(network, split.x_test, "digits"), split.y_test, "digits test split"
    inputs = network_inputs(network, _load_npy(data_path), str(data_path))
    labels = None
    if labels_path is not None:
        labels = _load_npy(labels_path)
        if labels.shape != (len(inputs),) or labels.dtype.kind not in "iu":
            raise ConfigError(f"{labels_path}: labels must be {len(inputs)} integers, got "
                              f"shape {labels.shape} dtype {labels.dtype}")
        classes = output_count(network)
        outside = (labels < 0) | (labels >= classes)
        if outside.any():
            raise ConfigError(f"{labels_path}: labels must be in [0, {classes}) (the network's "
                              f"outputs), got {labels[outside][0]} at index "
                              f"{int(np.flatnonzero(outside)[0])}")
    return inputs, labels, str(data_path)


def _load_npy(path) -> np.ndarray:
    """A .npy array; never unpickles (``allow_pickle=False``), and an .npz archive is refused
    (it is not one array)."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a .npy file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable .npy file ({exc})") from None
    if not isinstance(data, np.ndarray):
        if hasattr(data, "close"):
            data.close()
        raise ConfigError(f"{path}: an .npz archive, not a .npy file (save one array with "
                          "numpy.save)")
    return data


@dataclass
class QonnxCheck:
    agree: bool
    exact_regime: bool
    predictions_agree: int
    max_abs_difference: float


def check_against_qonnx(network: Network, model, inputs: np.ndarray,
                        outputs: np.ndarray) -> QonnxCheck:
    """Run qonnx's executor on ``model`` (the ONNX file the network was read from, as a
    ModelProto) image by image and compare with the golden ``outputs``."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapper = ModelWrapper(model)
    constants = {init.name for init in model.graph.initializer}
    input_name = next(i.name for i in model.graph.input if i.name not in constants)
    output_name = model.graph.output[0].name
    batch_shape = [d.dim_value or 1 for d in
                   next(i for i in model.graph.input if i.name == input_name)
                   .type.tensor_type.shape.dim]
    reference = np.concatenate([
        execute_onnx(wrapper, {input_name: x.reshape(batch_shape)})[output_name].reshape(1, -1)
        for x in inputs]).astype(np.float64)
    ours = golden.output_values(network, outputs).reshape(reference.shape)
    # the integers qonnx's real outputs stand for, by undoing the host's epilogue: a zero
    # output gives its offset, a one its unit
    offset = golden.output_values(network, np.zeros_like(outputs[:1])).reshape(1, -1)
    unit = golden.output_values(network, np.ones_like(outputs[:1])).reshape(1, -1) - offset
    outputs = outputs.reshape(reference.shape)
    exact = qonnx_exact(network)
    same_predictions = int((reference.argmax(1) == ours.argmax(1)).sum())
    difference = float(np.abs(reference - ours).max()) if len(ours) else 0.0
    if exact:
        agree = np.array_equal(np.rint((reference - offset) / unit), outputs)
    else:
        peak = np.abs(ours).max(axis=1, keepdims=True) + 1e-30
        agree = same_predictions == len(ours) and bool(
            np.all(np.abs(reference - ours) <= FLOAT32_TOLERANCE * peak))
    return QonnxCheck(bool(agree), exact, same_predictions, difference)


def evaluate(network: Network, inputs: np.ndarray, labels: np.ndarray | None = None, *,
             qonnx_model=None) -> dict:
    """The ``accel eval`` result: model, images, accuracy, predictions, and with
    ``qonnx_model`` (the network's ONNX ModelProto) the qonnx cross-check."""
    outputs = golden.run(network, inputs)
    predictions = golden.classify(network, outputs)
    result = {
        "model": network.name,
        "images": int(len(inputs)),
        "accuracy": float((predictions == labels).mean()) if labels is not None else None,
        "predictions": predictions.tolist(),
    }
    if qonnx_model is not None:
        check = check_against_qonnx(network, qonnx_model, inputs, outputs)
        result.update(qonnx_agree=check.agree, qonnx_exact_regime=check.exact_regime,
                      qonnx_predictions_agree=check.predictions_agree,
                      qonnx_max_abs_difference=check.max_abs_difference)
    return result
