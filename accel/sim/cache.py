"""The build cache under ``$ACCEL_CACHE`` (default ``~/.cache/accel``): locks, manifests,
verification, stale temporaries and the size cap.

Layout of ``builds/``::

    <key>/                  a finished build: src/, build.log, the generated C++, the simulator
                            binary, accel-build.json (the manifest: the binary's size and sha256)
                            and accel-last-used (its modification time is the entry's last use)
    <key>.lock              flock: exclusive while <key> is built or removed, shared while a
                            simulation runs from <key>/
    <key>.failed.log        the log of the last failed build of <key>
    .tmp-<key>-*/           a build in progress (accel-builder.json names its process group),
                            or an entry being removed; renamed to <key> only once complete

Rules that keep the cache trustworthy:

- an entry is used only if its manifest matches the binary (size, then sha256), otherwise it is
  removed under its lock and rebuilt;
- a ``.tmp-<key>-*`` directory whose ``<key>.lock`` nobody holds belongs to a dead process: it is
  removed (and any compiler of its build still running, killed) at the next use of the cache;
- after each new build, least recently used entries that are not locked are removed until the
  cache is under ``$ACCEL_CACHE_MAX_GB`` (default 4 GB); the entry just built always stays;
- a lock file is removed only by a process that holds it exclusively, and every process re-checks
  after locking that the file it locked is still the one at the path (otherwise it locks again).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from accel.errors import ConfigError, SimulationError
from accel.io import write_atomic

CACHE_ENV = "ACCEL_CACHE"
MAX_SIZE_ENV = "ACCEL_CACHE_MAX_GB"
LOCK_TIMEOUT_ENV = "ACCEL_CACHE_LOCK_TIMEOUT"
DEFAULT_MAX_GB = 4.0  # decimal gigabytes, 1e9 bytes
DEFAULT_LOCK_TIMEOUT_S = 1800.0

MANIFEST = "accel-build.json"
LAST_USED = "accel-last-used"
BUILDER = "accel-builder.json"
MANIFEST_FORMAT = 1
_KEY = re.compile(r"^[0-9a-f]{24}$")
_TEMPORARY = re.compile(r"^\.tmp-([0-9a-f]{24})-")
# What a finished build keeps: everything but the compiler's intermediates. The precompiled
# headers alone are ~90 % of a build directory (2 x 90 MB for the FINN harness, whose binary is
# 2.4 MB); the simulator binary does not need any of these to run.
INTERMEDIATE_SUFFIXES = (".gch", ".o", ".a", ".d")
# Processes that may be left compiling in the directory of a build whose accel process died.
BUILD_TOOLS = frozenset({"make", "gmake", "c++", "g++", "gcc", "cc", "cc1plus", "cc1", "as",
                         "ld", "collect2", "verilator", "verilator_bin", "ccache", "clang++"})


def notice(message: str) -> None:
    """One line on stderr (a progress note, not an error)."""
    print(f"accel: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- configuration


def cache_root(writable: bool = True) -> Path:
    """The cache directory. A ``ConfigError`` if ``$ACCEL_CACHE`` names something that is not a
    directory, or (with ``writable``) one that cannot be written or created: checked here, so
    before anything expensive uses the cache."""
    raw = os.environ.get(CACHE_ENV)
    try:
        root = Path(raw).expanduser().absolute() if raw else Path.home() / ".cache" / "accel"
    except RuntimeError:  # no home directory to expand "~" or to default to
        raise ConfigError(f"cannot locate a home directory for the build cache; set "
                          f"{CACHE_ENV} to a directory") from None
    setting = f"{CACHE_ENV}={raw}" if raw else f"the build cache {root}"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{setting} is not a directory; set {CACHE_ENV} to a directory for "
                          "accel's build cache (it is created if missing)")
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{setting} cannot be created: {existing} is not a directory")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting} is not writable ({existing}); set {CACHE_ENV} to a "
                          "writable directory")
    return root


def builds_dir(create: bool = True) -> Path:
    """``<cache>/builds``, created and checked to be writable unless ``create`` is false."""
    root = cache_root(writable=create)
    builds = root / "builds"
    if not create:
        return builds
    try:
        builds.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the build cache in {root} ({exc.strerror}); set "
                          f"{CACHE_ENV} to a writable directory") from None
    if not os.access(builds, os.W_OK | os.X_OK):
        raise ConfigError(f"the build cache {builds} is not writable; set {CACHE_ENV} to a "
                          "writable directory")
    return builds


def _number_from_env(name: str, default: float, unit: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number of {unit}, got {raw!r}")
    return value


def max_bytes() -> float:
    """The size cap in bytes (``$ACCEL_CACHE_MAX_GB``, decimal GB; ``inf`` for none)."""
    return _number_from_env(MAX_SIZE_ENV, DEFAULT_MAX_GB, "gigabytes") * 1e9


def lock_timeout() -> float:
    """Seconds to wait for another process's lock (``$ACCEL_CACHE_LOCK_TIMEOUT``)."""
    return _number_from_env(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT_S, "seconds")


