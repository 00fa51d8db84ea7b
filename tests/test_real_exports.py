"""Networks in the formats other tools export, built the way those tools build them: FINN's
own tests (qonnx helpers: datatype annotations, NHWC MatMul, a standalone MultiThreshold, graph
inputs listing initializers) and Brevitas 0.13 ``export_qonnx`` (files made by
``tools/make_brevitas_exports.py``, committed under tests/data). Each must agree with qonnx's
executor through ``accel eval --check-qonnx`` and run on the architectures that take it.

And the untrusted-file rule: a model file never chooses what code runs (node domains)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType as QDataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import gen_finn_dt_tensor, qonnx_make_model

from accel.errors import ConfigError
from accel.hw import evaluate
from accel.hw.finn.arch import ARCHITECTURE as FINN, FinnOptions
from accel.hw.finn.mapping import LayerMapping, ThresholdMapping, map_network
from accel.nn import Dense, Network, Quant, golden, load
from accel.nn.evaluate import check_against_qonnx
from accel.nn.qonnx_io import read_model
from tests.conftest import run_cli

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------- FINN-style files (qonnx helpers)

def finn_matmul(path, ifm_shape, mw, mh, idt, wdt, activation=None, seed=0):
    """A MatMul on an NHWC (or flat) input with qonnx datatype annotations on the input and the
    integer weights, and optionally a MultiThreshold (NHWC), as FINN's MVAU tests build it."""
    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # gen_finn_dt_tensor draws from numpy's global generator
    out_shape = [*ifm_shape[:-1], mh]
    acc = "acc" if activation else "ofm"
    nodes = [helper.make_node("MatMul", ["ifm", "weights"], [acc])]
    value_info = []
    if activation:
        value_info.append(helper.make_tensor_value_info("acc", TensorProto.FLOAT, out_shape))
        nodes.append(helper.make_node(
            "MultiThreshold", ["acc", "thresh"], ["ofm"], domain="qonnx.custom_op.general",
            out_dtype=activation.name, out_bias=float(activation.min()),
            data_layout="NHWC" if len(ifm_shape) == 4 else "NC"))
    graph = helper.make_graph(
        nodes, "matmul_graph", [helper.make_tensor_value_info("ifm", TensorProto.FLOAT,
                                                              list(ifm_shape))],
        [helper.make_tensor_value_info("ofm", TensorProto.FLOAT, out_shape)],
        value_info=value_info)
    model = ModelWrapper(qonnx_make_model(graph, producer_name="fclayer-model"))
    model.set_tensor_datatype("ifm", idt)
    model.set_tensor_datatype("weights", wdt)
    model.set_initializer("weights", gen_finn_dt_tensor(wdt, (mw, mh)))
    if activation:
        steps = activation.get_num_possible_values() - 1
        bound = mw * max(abs(idt.min()), idt.max()) * max(abs(wdt.min()), wdt.max())
        model.set_initializer("thresh", np.sort(rng.integers(-bound, bound, (mh, steps)),
                                                axis=1).astype(np.float32))
    model.save(str(path))
    return path


