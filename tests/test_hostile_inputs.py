"""Hostile and broken inputs: each is refused with exit code 2 and one line on stderr (no
traceback), before any expensive step (elaboration, Verilog, a Verilator build, a simulation or,
where the input concerns it, the cycle model), and leaves no file behind.

Every CLI case runs in-process (``accel.cli.main``). The fixture ``guard`` makes each expensive
step of the real architectures fail the test if it is reached, points ``tempfile`` and the build
cache at directories inside the test's own directory, and runs from there, so comparing that
directory's listing before and after a case proves that nothing was left behind (temporary files
included). Nothing here builds Verilator or simulates.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from accel.cli import main
from accel.errors import ConfigError

# a generate interrupted before Verilog leaves its Amaranth top unelaborated, on purpose
pytestmark = pytest.mark.filterwarnings("ignore:.*created but never used")


class ExpensiveStep(AssertionError):
    """An expensive step was reached where the input should have been refused before it."""


# --------------------------------------------------------------------------------- helpers

def snapshot(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def guard(tmp_path, monkeypatch):
    """The RTL steps of FINN and EIE (elaboration, harness, Verilator run) raise
    ExpensiveStep; tempfile and the build cache live in the test directory; the working
    directory is the test directory (where the default chart would go)."""
    from accel.hw.eie.arch import EIEArchitecture
    from accel.hw.finn.arch import FinnArchitecture

    def expensive(*args, **kwargs):
        raise ExpensiveStep("an expensive step was reached")

    for cls in (FinnArchitecture, EIEArchitecture):
        monkeypatch.setattr(cls, "rtl", expensive)
        monkeypatch.setattr(cls, "harness", expensive)
        monkeypatch.setattr(cls, "run_rtl", expensive)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("ACCEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return expensive


@pytest.fixture
def no_cycle_model(guard, monkeypatch):
    """The cycle model (and the compressor) count as expensive too: refusals of data, options
    and output paths come before them."""
    from accel.compress import network as compress_network
    from accel.hw.eie.arch import EIEArchitecture
    from accel.hw.finn.arch import FinnArchitecture

    for cls in (FinnArchitecture, EIEArchitecture):
        monkeypatch.setattr(cls, "estimate", guard)
    monkeypatch.setattr(compress_network, "compress_network", guard)
    return guard


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, root: Path, *args, message: str | tuple[str, ...]) -> str:
    """``accel ARGS`` exits 2 with one line on stderr that contains every ``message`` and
    changes nothing under ``root``."""
    before = snapshot(root)
    code, out, err = run(capsys, *args)
    assert "Traceback" not in out + err
    assert code == 2, (args, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), err
    assert lines[0].startswith("accel: error: "), lines[0]
    for part in (message,) if isinstance(message, str) else message:
        assert part in lines[0], (part, lines[0])
    assert snapshot(root) == before, "files were left behind"
    return lines[0]


def unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in: a read-only one, or for root (who may
    write anywhere chmod allows) a sysfs directory."""
    if os.geteuid() != 0:
        path = tmp_path / "read-only"
        path.mkdir()
        path.chmod(0o555)
        return path
    for candidate in (Path("/sys/kernel"), Path("/sys")):
        try:
            fd, name = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(name)
    pytest.skip("no unwritable directory on this machine")


