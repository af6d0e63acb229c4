"""Shared plumbing for mayo-dx plots: lazy matplotlib, figures without pyplot, PNG output.

matplotlib is an optional extra (``pip install "mayo-dx[plot]"``). It is imported only when a
plot is drawn, and figures are plain :class:`matplotlib.figure.Figure` objects rendered by the
Agg canvas: no pyplot, no global backend switch, no figure registry that leaks memory in a
server. A missing matplotlib raises :class:`~mayo_dx.errors.MissingDependency` with the install
line.

Example:
    >>> figure = new_figure(2.0, 1.0)  # doctest: +SKIP
    >>> figure_to_png_bytes(figure, dpi=50)[:8]  # doctest: +SKIP
    b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mayo_dx.errors import InputError, MissingDependency

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

__all__ = ["INSTALL_HINT", "MM_PER_INCH", "figure_to_png_bytes", "new_figure", "require_matplotlib", "save_png"]

#: The one line a user needs when matplotlib is missing.
INSTALL_HINT = 'plots need matplotlib: pip install "mayo-dx[plot]"'

#: Millimetres per inch (figure sizes are in inches, ECG paper is in millimetres).
MM_PER_INCH = 25.4

def require_matplotlib() -> ModuleType:
    """Import matplotlib (and its Agg canvas) or raise a one-line install hint.

    Returns:
        The ``matplotlib`` module.

    Raises:
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> require_matplotlib().__name__  # doctest: +SKIP
        'matplotlib'
    """
    try:
        import matplotlib
        import matplotlib.backends.backend_agg  # noqa: F401  (the canvas every figure gets)
        import matplotlib.figure  # noqa: F401
    except ImportError as error:
        raise MissingDependency(INSTALL_HINT) from error
    return matplotlib


def new_figure(width_in: float, height_in: float, **options: Any) -> "Figure":
    """A pyplot-free figure of the given size (inches) on an Agg canvas.

    Args:
        width_in: Width in inches.
        height_in: Height in inches.
        **options: Passed to :class:`matplotlib.figure.Figure` (e.g. ``facecolor``).

    Raises:
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> new_figure(3.0, 2.0).get_size_inches().tolist()  # doctest: +SKIP
        [3.0, 2.0]
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), **options)
    FigureCanvasAgg(figure)
    return figure


def _check_figure(figure: Any) -> None:
    require_matplotlib()
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise InputError(f"expected a matplotlib Figure, got {type(figure).__name__}")


def figure_to_png_bytes(figure: "Figure", dpi: float = 100.0) -> bytes:
    """Render a figure to PNG bytes (e.g. MCP image content), at its exact size.

    The figure is not cropped (no ``bbox_inches="tight"``), so physical scales such as
    25 mm/s on ECG paper hold at any ``dpi``: the image is ``size_inches * dpi`` pixels.

    Args:
        figure: A figure from one of the ``plot_*`` functions.
        dpi: Pixels per inch.

    Raises:
        InputError: If ``figure`` is not a matplotlib Figure or ``dpi`` is not positive.

    Example:
        >>> figure_to_png_bytes(new_figure(1.0, 1.0), dpi=20)[:4]  # doctest: +SKIP
        b'\\x89PNG'
    """
    _check_figure(figure)
    if not dpi or dpi <= 0:
        raise InputError(f"dpi must be positive, got {dpi}")
    from io import BytesIO

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor=figure.get_facecolor())
    return buffer.getvalue()


def save_png(figure: "Figure", path: str | Path, dpi: float = 150.0) -> Path:
    """Write a figure as a PNG file (parent folders are created) and return its path.

    Args:
        figure: A figure from one of the ``plot_*`` functions.
        path: Destination; a missing ``.png`` suffix is added.
        dpi: Pixels per inch (150 keeps the 1 mm ECG grid crisp).

    Raises:
        InputError: If ``figure`` is not a matplotlib Figure or ``dpi`` is not positive.

    Example:
        >>> save_png(new_figure(1.0, 1.0), "/tmp/empty.png", dpi=20).name  # doctest: +SKIP
        'empty.png'
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png")
    data = figure_to_png_bytes(figure, dpi=dpi)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
