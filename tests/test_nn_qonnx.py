"""Golden model against qonnx's executor on randomized graphs; import/export round trips;
clear errors for bad files."""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from accel.errors import ConfigError
from accel.nn import (BipolarQuant, Conv2d, DataType, Dense, Flatten, MaxPool2d, MultiThreshold,
                      Network, Quant, Relu, Reshape, load, save)
from accel.nn import golden
from accel.nn.qonnx_io import to_onnx

ROUNDINGS = ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP", "DOWN"]


@st.composite
def random_networks(draw):
    """Chains of quantizer -> (dense -> activation)* -> dense, with power-of-two scales and
    accumulators far below 2**24 (where qonnx's float32 evaluation is exact)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    width = draw(st.integers(1, 12))
    signed_input = draw(st.booleans())
    in_bits = draw(st.integers(2, 8))
    layers = [Quant("quant_in", bits=in_bits, signed=signed_input,
                    scale=2.0 ** draw(st.integers(-8, 0)), rounding=draw(st.sampled_from(ROUNDINGS)),
                    narrow=draw(st.booleans()) and signed_input)]
    if draw(st.booleans()):
        layers.append(Relu("relu_in"))
    depth = draw(st.integers(1, 3))
    for k in range(depth):
        outputs = draw(st.integers(1, 10))
        kind = draw(st.sampled_from(["int", "bipolar"]))
        if kind == "bipolar":
            wtype = DataType.bipolar_type()
            w = np.where(rng.random((outputs, width)) < 0.5, -1, 1)
        else:
            bits = draw(st.integers(2, 4))
            wtype = DataType(bits, True, 2.0 ** draw(st.integers(-3, 1)))
            w = rng.integers(wtype.min_int, wtype.max_int + 1, (outputs, width))
        bias = rng.integers(-4, 5, outputs) if draw(st.booleans()) else None
        layers.append(Dense(f"dense{k}", weights=w, weight_type=wtype, bias=bias))
        if k == depth - 1:
            break
        act = draw(st.sampled_from(["threshold", "bipolar", "requant", "relu_requant"]))
        acc_hint = int(np.abs(w).sum(axis=1).max()) * (1 << in_bits) + 8
        if act == "threshold":
            steps = draw(st.integers(1, 7))
            t = np.sort(rng.integers(-acc_hint, acc_hint + 1, (outputs, steps)), axis=1)
            layers.append(MultiThreshold(f"act{k}", thresholds=t, out_scale=1.0,
                                         out_bias=float(draw(st.integers(-3, 0)))))
        elif act == "bipolar":
            t = rng.integers(-acc_hint, acc_hint + 1, (outputs, 1))
            layers.append(MultiThreshold(f"act{k}", thresholds=t, out_scale=2.0, out_bias=-1.0))
        else:
            if act == "relu_requant":
                layers.append(Relu(f"relu{k}"))
            layers.append(Quant(f"act{k}", bits=draw(st.integers(2, 8)),
                                signed=act == "requant", scale=2.0 ** draw(st.integers(-4, 3)),
                                rounding=draw(st.sampled_from(ROUNDINGS))))
        width = outputs
    net = Network(f"random{seed}", (1, _input_width(layers)), layers)
    inputs = (rng.random((4, net.input_shape[1])) * 4 - 2).astype(np.float32)
    return net, inputs


def _random_activation(draw, rng, name, channels, acc_hint):
    act = draw(st.sampled_from(["threshold", "bipolar", "requant", "relu_requant"]))
    if act == "threshold":
        steps = draw(st.integers(1, 7))
        t = np.sort(rng.integers(-acc_hint, acc_hint + 1, (channels, steps)), axis=1)
        return [MultiThreshold(name, thresholds=t, out_scale=1.0,
                               out_bias=float(draw(st.integers(-3, 0))))]
    if act == "bipolar":
        t = rng.integers(-acc_hint, acc_hint + 1, (channels, 1))
        return [MultiThreshold(name, thresholds=t, out_scale=2.0, out_bias=-1.0)]
    layers = [Relu(f"{name}_relu")] if act == "relu_requant" else []
    return layers + [Quant(name, bits=draw(st.integers(2, 8)), signed=act == "requant",
                           scale=2.0 ** draw(st.integers(-4, 3)),
                           rounding=draw(st.sampled_from(ROUNDINGS)))]


def _random_weights(draw, rng, shape):
    if draw(st.booleans()):
        return np.where(rng.random(shape) < 0.5, -1, 1), DataType.bipolar_type()
    wtype = DataType(draw(st.integers(2, 4)), True, 2.0 ** draw(st.integers(-3, 1)))
    return rng.integers(wtype.min_int, wtype.max_int + 1, shape), wtype


@st.composite
def random_cnns(draw):
    """[flat input -> reshape] quantizer -> (conv -> activation [-> max-pool])+ -> flatten ->
    dense [with a per-channel scale: the host's epilogue], NCHW."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    channels, height, width = draw(st.integers(1, 3)), draw(st.integers(3, 8)), draw(st.integers(3, 8))
    shape = (1, channels, height, width)
    layers = [Quant("quant_in", bits=draw(st.integers(2, 8)), signed=draw(st.booleans()),
                    scale=2.0 ** draw(st.integers(-6, 0)))]
    for k in range(draw(st.integers(1, 2))):
        kernel = draw(st.integers(1, 3))
        padding = draw(st.integers(0, 1))
        if min(shape[2:]) + 2 * padding < kernel:
            break
        out_channels = draw(st.integers(1, 4))
        w, wtype = _random_weights(draw, rng, (out_channels, shape[1], kernel, kernel))
        bias = rng.integers(-4, 5, out_channels) if draw(st.booleans()) else None
        conv = Conv2d(f"conv{k}", weights=w, weight_type=wtype, bias=bias, padding=padding,
                      stride=draw(st.integers(1, 2)))
        layers.append(conv)
        shape = conv.out_shape(shape)
        acc_hint = int(np.abs(w).sum() // max(out_channels, 1)) * 256 + 8
        layers += _random_activation(draw, rng, f"act{k}", out_channels, acc_hint)
        if min(shape[2:]) >= 2 and draw(st.booleans()):
            pool = MaxPool2d(f"pool{k}", kernel=2, stride=draw(st.integers(1, 2)))
            layers.append(pool)
            shape = pool.out_shape(shape)
    layers.append(Flatten("flatten"))
    features = int(np.prod(shape[1:]))
    w, wtype = _random_weights(draw, rng, (draw(st.integers(1, 6)), features))
    channel_scale = 2.0 ** rng.integers(-2, 3, len(w)) if draw(st.booleans()) else None
    layers.append(Dense("dense_out", weights=w, weight_type=wtype, channel_scale=channel_scale))
    input_shape = (1, channels, height, width)
    if draw(st.booleans()):  # a flat input viewed as a feature map (Brevitas's x.view)
        layers.insert(0, Reshape("view", shape=(-1, height, width) if draw(st.booleans())
                                 else (channels, height, width)))
        input_shape = (1, channels * height * width)
    net = Network(f"cnn{seed}", input_shape, layers)
    inputs = (rng.random((3, *input_shape[1:])) * 4 - 2).astype(np.float32)
    return net, inputs


def _input_width(layers):
    first_dense = next(layer for layer in layers if isinstance(layer, Dense))
    return first_dense.inputs


def qonnx_outputs(net, inputs):
    model = ModelWrapper(to_onnx(net))
    return np.concatenate([execute_onnx(model, {"global_in": x[None]})["global_out"]
                           for x in inputs])


@settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_networks())
def test_golden_equals_qonnx_executor_on_random_graphs(case):
    net, inputs = case
    ours = golden.real_values(golden.run(net, inputs), net.output_type)
    reference = qonnx_outputs(net, inputs)
    np.testing.assert_array_equal(ours, reference)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cnns())