def digits(count: int):
    from accel.nn.data import digits_split

    split = digits_split()
    return split.x_test[:count], split.y_test[:count]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Synthetic networks as QONNX files (made once for the module):

    big      Quant 8 bits -> dense 4096 x 4096, weights in {-1, 0, 1} at 10 % density: fits
             the FINN mapper (multi-bit MVTU) and EIE (shared weights)
    wide     Quant 16 bits -> dense 4 x 4200, for EIE: the simulation top's input-vector port
             is 4200 x 16 = 67,200 bits, beyond the 65,536 bits Amaranth can elaborate
    finn_wide Quant 8 bits -> dense 2 x 8200 bipolar, folded SIMD 8200: a FINN input beat of
             65,600 bits
    integer  an integer (int8) input straight into a dense layer (no quantizer)
    """
    from accel.nn import DataType, Dense, Network, Quant, save

    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    weights = np.where(rng.random((4096, 4096)) < 0.1, rng.integers(-1, 2, (4096, 4096)), 0)
    big = Network("big", (1, 4096), [Quant("quant", bits=8, signed=True, scale=2.0**-4),
                                     Dense("fc", weights=weights, weight_type=DataType(2, True))])
    wide = Network("wide", (1, 4200), [
        Quant("quant", bits=16, signed=True, scale=2.0**-8),
        Dense("fc", weights=rng.integers(-1, 2, (4, 4200)), weight_type=DataType(2, True))])
    finn_wide = Network("finn_wide", (1, 8200), [
        Quant("quant", bits=8, signed=True, scale=2.0**-4),
        Dense("fc", weights=np.where(rng.random((2, 8200)) < 0.5, -1, 1),
              weight_type=DataType.bipolar_type())])
    integer = Network("integer", (1, 4), [
        Dense("fc", weights=np.array([[1, -1, 0, 1], [0, 1, 1, -1], [1, 1, 1, 1]]),
              weight_type=DataType(2, True))], input_type=DataType(8, True))
    return {name: save(network, root / f"{name}.onnx") for name, network in
            (("big", big), ("wide", wide), ("finn_wide", finn_wide), ("integer", integer))}


@pytest.fixture(scope="module")
def result_json(tmp_path_factory):
    """A real `accel estimate --json` result (EIE, 3 images, the cycle model only)."""
    path = tmp_path_factory.mktemp("result") / "run.json"
    assert main(["estimate", "--arch", "eie", "mlp-sparse", "--images", "3", "--json",
                 str(path)]) == 0
    return json.loads(path.read_text())


def strict_json(text: str):
    """JSON that fails on NaN and infinities (which json.loads would accept)."""
    def refuse(name):
        raise ValueError(f"{name} in JSON")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------- 1. size limits before elaborating

def test_absurd_eie_pe_counts_are_refused_before_mapping(tmp_path, capsys, guard):
    # 10000 PEs on a network whose widest layer has 256 rows: 9744 PEs would own no row
    line = refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "--pes", "10000",
                   "-o", tmp_path / "out", message=("--pes 10000", "256 rows"))
    assert "allow-large-design" not in line  # an invalid option, not a budget
    refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "--pes", "10000",
            "--allow-large-design", "-o", tmp_path / "out", message="--pes 10000")
    refused(capsys, tmp_path, "estimate", "--arch", "eie", "mlp-sparse", "--pes", "257",
            message="256 rows")
    refused(capsys, tmp_path, "estimate", "--arch", "eie", "mlp-sparse", "--queue-depth",
            "100000000", message=("--queue-depth", "1024"))


def test_eie_pes_over_the_rtl_budget_are_refused_with_the_estimate(tmp_path, capsys, guard):
    from accel.hw.eie.arch import ARCHITECTURE as EIE

    budget = EIE.size_budget["pes"]
    line = refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "--pes", "256",
                   "-o", tmp_path / "out", message=("256 PEs", f"budget {budget:,}",
                                                    "--allow-large-design"))
    assert "storage bits" in line or "PEs" in line
    refused(capsys, tmp_path, "simulate", "--arch", "eie", "mlp-sparse", "--pes", "256",
            message=("256 PEs", "--allow-large-design"))


def test_a_4096_square_layer_is_refused_by_its_storage(tmp_path, capsys, guard, models):
    from accel.hw.architecture import DESIGN_BUDGET

    budget = f"{DESIGN_BUDGET['storage_bits']:,}"
    for arch, options in (("eie", ["--pes", "1"]), ("finn", [])):
        refused(capsys, tmp_path, "generate", "--arch", arch, models["big"], *options, "-o",
                tmp_path / "out", message=("storage bits", budget, "--allow-large-design"))


def test_estimate_skips_rtl_limits_but_not_cycle_model_sizes(tmp_path, capsys, guard, models):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (2, 4096)))
    # the cycle model of one PE over 4096 columns is cheap, whatever the RTL would weigh
    code, out, err = run(capsys, "estimate", "--arch", "eie", models["big"], "--pes", "1",
                         "--data", tmp_path / "x.npy", "--json", tmp_path / "big.json")
    assert code == 0, err
    assert strict_json((tmp_path / "big.json").read_text())["images"] == 2
    (tmp_path / "big.json").unlink()
    # 4096 PEs x 4096 columns per image is not
    refused(capsys, tmp_path, "estimate", "--arch", "eie", models["big"], "--pes", "4096",
            "--data", tmp_path / "x.npy", message=("cycle model", "pe columns"))


def test_signals_beyond_amaranths_limit_are_refused_even_with_the_override(
        tmp_path, capsys, guard, models):
    np.save(tmp_path / "x.npy", np.zeros((2, 4200)))
    for extra in ([], ["--allow-large-design"]):
        refused(capsys, tmp_path, "simulate", "--arch", "eie", models["wide"], *extra, "--data",
                tmp_path / "x.npy", message=("67,200", "65,536"))
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"fc": {"pe": 1, "simd": 8200}}))
    refused(capsys, tmp_path, "generate", "--arch", "finn", models["finn_wide"], "--folding",
            fold, "-o", tmp_path / "out", message=("65,600", "65,536"))


def test_the_override_lets_a_large_design_reach_elaboration(tmp_path, capsys, guard):
    with pytest.raises(ExpensiveStep):
        main(["generate", "--arch", "eie", "mlp-sparse", "--pes", "256",
              "--allow-large-design", "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def reference_configurations():
    from accel.hw.reference import DEMO_RUNS, FINN_FOLDINGS, REFERENCE_CONFIGS

    runs = [(arch, model, "reference", options) for arch, model, options in REFERENCE_CONFIGS]
    runs += [(arch, model, f"demo {label}", options) for arch, model, label, options in DEMO_RUNS]
    runs += [("finn", model, f"slow tests {name}", {"folding": spec})
             for model, foldings in FINN_FOLDINGS.items() for name, spec in foldings.items()]
    return runs


def test_every_reference_configuration_is_within_half_of_every_budget():
    """The shipped reference configurations, the demo's runs and the foldings the slow tests
    and benchmarks build all pass the size check with a margin of two or more."""
    from accel.hw.architecture import DESIGN_BUDGET, HARD_LIMITS, check_design_size
    from accel.hw.reference import configure, finn_folding
    from accel.nn import load

    for arch_name, model, label, options in reference_configurations():
        network = load(model)
        if isinstance(options.get("folding"), str):
            options = {"folding": finn_folding(network, options["folding"])}
        arch, mapping = configure(arch_name, network, options)
        size = arch.size_estimate(mapping)
        budgets = {**DESIGN_BUDGET, **HARD_LIMITS, **arch.size_budget, **arch.model_budget}
        assert set(budgets) <= set(size), (label, size)
        for quantity, limit in budgets.items():
            assert size[quantity] * 2 <= limit, (arch_name, model, label, quantity,
                                                 size[quantity], limit)
        for purpose in ("generate", "simulate", "estimate"):
            check_design_size(arch, mapping, purpose)


# --------------------------------------------------------------- 2. clocks and frame rates

@pytest.mark.parametrize("command", ["estimate", "simulate", "generate"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_clock_and_target_fps_must_be_positive_and_finite(tmp_path, capsys, no_cycle_model,
                                                          command, value):
    out = ["-o", tmp_path / "out"] if command == "generate" else []
    refused(capsys, tmp_path, command, "--arch", "eie", "mlp-sparse", f"--clock-mhz={value}",
            *out, message="positive number of MHz")
    refused(capsys, tmp_path, command, "--arch", "finn", "bnn-mlp", f"--target-fps={value}",
            *out, message=("--target-fps", "positive"))


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_on_chip_budget_must_be_finite_and_non_negative(tmp_path, capsys, no_cycle_model,
                                                        result_json, value):
    refused(capsys, tmp_path, "estimate", "--arch", "eie", "mlp-sparse",
            f"--on-chip-kib={value}", message="--on-chip-kib")
    (tmp_path / "run.json").write_text(json.dumps(result_json))
    refused(capsys, tmp_path, "energy", tmp_path / "run.json", f"--on-chip-kib={value}",
            message="--on-chip-kib")


def test_json_never_holds_nan(tmp_path, result_json):
    from accel.io import write_json

    strict_json(json.dumps(result_json))  # what accel estimate wrote
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            write_json(tmp_path / "x.json", {"value": value})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ 3. foldings

FOLDING_CASES = [
    ("fc0: {pe: 0}\n", ("fc0", "pe", "positive integer")),
    ("fc0: {pe: -1}\n", ("fc0", "pe")),
    ("fc0: {pe: four}\n", ("fc0", "pe", "'four'")),
    ("fc0: {pe: null}\n", ("fc0", "pe", "None")),
    ("fc0: {pe: .nan}\n", ("fc0", "pe", "nan")),
    ("fc0: {pe: 2.7}\n", ("fc0", "pe", "2.7")),
    ("fc0: {pe: 2.0}\n", ("fc0", "pe")),
    ("fc0: {pe: true}\n", ("fc0", "pe", "True")),
    ("fc0: {simd: [4]}\n", ("fc0", "simd")),
    ("fc0: {sind: 4}\n", ("fc0", "sind", "pe, simd")),
    ("fc0: 4\n", ("fc0", "mapping")),
    ("fc0: [4, 16]\n", ("fc0", "mapping")),
    ("4\n", "maps layer names"),
    ("- fc0\n", "maps layer names"),
    ("1: {pe: 2}\n", ("layer names", "1")),
    ("nofc: {pe: 2}\n", "nofc"),
    ("fc0: &a {pe: 2}\nfc1: *a\n", "alias"),
    ("fc0: !!python/object/apply:os.system ['touch pwned']\n", "fold.yaml"),
    ("[1, 2\n", "not valid"),
]


@pytest.mark.parametrize("text,message", FOLDING_CASES)
def test_folding_values_are_refused_naming_layer_and_key(tmp_path, capsys, guard, text,
                                                         message):
    fold = tmp_path / "fold.yaml"
    fold.write_text(text)
    refused(capsys, tmp_path, "generate", "--arch", "finn", "bnn-mlp", "--folding", fold, "-o",
            tmp_path / "out", message=message)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text,message", [
    ('{"fc0": {"pe": NaN}}', ("fc0", "pe")),
    ('{"fc0": {"pe": Infinity}}', ("fc0", "pe")),
    ('{"fc0": {"pe": 2.5}}', ("fc0", "pe", "2.5")),
    ('{"fc0": {"pe": "4"}}', ("fc0", "pe", "'4'")),
    ('{"fc0": {"pe": false}}', ("fc0", "pe")),
    ('{"fc0": {"PE": 4}}', ("fc0", "PE")),
    ('{"fc0": null}', ("fc0", "mapping")),
    ('"fc0"', "maps layer names"),
    ('{"fc0": ', "not valid JSON"),
])
def test_json_foldings_too(tmp_path, capsys, guard, text, message):
    fold = tmp_path / "fold.json"
    fold.write_text(text)
    refused(capsys, tmp_path, "estimate", "--arch", "finn", "bnn-mlp", "--folding", fold,
            message=message)


def test_binary_huge_and_deep_folding_files(tmp_path, capsys, guard):
    for name, content, message in [
        ("binary.yaml", bytes(range(256)) * 4, "not a text file"),
        ("binary.json", b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
        ("huge.yaml", b"# padding\n" * 200_000, "larger than"),
        ("deep.json", b"[" * 100_000, "deep.json"),
        ("deep.yaml", b"[" * 100_000, "deep.yaml"),
    ]:
        (tmp_path / name).write_bytes(content)
        refused(capsys, tmp_path, "generate", "--arch", "finn", "bnn-mlp", "--folding",
                tmp_path / name, "-o", tmp_path / "out", message=message)


def test_folding_dicts_from_python_are_checked_too():
    from accel.hw.finn.mapping import load_folding, map_network
    from accel.nn import load

    network = load("bnn-mlp")
    for folding in ({"fc0": {"pe": True}}, {"fc0": {"pe": 2.0}}, {"fc0": {"simd": 0}},
                    {"fc0": 3}, {"fc0": {"sind": 4}}):
        with pytest.raises(ConfigError, match="fc0"):
            map_network(network, folding)
    assert load_folding({"fc0": {"pe": 4, "simd": 16}}) == {"fc0": {"pe": 4, "simd": 16}}


# ------------------------------------------------------------------- 4. file-system errors

def test_generate_output_paths_are_checked_before_elaborating(tmp_path, capsys, guard):
    (tmp_path / "a-file").write_text("mine")
    refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "-o",
            tmp_path / "a-file", message=("a-file", "not a directory"))
    refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "-o",
            tmp_path / "a-file" / "sub", message=("a-file", "not a directory"))
    locked = unwritable_directory(tmp_path)
    refused(capsys, tmp_path, "generate", "--arch", "eie", "mlp-sparse", "-o", locked / "out",
            message="not writable")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_json_outputs_are_checked_before_running(tmp_path, capsys, no_cycle_model):
    (tmp_path / "a-dir").mkdir()
    locked = unwritable_directory(tmp_path)
    for path, message in [(tmp_path / "a-dir", "is a directory"),
                          (tmp_path / "missing" / "r.json", "does not exist"),
                          (locked / "r.json", "not writable")]:
        refused(capsys, tmp_path, "estimate", "--arch", "eie", "mlp-sparse", "--json", path,
                message=message)
        refused(capsys, tmp_path, "simulate", "--arch", "finn", "bnn-mlp", "--json", path,
                message=message)
        refused(capsys, tmp_path, "eval", "mlp", "--json", path, message=message)


def test_compress_output_is_checked_before_compressing(tmp_path, capsys, no_cycle_model):
    (tmp_path / "a-dir").mkdir()
    locked = unwritable_directory(tmp_path)
    for path, message in [(tmp_path / "missing" / "m.onnx", "does not exist"),
                          (locked / "m.onnx", "not writable"),
                          (tmp_path / "a-dir", "is a directory")]:
        refused(capsys, tmp_path, "compress", "mlp", "-o", path, message=message)


def test_demo_and_train_outputs_are_checked_before_running(tmp_path, capsys, guard,
                                                           monkeypatch):
    import accel.demo
    import accel.train

    monkeypatch.setattr(accel.demo, "run_demo", guard)
    monkeypatch.setattr(accel.train, "train_command", guard)
    (tmp_path / "a-file").write_text("mine")
    refused(capsys, tmp_path, "demo", "--out", tmp_path / "a-file",
            message="not a directory")
    refused(capsys, tmp_path, "train", "mlp", "-o", tmp_path / "a-file",
            message="not a directory")


def test_a_failed_write_is_one_line_and_keeps_the_old_output(tmp_path, capsys, guard,
                                                             monkeypatch):
    import errno

    import accel.io

    old = tmp_path / "m.onnx"
    old.write_bytes(b"the old output")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(accel.io.os, "replace", disk_full)
    x, y = digits(20)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    refused(capsys, tmp_path, "compress", "mlp", "--data", tmp_path / "x.npy", "--labels",
            tmp_path / "y.npy", "-o", old, message=("m.onnx", "No space left"))
    assert old.read_bytes() == b"the old output"


# -------------------------------------------------------- 5. generate writes a whole directory

@pytest.fixture
def passthrough():
    """The test fixture's architecture: its RTL elaborates in a fraction of a second."""
    from accel.hw.registry import register, unregister
    from tests.fixtures.passthrough_arch import PASSTHROUGH

    register(PASSTHROUGH)
    yield PASSTHROUGH
    unregister(PASSTHROUGH.name)


