"""Slice-stack geometry shared by the CT readers: ordering, gaps, tilt, duplicates, layout.

DICOM slices are ordered by their ImagePositionPatient projected on the slice normal (the
cross product of the ImageOrientationPatient row and column vectors), never by InstanceNumber
or file name. :func:`arrange_slices` does that and refuses what cannot be a regular grid:

* mixed orientations, image sizes or pixel spacings in one stack: :class:`GeometryError`;
* gantry tilt (slice positions that drift in-plane, so consecutive offsets are not parallel
  to the normal, by more than half a pixel over the stack): :class:`GantryTiltError`. mayo-dx
  refuses rather than resamples: a sheared stack cannot be held by an orthonormal direction
  matrix, and an interpolated volume would silently differ from what the scanner reconstructed;
* a gap (any step more than 1.5 x the median step, e.g. a missing slice): :class:`SliceGapError`;
  nothing is ever interpolated across a gap;
* steps that vary by more than 1 % of the median below that: a warning; the z spacing is then
  the mean step, ``(last - first) / (n - 1)``, so the stack keeps its true extent;
* slices at the same position (within 0.01 mm) are returned as duplicate pairs for the reader
  to resolve (identical pixels: dropped with a warning; different pixels: refused).

:func:`to_nearest_lps` flips and permutes array axes (never interpolating) so that the
direction matrix is as close to the identity as possible: x towards the patient's left,
y towards posterior, z towards the head. Both the DICOM and the NIfTI reader return that
layout, so a label map aligns voxel for voxel with the series it was drawn on.

Example:
    >>> import numpy as np
    >>> positions = [(0.0, 0.0, 4.0), (0.0, 0.0, 0.0), (0.0, 0.0, 2.0)]
    >>> stack = arrange_slices(positions, [(1, 0, 0, 0, 1, 0)] * 3, [(0.5, 0.5)] * 3, [(8, 8)] * 3)
    >>> stack.order.tolist(), stack.spacing_z, stack.origin
    ([1, 2, 0], 2.0, (0.0, 0.0, 0.0))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mayo_dx.errors import GantryTiltError, GeometryError, SliceGapError

__all__ = [
    "DUPLICATE_TOLERANCE_MM",
    "GAP_FACTOR",
    "SliceStack",
    "UNEVEN_TOLERANCE",
    "arrange_slices",
    "plane_name",
    "slice_normal",
    "to_nearest_lps",
]

#: A step larger than this multiple of the median step is a gap (missing slices): refused.
GAP_FACTOR = 1.5
#: Steps varying by more than this fraction of the median step (below a gap) give a warning.
UNEVEN_TOLERANCE = 0.01
#: Slices whose positions differ by less than this (mm) are duplicates.
DUPLICATE_TOLERANCE_MM = 0.01
#: Two orientations agree when every direction cosine differs by less than this.
_ORIENTATION_TOLERANCE = 1e-3
#: Pixel spacings agree when they differ by less than this fraction.
_SPACING_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SliceStack:
    """Where each slice goes in a regular grid.

    Attributes:
        order: Input indices of the kept slices, sorted along the slice normal.
        duplicates: ``(kept, other)`` input-index pairs sharing one position; ``other`` is
            not in ``order``.
        spacing_z: Distance between slices along the normal (mm).
        origin: LPS position (mm) of the first slice's first pixel.
        direction: Columns: row direction, column direction, slice normal.
        warnings: Human sentences (uneven spacing, small in-plane drift).
    """

    order: np.ndarray
    duplicates: tuple[tuple[int, int], ...]
    spacing_z: float
    origin: tuple[float, float, float]
    direction: np.ndarray
    warnings: tuple[str, ...]


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal of an image plane given as ImageOrientationPatient (row then column cosines).

    Example:
        >>> slice_normal((1, 0, 0, 0, 1, 0)).tolist()
        [0.0, 0.0, 1.0]
    """
    values = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    normal = np.cross(values[0], values[1])
    length = np.linalg.norm(normal)
    if length < 1e-6:
        raise GeometryError("ImageOrientationPatient row and column vectors are parallel")
    return normal / length


