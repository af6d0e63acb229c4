"""CT plots: an axial montage and three orthogonal views, with mask contours and a mm scale bar.

Volumes are shown in radiological convention: the patient's right on the viewer's left and
anterior at the top of axial slices, the head at the top of coronal and sagittal views. Any
volume is first permuted and flipped to the nearest LPS orientation (no interpolation, the
readers' own :func:`~mayo_dx.imaging.geometry.to_nearest_lps`), and masks move with it.
Pixels are placed in millimetres, so anisotropic voxels keep their true aspect and the scale
bar is exact. Slice positions are printed in mm along the patient's head-feet axis; nothing
identifying is drawn.

Example:
    >>> from mayo_dx.imaging import LesionSpec, generate_phantom
    >>> phantom = generate_phantom(shape=(32, 96, 96), lesions=[LesionSpec(25, "head")], seed=3)
    >>> masks = {"pancreas": phantom.labels == 1, "lesion": phantom.labels == 2}
    >>> figure = plot_ct_montage(phantom.volume, masks=masks, n_slices=4)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from mayo_dx.errors import InputError
from mayo_dx.imaging.geometry import to_nearest_lps
from mayo_dx.imaging.volume import CtVolume
from mayo_dx.plots_figure import new_figure

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MASK_COLOURS", "SOFT_TISSUE_WINDOW", "plot_ct_montage", "plot_ct_orthogonal"]

#: Soft-tissue window (HU): level 40, width 400.
SOFT_TISSUE_WINDOW: tuple[float, float] = (-160.0, 240.0)
#: Contour colours for known mask names; other names take :data:`_EXTRA_COLOURS` in order.
MASK_COLOURS: Mapping[str, str] = MappingProxyType(
    {"pancreas": "#00e676", "lesion": "#ff1744", "tumour": "#ff1744", "tumor": "#ff1744"}
)
_EXTRA_COLOURS = ("#ffd600", "#2979ff", "#d500f9", "#ff9100", "#00e5ff")
_BACKGROUND = "black"
_TEXT = "white"
_SCALE_LENGTHS_MM = (5, 10, 20, 50, 100, 200)
_LABEL_BOX = {"facecolor": "black", "alpha": 0.55, "edgecolor": "none", "pad": 1.5}  # legible over bright tissue


class _View:
    """A volume and its masks in nearest-LPS layout, with spacing and slice positions."""

    def __init__(self, volume: CtVolume, masks: Mapping[str, np.ndarray] | None) -> None:
        if not isinstance(volume, CtVolume):
            raise InputError(f"expected a CtVolume, got {type(volume).__name__}")
        if masks is not None and not isinstance(masks, Mapping):
            raise InputError("masks must be a dict of name -> boolean [z, y, x] array")
        direction = np.asarray(volume.direction)
        self.hu, spacing, origin, direction, _ = to_nearest_lps(volume.hu, volume.spacing, volume.origin, direction)
        self.spacing = tuple(float(step) for step in spacing)
        self.origin, self.direction = np.asarray(origin), direction
        self.masks: dict[str, np.ndarray] = {}
        for name, mask in (masks or {}).items():
            array = np.asarray(mask)
            if array.shape != volume.shape:
                raise InputError(f"mask {name!r} has shape {array.shape}, the volume {volume.shape}")
            self.masks[str(name)] = to_nearest_lps(array != 0, volume.spacing, volume.origin, volume.direction)[0]
        self.colours = _colours(self.masks)

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size ``(z, y, x)``."""
        return tuple(size * step for size, step in zip(self.hu.shape, self.spacing))  # type: ignore[return-value]

    def world(self, index_zyx: Sequence[float]) -> np.ndarray:
        """LPS position (x, y, z mm) of a voxel index ``(z, y, x)``."""
        step = np.asarray(index_zyx, dtype=np.float64)[::-1] * np.asarray(self.spacing[::-1])
        return self.origin + self.direction @ step

    def centres(self, axis: int) -> np.ndarray:
        """Pixel-centre coordinates (mm from the volume edge) along array axis ``axis``."""
        return (np.arange(self.hu.shape[axis]) + 0.5) * self.spacing[axis]


