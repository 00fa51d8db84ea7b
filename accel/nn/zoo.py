"""The reference models shipped with accel: trained networks as QONNX files in ``accel/models``.

Each file is written by ``accel.train`` (``accel train NAME -o accel/models``) and carries in
its metadata the golden model's test accuracy on the fixed digits split, the training seed and a
description. No torch here: reading a shipped model needs only onnx.
"""

from __future__ import annotations

from pathlib import Path

from accel.errors import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models"


def shipped_models() -> list[str]:
    """Names of the shipped models, sorted."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(path.stem for path in SHIPPED_DIR.glob("*.onnx") if path.is_file())


def model_path(name: str) -> Path:
    """The file of shipped model ``name``."""
    available = shipped_models()
    if name not in available:
        raise ConfigError(f"no shipped model named {name!r}; available: "
                          f"{', '.join(available) if available else 'none'}")
    return SHIPPED_DIR / f"{name}.onnx"


def load_model(name: str):
    """Shipped model ``name`` as a ``Network`` (metadata included)."""
    from accel.nn.qonnx_io import load

    return load(model_path(name))


def shipped_metadata(name: str) -> dict[str, str]:
    """The metadata of shipped model ``name`` (accuracy, train_seed, description, ...), read
    without building the network."""
    import onnx

    model = onnx.load(str(model_path(name)), load_external_data=False)
    return {entry.key: entry.value for entry in model.metadata_props}
