"""Comparing energy across simulation results: the table and the stacked-bar chart of
``accel energy`` (inputs are ``accel simulate --json`` files, see ``accel.hw.result``)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from accel.energy.model import GROUPS
from accel.errors import ConfigError
from accel.io import write_atomic

REQUIRED_KEYS = ("arch", "model", "energy_uj_per_inference", "energy_breakdown_uj",
                 "cycles_per_inference", "clock_mhz", "tech")
STRINGS = ("arch", "model", "tech")
POSITIVE = ("cycles_per_inference", "clock_mhz")
NON_NEGATIVE = ("energy_uj_per_inference",)
BREAKDOWNS = ("energy_breakdown_uj", "energy_by_component_uj", "energy_by_layer_uj")


def is_number(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def load_result(path: str | Path) -> dict:
    """An ``accel simulate/estimate --json`` result, with every key the energy report reads
    checked for its type and range (a clock of 0, a string for a number: one ConfigError)."""
    from accel.io import load_json

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such result file: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = load_json(text, path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("not valid JSON", "not JSON", 1)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an `accel simulate --json` result")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{path}: not an `accel simulate --json` result with energy "
                          f"(missing {', '.join(missing)})")
    check_result(data, path)
    return data


def check_result(data: dict, where) -> None:
    def bad(key, expected):
        shown = repr(data[key])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ConfigError(f"{where}: '{key}' must be {expected}, got {shown}")

    for key in STRINGS:
        if not isinstance(data[key], str):
            bad(key, "a string")
    for key in POSITIVE:
        if not is_number(data[key]) or data[key] <= 0:
            bad(key, "a positive number")
    for key in NON_NEGATIVE:
        if not is_number(data[key]) or data[key] < 0:
            bad(key, "a non-negative number")
    for key in BREAKDOWNS:
        if key in data and not (isinstance(data[key], dict)
                                and all(isinstance(k, str) and is_number(v)
                                        for k, v in data[key].items())):
            bad(key, "a mapping of names to numbers")
    if data.get("config_label") is not None and not isinstance(data["config_label"], str):
        bad("config_label", "a string")
    if data.get("pj_per_mac") is not None and not is_number(data["pj_per_mac"]):
        bad("pj_per_mac", "a number or null")


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


CHART_FORMATS = ("png", "svg")


def chart_paths(prefix: str | Path) -> list[Path]:
    """``prefix``.png and .svg, checked writable (see ``accel.io.check_output_file``) before
    anything is drawn."""
    from accel.io import check_output_file

    text = str(prefix)
    if not text or text.endswith(("/", "\\")) or Path(text).name in ("", ".", ".."):
        raise ConfigError(f"--chart {text!r}: give a file name prefix (CHART.png and CHART.svg "
                          "are written), not a directory")
    return [check_output_file(Path(f"{text}.{extension}"), "chart")
            for extension in CHART_FORMATS]


def stacked_bar_chart(results: list[dict], prefix: str | Path) -> list[Path]:
    """Energy per inference by group, one bar per result, as ``prefix``.png and .svg (both
    drawn before either is written)."""
    paths = chart_paths(prefix)
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
    drawn = []
    for extension in CHART_FORMATS:
        buffer = io.BytesIO()
        figure.savefig(buffer, format=extension, dpi=120)
        drawn.append(buffer.getvalue())
    plt.close(figure)
    return [write_atomic(path, data) for path, data in zip(paths, drawn)]
