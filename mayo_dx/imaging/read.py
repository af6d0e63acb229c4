"""One entry point for CT input: a DICOM folder, a DICOM file (Enhanced CT), or NIfTI.

:func:`read_series` looks at what it is given and dispatches: a folder (or a list of files) to
the DICOM series reader with its discovery rules, a ``.nii``/``.nii.gz`` file to the NIfTI
reader, any other file that is DICOM by content (with or without ``.dcm``) to the DICOM reader.
Every path returns a :class:`~mayo_dx.imaging.volume.CtVolume` in the same LPS ``[z, y, x]``
layout, and ``min_slices`` applies to all of them.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> volume = read_series(get_testdata_file("CT_small.dcm"), min_slices=1)
    >>> volume.shape, volume.acquisition.manufacturer
    ((1, 128, 128), 'GE MEDICAL SYSTEMS')
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mayo_dx.errors import TooFewSlices, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.dicom import DEFAULT_MIN_SLICES, read_dicom_series
from mayo_dx.imaging.dicom_headers import looks_like_dicom
from mayo_dx.imaging.nifti import is_nifti_path, read_nifti
from mayo_dx.imaging.volume import CtVolume

__all__ = ["read_series"]


def read_series(
    path: str | Path | Sequence[str | Path],
    *,
    series_uid: str | None = None,
    min_slices: int = DEFAULT_MIN_SLICES,
    workers: int = 1,
) -> CtVolume:
    """Read a CT volume from a DICOM folder, DICOM file(s) or a NIfTI file.

    Args:
        path: A folder of DICOM files (searched recursively), one DICOM file (classic slice or
            Enhanced CT), a list of DICOM files, or a ``.nii``/``.nii.gz`` file.
        series_uid: DICOM only: read this SeriesInstanceUID instead of the discovery choice.
        min_slices: Fewest slices accepted (default 8; ``1`` allows a single slice).
        workers: DICOM only: processes decoding compressed pixel data (1: this process; N > 1: a
            persistent process pool, see :mod:`mayo_dx.imaging.dicom_pixels`).

    Returns:
        Hounsfield units ``[z, y, x]`` with spacing, LPS origin and direction, acquisition
        facts, warnings and the source format.

    Raises:
        UnreadableFile: the path does not exist, or a file is truncated or corrupt.
        UnsupportedFormat: neither DICOM nor NIfTI; SeriesNotFound (a subclass) when a folder
            holds no axial CT series.
        GeometryError: see :func:`~mayo_dx.imaging.dicom.read_dicom_series`.
        TooFewSlices: fewer than ``min_slices`` slices.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> read_series(get_testdata_file("CT_small.dcm"), min_slices=1).source_format
        'dicom'
    """
    if not isinstance(path, (str, Path)):
        return read_dicom_series(list(path), series_uid=series_uid, min_slices=min_slices, workers=workers)
    given = Path(path)
    if not given.exists():
        raise UnreadableFile(f"{given.name}: no such file or folder")
    if given.is_dir() or (not is_nifti_path(given) and looks_like_dicom(given)):
        return read_dicom_series(given, series_uid=series_uid, min_slices=min_slices, workers=workers)
    if not is_nifti_path(given):
        raise UnsupportedFormat(f"{given.name}: neither DICOM (by content) nor NIfTI (.nii, .nii.gz)")
    if series_uid is not None:
        raise UnsupportedFormat(f"{given.name}: series_uid applies to DICOM input, not NIfTI")
    volume = read_nifti(given)
    if volume.shape[0] < min_slices:
        raise TooFewSlices(f"the volume has {volume.shape[0]} slice(s); at least {min_slices} are required (min_slices={min_slices})")
    return volume
