"""QONNX files in and out.

Export writes the fake-quantized float graph QONNX defines (``Quant``, ``BipolarQuant``,
``MultiThreshold`` from ``qonnx.custom_op.general``, standard ``MatMul``/``Add``/``Relu``/
``Flatten``), which ``qonnx.core.onnx_exec.execute_onnx`` runs. Weights are stored as float
initializers behind a ``Quant`` (or ``BipolarQuant``) node, as Brevitas exports them, so that
their datatype survives the round trip.

Import reads such graphs (and external-data files) into a ``Network``: constant subgraphs on
initializers (weight quantizers, transposes) are folded, the data path must be a chain of
supported operations, and every problem is one ``ConfigError`` naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from accel.errors import ConfigError
from accel.nn.golden import MAX_EXACT_BITS, apply_layer
from accel.nn.ir import (MAX_OPERAND_BITS, BipolarQuant, Conv2d, DataType, Dense, Flatten, Layer,
                         MaxPool2d, MultiThreshold, Network, Quant, Relu)

QONNX_DOMAIN = "qonnx.custom_op.general"
# The node domains a model file may use. qonnx imports the Python module a node's domain names
# (``importlib.import_module(domain)``), so a file naming any other domain could run code from
# the working directory or anything installed: every node of every (sub)graph and function is
# checked against this list before anything else reads the model. "onnx.brevitas" and
# "finn.custom_op.general" are older names qonnx maps to its own general ops; plain "finn"
# is mapped the same way only when the node has no "backend" attribute.
ALLOWED_DOMAINS = ("", "ai.onnx", QONNX_DOMAIN, "onnx.brevitas", "finn.custom_op.general")
INPUT_NAME = "global_in"
OUTPUT_NAME = "global_out"
SUPPORTED_OPS = ("Quant", "BipolarQuant", "MultiThreshold", "MatMul", "Gemm", "Conv", "MaxPool",
                 "BatchNormalization", "Add", "Relu", "Flatten", "Reshape", "Transpose")
# Folding batch-norm into thresholds evaluates it on every reachable accumulator value.
MAX_FOLD_VALUES = 1 << 22


def _qonnx_type_name(dtype: DataType) -> str:
    if dtype.bipolar:
        return "BIPOLAR"
    if dtype.is_float:
        return "FLOAT32"
    return f"{'INT' if dtype.signed else 'UINT'}{dtype.bits}"


# --------------------------------------------------------------------------------------- export

def to_onnx(network: Network):
    """The network as an ``onnx.ModelProto`` in QONNX form (batch size 1)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    types = network.tensor_types()

    def constant(name: str, value) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    current = INPUT_NAME
    for index, (layer, (_, in_type)) in enumerate(zip(network.layers, types)):
        out = f"{layer.name}_out"
        prefix = layer.name
        if isinstance(layer, Quant):
            nodes.append(helper.make_node(
                "Quant", [current, constant(f"{prefix}_scale", layer.scale),
                          constant(f"{prefix}_zeropt", 0.0), constant(f"{prefix}_bits", layer.bits)],
                [out], name=prefix, domain=QONNX_DOMAIN, signed=int(layer.signed),
                narrow=int(layer.narrow), rounding_mode=layer.rounding))
        elif isinstance(layer, BipolarQuant):
            nodes.append(helper.make_node(
                "BipolarQuant", [current, constant(f"{prefix}_scale", layer.scale)], [out],
                name=prefix, domain=QONNX_DOMAIN))
        elif isinstance(layer, Dense):
            weight = _export_weight(layer, nodes, constant)
            if layer.bias is None:
                nodes.append(helper.make_node("MatMul", [current, weight], [out], name=prefix))
            else:
                product = f"{prefix}_matmul_out"
                nodes.append(helper.make_node("MatMul", [current, weight], [product],
                                              name=prefix))
                bias_scale = 1.0 if in_type.is_float else in_type.scale * layer.weight_type.scale
                bias = constant(f"{prefix}_bias", layer.bias.astype(np.float64) * bias_scale)
                nodes.append(helper.make_node("Add", [product, bias], [out],
                                              name=f"{prefix}_bias"))
        elif isinstance(layer, Conv2d):
            weight = _export_weight(layer, nodes, constant)
            inputs = [current, weight]
            if layer.bias is not None:
                bias_scale = 1.0 if in_type.is_float else in_type.scale * layer.weight_type.scale
                inputs.append(constant(f"{prefix}_bias", layer.bias.astype(np.float64) * bias_scale))
            p, k = layer.padding, layer.kernel
            nodes.append(helper.make_node("Conv", inputs, [out], name=prefix, kernel_shape=[k, k],
                                          pads=[p, p, p, p], strides=[layer.stride] * 2))
        elif isinstance(layer, MaxPool2d):
            nodes.append(helper.make_node("MaxPool", [current], [out], name=prefix,
                                          kernel_shape=[layer.kernel] * 2,
                                          strides=[layer.stride] * 2))
        elif isinstance(layer, MultiThreshold):
            # Half a step below the integer threshold: the same comparison on the integer grid,
            # and robust to the rounding of a float32 accumulator when the scale is not a
            # power of two (with one, both forms are exact).
            thresholds = (layer.thresholds.astype(np.float64) - 0.5) * in_type.scale
            rank = len(types[index][0])
            nodes.append(helper.make_node(
                "MultiThreshold", [current, constant(f"{prefix}_thresholds", thresholds)], [out],
                name=prefix, domain=QONNX_DOMAIN, out_dtype=_qonnx_type_name(layer.out_type),
                out_scale=float(layer.out_scale), out_bias=float(layer.out_bias),
                data_layout="NCHW" if rank == 4 else "NC"))
        elif isinstance(layer, Relu):
            nodes.append(helper.make_node("Relu", [current], [out], name=prefix))
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], name=prefix, axis=1))
        else:
            raise ConfigError(f"layer {layer.name}: QONNX export has no rule for {layer.op}")
        current = out
        if index == len(network.layers) - 1:
            nodes[-1].output[0] = OUTPUT_NAME
            current = OUTPUT_NAME

    in_shape = [1, *network.input_shape[1:]]
    out_shape = list(types[-1][0])
    # Every intermediate tensor's shape is known here; recording it lets qonnx's executor run
    # the file as it is, without a shape-inference pass.
    shapes = {f"{layer.name}_out": list(shape) for layer, (shape, _) in
              zip(network.layers, types[1:])}
    for layer, (shape, _) in zip(network.layers, types[1:]):
        if isinstance(layer, Dense):
            shapes[f"{layer.name}_weight"] = [layer.inputs, layer.outputs]
            shapes[f"{layer.name}_matmul_out"] = list(shape)
        if isinstance(layer, Conv2d):
            shapes[f"{layer.name}_weight"] = list(layer.weights.shape)
    produced = {out for node in nodes for out in node.output} - {OUTPUT_NAME}
    value_info = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name])
                  for name in sorted(produced)]
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_shape)],
        initializer=initializers, value_info=value_info)
    model = helper.make_model(graph, producer_name="accel",
                              opset_imports=[helper.make_opsetid("", 13),
                                             helper.make_opsetid(QONNX_DOMAIN, 1)])
    for key, value in network.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    if not network.input_type.is_float:
        annotation = model.graph.quantization_annotation.add()
        annotation.tensor_name = INPUT_NAME
        entry = annotation.quant_parameter_tensor_names.add()
        entry.key, entry.value = "finn_datatype", _qonnx_type_name(network.input_type)
    return model


