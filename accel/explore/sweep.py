"""Running a sweep: the client that fans points out over Dask and alone writes the store.

1. The spec is validated (``accel.explore.spec``) and its points enumerated: the grid, the
   seeded random sample, or NSGA-II's trials generation by generation.
2. The keys already in the store are subtracted; only the rest is computed.
3. Each remaining point is one task (``accel.explore.worker.evaluate_point``) on a Dask cluster:
   by default a ``LocalCluster`` of ``workers`` processes (one thread each) on this machine, or
   the cluster whose scheduler ``scheduler`` names (``tcp://HOST:8786``; its workers need accel
   installed and the model file at the same path). At most a window of tasks is in flight.
4. Each result is stored, and committed, as it arrives (``accel.explore.store``), so a kill of
   the client, of a worker or of the scheduler loses no finished point and a rerun of the same
   command computes only what is missing. A worker that dies has its task run elsewhere by the
   scheduler (``distributed.scheduler.allowed-failures``, default 3); a task that raises (a
   bug: a point's own problems are returned as data) is retried once (``retries=1``).
5. The front is computed over the sweep's rows of the store (``accel.explore.pareto``):
   ``pareto.json`` and the plots go to ``out_dir``.

NSGA-II (Optuna's ``NSGAIISampler``, seeded) asks a generation of ``population`` trials at a
time, evaluates them in parallel and tells their objectives in trial order, so the same spec
asks the same trials on every run: a rerun replays the stored generations from the store and
continues where the killed run stopped. A point that failed is told as a failed trial.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path

from accel.errors import ConfigError
from accel.explore.spec import OBJECTIVES, Spec, canonical_json, load_spec, point_key
from accel.explore.store import Store

DEFAULT_WORKERS = 2
CONNECT_TIMEOUT_S = 10
WINDOW_PER_WORKER = 8


@dataclass
class SweepOutcome:
    spec: Spec
    store: Path
    out_dir: Path
    total: int  # points of the grid or sample, trials of NSGA-II
    distinct: int  # distinct points (keys) among them
    skipped: int  # found in the store
    computed: int  # stored by this run
    seconds: float
    where: str  # the cluster the points ran on ("" when nothing was computed)
    task_failures: list[str] = field(default_factory=list)  # bugs: not stored, rerun retries
    report: dict = field(default_factory=dict)  # pareto.json
    written: list[Path] = field(default_factory=list)


def _version() -> str:
    from accel import __version__

    return __version__


def _check_workers(workers, scheduler) -> int:
    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers sets the size of a local cluster; with --scheduler "
                              "the cluster has the workers it has")
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise ConfigError(f"--scheduler takes a Dask scheduler address such as "
                              f"tcp://HOST:8786, got {scheduler!r}")
        return 0
    workers = DEFAULT_WORKERS if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    return workers


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A ``distributed.Client``: of a new ``LocalCluster`` of ``workers`` processes, or of the
    cluster at ``scheduler``. Both are closed on the way out."""
    from distributed import Client, LocalCluster

    # distributed logs what goes wrong (a lost scheduler, a restarted worker) as tracebacks;
    # the sweep reports it in one line instead (and keeps going where it can)
    # (dask's logging config gives some of them levels of their own: set each)
    names = ["distributed"] + [name for name in logging.root.manager.loggerDict
                               if name.startswith("distributed.")]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        with _client(scheduler, workers, Client, LocalCluster) as made:
            yield made
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _client(scheduler, workers, Client, LocalCluster):  # noqa: N803 - the classes
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} "
                              f"({type(exc).__name__}: {exc})") from None
        try:
            yield client, f"the cluster at {scheduler}"
        finally:
            client.close()
        return
    # no dashboard, and the scheduler's HTTP routes (health, metrics) on a free port of the
    # loopback interface rather than 8787: several sweeps may run at once
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", scheduler_port=0,
                           dashboard_address="127.0.0.1:0",
                           scheduler_kwargs={"dashboard": False},
                           silence_logs=logging.CRITICAL)
    try:
        client = Client(cluster)
        try:
            yield client, f"{workers} local worker process{'es' * (workers > 1)}"
        finally:
            client.close()
    finally:
        cluster.close()


