"""Training curves from a Lightning ``CSVLogger`` ``metrics.csv``: losses, metrics, learning rate.

Lightning writes one row per logging call, so every column is sparse: ``train_loss_step``
fills the rows of training steps, ``val_loss`` and ``val_macro_auroc`` the rows that end a
validation epoch, and ``lr-Adam`` (``LearningRateMonitor``) its own rows. Each series is drawn
against ``step`` (else ``epoch``, else the row number) over its non-empty rows only. Columns
with ``loss`` in the name go to the loss panel, ``lr``/``lr-*``/``learning_rate`` columns to a
learning-rate panel (only when present), every other numeric column to the metrics panel.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = path.write_text("epoch,step,train_loss,val_loss,val_macro_auroc\\n0,9,0.7,,\\n0,9,,0.6,0.8\\n")
    >>> [axes.get_title() for axes in plot_training_curves(path).axes]  # doctest: +SKIP
    ['loss', 'metrics']
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mayo_dx.errors import UnreadableFile, UnsupportedFormat
from mayo_dx.plots_figure import new_figure

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_training_curves", "read_metrics_csv"]

_AXIS_COLUMNS = ("step", "epoch")


def read_metrics_csv(metrics_csv: str | Path) -> dict[str, np.ndarray]:
    """Read a Lightning ``metrics.csv`` into float columns (empty cells become NaN).

    Args:
        metrics_csv: Path to the file.

    Returns:
        ``{column: float64 array}``, one value per row, columns in file order; columns with
        text that is not a number are left out.

    Raises:
        UnreadableFile: If the file is missing or cannot be read.
        UnsupportedFormat: If it has no header or no data rows.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text("epoch,step,val_loss\\n0,4,0.5\\n1,9,\\n")
        >>> read_metrics_csv(path)["val_loss"].tolist()
        [0.5, nan]
    """
    path = Path(metrics_csv)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise UnreadableFile(f"cannot read training metrics {path}: {error}") from error
    if len(rows) < 2 or not rows[0]:
        raise UnsupportedFormat(f"{path.name}: expected a header and at least one row of metrics")
    header, body = rows[0], rows[1:]
    columns: dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        cells = [row[index].strip() if index < len(row) else "" for row in body]
        try:
            columns[name.strip()] = np.array([float(cell) if cell else np.nan for cell in cells], dtype=np.float64)
        except ValueError:
            continue  # a text column (e.g. a run name) is not a curve
    return columns


def _is_learning_rate(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("lr", "learning_rate") or lowered.startswith("lr-") or lowered.startswith("lr_")


def _draw(axes: "Axes", title: str, series: dict[str, tuple[np.ndarray, np.ndarray]], x_label: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(x_label, fontsize=9)
    axes.grid(True, color="#e3e3e3", linewidth=0.6)
    axes.tick_params(labelsize=8)
    if not series:
        axes.text(0.5, 0.5, f"no {title} logged", transform=axes.transAxes, ha="center", va="center",
                  color="#777777", fontstyle="italic")  # fmt: skip
        return
    for name, (x, y) in series.items():
        dense = name.endswith("_step") or len(y) > 60
        style = {"linewidth": 0.8, "alpha": 0.6} if dense else {"linewidth": 1.4, "marker": "o", "markersize": 3}
        if title == "learning rate":  # a schedule holds its value until the next change
            style = {"linewidth": 1.4, "drawstyle": "steps-post"}
        axes.plot(x, y, label=name, **style)
    axes.legend(fontsize=8, frameon=False)


def plot_training_curves(metrics_csv: str | Path) -> "Figure":
    """One panel of losses and one of metrics (plus learning rate when logged) over training.

    Args:
        metrics_csv: A Lightning ``CSVLogger`` ``metrics.csv``.

    Returns:
        A matplotlib Figure. Metrics that all lie in 0..1 (AUROC, F1...) share a 0-1 axis;
        losses and learning rates use a log axis when they span more than a factor of 20.

    Raises:
        UnreadableFile: If the file is missing or unreadable.
        UnsupportedFormat: If it holds no loss or metric columns with values.
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> plot_training_curves("lightning_logs/version_0/metrics.csv")  # doctest: +SKIP
    """
    columns = read_metrics_csv(metrics_csv)
    axis_name = next((name for name in _AXIS_COLUMNS if name in columns and np.isfinite(columns[name]).any()), None)
    row_count = len(next(iter(columns.values()))) if columns else 0
    x_all = columns[axis_name] if axis_name else np.arange(row_count, dtype=np.float64)
    groups: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"loss": {}, "metrics": {}, "learning rate": {}}
    for name, values in columns.items():
        if name in _AXIS_COLUMNS:
            continue
        keep = np.isfinite(values) & np.isfinite(x_all)
        if not keep.any():
            continue
        group = "loss" if "loss" in name.lower() else "learning rate" if _is_learning_rate(name) else "metrics"
        groups[group][name] = (x_all[keep], values[keep])
    if not groups["loss"] and not groups["metrics"]:
        raise UnsupportedFormat(f"{Path(metrics_csv).name}: no loss or metric column holds any value")
    panels = ["loss", "metrics"] + (["learning rate"] if groups["learning rate"] else [])
    figure = new_figure(5.0 * len(panels), 3.8, facecolor="white")
    axes_list = figure.subplots(1, len(panels))
    figure.subplots_adjust(left=0.07 if len(panels) == 2 else 0.05, right=0.98, bottom=0.13, top=0.84, wspace=0.22)
    x_label = axis_name or "logged row"
    for axes, panel in zip(axes_list, panels):
        _draw(axes, panel, groups[panel], x_label)
    loss_values = np.concatenate([y for _, y in groups["loss"].values()]) if groups["loss"] else np.empty(0)
    if loss_values.size and loss_values.min() > 0 and loss_values.max() / loss_values.min() > 20:
        axes_list[0].set_yscale("log")
    metric_values = [y for _, y in groups["metrics"].values()]
    if metric_values and all(((y >= 0) & (y <= 1)).all() for y in metric_values):
        axes_list[1].set_ylim(-0.02, 1.02)
    rates = np.concatenate([y for _, y in groups["learning rate"].values()]) if groups["learning rate"] else np.empty(0)
    if rates.size and rates.min() > 0 and rates.max() / rates.min() > 20:
        axes_list[2].set_yscale("log")
    figure.suptitle("training curves", fontsize=11, y=0.98)
    return figure
