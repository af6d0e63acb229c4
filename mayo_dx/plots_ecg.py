"""ECG plots: the clinical 12-lead sheet on true-scale paper, and a plain stacked view.

:func:`plot_ecg_12lead` draws what a cardiologist expects to read: three rows of four 2.5 s
columns (I, II, III | aVR, aVL, aVF | V1, V2, V3 | V4, V5, V6; each column continues in time
after the one before) and a full-length lead II rhythm strip, at 25 mm/s and 10 mm/mV on
1 mm / 5 mm paper, with a 1 mV calibration pulse at the start of every row. The figure size
is derived from millimetres, so a PNG at ``dpi`` pixels per inch keeps the scale exactly
(measure a big square: 5 mm = 0.2 s = 0.5 mV). Leads the source lacked say "missing"; they
are never drawn as a flat line. Saliency (non-negative, one value per sample and lead) is
shaded behind the traces. Nothing identifying is drawn: an :class:`EcgRecord` carries no
identifiers and the only free text is the caller's ``title``.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> from mayo_dx.ecg import read
    >>> figure = plot_ecg_12lead(read(get_testdata_file("waveform_ecg.dcm")))  # doctest: +SKIP
    >>> [round(size * 25.4) for size in figure.get_size_inches()]  # doctest: +SKIP
    [276, 190]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord
from mayo_dx.errors import InputError
from mayo_dx.plots_figure import MM_PER_INCH, new_figure

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "COLUMN_SECONDS",
    "GAIN_MM_PER_MV",
    "LAYOUT_12LEAD",
    "PAPER_SPEED_MM_PER_S",
    "ROW_PITCH_MM",
    "plot_ecg_12lead",
    "plot_ecg_stacked",
]

PAPER_SPEED_MM_PER_S = 25.0
GAIN_MM_PER_MV = 10.0
COLUMN_SECONDS = 2.5
#: Distance between the baselines of two rows (mm); tall complexes may cross it, as on paper.
ROW_PITCH_MM = 40.0
#: Rows of the sheet (top to bottom), each a tuple of column leads; the last row is the rhythm strip.
LAYOUT_12LEAD: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
    ("II",),
)

_CALIBRATION_MM = 10.0  # paper left of t = 0 holding the 1 mV pulse (2 major squares)
_MARGIN_MM = {"left": 8.0, "right": 8.0, "bottom": 12.0, "top": 18.0}
_PAPER = {"background": "#fff7f7", "minor": "#f7c6c6", "major": "#e48f8f"}
_TRACE_COLOUR = "#111111"
_SALIENCY_RGB = (0.16, 0.42, 0.85)
_SALIENCY_MAX_ALPHA = 0.4
_SALIENCY_BINS_PER_MM = 4


def _check_saliency(record: EcgRecord, saliency: np.ndarray | None) -> np.ndarray | None:
    """Validate and scale saliency to 0..1 by its maximum (None when absent or all zero)."""
    if saliency is None:
        return None
    values = np.asarray(saliency, dtype=np.float64)
    if values.shape != record.signal.shape:
        raise InputError(f"saliency must have the signal's shape {record.signal.shape}, got {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InputError("saliency must be finite and non-negative")
    peak = values.max(initial=0.0)
    return values / peak if peak > 0 else None


def _pool(values: np.ndarray, bins: int) -> np.ndarray:
    """Max-pool a 1-D array into ``bins`` bins (fewer when it is shorter)."""
    bins = max(1, min(bins, len(values)))
    edges = np.linspace(0, len(values), bins + 1).astype(int)
    return np.maximum.reduceat(values, edges[:-1])


def _shade(axes: "Axes", weights: np.ndarray, extent: tuple[float, float, float, float], bins: int) -> None:
    """Translucent band whose opacity follows ``weights`` (0..1) along x."""
    pooled = _pool(weights, bins)
    if not pooled.any():
        return
    rgba = np.zeros((1, len(pooled), 4))
    rgba[..., :3] = _SALIENCY_RGB
    rgba[..., 3] = _SALIENCY_MAX_ALPHA * pooled
    axes.imshow(rgba, extent=extent, aspect="auto", interpolation="nearest", zorder=2, gid="saliency")


def _draw_paper(axes: "Axes", x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
    from matplotlib.collections import LineCollection

    (x0, x1), (y0, y1) = x_range, y_range
    for kind, width, keep in (("minor", 0.4, lambda v: v % 5 != 0), ("major", 0.7, lambda v: v % 5 == 0)):
        xs = [v for v in range(int(x0), int(x1) + 1) if keep(v)]
        ys = [v for v in range(int(y0), int(y1) + 1) if keep(v)]
        segments = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        lines = LineCollection(segments, colors=_PAPER[kind], linewidths=width, zorder=1 if kind == "minor" else 1.5)
        lines.set_gid(f"grid-{kind}")
        axes.add_collection(lines)


def _calibration_pulse(axes: "Axes", baseline: float) -> None:
    """1 mV x 200 ms square pulse in the paper left of t = 0."""
    high = baseline + GAIN_MM_PER_MV
    width = 0.2 * PAPER_SPEED_MM_PER_S
    xs = [-_CALIBRATION_MM + 1, -_CALIBRATION_MM + 3, -_CALIBRATION_MM + 3, -_CALIBRATION_MM + 3 + width]
    xs += [-_CALIBRATION_MM + 3 + width, -1]
    ys = [baseline, baseline, high, high, baseline, baseline]
    axes.plot(xs, ys, color=_TRACE_COLOUR, linewidth=0.8, zorder=3, gid="calibration")


def _draw_segment(
    axes: "Axes", record: EcgRecord, lead: str, start_s: float, duration_s: float, x_start: float,
    baseline: float, weights: np.ndarray | None, tag: str,
) -> None:
    """One lead from ``start_s`` for ``duration_s``, its label, saliency, or a 'missing' note.

    Artists carry ``gid`` ``trace-<tag>``, ``label-<tag>``, ``missing-<tag>`` and ``saliency``.
    """
    first = int(round(start_s * record.fs))
    stop = min(int(round((start_s + duration_s) * record.fs)), record.n_samples)
    x_end = x_start + duration_s * PAPER_SPEED_MM_PER_S
    axes.text(x_start + 1.5, baseline + 13, lead, fontsize=9, fontweight="bold", zorder=5, gid=f"label-{tag}",
              va="bottom", ha="left", color=_TRACE_COLOUR)  # fmt: skip
    row = STANDARD_LEADS.index(lead)
    values = record.signal[row, first:stop] if stop > first else np.empty(0, np.float32)
    note = None
    if lead in record.missing_leads or (values.size and np.isnan(values).all()):
        note = f"{lead} missing"
    elif values.size == 0:
        note = "no data"
    if note:
        axes.text((x_start + x_end) / 2, baseline, note, fontsize=9, fontstyle="italic", color="#666666",
                  ha="center", va="center", zorder=5, gid=f"missing-{tag}")  # fmt: skip
        return
    if weights is not None:
        extent = (x_start, x_start + values.size / record.fs * PAPER_SPEED_MM_PER_S, baseline - 0.45 * ROW_PITCH_MM,
                  baseline + 0.45 * ROW_PITCH_MM)  # fmt: skip
        _shade(axes, weights[row, first:stop], extent, int((extent[1] - extent[0]) * _SALIENCY_BINS_PER_MM))
    times = np.arange(values.size) / record.fs
    centred = values - np.nanmedian(values)
    axes.plot(x_start + times * PAPER_SPEED_MM_PER_S, baseline + centred * GAIN_MM_PER_MV, color=_TRACE_COLOUR,
              linewidth=0.6, zorder=3, gid=f"trace-{tag}")  # fmt: skip


def plot_ecg_12lead(
    record: EcgRecord,
    *,
    saliency: np.ndarray | None = None,
    title: str | None = None,
    start_s: float = 0.0,
) -> "Figure":
    """The clinical 12-lead sheet, true to scale (25 mm/s, 10 mm/mV, 1 mm / 5 mm grid).

    The paper is ``10 + 4 x 62.5`` mm wide (calibration pulse, then four 2.5 s columns) and
    ``4 x 40`` mm high; the figure adds white margins for the title and a footer stating the
    scale, so 1 mm of paper is 1 mm of figure at any ``dpi``. Each column of the top three
    rows shows its 2.5 s of the record (column ``k`` shows ``start_s + 2.5 k`` onwards); the
    bottom row is lead II for the full 10 s. Traces are centred on their median.

    Args:
        record: The ECG (any sampling rate; shorter records leave "no data" cells).
        saliency: Optional non-negative ``[12, samples]`` weights (same shape as the signal),
            shaded behind the traces with opacity relative to their maximum.
        title: Optional free text drawn above the paper (do not pass identifiers).
        start_s: Where the 10 s window starts in the record (seconds).

    Returns:
        A matplotlib Figure (render with :func:`~mayo_dx.plots.save_png`).

    Raises:
        InputError: For saliency of the wrong shape, negative or non-finite, or a bad ``start_s``.
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> from mayo_dx.ecg import generate_ecg
        >>> figure = plot_ecg_12lead(generate_ecg(["NORM"], seed=0))  # doctest: +SKIP
    """
    if not isinstance(record, EcgRecord):
        raise InputError(f"expected an EcgRecord, got {type(record).__name__}")
    if not np.isfinite(start_s) or not 0 <= start_s < record.duration_s:
        raise InputError(f"start_s must lie within the record (0 to {record.duration_s:.2f} s), got {start_s}")
    weights = _check_saliency(record, saliency)
    columns = len(LAYOUT_12LEAD[0])
    paper_width = _CALIBRATION_MM + columns * COLUMN_SECONDS * PAPER_SPEED_MM_PER_S
    paper_height = len(LAYOUT_12LEAD) * ROW_PITCH_MM
    margin = _MARGIN_MM
    width_mm = margin["left"] + paper_width + margin["right"]
    height_mm = margin["bottom"] + paper_height + margin["top"]
    figure = new_figure(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH, facecolor="white")
    axes = figure.add_axes(
        (margin["left"] / width_mm, margin["bottom"] / height_mm, paper_width / width_mm, paper_height / height_mm)
    )
    axes.set_gid("paper")
    axes.set_axis_off()
    axes.add_patch(_rectangle((-_CALIBRATION_MM, 0), paper_width, paper_height, _PAPER["background"]))
    _draw_paper(axes, (-_CALIBRATION_MM, paper_width - _CALIBRATION_MM), (0, paper_height))
    column_mm = COLUMN_SECONDS * PAPER_SPEED_MM_PER_S
    for row_index, leads in enumerate(LAYOUT_12LEAD):
        baseline = paper_height - (row_index + 0.5) * ROW_PITCH_MM
        _calibration_pulse(axes, baseline)
        span_s = COLUMN_SECONDS * columns / len(leads)
        for column, lead in enumerate(leads):
            x_start = column * column_mm * columns / len(leads)
            if column:  # lead-change marker, as printed by electrocardiographs
                axes.plot([x_start, x_start], [baseline - 3, baseline + 3], color=_TRACE_COLOUR, linewidth=0.8,
                          zorder=4, gid="lead-change")  # fmt: skip
            tag = lead if len(leads) > 1 else f"rhythm-{lead}"
            _draw_segment(axes, record, lead, start_s + column * span_s, span_s, x_start, baseline, weights, tag)
    axes.set_xlim(-_CALIBRATION_MM, paper_width - _CALIBRATION_MM)  # after imshow, which rescales
    axes.set_ylim(0, paper_height)
    shown = min(record.duration_s - start_s, COLUMN_SECONDS * columns)
    footer = (f"{PAPER_SPEED_MM_PER_S:g} mm/s   {GAIN_MM_PER_MV:g} mm/mV   {record.fs:g} Hz   "
              f"{start_s:g}-{start_s + shown:g} s of {record.duration_s:g} s")  # fmt: skip
    if record.missing_leads:
        footer += f"   missing leads: {', '.join(record.missing_leads)}"
    figure.text(margin["left"] / width_mm, 4 / height_mm, footer, fontsize=8, ha="left", va="bottom")
    if weights is not None:
        figure.text(1 - margin["right"] / width_mm, 4 / height_mm, "shading: saliency (relative to its maximum)",
                    fontsize=8, ha="right", va="bottom", color=_SALIENCY_RGB)  # fmt: skip
    if title:
        figure.text(margin["left"] / width_mm, 1 - 6 / height_mm, str(title), fontsize=11, ha="left", va="top")
    return figure


def _rectangle(corner: tuple[float, float], width: float, height: float, colour: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, facecolor=colour, edgecolor="none", zorder=0)


def plot_ecg_stacked(record: EcgRecord, *, saliency: np.ndarray | None = None) -> "Figure":
    """The twelve leads stacked over the full duration, on one shared mV scale.

    Args:
        record: The ECG.
        saliency: Optional non-negative ``[12, samples]`` weights shaded behind the traces.

    Returns:
        A matplotlib Figure, one panel per lead sharing the time axis (seconds).

    Raises:
        InputError: For saliency of the wrong shape, negative or non-finite.
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> from mayo_dx.ecg import generate_ecg
        >>> len(plot_ecg_stacked(generate_ecg(["NORM"], seed=0)).axes)  # doctest: +SKIP
        12
    """
    if not isinstance(record, EcgRecord):
        raise InputError(f"expected an EcgRecord, got {type(record).__name__}")
    weights = _check_saliency(record, saliency)
    recorded = np.isfinite(record.signal).any(axis=1)
    centred = np.full(record.signal.shape, np.nan)
    centred[recorded] = record.signal[recorded] - np.nanmedian(record.signal[recorded], axis=1, keepdims=True)
    reach = 1.0
    if recorded.any():
        reach = max(reach, float(np.nanpercentile(np.abs(centred[recorded]), 99.9)) * 1.15)
    figure = new_figure(11.0, 0.72 * len(STANDARD_LEADS) + 1.0, facecolor="white")
    panels = figure.subplots(len(STANDARD_LEADS), 1, sharex=True, sharey=True)
    figure.subplots_adjust(left=0.07, right=0.985, top=0.97, bottom=0.06, hspace=0.08)
    times = np.arange(record.n_samples) / record.fs
    for row, (lead, axes) in enumerate(zip(STANDARD_LEADS, panels)):
        axes.set_ylabel(lead, rotation=0, ha="right", va="center", fontsize=9, fontweight="bold")
        axes.grid(True, color="#dddddd", linewidth=0.5)
        axes.tick_params(labelsize=7, length=2)
        if lead in record.missing_leads or not recorded[row]:
            axes.text(0.5, 0.5, f"{lead} missing", transform=axes.transAxes, fontsize=9, fontstyle="italic",
                      color="#666666", ha="center", va="center", gid=f"missing-{lead}")  # fmt: skip
            continue
        if weights is not None:
            _shade(axes, weights[row], (0.0, record.duration_s, -reach, reach), 2000)
        axes.plot(times, centred[row], color=_TRACE_COLOUR, linewidth=0.5, zorder=3, gid=f"trace-{lead}")
    panels[-1].set_xlim(0, record.duration_s)  # shared by all panels; set after imshow
    panels[-1].set_ylim(-reach, reach)
    panels[-1].set_xlabel("time (s)", fontsize=8)
    panels[0].set_title(f"mV, {record.fs:g} Hz, {record.duration_s:g} s", fontsize=8, loc="right")
    return figure
