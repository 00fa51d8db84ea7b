"""The committed reference Verilog under rtl/ and the hand-off testbenches under sim/ equal what
the generators produce now, and the Verilog passes the lint gate."""

from pathlib import Path

import pytest

from accel.hw.reference import REFERENCE_CONFIGS, reference_dir, regenerate
from accel.sim.lint import check_lint

ROOT = Path(__file__).resolve().parents[1]
RTL = ROOT / "rtl"


def test_committed_rtl_and_sim_match_the_generators(tmp_path):
    fresh = regenerate(tmp_path)
    assert {path.relative_to(tmp_path).parts[0] for path in fresh} == {"rtl", "sim"}
    for path in fresh:
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is missing: run python -m accel.hw.reference"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from the generator: run python -m accel.hw.reference")
    # and sim/ holds nothing else (a stale design), apart from what its .gitignore ignores
    ignored = ("sim_build", "results.xml", "__pycache__")
    committed_sim = {path.relative_to(ROOT) for path in (ROOT / "sim").rglob("*")
                     if path.is_file() and not set(path.relative_to(ROOT).parts) & set(ignored)}
    assert committed_sim == {path.relative_to(tmp_path) for path in fresh
                             if path.relative_to(tmp_path).parts[0] == "sim"}


@pytest.mark.parametrize("arch,model,config", REFERENCE_CONFIGS)
def test_reference_rtl_is_lint_clean(arch, model, config):
    directory = reference_dir(RTL, arch, model)
    for verilog in directory.glob("*.v"):
        check_lint(verilog, verilog.stem)