class _Runner:
    """Submits points, stores results as they arrive, advances the progress bar."""

    def __init__(self, spec: Spec, store: Store, scheduler, workers, progress):
        self.spec, self.store = spec, store
        self.scheduler, self.workers = scheduler, workers
        self.progress, self.task = progress, None
        self.version = _version()
        self.stack = contextlib.ExitStack()
        self.client = None
        self.where = ""
        self.computed = 0
        self.failures: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stack.close()

    def _client(self):
        if self.client is None:
            self.client, self.where = self.stack.enter_context(
                dask_client(self.scheduler, self.workers))
        return self.client

    def key(self, point: dict) -> str:
        return point_key(point, self.version, self.spec.model_sha256)

    def compute(self, points: dict[str, dict], on_done=None) -> None:
        """Evaluate ``points`` (key -> point, none of them stored) and store each result;
        ``on_done(key)`` after each point is resolved (stored or failed)."""
        if not points:
            return
        from distributed import as_completed

        client = self._client()
        window = WINDOW_PER_WORKER * max(1, sum(client.nthreads().values()))
        todo = iter(points.items())
        running = {}
        completed = as_completed()

        def submit_next() -> bool:
            item = next(todo, None)
            if item is None:
                return False
            key, point = item
            future = client.submit(_task(), point, str(self.spec.model_path),
                                   self.spec.model_sha256, key=f"accel-explore-{key}",
                                   pure=False, retries=1)
            running[future.key] = key
            completed.add(future)
            return True

        for _ in range(window):
            if not submit_next():
                break
        for future in completed:
            key = running.pop(future.key)
            try:
                outcome = future.result()
            except CancelledError as exc:
                raise ConfigError(f"the Dask cluster cancelled the sweep's tasks ({exc}); "
                                  f"{self.computed} points were stored by this run: run the "
                                  "same command again to resume") from None
            except Exception as exc:  # noqa: BLE001 - a bug in a task: reported, not stored
                self.failures.append(f"{_label(points[key])}: {type(exc).__name__}: {exc}")
            else:
                if outcome["status"] == "fatal":
                    raise ConfigError(outcome["error"])
                if self.store.add(key, canonical_json(points[key]), self.version,
                                  self.spec.model_sha256, outcome):
                    self.computed += 1
            if on_done is not None:
                on_done(key)
            submit_next()


    def verify(self, entries: list[dict], on_done=None) -> list[dict]:
        """Replay the stored points ``entries`` (rows of the store) in Verilator, one Dask
        task each (the builds spread over the workers); [{id, key, label, ...outcome}]."""
        if not entries:
            return []
        from distributed import as_completed

        from accel.explore.worker import verify_point

        client = self._client()
        futures = {client.submit(verify_point, row["point"], str(self.spec.model_path),
                                 self.spec.model_sha256, row["result"],
                                 key=f"accel-verify-{row['key']}", pure=False): row
                   for row in entries}
        replayed = []
        for future in as_completed(futures):
            row = futures[future]
            try:
                outcome = future.result()
            except CancelledError as exc:
                raise ConfigError(f"the Dask cluster cancelled the Verilator replays ({exc}); "
                                  "the sweep's points are stored: run the same command again"
                                  ) from None
            except Exception as exc:  # noqa: BLE001 - a bug: reported with the point
                outcome = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            replayed.append({"id": row["id"], "key": row["key"],
                             "label": _label(row["point"]), **outcome})
            if on_done is not None:
                on_done(row["key"])
        return sorted(replayed, key=lambda entry: entry["id"])


def _task():
    from accel.explore.worker import evaluate_point

    return evaluate_point


def _label(point: dict) -> str:
    from accel.explore.pareto import describe_point

    return describe_point(point)


def _progress(console, enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("- points/s" if not speed else f"{speed:.2f} points/s")

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=not enabled)


def _grid_or_random(spec: Spec, runner: _Runner, progress) -> tuple[list[str], int, int]:
    points = spec.points()
    keyed: dict[str, dict] = {}
    for point in points:
        keyed.setdefault(runner.key(point), point)
    done = runner.store.finished(keyed)
    pending = {key: point for key, point in keyed.items() if key not in done}
    task = progress.add_task(f"{spec.path.name}", total=len(keyed), completed=len(done))
    runner.compute(pending, on_done=lambda key: progress.advance(task))
    return list(keyed), len(points), len(done)


