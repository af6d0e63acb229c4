"""Plots for people: the 12-lead ECG sheet, CT montages with mask contours, training curves.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, safe in servers and threads); :func:`save_png` writes it and
:func:`figure_to_png_bytes` gives PNG bytes (the LLM tools return those as image content).
matplotlib is an optional extra, imported only when a plot is drawn: without it, every
function raises :class:`~mayo_dx.errors.MissingDependency` saying
``pip install "mayo-dx[plot]"``. The implementations live in :mod:`mayo_dx.plots_ecg`,
:mod:`mayo_dx.plots_ct`, :mod:`mayo_dx.plots_training` and :mod:`mayo_dx.plots_figure`.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> from mayo_dx import ecg, plots
    >>> figure = plots.plot_ecg_12lead(ecg.read(get_testdata_file("waveform_ecg.dcm")))  # doctest: +SKIP
    >>> plots.save_png(figure, "ecg.png")  # doctest: +SKIP
    PosixPath('ecg.png')
"""

from __future__ import annotations

from mayo_dx.plots_ct import plot_ct_montage, plot_ct_orthogonal
from mayo_dx.plots_ecg import plot_ecg_12lead, plot_ecg_stacked
from mayo_dx.plots_figure import figure_to_png_bytes, save_png
from mayo_dx.plots_training import plot_training_curves

__all__ = [
    "figure_to_png_bytes",
    "plot_ct_montage",
    "plot_ct_orthogonal",
    "plot_ecg_12lead",
    "plot_ecg_stacked",
    "plot_training_curves",
    "save_png",
]
