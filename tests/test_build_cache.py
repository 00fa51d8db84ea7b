"""The build cache (accel.sim.cache): manifests and damaged builds, stale temporaries, killed
builds, lock waits, the size cap, the `accel cache` command and bad cache settings.

Most tests replace the Verilator build by a fake one (a file written in the build directory);
the few real builds are of the smallest designs, and the kill tests stop theirs early."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from accel.cli import main
from accel.errors import ConfigError, SimulationError
from accel.hw.common.fifo import StreamFIFO
from accel.hw.common.harness import FIFOHarness
from accel.hw.verilog import to_verilog
from accel.sim import cache, runner
from accel.sim.lint import check_lint

EMPTY = "module m; endmodule\n"
OUTER_CACHE = os.environ.get("ACCEL_CACHE")  # the suite's cache, before fresh_cache changes it
SMALL_RUN = {"items": 50, "valid_threshold": 200, "ready_threshold": 100, "source_seed": 5,
             "sink_seed": 6}


@pytest.fixture
def fake_compile(monkeypatch):
    """Builds without Verilator: the "binary" is a file whose bytes say which build made it,
    next to the intermediates a real build leaves (object files, precompiled headers)."""
    calls = []

    def compile_(directory, sources, toplevel, parameters, args, waves, failed_log):
        calls.append(directory)
        (directory / toplevel).write_bytes(f"binary {len(calls)}\n".encode() * 500)
        (directory / "Vtop__ALL.a").write_bytes(b"a" * 100)
        (directory / "Vtop__pch.h.fast.gch").write_bytes(b"g" * 1000)
        (directory / "Vtop.cpp").write_text("// generated C++\n")

    monkeypatch.setattr(runner, "_compile", compile_)
    return calls


def build_empty(**kwargs):
    return runner.build(EMPTY, "m", hdl_clock=None, public="all", **kwargs)


def fake_entry(builds, index, size=10_000, age_s=0.0, toplevel="top"):
    """A finished entry of ``size`` bytes of binary, last used ``age_s`` seconds ago."""
    key = f"{index:024x}"
    directory = builds / key
    directory.mkdir(parents=True)
    (directory / toplevel).write_bytes(bytes(size))
    cache.write_manifest(directory, key, toplevel)
    (directory / cache.LAST_USED).touch()
    when = time.time() - age_s
    os.utime(directory / cache.LAST_USED, (when, when))
    return key


def hold_lock(builds, key, shared=False):
    """Lock ``key`` as another process would (an flock on a file of its own)."""
    lock = open(builds / f"{key}.lock", "a")  # noqa: SIM115 (closed by the caller)
    fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    return lock


def notices(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("accel:")]


# ------------------------------------------------------------- manifests, damaged builds


def test_a_build_records_a_manifest_and_a_damaged_one_is_rebuilt(fresh_cache, fake_compile,
                                                                  capsys):
    first = build_empty()
    binary = first.directory / "m"
    manifest = json.loads((first.directory / cache.MANIFEST).read_text())
    assert manifest["key"] == first.key and manifest["toplevel"] == "m"
    assert manifest["files"]["m"]["size"] == binary.stat().st_size
    assert manifest["files"]["m"]["sha256"] == cache._sha256(binary)
    # the compiler's intermediates are dropped, the generated C++ stays
    assert sorted(p.name for p in first.directory.iterdir()) == sorted(
        ["m", "Vtop.cpp", cache.MANIFEST, cache.LAST_USED])
    assert not build_empty().compiled and len(fake_compile) == 1
    assert notices(capsys) == []

    damages = {
        "truncated": lambda: binary.write_bytes(binary.read_bytes()[:100]),
        "a byte flipped, same size": lambda: binary.write_bytes(
            b"X" + binary.read_bytes()[1:]),
        "no manifest": lambda: (first.directory / cache.MANIFEST).unlink(),
        "a manifest of another build": lambda: (first.directory / cache.MANIFEST).write_text(
            json.dumps(dict(manifest, key="0" * 24))),
    }
    for count, (damage, apply) in enumerate(damages.items(), start=2):
        apply()
        again = build_empty()
        assert again.compiled, damage
        assert len(fake_compile) == count
        [line] = notices(capsys)
        assert f"cached build {first.key} of m is unusable" in line and "rebuilding" in line
        assert cache.verify(again.directory, "m") is None
        assert not build_empty().compiled  # and the rebuilt entry is trusted again
    assert not cache.temporaries(fresh_cache / "builds")


def _copy_of_a_default_cache_build(monkeypatch, fresh_cache):
    """The FIFO harness build from the suite's cache (where other tests build it too), copied
    into a fresh cache: a cached build to damage without compiling one first."""
    if OUTER_CACHE is None:
        monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    else:
        monkeypatch.setenv(cache.CACHE_ENV, OUTER_CACHE)
    verilog = to_verilog(FIFOHarness(width=8, depth=2), "fifo_harness")
    good = runner.build(verilog, "fifo_harness")
    monkeypatch.setenv(cache.CACHE_ENV, str(fresh_cache))
    lock = cache.Lock(good.directory.parent, good.key)
    lock.acquire(shared=True)  # so that nobody removes it while we copy
    try:
        shutil.copytree(good.directory, fresh_cache / "builds" / good.key)
    finally:
        lock.release()
    return verilog, fresh_cache / "builds" / good.key / good.toplevel


# slow (a fresh Verilator build each): the manifest rule itself is tested without Verilator above
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_verilator_build_is_rebuilt_and_runs(damage, tmp_path, monkeypatch, capsys):
    verilog, binary = _copy_of_a_default_cache_build(monkeypatch, tmp_path / "cache")
    data = binary.read_bytes()
    if damage == "truncate":
        binary.write_bytes(data[:len(data) // 2])
    else:
        middle = len(data) // 2
        binary.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    capsys.readouterr()
    sim_build = runner.build(verilog, "fifo_harness")
    assert sim_build.compiled
    assert any("unusable" in line for line in notices(capsys))
    assert cache.verify(sim_build.directory, sim_build.toplevel) is None
    sim = runner.run(sim_build, "accel.sim.tb.fifo_harness_tb", inputs={"runs": [SMALL_RUN]})
    assert sim.outputs["runs"][0]["received"] == 50 and sim.outputs["runs"][0]["errors"] == 0


def test_a_run_refuses_a_build_removed_under_it(fresh_cache, fake_compile):
    sim_build = build_empty()
    assert main(["cache", "clear"]) == 0
    with pytest.raises(SimulationError, match="was removed after it was built"):
        runner.run(sim_build, "accel.sim.tb.fifo_harness_tb")


# ------------------------------------------------------------- stale temporaries


def test_stale_temporaries_are_removed_but_not_a_live_build(fresh_cache, fake_compile):
    builds = fresh_cache / "builds"
    builds.mkdir(parents=True)
    dead, live = f"{1:024x}", f"{2:024x}"
    for key in (dead, live):
        (builds / f".tmp-{key}-x1y2" / "obj").mkdir(parents=True)
        (builds / f".tmp-{key}-x1y2" / "obj" / "Vtop.o").write_bytes(b"o" * 1000)
        (builds / f"{key}.lock").touch()
    held = hold_lock(builds, live)  # a build in progress in a live process
    try:
        build_empty()  # any use of the cache cleans up
        names = {p.name for p in builds.iterdir()}
        assert f".tmp-{dead}-x1y2" not in names and f"{dead}.lock" not in names
        assert f".tmp-{live}-x1y2" in names
    finally:
        held.close()
    cache.clean_stale_temporaries(builds)
    assert not cache.temporaries(builds)


# ------------------------------------------------------------- killed builds

# The child takes Ctrl-C as an interactive process does, even when the test runs where SIGINT
# is ignored and children inherit that (a shell's background job: the test would then fail).
BUILD_SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from accel.sim import runner
    runner.build(open(sys.argv[1]).read(), "stream_fifo", hdl_clock=None)
""")
COMPILERS = {"c++", "g++", "cc1plus"}