def test_golden_equals_qonnx_executor_on_random_cnns(case):
    net, inputs = case
    ours = golden.output_values(net, golden.run(net, inputs))
    np.testing.assert_array_equal(ours, qonnx_outputs(net, inputs))


@settings(max_examples=40, deadline=None)
@given(random_networks() | random_cnns())
def test_export_import_round_trip(tmp_path_factory, case):
    net, inputs = case
    path = tmp_path_factory.mktemp("rt") / "net.onnx"
    save(net, path)
    again = load(path)
    assert [layer.op for layer in again.layers] == [layer.op for layer in net.layers]
    np.testing.assert_array_equal(golden.run(again, inputs), golden.run(net, inputs))
    # a per-channel scale comes back whole in the channel scales (the weight type's is 1)
    np.testing.assert_array_equal(golden.output_values(again, golden.run(again, inputs)),
                                  golden.output_values(net, golden.run(net, inputs)))
    if net.layers[-1].channel_scale is None:
        assert again.output_type == net.output_type


def test_round_rational_matches_float_rounding_on_halves():
    p = np.arange(-40, 41)
    for mode in ROUNDINGS:
        expected = golden.float_round(p / 4.0, mode)
        np.testing.assert_array_equal(golden.round_rational(p, 4, mode), expected, err_msg=mode)


