"""NIfTI in and out (nibabel): CT volumes and label maps in mayo-dx's LPS ``[z, y, x]`` layout.

nibabel's affine maps ``(i, j, k)`` voxel indices to RAS millimetres; mayo-dx works in DICOM's
LPS. Reading negates the first two world axes, transposes ``[i, j, k]`` to ``[z, y, x]`` and
then flips/permutes axes (never interpolating) into the nearest LPS layout, exactly as the
DICOM reader does, so a label map drawn on a DICOM series aligns with it voxel for voxel.
Writing does the reverse and stores the affine as both sform and qform (code 1, scanner).

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from mayo_dx.imaging.volume import CtVolume
    >>> volume = CtVolume(hu=np.arange(24, dtype=np.int16).reshape(2, 3, 4), spacing=(3.0, 1.0, 0.5), origin=(10.0, -5.0, 2.0))
    >>> path = write_nifti(volume, Path(tempfile.mkdtemp()) / "ct.nii.gz")
    >>> again = read_nifti(path)
    >>> again.spacing, again.origin, bool((again.hu == volume.hu).all())
    ((3.0, 1.0, 0.5), (10.0, -5.0, 2.0), True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mayo_dx.errors import GeometryError, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.geometry import to_nearest_lps
from mayo_dx.imaging.volume import CtVolume

__all__ = ["NIFTI_SUFFIXES", "is_nifti_path", "read_nifti", "read_nifti_labels", "write_nifti"]

#: File name endings read and written as NIfTI.
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def is_nifti_path(path: str | Path) -> bool:
    """True when the name ends in ``.nii`` or ``.nii.gz`` (case-insensitive).

    Example:
        >>> is_nifti_path("case_001.nii.gz"), is_nifti_path("IM0001")
        (True, False)
    """
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _load(path: str | Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """Voxels ``[i, j, k]`` (scaling applied), the LPS affine, and nibabel's array proxy."""
    import nibabel

    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{path.name}: no such file")
    try:
        image = nibabel.load(path, mmap=False)  # own the voxels; no file left mapped
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises ImageFileError, EOFError, zlib.error, OSError
        raise UnreadableFile(f"{path.name}: not a readable NIfTI file ({type(error).__name__}; truncated?)") from error
    if not isinstance(image, (nibabel.Nifti1Image, nibabel.Nifti2Image)):
        raise UnsupportedFormat(f"{path.name}: a {type(image).__name__}, not NIfTI")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UnsupportedFormat(f"{path.name}: expected a 3-D image, got shape {data.shape}")
    return data, _RAS_TO_LPS @ image.affine, image.dataobj


def _geometry(affine_lps: np.ndarray, name: str) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    """Spacing ``(z, y, x)``, origin and direction from a 4 x 4 LPS affine; refuses shear."""
    columns = affine_lps[:3, :3]
    spacing_xyz = np.linalg.norm(columns, axis=0)
    if np.any(spacing_xyz <= 0) or not np.all(np.isfinite(affine_lps)):
        raise GeometryError(f"{name}: the affine has a zero or non-finite voxel size")
    direction = columns / spacing_xyz
    if np.abs(direction.T @ direction - np.eye(3)).max() > 1e-3:
        raise GeometryError(f"{name}: the affine is sheared (voxel axes not orthogonal); resample it first")
    origin = tuple(float(value) for value in affine_lps[:3, 3])
    return tuple(float(value) for value in spacing_xyz[::-1]), origin, direction  # type: ignore[return-value]


def _integral_scaling(proxy: Any) -> bool:
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    return all(value is None or (np.isfinite(value) and float(value).is_integer()) for value in (slope, inter))


def read_nifti(path: str | Path) -> CtVolume:
    """Read a NIfTI CT volume (``.nii`` or ``.nii.gz``) in Hounsfield units.

    Values are int16 when stored as integers with integral scaling and within int16, else
    float32. A volume whose minimum is not below zero gets a warning (not HU?).

    Args:
        path: The NIfTI file.

    Returns:
        The volume in the nearest LPS ``[z, y, x]`` layout.

    Raises:
        UnreadableFile: missing, truncated or corrupt file.
        UnsupportedFormat: not 3-D (a 4-D series with more than one volume).
        GeometryError: a sheared or degenerate affine.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> path = write_nifti(CtVolume(hu=np.full((2, 2, 2), -1000, np.int16), spacing=(1, 1, 1)), Path(tempfile.mkdtemp()) / "a.nii")
        >>> read_nifti(path).hu.dtype.name
        'int16'
    """
    name = Path(path).name
    data, affine_lps, proxy = _load(path)
    spacing, origin, direction = _geometry(affine_lps, name)
    hu_zyx = np.transpose(data, (2, 1, 0))
    hu_zyx, spacing, origin, direction, _ = to_nearest_lps(hu_zyx, spacing, origin, direction)
    warnings: list[str] = []
    low, high = (float(hu_zyx.min()), float(hu_zyx.max())) if hu_zyx.size else (0.0, 0.0)
    if data.dtype.kind in "iub" and _integral_scaling(proxy) and low >= -32768 and high <= 32767:
        hu = np.ascontiguousarray(hu_zyx, dtype=np.int16)
    else:
        hu = np.ascontiguousarray(hu_zyx, dtype=np.float32)
    if hu is data or np.shares_memory(hu, data):
        hu.flags.writeable = False  # nibabel's fresh array, ours alone: no defensive copy needed
    if low >= 0:
        warnings.append(f"values range from {low:g} to {high:g}: no negative values, so probably not Hounsfield units")
    return CtVolume(hu=hu, spacing=spacing, origin=origin, direction=direction, warnings=tuple(warnings), source_format="nifti")


