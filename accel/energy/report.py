"""Comparing energy across simulation results: the table and the stacked-bar chart of
``accel energy`` (inputs are ``accel simulate --json`` files, see ``accel.hw.result``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from accel.energy.model import GROUPS
from accel.errors import ConfigError
from accel.io import write_atomic

REQUIRED_KEYS = ("arch", "model", "energy_uj_per_inference", "energy_breakdown_uj",
                 "cycles_per_inference", "clock_mhz", "tech")


def load_result(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such result file: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an `accel simulate --json` result")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{path}: not an `accel simulate --json` result with energy "
                          f"(missing {', '.join(missing)})")
    return data


def run_label(result: dict) -> str:
    config = result.get("config_label") or ""  # written by the architecture (its ``label``)
    model = Path(result["model"]).stem  # a shipped model's name, or a file's
    return f"{result['arch']} {model}" + (f" ({config})" if config else "")


def energy_rows(results: list[dict]) -> list[dict]:
    """One row per result: energy per inference (nJ) by group and in total, time and power."""
    rows = []
    for result in results:
        time_us = result["cycles_per_inference"] / result["clock_mhz"]
        total_nj = 1e3 * result["energy_uj_per_inference"]
        rows.append({
            "label": run_label(result), "tech": result["tech"],
            **{group: 1e3 * result["energy_breakdown_uj"].get(group, 0.0) for group in GROUPS},
            "total_nj": total_nj, "time_us": time_us,
            "power_mw": total_nj / time_us if time_us else 0.0,
            "pj_per_mac": result.get("pj_per_mac")})
    return rows


def stacked_bar_chart(results: list[dict], prefix: str | Path) -> list[Path]:
    """Energy per inference by group, one bar per result, as ``prefix``.png and .svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = energy_rows(results)
    figure, axes = plt.subplots(figsize=(max(5.0, 1.6 * len(rows) + 2), 4.2))
    bottom = [0.0] * len(rows)
    labels = [row["label"] for row in rows]
    for group in GROUPS:
        heights = [row[group] for row in rows]
        if any(heights):
            axes.bar(labels, heights, bottom=bottom, label=group)
            bottom = [b + h for b, h in zip(bottom, heights)]
    axes.set_ylabel("energy per inference (nJ)")
    axes.set_title(f"energy per inference by component ({rows[0]['tech']})")
    axes.legend()
    axes.tick_params(axis="x", labelrotation=15)
    figure.tight_layout()
    written = []
    for extension in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=extension, dpi=120)
        written.append(write_atomic(Path(f"{prefix}.{extension}"), buffer.getvalue()))
    plt.close(figure)
    return written