@pytest.fixture
def passthrough_model(tmp_path, passthrough):
    from accel.nn import save

    network, _, _ = passthrough.example()
    return save(network, tmp_path / "net.onnx")


def test_generate_replaces_its_own_output_and_refuses_other_files(tmp_path, capsys, guard,
                                                                  passthrough_model):
    out = tmp_path / "out"
    generate = ("generate", "--arch", "passthrough", passthrough_model, "-o", out)
    code, _, err = run(capsys, *generate)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["passthrough_top.json",
                                                     "passthrough_top.v"]
    manifest = json.loads((out / "passthrough_top.json").read_text())
    assert manifest["registers"] == 1
    # an accel output directory is replaced whole (here with a different configuration)
    code, _, err = run(capsys, *generate, "--registers", "5")
    assert code == 0, err
    assert json.loads((out / "passthrough_top.json").read_text())["registers"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx", "out", "tmp"]
    # a directory that holds anything else is refused before elaborating, and kept as it is
    (out / "notes.txt").write_text("mine")
    refused(capsys, tmp_path, *generate, message=("notes.txt", "did not write"))
    assert (out / "notes.txt").read_text() == "mine"
    # an empty directory is fine
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "generate", "--arch", "passthrough", passthrough_model, "-o",
                       tmp_path / "empty")
    assert code == 0, err
    assert (tmp_path / "empty" / "passthrough_top.v").is_file()