def finn_thresholding(path, shape, idt, odt, seed=0):
    """A standalone MultiThreshold on an NHWC input (FINN's Thresholding layer tests)."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    node = helper.make_node("MultiThreshold", ["inp", "thresh"], ["outp"],
                            domain="qonnx.custom_op.general", out_dtype=odt.name,
                            out_bias=float(odt.min()), data_layout="NHWC")
    graph = helper.make_graph([node], "thresholding", [
        helper.make_tensor_value_info("inp", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("outp", TensorProto.FLOAT, list(shape))])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="thresholding-model"))
    model.set_tensor_datatype("inp", idt)
    steps = odt.get_num_possible_values() - 1
    model.set_initializer("thresh", np.sort(rng.integers(idt.min(), idt.max() + 1,
                                                         (channels, steps)), axis=1)
                          .astype(np.float32))
    model.save(str(path))
    return path


def integer_inputs(dtype, shape, path, seed=1):
    np.random.seed(seed)
    values = gen_finn_dt_tensor(dtype, shape).astype(np.float32)
    np.save(path, values)
    return values


def qonnx_agrees(path, inputs):
    network = load(path)
    check = check_against_qonnx(network, read_model(path), inputs, golden.run(network, inputs))
    return check.agree and check.exact_regime


def test_finn_nhwc_matmul_with_annotated_integer_weights(tmp_path):
    """FINN's RTL-MVAU test shape: (1, 3, 3, 128) INT4 x INT4 (qonnx annotations, no Quant),
    thresholded to INT4: one MVTU over 9 vectors, equal to qonnx, estimate = FINN's formula."""
    path = finn_matmul(tmp_path / "mvau.onnx", (1, 3, 3, 128), 128, 32, QDataType["INT4"],
                       QDataType["INT4"], activation=QDataType["INT4"])
    inputs = integer_inputs(QDataType["INT4"], (8, 3, 3, 128), tmp_path / "x.npy")
    assert qonnx_agrees(path, inputs)
    network = load(path)
    mapping = map_network(network, {network.layers[0].name: {"pe": 8, "simd": 16}})
    (stage,) = mapping.stages
    assert isinstance(stage, LayerMapping) and (stage.vectors, stage.mw, stage.mh) == (9, 128, 32)
    result = evaluate.estimate(FINN, mapping, network, inputs, model="mvau", clock_mhz=200.0)
    # FINN's formula, (MH/PE) (MW/SIMD) vectors, once the pipeline is full
    assert result.cycles_per_inference == pytest.approx(9 * (32 // 8) * (128 // 16), rel=0.02)
    assert result.predictions == golden.predict(network, inputs).tolist()


def test_finn_matmul_without_activation_and_unsigned_accumulator(tmp_path):
    """UINT4 x UINT2, no activation: the accumulator range is unsigned (the case that wrapped
    in a signed register of the same width)."""
    path = finn_matmul(tmp_path / "mm.onnx", (1, 16), 16, 4, QDataType["UINT4"],
                       QDataType["UINT2"])
    inputs = integer_inputs(QDataType["UINT4"], (6, 16), tmp_path / "x.npy")
    inputs[0] = 15  # the accumulator's top, above half of its unsigned range
    assert qonnx_agrees(path, inputs)
    network = load(path)
    acc = network.output_type
    assert not acc.signed and golden.run(network, inputs[:1]).max() >= 1 << (acc.bits - 1)
    assert map_network(network).stages[0].register_bits == acc.bits + 1


def test_finn_standalone_thresholding(tmp_path):
    path = finn_thresholding(tmp_path / "thr.onnx", (1, 4, 4, 8), QDataType["INT8"],
                             QDataType["UINT2"])
    inputs = integer_inputs(QDataType["INT8"], (5, 4, 4, 8), tmp_path / "x.npy")
    assert qonnx_agrees(path, inputs)
    network = load(path)
    (stage,) = map_network(network, {network.layers[0].name: {"pe": 4}}).stages
    assert isinstance(stage, ThresholdMapping) and stage.beats_in == 16 * 2
    with pytest.raises(ConfigError, match="folded by pe alone"):
        map_network(network, {network.layers[0].name: {"simd": 2}})
    result = evaluate.estimate(FINN, FINN.configure(network, FinnOptions(), clock_mhz=200.0),
                               network, inputs, model="thr", clock_mhz=200.0)
    assert result.cycles_per_inference == pytest.approx(16 * 8, rel=0.05)  # PE 1: one per cycle


def test_graph_inputs_that_are_also_initializers(tmp_path):
    """Older exporters list every initializer among the graph inputs too."""
    path = finn_matmul(tmp_path / "mm.onnx", (1, 16), 16, 4, QDataType["INT2"],
                       QDataType["INT2"], activation=QDataType["BIPOLAR"])
    model = onnx.load(str(path))
    names = {init.name for init in model.graph.initializer}
    kept = [info for info in model.graph.value_info if info.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    for init in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(
            init.name, TensorProto.FLOAT, list(init.dims)))
    onnx.save(model, str(path))
    inputs = integer_inputs(QDataType["INT2"], (6, 16), tmp_path / "x.npy")
    assert len(onnx.load(str(path)).graph.input) == 3
    assert qonnx_agrees(path, inputs)
    result = run_cli("eval", str(path), "--data", str(tmp_path / "x.npy"), "--check-qonnx",
                     "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["qonnx_agree"] is True


@pytest.mark.slow
def test_finn_style_files_in_verilator(tmp_path):
    """The NHWC MVAU and the standalone thresholding in Verilator: bit-exact with the golden
    model, cycles and every event equal to the cycle model."""
    cases = [
        (finn_matmul(tmp_path / "mvau.onnx", (1, 3, 3, 16), 16, 8, QDataType["INT4"],
                     QDataType["INT4"], activation=QDataType["INT4"]),
         integer_inputs(QDataType["INT4"], (6, 3, 3, 16), tmp_path / "x1.npy")),
        (finn_thresholding(tmp_path / "thr.onnx", (1, 4, 4, 8), QDataType["INT8"],
                           QDataType["UINT2"]),
         integer_inputs(QDataType["INT8"], (6, 4, 4, 8), tmp_path / "x2.npy")),
    ]
    for path, inputs in cases:
        network = load(path)
        mapping = FINN.configure(network, FinnOptions(), clock_mhz=200.0)
        result = evaluate.simulate(FINN, mapping, network, inputs, model=path.stem,
                                   clock_mhz=200.0)
        assert result.bit_exact and result.agrees, path.name


# ------------------------------------------------------------------ arithmetic range

def test_quantizers_beyond_32_bits_are_refused():
    with pytest.raises(ConfigError, match="1 <= bits <= 32"):
        Quant("q", bits=40, signed=True)


def test_an_accumulator_beyond_the_golden_models_exact_range_is_refused():
    """30-bit inputs x 30-bit weights over 8 inputs need a 63-bit accumulator: refused (it was
    once computed in wrapping int64 and reported bit-exact)."""
    wide = Quant("q", bits=30, signed=True)
    weights = np.full((2, 8), -(1 << 29))
    with pytest.raises(ConfigError, match="accumulator needs 63 bits"):
        Network("wide", (1, 8), [wide, Dense("d", weights=weights,
                                            weight_type=wide.out_type)])


def test_a_70_bit_quantizer_in_a_file_is_one_line(tmp_path):
    path = finn_matmul(tmp_path / "mm.onnx", (1, 4), 4, 2, QDataType["INT2"], QDataType["INT2"])
    model = onnx.load(str(path))
    model.graph.quantization_annotation[0].quant_parameter_tensor_names[0].value = "INT70"
    onnx.save(model, str(path))
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    result = run_cli("eval", str(path), "--data", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and "INT70" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------ untrusted model files

EVIL = "open({marker!r}, 'w').write('imported')\n"


def model_with_domain(path, domain, subgraph=False):
    """A one-Relu network whose Relu (or, with ``subgraph``, a node inside an If branch)
    names ``domain``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    if subgraph:
        inner = helper.make_graph([helper.make_node("Relu", ["x"], ["z"], domain=domain)],
                                  "branch", [], [helper.make_tensor_value_info(
                                      "z", TensorProto.FLOAT, [1, 4])])
        node = helper.make_node("Relu", ["x"], ["y"])
        node.attribute.append(helper.make_attribute("then_branch", inner))
    else:
        node = helper.make_node("Relu", ["x"], ["y"], domain=domain)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("domain", ["evilmod", "this", "os"])
def test_a_model_cannot_make_accel_import_a_module(tmp_path, domain):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    path = model_with_domain(tmp_path / "evil.onnx", domain)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    for command in (["eval", str(path), "--data", str(tmp_path / "x.npy"), "--check-qonnx"],
                    ["estimate", "--arch", "finn", str(path), "--data", str(tmp_path / "x.npy")]):
        result = run_cli(*command, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
        assert result.returncode == 2, result.stderr
        assert f"domain {domain!r}" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Beautiful is better" not in result.stdout  # `import this` prints its poem
    assert not marker.exists()


def test_domains_inside_subgraphs_are_checked(tmp_path):
    path = model_with_domain(tmp_path / "evil.onnx", "evilmod", subgraph=True)
    with pytest.raises(ConfigError, match="domain 'evilmod'"):
        read_model(path)


# --------------------------------------------------------------- Brevitas 0.13 exports

BREVITAS_EXPORTS = json.loads((DATA / "brevitas_exports.json").read_text())


def brevitas_inputs(name):
    """The digits test split preprocessed as the export was trained (tests/data/
    brevitas_exports.json): raw pixels 0..16 (16 s) or bipolar 2 s - 1."""
    from accel.nn.data import digits_split

    split = digits_split()
    recipe = BREVITAS_EXPORTS[name]["from_digits_split"]
    x = {"16*s": 16 * split.x_test, "2*s-1": 2 * split.x_test - 1}[recipe]
    shape = BREVITAS_EXPORTS[name]["input_shape"]
    return x.reshape(len(x), *shape[1:]).astype(np.float32), split.y_test


@pytest.mark.parametrize("name", [
    # qonnx's executor runs node by node, ~10 s a file here: three in the slow set
    name if name in ("brevitas_float_bias.onnx", "brevitas_per_channel.onnx")
    else pytest.param(name, marks=pytest.mark.slow) for name in sorted(BREVITAS_EXPORTS)])
def test_brevitas_exports_equal_qonnx_on_the_whole_test_split(tmp_path, name):
    """Float biases, a data-path Reshape, per-channel scales, XNOR-Net's per-filter alpha and a
    BipolarQuant input: equal to qonnx's executor as integers on all 359 images, and Brevitas's
    own accuracy up to the images whose top two outputs tie exactly (argmax breaks a tie by
    float noise in Brevitas, by the lowest index here)."""
    inputs, labels = brevitas_inputs(name)
    np.save(tmp_path / "x.npy", inputs)
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "eval.json"
    result = run_cli("eval", str(DATA / name), "--data", str(tmp_path / "x.npy"), "--labels",
                     str(tmp_path / "y.npy"), "--check-qonnx", "--json", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["qonnx_agree"] and data["qonnx_exact_regime"]
    network = load(DATA / name)
    values = np.sort(golden.output_values(network, golden.run(network, inputs))
                     .reshape(len(inputs), -1), axis=1)
    ties = int((values[:, -1] == values[:, -2]).sum())
    assert abs(data["accuracy"] - BREVITAS_EXPORTS[name]["brevitas_test_accuracy"]) \
        <= ties / len(inputs) + 1e-6


def test_brevitas_exports_map_onto_finn():
    """Each export maps onto FINN: the host takes the input quantizer and reshapes, folded
    thresholds ride on the MVTUs, a per-channel last layer keeps its scale for the host."""
    kinds = {}
    for name in sorted(BREVITAS_EXPORTS):
        network = load(DATA / name)
        mapping = FINN.configure(network, FinnOptions(), clock_mhz=200.0)
        kinds[name] = [type(stage).__name__ for stage in mapping.stages]
        assert mapping.host_layers >= 1
    assert kinds["brevitas_reshape_cnn.onnx"] == ["WindowMapping", "LayerMapping",
                                                  "PoolMapping", "LayerMapping"]
    assert kinds["brevitas_w1a1_tfc.onnx"] == ["LayerMapping"] * 4


@pytest.mark.slow
@pytest.mark.parametrize("name,images", [
    ("brevitas_float_bias.onnx", 30), ("brevitas_per_channel.onnx", 30),
    ("brevitas_reshape_cnn.onnx", 12), ("brevitas_w1a1_tfc.onnx", 30),
    ("brevitas_xnor_cnn.onnx", 3)])
def test_brevitas_exports_in_verilator_on_finn(name, images):
    """Bit-exact with the golden model in Verilator, cycles and every event equal to the cycle
    model, and the predictions are the golden model's."""
    inputs, labels = brevitas_inputs(name)
    inputs, labels = inputs[:images], labels[:images]
    network = load(DATA / name)
    mapping = FINN.configure(network, FinnOptions(), clock_mhz=200.0)
    result = evaluate.simulate(FINN, mapping, network, inputs, labels, model=name,
                               clock_mhz=200.0)
    assert result.bit_exact and result.agrees
    assert result.predictions == golden.predict(network, inputs).tolist()


@pytest.mark.slow
def test_brevitas_xnor_cnn_on_yodann_on_the_whole_test_split():
    """XNOR-Net's binary weights with a per-filter alpha and batch-norm, folded by the importer
    into per-channel thresholds, on the YodaNN engine's threshold output stage (an engine that
    tiles every layer: output and input passes, stripes); the dense layer's per-channel alpha
    stays with the host. Bit-exact with the golden model, which equals qonnx's executor on this
    file (test above), cycles and every event equal to the cycle model."""
    from accel.hw.yodann.arch import ARCHITECTURE as YODANN

    inputs, labels = brevitas_inputs("brevitas_xnor_cnn.onnx")
    network = load(DATA / "brevitas_xnor_cnn.onnx")
    mapping = YODANN.configure(network, YODANN.Options(n_out=8, n_in=8, k_max=3, w_max=6),
                               clock_mhz=200.0)
    assert [layer.thresholds is not None for layer in mapping.layers] == [True, True, False]
    result = evaluate.simulate(YODANN, mapping, network, inputs, labels, model="xnor_cnn",
                               clock_mhz=200.0)
    assert result.bit_exact and result.model_events_equal and result.agrees
    assert result.predictions == golden.predict(network, inputs).tolist()
    assert result.accuracy == pytest.approx(
        BREVITAS_EXPORTS["brevitas_xnor_cnn.onnx"]["brevitas_test_accuracy"], abs=0.01)


# ------------------------------------------------------------------- EIE takes them too

def eie_epilogue_model(path, small_sparse_mlp):
    """The cut-down mlp-sparse with a per-output-channel weight scale and a float bias on its
    last layer (a Brevitas per-channel QuantLinear with its default float bias), every
    initializer also listed as a graph input: EIE computes the integers, the host the rest."""
    from dataclasses import replace

    network = load(small_sparse_mlp)
    rng = np.random.default_rng(3)
    last = network.layers[-1]
    scaled = replace(last, bias=None, channel_scale=rng.uniform(0.5, 2.0, last.outputs),
                     real_bias=rng.normal(0, 0.05, last.outputs))
    from accel.nn import save

    save(Network("mlp-epilogue", network.input_shape, [*network.layers[:-1], scaled],
                 network.input_type), path)
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(
            init.name, init.data_type, list(init.dims)))
    onnx.save(model, str(path))
    return path


def test_eie_with_a_per_channel_last_layer_and_float_bias(tmp_path, small_sparse_mlp):
    from accel.hw.eie.arch import ARCHITECTURE as EIE, EIEOptions
    from accel.nn.data import digits_split

    path = eie_epilogue_model(tmp_path / "epi.onnx", small_sparse_mlp)
    network = load(path)
    assert network.layers[-1].channel_scale is not None
    split = digits_split()
    inputs = split.x_test[:40].astype(np.float32)
    check = check_against_qonnx(network, read_model(path), inputs, golden.run(network, inputs))
    assert check.agree and check.predictions_agree == 40
    mapping = EIE.configure(network, EIEOptions(pes=2), clock_mhz=200.0)
    result = evaluate.estimate(EIE, mapping, network, inputs, model="epi", clock_mhz=200.0)
    # the predictions come from the scaled, biased outputs, not from the raw integers
    assert result.predictions == golden.predict(network, inputs).tolist()
    raw = golden.run(network, inputs).argmax(axis=1).tolist()
    assert result.predictions != raw


@pytest.mark.slow
def test_eie_with_a_per_channel_last_layer_in_verilator(tmp_path, small_sparse_mlp):
    from accel.hw.eie.arch import ARCHITECTURE as EIE, EIEOptions
    from accel.nn.data import digits_split

    path = eie_epilogue_model(tmp_path / "epi.onnx", small_sparse_mlp)
    network = load(path)
    inputs = digits_split().x_test[:20].astype(np.float32)
    mapping = EIE.configure(network, EIEOptions(pes=2), clock_mhz=200.0)
    result = evaluate.simulate(EIE, mapping, network, inputs, model="epi", clock_mhz=200.0)
    assert result.bit_exact and result.agrees
    assert result.predictions == golden.predict(network, inputs).tolist()


def test_per_channel_scales_into_a_standalone_multithreshold(tmp_path):
    """Per-channel 4-bit weight scales (as a (1, C) Quant scale on a MatMul weight) followed by
    a MultiThreshold with real thresholds: the thresholds become per-channel integers."""
    from onnx import numpy_helper

    rng = np.random.default_rng(5)
    mw, mh = 12, 6
    weight_scale = rng.uniform(0.01, 0.2, (1, mh)).astype(np.float32)
    weights = (rng.integers(-8, 8, (mw, mh)) * weight_scale).astype(np.float32)
    thresholds = np.sort(rng.normal(0, 0.5, (mh, 3)), axis=1).astype(np.float32)
    domain = "qonnx.custom_op.general"
    constants = {"in_scale": np.float32(1 / 16), "zero": np.float32(0), "bits8": np.float32(8),
                 "w_float": weights, "w_scale": weight_scale, "bits4": np.float32(4),
                 "thresh": thresholds}
    nodes = [
        helper.make_node("Quant", ["x", "in_scale", "zero", "bits8"], ["xq"], domain=domain,
                         signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Quant", ["w_float", "w_scale", "zero", "bits4"], ["w"], domain=domain,
                         signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "w"], ["acc"]),
        helper.make_node("MultiThreshold", ["acc", "thresh"], ["y"], domain=domain,
                         out_dtype="UINT2", data_layout="NC")]
    shapes = {"xq": [1, mw], "w": [mw, mh], "acc": [1, mh]}
    graph = helper.make_graph(
        nodes, "pc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, mw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, mh])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
        value_info=[helper.make_tensor_value_info(k, TensorProto.FLOAT, v)
                    for k, v in shapes.items()])
    path = tmp_path / "pc.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid(domain, 1)]), str(path))
    network = load(path)
    (threshold,) = [layer for layer in network.layers if layer.op == "multithreshold"]
    assert threshold.thresholds.shape == (mh, 3) and network.layers[1].channel_scale is None
    inputs = rng.uniform(0, 16, (200, mw)).astype(np.float32)
    assert qonnx_agrees(path, inputs)
