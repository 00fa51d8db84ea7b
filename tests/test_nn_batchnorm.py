"""Batch-norm folded into integer thresholds on import: the Brevitas-exported BNN and
synthetic graphs with negative, zero and positive batch-norm scales, against qonnx's executor."""

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from accel.errors import ConfigError
from accel.nn import MultiThreshold, golden, load
from accel.nn.data import digits_split
from accel.nn.qonnx_io import QONNX_DOMAIN, from_onnx

BREVITAS = Path(__file__).parent / "data" / "brevitas_bnn.onnx"


def run_qonnx(model, input_name, output_name, inputs):
    wrapper = ModelWrapper(model)
    return np.concatenate([execute_onnx(wrapper, {input_name: x[None].astype(np.float32)})
                           [output_name] for x in inputs])


def test_brevitas_bnn_equals_qonnx_on_the_whole_test_split():
    net = load(BREVITAS)  # its weights are inline (brevitas_bnn.onnx.data is not read)
    assert sum(isinstance(layer, MultiThreshold) for layer in net.layers) == 2
    split = digits_split()
    ours = golden.run(net, split.x_test)
    reference = run_qonnx(str(BREVITAS), "input", "linear_2", split.x_test)
    # The output scale is a float (Brevitas learns it), so qonnx's float32 output is the exact
    # integer times that scale, rounded: recover the integer and compare exactly.
    np.testing.assert_array_equal(np.rint(reference / net.output_type.scale), ours)
    np.testing.assert_array_equal(reference.argmax(1), ours.argmax(1))
    accuracy = (ours.argmax(1) == split.y_test).mean()
    assert accuracy > 0.85  # the exporting script printed 0.9109 from Brevitas itself


def synthetic_bn_graph(seed, after_bn, gammas):
    """Quant(8b) -> MatMul(binary weights) -> BatchNormalization -> after_bn -> MatMul."""
    rng = np.random.default_rng(seed)
    inputs, hidden, outputs = 12, len(gammas), 5
    init = {
        "in_scale": np.float32(2**-8), "zero": np.float32(0), "in_bits": np.float32(8),
        "w0": np.where(rng.random((inputs, hidden)) < 0.5, -1, 1).astype(np.float32),
        "w1": np.where(rng.random((hidden, outputs)) < 0.5, -1, 1).astype(np.float32),
        "one": np.float32(1.0),
        "gamma": np.asarray(gammas, np.float32),
        "beta": rng.normal(size=hidden).astype(np.float32),
        "mean": rng.normal(size=hidden).astype(np.float32),
        "var": rng.uniform(0.1, 3, hidden).astype(np.float32),
        "act_scale": np.float32(0.5), "act_bits": np.float32(4),
    }
    nodes = [
        helper.make_node("Quant", ["x", "in_scale", "zero", "in_bits"], ["xq"],
                         domain=QONNX_DOMAIN, signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("BipolarQuant", ["w0", "one"], ["w0q"], domain=QONNX_DOMAIN),
        helper.make_node("MatMul", ["xq", "w0q"], ["acc"]),
        helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"], ["bn"],
                         epsilon=1e-5),
    ]
    if after_bn == "sign":
        nodes.append(helper.make_node("BipolarQuant", ["bn", "one"], ["act"], domain=QONNX_DOMAIN))
    else:
        nodes.append(helper.make_node("Relu", ["bn"], ["bn_relu"]))
        nodes.append(helper.make_node("Quant", ["bn_relu", "act_scale", "zero", "act_bits"],
                                      ["act"], domain=QONNX_DOMAIN, signed=0, narrow=0,
                                      rounding_mode="ROUND"))
    nodes += [helper.make_node("BipolarQuant", ["w1", "one"], ["w1q"], domain=QONNX_DOMAIN),
              helper.make_node("MatMul", ["act", "w1q"], ["y"])]
    shapes = {"xq": [1, inputs], "w0q": [inputs, hidden], "acc": [1, hidden], "bn": [1, hidden],
              "bn_relu": [1, hidden], "act": [1, hidden], "w1q": [hidden, outputs]}
    graph = helper.make_graph(
        nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in init.items()],
        value_info=[helper.make_tensor_value_info(k, TensorProto.FLOAT, v)
                    for k, v in shapes.items() if any(k in n.output for n in nodes)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid(QONNX_DOMAIN, 1)])


@pytest.mark.parametrize("after_bn", ["sign", "relu_quant"])
@pytest.mark.parametrize("seed", range(4))
def test_negative_zero_and_positive_scales_fold_exactly(after_bn, seed):
    gammas = [1.5, -0.7, 0.0, -2.0, 0.3, 1.0, -0.05, 4.0]
    model = synthetic_bn_graph(seed, after_bn, gammas)
    net = from_onnx(model)
    inputs = np.random.default_rng(100 + seed).random((200, 12)).astype(np.float32)
    # near-boundary inputs too: every input on the 8-bit grid is exercised by random pixels
    ours = golden.real_values(golden.run(net, inputs), net.output_type)
    np.testing.assert_array_equal(ours, run_qonnx(model, "x", "y", inputs))


def test_batchnorm_without_quantizer_is_rejected():
    model = synthetic_bn_graph(0, "sign", [1.0, -1.0])
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes[:4])
    model.graph.output[0].name = "bn"
    with pytest.raises(ConfigError, match="must be followed by a quantizer"):
        from_onnx(model)


def test_reexport_of_the_brevitas_network_stays_exact():
    """Our own QONNX export of a network with float (non power-of-two) scales: thresholds sit
    half a step below the integer threshold, so qonnx's float32 accumulators cannot cross them."""
    from accel.nn.evaluate import check_against_qonnx
    from accel.nn.qonnx_io import to_onnx

    net = load(BREVITAS)
    inputs = digits_split().x_test[:150]
    check = check_against_qonnx(net, to_onnx(net), inputs, golden.run(net, inputs))
    assert check.exact_regime and check.agree
