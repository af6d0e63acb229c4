"""CT preprocessing: the one numpy/scipy implementation shared by training and inference.

:class:`CtPreprocessing` (stored in the model card) drives :func:`preprocess_ct`, in the order of
MONAI's DiNTS pancreas bundle: exact reorientation (permute/flip, no interpolation) -> resampling
to ``target_spacing`` (linear for images, nearest for labels) -> optional crop around a world box
plus a margin -> HU window scaled to ``[output_low, output_high]``; float32 throughout.

Canonical orientation: ``[z, y, x]`` with x toward the patient's left, y posterior, z toward the
head (``direction`` = identity, DICOM LPS). An axis more than ``max_obliquity_degrees`` off every
patient axis raises :class:`ObliqueVolume` (no oblique resampling); within it the residual
rotation stays in ``direction``. Resampled grids have ``round(size * spacing / target)`` voxels
per axis, centred on the input block, so every voxel centre keeps its world position, which
:func:`restore_labels` uses to map predictions back. On 2 CPU cores a 512 x 512 x 200 int16
volume (0.78 x 0.78 x 1.25 mm) resamples to 1.5 mm in about 0.5 s, to 3 mm in under 0.1 s.

Example:
    >>> import numpy as np
    >>> from mayo_dx.imaging.volume import CtVolume
    >>> volume = CtVolume(hu=np.full((10, 16, 16), 40, dtype=np.int16), spacing=(3.0, 0.75, 0.75))
    >>> array, geometry = preprocess_ct(volume, CtPreprocessing(target_spacing=(1.5, 1.5, 1.5)))
    >>> array.shape, array.dtype, round(float(array.max()), 3)
    ((20, 8, 8), dtype('float32'), 0.444)
    >>> restore_labels((array > 0).astype(np.uint8), geometry).shape
    (10, 16, 16)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from mayo_dx.errors import InputError, ObliqueVolume
from mayo_dx.imaging.geometry import to_nearest_lps
from mayo_dx.imaging.volume import CtVolume, Grid, GridLike, as_grid

__all__ = [
    "CropInfo", "CtPreprocessing", "Grid", "ObliqueVolume", "PreprocessedGeometry", "box_from_world", "crop",
    "paste_back", "preprocess_ct", "preprocess_labels", "reorient", "resample", "resample_to_grid",
    "restore_labels", "window",
]

Triple = tuple[float, float, float]
Box = tuple[tuple[int, int, int], tuple[int, int, int]]
WorldBox = tuple[Sequence[float], Sequence[float]]


@dataclass(frozen=True)
class CtPreprocessing:
    """Parameters of :func:`preprocess_ct`, stored in the model card.

    Attributes:
        target_spacing: Voxel size ``(z, y, x)`` mm the model expects; ``None`` keeps it.
        reorient: Permute/flip to the canonical LPS orientation first.
        max_obliquity_degrees: Largest accepted angle between a volume axis and its patient axis.
        window_low: Lower HU bound (-87 as MONAI's DiNTS pancreas bundle).
        window_high: Upper HU bound (199, same source).
        output_low, output_high: Values the window's bounds map to.
        crop_margin_mm: Margin on every side of a box given to :func:`preprocess_ct`.
        fill_hu: HU written where a crop reaches beyond the volume (air).
    """

    target_spacing: Triple | None = (1.5, 1.5, 1.5)
    reorient: bool = True
    max_obliquity_degrees: float = 5.0
    window_low: float = -87.0
    window_high: float = 199.0
    output_low: float = 0.0
    output_high: float = 1.0
    crop_margin_mm: float = 10.0
    fill_hu: float = -1024.0

    def __post_init__(self) -> None:
        spacing = None if self.target_spacing is None else tuple(float(value) for value in self.target_spacing)
        if spacing is not None and (len(spacing) != 3 or min(spacing) <= 0):
            raise ValueError("target_spacing must be three positive numbers (z, y, x) in mm")
        object.__setattr__(self, "target_spacing", spacing)
        if self.window_high <= self.window_low:
            raise ValueError("window_high must be above window_low")
        if not 0 <= self.max_obliquity_degrees < 45:
            raise ValueError("max_obliquity_degrees must lie in [0, 45)")
        if self.crop_margin_mm < 0:
            raise ValueError("crop_margin_mm must not be negative")

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as JSON types for the model card."""
        data = asdict(self)
        data["target_spacing"] = None if self.target_spacing is None else list(self.target_spacing)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CtPreprocessing":
        """Rebuild from a card's ``preprocessing`` mapping.

        Raises:
            ValueError: If the mapping has keys this version does not know.

        Example:
            >>> CtPreprocessing.from_dict(CtPreprocessing().to_dict()) == CtPreprocessing()
            True
        """
        unknown = set(data) - {item.name for item in fields(cls)}
        if unknown:
            raise ValueError(f"unknown CT preprocessing parameters: {sorted(unknown)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class PreprocessedGeometry:
    """Where a preprocessed array lies: the source volume's grid and the model's grid."""

    source: Grid
    target: Grid

    def to_dict(self) -> dict[str, Any]:
        """Return both grids as JSON types."""
        return {"source": self.source.to_dict(), "target": self.target.to_dict()}


@dataclass(frozen=True)
class CropInfo:
    """A crop's ``start``/``stop`` (exclusive, z, y, x; beyond the bounds where padded) and source shape."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    source_shape: tuple[int, int, int]


def reorient(array: np.ndarray, grid: GridLike, max_obliquity_degrees: float = 5.0) -> tuple[np.ndarray, Grid]:
    """Permute and flip ``[z, y, x]`` to the canonical LPS orientation (a view; no interpolation).

    The permutation itself is :func:`mayo_dx.imaging.geometry.to_nearest_lps`, the one the
    readers use; this adds the obliquity limit a model's preprocessing enforces.

    Raises:
        ObliqueVolume: If an axis is more than ``max_obliquity_degrees`` from every patient axis.

    Example:
        >>> right_to_left = Grid((2, 3, 4), (1.0, 1.0, 1.0), direction=np.diag([-1.0, 1.0, 1.0]))
        >>> array, grid = reorient(np.arange(24).reshape(2, 3, 4), right_to_left)
        >>> array[0, 0].tolist(), np.diag(grid.direction).tolist(), grid.origin
        ([3, 2, 1, 0], [1.0, 1.0, 1.0], (-3.0, 0.0, 0.0))
    """
    grid = as_grid(array, grid)
    output, spacing, origin, direction, _ = to_nearest_lps(array, grid.spacing, grid.origin, np.asarray(grid.direction))
    worst = float(np.degrees(np.arccos(np.clip(np.diag(direction).min(), -1.0, 1.0))))
    if worst > max_obliquity_degrees:
        raise ObliqueVolume(f"volume is oblique by {worst:.1f} degrees (limit {max_obliquity_degrees})")
    return output, Grid(output.shape, spacing, origin, direction)


def resample(
    array: np.ndarray, grid: GridLike, target_spacing: Sequence[float], order: int = 1
) -> tuple[np.ndarray, Grid]:
    """Resample to ``target_spacing`` (z, y, x mm) on a grid centred on the input grid.

    ``order=1`` (linear, float32) for images, ``order=0`` (nearest, dtype kept) for labels.

    Example:
        >>> array, grid = resample(np.ones((10, 20, 20), np.int16), (3.0, 0.75, 0.75), (1.5, 1.5, 1.5))
        >>> array.shape, array.dtype, grid.origin
        ((20, 10, 10), dtype('float32'), (0.375, 0.375, -0.75))
    """
    grid = as_grid(array, grid)
    source_shape, source_spacing = np.asarray(grid.shape), np.asarray(grid.spacing)
    target = np.asarray(target_spacing, dtype=np.float64)
    shape = np.maximum(1, np.round(source_shape * source_spacing / target)).astype(int)
    step = target / source_spacing  # input index step per output index
    offset = (source_shape - 1) / 2.0 - (shape - 1) / 2.0 * step
    new_grid = Grid(tuple(shape), tuple(target), tuple(grid.index_to_world(offset).tolist()), grid.direction)
    dtype = np.float32 if order > 0 else np.asarray(array).dtype
    if np.array_equal(shape, source_shape) and np.allclose(step, 1.0):
        return np.asarray(array, dtype=dtype), new_grid
    output = ndimage.affine_transform(array, step, offset=offset, output_shape=tuple(shape), output=dtype,
                                      order=order, mode="nearest")
    return output, new_grid


def resample_to_grid(
    array: np.ndarray, grid: GridLike, target_grid: Grid, order: int = 0, fill: float = 0
) -> np.ndarray:
    """Sample ``array`` at ``target_grid``'s voxel centres (``fill`` beyond half a voxel outside ``grid``).

    Example:
        >>> coarse = Grid((2, 2, 2), (2.0, 2.0, 2.0), origin=(0.5, 0.5, 0.5))
        >>> resample_to_grid(np.arange(8).reshape(2, 2, 2), coarse, Grid((5, 1, 1), (1, 1, 1)))[:, 0, 0].tolist()
        [0, 0, 4, 4, 0]
    """
    grid = as_grid(array, grid)
    mapping = np.linalg.inv(grid.affine_lps) @ target_grid.affine_lps  # target xyz index -> source
    matrix, offset = mapping[:3, :3][::-1, ::-1], mapping[:3, 3][::-1]
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix).copy()  # separable fast path
    dtype = np.asarray(array).dtype if order == 0 else np.float32
    return ndimage.affine_transform(array, matrix, offset=offset, output_shape=target_grid.shape, output=dtype,
                                    order=order, mode="grid-constant", cval=fill)


def window(array: np.ndarray, low: float, high: float, output_range: Sequence[float] = (0.0, 1.0),
           out: np.ndarray | None = None) -> np.ndarray:
    """Clip HU to ``[low, high]`` and scale linearly onto ``output_range`` (float32; ``out`` for in place).

    Example:
        >>> window(np.array([-1000, -87, 56, 199, 3000]), -87, 199).round(2).tolist()
        [0.0, 0.0, 0.5, 1.0, 1.0]
    """
    out = np.empty(np.shape(array), dtype=np.float32) if out is None else out
    np.clip(array, low, high, out=out)
    out -= np.float32(low)
    out *= np.float32((output_range[1] - output_range[0]) / (high - low))
    out += np.float32(output_range[0])
    return out


def box_from_world(corner_a: Sequence[float], corner_b: Sequence[float], grid: Grid) -> Box:
    """Voxel box (z, y, x; ``stop`` exclusive) of the voxel centres inside an LPS box (mm).

    Example:
        >>> box_from_world((2, 0, 0), (5, 3, 9), Grid((10, 10, 10), (3.0, 1.0, 1.0)))
        ((0, 0, 2), (4, 4, 6))
    """
    low, high = np.minimum(corner_a, corner_b), np.maximum(corner_a, corner_b)
    corners = np.array([[(low, high)[bit >> axis & 1][axis] for axis in range(3)] for bit in range(8)])
    indices = grid.world_to_index(corners)
    start = np.ceil(indices.min(axis=0) - 1e-6).astype(int)
    stop = np.floor(indices.max(axis=0) + 1e-6).astype(int) + 1
    return tuple(start.tolist()), tuple(stop.tolist())  # type: ignore[return-value]


def crop(array: np.ndarray, grid: GridLike, start: Sequence[int], stop: Sequence[int], margin_mm: float = 0.0,
         fill: float = 0) -> tuple[np.ndarray, Grid, CropInfo]:
    """Cut ``[start, stop)`` (z, y, x) plus ``margin_mm``, padded with ``fill`` (-1024 for HU, 0 for labels).

    Example:
        >>> part, grid, info = crop(np.ones((4, 4, 4)), (1.0, 1.0, 1.0), (0, 0, 0), (2, 2, 2), margin_mm=1)
        >>> part.shape, float(part.sum()), info.start, grid.origin
        ((4, 4, 4), 27.0, (-1, -1, -1), (-1.0, -1.0, -1.0))
    """
    grid = as_grid(array, grid)
    margin = np.ceil(margin_mm / np.asarray(grid.spacing) - 1e-9).astype(int)
    begin, end = np.asarray(start, dtype=int) - margin, np.asarray(stop, dtype=int) + margin
    if np.any(end <= begin):
        raise InputError("crop box is empty")
    output = np.full(tuple(end - begin), fill, dtype=np.asarray(array).dtype)
    inside_begin, inside_end = np.clip(begin, 0, grid.shape), np.clip(end, 0, grid.shape)
    if np.all(inside_end > inside_begin):
        target = tuple(slice(b - o, e - o) for b, e, o in zip(inside_begin, inside_end, begin))
        output[target] = array[tuple(slice(b, e) for b, e in zip(inside_begin, inside_end))]
    info = CropInfo(tuple(begin.tolist()), tuple(end.tolist()), grid.shape)  # type: ignore[arg-type]
    return output, Grid(output.shape, grid.spacing, tuple(grid.index_to_world(begin).tolist()), grid.direction), info


def paste_back(cropped: np.ndarray, info: CropInfo, fill: float = 0) -> np.ndarray:
    """Place a crop (e.g. a mask predicted on it) into an array of the uncropped shape.

    Example:
        >>> part, _, info = crop(np.arange(27).reshape(3, 3, 3), (1, 1, 1), (1, 1, 1), (2, 2, 2), margin_mm=1)
        >>> bool((paste_back(part, info) == np.arange(27).reshape(3, 3, 3)).all())
        True
    """
    if tuple(cropped.shape) != tuple(np.subtract(info.stop, info.start)):
        raise InputError(f"crop shape {cropped.shape} does not match its crop info")
    output = np.full(info.source_shape, fill, dtype=cropped.dtype)
    begin, end = np.clip(info.start, 0, info.source_shape), np.clip(info.stop, 0, info.source_shape)
    if np.all(end > begin):
        source = tuple(slice(b - s, e - s) for b, e, s in zip(begin, end, info.start))
        output[tuple(slice(b, e) for b, e in zip(begin, end))] = cropped[source]
    return output


def _to_model_grid(array: np.ndarray, grid: Grid, params: CtPreprocessing, order: int, fill: float,
                   box: WorldBox | None) -> tuple[np.ndarray, Grid]:
    if params.reorient:
        array, grid = reorient(array, grid, params.max_obliquity_degrees)
    if params.target_spacing is not None:
        array, grid = resample(array, grid, params.target_spacing, order)
    if box is not None:
        start, stop = box_from_world(box[0], box[1], grid)
        array, grid, _ = crop(array, grid, start, stop, params.crop_margin_mm, fill)
    return array, grid


def preprocess_ct(volume: CtVolume | np.ndarray, params: CtPreprocessing, spacing: Sequence[float] | None = None,
                  box: WorldBox | None = None) -> tuple[np.ndarray, PreprocessedGeometry]:
    """Turn a CT volume into the float32 ``[z, y, x]`` array a model consumes.

    Args:
        volume: A :class:`CtVolume`, or an HU array ``[z, y, x]`` (LPS-aligned) with ``spacing``.
        params: Usually ``CtPreprocessing.from_dict(card.preprocessing)``.
        spacing: Voxel size ``(z, y, x)`` mm when ``volume`` is a plain array.
        box: Optional two LPS corners (mm) to crop around, widened by ``params.crop_margin_mm``.

    Returns:
        The windowed float32 array and the geometry :func:`restore_labels` needs.

    Example:
        >>> array, geometry = preprocess_ct(np.zeros((4, 8, 8), np.int16), CtPreprocessing(), spacing=(3, 3, 3))
        >>> array.shape, geometry.target.spacing
        ((8, 16, 16), (1.5, 1.5, 1.5))
    """
    if not isinstance(volume, CtVolume) and spacing is None:
        raise InputError("a plain array needs its spacing (z, y, x) in mm")
    hu = volume.hu if isinstance(volume, CtVolume) else np.asarray(volume)
    hu = hu if hu.dtype in (np.int16, np.float32) else hu.astype(np.float32)
    source = as_grid(hu, volume if isinstance(volume, CtVolume) else spacing)
    array, target = _to_model_grid(hu, source, params, 1, params.fill_hu, box)
    # Window in place only on a float32 array allocated here, never on the caller's voxels.
    owned = array.dtype == np.float32 and array.flags.owndata and not np.may_share_memory(array, hu)
    limits = (params.output_low, params.output_high)
    output = window(array, params.window_low, params.window_high, limits, out=array if owned else None)
    return output, PreprocessedGeometry(source, target)


def preprocess_labels(labels: np.ndarray, volume: GridLike, params: CtPreprocessing,
                      box: WorldBox | None = None) -> tuple[np.ndarray, PreprocessedGeometry]:
    """Bring a label map aligned with a volume onto the grid :func:`preprocess_ct` produces.

    Same steps with nearest-neighbour resampling and 0 outside; uint8 output.

    Example:
        >>> labels = np.zeros((4, 8, 8), np.uint8); labels[1:3, 2:6, 2:6] = 1
        >>> out, _ = preprocess_labels(labels, (3.0, 3.0, 3.0), CtPreprocessing())
        >>> out.shape, int(out.sum())
        ((8, 16, 16), 256)
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError("label values must lie in 0-255")
    source = as_grid(labels, volume)
    array, target = _to_model_grid(labels.astype(np.uint8, copy=False), source, params, 0, 0, box)
    return np.ascontiguousarray(array), PreprocessedGeometry(source, target)


def restore_labels(labels: np.ndarray, geometry: PreprocessedGeometry) -> np.ndarray:
    """Map labels on the preprocessed grid back to the source volume's grid (nearest; 0 outside).

    Example:
        >>> labels = np.zeros((4, 8, 8), np.uint8); labels[1:3, 2:6, 2:6] = 1
        >>> out, geometry = preprocess_labels(labels, (3.0, 3.0, 3.0), CtPreprocessing())
        >>> bool((restore_labels(out, geometry) == labels).all())
        True
    """
    if tuple(np.shape(labels)) != tuple(geometry.target.shape):
        raise InputError(f"label map shape {np.shape(labels)} does not match the preprocessed grid")
    return resample_to_grid(labels, geometry.target, geometry.source, order=0, fill=0)
