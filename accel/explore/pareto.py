"""The Pareto front of a sweep's finished points: the table, ``pareto.json`` and the plots.

A point is on the front when no other point is at least as good in every objective and better
in one (``accel.explore.spec.OBJECTIVES``: energy per inference, latency and throughput of the
cycle model, accuracy of the golden model on the spec's data). Points with equal objectives are
all kept.

``pareto.json`` (written whole or not at all):
  spec, store, model, model_sha256, arch, accel_version, objectives ([{name, key, direction}])
  points_total        points of the sweep (grid, sample or NSGA-II trials' distinct points)
  points_ok, points_failed   finished with a result / with an error (``errors``: the first few)
  front               [{id, key, label, objectives: {name: value}, point, compression}], by
                      energy (or the first objective)
Plots (PNG): ``pareto_energy_accuracy.png`` and ``pareto_energy_latency.png`` (every point grey,
the front highlighted) and, when the sweep compresses, ``layers_energy.png``: per-layer energy
of the front's lowest-energy point next to the point with the same architecture parameters and
the least compression in the sweep.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from accel.explore.spec import OBJECTIVES


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n x k, every column to minimize) that no other row dominates."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    keep = np.ones(n, dtype=bool)
    order = np.lexsort(values.T[::-1])  # by the first column, then the next: dominators first
    for position, i in enumerate(order):
        if not keep[i]:
            continue
        rest = order[position + 1:]
        rest = rest[keep[rest]]
        if rest.size == 0:
            continue
        dominated = np.all(values[i] <= values[rest], axis=1) & \
            np.any(values[i] < values[rest], axis=1)
        keep[rest[dominated]] = False
    return keep


def objective_value(result: dict, name: str) -> float:
    key, _, _, _ = OBJECTIVES[name]
    value = result.get(key)
    return float("nan") if value is None else float(value)


def describe_point(point: dict) -> str:
    """A point's swept choices in a few words (the table, the plots)."""
    parts = [f"{name}={_short(value)}" for name, value in point["options"].items()]
    if point.get("on_chip_kib") is not None:
        parts.append(f"on-chip {point['on_chip_kib']:g} KiB")
    compression = point.get("compression") or {}
    if compression.get("sparsity"):
        parts.append("sparsity " + " ".join(f"{layer}={value:g}" for layer, value
                                            in compression["sparsity"].items()))
    if compression.get("codebook_size") is not None:
        parts.append(f"codebook {compression['codebook_size']}")
    return ", ".join(parts) or "defaults"


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


def front_of(rows: list[dict], objectives) -> list[dict]:
    """The rows (status ok, with ``result``) on the front, by the first objective."""
    ok = [row for row in rows if row["status"] == "ok"]
    if not ok:
        return []
    signs = np.array([1.0 if OBJECTIVES[name][1] == "min" else -1.0 for name in objectives])
    values = np.array([[objective_value(row["result"], name) for name in objectives]
                       for row in ok]) * signs
    values = np.where(np.isnan(values), np.inf, values)
    mask = pareto_mask(values)
    front = [row for row, on in zip(ok, mask) if on]
    return sorted(front, key=lambda row: (objective_value(row["result"], objectives[0])
                                          * signs[0], row["id"]))


def report(spec, rows: list[dict], store_path: Path, accel_version: str) -> dict:
    """The content of ``pareto.json``."""
    objectives = list(spec.objectives)
    front = front_of(rows, objectives)
    failed = [row for row in rows if row["status"] != "ok"]
    return {
        "spec": str(spec.path), "store": str(store_path), "model": spec.model,
        "model_sha256": spec.model_sha256, "arch": spec.arch, "accel_version": accel_version,
        "objectives": [{"name": name, "key": OBJECTIVES[name][0],
                        "direction": "minimize" if OBJECTIVES[name][1] == "min"
                        else "maximize"} for name in objectives],
        "points_total": len(rows), "points_ok": len(rows) - len(failed),
        "points_failed": len(failed),
        "errors": [{"id": row["id"], "label": describe_point(row["point"]),
                    "error": row["error"]} for row in failed[:10]],
        "front": [{"id": row["id"], "key": row["key"], "label": describe_point(row["point"]),
                   "objectives": {name: objective_value(row["result"], name)
                                  for name in objectives},
                   "point": row["point"], "compression": row["result"].get("compression")}
                  for row in front],
    }