@pytest.mark.parametrize("where", ["elaboration", "manifest"])
def test_generate_interrupted_midway_leaves_the_old_output(tmp_path, capsys, guard, monkeypatch,
                                                           passthrough_model, where):
    import accel.io
    from accel.hw import verilog

    out = tmp_path / "out"
    generate = ("generate", "--arch", "passthrough", passthrough_model, "-o", out)
    assert run(capsys, *generate)[0] == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "elaboration":
        monkeypatch.setattr(verilog, "to_verilog", interrupt)
    else:  # the Verilog is written, the manifest is not
        write_atomic = accel.io.write_atomic

        def interrupted_at_the_manifest(path, data):
            if Path(path).suffix == ".json":
                raise KeyboardInterrupt
            return write_atomic(path, data)

        monkeypatch.setattr(accel.io, "write_atomic", interrupted_at_the_manifest)
    listing = snapshot(tmp_path)
    code, out_text, err = run(capsys, *generate, "--registers", "7")
    assert code == 130 and err.strip() == "accel: interrupted"
    assert "Traceback" not in out_text + err
    assert snapshot(tmp_path) == listing
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    # and into a new directory: nothing at all
    code, _, _ = run(capsys, "generate", "--arch", "passthrough", passthrough_model, "-o",
                     tmp_path / "new")
    assert code == 130 and not (tmp_path / "new").exists()
    assert snapshot(tmp_path) == listing


