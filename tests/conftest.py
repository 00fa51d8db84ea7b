import os
import subprocess
import sys

import pytest


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
