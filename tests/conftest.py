import os
import subprocess
import sys

import pytest
from hypothesis import settings

# Every run draws the same examples (and keeps no example database): a red CI run can be
# reproduced exactly, and a green one does not depend on luck.
settings.register_profile("accel", derandomize=True, database=None)
settings.load_profile("accel")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty build cache for tests that are about the cache itself."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ACCEL_CACHE", str(cache))
    return cache


def run_cli(*args, env=None, cwd=None):
    """Run the installed ``accel`` console script in a child process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    exe = os.path.join(os.path.dirname(sys.executable), "accel")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=full_env, cwd=cwd)


@pytest.fixture
def small_sparse_mlp(tmp_path):
    """mlp-sparse cut down to 64-24-16-10 (its first rows and columns) as a QONNX file: the
    same layer types, shared weights and scales, and an engine that builds in seconds."""
    from dataclasses import replace

    from accel.nn import load, save
    from accel.nn.ir import Dense, Network

    network = load("mlp-sparse")
    widths = iter([24, 16, 10])
    inputs, layers = network.input_shape[1], []
    for layer in network.layers:
        if isinstance(layer, Dense):
            outputs = next(widths)
            layer = replace(layer, weights=layer.weights[:outputs, :inputs],
                            bias=None if layer.bias is None else layer.bias[:outputs])
            inputs = outputs
        layers.append(layer)
    return save(Network("mlp-small", network.input_shape, layers, network.input_type),
                tmp_path / "mlp-small.onnx")