# ------------------------------------------------------------------ 6. accel energy's inputs

def broken_results(result):
    def changed(**values):
        return {**result, **values}

    def without(key):
        return {k: v for k, v in result.items() if k != key}

    return [
        (changed(clock_mhz=0), "clock_mhz"),
        (changed(clock_mhz=-200), "clock_mhz"),
        (changed(clock_mhz="200"), "clock_mhz"),
        (changed(cycles_per_inference=0), "cycles_per_inference"),
        (changed(cycles_per_inference=None), "cycles_per_inference"),
        (changed(energy_uj_per_inference="0.1"), "energy_uj_per_inference"),
        (changed(energy_uj_per_inference=True), "energy_uj_per_inference"),
        (changed(energy_breakdown_uj={"memory": "x"}), "energy_breakdown_uj"),
        (changed(energy_breakdown_uj=[1, 2]), "energy_breakdown_uj"),
        (changed(energy_by_layer_uj={"l0": None}), "energy_by_layer_uj"),
        (changed(arch=3), "arch"),
        (changed(model=None), "model"),
        (changed(pj_per_mac="1"), "pj_per_mac"),
        (without("clock_mhz"), "clock_mhz"),
        (without("energy_breakdown_uj"), "energy_breakdown_uj"),
        ([result], "not an `accel simulate"),
    ]