def small_net():
    return Network("small", (1, 4), [
        Quant("q", bits=4, signed=False, scale=0.25),
        Dense("d", weights=np.array([[1, -1, 1, -1], [1, 1, 1, 1]]),
              weight_type=DataType.bipolar_type()),
        Flatten("f"),
    ])


def test_flatten_and_metadata_survive(tmp_path):
    net = small_net()
    net.metadata["accuracy"] = "0.5"
    path = save(net, tmp_path / "small.onnx")
    again = load(path)
    assert again.metadata == {"accuracy": "0.5"}
    assert [layer.op for layer in again.layers] == ["quant", "dense", "flatten"]


def test_truncated_file_is_one_clear_error(tmp_path):
    path = save(small_net(), tmp_path / "small.onnx")
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="cut.onnx") as info:
        load(tmp_path / "cut.onnx")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such model file"):
        load(tmp_path / "missing.onnx")


def test_unsupported_op_names_the_node(tmp_path):
    model = to_onnx(small_net())
    matmul = next(node for node in model.graph.node if node.name == "d")
    matmul.op_type = "Softmax"
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(ConfigError, match=r"node d.*unsupported operation Softmax"):
        load(path)


def test_nan_weights_are_rejected(tmp_path):
    model = to_onnx(small_net())
    weights = next(i for i in model.graph.initializer if i.name == "d_weight_float")
    array = onnx.numpy_helper.to_array(weights).copy()
    array[0, 0] = np.nan
    weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
    path = tmp_path / "nan.onnx"
    onnx.save(model, path)
    with pytest.raises(ConfigError, match="d_weight_float: contains NaN"):
        load(path)


def test_shape_mismatch_names_the_layer():
    with pytest.raises(ConfigError, match=r"layer d \(dense\): expects input \(N, 3\)"):
        Network("bad", (1, 4), [Quant("q", bits=4, signed=False),
                                Dense("d", weights=np.ones((2, 3)), weight_type=DataType(2, True))])


def test_external_data_files_are_read(tmp_path):
    model = to_onnx(small_net())
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").is_file()
    np.testing.assert_array_equal(golden.run(load(path), np.ones((1, 4), np.float32)),
                                  golden.run(small_net(), np.ones((1, 4), np.float32)))


def test_bipolar_quant_layer_maps_zero_to_plus_one():
    net = Network("b", (1, 3), [Quant("q", bits=4, signed=True, scale=1.0),
                                BipolarQuant("s")])
    out = golden.run(net, np.array([[-1.0, 0.0, 2.0]], np.float32))
    np.testing.assert_array_equal(out, [[-1, 1, 1]])
    np.testing.assert_array_equal(qonnx_outputs(net, np.array([[-1.0, 0.0, 2.0]], np.float32)),
                                  [[-1, 1, 1]])


def test_float_network_agrees_with_qonnx_within_float32_error():
    rng = np.random.default_rng(3)
    net = Network("float_mlp", (1, 16), [
        Dense("d0", weights=rng.normal(size=(20, 16)), weight_type=DataType.float32(),
              bias=rng.normal(size=20)),
        Relu("r0"),
        Dense("d1", weights=rng.normal(size=(10, 20)), weight_type=DataType.float32()),
    ])
    inputs = rng.random((8, 16)).astype(np.float32)
    ours = golden.run(net, inputs)
    reference = qonnx_outputs(net, inputs)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(ours, 1), np.argmax(reference, 1))