def read_nifti_labels(path: str | Path, *, like: CtVolume | None = None, tolerance_mm: float = 0.01) -> np.ndarray:
    """Read a NIfTI label map as ``[z, y, x]`` uint8 (uint16 above 255), in the readers' layout.

    Args:
        path: The label NIfTI file.
        like: When given, the labels must share its shape and geometry.
        tolerance_mm: Largest origin or voxel-size difference accepted against ``like``.

    Returns:
        Integer labels (0 background), read-only.

    Raises:
        GeometryError: the labels do not match ``like`` (shape, spacing, origin or direction).
        UnsupportedFormat: negative or non-integer labels.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> volume = CtVolume(hu=np.zeros((2, 3, 3), np.int16), spacing=(2, 1, 1))
        >>> labels = np.zeros((2, 3, 3), np.uint8); labels[1, 1, 1] = 7
        >>> path = write_nifti(labels, Path(tempfile.mkdtemp()) / "seg.nii.gz", like=volume)
        >>> read_nifti_labels(path, like=volume)[1, 1, 1]
        np.uint8(7)
    """
    name = Path(path).name
    data, affine_lps, _ = _load(path)
    spacing, origin, direction = _geometry(affine_lps, name)
    labels, spacing, origin, direction, _ = to_nearest_lps(np.transpose(data, (2, 1, 0)), spacing, origin, direction)
    if labels.size and (labels.min() < 0 or (labels.dtype.kind == "f" and not np.all(labels == np.round(labels)))):
        raise UnsupportedFormat(f"{name}: labels must be non-negative integers")
    dtype = np.uint8 if not labels.size or labels.max() <= 255 else np.uint16
    labels = np.ascontiguousarray(labels, dtype=dtype)
    if like is not None:
        problems = []
        if labels.shape != like.shape:
            problems.append(f"shape {labels.shape} vs {like.shape}")
        elif not np.allclose(spacing, like.spacing, atol=tolerance_mm, rtol=0):
            problems.append(f"spacing {tuple(round(v, 4) for v in spacing)} vs {tuple(round(v, 4) for v in like.spacing)} mm")
        if not np.allclose(origin, like.origin, atol=tolerance_mm, rtol=0):
            problems.append(f"origin differs by {np.abs(np.subtract(origin, like.origin)).max():.3f} mm")
        if not np.allclose(direction, like.direction, atol=1e-3):
            problems.append("direction differs")
        if problems:
            raise GeometryError(f"{name}: labels do not align with the volume: " + "; ".join(problems))
    labels.flags.writeable = False
    return labels


def _output_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype == np.bool_:
        return np.dtype(np.uint8)
    if array.dtype.kind in "iu":
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        for candidate in (np.uint8, np.uint16) if low >= 0 else ():
            if high <= np.iinfo(candidate).max:
                return np.dtype(candidate)
        return np.dtype(np.int16 if low >= -32768 and high <= 32767 else np.int32)
    return np.dtype(np.float32)


def write_nifti(data: CtVolume | np.ndarray, path: str | Path, *, like: CtVolume | None = None) -> Path:
    """Write a volume, or a ``[z, y, x]`` array on another volume's grid, as NIfTI.

    A :class:`CtVolume` is written with its own geometry and dtype. An array (e.g. a label
    map) needs ``like`` for its geometry; non-negative integers and booleans are written as
    uint8 (uint16 above 255) with the NIfTI "label" intent, other values as int16/int32/float32.

    Args:
        data: The volume or array.
        path: Destination ending in ``.nii`` or ``.nii.gz`` (gzip by suffix).
        like: The volume whose grid the array lies on (required for arrays).

    Returns:
        The path written.

    Raises:
        ValueError: an array without ``like`` or with a different shape.
        UnsupportedFormat: the path does not end in ``.nii`` or ``.nii.gz``.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> volume = CtVolume(hu=np.zeros((2, 2, 2), np.int16), spacing=(1, 1, 1))
        >>> write_nifti(np.ones((2, 2, 2), bool), Path(tempfile.mkdtemp()) / "mask.nii.gz", like=volume).name
        'mask.nii.gz'
    """
    import nibabel

    path = Path(path)
    if not is_nifti_path(path):
        raise UnsupportedFormat(f"{path.name}: a NIfTI file name must end in .nii or .nii.gz")
    if isinstance(data, CtVolume):
        array, geometry, is_label = data.hu, data, False
    else:
        if like is None:
            raise ValueError("write_nifti needs like=<CtVolume> to place an array in space")
        array, geometry = np.asarray(data), like
        if array.shape != like.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {like.shape}")
        is_label = array.dtype == np.bool_ or (array.dtype.kind in "iu" and (not array.size or array.min() >= 0))
    dtype = array.dtype if isinstance(data, CtVolume) else _output_dtype(array)
    affine = _RAS_TO_LPS @ geometry.affine_lps  # the flip is its own inverse
    image = nibabel.Nifti1Image(np.asarray(array, dtype=dtype).transpose(2, 1, 0), affine)
    image.header.set_data_dtype(dtype)
    image.header.set_xyzt_units("mm")
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    if is_label:
        image.header.set_intent("label")
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(image, path)
    return path