def test_energy_refuses_broken_results(tmp_path, capsys, guard, result_json):
    path = tmp_path / "run.json"
    for data, message in broken_results(result_json):
        path.write_text(json.dumps(data))
        refused(capsys, tmp_path, "energy", path, message=("run.json", message))
    path.write_text(json.dumps(result_json).replace('"clock_mhz": 200.0', '"clock_mhz": NaN'))
    refused(capsys, tmp_path, "energy", path, message="NaN")
    path.write_bytes(b"\xff\xfe\x00binary")
    refused(capsys, tmp_path, "energy", path, message="not JSON")


def test_repricing_refuses_broken_events_and_specs(tmp_path, capsys, guard, result_json):
    path = tmp_path / "run.json"
    event = next(iter(result_json["events"]))
    specs = result_json["event_specs"]
    spec = specs[event]
    for data, message in [
        ({**result_json, "events": {event: "12"}}, "events"),
        ({**result_json, "events": [1]}, "events"),
        ({**result_json, "macs_per_inference": "x"}, "macs_per_inference"),
        ({**result_json, "event_specs": {**specs, event: {**spec, "params": {
            **spec["params"], "width": "64"}}}}, "width"),
        ({**result_json, "event_specs": {**specs, event: {**spec, "params": {
            **spec["params"], "width": -64}}}}, "width"),
    ]:
        path.write_text(json.dumps(data))
        refused(capsys, tmp_path, "energy", path, "--tech", "45nm", message=message)


def test_energy_chart_paths_are_checked_before_writing(tmp_path, capsys, guard, result_json):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result_json))
    (tmp_path / "chart.svg").mkdir()
    refused(capsys, tmp_path, "energy", path, "--chart", tmp_path / "chart",
            message=("chart.svg", "is a directory"))
    (tmp_path / "a-dir").mkdir()
    refused(capsys, tmp_path, "energy", path, "--chart", f"{tmp_path / 'a-dir'}{os.sep}",
            message="--chart")
    refused(capsys, tmp_path, "energy", path, "--chart", tmp_path / "missing" / "chart",
            message="does not exist")
    refused(capsys, tmp_path, "energy", path, "--json", tmp_path / "a-dir",
            message="is a directory")
    assert not list(tmp_path.glob("**/*.png"))


TABLE = ("name: t\noperations: {{int_add: {add}, int_mult: {{8: 0.2, 32: 3.1}}, "
         "fp16_add: 0.4, fp16_mult: 1.1, fp32_add: 0.9, fp32_mult: 3.7}}\n"
         "sram: {{read_64bit: {sram}}}\ndram: {{pj_per_bit: {dram}}}\n")


def table(add="{8: 0.03, 32: 0.1}", sram="{8192: 10, 32768: 20}", dram="20"):
    return TABLE.format(add=add, sram=sram, dram=dram)


BILLION_LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 10)}]"
       for k in range(8)]) + "\n"


