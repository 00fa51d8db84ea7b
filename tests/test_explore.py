"""accel explore: spec validation, the store's contents, resuming after a real SIGKILL of the
client, a worker killed mid-sweep, the searches' determinism and the Pareto front."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from accel.cli import main

ROOT = Path(__file__).resolve().parents[1]

# 72 points on 150 test images: a few seconds on 2 workers, long enough to be killed mid-sweep
SWEEP = """\
model: mlp-sparse
arch: eie
images: 150
parameters:
  pes: [2, 4, 8]
  queue_depth: [2, 4, 8]
  on_chip_kib: [null, 4]
compression:
  sparsity: {fc0: [null, 0.95]}
  codebook_size: [16, 8]
"""
SWEEP_POINTS = 72


def write_spec(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def stored(store: Path) -> dict[str, dict]:
    """key -> {status, result} of every row (read-only; fails on a duplicate key)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, status, result, error FROM points").fetchall()
    finally:
        db.close()
    keys = [row[0] for row in rows]
    assert len(keys) == len(set(keys)), "a point is stored twice"
    return {key: {"status": status, "result": None if result is None else json.loads(result),
                  "error": error} for key, status, result, error in rows}


def row_count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def sweep_command(spec: Path, store: Path, out: Path, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "accel.cli", "explore", str(spec), "--store", str(store),
            "--out", str(out), "--workers", str(workers)]


def start_sweep(command: list[str], log: Path) -> subprocess.Popen:
    # its own session: the test can kill the whole process group if anything is left over
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=log.parent)


def wait_for_rows(proc: subprocess.Popen, store: Path, rows: int, log: Path,
                  timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while row_count(store) < rows:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {rows} rows: "
                        f"{log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {rows} rows after {timeout:.0f} s")
        time.sleep(0.02)


def reap(proc: subprocess.Popen, family: list[psutil.Process]) -> None:
    """Kill and reap whatever of the sweep's process group is left (the test's own cleanup)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)
    for child in family:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run once, uninterrupted, in this process (a LocalCluster of 2 workers)."""
    from accel.explore import run_sweep

    tmp = tmp_path_factory.mktemp("reference")
    spec = write_spec(tmp, SWEEP)
    outcome = run_sweep(spec, store=tmp / "store.sqlite", out_dir=tmp / "out", workers=2,
                        progress=False)
    return outcome, stored(tmp / "store.sqlite")


# ------------------------------------------------------------------------- spec validation

BAD_SPECS = [
    ("model: mlp-sparse\narch: eie\nparamters: {pes: [2]}\n", "unknown key 'paramters'"),
    ("arch: eie\n", "model: missing"),
    ("model: no-such-model\narch: eie\n", "neither a shipped model"),
    ("model: mlp-sparse\narch: tpu\n", "unknown architecture 'tpu'"),
    ("model: mlp-sparse\narch: eie\nparameters: {pe: [2]}\n",
     "unknown key 'pe'; it takes pes, queue_depth, sparse_word_bits, loadable_weights, sparse_capacity, on_chip_kib"),
    ("model: mlp-sparse\narch: eie\nparameters: {pes: [2, four]}\n",
     "parameters.pes[1]: must be an integer, got 'four'"),
    ("model: mlp-sparse\narch: eie\nparameters: {pes: [2, 2]}\n", "listed twice"),
    ("model: mlp-sparse\narch: eie\nparameters: {pes: []}\n", "must be a non-empty list"),
    ("model: mlp-sparse\narch: eie\nparameters: {pes: [4, 0]}\n",
     "parameters.pes[1] = 0: --pes must be a positive integer"),
    ("model: mlp-sparse\narch: eie\nparameters: {sparse_word_bits: [64, 24]}\n",
     "parameters.sparse_word_bits[1] = 24"),
    ("model: mlp-sparse\narch: eie\nparameters: {on_chip_kib: [-1]}\n", "non-negative"),
    ("model: mlp-sparse\narch: eie\ncompression: {sparsity: [1.5]}\n", "in [0, 1)"),
    ("model: mlp-sparse\narch: eie\ncompression: {sparsity: {fc9: [0.9]}}\n",
     "unknown key 'fc9'; it takes fc0, fc1, fc2"),
    ("model: mlp-sparse\narch: eie\ncompression: {codebook_size: [1]}\n", "from 2 to"),
    ("model: bnn-mlp\narch: finn\ncompression: {sparsity: [0.5]}\n",
     "no layers with integer, non-binary weights"),
    ("model: bnn-mlp\narch: finn\nparameters: {target_fps: [1.0e+5, -3]}\n",
     "parameters.target_fps[1] = -3.0"),
    ("model: mlp-sparse\narch: eie\nsearch: {method: anneal}\n", "must be one of grid, random"),
    ("model: mlp-sparse\narch: eie\nsearch: {method: random}\n", "search.samples: missing"),
    ("model: mlp-sparse\narch: eie\nsearch: {method: grid, samples: 3}\n",
     "unknown key 'samples'"),
    ("model: mlp-sparse\narch: eie\nobjectives: [energy, area]\n", "unknown objective 'area'"),
    ("model: mlp-sparse\narch: eie\nimages: 100000\n", "images: must be from 1 to 359"),
    ("model: mlp-sparse\narch: eie\ndata: train\n", "must be one of test, validation"),
    ("model: mlp-sparse\narch: eie\nparameters: {pes: [2\n", "not valid YAML"),
    ("a: &x [1, 2]\nb: *x\n", "aliases"),
    ("- model\n", "a sweep spec is a mapping"),
]