def _group(psutil, pgid):
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except (psutil.Error, ProcessLookupError):
            pass
    return alive


def _start_build_and_wait_for_compilers(tmp_path, psutil, depth):
    """A child process building a FIFO in a fresh cache, once its compilers run."""
    source = tmp_path / "fifo.v"
    source.write_text(to_verilog(StreamFIFO(8, depth), "stream_fifo"))
    builds = tmp_path / "cache" / "builds"
    env = dict(os.environ, ACCEL_CACHE=str(tmp_path / "cache"))
    child = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(source)], env=env,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        for temporary in builds.glob(".tmp-*"):
            try:
                pgid = json.loads((temporary / cache.BUILDER).read_text())["pgid"]
            except (OSError, ValueError):
                continue
            names = set()
            for process in _group(psutil, pgid):
                try:
                    names.add(process.name())
                except psutil.Error:
                    pass
            if names & COMPILERS:
                assert pgid != os.getpgid(child.pid)  # the build has a process group of its own
                return child, builds, temporary, pgid
        time.sleep(0.05)
    child.kill()
    pytest.fail(f"no compiler seen in the build's process group: {child.communicate()[1]}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_build_kills_its_compilers_and_removes_its_directory(signum, tmp_path):
    psutil = pytest.importorskip("psutil")
    child, builds, temporary, pgid = _start_build_and_wait_for_compilers(tmp_path, psutil, 5)
    start = time.monotonic()
    child.send_signal(signum)
    child.communicate(timeout=120)
    # at once (0.06 s measured), not after the compilers finished (a minute on a busy machine)
    assert time.monotonic() - start < 5
    assert child.returncode == -signum  # and then dies by the signal, as it would have
    assert _group(psutil, pgid) == []
    assert not temporary.exists() and not cache.temporaries(builds)
    assert not [p for p in builds.iterdir() if p.is_dir()]  # and no entry was made


def test_a_build_killed_outright_is_cleaned_up_at_the_next_use(tmp_path, monkeypatch):
    psutil = pytest.importorskip("psutil")
    child, builds, temporary, pgid = _start_build_and_wait_for_compilers(tmp_path, psutil, 6)
    child.kill()  # SIGKILL: no cleanup in the child; its compilers carry on
    child.communicate(timeout=60)
    orphans = _group(psutil, pgid)
    try:
        assert orphans and temporary.is_dir()
        monkeypatch.setenv(cache.CACHE_ENV, str(builds.parent))
        assert cache.clean_stale_temporaries(builds) == [temporary]
        assert _group(psutil, pgid) == []
        assert not temporary.exists()
    finally:
        for process in _group(psutil, pgid):
            process.kill()


# ------------------------------------------------------------- locks


def test_waiting_for_a_lock_says_so_once_and_gives_up_after_the_timeout(
        fresh_cache, fake_compile, monkeypatch, capsys):
    builds = fresh_cache / "builds"
    key = build_empty().key
    shutil.move(builds / key, fresh_cache / "done")  # a finished build, kept aside
    capsys.readouterr()
    held = hold_lock(builds, key)  # another process is building it
    monkeypatch.setenv(cache.LOCK_TIMEOUT_ENV, "0.3")
    start = time.monotonic()
    with pytest.raises(SimulationError, match=r"gave up after 0.3 s waiting for the lock") as info:
        build_empty()
    assert 0.3 <= time.monotonic() - start < 5
    assert "\n" not in str(info.value) and cache.LOCK_TIMEOUT_ENV in str(info.value)
    [line] = notices(capsys)
    assert f"waiting for another accel process building or using {key}" in line
    assert str(builds / f"{key}.lock") in line

    # the other process finishes the build and releases the lock: the waiter uses that build
    def finish_and_release():
        time.sleep(0.5)
        shutil.copytree(fresh_cache / "done", builds / key)
        held.close()

    monkeypatch.setenv(cache.LOCK_TIMEOUT_ENV, "60")
    holder = threading.Thread(target=finish_and_release)
    holder.start()
    waited = build_empty()
    holder.join()
    assert not waited.compiled and len(fake_compile) == 1
    [line] = notices(capsys)
    assert "waiting for another accel process" in line


# ------------------------------------------------------------- size cap


def test_the_size_cap_removes_least_recently_used_builds(fresh_cache, monkeypatch, capsys):
    builds = fresh_cache / "builds"
    keys = [fake_entry(builds, index, age_s=100 * (5 - index)) for index in range(5)]
    each = cache.tree_size(builds / keys[0])
    monkeypatch.setenv(cache.MAX_SIZE_ENV, str(3.5 * each / 1e9))
    held = hold_lock(builds, keys[0], shared=True)  # the oldest is being run
    try:
        removed = cache.enforce_cap(builds, keep=keys[1])  # the second oldest was just built
    finally:
        held.close()
    assert [entry.key for entry in removed] == [keys[2], keys[3]]
    assert sorted(entry.key for entry in cache.entries(builds)) == [keys[0], keys[1], keys[4]]
    assert not (builds / f"{keys[2]}.lock").exists()
    [line] = notices(capsys)
    assert "over its" in line and "removed 2 least recently used builds" in line
    # a use moves an entry to the back of the queue
    cache.touch(builds / keys[0])
    assert cache.entries(builds)[-1].key == keys[0]


def test_a_new_build_enforces_the_cap(fresh_cache, fake_compile, monkeypatch):
    builds = fresh_cache / "builds"
    old = fake_entry(builds, 1, size=100_000, age_s=3600)
    monkeypatch.setenv(cache.MAX_SIZE_ENV, "0.00005")  # 50 kB: room for the new build only
    new = build_empty()
    assert [entry.key for entry in cache.entries(builds)] == [new.key]
    assert old != new.key
    monkeypatch.setenv(cache.MAX_SIZE_ENV, "0")  # even a zero cap keeps the build just made
    assert build_empty(parameters={"P": 1}).compiled
    assert len(cache.entries(builds)) == 1


# ------------------------------------------------------------- accel cache


def test_accel_cache_shows_and_clears(fresh_cache, capsys):
    assert main(["cache"]) == 0  # no cache yet: nothing created, nothing to list
    assert "0 builds" in capsys.readouterr().out and not fresh_cache.exists()
    builds = fresh_cache / "builds"
    busy = fake_entry(builds, 1, age_s=60)
    recent = fake_entry(builds, 2, age_s=3600, toplevel="fifo_harness_clocked")
    old = fake_entry(builds, 3, age_s=10 * 86400)
    (builds / old / "top").write_bytes(b"truncated")
    (builds / f".tmp-{4:024x}-abcd").mkdir()
    (builds / f"{5:024x}.failed.log").write_text("%Error: ...\n")
    held = hold_lock(builds, busy, shared=True)
    try:
        for argv in (["cache"], ["cache", "show"]):
            assert main(argv) == 0
            out = capsys.readouterr().out
            assert f"build cache {builds}" in out and "3 builds" in out and "4 GB" in out
            assert "1 stale temporary" in out
            for key in (busy, recent, old):
                assert key in out
            assert "fifo_harness_clocked" in out
            assert "in use" in out and "damaged" in out and "ok" in out
            assert out.index(busy) < out.index(recent) < out.index(old)  # most recent first

        assert main(["cache", "clear", "--older-than", "5"]) == 0
        out = capsys.readouterr().out
        assert "removed 1 build last used over 5 days ago and 1 stale temporary" in out
        assert {entry.key for entry in cache.entries(builds)} == {busy, recent}
        assert (builds / f"{5:024x}.failed.log").exists()  # not 5 days old

        assert main(["cache", "clear"]) == 0
        out = capsys.readouterr().out
        assert "removed 1 build (" in out and "kept 1 in use" in out
        assert [entry.key for entry in cache.entries(builds)] == [busy]
        assert sorted(p.name for p in builds.iterdir()) == [busy, f"{busy}.lock"]
    finally:
        held.close()
    assert main(["cache", "clear"]) == 0
    assert "removed 1 build" in capsys.readouterr().out
    assert list(builds.iterdir()) == []


# ------------------------------------------------------------- bad settings


def _one_line_error(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # a usage error, from argparse
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("accel"), err
    assert "error: " in err and "Traceback" not in err
    return err


def test_a_cache_that_is_not_a_usable_directory_is_a_config_error(tmp_path, monkeypatch,
                                                                  capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for setting in (a_file, a_file / "below"):
        monkeypatch.setenv(cache.CACHE_ENV, str(setting))
        verilog = to_verilog(StreamFIFO(8, 2), "stream_fifo")
        start = time.perf_counter()
        with pytest.raises(ConfigError, match="ACCEL_CACHE"):
            runner.build(verilog, "stream_fifo")
        assert time.perf_counter() - start < 1  # at once, before Verilator
        with pytest.raises(ConfigError, match="ACCEL_CACHE"):
            check_lint(EMPTY, "m")  # the lint verdict cache lives there too
        for argv in (["cache"], ["cache", "clear"]):
            assert "ACCEL_CACHE" in _one_line_error(capsys, argv)
    if os.geteuid() != 0:  # root may write anywhere
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o500)
        monkeypatch.setenv(cache.CACHE_ENV, str(read_only))
        with pytest.raises(ConfigError, match="not writable"):
            runner.build(EMPTY, "m", hdl_clock=None, public="all")


@pytest.mark.parametrize("name, value", [
    (cache.MAX_SIZE_ENV, "lots"), (cache.MAX_SIZE_ENV, "-1"), (cache.LOCK_TIMEOUT_ENV, "nan"),
    (cache.LOCK_TIMEOUT_ENV, "-5")])
def test_bad_cache_settings_are_config_errors(name, value, fresh_cache, monkeypatch, capsys):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        build_empty()
    if name == cache.MAX_SIZE_ENV:
        assert name in _one_line_error(capsys, ["cache"])


def test_clear_older_than_must_be_non_negative(fresh_cache, capsys):
    assert "--older-than" in _one_line_error(capsys, ["cache", "clear", "--older-than", "-1"])
    assert "invalid float" in _one_line_error(capsys, ["cache", "clear", "--older-than", "x"])
