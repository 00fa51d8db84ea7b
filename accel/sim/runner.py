"""Build Verilog with Verilator through cocotb's runner, cached by content, and run testbenches.

Cache layout (``$ACCEL_CACHE``, default ``~/.cache/accel``; managed by ``accel.sim.cache``,
shown and cleared by ``accel cache``)::

    builds/<key>/          a finished build: sources, generated C++, the simulator binary and a
                           manifest of the binary's size and sha256 (accel-build.json)
    builds/<key>.lock      held (flock) while <key> is being built or removed; shared by runs
    builds/.tmp-<key>-*    a build in progress; renamed to <key> only once it succeeded

``<key>`` hashes everything that changes the binary: the Verilog text, the top-level, parameters,
build arguments, waveform and timing options, the Verilator and cocotb versions and the
location of cocotb's libraries (the binary links to them by path). The lock
keeps two processes from compiling the same design twice; the rename means a build directory
that exists is always complete, even if a process is killed mid-build, and the manifest is
checked on every use, so a damaged binary is rebuilt rather than trusted. Verilator, make and
the compilers run in a process group of their own, killed with the build on Ctrl-C or SIGTERM;
a build whose process was killed outright is cleaned up by the next process using the cache.
The cache is kept under a size cap (``$ACCEL_CACHE_MAX_GB``) by removing least recently used
builds.

Data crosses into and out of a testbench as files (see ``accel.sim.tbio``), never per cycle.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.errors import ConfigError, SimulationError, ToolchainError
from accel.sim import cache, tbio
from accel.sim.cache import CACHE_ENV, cache_root  # noqa: F401  (accel.sim.lint imports it here)
from accel.sim.lint import waiver_args
from accel.toolchain import (
    find_verilator,
    fst_supported,
    package_version,
    verilator_on_path,
)

# Bump when the way builds are made changes, so stale cache entries are never reused.
_BUILD_RECIPE = 2
# --timing (HDL delays) needs C++20 coroutines, which g++ 12 only enables with -std=c++20.
TIMING_ARGS = ("--timing", "-CFLAGS", "-std=c++20", "--timescale", "1ns/1ps")


@dataclass(frozen=True)
class SimBuild:
    """A finished, cached simulator binary for one design."""

    directory: Path
    toplevel: str  # the simulated top: the design's, or its clocked wrapper
    key: str
    waves: str | None  # "fst", "vcd" or None: the waveform format the binary can record
    compiled: bool  # False when the build came from the cache
    hdl_clock: str | None  # the clock port driven inside the simulator, if any
    seconds: float  # wall time of build(), cache hit or not


@dataclass
class SimRun:
    """The outcome of one testbench run."""

    outputs: dict[str, Any]
    directory: Path
    seconds: float
    waves_file: Path | None = None
    log_file: Path | None = None


def _build_key(sources: Mapping[str, str], toplevel: str, parameters: Mapping[str, object],
               build_args: Sequence[str], waves: bool, timing: bool) -> str:
    digest = hashlib.sha256()
    description = {
        "recipe": _BUILD_RECIPE,
        "toplevel": toplevel,
        "parameters": {k: str(v) for k, v in sorted(parameters.items())},
        "build_args": list(build_args),
        "waves": waves,
        "timing": timing,
        "verilator": find_verilator().version,
        "cocotb": package_version("cocotb"),
        # the binary's RUNPATH names this installation's cocotb libraries: a build from
        # another virtualenv cannot be reused once that one is gone
        "cocotb_libs": str(Path(importlib.util.find_spec("cocotb").origin).parent / "libs"),
    }
    digest.update(json.dumps(description, sort_keys=True).encode())
    for name in sorted(sources):
        digest.update(b"\0" + name.encode() + b"\0" + sources[name].encode())
    return digest.hexdigest()[:24]


_PORT_DECL = re.compile(
    r"^\s*(input|output|inout)\s*(\[[^\]]*\])?\s*\\?([A-Za-z_$][\w$]*)\s*;\s*$")


def top_ports(sources: Mapping[str, str], toplevel: str) -> list[tuple[str, str, str]]:
    """(direction, range, name) of each port of module ``toplevel``, as Amaranth emits them
    (one declaration per line)."""
    for text in sources.values():
        match = re.search(rf"^\s*module\s+{re.escape(toplevel)}\b(.*?)^\s*endmodule", text,
                          re.DOTALL | re.MULTILINE)
        if match:
            ports = [(m.group(1), m.group(2) or "", m.group(3))
                     for line in match.group(1).splitlines() if (m := _PORT_DECL.match(line))]
            if ports:
                return ports
    raise SimulationError(f"no module {toplevel} with ports in the Verilog sources")


def _clocked_wrapper(sources: Mapping[str, str], toplevel: str, clock: str) -> tuple[str, str]:
    """A module ``<toplevel>_clocked`` with the same ports but ``clock``, generated inside.

    With the clock toggled by the simulator's own scheduler (an ``always #5``) instead of a
    cocotb timer callback per edge, simulations run about 3x faster (benchmarks/sim_overhead.py).
    """
    ports = top_ports(sources, toplevel)
    if clock not in [name for _, _, name in ports]:
        raise SimulationError(f"module {toplevel} has no clock port {clock!r}")
    outer = [(d, r, n) for d, r, n in ports if n != clock]
    name = f"{toplevel}_clocked"
    lines = [f"module {name}({', '.join(n for _, _, n in outer)});"]
    lines += [f"  {d} {r + ' ' if r else ''}{n};" for d, r, n in outer]
    lines += [f"  reg {clock} = 1'b0;",
              f"  always #{tbio.CLOCK_PERIOD_NS // 2} {clock} = ~{clock};",
              f"  {toplevel} dut({', '.join(f'.{n}({n})' for _, _, n in ports)});",
              "endmodule", ""]
    return name, "\n".join(lines)


def _public_ports_config(sources: Mapping[str, str], toplevel: str,
                         extra_public: Sequence[str]) -> str:
    """A Verilator control file that exposes only the top-level ports to VPI.

    cocotb's runner passes --public-flat-rw, which makes every signal public and, by disabling
    Verilator's optimizations, runs our designs about 4x slower. Testbenches here touch only
    top-level ports (memories are loaded through load ports), so that is all we expose.
    """
    names = [name for _, _, name in top_ports(sources, toplevel)]
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{toplevel}" -var "{name}"'
              for name in [*names, *extra_public]]
    return "\n".join(lines) + "\n"


def waves_format(waves: bool | str) -> str | None:
    """``True`` means FST where it can be compiled (it needs the lz4 headers), else VCD."""
    if not waves:
        return None
    if waves is True:
        return "fst" if fst_supported() else "vcd"
    if waves not in ("fst", "vcd"):
        raise ConfigError(f"waveform format must be 'fst' or 'vcd', got {waves!r}")
    if waves == "fst" and not fst_supported():
        raise ToolchainError("FST waveforms need the lz4 development headers (Debian/Ubuntu: "
                             "apt install liblz4-dev); ask for waves='vcd' instead")
    return waves


def build(sources: Mapping[str, str] | str, toplevel: str, *,
          parameters: Mapping[str, object] | None = None, build_args: Sequence[str] = (),
          waves: bool | str = False, timing: bool = False, hdl_clock: str | None = "clk",
          public: str = "ports", extra_public: Sequence[str] = ()) -> SimBuild:
    """Compile ``sources`` (file name to Verilog text, or one Verilog text) for cocotb.

    Returns at once if the same design was built before. ``waves`` (True, "fst" or "vcd") makes
    the binary able to record waveforms, which ``run(..., waves=True)`` then does; ``timing``
    enables HDL delays. ``hdl_clock`` names the clock port that a generated wrapper drives from
    inside the simulator (period ``tbio.CLOCK_PERIOD_NS``; implies ``timing``); ``None`` leaves the
    clock to the testbench (``tbio.start_clock`` handles both). ``public`` is "ports" (only the
    top-level ports are visible to the testbench; fastest) or "all" (every signal, for
    debugging through VPI); ``extra_public`` names further top-module signals to expose.
    """
    if public not in ("ports", "all"):
        raise ConfigError(f"public must be 'ports' or 'all', got {public!r}")
    start = time.perf_counter()
    builds = cache.builds_dir()  # an unusable $ACCEL_CACHE fails here, before any work
    cache.check_settings()  # and malformed cache settings
    cache.clean_stale_temporaries(builds)
    if isinstance(sources, str):
        sources = {f"{toplevel}.v": sources}
    parameters = dict(parameters or {})
    args = list(build_args)
    waves = waves_format(waves)  # an unsupported format fails before anything is generated
    if hdl_clock:
        timing = True
        design_top = toplevel
        toplevel, wrapper = _clocked_wrapper(sources, design_top, hdl_clock)
        sources = {**sources, f"{toplevel}.v": wrapper}
        extra_public = [*extra_public, hdl_clock]
    if timing:
        args += TIMING_ARGS
    if waves == "fst":
        args += ["--trace-fst"]
    if public == "ports":
        sources = dict(sources)
        sources["public_ports.vlt"] = _public_ports_config(sources, toplevel, extra_public)
    key = _build_key(sources, toplevel, parameters, args, waves, timing)
    final = builds / key

    def done(compiled: bool) -> SimBuild:
        cache.touch(final)
        return SimBuild(final, toplevel, key, waves, compiled, hdl_clock,
                        time.perf_counter() - start)

    if cache.verify(final, toplevel) is None:
        return done(False)
    with _signals_raise():  # SIGTERM/SIGHUP unwind like Ctrl-C: kill the compilers, clean up
        lock = cache.Lock(builds, key)
        lock.acquire()
        try:
            problem = cache.verify(final, toplevel)
            if problem is None:  # another process finished it while we waited
                return done(False)
            if final.exists():
                cache.notice(f"the cached build {key} of {toplevel} is unusable, rebuilding it: "
                             f"{problem}")
                cache.remove_entry(builds, key)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=builds))
            try:
                compile_start = time.perf_counter()
                _compile(tmp, sources, toplevel, parameters, args, waves,
                         failed_log=builds / f"{key}.failed.log")
                cache.prune(tmp)
                cache.write_manifest(tmp, key, toplevel,
                                     build_seconds=round(time.perf_counter() - compile_start, 3),
                                     verilator=find_verilator().version,
                                     cocotb=package_version("cocotb"))
                os.rename(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            built = done(True)
        finally:
            lock.release()
    cache.enforce_cap(builds, keep=key)
    return built


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a build (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While a build runs, SIGTERM and SIGHUP (where their handlers are the default) raise,
    so that the build's process group is killed and its directory removed as on Ctrl-C; the
    process then dies by the signal as it would have. Only in the main thread (Python runs
    signal handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def handler(signum, frame):
        if not received:  # a second signal must not interrupt the cleanup of the first
            received.append(signum)
            raise _Terminated(signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    except _Terminated as exc:
        for signum, old in previous.items():
            signal.signal(signum, old)
        previous.clear()
        os.kill(os.getpid(), exc.signum)
        raise
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _run_in_own_group(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], stdout) -> int:
    """Run one build command in a new session (so a process group of its own: make's compilers
    join it), record the group in the build directory, and kill the whole group if anything
    (Ctrl-C, SIGTERM through ``_signals_raise``) interrupts the wait."""
    process = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=stdout,
                               stderr=None if stdout is None else subprocess.STDOUT,
                               start_new_session=True)
    try:
        cache.record_builder(Path(cwd), process.pid)
        return process.wait()
    except BaseException:
        cache.kill_group(process.pid)
        process.wait()
        raise


def _compile(directory: Path, sources: Mapping[str, str], toplevel: str,
             parameters: Mapping[str, object], args: Sequence[str], waves: str | None,
             failed_log: Path) -> None:
    src_dir = directory / "src"
    src_dir.mkdir()
    paths = []
    for name, text in sources.items():
        path = src_dir / name
        path.write_text(text)
        paths.append(path)
    log = directory / "build.log"
    with verilator_on_path():
        runner = _verilator_runner(public_flat_rw="public_ports.vlt" not in sources)
        runner.log.setLevel("WARNING")
        try:
            runner.build(sources=paths, hdl_toplevel=toplevel, build_dir=directory,
                         parameters=parameters, build_args=waiver_args() + list(args),
                         waves=waves is not None,
                         log_file=log, always=True)
        except (RuntimeError, SystemExit) as exc:
            if log.is_file():  # the build directory is about to be deleted
                shutil.copy(log, failed_log)
            raise SimulationError(f"Verilator build of {toplevel} failed: "
                                  f"{_last_error(log) or exc} (log: {failed_log})") from None


# The PyPI wheel's verilated.mk leaves the option that includes a precompiled header empty,
# so g++ receives "Vtop__pch.h.fast" as an input file and fails ("linker input file not found")
# as soon as a design is large enough to have fast-path objects. GCC's spelling is -include.
MAKE_FIXES = ("CFG_CXXFLAGS_PCH_I=-include",)


def _verilator_runner(public_flat_rw: bool):
    """cocotb's Verilator runner, optionally without its blanket --public-flat-rw, with
    ``MAKE_FIXES`` on its make command, and running each command in its own process group."""
    from cocotb_tools.runner import Verilator

    if not hasattr(Verilator, "_execute"):  # the one private method the override relies on
        raise ToolchainError(f"cocotb {package_version('cocotb')} is not supported: its runner "
                             "has no _execute (install cocotb 2.1)")

    class Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            if not public_flat_rw:
                cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            cmds[1] = [*cmds[1], *MAKE_FIXES]
            return cmds

        def _execute(self, cmds, cwd):
            with open(self.log_file, "w") if self.log_file else contextlib.nullcontext() as log:
                for cmd in cmds:
                    self.log.info("Running command %s in directory %s", " ".join(cmd), cwd)
                    code = _run_in_own_group(cmd, Path(cwd), self.env, log)
                    if code != 0:
                        raise RuntimeError(f"Command failed with return code: {code}")

    return Runner()


def _last_error(log: Path) -> str | None:
    if not log.is_file():
        return None
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("%Error") or " error: " in line:
            return line
    return lines[-1] if lines else None


def run(sim_build: SimBuild, test_module: str, *, inputs: Mapping[str, Any] | None = None,
        testcase: str | None = None, seed: int = 0, waves: bool = False,
        keep: bool = False) -> SimRun:
    """Run the cocotb ``test_module`` (an importable module name) against ``sim_build``.

    ``inputs`` reaches the testbench through ``accel.sim.tbio.inputs()``; what the testbench
    passes to ``tbio.write_outputs`` comes back as ``SimRun.outputs``. A failing cocotb test
    raises ``SimulationError`` with its message. The run directory is deleted unless ``keep``
    or ``waves`` is set.
    """
    from cocotb_tools.runner import get_runner

    if waves and not sim_build.waves:
        raise ConfigError("waveforms need a build made with waves=True")
    start = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="accel-run-"))
    input_file, output_file, log = run_dir / "inputs.json", run_dir / "outputs.json", run_dir / "sim.log"
    input_file.write_text(json.dumps(dict(inputs or {}), default=tbio.to_json))
    results = run_dir / "results.xml"
    env = {tbio.INPUT_ENV: str(input_file), tbio.OUTPUT_ENV: str(output_file),
           tbio.HDL_CLOCK_ENV: sim_build.hdl_clock or ""}
    failure = None
    # a shared lock: the entry cannot be removed (size cap, `accel cache clear`) under a run
    lock = cache.Lock(sim_build.directory.parent, sim_build.key)
    lock.acquire(shared=True, waiting="building or removing")
    try:
        if not (sim_build.directory / sim_build.toplevel).is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
            raise SimulationError(f"the cached build {sim_build.key} of {sim_build.toplevel} was "
                                  "removed after it was built (by `accel cache clear` or the "
                                  "cache's size cap); build it again")
        with verilator_on_path():
            runner = get_runner("verilator")
            runner.log.setLevel("WARNING")
            try:
                runner.test(test_module=test_module, hdl_toplevel=sim_build.toplevel,
                            build_dir=sim_build.directory, test_dir=run_dir,
                            results_xml=str(results), testcase=testcase, seed=seed,
                            extra_env=env, waves=waves, log_file=log,
                            hdl_toplevel_lang="verilog")
            except (RuntimeError, SystemExit) as exc:
                failure = str(exc)
    finally:
        lock.release()
    failure = _failed_tests(results) or failure
    if failure is None and not results.is_file():
        failure = "the simulator wrote no results"
    if failure is not None:
        detail = _last_error(log)
        raise SimulationError(f"simulation of {sim_build.toplevel} with {test_module} failed: "
                              f"{failure}" + (f" (log: {log})" if log.is_file() else "")
                              + (f"; last line: {detail}" if detail and detail not in failure else ""))
    outputs = json.loads(output_file.read_text()) if output_file.is_file() else {}
    waves_file = run_dir / f"dump.{sim_build.waves}" if waves else None
    sim_run = SimRun(outputs, run_dir, time.perf_counter() - start, waves_file, log)
    if not (keep or waves):
        shutil.rmtree(run_dir, ignore_errors=True)
    return sim_run


def _failed_tests(results: Path) -> str | None:
    if not results.is_file():
        return None
    for case in ET.parse(results).getroot().iter("testcase"):
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            message = failure.get("message") or (failure.text or "").strip().splitlines()[-1:]
            return f"{case.get('name')}: {message}"
    return None
