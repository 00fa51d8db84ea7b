"""Writing user-facing output files whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from accel.errors import ConfigError


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename,
    so a reader never sees half a file and a failure leaves no partial output."""
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"cannot write {path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        # mkstemp creates the file private (0600); give it the permissions open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, value: Any) -> Path:
    from accel.sim.tbio import to_json

    return write_atomic(path, json.dumps(value, indent=2, default=to_json) + "\n")
