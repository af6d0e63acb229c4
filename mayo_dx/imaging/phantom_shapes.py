"""Geometry primitives for the CT phantom: a voxel grid, ellipsoids, swept tubes, measurements.

Everything works in *anatomical* millimetres ``(z, y, x)`` (z to the head, y to the back, x to
the patient's left, as in LPS) on a regular grid, and only inside the bounding box of the
shape being drawn, so a 512 x 512 x 200 phantom is built from small, vectorised pieces.

Example:
    >>> grid = SamplingGrid(shape=(20, 40, 40), spacing=(2.0, 2.0, 2.0), start=(-20.0, -40.0, -40.0))
    >>> box = grid.box((-10, -10, -10), (10, 10, 10))
    >>> inside = ellipsoid_field(grid, box, (0, 0, 0), (3, 9, 9)) <= 1
    >>> int(inside.sum()) > 0
    True
    >>> round(axial_diameter_mm(inside, grid.spacing), 1)  # centre to centre, on a pixelated disc
    17.9
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError

__all__ = [
    "Box",
    "SamplingGrid",
    "TubeField",
    "axial_diameter_mm",
    "ellipsoid_field",
    "rasterize_tubes",
    "smooth_centreline",
]

#: Index slices ``(z, y, x)`` of a sub-box of the grid.
Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class SamplingGrid:
    """A regular voxel grid in anatomical millimetres.

    Attributes:
        shape: Voxel counts ``(z, y, x)``.
        spacing: Voxel size ``(z, y, x)`` in mm.
        start: Position ``(z, y, x)`` in mm of the centre of voxel ``(0, 0, 0)``.

    Example:
        >>> SamplingGrid((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)).axis(2).tolist()
        [0.0, 1.0, 2.0, 3.0]
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    start: tuple[float, float, float]

    def axis(self, dimension: int) -> np.ndarray:
        """Voxel-centre positions (mm, float32) along one dimension (0 z, 1 y, 2 x)."""
        count = self.shape[dimension]
        return (self.start[dimension] + np.arange(count) * self.spacing[dimension]).astype(np.float32)

    def box(self, low: Sequence[float], high: Sequence[float]) -> Box | None:
        """Index slices of the voxels whose centres lie in ``[low, high]`` (mm), or None if empty.

        Example:
            >>> SamplingGrid((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)).box((2, 2, 2), (4.5, 3, 20))
            (slice(2, 5, None), slice(2, 4, None), slice(2, 10, None))
        """
        slices = []
        for dimension in range(3):
            step, origin, count = self.spacing[dimension], self.start[dimension], self.shape[dimension]
            first = max(int(np.ceil((low[dimension] - origin) / step - 1e-6)), 0)
            last = min(int(np.floor((high[dimension] - origin) / step + 1e-6)) + 1, count)
            if last <= first:
                return None
            slices.append(slice(first, last))
        return tuple(slices)  # type: ignore[return-value]

    def coordinates(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open (broadcastable) coordinate grids ``z[:, 1, 1]``, ``y[1, :, 1]``, ``x[1, 1, :]`` of a box."""
        z = self.axis(0)[box[0]][:, None, None]
        y = self.axis(1)[box[1]][None, :, None]
        x = self.axis(2)[box[2]][None, None, :]
        return z, y, x


def ellipsoid_field(
    grid: SamplingGrid,
    box: Box,
    centre: Sequence[float],
    semi_axes: Sequence[float],
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Squared normalised radius of an ellipsoid over a box (``<= 1`` is inside).

    Args:
        grid: The voxel grid.
        box: Sub-box to evaluate.
        centre: Centre ``(z, y, x)`` in mm.
        semi_axes: Semi-axis lengths in mm, along the rows of ``rotation``.
        rotation: 3 x 3 matrix whose rows are the ellipsoid's unit axes in ``(z, y, x)``;
            identity (axis-aligned) when None.

    Returns:
        float32 array of the box's shape.

    Example:
        >>> grid = SamplingGrid((5, 5, 5), (1.0, 1.0, 1.0), (-2.0, -2.0, -2.0))
        >>> field = ellipsoid_field(grid, (slice(0, 5),) * 3, (0, 0, 0), (2, 2, 2))
        >>> float(field[2, 2, 2]), float(field[2, 2, 4])
        (0.0, 1.0)
    """
    z, y, x = grid.coordinates(box)
    offsets = (z - np.float32(centre[0]), y - np.float32(centre[1]), x - np.float32(centre[2]))
    axes = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    total = np.zeros([s.stop - s.start for s in box], dtype=np.float32)
    for row, semi in zip(axes, semi_axes):
        projected = offsets[0] * np.float32(row[0]) + offsets[1] * np.float32(row[1]) + offsets[2] * np.float32(row[2])
        total += (projected / np.float32(semi)) ** 2
    return total


def smooth_centreline(control_points: np.ndarray, step_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample a Catmull-Rom curve through control points at (about) equal arc-length steps.

    Args:
        control_points: ``[n, 3]`` points ``(z, y, x)`` in mm, n >= 2.
        step_mm: Target distance between samples.

    Returns:
        ``(points [m, 3], parameter [m])``: samples and, for each, its position in control-point
        units (0 at the first control point, n - 1 at the last), for interpolating radii.

    Example:
        >>> points, parameter = smooth_centreline(np.array([[0, 0, 0], [0, 0, 10.0]]), step_mm=2.5)
        >>> points[:, 2].round(3).tolist(), parameter.tolist()
        ([0.0, 2.5, 5.0, 7.5, 10.0], [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    control = np.asarray(control_points, dtype=np.float64)
    padded = np.vstack([2 * control[0] - control[1], control, 2 * control[-1] - control[-2]])
    dense_per_span = 32
    local = np.linspace(0.0, 1.0, dense_per_span, endpoint=False)[:, None]
    pieces, parameters = [], []
    for span in range(len(control) - 1):
        p0, p1, p2, p3 = padded[span : span + 4]
        pieces.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * local
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * local**2
                + (3 * p1 - p0 - 3 * p2 + p3) * local**3
            )
        )
        parameters.append(span + local[:, 0])
    dense = np.vstack(pieces + [control[-1:]])
    dense_parameter = np.concatenate(parameters + [np.array([len(control) - 1.0])])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    count = max(int(np.ceil(arc[-1] / step_mm)), 1) + 1
    targets = np.linspace(0.0, arc[-1], count)
    points = np.stack([np.interp(targets, arc, dense[:, axis]) for axis in range(3)], axis=1)
    return points, np.interp(targets, arc, dense_parameter)


@dataclass(frozen=True)
class TubeField:
    """Per-voxel description of one or more swept tubes over a box.

    Attributes:
        box: The grid box the arrays cover.
        normalised: Elliptical normalised distance to the nearest tube (``<= 1`` inside).
        arc_mm: Arc length (mm from the first point) of the nearest centreline position.
        distance_mm: Euclidean distance (mm) to that centreline position.
        radius_mm: The smaller local semi-axis of the tube there.
        offset_mm: Signed offset from the centreline along the reference direction.
        tube_index: Which tube (of those rasterised together) is nearest.
    """

    box: Box
    normalised: np.ndarray
    arc_mm: np.ndarray
    distance_mm: np.ndarray
    radius_mm: np.ndarray
    offset_mm: np.ndarray
    tube_index: np.ndarray


def _tube_box(grid: SamplingGrid, tubes: Sequence[tuple[np.ndarray, ...]], margin: float, swell: float) -> Box | None:
    reach = [max(radii_a.max(), radii_b.max()) * swell + margin + max(grid.spacing) for _, radii_a, radii_b in tubes]
    low = np.min([points.min(axis=0) - extra for (points, _, _), extra in zip(tubes, reach)], axis=0)
    high = np.max([points.max(axis=0) + extra for (points, _, _), extra in zip(tubes, reach)], axis=0)
    return grid.box(low, high)


def rasterize_tubes(
    grid: SamplingGrid,
    tubes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    reference: Sequence[float] = (0.0, 1.0, 0.0),
    margin_mm: float = 0.0,
    lobulation: Sequence[tuple[float, float, int, float]] = (),
) -> TubeField | None:
    """Rasterise tubes with elliptical cross-sections swept along sampled centrelines.

    Each tube is ``(points [n, 3] (z, y, x) mm, radius_a [n], radius_b [n])``: ``radius_a`` is
    the semi-axis along ``reference`` (projected perpendicular to the centreline), ``radius_b``
    the one perpendicular to both. Joints and ends are rounded (each segment is swept with an
    ellipsoidal end), and only each segment's own bounding box is evaluated.

    Args:
        grid: The voxel grid.
        tubes: The tubes; arc length continues from one tube to the next in this order.
        reference: Direction ``(z, y, x)`` that orients the cross-section (default posterior).
        margin_mm: Extra box margin around the tubes (to measure a little beyond the surface).
        lobulation: Terms ``(amplitude, arc frequency (rad/mm), angular order, phase)``; the
            radius is scaled by ``1 + sum(amplitude * sin(frequency * arc + order * angle + phase))``
            where ``angle`` goes round the cross-section (a lobulated, irregular surface).

    Returns:
        A :class:`TubeField`, or None when the tubes miss the grid.

    Example:
        >>> grid = SamplingGrid((10, 10, 30), (1.0, 1.0, 1.0), (-4.5, -4.5, -4.5))
        >>> tube = (np.array([[0.0, 0, 0], [0, 0, 20]]), np.array([3.0, 3]), np.array([3.0, 3]))
        >>> field = rasterize_tubes(grid, [tube])
        >>> bool(field.normalised.min() < 0.3), round(float(field.arc_mm.max()), 1)
        (True, 20.0)
    """
    box = _tube_box(grid, tubes, margin_mm, 1.0 + sum(abs(term[0]) for term in lobulation))
    if box is None:
        return None
    size = tuple(s.stop - s.start for s in box)
    normalised = np.full(size, np.inf, dtype=np.float32)
    arc_mm = np.zeros(size, dtype=np.float32)
    distance_mm = np.full(size, np.inf, dtype=np.float32)
    radius_mm = np.ones(size, dtype=np.float32)
    offset_mm = np.zeros(size, dtype=np.float32)
    tube_index = np.zeros(size, dtype=np.uint8)
    reference_vector = np.asarray(reference, dtype=np.float64)
    swell = 1.0 + sum(abs(term[0]) for term in lobulation)
    voxel = max(grid.spacing)
    arc_offset = 0.0
    for index, (points, radii_a, radii_b) in enumerate(tubes):
        lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
        starts = arc_offset + np.concatenate([[0.0], np.cumsum(lengths)])
        for segment in range(len(points) - 1):
            start, end = points[segment], points[segment + 1]
            largest = max(radii_a[segment : segment + 2].max(), radii_b[segment : segment + 2].max())
            reach = largest * swell + margin_mm + voxel
            sub = grid.box(np.minimum(start, end) - reach, np.maximum(start, end) + reach)
            if sub is None:
                continue
            sub = tuple(slice(max(s.start, b.start), min(s.stop, b.stop)) for s, b in zip(sub, box))
            if any(s.stop <= s.start for s in sub):
                continue
            local = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(sub, box))
            _sweep_segment(
                grid, sub, start, end, lengths[segment], starts[segment],
                (radii_a[segment : segment + 2], radii_b[segment : segment + 2]), reference_vector, lobulation,
                (normalised[local], arc_mm[local], distance_mm[local], radius_mm[local], offset_mm[local], tube_index[local]),
                index,
            )  # fmt: skip
        arc_offset = starts[-1]
    return TubeField(box, normalised, arc_mm, distance_mm, radius_mm, offset_mm, tube_index)


def _sweep_segment(grid, sub, start, end, length, arc_start, radii, reference, lobulation, outputs, index) -> None:
    """Update the per-voxel minimum with one swept segment (helper of :func:`rasterize_tubes`)."""
    best, best_arc, best_distance, best_radius, best_offset, best_index = outputs
    tangent = (end - start) / max(length, 1e-6)
    axis_a = reference - np.dot(reference, tangent) * tangent
    if np.linalg.norm(axis_a) < 1e-6:  # centreline along the reference: use x as reference
        axis_a = np.array([0.0, 0.0, 1.0]) - tangent[2] * tangent
    axis_a /= np.linalg.norm(axis_a)
    axis_b = np.cross(tangent, axis_a)
    z, y, x = grid.coordinates(sub)
    vz, vy, vx = z - np.float32(start[0]), y - np.float32(start[1]), x - np.float32(start[2])
    along = vz * np.float32(tangent[0]) + vy * np.float32(tangent[1]) + vx * np.float32(tangent[2])
    fraction = np.clip(along / np.float32(max(length, 1e-6)), 0.0, 1.0)
    beyond = along - fraction * np.float32(length)
    component_a = vz * np.float32(axis_a[0]) + vy * np.float32(axis_a[1]) + vx * np.float32(axis_a[2])
    component_b = vz * np.float32(axis_b[0]) + vy * np.float32(axis_b[1]) + vx * np.float32(axis_b[2])
    radius_a = np.float32(radii[0][0]) + fraction * np.float32(radii[0][1] - radii[0][0])
    radius_b = np.float32(radii[1][0]) + fraction * np.float32(radii[1][1] - radii[1][0])
    arc = np.float32(arc_start) + fraction * np.float32(length)
    if lobulation:
        angle = np.arctan2(component_b, component_a)
        scale = np.ones_like(angle)
        for amplitude, frequency, order, phase in lobulation:
            wave = np.float32(frequency) * arc + np.float32(order) * angle + np.float32(phase)
            scale += np.float32(amplitude) * np.sin(wave)
        radius_a, radius_b = radius_a * scale, radius_b * scale
    smaller = np.minimum(radius_a, radius_b)
    value = np.sqrt((component_a / radius_a) ** 2 + (component_b / radius_b) ** 2 + (beyond / smaller) ** 2)
    closer = value < best
    best[closer] = value[closer]
    best_arc[closer] = np.broadcast_to(arc, value.shape)[closer]
    distance = np.sqrt(component_a**2 + component_b**2 + beyond**2)
    best_distance[closer] = distance[closer]
    best_radius[closer] = np.broadcast_to(smaller, value.shape)[closer]
    best_offset[closer] = np.broadcast_to(component_a, value.shape)[closer]
    best_index[closer] = index


def axial_diameter_mm(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Longest axial diameter of a mask: over axial slices, the largest in-plane Feret diameter
    between voxel centres (the convention of :mod:`mayo_dx.imaging.measure`).

    Measured centre to centre, a row of n pixels measures n - 1 pixels and a single voxel 0.

    Args:
        mask: Boolean ``[z, y, x]`` array.
        spacing: Voxel size ``(z, y, x)`` in mm.

    Returns:
        The diameter in mm (0.0 for an empty mask).

    Example:
        >>> mask = np.zeros((1, 5, 5), dtype=bool); mask[0, 2, 1:4] = True
        >>> axial_diameter_mm(mask, (1.0, 0.5, 0.5))
        1.0
    """
    longest = 0.0
    for plane in mask:
        rows, columns = np.nonzero(plane)
        if rows.size == 0:
            continue
        points = np.stack([rows * float(spacing[1]), columns * float(spacing[2])], axis=1)
        if points.shape[0] > 3:
            try:
                points = points[ConvexHull(points).vertices]
            except QhullError:  # collinear pixels: every point is on the hull anyway
                pass
        differences = points[:, None, :] - points[None, :, :]
        longest = max(longest, float(np.sqrt((differences**2).sum(axis=-1)).max()))
    return round(longest, 6)