def _colours(masks: Mapping[str, np.ndarray]) -> dict[str, str]:
    extra = iter(_EXTRA_COLOURS * (1 + len(masks) // len(_EXTRA_COLOURS)))
    return {name: MASK_COLOURS.get(name.lower()) or next(extra) for name in masks}


def _check_window(window: Sequence[float]) -> tuple[float, float]:
    low, high = (float(value) for value in window)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise InputError(f"window must be (low, high) HU with low < high, got {tuple(window)}")
    return low, high


def _choose_slices(view_masks: Mapping[str, np.ndarray], n_z: int, n_slices: int) -> list[int]:
    """Axial slices to show: spread over the masks' extent (each mask's largest slice kept), else the volume.

    Example:
        >>> mask = np.zeros((20, 4, 4), bool); mask[5:10] = True; mask[7, 0, 0] = True
        >>> _choose_slices({"organ": mask}, 20, 3)
        [5, 7, 9]
    """
    present = [mask for mask in view_masks.values() if mask.any()]
    if not present:
        return sorted({int((index + 0.5) * n_z / n_slices) for index in range(min(n_slices, n_z))})
    occupied = np.flatnonzero(np.logical_or.reduce([mask.any(axis=(1, 2)) for mask in present]))
    first, last = int(occupied.min()), int(occupied.max())
    chosen = sorted({int(round(value)) for value in np.linspace(first, last, min(n_slices, last - first + 1))})
    required = {int(np.argmax(mask.sum(axis=(1, 2)))) for mask in present}
    for slice_index in sorted(required - set(chosen)):
        free = [value for value in chosen if value not in required]
        if free:
            chosen.remove(min(free, key=lambda value: abs(value - slice_index)))
        chosen.append(slice_index)
    return sorted(set(chosen))


def _contours(axes: "Axes", view: _View, slicer: tuple, coords: tuple) -> None:
    for name, mask in view.masks.items():
        section = mask[slicer]
        if section.any() and not section.all():
            axes.contour(*coords, section.astype(np.float32), levels=[0.5], colors=[view.colours[name]],
                         linewidths=1.1, zorder=3)  # fmt: skip


def _scale_bar(axes: "Axes", width_mm: float, height_mm: float, y_down: bool) -> None:
    """A white bar of a round length near the lower-left corner, labelled in mm."""
    length = max([value for value in _SCALE_LENGTHS_MM if value <= 0.3 * width_mm] or [_SCALE_LENGTHS_MM[0]])
    x0 = 0.05 * width_mm
    y = 0.94 * height_mm if y_down else 0.06 * height_mm
    axes.plot([x0, x0 + length], [y, y], color=_TEXT, linewidth=3, solid_capstyle="butt", zorder=5, gid="scale-bar")
    label_y = y - 0.03 * height_mm if y_down else y + 0.03 * height_mm
    axes.text(x0 + length / 2, label_y, f"{length:g} mm", color=_TEXT, fontsize=8, ha="center",
              va="bottom", zorder=5, gid="scale-bar-label", bbox=_LABEL_BOX)  # fmt: skip


def _legend(figure: "Figure", view: _View) -> None:
    if not view.masks:
        return
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=view.colours[name], linewidth=2, label=name if mask.any() else f"{name} (empty)")
        for name, mask in view.masks.items()
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
                  labelcolor=_TEXT, bbox_to_anchor=(0.5, 0.0))  # fmt: skip


def _panel(axes: "Axes", image: np.ndarray, extent: tuple, window: tuple[float, float], origin: str) -> None:
    axes.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], extent=extent, origin=origin,
                interpolation="antialiased", zorder=1)  # fmt: skip
    axes.set_aspect("equal")
    axes.set_axis_off()