def front_table(spec, data: dict, limit: int = 25):
    """The front as a rich table (the first ``limit`` rows)."""
    from rich.table import Table

    front = data["front"]
    shown = front[:limit]
    more = len(front) - len(shown)
    table = Table(title=f"Pareto front: {len(front)} of {data['points_ok']} points "
                        f"({spec.model} on {spec.arch}, cycle model)",
                  caption=(f"{more} more in pareto.json" if more > 0 else None))
    table.add_column("id", justify="right")
    table.add_column("configuration")
    for name in spec.objectives:
        table.add_column(OBJECTIVES[name][2], justify="right")
    for entry in shown:
        cells = []
        for name in spec.objectives:
            value = entry["objectives"][name] * OBJECTIVES[name][3]
            cells.append(f"{value:,.0f}" if name == "throughput" else
                         f"{value:.2f}" if name == "accuracy" else f"{value:.3f}")
        table.add_row(str(entry["id"]), entry["label"], *cells)
    return table


def _save(figure, path: Path) -> Path:
    from accel.io import write_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return write_atomic(path, buffer.getvalue())


def plots(spec, rows: list[dict], data: dict, out_dir: Path) -> list[Path]:
    """The PNG plots of the module documentation, written into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [row for row in rows if row["status"] == "ok"]
    if not ok:
        return []
    on_front = {entry["key"] for entry in data["front"]}
    written = []
    energy = np.array([objective_value(r["result"], "energy") * 1e3 for r in ok])
    marks = np.array([r["key"] in on_front for r in ok])
    for other, label, factor, name in (
            ("accuracy", "accuracy (%)", 100.0, "pareto_energy_accuracy.png"),
            ("latency", "latency of one inference (us)", 1.0, "pareto_energy_latency.png")):
        values = np.array([objective_value(r["result"], other) * factor for r in ok])
        figure, axes = plt.subplots(figsize=(6.4, 4.6))
        axes.scatter(energy[~marks], values[~marks], s=12, c="0.7", label="points")
        axes.scatter(energy[marks], values[marks], s=26, c="tab:red",
                     label=f"Pareto front ({', '.join(spec.objectives)})")
        axes.set_xlabel("energy per inference (nJ)")
        if energy.min() > 0 and energy.max() / energy.min() > 20:
            axes.set_xscale("log")
        axes.set_ylabel(label)
        axes.set_title(f"{spec.model} on {spec.arch}: {len(ok)} points")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=8)
        figure.tight_layout()
        written.append(_save(figure, out_dir / name))
        plt.close(figure)
    pair = _layer_pair(ok, data)
    if pair is not None:
        base, best = pair
        layers = sorted(set(base["result"]["energy_by_layer_uj"])
                        | set(best["result"]["energy_by_layer_uj"]))
        x = np.arange(len(layers))
        figure, axes = plt.subplots(figsize=(6.4, 4.8))
        for offset, row, title in ((-0.2, base, "least compressed"),
                                   (0.2, best, "lowest-energy front point")):
            heights = [1e3 * row["result"]["energy_by_layer_uj"].get(layer, 0.0)
                       for layer in layers]
            axes.bar(x + offset, heights, width=0.4,
                     label=f"{title} (id {row['id']}): {describe_point(row['point'])}")
        axes.set_xticks(x, layers)
        axes.set_ylabel("energy per inference (nJ)")
        axes.set_title("per-layer energy, same architecture parameters")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=7)
        figure.tight_layout()
        written.append(_save(figure, out_dir / "layers_energy.png"))
        plt.close(figure)
    return written


def _compression_level(point: dict) -> tuple:
    compression = point.get("compression") or {}
    sparsity = compression.get("sparsity") or {}
    codebook = compression.get("codebook_size")
    return (sum(sparsity.values()), -(codebook if codebook is not None else 1 << 30))


def _layer_pair(ok: list[dict], data: dict):
    """(least compressed point with the front's lowest-energy point's architecture choices,
    that point), or None when the sweep does not compress or they are the same point."""
    if not data["front"] or not any((r["point"].get("compression") for r in ok)):
        return None
    by_energy = min(data["front"], key=lambda e: (e["objectives"].get(
        "energy", objective_value(_row(ok, e["key"])["result"], "energy")), e["id"]))
    best = _row(ok, by_energy["key"])
    same = [r for r in ok if r["point"]["options"] == best["point"]["options"]
            and r["point"].get("on_chip_kib") == best["point"].get("on_chip_kib")]
    base = min(same, key=lambda r: (_compression_level(r["point"]), r["id"]))
    return None if base["key"] == best["key"] else (base, best)


def _row(rows: list[dict], key: str) -> dict:
    return next(row for row in rows if row["key"] == key)
