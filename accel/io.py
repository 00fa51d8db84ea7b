"""Reading users' files safely and writing output files whole or not at all.

Output paths are checked before the work that produces them (``check_output_file``,
``check_output_directory``), so a typo in ``--json`` fails in a second, not after a simulation.
Configuration files (technology tables, foldings) are read by ``read_config_text``: at most
``MAX_CONFIG_BYTES``, text only; YAML goes through ``load_yaml``, a safe loader that also refuses
aliases (a "billion laughs" file expands exponentially).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from accel.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # technology tables and foldings are a few KiB


# ------------------------------------------------------------------------------ output checks

def _probe_writable(directory: Path, path: Path) -> None:
    """Create and remove a file in ``directory``: the one test that holds for root, ACLs and
    read-only file systems alike."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".accel-probe.", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: directory {directory} is not writable "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists (it must be a directory)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"cannot write {path}: {parent} is not a directory")
            return parent
    return Path(".")


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """``path`` can be written as a file: it is not a directory and its directory exists and
    is writable. Nothing is created."""
    path = Path(path)
    if str(path).endswith(os.sep) or path.name in ("", ".", ".."):
        raise ConfigError(f"{what} {path}: names a directory, not a file")
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory, not a file")
    parent = path.parent
    if not parent.exists():
        _existing_ancestor(path)  # a file on the way: "not a directory"
        raise ConfigError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: {parent} is not a directory")
    _probe_writable(parent, path)
    return path


def check_output_directory(path: str | Path, what: str = "output directory", *,
                           owned: Callable[[str], bool] | None = None) -> Path:
    """``path`` can be made a directory of outputs: it is a directory or does not exist, and
    it (or its nearest existing ancestor, where it would be created) is writable. With
    ``owned``, an existing directory may hold only entries for which ``owned(name)`` is true
    (files an earlier run wrote): anything else is refused rather than replaced. Nothing is
    created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: exists and is not a directory")
    if path.is_dir():
        if owned is not None:
            foreign = sorted(entry.name for entry in path.iterdir()
                             if not (entry.is_file() and not entry.is_symlink()
                                     and owned(entry.name)))
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise ConfigError(f"{what} {path}: holds files accel did not write ({shown}); "
                                  "give a new or empty directory, or one an earlier run wrote")
        _probe_writable(path, path)
    else:
        _probe_writable(_existing_ancestor(path), path)
    return path


# ------------------------------------------------------------------------------------ writing

def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename,
    so a reader never sees half a file and a failure leaves no partial output (and the old
    file, if any, as it was)."""
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise ConfigError(f"cannot write {path}: it is a directory")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        # mkstemp creates the file private (0600); give it the permissions open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def to_json_text(value: Any) -> str:
    """JSON as accel writes it: indented, numpy values converted, and never NaN or infinity
    (``ValueError``: a NaN in a result is a bug, not something to write down)."""
    from accel.sim.tbio import to_json

    return json.dumps(value, indent=2, default=to_json, allow_nan=False) + "\n"


def write_json(path: str | Path, value: Any) -> Path:
    return write_atomic(path, to_json_text(value))


def write_directory(out_dir: str | Path, files: Iterable[tuple[str, bytes | str]], *,
                    owned: Callable[[str], bool]) -> list[Path]:
    """``files`` (name, content) as the directory ``out_dir``, all or nothing: they are
    written into a temporary sibling directory that is then renamed into place. An existing
    ``out_dir`` holding only ``owned`` files (an earlier run's) is renamed away, the new one
    renamed in, and the old one removed; one holding anything else is refused (see
    ``check_output_directory``). Interrupted or failed, it leaves ``out_dir`` as it was and no
    temporary directory (except when killed outright: then a hidden ``.NAME.accel-new-*``
    sibling may remain, never a half-written ``out_dir``)."""
    out_dir = Path(out_dir)
    check_output_directory(out_dir, owned=owned)
    target = Path(os.path.realpath(out_dir))  # through a symlink: replace what it names
    files = list(files)
    new = old = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(prefix=f".{target.name}.accel-new-", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(new, 0o777 & ~umask)
        for name, content in files:
            write_atomic(new / name, content)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.accel-old-",
                                        dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(new, target)
        new = None
    except OSError as exc:
        if old is not None and not target.exists() and (old / target.name).exists():
            os.replace(old / target.name, target)  # put the earlier output back
        raise ConfigError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    except BaseException:
        if old is not None and not target.exists() and (old / target.name).exists():
            os.replace(old / target.name, target)
        raise
    finally:
        for leftover in (new, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return [out_dir / name for name, _ in files]


# ------------------------------------------------------------------------------------ reading

def read_config_text(path: str | Path, what: str = "file") -> str:
    """The text of a configuration file: at most ``MAX_CONFIG_BYTES``, and text (UTF-8,
    no NUL bytes)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes, larger than the {MAX_CONFIG_BYTES:,} "
                              f"a {what} may have")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise ConfigError(f"{path}: not a text file (a {what} is YAML or JSON text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8; a {what} is YAML or JSON "
                          "text)") from None


@functools.cache
def _no_alias_loader():
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` (plain data only, no Python objects) that also refuses aliases
        (``*name``), so a file cannot expand exponentially while it is read."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"aliases (*{event.anchor}) are not accepted", event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def load_yaml(text: str, where: str | Path):
    """Plain data from YAML ``text`` (safe: no Python objects; no aliases); any problem is
    one ``ConfigError`` naming ``where``."""
    import yaml

    try:
        return yaml.load(text, Loader=_no_alias_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{where}: not valid YAML ({first.strip()})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid YAML (nested too deeply)") from None


def load_json(text: str, where: str | Path, *, allow_nan: bool = False):
    """Data from JSON ``text``; NaN and infinities (which ``json.loads`` accepts) are refused
    unless ``allow_nan`` (the caller checks the values itself)."""
    def refuse(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, **({} if allow_nan else {"parse_constant": refuse}))
    except RecursionError:
        raise ConfigError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