def plot_ct_montage(
    volume: CtVolume,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
    n_slices: int = 9,
    window: tuple[float, float] = SOFT_TISSUE_WINDOW,
) -> "Figure":
    """Axial slices in a grid, in a soft-tissue window, with mask contours and a scale bar.

    With masks, the slices spread evenly over the slices any mask touches, and each mask's
    largest cross-section is always among them; without masks, they spread over the volume.

    Args:
        volume: The CT volume.
        masks: Optional ``{name: boolean [z, y, x]}`` on the volume's grid, e.g.
            ``{"pancreas": labels == 1, "lesion": labels == 2}``; pancreas is drawn green,
            lesion red, other names in further colours, with a legend.
        n_slices: How many slices (1-36; fewer when the volume or the masks span fewer).
        window: ``(low, high)`` HU mapped to black and white.

    Returns:
        A matplotlib Figure; each panel is labelled with its head-feet position in mm.

    Raises:
        InputError: For a mask whose shape differs from the volume, a bad window or n_slices.
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> from mayo_dx.imaging import generate_phantom
        >>> figure = plot_ct_montage(generate_phantom(shape=(16, 64, 64)).volume, n_slices=4)  # doctest: +SKIP
    """
    if not isinstance(n_slices, (int, np.integer)) or not 1 <= n_slices <= 36:
        raise InputError(f"n_slices must be an integer from 1 to 36, got {n_slices!r}")
    window = _check_window(window)
    view = _View(volume, masks)
    slices = _choose_slices(view.masks, view.hu.shape[0], int(n_slices))
    _, height_mm, width_mm = view.extent_mm
    columns = math.ceil(math.sqrt(len(slices)))
    rows = math.ceil(len(slices) / columns)
    panel_in = 3.0
    legend_in = 0.45 if view.masks else 0.1
    title_in = 0.35
    figure = new_figure(columns * panel_in, rows * panel_in * height_mm / width_mm + legend_in + title_in,
                        facecolor=_BACKGROUND)  # fmt: skip
    total_h = figure.get_size_inches()[1]
    grid = figure.add_gridspec(rows, columns, left=0.005, right=0.995, bottom=legend_in / total_h,
                               top=1 - title_in / total_h, wspace=0.02, hspace=0.02)  # fmt: skip
    x_mm, y_mm = view.centres(2), view.centres(1)
    for number, slice_index in enumerate(slices):
        axes = figure.add_subplot(grid[number // columns, number % columns])
        _panel(axes, view.hu[slice_index], (0, width_mm, height_mm, 0), window, "upper")
        _contours(axes, view, (slice_index,), (x_mm, y_mm))
        position = view.world((slice_index, 0, 0))[2]
        axes.text(0.03 * width_mm, 0.03 * height_mm, f"z {position:+.1f} mm", color=_TEXT, fontsize=8,
                  ha="left", va="top", zorder=5, gid="slice-position", bbox=_LABEL_BOX)  # fmt: skip
        if number == 0:
            _scale_bar(axes, width_mm, height_mm, y_down=True)
            for text, x_fraction in (("R", 0.02), ("L", 0.98)):
                axes.text(x_fraction * width_mm, height_mm / 2, text, color=_TEXT, fontsize=8, zorder=5,
                          ha="left" if text == "R" else "right", va="center")  # fmt: skip
    dz, dy, dx = view.spacing
    figure.suptitle(
        f"axial, window {window[0]:g} to {window[1]:g} HU, voxels {dx:.2f} x {dy:.2f} x {dz:.2f} mm",
        color=_TEXT, fontsize=10, y=1 - 0.06 / total_h, va="top",
    )
    _legend(figure, view)
    return figure


def _default_centre(view: _View) -> tuple[int, int, int]:
    """The centroid of the smallest non-empty mask (a lesion inside its organ), else the middle."""
    present = [mask for mask in view.masks.values() if mask.any()]
    if not present:
        return tuple(size // 2 for size in view.hu.shape)  # type: ignore[return-value]
    smallest = min(present, key=lambda mask: int(mask.sum()))
    return tuple(int(round(value)) for value in np.argwhere(smallest).mean(axis=0))  # type: ignore[return-value]


def plot_ct_orthogonal(
    volume: CtVolume,
    masks: Mapping[str, np.ndarray] | None = None,
    center: Sequence[int] | None = None,
    *,
    window: tuple[float, float] = SOFT_TISSUE_WINDOW,
) -> "Figure":
    """Axial, coronal and sagittal planes through one voxel, at true aspect, with contours.

    Args:
        volume: The CT volume.
        masks: Optional ``{name: boolean [z, y, x]}`` on the volume's grid.
        center: Voxel index ``(z, y, x)`` in the volume's own array layout; default the
            centroid of the smallest non-empty mask (usually the lesion), else the middle.
        window: ``(low, high)`` HU mapped to black and white.

    Returns:
        A matplotlib Figure with three panels and crosshairs at the centre.

    Raises:
        InputError: For a bad mask shape, window, or a centre outside the volume.
        MissingDependency: If matplotlib is not installed.

    Example:
        >>> from mayo_dx.imaging import generate_phantom
        >>> len(plot_ct_orthogonal(generate_phantom(shape=(16, 64, 64)).volume).axes)  # doctest: +SKIP
        3
    """
    window = _check_window(window)
    view = _View(volume, masks)
    if center is None:
        z, y, x = _default_centre(view)
    else:
        if len(center) != 3 or not all(0 <= int(v) < size for v, size in zip(center, volume.shape)):
            raise InputError(f"center must be a voxel index (z, y, x) inside {volume.shape}, got {center}")
        marker = np.zeros(volume.shape, dtype=bool)
        marker[tuple(int(value) for value in center)] = True
        moved = to_nearest_lps(marker, volume.spacing, volume.origin, np.asarray(volume.direction))[0]
        z, y, x = (int(value) for value in np.argwhere(moved)[0])
    depth_mm, height_mm, width_mm = view.extent_mm
    z_mm, y_mm, x_mm = view.centres(0), view.centres(1), view.centres(2)
    world = view.world((z, y, x))
    figure = new_figure(11.0, 11.0 * max(height_mm, depth_mm) / (2 * width_mm + height_mm) + 0.8,
                        facecolor=_BACKGROUND)  # fmt: skip
    total_h = figure.get_size_inches()[1]
    bottom = (0.45 if view.masks else 0.1) / total_h
    grid = figure.add_gridspec(1, 3, width_ratios=(width_mm, width_mm, height_mm), left=0.01, right=0.99,
                               bottom=bottom, top=1 - 0.35 / total_h, wspace=0.03)  # fmt: skip
    panels = [figure.add_subplot(grid[0, index]) for index in range(3)]
    specs = (
        (view.hu[z], (0, width_mm, height_mm, 0), "upper", (z,), (x_mm, y_mm), (x_mm[x], y_mm[y]),
         f"axial  z {world[2]:+.1f} mm"),
        (view.hu[:, y, :], (0, width_mm, 0, depth_mm), "lower", (slice(None), y), (x_mm, z_mm), (x_mm[x], z_mm[z]),
         f"coronal  y {world[1]:+.1f} mm"),
        (view.hu[:, :, x], (0, height_mm, 0, depth_mm), "lower", (slice(None), slice(None), x), (y_mm, z_mm),
         (y_mm[y], z_mm[z]), f"sagittal  x {world[0]:+.1f} mm"),
    )  # fmt: skip
    for axes, (image, extent, origin, slicer, coords, cross, label) in zip(panels, specs):
        _panel(axes, image, extent, window, origin)
        _contours(axes, view, slicer, coords)
        axes.axvline(cross[0], color="#bbbbbb", linewidth=0.6, linestyle=":", zorder=4)
        axes.axhline(cross[1], color="#bbbbbb", linewidth=0.6, linestyle=":", zorder=4)
        axes.set_title(label, color=_TEXT, fontsize=9)
    _scale_bar(panels[0], width_mm, height_mm, y_down=True)
    _legend(figure, view)
    return figure