def check_settings() -> None:
    """A ``ConfigError`` now for malformed cache settings, rather than after a build."""
    max_bytes()
    lock_timeout()


# ---------------------------------------------------------------- locks


class Lock:
    """An flock on ``builds/<key>.lock``, safe against the file being removed by its holder."""

    def __init__(self, builds: Path, key: str):
        self.key = key
        self.path = builds / f"{key}.lock"
        self._fd: int | None = None

    def try_acquire(self, shared: bool = False) -> bool:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise ConfigError(f"cannot open the lock {self.path} ({exc.strerror}); set "
                                  f"{CACHE_ENV} to a writable directory") from None
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return True
            os.close(fd)  # its holder removed the file before we locked it: lock the new one

    def acquire(self, shared: bool = False, waiting: str = "building or using") -> None:
        """Lock, saying once on stderr that we wait if another process holds the lock, and
        giving up with a ``SimulationError`` after ``lock_timeout()`` seconds."""
        if self.try_acquire(shared):
            return
        timeout = lock_timeout()
        notice(f"waiting for another accel process {waiting} {self.key} (lock {self.path}); "
               f"giving up after {timeout:g} s ({LOCK_TIMEOUT_ENV})")
        deadline = time.monotonic() + timeout
        delay = 0.05
        while not self.try_acquire(shared):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SimulationError(
                    f"gave up after {timeout:g} s waiting for the lock {self.path} (another "
                    f"accel process is {waiting} {self.key}); raise {LOCK_TIMEOUT_ENV} or stop "
                    "that process")
            time.sleep(min(delay, left))
            delay = min(2 * delay, 0.5)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def unlink(self) -> None:
        """Remove the lock file; only while holding the lock exclusively."""
        assert self._fd is not None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def in_use(builds: Path, key: str) -> bool:
    lock = Lock(builds, key)
    if lock.try_acquire():
        lock.release()
        return False
    return True


