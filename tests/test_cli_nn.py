"""`accel eval` and `accel compress` from the command line: results, JSON, and errors."""

import json
from pathlib import Path

import numpy as np

from accel.nn.data import digits_split
from tests.conftest import run_cli

BREVITAS = str(Path(__file__).parent / "data" / "brevitas_bnn.onnx")


def test_eval_json_with_qonnx_check(tmp_path):
    out = tmp_path / "eval.json"
    result = run_cli("eval", BREVITAS, "--check-qonnx", "--json", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["images"] == 359 and len(data["predictions"]) == 359
    assert data["qonnx_agree"] is True and data["qonnx_exact_regime"] is True
    labels = digits_split().y_test
    assert data["accuracy"] == float((np.array(data["predictions"]) == labels).mean())


def test_eval_user_data(tmp_path):
    split = digits_split()
    np.save(tmp_path / "x.npy", split.x_test[:20])
    np.save(tmp_path / "y.npy", split.y_test[:20])
    out = tmp_path / "eval.json"
    result = run_cli("eval", BREVITAS, "--data", str(tmp_path / "x.npy"), "--labels",
                     str(tmp_path / "y.npy"), "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["images"] == 20


def test_eval_bad_inputs_are_one_line_errors_without_output(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((5, 7), np.float32))
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x01garbage")
    out = tmp_path / "never.json"
    cases = [
        (["eval", "no-such-model", "--json", str(out)], "no such model file or shipped model"),
        (["eval", BREVITAS, "--data", str(tmp_path / "wrong.npy"), "--json", str(out)],
         "does not match the model input"),
        (["eval", str(tmp_path / "broken.onnx"), "--json", str(out)], "broken.onnx"),
        (["eval", BREVITAS, "--data", str(tmp_path / "missing.npy")], "no such file"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


def test_compress_bad_inputs_leave_no_output(tmp_path):
    out = tmp_path / "out.onnx"
    for args, message in [
        (["compress", BREVITAS, "-o", str(out)], "compress takes float networks"),
        (["compress", "nothing-here", "-o", str(out)], "no such model file"),
        (["compress", BREVITAS, "--report-only", "-o", str(tmp_path / "no" / "x.onnx")],
         "does not exist"),
    ]:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