def _nsga2(spec: Spec, runner: _Runner, progress) -> tuple[list[str], int, int]:
    import warnings

    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    if not spec.dimensions:
        raise ConfigError(f"{spec.path}: search (nsga2): nothing to search (no parameters or "
                          "compression choices)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = spec.search
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.NSGAIISampler(population_size=search.population,
                                                seed=search.seed)
    directions = ["minimize" if OBJECTIVES[name][1] == "min" else "maximize"
                  for name in spec.objectives]
    study = optuna.create_study(directions=directions, sampler=sampler)
    distributions = {d.name: CategoricalDistribution(list(range(len(d.values))))
                     for d in spec.dimensions}
    task = progress.add_task(f"{spec.path.name} (NSGA-II)", total=search.trials)
    keys: dict[str, None] = {}
    skipped = 0
    asked = 0
    while asked < search.trials:
        batch = [study.ask(distributions)
                 for _ in range(min(search.population, search.trials - asked))]
        asked += len(batch)
        points = [spec.point({name: trial.params[name] for name in distributions})
                  for trial in batch]
        batch_keys = [runner.key(point) for point in points]
        unique = {key: point for key, point in zip(batch_keys, points)}
        done = runner.store.finished(unique)
        skipped += len({k for k in unique if k not in keys} & done)
        keys.update(dict.fromkeys(batch_keys))
        waiting = {key: batch_keys.count(key) for key in unique}
        progress.advance(task, sum(waiting[key] for key in done))
        runner.compute({k: p for k, p in unique.items() if k not in done},
                       on_done=lambda key: progress.advance(task, waiting[key]))
        rows = runner.store.rows(unique)
        for trial, key in zip(batch, batch_keys):
            row = rows.get(key)
            if row is None or row["status"] != "ok":
                study.tell(trial, state=TrialState.FAIL)
                continue
            from accel.explore.pareto import objective_value

            values = [objective_value(row["result"], name) for name in spec.objectives]
            if any(math.isnan(value) for value in values):  # no labels, say
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, values)
    return list(keys), search.trials, skipped


def run_sweep(spec: Spec | str | Path, *, store: str | Path | None = None,
              scheduler: str | None = None, workers: int | None = None,
              out_dir: str | Path | None = None, console=None, progress: bool = True,
              verify: int = 0) -> SweepOutcome:
    """Run (or resume) a sweep; see the module documentation. Defaults: the store
    ``<spec name>.sqlite`` and the outputs ``<spec name>-out/`` in the working directory.
    ``verify``: replay that many points of the front (the first by the first objective) in
    Verilator, as Dask tasks, and check each estimate was exact (``pareto.json``'s
    "verified")."""
    from rich.console import Console

    from accel.explore import pareto
    from accel.io import write_json

    workers = _check_workers(workers, scheduler)
    if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
        raise ConfigError(f"--verify takes a number of points (0 or more), got {verify!r}")
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    store_path = Path(store) if store is not None else Path(f"{spec.path.stem}.sqlite")
    out_dir = Path(out_dir) if out_dir is not None else Path(f"{spec.path.stem}-out")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create it ({exc.strerror or exc})") from None
    console = console or Console()
    start = time.perf_counter()
    with Store(store_path) as results, \
            _Runner(spec, results, scheduler, workers or None, None) as runner, \
            _progress(console, progress) as bar:
        if spec.search.method == "nsga2":
            keys, total, skipped = _nsga2(spec, runner, bar)
        else:
            keys, total, skipped = _grid_or_random(spec, runner, bar)
        found = results.rows(keys)
        rows = [found[key] for key in keys if key in found]
        version = _version()
        data = pareto.report(spec, rows, store_path, version)
        data["points_total"] = len(keys)
        if verify:
            chosen = [found[entry["key"]] for entry in data["front"][:verify]]
            task = bar.add_task("Verilator replays", total=len(chosen))
            data["verified"] = runner.verify(chosen, on_done=lambda key: bar.advance(task))
    written = [write_json(out_dir / "pareto.json", data)]
    written += pareto.plots(spec, rows, data, out_dir)
    return SweepOutcome(spec=spec, store=store_path, out_dir=out_dir, total=total,
                        distinct=len(keys), skipped=skipped, computed=runner.computed,
                        seconds=time.perf_counter() - start, where=runner.where,
                        task_failures=runner.failures, report=data, written=written)


def verification_failed(outcome: SweepOutcome) -> bool:
    """Whether a Verilator replay was not bit-exact or not equal to its stored estimate."""
    return any(entry["status"] != "ok" or not (entry["bit_exact"] and entry["agrees"]
                                               and entry["equal"])
               for entry in outcome.report.get("verified", []))