def _export_weight(layer: Dense | Conv2d, nodes: list, constant) -> str:
    """The weight tensor in ONNX's layout (MatMul: inputs x outputs; Conv: as stored)."""
    from onnx import helper

    name = f"{layer.name}_weight"
    wt = layer.weight_type
    weights = layer.weights.T if isinstance(layer, Dense) else layer.weights
    if wt.is_float:
        return constant(name, weights)
    real = constant(f"{name}_float", weights.astype(np.float64) * wt.scale)
    if wt.bipolar:
        nodes.append(helper.make_node("BipolarQuant", [real, constant(f"{name}_scale", wt.scale)],
                                      [name], name=f"{name}_quant", domain=QONNX_DOMAIN))
    else:
        nodes.append(helper.make_node(
            "Quant", [real, constant(f"{name}_scale", wt.scale), constant(f"{name}_zeropt", 0.0),
                      constant(f"{name}_bits", wt.bits)],
            [name], name=f"{name}_quant", domain=QONNX_DOMAIN, signed=int(wt.signed),
            narrow=0, rounding_mode="ROUND"))
    return name


def save(network: Network, path: str | Path) -> Path:
    """Write ``network`` as a QONNX file; the file appears whole or not at all."""
    from accel.io import write_atomic

    return write_atomic(path, to_onnx(network).SerializeToString())


