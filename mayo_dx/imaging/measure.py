"""Measurements from a pancreas label map: gland volume, and each lesion's volume, size and place.

Rules (labels as MSD Task07: 0 background, 1 pancreas, 2 lesion):

- The gland is labels 1 and 2 together: a lesion inside the pancreas is part of the organ, and
  MSD-style masks write the tumour label over pancreas voxels.
- Lesions are the 26-connected components of label 2 of at least ``min_lesion_volume_mm3``
  (default 10 mm3); smaller components are counted in ``ignored_components``, not reported.
- Volume = voxel count x voxel volume (ml = 1,000 mm3).
- Longest axial diameter (as RECIST measures on axial images): over the axial slices (array
  axis 0, which must run head-feet), the largest in-plane Feret diameter of the component's
  slice, computed exactly between boundary voxel centres (convex hull vertices, all pairs).
  Measured centre to centre, it is up to about one voxel shorter than the edge-to-edge extent.
- Location: the gland's principal axis (PCA of its voxel world positions, LPS mm) is oriented
  from the patient's right (smaller LPS x: the head) to the left (the tail). A lesion's centroid
  projected on it, as a fraction of the gland's extent along it (0 = head end, 1 = tail end), is
  ``head`` below 1/3, ``body`` below 2/3 and ``tail`` above. This approximates the AJCC anatomic
  subsites (head right of the superior mesenteric vein's left border, body up to the aorta's left
  border, tail beyond), which need vessels not segmented here; near a boundary it may err.

Example:
    >>> import numpy as np
    >>> labels = np.zeros((10, 40, 40), np.uint8)
    >>> labels[3:7, 15:25, 5:35] = 1
    >>> labels[4:6, 18:22, 6:10] = 2
    >>> result = measure_labels(labels, (2.0, 1.0, 1.0))
    >>> result.pancreas_volume_ml, len(result.lesions), result.lesions[0].location
    (2.4, 1, 'head')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from mayo_dx.errors import InputError
from mayo_dx.imaging.volume import Grid, GridLike, as_grid

__all__ = ["LesionMeasurement", "PancreasMeasurement", "longest_axial_diameter", "measure_labels"]

LOCATIONS = ("head", "body", "tail")


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion (a connected component of the lesion label).

    Attributes:
        number: 1 for the largest lesion, then by decreasing volume.
        voxel_count: Voxels in the component.
        volume_ml: Volume in ml.
        longest_axial_diameter_mm: Largest in-plane Feret diameter over axial slices.
        diameter_slice: Slice index ``z`` where that diameter lies.
        centroid_voxel: Mean voxel index ``(z, y, x)``.
        centroid_world_mm: Centroid in LPS mm ``(x, y, z)``.
        gland_position: Centroid along the gland axis, 0 (head end) to 1 (tail end); None without a gland.
        location: ``"head"``, ``"body"``, ``"tail"`` or ``"unknown"``.
    """

    number: int
    voxel_count: int
    volume_ml: float
    longest_axial_diameter_mm: float
    diameter_slice: int
    centroid_voxel: tuple[float, float, float]
    centroid_world_mm: tuple[float, float, float]
    gland_position: float | None
    location: str

    def to_dict(self) -> dict[str, Any]:
        """Return the measurement as JSON types."""
        data = asdict(self)
        data["centroid_voxel"], data["centroid_world_mm"] = list(self.centroid_voxel), list(self.centroid_world_mm)
        return data


@dataclass(frozen=True)
class PancreasMeasurement:
    """Gland volume and the lesions found in one label map.

    Attributes:
        pancreas_voxel_count: Voxels carrying a gland label (pancreas and lesion by default).
        pancreas_volume_ml: Gland volume in ml.
        lesions: Lesions at least the minimum size, largest first.
        ignored_components: Lesion-label components below the minimum size.
        voxel_volume_mm3: Volume of one voxel.
        min_lesion_volume_mm3: The minimum lesion size applied.
    """

    pancreas_voxel_count: int
    pancreas_volume_ml: float
    lesions: tuple[LesionMeasurement, ...]
    ignored_components: int
    voxel_volume_mm3: float
    min_lesion_volume_mm3: float

    @property
    def total_lesion_volume_ml(self) -> float:
        """Summed volume of the reported lesions (ml)."""
        return float(sum(lesion.volume_ml for lesion in self.lesions))

    def to_dict(self) -> dict[str, Any]:
        """Return the measurements as JSON types."""
        data = asdict(self)
        data["lesions"] = [lesion.to_dict() for lesion in self.lesions]
        data["total_lesion_volume_ml"] = self.total_lesion_volume_ml
        return data


def _axial_grid(labels: np.ndarray, geometry: GridLike) -> Grid:
    grid = as_grid(labels, geometry)
    if abs(np.asarray(grid.direction)[2, 2]) < np.sqrt(0.5):
        raise InputError("array axis 0 is not head-feet: reorient the label map to axial slices first")
    return grid


def _feret_diameter(points_mm: np.ndarray) -> float:
    """Largest distance between 2-D points (convex hull vertices; all points when collinear)."""
    if len(points_mm) < 2:
        return 0.0
    if len(points_mm) > 3:
        try:
            points_mm = points_mm[ConvexHull(points_mm).vertices]
        except QhullError:  # collinear points: the extremes are among them all
            pass
    return float(pdist(points_mm).max())