@pytest.mark.parametrize("content,message", [
    (table(), None),  # the template itself is a valid table
    (bytes(range(256)), "not a text file"),
    (table(sram="{abc: 10, 32768: 20}"), ("sram.read_64bit", "abc")),
    (table(sram="{0: 10, 32768: 20}"), ("sram.read_64bit", "0")),
    (table(sram="{8192: 0, 32768: 20}"), ("sram.read_64bit.8192", "positive")),
    (table(sram="{8192: -10, 32768: 20}"), "sram.read_64bit.8192"),
    (table(sram="{true: 10, 32768: 20}"), "sram.read_64bit"),
    (table(add="{8: 0, 32: 0.1}"), ("operations.int_add.8", "positive")),
    (table(add="{8: 0.03, 2.5: 0.1}"), ("operations.int_add", "2.5")),
    (table(add="{8: 0.03, 0: 0.1}"), ("operations.int_add", "0")),
    (table(dram="-1"), "dram.pj_per_bit"),
    (table(dram=".nan"), "dram.pj_per_bit"),
    (BILLION_LAUGHS, "alias"),
    ("x: " + "y" * 2_000_000 + "\n", "larger than"),
    ("[" * 100_000, "t.yaml"),
    ("!!python/object/apply:os.system ['touch pwned']\n", "t.yaml"),
])
def test_technology_tables_are_checked(tmp_path, capsys, guard, result_json, content, message):
    path = tmp_path / "t.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    if message is None:
        from accel.energy.tech import load_technology

        assert load_technology(path).sram_scale > 0
        return
    started = time.process_time()
    refused(capsys, tmp_path, "estimate", "--arch", "eie", "mlp-sparse", "--tech", path,
            message=message)
    (tmp_path / "run.json").write_text(json.dumps(result_json))
    refused(capsys, tmp_path, "energy", tmp_path / "run.json", "--tech", path, message=message)
    (tmp_path / "run.json").unlink()
    assert time.process_time() - started < 10
    assert not (tmp_path / "pwned").exists()


def test_every_yaml_accel_reads_goes_through_a_guarded_loader():
    """No ``yaml.safe_load``/``full_load``/``unsafe_load`` call in accel (the plain safe loader
    expands aliases), and every ``yaml.load`` names its Loader (``accel.io.load_yaml``'s refuses
    aliases; tech tables and foldings go through it)."""
    import ast

    root = Path(__file__).resolve().parent.parent / "accel"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "yaml":
                assert node.func.attr not in ("safe_load", "full_load", "unsafe_load",
                                              "safe_load_all", "load_all"), (path, node.lineno)
                if node.func.attr == "load":
                    assert any(k.arg == "Loader" for k in node.keywords), (path, node.lineno)


# ------------------------------------------------------------------------------------ 7. data

def test_data_with_no_rows_or_npz_labels(tmp_path, capsys, no_cycle_model):
    x, y = digits(10)
    np.save(tmp_path / "empty.npy", np.zeros((0, 64), np.float32))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "y.npz", y=y)
    np.save(tmp_path / "y.npy", y)
    for command in (["eval", "mlp"], ["estimate", "--arch", "eie", "mlp-sparse"],
                    ["simulate", "--arch", "finn", "bnn-mlp"], ["compress", "mlp"]):
        refused(capsys, tmp_path, *command, "--data", tmp_path / "empty.npy",
                message=("empty.npy", "no images"))
        refused(capsys, tmp_path, *command, "--data", tmp_path / "x.npy", "--labels",
                tmp_path / "y.npz", message=("y.npz", ".npy"))
        refused(capsys, tmp_path, *command, "--data", tmp_path / "y.npz",
                message=("y.npz", ".npy"))


@pytest.mark.parametrize("bad", [10, -1, 255])
def test_labels_outside_the_outputs_are_refused(tmp_path, capsys, no_cycle_model, bad):
    x, y = digits(10)
    y = y.copy()
    y[3] = bad
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for command in (["eval", "bnn-cnv"], ["estimate", "--arch", "eie", "mlp-sparse"],
                    ["simulate", "--arch", "finn", "bnn-mlp"], ["compress", "mlp"]):
        refused(capsys, tmp_path, *command, "--data", tmp_path / "x.npy", "--labels",
                tmp_path / "y.npy", message=("y.npy", "[0, 10)", str(bad)))


def test_integer_inputs_must_be_integers_in_range(tmp_path, capsys, guard, models):
    for name, values, message in [
        ("fraction.npy", [[1.5, 2, 3, 4]], ("integers", "1.5")),
        ("large.npy", [[1, 2, 3, 300]], ("[-128, 127]", "300")),
        ("small.npy", [[1, 2, -129, 4]], ("[-128, 127]", "-129")),
        ("nan.npy", [[1, 2, np.nan, 4]], "NaN"),
    ]:
        np.save(tmp_path / name, np.array(values))
        refused(capsys, tmp_path, "eval", models["integer"], "--data", tmp_path / name,
                message=(name, *((message,) if isinstance(message, str) else message)))
    np.save(tmp_path / "good.npy", np.array([[1, 2, -128, 127]], np.int16))
    code, out, err = run(capsys, "eval", models["integer"], "--data", tmp_path / "good.npy")
    assert code == 0, err


