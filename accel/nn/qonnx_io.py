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
                         MaxPool2d, MultiThreshold, Network, Quant, Relu, Reshape)

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
# Folding into thresholds evaluates the reference on every reachable accumulator value, and
# makes one threshold per output level: beyond 8-bit outputs the thresholds outgrow the layer.
MAX_FOLD_VALUES = 1 << 22
MAX_FOLD_STEPS = 255


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
        elif isinstance(layer, (Dense, Conv2d)):
            weight = _export_weight(layer, nodes, constant)
            bias = None
            if layer.bias is not None or layer.real_bias is not None:
                bias_scale = 1.0 if in_type.is_float else in_type.scale * layer.weight_type.scale
                real = layer.real_bias if layer.bias is None else \
                    layer.bias.astype(np.float64) * bias_scale
                bias = constant(f"{prefix}_bias", real)
            if isinstance(layer, Dense):
                product = out if bias is None else f"{prefix}_matmul_out"
                nodes.append(helper.make_node("MatMul", [current, weight], [product],
                                              name=prefix))
                if bias is not None:
                    nodes.append(helper.make_node("Add", [product, bias], [out],
                                                  name=f"{prefix}_bias"))
            else:
                p, k = layer.padding, layer.kernel
                nodes.append(helper.make_node(
                    "Conv", [current, weight] + ([bias] if bias else []), [out], name=prefix,
                    kernel_shape=[k, k], pads=[p, p, p, p], strides=[layer.stride] * 2))
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
                data_layout="NHWC" if layer.channels_last else "NCHW" if rank == 4 else "NC"))
        elif isinstance(layer, Relu):
            nodes.append(helper.make_node("Relu", [current], [out], name=prefix))
        elif isinstance(layer, Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], name=prefix, axis=1))
        elif isinstance(layer, Reshape):
            resolved = layer.out_shape(types[index][0])[1:]  # no -1 or 0 left: the batch's
            initializers.append(numpy_helper.from_array(
                np.array([-1, *resolved], dtype=np.int64), f"{prefix}_shape"))
            nodes.append(helper.make_node("Reshape", [current, f"{prefix}_shape"], [out],
                                          name=prefix))
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
    scale = np.float64(wt.scale)
    if layer.channel_scale is not None:  # per output channel: broadcast along that axis
        shape = (1, -1) if isinstance(layer, Dense) else (-1, 1, 1, 1)
        scale = wt.scale * layer.channel_scale.reshape(shape)
    real = constant(f"{name}_float", weights.astype(np.float64) * scale)
    if wt.bipolar:
        nodes.append(helper.make_node("BipolarQuant", [real, constant(f"{name}_scale", scale)],
                                      [name], name=f"{name}_quant", domain=QONNX_DOMAIN))
    else:
        nodes.append(helper.make_node(
            "Quant", [real, constant(f"{name}_scale", scale), constant(f"{name}_zeropt", 0.0),
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
    """A folded constant: float values, and when it came from a quantizer (or a datatype
    annotation), its integer form; ``scales`` (the values' shape) when the quantizer's scale
    was a tensor (per-channel), else None and the scale is ``dtype.scale``."""

    def __init__(self, values, ints=None, dtype: DataType | None = None, scales=None):
        self.values = np.asarray(values)
        self.ints = ints
        self.dtype = dtype
        self.scales = scales


def from_onnx(model, name: str = "network") -> Network:
    from onnx import numpy_helper

    check_domains(model, name)
    graph = model.graph
    constants = {init.name: _Constant(numpy_helper.to_array(init)) for init in graph.initializer}
    for value in constants.values():
        if value.values.dtype.kind == "f" and not np.all(np.isfinite(value.values)):
            bad = next(k for k, v in constants.items() if v is value)
            raise ConfigError(f"initializer {bad}: contains NaN or infinity")
    _apply_datatype_annotations(graph, constants)
    # older exporters also list every initializer as a graph input: those are constants
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
    network = Network(name, tuple(dims),
                      _resolve_real_units(layers, input_type, sources, constants), input_type)
    network.metadata = {p.key: p.value for p in model.metadata_props}
    return network


def _apply_datatype_annotations(graph, constants: dict) -> None:
    """Initializers whose qonnx datatype annotation (``finn_datatype``) says they are integers,
    as FINN's own tests build MatMul weights, become integer constants of that type."""
    for annotation in graph.quantization_annotation:
        const = constants.get(annotation.tensor_name)
        if const is None:
            continue
        for entry in annotation.quant_parameter_tensor_names:
            if entry.key != "finn_datatype":
                continue
            where = f"initializer {annotation.tensor_name}"
            dtype = _parse_type_name(entry.value, where)
            if dtype.is_float:
                continue
            values = const.values
            if values.dtype.kind not in "fiu" or np.any(values != np.round(values)):
                raise ConfigError(f"{where}: annotated {entry.value} but holds non-integers")
            ints = values.astype(np.int64)
            if dtype.bipolar and np.any(np.abs(ints) != 1) or ints.size and (
                    ints.min() < dtype.min_int or ints.max() > dtype.max_int):
                raise ConfigError(f"{where}: values outside its annotated type {entry.value}")
            constants[annotation.tensor_name] = _Constant(values, ints, dtype)


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
    const = constants.get(name)
    if const is None:
        raise ConfigError(f"node {node_name}: its {what} ({name}) is not a constant")
    value = const.values
    if value.size != 1:
        raise ConfigError(f"node {node_name}: {what} must be a scalar on the data path (tensor "
                          f"scales are accepted on weights), got shape {value.shape}")
    return float(value.reshape(()))


def _weight_scales(constants, node, node_name: str, shape) -> tuple[float, np.ndarray | None]:
    """A weight quantizer's scale: a scalar, or a tensor (per output channel) broadcast to the
    weights' ``shape``; returned as (the scalar, None) or (1.0, the broadcast scales)."""
    value = constants[node.input[1]].values.astype(np.float64)
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ConfigError(f"node {node_name}: scales must be positive and finite")
    if value.size == 1:
        return float(value.reshape(())), None
    try:
        return 1.0, np.broadcast_to(value, shape).copy()
    except ValueError:
        raise ConfigError(f"node {node_name}: scale of shape {value.shape} does not broadcast "
                          f"to the weights' {tuple(shape)}") from None


def _fold_constant(node, node_name: str, constants) -> _Constant:
    source = constants[node.input[0]]
    if node.op_type == "Quant":
        scale, scales = _weight_scales(constants, node, node_name, source.values.shape)
        zeropt = _scalar(constants, node.input[2], node_name, "zero point")
        bits = int(_scalar(constants, node.input[3], node_name, "bit width"))
        if zeropt != 0:
            raise ConfigError(f"node {node_name}: nonzero zero points are not supported")
        signed = bool(_attr(node, "signed", 1))
        divided = source.values if scales is None else \
            source.values.astype(np.float32) / scales.astype(np.float32)
        if bits == 1 and signed:
            ints = np.where(divided / scale >= 0, 1, -1).astype(np.int64)
            dtype = DataType.bipolar_type(scale)
        else:
            quant = Quant(node_name, bits=bits, signed=signed,
                          narrow=bool(_attr(node, "narrow", 0)), scale=scale,
                          rounding=_attr(node, "rounding_mode", "ROUND"))
            ints = apply_layer(quant, divided, DataType.float32())
            dtype = quant.out_type
        return _Constant(ints * scale * (1 if scales is None else scales), ints, dtype, scales)
    if node.op_type == "BipolarQuant":
        scale, scales = _weight_scales(constants, node, node_name, source.values.shape)
        ints = np.where(source.values >= 0, 1, -1).astype(np.int64)
        return _Constant(ints * scale * (1 if scales is None else scales), ints,
                         DataType.bipolar_type(scale), scales)
    if node.op_type == "Transpose":
        perm = _attr(node, "perm")
        t = lambda a: None if a is None else np.transpose(a, perm)  # noqa: E731
        return _Constant(t(source.values), t(source.ints), source.dtype, t(source.scales))
    raise ConfigError(f"node {node_name}: unsupported operation {node.op_type} on constants")


def _channel_scale(const: _Constant, node_name: str, channel_axis: int) -> np.ndarray | None:
    """Per output channel, the weights' scale (a tensor scale must be constant along every
    other axis); None for a scalar scale."""
    if const.scales is None:
        return None
    scales = np.moveaxis(const.scales, channel_axis, 0).reshape(const.scales.shape[channel_axis],
                                                                -1)
    if np.any(scales != scales[:, :1]):
        raise ConfigError(f"node {node_name}: weight scales vary within an output channel; "
                          "only per-tensor and per-output-channel scales are supported")
    return scales[:, 0]


def _weights(constants, name: str, node_name: str, transposed: bool):
    """Weights as (outputs, inputs) integers (or float32), their datatype and their
    per-output-channel scale (or None)."""
    const = constants.get(name)
    if const is None:
        raise ConfigError(f"node {node_name}: the weight {name} is not a constant")
    if const.values.ndim != 2:
        raise ConfigError(f"node {node_name}: weight {name} must be 2-D, got {const.values.shape}")
    if const.ints is not None:
        w, dtype = const.ints, const.dtype
    else:
        w, dtype = const.values.astype(np.float32), DataType.float32()
    return (w if transposed else w.T), dtype, _channel_scale(const, node_name,
                                                             0 if transposed else 1)


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
        weights, wtype, channel_scale = _weights(
            constants, node.input[1], node_name,
            transposed=op == "Gemm" and bool(_attr(node, "transB", 0)))
        layer = Dense(node_name, weights=weights, weight_type=wtype, channel_scale=channel_scale)
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
        const = constants.get(node.input[1]) if len(node.input) > 1 else None
        if const is None:
            raise ConfigError(f"node {node_name}: the thresholds must be a constant")
        thresholds = const.values.astype(np.float64)
        if thresholds.ndim != 2 or not np.all(np.isfinite(thresholds)):
            raise ConfigError(f"node {node_name}: thresholds must be finite and 2-D")
        layout = _attr(node, "data_layout", "NCHW") or "NCHW"
        if layout not in ("NC", "NCHW", "NHWC"):
            raise ConfigError(f"node {node_name}: data layout {layout} is not supported")
        return _PendingThreshold(node_name, thresholds, float(_attr(node, "out_scale", 1.0)),
                                 float(_attr(node, "out_bias", 0.0)), layout == "NHWC")
    if op == "BatchNormalization":
        for name in node.input[1:5]:
            if name not in constants:
                raise ConfigError(f"node {node_name}: batch-norm parameter {name} is not constant")
        return _PendingBatchNorm(node_name, node)
    if op == "Relu":
        return Relu(node_name)
    if op == "Flatten":
        if _attr(node, "axis", 1) != 1:
            raise ConfigError(f"node {node_name}: only Flatten with axis=1 is supported")
        return Flatten(node_name)
    if op == "Reshape":
        target = constants.get(node.input[1]) if len(node.input) > 1 else None
        if target is None or target.values.ndim != 1 or target.values.dtype.kind not in "iu":
            raise ConfigError(f"node {node_name}: a Reshape needs a constant 1-D integer shape")
        shape = target.values.astype(np.int64).tolist()
        # allowzero only changes what a 0 in the shape means (Brevitas sets it, without zeros)
        if _attr(node, "allowzero", 0) and 0 in shape or len(shape) < 2 \
                or shape[0] not in (1, -1, 0):
            raise ConfigError(f"node {node_name}: a Reshape must keep the batch axis first "
                              f"(N, ...), got {shape}" + (" with allowzero" if 0 in shape else ""))
        if len(shape) == 2 and shape[1] == -1:
            return Flatten(node_name)  # a fixed batch of 1 ([1, 144]) is a Reshape that flattens
        return Reshape(node_name, shape=tuple(shape[1:]))
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
                   stride=strides[0], channel_scale=_channel_scale(const, node_name, 0))
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
    channels_last: bool = False


@dataclass
class _PendingBatchNorm:
    """A BatchNormalization node, to be folded with the quantizer after it into thresholds."""

    name: str
    node: object


def _resolve_real_units(layers: list, input_type: DataType, sources: dict,
                        constants: dict) -> list[Layer]:
    """Turn real-valued thresholds and biases into integers in units of their input's scale.

    Where that is not exact arithmetic, fold into thresholds: a dense or conv layer's real
    part (a bias that is not a whole multiple of the product scale, per-channel weight scales)
    together with what follows it up to the next quantizer, [BatchNormalization] [Relu]
    Quant|BipolarQuant, becomes that layer (integers only) and one MultiThreshold. A
    MultiThreshold after per-channel scales gets per-channel integer thresholds. The network's
    last layer may keep its real part: the host applies it (``golden.output_values``).
    ``sources`` maps layer names to the ONNX nodes they came from, ``constants`` names the
    folded constants."""
    from accel.nn.golden import output_type

    dtype = input_type
    resolved = []
    layers = list(layers)
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, (Dense, Conv2d)) and not dtype.is_float:
            unit = dtype.scale * layer.weight_type.scale
            if layer.bias is not None and layer.channel_scale is None \
                    and _whole_multiples(layer.bias, unit):
                layer.bias = _in_units(layer.bias, unit, f"node {layer.name}: bias",
                                       round_up=False)
            real_part = layer.bias is not None and layer.bias.dtype.kind == "f" \
                or layer.channel_scale is not None
            chain = _threshold_chain(layers)
            if chain and not isinstance(chain[0], _PendingBatchNorm) and not real_part:
                chain = []  # an integer requantization: hardware does it as it stands
            if chain or real_part and layers and not isinstance(layers[0], _PendingThreshold):
                if not chain:
                    raise ConfigError(
                        f"node {layer.name}: a real-valued bias or per-channel weight scales "
                        "must be followed by [BatchNormalization] [Relu] and a quantizer (to be "
                        "folded into thresholds) or end the network; found "
                        f"{_describe(layers[0])} after it")
                steps = [layers.pop(0) for _ in chain]
                nodes = [sources[x.name] for x in steps if not isinstance(x, _PendingBatchNorm)]
                batchnorm = next((x for x in steps if isinstance(x, _PendingBatchNorm)), None)
                if batchnorm is not None:
                    nodes.insert(0, batchnorm.node)
                resolved.append(layer)
                resolved.append(_fold_thresholds(steps[0].name, nodes, constants, steps[-1],
                                                 layer, dtype))
                dtype = resolved[-1].out_type
                continue
            if layer.bias is not None and layer.bias.dtype.kind == "f" and layers:
                raise ConfigError(f"node {layer.name}: bias is not a whole multiple of the "
                                  f"product scale {unit:g} and no quantizer follows to fold it")
            if layer.bias is not None and not layers and layer.bias.dtype.kind == "f":
                layer.real_bias, layer.bias = layer.bias * 1.0, None  # the host adds it
        if isinstance(layer, _PendingBatchNorm):
            raise ConfigError(f"node {layer.name}: batch-norm is supported only between a "
                              "quantized MatMul/Gemm/Conv and a quantizer (optionally after a "
                              "Relu), to be folded into thresholds")
        if isinstance(layer, _PendingThreshold):
            if dtype.is_float:
                raise ConfigError(f"node {layer.name}: thresholds on a float tensor; "
                                  "quantize it first")
            scale = dtype.scale
            producer = resolved[-1] if resolved else None
            thresholds = layer.real_thresholds
            if isinstance(producer, (Dense, Conv2d)) and producer.channel_scale is not None:
                scale = dtype.scale * producer.channel_scale[:, None]
                thresholds = np.broadcast_to(thresholds, (len(scale), thresholds.shape[1]))
                producer.channel_scale = None  # now part of the thresholds
            layer = MultiThreshold(layer.name, thresholds=_in_units(
                thresholds, scale, f"node {layer.name}", round_up=True),
                out_scale=layer.out_scale, out_bias=layer.out_bias,
                channels_last=layer.channels_last)
        resolved.append(layer)
        dtype = output_type(layer, dtype)
    return resolved


def _describe(layer) -> str:
    return f"{getattr(layer, 'op', 'batch-norm')} {layer.name}"


def _whole_multiples(real: np.ndarray, unit: float) -> bool:
    return all((Fraction(float(v)) / Fraction(unit)).denominator == 1 for v in real.reshape(-1))


def _threshold_chain(layers: list) -> list:
    """The layers at the front of ``layers`` that fold into thresholds: [batch-norm] [Relu]
    quantizer, or [] when they do not end in a quantizer (without a batch-norm, only a chain
    that starts right away counts, as a producer's real part needs one)."""
    chain = []
    for kind in (_PendingBatchNorm, Relu):
        if len(layers) > len(chain) and isinstance(layers[len(chain)], kind):
            chain.append(layers[len(chain)])
    if len(layers) > len(chain) and isinstance(layers[len(chain)], (Quant, BipolarQuant)):
        return chain + [layers[len(chain)]]
    if chain and isinstance(chain[0], _PendingBatchNorm):
        raise ConfigError(f"node {chain[0].name}: batch-norm must be followed by a quantizer "
                          "(optionally after a Relu) to be folded into thresholds")
    return []


def _fold_thresholds(name: str, nodes: list, constants: dict, quantizer: Quant | BipolarQuant,
                     producer: Dense | Conv2d, producer_input: DataType) -> MultiThreshold:
    """The producer's real part + ``nodes`` (the ONNX nodes of [batch-norm] [Relu] quantizer)
    as integer thresholds on the producer's integer accumulator.

    Exact by construction: the reference graph's own nodes (with the producer's real bias as
    an Add in front) are evaluated by qonnx's executor, in float32, on every accumulator value
    the producer can reach, and each threshold is the smallest accumulator that reaches the
    next output level. A channel whose output falls as the accumulator rises (a negative
    batch-norm scale) is negated in the producer (weights and integer bias), as in FINN, so
    that its thresholds count upward. The producer is left with integers only.
    """
    from onnx import helper

    from accel.nn.golden import accumulator_range

    real_bias = producer.bias if producer.bias is not None and \
        producer.bias.dtype.kind == "f" else None
    if real_bias is not None:
        producer.bias = None
    lo, hi = accumulator_range(producer, producer_input)
    reach = int(max(abs(int(lo.min())), abs(int(hi.max()))))
    if 2 * reach + 1 > MAX_FOLD_VALUES:
        raise ConfigError(f"node {name}: accumulator range +-{reach} is too wide to fold into "
                          "thresholds exactly")
    channels = producer.weights.shape[0]
    if real_bias is not None:
        constants = {**constants, "fold_bias": _Constant(real_bias.astype(np.float32))}
        nodes = [helper.make_node("Add", ["acc", "fold_bias"], ["biased"])] + nodes
    acc_scale = producer_input.scale * producer.weight_type.scale * (
        producer.channel_scale if producer.channel_scale is not None else np.ones(channels))
    producer.channel_scale = None
    levels_out = 2 if isinstance(quantizer, BipolarQuant) else \
        quantizer.int_range[1] - quantizer.int_range[0] + 1
    if levels_out - 1 > MAX_FOLD_STEPS:
        raise ConfigError(f"node {name}: folding into a {levels_out}-level quantizer needs "
                          f"{levels_out - 1} thresholds per channel (at most {MAX_FOLD_STEPS}: "
                          "8-bit outputs); a batch-norm, a float bias or per-channel weight scales "
                          "before a wider quantizer need per-channel requantization")
    candidates = np.arange(-reach, reach + 1, dtype=np.int64)
    levels = _evaluate_reference(nodes, constants, candidates, acc_scale)
    if isinstance(quantizer, BipolarQuant):
        step_values, level_lo, out_scale = 2, 0, 2 * quantizer.scale
        out_bias = -quantizer.scale
        codes = (levels > 0).astype(np.int64)
    else:
        level_lo, level_hi = quantizer.int_range
        step_values, out_scale = level_hi - level_lo + 1, quantizer.scale
        out_bias = level_lo * quantizer.scale
        codes = np.rint(levels / quantizer.scale).astype(np.int64) - level_lo
    thresholds = np.empty((channels, step_values - 1), dtype=np.int64)
    for channel in range(channels):
        code = codes[:, channel]
        if code[-1] < code[0]:
            _negate_channel(producer, channel)
            code = code[::-1]  # as a function of the negated accumulator, ascending
        if np.any(np.diff(code) < 0):
            raise ConfigError(f"node {name}: channel {channel} is not monotonic in the "
                              "accumulator; cannot fold into thresholds")
        for step in range(1, step_values):
            reached = np.nonzero(code >= step)[0]
            thresholds[channel, step - 1] = candidates[reached[0]] if reached.size else reach + 1
    return MultiThreshold(name, thresholds=thresholds, out_scale=out_scale, out_bias=out_bias)


def _negate_channel(producer: Dense | Conv2d, channel: int) -> None:
    producer.weights[channel] = -producer.weights[channel]
    if producer.bias is not None:
        producer.bias[channel] = -producer.bias[channel]


def _evaluate_reference(nodes: list, constants: dict, candidates,
                        acc_scale: np.ndarray) -> np.ndarray:
    """The reference ``nodes``' float32 output for accumulator value k (as float32(k) *
    float32(scale of the channel)) on every channel: shape (len(candidates), channels)."""
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
    shape = [len(candidates), len(acc_scale)]
    graph = helper.make_graph(
        renamed, "fold", [helper.make_tensor_value_info("acc", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, shape)],
        initializer=initializers,
        value_info=[helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, shape)
                    for i in range(len(nodes) - 1)])
    model = ModelWrapper(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]))
    acc = candidates.astype(np.float32)[:, None] * acc_scale.astype(np.float32)[None, :]
    return execute_onnx(model, {"acc": acc})[current].astype(np.float64)


def _in_units(real: np.ndarray, scale, what: str, round_up: bool) -> np.ndarray:
    """Real values as integers in units of ``scale`` (a scalar, or per element by
    broadcasting, e.g. a column of per-channel scales), exactly: x >= t <=> q >= ceil(t/s)."""
    real = np.asarray(real)
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), real.shape).reshape(-1)
    ratio = [Fraction(float(v)) / Fraction(float(s)) for v, s in zip(real.reshape(-1), scales)]
    if round_up:
        # A threshold beyond every accumulator the golden model computes exactly (at most
        # MAX_EXACT_BITS wide) compares the same as one just beyond it.
        limit = 1 << MAX_EXACT_BITS
        ints = [min(max(-((-r.numerator) // r.denominator), -limit), limit) for r in ratio]
    else:
        if any(r.denominator != 1 for r in ratio):
            raise ConfigError(f"{what} is not a whole multiple of the product scale")
        ints = [r.numerator for r in ratio]
        if any(abs(i).bit_length() >= MAX_EXACT_BITS for i in ints):
            raise ConfigError(f"{what} is beyond the {MAX_EXACT_BITS}-bit range the golden model "
                              "computes exactly")
    return np.array(ints, dtype=np.int64).reshape(real.shape)
