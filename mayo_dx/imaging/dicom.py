"""DICOM CT series: discovery in a folder, choice, ordering, Hounsfield units, geometry checks.

A folder may hold several series (localizers, other kernels, secondary captures, dose reports,
DICOMDIR). :func:`discover_series` (from :mod:`mayo_dx.imaging.dicom_discovery`) reads every
file's header once (any name, no ``.dcm`` needed; non-DICOM files and DICOMDIR are noted and
skipped), groups by SeriesInstanceUID (files without one: by series number, frame of
reference, orientation, spacing, kernel and thickness) and keeps axial CT image series,
reporting every skipped series with a reason and no patient data. Headers are read once:
pixels are then decoded (:mod:`mayo_dx.imaging.dicom_pixels`) into one preallocated array.

Rules, in order:

* **Series choice**: among axial CT series (CT Image Storage or Enhanced CT; localizer images
  removed), the most slices wins, then the thinnest SliceThickness, then a soft-tissue kernel
  (e.g. ``B30f``, ``STANDARD``) over an unknown one over a sharp one (``B70f``, ``BONE``,
  ``LUNG``), then the lowest SeriesNumber. ``series_uid=`` overrides the choice.
* **Orientation**: a series is axial when its slice normal is within 45 degrees of the
  foot-head axis. Sagittal/coronal series are skipped by discovery; asked for explicitly
  (``series_uid=``) they are read and their axes permuted (never interpolated) into the
  ``[z, y, x]`` layout, with a warning. Mixed orientations in one series are refused.
* **Ordering and geometry** (:mod:`mayo_dx.imaging.geometry`): slices sorted by position on the
  slice normal; gantry tilt refused (:class:`~mayo_dx.errors.GantryTiltError`); gaps over
  1.5 x the median step refused (:class:`~mayo_dx.errors.SliceGapError`); uneven spacing over
  1 % warned; spacing from positions, never from SliceThickness.
* **Duplicates**: slices at one position with identical pixels and rescale are dropped (one
  kept) with a warning; with different pixels they are refused
  (:class:`~mayo_dx.errors.DuplicateSliceError`).
* **Minimum size**: fewer than ``min_slices`` (default 8, about 4 cm at 5 mm: fewer is a scout
  or a few key images, not a volume a 3-D model can use) raises
  :class:`~mayo_dx.errors.TooFewSlices`; ``min_slices=1`` reads a single slice.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> volume = read_dicom_series(get_testdata_file("CT_small.dcm"), min_slices=1)
    >>> volume.shape, volume.hu.dtype.name, volume.source_format
    ((1, 128, 128), 'int16', 'dicom')
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from mayo_dx.errors import (
    DuplicateSliceError,
    InputError,
    MayoDxError,
    SeriesNotFound,
    TooFewSlices,
)
from mayo_dx.imaging.dicom_discovery import (
    UNIDENTIFIED_PREFIX,
    DiscoveryReport,
    SeriesSummary,
    SkippedSeries,
    discover_series,
    kernel_class,
)
from mayo_dx.imaging.dicom_headers import MULTI_FRAME_CT, DicomHeader
from mayo_dx.imaging.dicom_pixels import decode_frames, to_hounsfield
from mayo_dx.imaging.geometry import arrange_slices, plane_name, to_nearest_lps
from mayo_dx.imaging.volume import CtVolume

__all__ = [
    "DEFAULT_MIN_SLICES",
    "DiscoveryReport",
    "SeriesSummary",
    "SkippedSeries",
    "UNIDENTIFIED_PREFIX",
    "discover_series",
    "kernel_class",
    "read_dicom_series",
]

#: Default minimum number of slices for a usable CT volume.
DEFAULT_MIN_SLICES = 8


def _no_series_message(report: DiscoveryReport, where: str) -> str:
    if not report.skipped and not report.ignored_files:
        return f"{where}: no files found"
    return f"{where}: no axial CT series to read; " + "; ".join(report.describe()[1:])


def _select(report: DiscoveryReport, series_uid: str | None, where: str) -> tuple[tuple[DicomHeader, ...], list[str]]:
    """The headers of the series to read, and warnings about the choice."""
    if series_uid is None:
        if report.chosen is None:
            raise SeriesNotFound(_no_series_message(report, where))
        summary = report.chosen
    else:
        summary = next((series for series in report.candidates if series.series_uid == series_uid), None)
        if summary is None:
            skip = next((series for series in report.skipped if series.series_uid == series_uid), None)
            if skip is None:
                raise SeriesNotFound(f"{where}: no series with the requested SeriesInstanceUID")
            if skip.summary is None:
                raise SeriesNotFound(f"{where}: the requested series cannot be read: {skip.reason}")
            summary = skip.summary
    assert summary is not None
    files = set(summary.files)
    headers = tuple(header for header in report.headers[summary.series_uid] if header.path in files)
    warnings = []
    if summary.series_uid.startswith(UNIDENTIFIED_PREFIX):
        warnings.append(
            "the files carry no SeriesInstanceUID; grouped by series number, frame of reference, "
            "orientation, pixel spacing, kernel and slice thickness"
        )
    unreadable = sum("cannot be parsed" in reason for _, reason in report.ignored_files)
    if unreadable:
        warnings.append(f"{unreadable} file(s) with an unreadable DICOM header were ignored (truncated?)")
    if summary.unplaced_ignored:
        warnings.append(
            f"{summary.unplaced_ignored} image(s) without position, orientation or pixel spacing were left out"
        )
    if summary.localizers_ignored:
        warnings.append(f"{summary.localizers_ignored} localizer image(s) in the series were left out")
    return headers, warnings


def _build_volume(headers: Sequence[DicomHeader], min_slices: int, workers: int, warnings: list[str]) -> CtVolume:
    items = [(header, index) for header in headers for index, frame in enumerate(header.frames) if not frame.is_localizer]
    frames = [header.frames[index] for header, index in items]
    first = headers[0]
    stack = arrange_slices(
        [frame.position for frame in frames],  # type: ignore[misc]
        [frame.orientation for frame in frames],  # type: ignore[misc]
        [frame.pixel_spacing for frame in frames],  # type: ignore[misc]
        [(header.rows, header.columns) for header, _ in items],
        single_slice_spacing=first.acquisition.slice_thickness_mm,
    )
    if len(stack.order) < min_slices:
        raise TooFewSlices(
            f"the series has {len(stack.order)} distinct slice(s); at least {min_slices} are required (min_slices={min_slices})"
        )
    warnings = warnings + list(stack.warnings)
    kept = [items[index] for index in stack.order]
    raw = decode_frames(kept, workers=workers)
    if stack.duplicates:
        position = {int(index): place for place, index in enumerate(stack.order)}
        others = decode_frames([items[other] for _, other in stack.duplicates], workers=1)
        for (keep, other), pixels in zip(stack.duplicates, others):
            same_rescale = (frames[keep].slope, frames[keep].intercept) == (frames[other].slope, frames[other].intercept)
            if not same_rescale or not (raw[position[keep]] == pixels).all():
                raise DuplicateSliceError(
                    f"two slices share position {position[keep] + 1} of {len(stack.order)} but hold different "
                    "pixels (two reconstructions mixed in one series?)"
                )
        warnings.append(f"{len(stack.duplicates)} duplicate slice(s) with identical pixels dropped")
    hu = to_hounsfield(raw, [frames[index].slope for index in stack.order], [frames[index].intercept for index in stack.order])
    if len(stack.order) == 1:
        warnings.append(f"single slice: z spacing {stack.spacing_z:g} mm taken from SliceThickness (or 1 mm)")
    tilt = first.gantry_tilt
    if tilt is not None and abs(tilt) > 0.01:
        warnings.append(
            f"GantryDetectorTilt {tilt:g} degrees recorded; slice positions lie along the slice normal, so the "
            "direction matrix holds the tilted plane (no resampling)"
        )
    pixel_spacing = frames[int(stack.order[0])].pixel_spacing or (1.0, 1.0)
    spacing = (stack.spacing_z, pixel_spacing[0], pixel_spacing[1])
    hu, spacing, origin, direction, permuted = to_nearest_lps(hu, spacing, stack.origin, stack.direction)
    if permuted:
        warnings.append(f"{plane_name(frames[0].orientation)} series: axes permuted into [z, y, x] layout (no interpolation)")  # type: ignore[arg-type]
    hu.flags.writeable = False  # ours alone: CtVolume keeps it without a defensive copy
    return CtVolume(
        hu=hu,
        spacing=spacing,
        origin=origin,
        direction=direction,
        acquisition=first.acquisition,
        warnings=tuple(warnings),
        source_format="dicom-enhanced" if any(header.sop_class_uid in MULTI_FRAME_CT for header in headers) else "dicom",
    )


def read_dicom_series(
    source: str | Path | Sequence[str | Path],
    *,
    series_uid: str | None = None,
    min_slices: int = DEFAULT_MIN_SLICES,
    workers: int = 1,
) -> CtVolume:
    """Read one CT series (classic slices or an Enhanced CT file) as Hounsfield units.

    Args:
        source: A folder (searched recursively), one DICOM file, or DICOM file paths.
        series_uid: Read this SeriesInstanceUID instead of the discovery rule's choice.
        min_slices: Fewest distinct slices accepted.
        workers: Processes decoding compressed pixel data: 1 (default) decodes here; N > 1 uses
            a persistent process pool (worth it only for single-threaded decoders; a calling
            script needs an ``if __name__ == "__main__":`` guard).

    Returns:
        The volume in the nearest LPS layout with acquisition facts and warnings.

    Raises:
        SeriesNotFound: no axial CT series (empty folder, no DICOM, only MR, localizers, ...).
        GeometryError: mixed orientations/sizes/spacings, gantry tilt, gaps, duplicates.
        TooFewSlices: fewer than ``min_slices`` slices.
        UnreadableFile: truncated or corrupt pixel data (named by file basename).
        MissingDependency: a compressed transfer syntax has no installed decoder.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> read_dicom_series(get_testdata_file("CT_small.dcm"), min_slices=1).spacing
        (5.0, 0.661468, 0.661468)
    """
    if min_slices < 1:
        raise ValueError(f"min_slices must be at least 1, got {min_slices}")
    where = Path(source).name if isinstance(source, (str, Path)) else f"{len(source)} files"
    report = discover_series(source)
    headers, warnings = _select(report, series_uid, where)
    try:
        return _build_volume(headers, min_slices, workers, warnings)
    except MayoDxError:
        raise
    except (ValueError, OSError) as error:  # anything unforeseen still surfaces as an input problem
        raise InputError(f"{where}: the series cannot be read ({type(error).__name__})") from error