def longest_axial_diameter(mask: np.ndarray, spacing: Sequence[float]) -> tuple[float, int]:
    """Largest in-plane Feret diameter (mm) over the axial slices of a 3-D mask, and its slice.

    Distances run between centres of boundary voxels (4-connected in-plane boundary).

    Args:
        mask: ``[z, y, x]`` boolean mask of one object.
        spacing: Voxel size ``(z, y, x)`` in mm (only y and x are used).

    Returns:
        ``(diameter_mm, slice_index)``; ``(0.0, -1)`` for an empty mask.

    Example:
        >>> mask = np.zeros((3, 10, 10), bool); mask[1, 2:5, 1:9] = True
        >>> longest_axial_diameter(mask, (5.0, 0.5, 1.0))
        (7.0710678118654755, 1)
    """
    mask = np.asarray(mask, dtype=bool)
    scale = np.asarray(spacing[1:], dtype=np.float64)
    best, best_slice = 0.0, -1
    cross = ndimage.generate_binary_structure(2, 1)
    for index in np.flatnonzero(mask.any(axis=(1, 2))):
        plane = mask[index]
        boundary = plane & ~ndimage.binary_erosion(plane, structure=cross, border_value=0)
        diameter = _feret_diameter(np.argwhere(boundary) * scale)
        if diameter > best or best_slice < 0:
            best, best_slice = diameter, int(index)
    return best, best_slice


def _gland_axis(gland: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """Centre, unit principal axis (toward the patient's left) and the gland's extent along it."""
    points = grid.index_to_world(np.argwhere(gland))
    if len(points) < 2:
        return None
    centre = points.mean(axis=0)
    _, _, right_vectors = np.linalg.svd(points - centre, full_matrices=False)
    axis = right_vectors[0] if right_vectors[0][0] >= 0 else -right_vectors[0]
    projection = (points - centre) @ axis
    if projection.max() - projection.min() <= 0:
        return None
    return centre, axis, float(projection.min()), float(projection.max())


def measure_labels(
    labels: np.ndarray,
    geometry: GridLike,
    pancreas_labels: Sequence[int] = (1, 2),
    lesion_label: int = 2,
    min_lesion_volume_mm3: float = 10.0,
    location_boundaries: tuple[float, float] = (1 / 3, 2 / 3),
) -> PancreasMeasurement:
    """Measure the gland and each lesion of a ``[z, y, x]`` label map (rules in the module docstring).

    Args:
        labels: Integer label map on axial slices (e.g. :func:`~mayo_dx.imaging.resample.restore_labels`).
        geometry: The volume (:class:`~mayo_dx.imaging.volume.CtVolume`), its :class:`Grid`, or the spacing ``(z, y, x)``
            mm (then LPS-aligned axes are assumed: x toward the patient's left).
        pancreas_labels: Labels that make up the gland.
        lesion_label: Label of lesions.
        min_lesion_volume_mm3: Smaller lesion components are ignored (counted only).
        location_boundaries: Gland-axis fractions ending the head and the body.

    Returns:
        The typed measurements; ``to_dict()`` gives JSON.

    Raises:
        InputError: If the label map does not match the geometry or is not axial.

    Example:
        >>> labels = np.zeros((5, 20, 20), np.uint8); labels[1:4, 5:15, 5:15] = 2
        >>> lesion = measure_labels(labels, (1.0, 1.0, 1.0)).lesions[0]
        >>> lesion.volume_ml, round(lesion.longest_axial_diameter_mm, 2)
        (0.3, 12.73)
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError("labels must be a 3-D integer array [z, y, x]")
    if not 0 < location_boundaries[0] <= location_boundaries[1] < 1:
        raise ValueError("location_boundaries must be two increasing fractions between 0 and 1")
    grid = _axial_grid(labels, geometry)
    voxel_volume = float(np.prod(grid.spacing))
    gland = np.isin(labels, list(pancreas_labels))
    axis = _gland_axis(gland, grid)
    components, count = ndimage.label(labels == lesion_label, structure=np.ones((3, 3, 3), dtype=bool))
    found, ignored = [], 0
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        mask = components[box] == index
        voxels = int(mask.sum())
        if voxels * voxel_volume < min_lesion_volume_mm3:
            ignored += 1
            continue
        diameter, slice_offset = longest_axial_diameter(mask, grid.spacing)
        centroid = np.argwhere(mask).mean(axis=0) + [part.start for part in box]
        world = grid.index_to_world(centroid)
        position, location = None, "unknown"
        if axis is not None:
            centre, direction, low, high = axis
            position = float(np.clip(((world - centre) @ direction - low) / (high - low), 0.0, 1.0))
            location = LOCATIONS[int(np.searchsorted(location_boundaries, position, side="right"))]
        found.append((voxels, diameter, slice_offset + box[0].start, centroid, world, position, location))
    found.sort(key=lambda item: -item[0])
    lesions = tuple(
        LesionMeasurement(
            number=number, voxel_count=voxels, volume_ml=voxels * voxel_volume / 1000.0,
            longest_axial_diameter_mm=diameter, diameter_slice=int(slice_index),
            centroid_voxel=tuple(float(value) for value in centroid),  # type: ignore[arg-type]
            centroid_world_mm=tuple(float(value) for value in world),  # type: ignore[arg-type]
            gland_position=position, location=location,
        )
        for number, (voxels, diameter, slice_index, centroid, world, position, location) in enumerate(found, start=1)
    )
    gland_voxels = int(gland.sum())
    return PancreasMeasurement(
        pancreas_voxel_count=gland_voxels, pancreas_volume_ml=gland_voxels * voxel_volume / 1000.0,
        lesions=lesions, ignored_components=ignored, voxel_volume_mm3=voxel_volume,
        min_lesion_volume_mm3=float(min_lesion_volume_mm3),
    )