def plane_name(orientation: Sequence[float]) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"``: the anatomical plane nearest the image plane.

    A plane counts as axial when its normal is within 45 degrees of the z (foot-head) axis,
    so oblique and tilted axial acquisitions stay axial.

    Example:
        >>> plane_name((0, 1, 0, 0, 0, -1))
        'sagittal'
    """
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(slice_normal(orientation))))]


def _check_uniform(
    orientations: np.ndarray, pixel_spacings: np.ndarray, shapes: Sequence[tuple[int, int]]
) -> None:
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOLERANCE:
        planes = len({tuple(np.round(row, 3)) for row in orientations})
        raise GeometryError(f"mixed orientations: {planes} different image planes in one series")
    row, column = orientations[0].reshape(2, 3)
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(column) - 1) > 1e-2 or abs(row @ column) > 1e-2:
        raise GeometryError("ImageOrientationPatient is not two orthogonal unit vectors")
    sizes = sorted({(int(rows), int(columns)) for rows, columns in shapes})
    if len(sizes) > 1:
        listed = ", ".join(f"{rows}x{columns}" for rows, columns in sizes[:4])
        raise GeometryError(f"mixed image sizes in one series: {listed}")
    if np.any(pixel_spacings <= 0) or not np.all(np.isfinite(pixel_spacings)):
        raise GeometryError("PixelSpacing must be positive")
    relative = np.abs(pixel_spacings - pixel_spacings[0]) / pixel_spacings[0]
    if relative.max() > _SPACING_TOLERANCE:
        listed = sorted({tuple(np.round(spacing, 4)) for spacing in pixel_spacings})[:4]
        raise GeometryError(f"mixed pixel spacings in one series: {listed} mm")


def arrange_slices(
    positions: Sequence[Sequence[float]],
    orientations: Sequence[Sequence[float]],
    pixel_spacings: Sequence[Sequence[float]],
    shapes: Sequence[tuple[int, int]],
    *,
    single_slice_spacing: float | None = None,
) -> SliceStack:
    """Order slices along their normal and check that they form a regular grid.

    Args:
        positions: ImagePositionPatient of each slice (LPS mm).
        orientations: ImageOrientationPatient of each slice.
        pixel_spacings: PixelSpacing of each slice: (row spacing, column spacing) in mm.
        shapes: (rows, columns) of each slice.
        single_slice_spacing: z spacing to report when only one slice is given
            (e.g. SliceThickness); 1 mm when None.

    Returns:
        The slice order, duplicate pairs, z spacing, origin, direction and warnings.

    Raises:
        GeometryError: mixed orientations, sizes or pixel spacings.
        GantryTiltError: slice positions drift in-plane (tilted gantry, sheared stack).
        SliceGapError: a step exceeds ``GAP_FACTOR`` times the median step.

    Example:
        >>> stack = arrange_slices([(0, 0, 0), (0, 0, 3)], [(1, 0, 0, 0, 1, 0)] * 2, [(1, 1)] * 2, [(4, 4)] * 2)
        >>> stack.spacing_z, stack.direction[:, 2].tolist()
        (3.0, [0.0, 0.0, 1.0])
    """
    points = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    cosines = np.asarray(orientations, dtype=np.float64).reshape(-1, 6)
    spacings = np.asarray(pixel_spacings, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        raise GeometryError("no slices to arrange")
    _check_uniform(cosines, spacings, shapes)
    normal = slice_normal(cosines[0])
    row, column = cosines[0].reshape(2, 3)
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    direction = np.column_stack([row, column, normal])
    depth = points @ normal
    sorted_indices = np.argsort(depth, kind="stable")

    order: list[int] = []
    duplicates: list[tuple[int, int]] = []
    for index in sorted_indices:
        if order and np.linalg.norm(points[index] - points[order[-1]]) < DUPLICATE_TOLERANCE_MM:
            duplicates.append((order[-1], int(index)))
        elif order and abs(depth[index] - depth[order[-1]]) < DUPLICATE_TOLERANCE_MM:
            raise GeometryError("two slices lie at the same depth but are shifted in-plane")
        else:
            order.append(int(index))
    kept = np.asarray(order, dtype=np.int64)
    warnings: list[str] = []
    origin = tuple(float(value) for value in points[kept[0]])
    if len(kept) == 1:
        spacing_z = float(single_slice_spacing) if single_slice_spacing else 1.0
        return SliceStack(kept, tuple(duplicates), spacing_z, origin, direction, ())  # type: ignore[arg-type]

    offsets = points[kept] - points[kept[0]]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    drift = float(np.linalg.norm(in_plane, axis=1).max())
    along = float(depth[kept[-1]] - depth[kept[0]])
    angle = float(np.degrees(np.arctan2(drift, along)))
    if drift > 0.5 * float(spacings[0].min()):
        raise GantryTiltError(
            f"gantry tilt: slice positions drift {drift:.1f} mm in-plane over the stack (about "
            f"{angle:.1f} degrees from the slice normal); mayo-dx does not resample tilted "
            "acquisitions: reconstruct without tilt, or correct the tilt before reading"
        )
    if drift > 0.05:
        warnings.append(f"slice positions drift {drift:.2f} mm in-plane (under half a pixel; not corrected)")

    steps = np.diff(depth[kept])
    median = float(np.median(steps))
    widest = int(np.argmax(steps))
    if steps[widest] > GAP_FACTOR * median:
        raise SliceGapError(
            f"gap in the slice stack: {steps[widest]:.2f} mm between slices {widest + 1} and "
            f"{widest + 2} of {len(kept)}, where the median spacing is {median:.2f} mm (missing "
            "slices?); mayo-dx does not interpolate across gaps"
        )
    spread = float(steps.max() - steps.min())
    if spread > UNEVEN_TOLERANCE * median:
        warnings.append(
            f"uneven slice spacing: steps from {steps.min():.3f} to {steps.max():.3f} mm "
            f"(median {median:.3f} mm); using the mean step {along / (len(kept) - 1):.3f} mm"
        )
    spacing_z = round(along / (len(kept) - 1), 6)  # DS positions carry about 6 decimals
    return SliceStack(kept, tuple(duplicates), spacing_z, origin, direction, tuple(warnings))  # type: ignore[arg-type]


def to_nearest_lps(
    array: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float], np.ndarray, bool]:
    """Flip and permute the axes of a ``[z, y, x]`` array so its direction is closest to LPS.

    No voxel is interpolated: the result holds the same values, indexed so that x runs towards
    the patient's left, y towards posterior and z towards the head as nearly as the acquisition
    allows (an oblique plane keeps its residual rotation in ``direction``).

    Args:
        array: ``[z, y, x]`` voxels.
        spacing: ``(z, y, x)`` voxel size (mm).
        origin: LPS position of voxel ``(0, 0, 0)``.
        direction: Columns are unit vectors along increasing x, y, z index.

    Returns:
        ``(array, spacing, origin, direction, permuted)``; ``permuted`` is True when axes were
        swapped (not merely flipped), e.g. a sagittal series turned into axial layout.

    Example:
        >>> import numpy as np
        >>> flipped_x = np.diag([-1.0, 1.0, 1.0])
        >>> array = np.arange(8).reshape(2, 2, 2)
        >>> out, spacing, origin, direction, permuted = to_nearest_lps(array, (1, 1, 1), (0, 0, 0), flipped_x)
        >>> out[0, 0].tolist(), origin, direction.diagonal().tolist(), permuted
        ([1, 0], (-1.0, 0.0, 0.0), [1.0, 1.0, 1.0], False)
    """
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    spacing_xyz = np.asarray(spacing, dtype=np.float64)[::-1]
    magnitude = np.abs(direction)
    # source axis (0=x, 1=y, 2=z index) assigned to each world axis, maximising alignment
    best = max(itertools.permutations(range(3)), key=lambda axes: sum(magnitude[world, axes[world]] for world in range(3)))
    signs = np.array([1.0 if direction[world, best[world]] >= 0 else -1.0 for world in range(3)])
    shape_xyz = np.array(array.shape[::-1])
    new_origin = np.asarray(origin, dtype=np.float64).copy()
    for world in range(3):
        if signs[world] < 0:
            source = best[world]
            new_origin = new_origin + direction[:, source] * spacing_xyz[source] * (shape_xyz[source] - 1)
    # array axes are [z, y, x]: source axis a lives at array axis 2 - a
    new_array = np.transpose(array, [2 - best[2], 2 - best[1], 2 - best[0]])
    flips = tuple(2 - world for world in range(3) if signs[world] < 0)
    if flips:
        new_array = np.flip(new_array, axis=flips)
    new_direction = direction[:, list(best)] * signs[None, :]
    new_spacing_xyz = spacing_xyz[list(best)]
    permuted = tuple(best) != (0, 1, 2)
    return (
        new_array,
        tuple(float(value) for value in new_spacing_xyz[::-1]),  # type: ignore[return-value]
        tuple(float(value) for value in new_origin),  # type: ignore[return-value]
        new_direction,
        permuted,
    )