def replay_stored_point(reference: str, model_file: str | None = None) -> dict:
    """``accel simulate --point STORE:ID``: the stored point re-run in Verilator
    (``accel.explore.worker.verify_point``) and compared with the estimate stored for it.
    The model is the point's own (a shipped name, or a file: relative to the current directory,
    or given as ``model_file``); its sha256 must be the one the point was computed with."""
    from accel.explore.spec import file_sha256
    from accel.explore.store import read_row
    from accel.explore.worker import verify_point
    from accel.nn.zoo import model_path, shipped_models

    store_path, sep, row_text = reference.rpartition(":")
    if not sep or not store_path or not row_text.isdigit():
        raise ConfigError(f"--point takes STORE:ID (a store file and a point's id, e.g. "
                          f"sweep.sqlite:12), got {reference!r}")
    if not Path(store_path).is_file():
        raise ConfigError(f"--point: no store file {store_path}")
    row = read_row(store_path, int(row_text))
    if row["status"] != "ok":
        raise ConfigError(f"point {row['id']} of {store_path} has no estimate to check: it "
                          f"failed with: {row['error']}")
    name = row["point"]["model"]
    if model_file is not None:
        path = Path(model_file)
    elif name in shipped_models():
        path = model_path(name)
    else:
        path = Path(name)
    if not path.is_file():
        raise ConfigError(f"point {row['id']}'s model {name} is not a file here (the spec "
                          "names it relative to itself): give the file as MODEL")
    if file_sha256(path) != row["model_sha256"]:
        raise ConfigError(f"{path} is not the model point {row['id']} was computed with "
                          f"(sha256 {row['model_sha256'][:12]}...)")
    outcome = verify_point(row["point"], str(path), row["model_sha256"], row["result"])
    if outcome["status"] != "ok":
        raise ConfigError(f"point {row['id']}: {outcome['error']}")
    return {"id": row["id"], "label": _label(row["point"]), "model": str(path), **outcome}


def print_outcome(outcome: SweepOutcome, console) -> None:
    """What ``accel explore`` prints after the progress bar: the run in a line, failures, the
    front as a table, the files written."""
    from accel.explore.pareto import front_table

    data = outcome.report
    ran = (f"computed {outcome.computed} on {outcome.where}" if outcome.where
           else "nothing left to compute")
    console.print(f"{outcome.spec.path.name}: {outcome.distinct} distinct points"
                  + (f" of {outcome.total} NSGA-II trials" if outcome.spec.search.method
                     == "nsga2" else "")
                  + f"; {outcome.skipped} already in {outcome.store}, {ran} "
                  f"({outcome.seconds:.1f} s)", markup=False, highlight=False, soft_wrap=True)
    if data["points_failed"]:
        first = data["errors"][0]
        console.print(f"{data['points_failed']} points cannot be evaluated (stored, not "
                      f"retried); the first, id {first['id']} ({first['label']}): "
                      f"{first['error']}", markup=False, highlight=False, soft_wrap=True)
    if outcome.task_failures:
        console.print(f"{len(outcome.task_failures)} tasks failed (not stored: a rerun tries "
                      f"them again); the first: {outcome.task_failures[0]}", markup=False,
                      highlight=False, soft_wrap=True)
    if data["front"]:
        console.print(front_table(outcome.spec, data))
    if data.get("verified"):
        from rich.table import Table

        table = Table(title="front points replayed in Verilator",
                      caption="exact: outputs equal the golden model's; =model: RTL cycles, "
                              "events and energy equal the cycle model's; =stored: equal to "
                              "the stored estimate (cycles, latency, events, energy, accuracy)")
        for column in ("id", "configuration", "exact", "=model", "=stored", "s"):
            table.add_column(column, justify="left" if column == "configuration" else "right")
        for entry in data["verified"]:
            if entry["status"] != "ok":
                table.add_row(str(entry["id"]), entry["label"], "error", "-", "-", "-")
                console.print(f"id {entry['id']}: {entry['error']}", markup=False,
                              highlight=False, soft_wrap=True)
                continue
            table.add_row(str(entry["id"]), entry["label"],
                          *("yes" if entry[k] else "NO" for k in ("bit_exact", "agrees",
                                                                  "equal")),
                          f"{entry['seconds']:.1f}")
        console.print(table)
    for path in outcome.written:
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