@pytest.mark.parametrize("text, message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_spec_errors_are_one_line_and_exit_2(tmp_path, capsys, text, message):
    spec = write_spec(tmp_path, text)
    assert main(["explore", str(spec), "--store", str(tmp_path / "s.sqlite"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"accel: error: {spec}: "), err
    assert message in err, err
    assert not (tmp_path / "s.sqlite").exists()  # nothing written before the spec is valid


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be a positive integer"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sets the size"),
    (["--scheduler", "localhost"], "a Dask scheduler address such as tcp://HOST:8786"),
])
def test_cluster_option_errors(tmp_path, capsys, args, message):
    spec = write_spec(tmp_path, "model: mlp-sparse\narch: eie\n")
    assert main(["explore", str(spec), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_store_that_is_not_sqlite_is_one_line(tmp_path, capsys):
    spec = write_spec(tmp_path, "model: mlp-sparse\narch: eie\nimages: 10\n")
    store = tmp_path / "notes.txt"
    store.write_text("not a database, " * 100)
    assert main(["explore", str(spec), "--store", str(store), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a usable SQLite results store" in err, err


def test_validation_split_is_accel_trains():
    common = pytest.importorskip("accel.train.common")
    from accel.explore.worker import evaluation_data
    from accel.nn import load

    network = load("mlp")
    inputs, labels = evaluation_data(network, "validation", None)
    held = common.digits_data(validation=True)
    assert np.array_equal(inputs, held.x_eval) and np.array_equal(labels, held.y_eval)


# --------------------------------------------------------------- points, compression, front

def test_random_search_is_seeded_and_distinct(tmp_path):
    from accel.explore.spec import load_spec, point_key

    text = SWEEP + "search: {method: random, samples: 20, seed: 3}\n"
    first = load_spec(write_spec(tmp_path, text)).points()
    again = load_spec(write_spec(tmp_path, text, "again.yaml")).points()
    other = load_spec(write_spec(tmp_path, text.replace("seed: 3", "seed: 4"), "o.yaml"))
    assert first == again and len(first) == 20
    assert len({point_key(p, "v", "m") for p in first}) == 20
    assert other.points() != first


def test_compression_prunes_by_magnitude_and_shares():
    from accel.explore.compression import compress
    from accel.nn import load

    network = load("mlp-sparse")
    compressed, summary = compress(network, {"sparsity": {"fc0": 0.95, "fc2": 0.5},
                                             "codebook_size": 8, "seed": 0})
    fc0 = compressed.layer("fc0").weights
    assert summary["fc0"]["kept"] == np.count_nonzero(fc0) == round(0.05 * fc0.size)
    kept = np.abs(fc0[fc0 != 0]).min()
    original = network.layer("fc0").weights
    # the largest magnitudes survive (sharing moves values to centroids, so compare counts)
    assert np.count_nonzero(np.abs(original) > 2 * kept) <= np.count_nonzero(fc0)
    assert summary["fc2"]["sparsity"] == pytest.approx(0.75)  # already sparser: unchanged
    for name in ("fc0", "fc1", "fc2"):
        assert summary[name]["codebook_entries"] <= 8
    unchanged, _ = compress(network, None)
    assert unchanged is network


def test_pareto_mask_equals_brute_force():
    from accel.explore.pareto import pareto_mask

    rng = np.random.default_rng(0)
    values = np.round(rng.random((300, 3)), 1)  # many ties
    brute = [not any(np.all(other <= row) and np.any(other < row) for other in values)
             for row in values]
    assert pareto_mask(values).tolist() == brute


# ------------------------------------------------------------------------------ the store

def test_grid_sweep_stores_every_point_once(reference, tmp_path):
    from accel import __version__
    from accel.explore.spec import canonical_json, load_spec, point_key

    outcome, rows = reference
    spec = load_spec(outcome.spec.path)
    keys = {point_key(p, __version__, spec.model_sha256) for p in spec.points()}
    assert len(keys) == SWEEP_POINTS
    assert set(rows) == keys
    assert all(row["status"] == "ok" for row in rows.values())
    assert outcome.computed == SWEEP_POINTS and outcome.skipped == 0
    db = sqlite3.connect(outcome.store)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for key, point in db.execute("SELECT key, point FROM points"):
        assert point == canonical_json(json.loads(point))  # the canonical text
        assert point_key(json.loads(point), __version__, spec.model_sha256) == key
    db.close()
    # the results are what `accel estimate` reports for the point
    sample = next(r["result"] for r in rows.values() if r["result"]["num_pes"] == 4)
    assert sample["source"] == "cycle model" and sample["images"] == 150
    assert sample["energy_uj_per_inference"] > 0 and 0.9 < sample["accuracy"] <= 1
    # the outputs
    data = json.loads((outcome.out_dir / "pareto.json").read_text())
    assert data["points_total"] == SWEEP_POINTS == data["points_ok"]
    assert data["front"] and {e["key"] for e in data["front"]} <= keys
    for name in ("pareto_energy_accuracy.png", "pareto_energy_latency.png",
                 "layers_energy.png"):
        assert (outcome.out_dir / name).stat().st_size > 1000
    # run again: every point is found, no cluster is started, the front is the same
    from accel.explore import run_sweep

    again = run_sweep(outcome.spec.path, store=outcome.store, out_dir=tmp_path / "again",
                      progress=False)
    assert again.computed == 0 and again.skipped == SWEEP_POINTS and again.where == ""
    assert stored(outcome.store) == rows
    assert json.loads((tmp_path / "again" / "pareto.json").read_text())["front"] == \
        data["front"]


def test_resume_after_sigkill_of_the_client_then_of_a_worker(reference, tmp_path):
    """The first run's client is SIGKILLed mid-sweep (its workers exit with it); the same
    command run again computes only the rest, and finishes although one of its workers is
    SIGKILLed mid-sweep too: every point stored exactly once, results equal to the
    uninterrupted run."""
    _, expected = reference
    spec = write_spec(tmp_path, SWEEP)
    store, out = tmp_path / "store.sqlite", tmp_path / "out"
    command = sweep_command(spec, store, out)
    log = tmp_path / "first.log"
    proc = start_sweep(command, log)
    family: list[psutil.Process] = []
    try:
        wait_for_rows(proc, store, 3, log)
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len([p for p in family if "spawn_main" in " ".join(p.cmdline())]) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # the LocalCluster's worker processes notice their parent is gone and exit
        _, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, f"left running after the client's SIGKILL: {alive}"
    finally:
        reap(proc, family)
    done = len(stored(store))
    assert 0 < done < SWEEP_POINTS - 10, f"{done} rows: the kill was not mid-sweep"

    log = tmp_path / "rerun.log"
    proc = start_sweep(command, log)
    family = []
    try:
        wait_for_rows(proc, store, done + 3, log)
        family = psutil.Process(proc.pid).children(recursive=True)
        workers = [p for p in family if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        workers[0].send_signal(signal.SIGKILL)
        at_kill = row_count(store)
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        reap(proc, family)
    assert at_kill < SWEEP_POINTS, "the sweep had finished before the worker was killed"
    output = log.read_text()
    assert f"{done} already in" in output and f"computed {SWEEP_POINTS - done} on" in output, \
        output[-2000:]
    assert stored(store) == expected  # every point exactly once, equal to the uninterrupted run


# ---------------------------------------------------------------------------------- NSGA-II

NSGA2 = """\
model: mlp-sparse
arch: eie
images: 40
parameters:
  pes: [1, 2, 4, 8, 16]
  queue_depth: [1, 2, 4, 8]
compression:
  sparsity: {fc0: [null, 0.94, 0.96], fc1: [null, 0.94, 0.96]}
search: {method: nsga2, trials: 24, population: 6, seed: 1}
"""


class _Interrupt(Exception):
    pass


def _in_process_compute(limit=None):
    """Runner.compute evaluating in this process (the search logic without a cluster); raises
    after ``limit`` stored points, like a kill."""
    from accel.explore.spec import canonical_json
    from accel.explore.worker import evaluate_point

    def compute(self, points, on_done=None):
        for key, point in points.items():
            if limit is not None and self.computed >= limit:
                raise _Interrupt
            outcome = evaluate_point(point, str(self.spec.model_path), self.spec.model_sha256)
            if self.store.add(key, canonical_json(point), self.version,
                              self.spec.model_sha256, outcome):
                self.computed += 1
            if on_done is not None:
                on_done(key)
    return compute


def test_nsga2_is_deterministic_and_resumes(tmp_path, monkeypatch):
    from accel.explore import run_sweep
    from accel.explore import sweep as sweep_module

    spec = write_spec(tmp_path, NSGA2)
    monkeypatch.setattr(sweep_module._Runner, "compute", _in_process_compute())
    whole = run_sweep(spec, store=tmp_path / "a.sqlite", out_dir=tmp_path / "a",
                      progress=False)
    assert whole.total == 24 and 6 < whole.distinct <= 24
    assert whole.computed == whole.distinct
    monkeypatch.setattr(sweep_module._Runner, "compute", _in_process_compute(limit=5))
    with pytest.raises(_Interrupt):
        run_sweep(spec, store=tmp_path / "b.sqlite", out_dir=tmp_path / "b", progress=False)
    assert len(stored(tmp_path / "b.sqlite")) == 5
    monkeypatch.setattr(sweep_module._Runner, "compute", _in_process_compute())
    resumed = run_sweep(spec, store=tmp_path / "b.sqlite", out_dir=tmp_path / "b",
                        progress=False)
    assert resumed.skipped == 5 and resumed.computed == whole.distinct - 5
    assert stored(tmp_path / "b.sqlite") == stored(tmp_path / "a.sqlite")
    front = {e["key"]: e["objectives"] for e in whole.report["front"]}
    assert {e["key"]: e["objectives"] for e in resumed.report["front"]} == front


# ------------------------------------------------------------- slow: an external scheduler

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dask_cluster(port: int, log: Path) -> list[subprocess.Popen]:
    """``dask scheduler`` on ``port`` and ``dask worker`` with 2 processes, as a user starts
    them (each in its own session, so the test can kill them whole)."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    out = open(log, "a")
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    workers = subprocess.Popen(
        [dask, "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "2", "--nthreads", "1",
         "--no-dashboard"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    return [scheduler, workers]


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkill_of_an_external_scheduler(reference, tmp_path):
    """--scheduler: the scheduler SIGKILLed mid-sweep ends the run with one line; with the
    cluster started again, the same command finishes the sweep, every point exactly once."""
    _, expected = reference
    spec = write_spec(tmp_path, SWEEP)
    store, port = tmp_path / "store.sqlite", free_port()
    command = [sys.executable, "-m", "accel.cli", "explore", str(spec), "--store", str(store),
               "--out", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"]
    cluster = start_dask_cluster(port, tmp_path / "cluster.log")
    log = tmp_path / "first.log"
    proc = start_sweep(command, log)
    try:
        wait_for_rows(proc, store, 3, log)
        cluster[0].send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) == 2
    finally:
        reap(proc, [])
        stop(cluster)
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("accel: error: the Dask cluster cancelled") and \
        "run the same command again to resume" in last, log.read_text()[-2000:]
    done = len(stored(store))
    assert 0 < done < SWEEP_POINTS
    cluster = start_dask_cluster(port, tmp_path / "cluster.log")
    try:
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               cwd=tmp_path)
    finally:
        stop(cluster)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{done} already in" in rerun.stdout and f"tcp://127.0.0.1:{port}" in rerun.stdout
    assert stored(store) == expected


# ------------------------------------------------------------------------- slow: examples

@pytest.mark.slow
def test_shipped_eie_example_end_to_end(tmp_path):
    """examples/explore_eie.yaml through the console script: a few hundred points, the front."""
    from accel.explore.spec import load_spec

    spec = load_spec(ROOT / "examples" / "explore_eie.yaml")
    assert 200 <= spec.total <= 500
    command = sweep_command(ROOT / "examples" / "explore_eie.yaml", tmp_path / "s.sqlite",
                            tmp_path / "out")
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = stored(tmp_path / "s.sqlite")
    assert len(rows) == spec.total and all(r["status"] == "ok" for r in rows.values())
    data = json.loads((tmp_path / "out" / "pareto.json").read_text())
    assert "Pareto front" in run.stdout and data["front"]
    best = min(data["front"], key=lambda e: e["objectives"]["energy"])
    accurate = max(data["front"], key=lambda e: e["objectives"]["accuracy"])
    assert best["objectives"]["energy"] < accurate["objectives"]["energy"] or best is accurate


@pytest.mark.slow
def test_nsga2_on_dask_and_the_finn_example(tmp_path):
    from accel.explore import run_sweep

    spec = write_spec(tmp_path, NSGA2.replace("trials: 24", "trials: 30"))
    first = run_sweep(spec, store=tmp_path / "n.sqlite", out_dir=tmp_path / "n",
                      progress=False)
    assert first.where and first.computed == first.distinct and not first.task_failures
    again = run_sweep(spec, store=tmp_path / "n.sqlite", out_dir=tmp_path / "n",
                      progress=False)
    assert again.computed == 0 and again.skipped == first.distinct
    finn = run_sweep(ROOT / "examples" / "explore_finn.yaml", store=tmp_path / "f.sqlite",
                     out_dir=tmp_path / "f", progress=False)
    assert finn.computed == finn.total == 22 and finn.report["points_failed"] == 0
    assert finn.report["front"]
    # the resource model's LUTs are an objective: the fully folded design, the smallest, is
    # on the front, and no front point has fewer LUTs
    luts = [entry["objectives"]["luts"] for entry in finn.report["front"]]
    smallest = [entry for entry in finn.report["front"]
                if entry["point"]["options"].get("target_fps") is None]
    assert smallest and min(luts) == min(e["objectives"]["luts"] for e in smallest) > 0


@pytest.mark.slow
def test_the_yodann_example_sweeps_the_engine_size(tmp_path):
    """examples/explore_yodann.yaml: 72 engine sizes for bwn-cnn on 16 images. Its premise is
    checked too: the engine's cycles and energy per inference do not depend on which images
    run, and smaller SoP units (k_max 3 for 3x3 kernels) cost less energy and only their
    shallower trees' pipeline registers' cycles less per pass."""
    from accel.explore import run_sweep

    outcome = run_sweep(ROOT / "examples" / "explore_yodann.yaml", store=tmp_path / "y.sqlite",
                        out_dir=tmp_path / "y", progress=False)
    assert outcome.computed == outcome.total == 72 and outcome.report["points_failed"] == 0
    with sqlite3.connect(tmp_path / "y.sqlite") as db:
        rows = db.execute("SELECT point, result FROM points").fetchall()
    results = {tuple(sorted(json.loads(point)["options"].items())): json.loads(result)
               for point, result in rows}
    assert len(results) == 72
    from accel.hw.yodann.mapping import EngineConfig, map_network, passes
    from accel.hw.yodann.rtl import sop_pipeline_registers
    from accel.nn import load

    network = load("bwn-cnn")
    for options, result in results.items():
        chosen = dict(options)
        if chosen["k_max"] == 7:
            small = results[tuple(sorted({**chosen, "k_max": 3}.items()))]
            # the same passes; each waits for the 7x7 trees' extra pipeline registers
            config = EngineConfig(**chosen)
            deeper = (sop_pipeline_registers(config)
                      - sop_pipeline_registers(EngineConfig(**{**chosen, "k_max": 3})))
            steps = len(passes(map_network(network, config)))
            assert result["cycles_per_inference"] == \
                small["cycles_per_inference"] + deeper * steps
            assert small["energy_uj_per_inference"] < result["energy_uj_per_inference"]
    figures = []
    for images in (16, 359):
        path = tmp_path / f"e{images}.json"
        assert main(["estimate", "--arch", "yodann", "--n-out", "16", "--w-max", "4",
                     "bwn-cnn", "--images", str(images), "--json", str(path)]) == 0
        estimate = json.loads(path.read_text())
        figures.append((estimate["cycles_per_inference"], estimate["energy_uj_per_inference"]))
    assert figures[0] == figures[1]


@pytest.mark.slow
def test_verify_replays_front_points_in_verilator(small_sparse_mlp, tmp_path):
    """--verify N: the first N front points run in Verilator as Dask tasks; bit-exact, and
    cycles, latency, events, energy and accuracy equal to the stored estimates."""
    from accel.explore import run_sweep
    from accel.explore.sweep import verification_failed

    spec = write_spec(tmp_path, f"model: {small_sparse_mlp}\narch: eie\nimages: 20\n"
                                "parameters: {pes: [1, 3], queue_depth: [2, 4]}\n")
    outcome = run_sweep(spec, store=tmp_path / "s.sqlite", out_dir=tmp_path / "out",
                        progress=False, verify=2)
    verified = outcome.report["verified"]
    assert len(verified) == 2 and not verification_failed(outcome), verified
    assert json.loads((tmp_path / "out" / "pareto.json").read_text())["verified"] == verified
    # accel simulate --point STORE:ID replays one stored point (its build is cached by now)
    store, row_id = tmp_path / "s.sqlite", verified[0]["id"]
    assert main(["simulate", "--point", f"{store}:{row_id}"]) == 0
    # a stored estimate that the RTL does not reproduce is reported and exits 1
    with sqlite3.connect(store) as db:
        (result,) = db.execute("SELECT result FROM points WHERE id = ?", (row_id,)).fetchone()
        tampered = json.loads(result)
        tampered["energy_uj_per_inference"] *= 1.01
        db.execute("UPDATE points SET result = ? WHERE id = ?", (json.dumps(tampered), row_id))
    assert main(["simulate", "--point", f"{store}:{row_id}"]) == 1


def _store_with(tmp_path, point: dict, model_sha256: str, outcome: dict) -> Path:
    from accel.explore.spec import canonical_json, point_key
    from accel.explore.store import Store

    path = tmp_path / "points.sqlite"
    with Store(path) as store:
        store.add(point_key(point, "test", model_sha256), canonical_json(point), "test",
                  model_sha256, outcome)
    return path


def test_simulate_point_refusals_are_one_line(tmp_path, capsys):
    from accel.explore.spec import file_sha256
    from accel.nn.zoo import model_path

    point = {"model": "mlp-sparse", "arch": "eie", "options": {"pes": 2}, "clock_mhz": 200.0,
             "tech": "45nm", "data": "test", "images": 4}
    sha = file_sha256(model_path("mlp-sparse"))
    failed = _store_with(tmp_path, point, sha, {"status": "error", "error": "too big"})
    cases = [
        (["--point", str(failed)], "--point takes STORE:ID"),
        (["--point", f"{tmp_path / 'none.sqlite'}:1"], "no store file"),
        (["--point", f"{failed}:7"], "has no point 7"),
        (["--point", f"{failed}:1"], "failed with: too big"),
        (["--point", f"{failed}:1", "--arch", "eie"], "leave out --arch"),
        (["--point", f"{failed}:1", "--images", "3"], "leave out --images"),
    ]
    for args, message in cases:
        assert main(["simulate", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    # a file that is not a store is refused and left exactly as it was (opened read-only)
    plain = tmp_path / "plain.sqlite"
    with sqlite3.connect(plain) as db:
        db.execute("CREATE TABLE t (x)")
    before = plain.read_bytes()
    assert main(["simulate", "--point", f"{plain}:1"]) == 2
    assert "not a" in capsys.readouterr().err
    assert plain.read_bytes() == before and not Path(f"{plain}-wal").exists()
    for flag in (["--clock-mhz", "5"], ["--tech", "65nm"], ["--allow-large-design"]):
        assert main(["simulate", "--point", f"{failed}:1", *flag]) == 2
        assert f"leave out {flag[0]}" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    wrong_model = _store_with(other, point, "0" * 64, {"status": "ok", "result": "{}"})
    assert main(["simulate", "--point", f"{wrong_model}:1"]) == 2
    assert "is not the model point 1 was computed with" in capsys.readouterr().err
