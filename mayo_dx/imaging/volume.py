"""The typed CT value every reader returns and every model consumes.

A :class:`CtVolume` holds Hounsfield units as ``hu[z, y, x]`` with the geometry needed to map a
voxel index to a patient position, in DICOM's LPS convention (x to the patient's left, y to
the posterior, z to the head), and a few non-identifying acquisition facts a model needs.
No patient identifiers live on it.

Geometry: the world position (mm, LPS) of voxel ``(z, y, x)`` is
``origin + direction @ ([x, y, z] * spacing_xyz)``, where column 0 of ``direction`` is the unit
vector along increasing ``x`` (a DICOM row), column 1 along increasing ``y`` (a DICOM column)
and column 2 along increasing slice index ``z``.

Example:
    >>> import numpy as np
    >>> volume = CtVolume(hu=np.zeros((4, 8, 8), dtype=np.int16), spacing=(2.5, 0.8, 0.8))
    >>> volume.shape, volume.extent_mm
    ((4, 8, 8), (10.0, 6.4, 6.4))
    >>> volume.index_to_world((1, 0, 0)).tolist()
    [0.0, 0.0, 2.5]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence, Union

import numpy as np

from mayo_dx.errors import InputError

__all__ = ["AcquisitionInfo", "CtVolume", "Grid", "GridLike", "as_grid"]

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class AcquisitionInfo:
    """Non-identifying acquisition facts a model may depend on.

    Attributes:
        slice_thickness_mm: Reconstructed slice thickness.
        kvp: Tube voltage.
        contrast: True when a contrast agent is recorded, False when recorded absent, None unknown.
        manufacturer: Scanner manufacturer (a vendor name, not an institution).
        convolution_kernel: Reconstruction kernel (e.g. ``"B30f"``).
    """

    slice_thickness_mm: float | None = None
    kvp: float | None = None
    contrast: bool | None = None
    manufacturer: str | None = None
    convolution_kernel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the facts as plain JSON types."""
        return {
            "slice_thickness_mm": self.slice_thickness_mm,
            "kvp": self.kvp,
            "contrast": self.contrast,
            "manufacturer": self.manufacturer,
            "convolution_kernel": self.convolution_kernel,
        }


@dataclass(frozen=True)
class CtVolume:
    """A CT volume in Hounsfield units with its geometry, free of patient identifiers.

    Attributes:
        hu: ``[z, y, x]`` int16 or float32 Hounsfield units (read-only).
        spacing: Voxel size ``(z, y, x)`` in mm.
        origin: World position (mm, LPS) of voxel ``(0, 0, 0)``, as ``(x, y, z)``.
        direction: 3 x 3 matrix; columns are unit vectors along increasing x, y, z index.
        acquisition: Non-identifying acquisition facts.
        warnings: Geometry or acquisition warnings raised while reading (human sentences).
        source_format: ``"dicom"``, ``"dicom-enhanced"``, ``"nifti"`` or ``"array"``.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    acquisition: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    warnings: tuple[str, ...] = ()
    source_format: str = "array"

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu)
        if hu.ndim != 3:
            raise ValueError(f"hu must be a 3-D array [z, y, x], got shape {hu.shape}")
        if hu.dtype not in (np.int16, np.float32):
            hu = hu.astype(np.float32)
        if hu.flags.writeable:  # never freeze the caller's array: take a private copy
            hu = hu.copy()
            hu.flags.writeable = False
        spacing = tuple(float(value) for value in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"spacing must be three positive numbers (z, y, x) in mm, got {self.spacing}")
        origin = tuple(float(value) for value in self.origin)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"origin must be three finite numbers, got {self.origin}")
        direction = np.array(self.direction, dtype=np.float64).reshape(3, 3)
        if not np.allclose(np.abs(np.linalg.det(direction)), 1.0, atol=1e-3):
            raise ValueError("direction must be an orthonormal 3 x 3 matrix")
        direction.flags.writeable = False
        object.__setattr__(self, "hu", hu)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` voxel counts."""
        return tuple(int(size) for size in self.hu.shape)  # type: ignore[return-value]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size ``(z, y, x)`` in mm."""
        return tuple(round(size * step, 6) for size, step in zip(self.shape, self.spacing))  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4 x 4 matrix mapping ``(x, y, z, 1)`` voxel indices to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.array(self.spacing[::-1])[None, :]
        affine[:3, 3] = self.origin
        return affine

    def index_to_world(self, index_zyx: Sequence[float]) -> np.ndarray:
        """World position (LPS mm) of a voxel index given as ``(z, y, x)``."""
        z, y, x = (float(value) for value in index_zyx)
        return self.affine_lps[:3, :3] @ np.array([x, y, z]) + np.array(self.origin)

    def with_hu(self, hu: np.ndarray, **changes: Any) -> "CtVolume":
        """Return a copy with new voxel values (and optionally other changed fields)."""
        return replace(self, hu=hu, **changes)

    def summary(self) -> dict[str, Any]:
        """Return a PHI-free description (no voxels) as JSON types."""
        return {
            "shape_zyx": list(self.shape),
            "spacing_zyx_mm": list(self.spacing),
            "extent_zyx_mm": list(self.extent_mm),
            "dtype": str(self.hu.dtype),
            "acquisition": self.acquisition.to_dict(),
            "warnings": list(self.warnings),
            "source_format": self.source_format,
        }