# ---------------------------------------------------------------- manifests


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, key: str, toplevel: str, **info) -> dict:
    """Record the binary's size and sha256 (the only file a run needs from the directory: the
    simulator links to cocotb's libraries by absolute path, and writes its waves and results
    in the run directory)."""
    binary = directory / toplevel
    manifest = {"format": MANIFEST_FORMAT, "key": key, "toplevel": toplevel,
                "created": time.time(), **info,
                "files": {toplevel: {"size": binary.stat().st_size,
                                     "sha256": _sha256(binary)}}}
    write_atomic(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def verify(directory: Path, toplevel: str) -> str | None:
    """``None`` if the entry is intact, else why not.

    The full sha256 of the binary is checked on every use: the simulator binaries of this
    project's designs are 0.4-2.4 MB, hashed at ~540 MB/s on the 2-core development machine, so
    at most ~5 ms per ``build()``, next to simulations of seconds. (A size + mtime shortcut would
    miss a same-size overwrite whose mtime was restored, and bit rot.)
    """
    manifest = read_manifest(directory)
    if manifest is None:
        return ("it has no readable manifest: an older accel made it, or it is damaged"
                if directory.is_dir() else "it does not exist")
    files = manifest.get("files")
    if (manifest.get("format") != MANIFEST_FORMAT or manifest.get("key") != directory.name
            or manifest.get("toplevel") != toplevel or not isinstance(files, dict)
            or toplevel not in files):
        return "its manifest does not describe this build"
    for name, recorded in files.items():
        path = directory / name
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != recorded.get("size"):
            return f"{name} is {size} bytes, its manifest says {recorded.get('size')}"
        if _sha256(path) != recorded.get("sha256"):
            return f"{name} does not match the sha256 in its manifest"
    return None


def touch(directory: Path) -> None:
    """Record a use of the entry (for the size cap's least-recently-used order)."""
    path = directory / LAST_USED
    try:
        path.touch()
        os.utime(path)
    except OSError:
        pass  # a read-only cache still works; its order is then by build time


def prune(directory: Path) -> None:
    """Drop what only the compiler needed (see ``INTERMEDIATE_SUFFIXES``)."""
    for path in directory.iterdir():
        if path.is_file() and (path.suffix in INTERMEDIATE_SUFFIXES or path.name == BUILDER):
            path.unlink()


# ---------------------------------------------------------------- processes of a build


def record_builder(directory: Path, pgid: int) -> None:
    """Name the process group compiling in ``directory``, so that if this process dies, the next
    user of the cache can stop compilers still running there."""
    write_atomic(directory / BUILDER, json.dumps({"pid": os.getpid(), "pgid": pgid}))


def _processes() -> Iterator[tuple[int, int, str, str, str | None]]:
    """(pid, process group, state, command name, working directory) of the processes we can
    see in /proc."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            try:
                cwd = os.readlink(f"/proc/{name}/cwd")
            except OSError:
                cwd = None
            yield int(name), int(fields[2]), fields[0], comm, cwd
        except (OSError, ValueError, IndexError):
            continue


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except (ProcessLookupError, PermissionError):
            return []
    return [pid for pid, group, state, _, _ in _processes() if group == pgid and state != "Z"]


def kill_group(pgid: int, wait_s: float = 5.0) -> None:
    """SIGKILL process group ``pgid`` and wait (up to ``wait_s``) until none of it is alive."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill_orphans(temporary: Path) -> None:
    """Stop what a dead build left running in ``temporary``: processes working in it that are of
    its recorded process group (or, with no record, build tools)."""
    if not os.path.isdir("/proc"):
        return
    try:
        pgid = json.loads((temporary / BUILDER).read_text())["pgid"]
    except (OSError, ValueError, KeyError, TypeError):
        pgid = None
    inside = str(temporary.resolve())
    victims = [pid for pid, group, state, comm, cwd in _processes()
               if state != "Z" and pid != os.getpid() and cwd is not None
               and (cwd == inside or cwd.startswith(inside + os.sep))
               and (group == pgid if pgid is not None else comm in BUILD_TOOLS)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 5.0
    while victims and time.monotonic() < deadline:
        alive = {pid for pid, _, state, _, _ in _processes() if state != "Z"}
        victims = [pid for pid in victims if pid in alive]
        if victims:
            time.sleep(0.02)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def clean_stale_temporaries(builds: Path) -> list[Path]:
    """Remove the ``.tmp-<key>-*`` directories of builds whose process is gone (nobody holds
    ``<key>.lock``: a live builder holds it for the whole build), first killing compilers such
    a build left running. Returns the directories removed."""
    removed = []
    try:
        names = os.listdir(builds)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if not match:
            continue
        lock = Lock(builds, match.group(1))
        if not lock.try_acquire():
            continue  # a build in progress in a live process (or the entry is in use)
        try:
            temporary = builds / name
            if temporary.is_dir():
                _kill_orphans(temporary)
                _remove_tree(temporary)
                removed.append(temporary)
            if not (builds / match.group(1)).exists():
                lock.unlink()
        finally:
            lock.release()
    return removed


# ---------------------------------------------------------------- entries, size cap


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    toplevel: str | None  # from the manifest; None without a readable one
    size: int  # bytes (apparent sizes of its files)
    last_used: float  # epoch seconds
    has_manifest: bool


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for parent, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def _last_used(path: Path) -> float:
    for candidate in (path / LAST_USED, path / MANIFEST, path):
        try:
            return candidate.stat().st_mtime
        except OSError:
            continue
    return 0.0


def _executable(directory: Path) -> str | None:
    """The simulator binary's name in a build without a manifest (for display)."""
    try:
        names = [path.name for path in directory.iterdir() if path.is_file()
                 and os.access(path, os.X_OK) and path.suffix not in INTERMEDIATE_SUFFIXES]
    except OSError:
        return None
    return names[0] if len(names) == 1 else None


def entries(builds: Path) -> list[Entry]:
    """The finished builds (``builds/<key>/``), least recently used first."""
    found = []
    try:
        names = os.listdir(builds)
    except OSError:
        return found
    for name in names:
        path = builds / name
        if not _KEY.match(name) or not path.is_dir():
            continue
        manifest = read_manifest(path)
        toplevel = manifest.get("toplevel") if manifest else _executable(path)
        found.append(Entry(name, path, toplevel if isinstance(toplevel, str) else None,
                           tree_size(path), _last_used(path), manifest is not None))
    return sorted(found, key=lambda entry: entry.last_used)


def temporaries(builds: Path) -> list[Path]:
    try:
        return sorted(builds / name for name in os.listdir(builds) if _TEMPORARY.match(name))
    except OSError:
        return []


def total_size(builds: Path) -> int:
    return tree_size(builds) if builds.is_dir() else 0


def remove_entry(builds: Path, key: str) -> None:
    """Remove ``builds/<key>``; the caller holds its lock exclusively. The directory is first
    renamed to a temporary name, so a removal cut short never leaves a half entry behind."""
    final = builds / key
    if not final.exists():
        return
    doomed = builds / f".tmp-{key}-removing-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(final, doomed)
    _remove_tree(doomed)


def _remove_unlocked(builds: Path, key: str) -> bool:
    """Remove entry ``key`` with its lock file unless someone holds its lock."""
    lock = Lock(builds, key)
    if not lock.try_acquire():
        return False
    try:
        remove_entry(builds, key)
        lock.unlink()
    finally:
        lock.release()
    return True


def enforce_cap(builds: Path, keep: str | None = None) -> list[Entry]:
    """Remove least recently used entries (not ``keep``, not locked ones) until the cache is
    under ``max_bytes()``. Returns the entries removed."""
    limit = max_bytes()
    total = total_size(builds)
    removed = []
    for entry in entries(builds):
        if total <= limit:
            break
        if entry.key != keep and _remove_unlocked(builds, entry.key):
            total -= entry.size
            removed.append(entry)
    if removed:
        notice(f"the build cache {builds} was over its {limit / 1e9:g} GB cap "
               f"({MAX_SIZE_ENV}): removed {len(removed)} least recently used "
               f"build{'s' if len(removed) != 1 else ''} "
               f"({sum(entry.size for entry in removed) / 1e6:.1f} MB)")
    return removed


@dataclass(frozen=True)
class Cleared:
    removed: list[Entry]
    in_use: list[Entry]
    temporaries: int
    other_bytes: int  # failed-build logs and stale temporaries


def clear(builds: Path, older_than_days: float | None = None) -> Cleared:
    """Remove every entry that no process is using (with ``older_than_days``, only those last
    used longer ago), the stale temporaries and the failed-build logs (as old)."""
    if older_than_days is not None and not older_than_days >= 0:
        raise ConfigError(f"--older-than must be a non-negative number of days, "
                          f"got {older_than_days:g}")
    if not builds.is_dir():
        return Cleared([], [], 0, 0)
    cutoff = math.inf if older_than_days is None else time.time() - 86400 * older_than_days
    before = {path: tree_size(path) for path in temporaries(builds)}
    stale = clean_stale_temporaries(builds)
    other = sum(before.get(path, 0) for path in stale)
    removed, busy = [], []
    for entry in entries(builds):
        if entry.last_used > cutoff:
            continue
        (removed if _remove_unlocked(builds, entry.key) else busy).append(entry)
    for log in builds.glob("*.failed.log"):
        try:
            if log.stat().st_mtime <= cutoff:
                other += log.stat().st_size
                log.unlink()
        except OSError:
            pass
    for lock_file in builds.glob("*.lock"):  # locks of keys without an entry (failed builds)
        key = lock_file.name[:-len(".lock")]
        if _KEY.match(key) and not (builds / key).exists():
            lock = Lock(builds, key)
            if lock.try_acquire():
                try:
                    if not (builds / key).exists():
                        lock.unlink()
                finally:
                    lock.release()
    return Cleared(removed, busy, len(stale), other)


@dataclass(frozen=True)
class Status:
    builds: Path
    entries: list[tuple[Entry, str]]  # most recently used first, with "ok", "in use", ...
    total: int  # bytes under builds/, temporaries and logs included
    building: list[Path]  # temporaries of builds in progress
    stale: list[Path]  # temporaries of dead processes (removed at the next use)


def status(builds: Path) -> Status:
    """What ``accel cache`` shows; reads only (verifying each entry's binary against its
    manifest, which takes milliseconds per entry)."""
    listed = []
    for entry in reversed(entries(builds)):
        if in_use(builds, entry.key):
            state = "in use"
        elif not entry.has_manifest:
            state = "no manifest"
        elif entry.toplevel is None or verify(entry.path, entry.toplevel) is not None:
            state = "damaged"
        else:
            state = "ok"
        listed.append((entry, state))
    building, stale = [], []
    for path in temporaries(builds):
        match = _TEMPORARY.match(path.name)
        (building if in_use(builds, match.group(1)) else stale).append(path)
    return Status(builds, listed, total_size(builds), building, stale)