def test_float_inputs_must_be_finite_in_float32(tmp_path, capsys, no_cycle_model):
    x, _ = digits(4)
    for name, value in (("nan.npy", np.nan), ("inf.npy", -np.inf), ("huge.npy", 1e39)):
        bad = x.astype(np.float64)
        bad[1, 5] = value
        np.save(tmp_path / name, bad)
        for command in (["eval", "mlp"], ["estimate", "--arch", "eie", "mlp-sparse"],
                        ["simulate", "--arch", "finn", "bnn-mlp"]):
            refused(capsys, tmp_path, *command, "--data", tmp_path / name,
                    message=(name, "NaN or infinity"))
    # far outside the quantizer's range, but finite: clamped by the quantizer, as it should be
    np.save(tmp_path / "far.npy", x * 1e6)
    code, _, err = run(capsys, "eval", "bnn-mlp", "--data", tmp_path / "far.npy")
    assert code == 0, err


def test_pickled_npy_is_never_unpickled(tmp_path, capsys, no_cycle_model):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.npy", "wb") as f:
        np.lib.format.write_array(f, np.array([Exploit()], dtype=object), allow_pickle=True)
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Exploit(), f)
    x, _ = digits(3)
    np.save(tmp_path / "x.npy", x)
    for args in (["--data", tmp_path / "evil.npy"], ["--data", tmp_path / "evil.pkl"],
                 ["--data", tmp_path / "x.npy", "--labels", tmp_path / "evil.npy"]):
        refused(capsys, tmp_path, "eval", "mlp", *args, message="evil")
        assert not marker.exists()


# ---------------------------------------------------------------- 8. --data for every command

def test_compress_calibrates_on_the_given_data(tmp_path, capsys, guard, monkeypatch):
    from accel.compress import network as compress_network

    x, y = digits(30)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    seen = {}
    real = compress_network.compress_network

    def spy(network, calibration, **kwargs):
        seen["calibration"] = np.array(calibration)
        return real(network, calibration, **kwargs)

    monkeypatch.setattr(compress_network, "compress_network", spy)
    code, out, err = run(capsys, "compress", "mlp", "--data", tmp_path / "x.npy", "--labels",
                         tmp_path / "y.npy", "-o", tmp_path / "m.onnx")
    assert code == 0, err
    assert np.array_equal(seen["calibration"].reshape(30, -1), x)
    assert "accuracy on" in out and "x.npy" in out
    from accel.nn import load

    assert "accuracy" in load(tmp_path / "m.onnx").metadata
    # without labels: no accuracy, and none carried over from the input model
    code, out, err = run(capsys, "compress", "mlp", "--data", tmp_path / "x.npy", "-o",
                         tmp_path / "m2.onnx")
    assert code == 0, err
    assert "accuracy" not in load(tmp_path / "m2.onnx").metadata


@pytest.mark.parametrize("option,value", [("--weight-bits", "100"), ("--weight-bits", "0"),
                                          ("--activation-bits", "-1"),
                                          ("--activation-bits", "64"), ("--sparsity", "nan")])
def test_compress_options_are_checked_first(tmp_path, capsys, guard, option, value):
    started = time.monotonic()
    refused(capsys, tmp_path, "compress", "mlp", f"{option}={value}",
            message=(option.lstrip("-").replace("-", "_")[:8], value))
    assert time.monotonic() - started < 10


def test_compress_data_errors_come_before_compressing(tmp_path, capsys, no_cycle_model):
    np.save(tmp_path / "wrong.npy", np.zeros((5, 7), np.float32))
    refused(capsys, tmp_path, "compress", "mlp", "--labels", tmp_path / "y.npy",
            message="--labels needs --data")
    refused(capsys, tmp_path, "compress", "mlp", "--data", tmp_path / "wrong.npy",
            message="does not match the model input")


# ------------------------------------------------------------------ what already held, kept

def test_no_shell_true_anywhere_in_accel():
    root = Path(__file__).resolve().parent.parent / "accel"
    for path in root.rglob("*.py"):
        assert "shell=True" not in path.read_text(), path


def test_ctrl_c_exits_cleanly(tmp_path, capsys, guard, monkeypatch):
    from accel.nn import evaluate

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate", interrupt)
    listing = snapshot(tmp_path)
    code, out, err = run(capsys, "eval", "mlp", "--json", tmp_path / "r.json")
    assert code == 130 and err == "accel: interrupted\n" and "Traceback" not in out
    assert snapshot(tmp_path) == listing


def test_a_failed_compress_keeps_the_old_output(tmp_path, capsys, guard):
    old = tmp_path / "m.onnx"
    old.write_bytes(b"the old output")
    refused(capsys, tmp_path, "compress", "bnn-mlp", "-o", old,
            message="compress takes float networks")
    assert old.read_bytes() == b"the old output"