@dataclass(frozen=True)
class Grid:
    """Voxel geometry without voxels, in :class:`CtVolume`'s conventions.

    Attributes:
        shape: Voxel counts ``(z, y, x)``; spacing: voxel size ``(z, y, x)`` mm.
        origin: World position (LPS mm) of voxel ``(0, 0, 0)`` as ``(x, y, z)``.
        direction: 3 x 3; columns are unit vectors along increasing x, y, z index.
    """

    shape: tuple[int, int, int]
    spacing: Triple
    origin: Triple = (0.0, 0.0, 0.0)
    direction: tuple[Triple, Triple, Triple] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def __post_init__(self) -> None:
        for name, kind in (("shape", int), ("spacing", float), ("origin", float)):
            object.__setattr__(self, name, tuple(kind(value) for value in getattr(self, name)))
        if len(self.shape) != 3 or len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError("a grid needs a 3-D shape and three positive spacings (z, y, x)")
        matrix = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row) for row in matrix))

    @classmethod
    def of(cls, volume: CtVolume) -> "Grid":
        """The grid of a :class:`CtVolume`."""
        return cls(volume.shape, volume.spacing, volume.origin, np.asarray(volume.direction))

    @property
    def affine_lps(self) -> np.ndarray:
        """4 x 4 matrix mapping ``(x, y, z, 1)`` voxel indices to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(self.direction) * np.asarray(self.spacing[::-1])[None, :]
        affine[:3, 3] = self.origin
        return affine

    def index_to_world(self, indices_zyx: np.ndarray) -> np.ndarray:
        """LPS positions ``[..., 3]`` (x, y, z mm) of ``[..., 3]`` (z, y, x) indices.

        Example:
            >>> Grid((2, 2, 2), (2.0, 1.0, 1.0)).index_to_world(np.array([1, 0, 1])).tolist()
            [1.0, 0.0, 2.0]
        """
        affine = self.affine_lps
        return np.asarray(indices_zyx, dtype=np.float64)[..., ::-1] @ affine[:3, :3].T + affine[:3, 3]

    def world_to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """Continuous ``[..., 3]`` (z, y, x) indices of LPS positions (x, y, z mm)."""
        inverse = np.linalg.inv(self.affine_lps)
        return (np.asarray(points_lps, dtype=np.float64) @ inverse[:3, :3].T + inverse[:3, 3])[..., ::-1]

    def to_dict(self) -> dict[str, Any]:
        """Return the grid as JSON types (``Grid(**grid.to_dict())`` rebuilds it)."""
        return {key: np.asarray(value).tolist() for key, value in asdict(self).items()}


GridLike = Union[Grid, CtVolume, Sequence[float]]


def as_grid(array: np.ndarray, grid: GridLike) -> Grid:
    """The :class:`Grid` of ``array`` from a grid, a volume or a ``(z, y, x)`` spacing.

    Raises:
        InputError: If the array shape differs from the grid shape.

    Example:
        >>> as_grid(np.zeros((2, 3, 4)), (2.0, 1.0, 1.0)).shape
        (2, 3, 4)
    """
    if isinstance(grid, CtVolume):
        grid = Grid.of(grid)
    elif not isinstance(grid, Grid):
        grid = Grid(np.shape(array), tuple(grid))
    if tuple(grid.shape) != tuple(np.shape(array)):
        raise InputError(f"array shape {np.shape(array)} does not match its grid {grid.shape}")
    return grid