# --------------------------------------------------------------------------------------- import

def resolve(name_or_path: str | Path) -> Path:
    """The file of a shipped model's name, or the given path if it is a file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    from accel.nn import zoo

    if str(name_or_path) in zoo.shipped_models():
        return zoo.model_path(str(name_or_path))
    raise ConfigError(f"no such model file or shipped model: {name_or_path} (shipped: "
                      f"{', '.join(zoo.shipped_models()) or 'none'})")


def read_model(name_or_path: str | Path):
    """The ``onnx.ModelProto`` of a shipped model or file, with its external data."""
    import onnx

    path = resolve(name_or_path)
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for a bad file
        raise ConfigError(f"{path}: not a readable ONNX file ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'malformed or truncated'})"
                          ) from None
    if not model.graph.node:
        raise ConfigError(f"{path}: the ONNX graph has no nodes (malformed or truncated file)")
    check_domains(model, str(path))
    return model


def check_domains(model, where: str = "model") -> None:
    """Refuse a model any of whose nodes names a domain outside ``ALLOWED_DOMAINS``: qonnx
    would import that domain as a Python module (see ``ALLOWED_DOMAINS``)."""
    from onnx import AttributeProto

    def nodes(graph):
        for node in graph.node:
            yield node
            for attribute in node.attribute:
                if attribute.type == AttributeProto.GRAPH:
                    yield from nodes(attribute.g)
                elif attribute.type == AttributeProto.GRAPHS:
                    for subgraph in attribute.graphs:
                        yield from nodes(subgraph)

    everything = list(nodes(model.graph))
    for function in model.functions:
        everything += list(function.node)
    for node in everything:
        domain = node.domain
        has_backend = any(a.name == "backend" for a in node.attribute)
        if domain in ALLOWED_DOMAINS or (domain == "finn" and not has_backend):
            continue
        raise ConfigError(f"{where}: node {node.name or node.op_type} has domain {domain!r}, "
                          "which accel does not accept (qonnx would import it as Python code); "
                          f"allowed: {', '.join(repr(d) for d in ALLOWED_DOMAINS)}")


def load(name_or_path: str | Path) -> Network:
    """Read a shipped model by name, or an ONNX/QONNX file (external data next to it is found),
    into a ``Network``."""
    path = resolve(name_or_path)
    return from_onnx(read_model(path), name=path.stem)


def _attr(node, name, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


class _Constant:
    """A folded constant: float values, and when it came from a quantizer, its integer form."""

    def __init__(self, values, ints=None, dtype: DataType | None = None):
        self.values = np.asarray(values)
        self.ints = ints
        self.dtype = dtype


def from_onnx(model, name: str = "network") -> Network:
    from onnx import numpy_helper

    check_domains(model, name)
    graph = model.graph
    constants = {init.name: _Constant(numpy_helper.to_array(init)) for init in graph.initializer}
    for value in constants.values():
        if value.values.dtype.kind == "f" and not np.all(np.isfinite(value.values)):
            bad = next(k for k, v in constants.items() if v is value)
            raise ConfigError(f"initializer {bad}: contains NaN or infinity")
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ConfigError(f"{name}: accel reads networks with one input and one output, "
                          f"found {len(inputs)} and {len(graph.output)}")
    dims = [d.dim_value if d.dim_value > 0 else 1 for d in inputs[0].type.tensor_type.shape.dim]
    input_type = DataType.float32()
    for annotation in graph.quantization_annotation:
        if annotation.tensor_name == inputs[0].name:
            for entry in annotation.quant_parameter_tensor_names:
                if entry.key == "finn_datatype":
                    input_type = _parse_type_name(entry.value, inputs[0].name)

    layers: list[Layer] = []
    sources: dict = {}
    current = inputs[0].name
    pending = list(graph.node)
    while pending:
        node = pending.pop(0)
        node_name = node.name or f"{node.op_type}_{len(layers)}"
        if all(i in constants or i == "" for i in node.input):
            constants[node.output[0]] = _fold_constant(node, node_name, constants)
            continue
        if node.op_type not in SUPPORTED_OPS:
            raise ConfigError(f"node {node_name}: unsupported operation {node.op_type} "
                              f"(supported: {', '.join(SUPPORTED_OPS)})")
        if node.input[0] != current:
            raise ConfigError(f"node {node_name}: reads {node.input[0]}, but accel networks are "
                              f"chains and the current tensor is {current}")
        layer = _data_layer(node, node_name, constants, layers)
        if layer is not None:
            layers.append(layer)
            sources[node_name] = node
        current = node.output[0]
    if current != graph.output[0].name:
        raise ConfigError(f"{name}: the chain ends at {current}, not at the graph output "
                          f"{graph.output[0].name}")
    network = Network(name, tuple(dims), _resolve_real_units(layers, input_type, sources),
                      input_type)
    network.metadata = {p.key: p.value for p in model.metadata_props}
    return network


def _parse_type_name(text: str, where: str) -> DataType:
    text = text.upper()
    if text == "BIPOLAR":
        return DataType.bipolar_type()
    if text == "BINARY":
        return DataType(1, False)
    for prefix, signed in (("UINT", False), ("INT", True)):
        digits = text[len(prefix):]
        if text.startswith(prefix) and digits.isdigit() and len(digits) <= 3:
            bits = int(digits)
            if not (2 if signed else 1) <= bits <= MAX_OPERAND_BITS:
                raise ConfigError(f"{where}: datatype {text} is outside what accel accepts "
                                  f"({'INT2' if signed else 'UINT1'} to {prefix}"
                                  f"{MAX_OPERAND_BITS})")
            return DataType(bits, signed)
    if text in ("FLOAT32", "FLOAT"):
        return DataType.float32()
    raise ConfigError(f"{where}: unsupported datatype annotation {text}")


def _scalar(constants, name: str, node_name: str, what: str) -> float:
    value = constants[name].values
    if value.size != 1:
        raise ConfigError(f"node {node_name}: {what} must be a scalar (per-channel scales are not "
                          f"supported yet), got shape {value.shape}")
    return float(value.reshape(()))


def _fold_constant(node, node_name: str, constants) -> _Constant:
    source = constants[node.input[0]]
    if node.op_type == "Quant":
        scale = _scalar(constants, node.input[1], node_name, "scale")
        zeropt = _scalar(constants, node.input[2], node_name, "zero point")
        bits = int(_scalar(constants, node.input[3], node_name, "bit width"))
        if zeropt != 0:
            raise ConfigError(f"node {node_name}: nonzero zero points are not supported")
        signed = bool(_attr(node, "signed", 1))
        if bits == 1 and signed:
            ints = np.where(source.values / scale >= 0, 1, -1).astype(np.int64)
            return _Constant(ints * scale, ints, DataType.bipolar_type(scale))
        quant = Quant(node_name, bits=bits, signed=signed, narrow=bool(_attr(node, "narrow", 0)),
                      scale=scale, rounding=_attr(node, "rounding_mode", "ROUND"))
        ints = apply_layer(quant, source.values, DataType.float32())
        return _Constant(ints * scale, ints, quant.out_type)
    if node.op_type == "BipolarQuant":
        scale = _scalar(constants, node.input[1], node_name, "scale")
        ints = np.where(source.values >= 0, 1, -1).astype(np.int64)
        return _Constant(ints * scale, ints, DataType.bipolar_type(scale))
    if node.op_type == "Transpose":
        perm = _attr(node, "perm")
        t = lambda a: None if a is None else np.transpose(a, perm)  # noqa: E731
        return _Constant(t(source.values), t(source.ints), source.dtype)
    raise ConfigError(f"node {node_name}: unsupported operation {node.op_type} on constants")


def _weights(constants, name: str, node_name: str, transposed: bool) -> tuple[np.ndarray, DataType]:
    """Weights as (outputs, inputs) integers (or float32) and their datatype."""
    const = constants.get(name)
    if const is None:
        raise ConfigError(f"node {node_name}: the weight {name} is not a constant")
    if const.values.ndim != 2:
        raise ConfigError(f"node {node_name}: weight {name} must be 2-D, got {const.values.shape}")
    if const.ints is not None:
        w, dtype = const.ints, const.dtype
    else:
        w, dtype = const.values.astype(np.float32), DataType.float32()
    return (w if transposed else w.T), dtype


def _data_layer(node, node_name: str, constants, layers: list[Layer]) -> Layer | None:
    op = node.op_type
    if op == "Quant":
        zeropt = _scalar(constants, node.input[2], node_name, "zero point")
        if zeropt != 0:
            raise ConfigError(f"node {node_name}: nonzero zero points are not supported")
        bits = int(_scalar(constants, node.input[3], node_name, "bit width"))
        scale = _scalar(constants, node.input[1], node_name, "scale")
        signed = bool(_attr(node, "signed", 1))
        if bits == 1 and signed:
            return BipolarQuant(node_name, scale=scale)
        return Quant(node_name, bits=bits, signed=signed, narrow=bool(_attr(node, "narrow", 0)),
                     scale=scale, rounding=_attr(node, "rounding_mode", "ROUND"))
    if op == "BipolarQuant":
        return BipolarQuant(node_name, scale=_scalar(constants, node.input[1], node_name, "scale"))
    if op in ("MatMul", "Gemm"):
        if op == "Gemm" and (_attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0
                             or _attr(node, "transA", 0)):
            raise ConfigError(f"node {node_name}: Gemm with alpha, beta or transA is not supported")
        weights, wtype = _weights(constants, node.input[1], node_name,
                                  transposed=op == "Gemm" and bool(_attr(node, "transB", 0)))
        layer = Dense(node_name, weights=weights, weight_type=wtype)
        if op == "Gemm" and len(node.input) > 2 and node.input[2]:
            _attach_bias(layer, constants[node.input[2]].values, node_name)
        return layer
    if op == "Conv":
        return _conv_layer(node, node_name, constants)
    if op == "MaxPool":
        kernel = list(_attr(node, "kernel_shape", []))
        strides = list(_attr(node, "strides", kernel))
        if len(kernel) != 2 or kernel[0] != kernel[1] or len(set(strides)) != 1 \
                or any(_attr(node, "pads", [0, 0, 0, 0])) or _attr(node, "ceil_mode", 0):
            raise ConfigError(f"node {node_name}: only square MaxPool without padding or "
                              "ceil_mode is supported")
        return MaxPool2d(node_name, kernel=kernel[0], stride=strides[0])
    if op == "Add":
        if not layers or not isinstance(layers[-1], (Dense, Conv2d)) or layers[-1].bias is not None:
            raise ConfigError(f"node {node_name}: Add is supported only as the bias of a "
                              "MatMul, Gemm or Conv")
        other = node.input[1]
        if other not in constants:
            raise ConfigError(f"node {node_name}: Add of two data tensors is not supported")
        _attach_bias(layers[-1], constants[other].values, node_name)
        return None
    if op == "MultiThreshold":
        thresholds = constants[node.input[1]].values.astype(np.float64)
        if thresholds.ndim != 2 or not np.all(np.isfinite(thresholds)):
            raise ConfigError(f"node {node_name}: thresholds must be finite and 2-D")
        layout = _attr(node, "data_layout", "NC") or "NC"
        if layout not in ("NC", "NCHW"):
            raise ConfigError(f"node {node_name}: data layout {layout} is not supported")
        return _PendingThreshold(node_name, thresholds, float(_attr(node, "out_scale", 1.0)),
                                 float(_attr(node, "out_bias", 0.0)))
    if op == "BatchNormalization":
        for name in node.input[1:5]:
            if name not in constants:
                raise ConfigError(f"node {node_name}: batch-norm parameter {name} is not constant")
        return _PendingBatchNorm(node_name, node, constants)
    if op == "Relu":
        return Relu(node_name)
    if op in ("Flatten", "Reshape"):
        if op == "Flatten" and _attr(node, "axis", 1) != 1:
            raise ConfigError(f"node {node_name}: only Flatten with axis=1 is supported")
        if op == "Reshape":
            shape = constants[node.input[1]].values.astype(np.int64).tolist()
            if len(shape) != 2 or shape[0] not in (1, -1, 0):
                raise ConfigError(f"node {node_name}: only a Reshape to (N, -1) is supported, "
                                  f"got {shape}")
        return Flatten(node_name)
    if op == "Transpose":
        raise ConfigError(f"node {node_name}: a Transpose of the data path is not supported")
    raise ConfigError(f"node {node_name}: unsupported operation {op}")


def _conv_layer(node, node_name: str, constants) -> Conv2d:
    const = constants.get(node.input[1])
    if const is None or const.values.ndim != 4:
        raise ConfigError(f"node {node_name}: Conv needs a constant 4-D weight")
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    strides = list(_attr(node, "strides", [1, 1]))
    if _attr(node, "group", 1) != 1 or any(d != 1 for d in _attr(node, "dilations", [1, 1])) \
            or len(set(pads)) != 1 or len(set(strides)) != 1 \
            or _attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise ConfigError(f"node {node_name}: only ungrouped, undilated Conv with equal pads and "
                          "strides is supported")
    if const.ints is not None:
        weights, wtype = const.ints, const.dtype
    else:
        weights, wtype = const.values.astype(np.float32), DataType.float32()
    layer = Conv2d(node_name, weights=weights, weight_type=wtype, padding=pads[0],
                   stride=strides[0])
    if len(node.input) > 2 and node.input[2]:
        _attach_bias(layer, constants[node.input[2]].values, node_name)
    return layer


def _attach_bias(layer: Dense | Conv2d, bias: np.ndarray, node_name: str) -> None:
    bias = np.asarray(bias, dtype=np.float64).reshape(-1)
    channels = layer.weights.shape[0]
    if not np.all(np.isfinite(bias)):
        raise ConfigError(f"node {node_name}: bias contains NaN or infinity")
    if bias.shape != (channels,):
        raise ConfigError(f"node {node_name}: bias of shape {bias.shape} for {channels} outputs")
    layer.bias = bias  # real-valued until _resolve_real_units knows the product scale


@dataclass
class _PendingThreshold:
    """A MultiThreshold whose thresholds are still real numbers: they become integers in units
    of the input scale once that scale is known (``_resolve_real_units``)."""

    name: str
    real_thresholds: np.ndarray
    out_scale: float
    out_bias: float


@dataclass
class _PendingBatchNorm:
    """A BatchNormalization node, to be folded with the quantizer after it into thresholds."""

    name: str
    node: object
    constants: dict


def _resolve_real_units(layers: list, input_type: DataType, sources: dict) -> list[Layer]:
    """Turn real-valued thresholds and biases into integers in units of their input's scale,
    and fold each batch-norm (with an optional Relu) and the quantizer after it into a
    MultiThreshold. ``sources`` maps layer names to the ONNX nodes they came from."""
    from accel.nn.golden import output_type

    dtype = input_type
    resolved = []
    input_types = []
    layers = list(layers)
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, _PendingBatchNorm):
            relu = layers.pop(0) if layers and isinstance(layers[0], Relu) else None
            quantizer = layers.pop(0) if layers else None
            if not resolved or not isinstance(resolved[-1], (Dense, Conv2d)) or dtype.is_float:
                raise ConfigError(f"node {layer.name}: batch-norm is supported only between a "
                                  "quantized MatMul/Gemm/Conv and a quantizer")
            if not isinstance(quantizer, (Quant, BipolarQuant)):
                raise ConfigError(f"node {layer.name}: batch-norm must be followed by a quantizer "
                                  "(optionally after a Relu) to be folded into thresholds")
            nodes = [layer.node] + [sources[x.name] for x in (relu, quantizer) if x is not None]
            layer = _fold_batchnorm(layer, nodes, quantizer, resolved[-1], input_types[-1], dtype)
        if isinstance(layer, _PendingThreshold):
            if dtype.is_float:
                raise ConfigError(f"node {layer.name}: thresholds on a float tensor; "
                                  "quantize it first")
            layer = MultiThreshold(layer.name, thresholds=_in_units(
                layer.real_thresholds, dtype.scale, f"node {layer.name}", round_up=True),
                out_scale=layer.out_scale, out_bias=layer.out_bias)
        elif isinstance(layer, (Dense, Conv2d)) and layer.bias is not None and not dtype.is_float:
            layer.bias = _in_units(layer.bias, dtype.scale * layer.weight_type.scale,
                                   f"node {layer.name}: bias", round_up=False)
        resolved.append(layer)
        input_types.append(dtype)
        dtype = output_type(layer, dtype)
    return resolved


def _fold_batchnorm(bn: _PendingBatchNorm, nodes: list, quantizer: Quant | BipolarQuant,
                    producer: Dense | Conv2d, producer_input: DataType,
                    acc_type: DataType) -> MultiThreshold:
    """Batch-norm [+ Relu] + quantizer as integer thresholds on the accumulator.

    Exact by construction: the reference graph's own nodes are evaluated by qonnx's executor, in
    float32, on every accumulator value the producer can reach, and each threshold is the
    smallest accumulator that reaches the next output level. A channel whose batch-norm scale is
    negative is decreasing in the accumulator; as in FINN, the producer's weights (and bias) of
    that channel are negated so that its thresholds count upward.
    """
    from accel.nn.golden import accumulator_range

    lo, hi = accumulator_range(producer, producer_input)
    reach = int(max(abs(int(lo.min())), abs(int(hi.max()))))
    if 2 * reach + 1 > MAX_FOLD_VALUES:
        raise ConfigError(f"node {bn.name}: accumulator range +-{reach} is too wide to fold "
                          "batch-norm into thresholds exactly")
    candidates = np.arange(-reach, reach + 1, dtype=np.int64)
    levels = _evaluate_reference(nodes, bn.constants, candidates, acc_type.scale,
                                 producer.weights.shape[0])
    gamma = bn.constants[bn.node.input[1]].values.reshape(-1)
    if isinstance(quantizer, BipolarQuant):
        step_values, level_lo, out_scale = 2, 0, 2 * quantizer.scale
        out_bias = -quantizer.scale
        codes = (levels > 0).astype(np.int64)
    else:
        level_lo, level_hi = quantizer.int_range
        step_values, out_scale = level_hi - level_lo + 1, quantizer.scale
        out_bias = level_lo * quantizer.scale
        codes = np.rint(levels / quantizer.scale).astype(np.int64) - level_lo
    thresholds = np.empty((levels.shape[1], step_values - 1), dtype=np.int64)
    for channel in range(levels.shape[1]):
        code = codes[:, channel]
        if gamma[channel] < 0:
            _negate_channel(producer, channel)
            code = code[::-1]  # as a function of the negated accumulator, ascending
        if np.any(np.diff(code) < 0):
            raise ConfigError(f"node {bn.name}: channel {channel} is not monotonic in the "
                              "accumulator; cannot fold into thresholds")
        for step in range(1, step_values):
            reached = np.nonzero(code >= step)[0]
            thresholds[channel, step - 1] = candidates[reached[0]] if reached.size else reach + 1
    return MultiThreshold(bn.name, thresholds=thresholds, out_scale=out_scale, out_bias=out_bias)


def _negate_channel(producer: Dense | Conv2d, channel: int) -> None:
    producer.weights[channel] = -producer.weights[channel]
    if producer.bias is not None:
        producer.bias[channel] = -producer.bias[channel]


def _evaluate_reference(nodes: list, constants: dict, candidates, acc_scale: float,
                        channels: int) -> np.ndarray:
    """The reference ``nodes``' float32 output for accumulator value k (as float32(k * scale))
    on every channel: shape (len(candidates), channels)."""
    from onnx import TensorProto, helper, numpy_helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    inputs = {n for node in nodes for n in node.input[1:] if n}
    initializers = [numpy_helper.from_array(constants[n].values.astype(np.float32), n)
                    for n in sorted(inputs)]
    renamed = []
    current = "acc"
    for index, node in enumerate(nodes):
        # the domain is ours, not the file's (check_domains has vetted the file's anyway)
        domain = QONNX_DOMAIN if node.op_type in ("Quant", "BipolarQuant", "MultiThreshold") \
            else ""
        copy = helper.make_node(node.op_type, [current, *node.input[1:]], [f"t{index}"],
                                domain=domain)
        copy.attribute.extend(node.attribute)
        renamed.append(copy)
        current = f"t{index}"
    shape = [len(candidates), channels]
    graph = helper.make_graph(
        renamed, "fold", [helper.make_tensor_value_info("acc", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, shape)],
        initializer=initializers,
        value_info=[helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, shape)
                    for i in range(len(nodes) - 1)])
    model = ModelWrapper(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]))
    acc = (candidates.astype(np.float32) * np.float32(acc_scale))[:, None]
    acc = np.repeat(acc, channels, axis=1).astype(np.float32)
    return execute_onnx(model, {"acc": acc})[current].astype(np.float64)


def _in_units(real: np.ndarray, scale: float, what: str, round_up: bool) -> np.ndarray:
    """Real values as integers in units of ``scale``, exactly: x >= t <=> q >= ceil(t/s)."""
    ratio = [Fraction(float(v)) / Fraction(scale) for v in real.reshape(-1)]
    if round_up:
        # A threshold beyond every accumulator the golden model computes exactly (at most
        # MAX_EXACT_BITS wide) compares the same as one just beyond it.
        limit = 1 << MAX_EXACT_BITS
        ints = [min(max(-((-r.numerator) // r.denominator), -limit), limit) for r in ratio]
    else:
        if any(r.denominator != 1 for r in ratio):
            raise ConfigError(f"{what} is not a whole multiple of the product scale {scale:g}")
        ints = [r.numerator for r in ratio]
        if any(abs(i).bit_length() >= MAX_EXACT_BITS for i in ints):
            raise ConfigError(f"{what} is beyond the {MAX_EXACT_BITS}-bit range the golden model "
                              "computes exactly")
    return np.array(ints, dtype=np.int64).reshape(real.shape)
