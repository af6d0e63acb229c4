"""DICOM series discovery: which CT series a folder holds, which one to read, and why.

:func:`discover_series` reads every file's header once (any file name; non-DICOM files and
DICOMDIR are noted and skipped), groups files by SeriesInstanceUID (files without one by what
else they share, see :attr:`~mayo_dx.imaging.dicom_headers.DicomHeader.fallback_key`), keeps
axial CT image series and ranks them: most slices, then thinnest SliceThickness, then a
soft-tissue kernel over an unknown over a sharp one, then the lowest SeriesNumber. Every
series not chosen is reported with a reason; nothing identifying is written in reasons.
The public names are re-exported by :mod:`mayo_dx.imaging.dicom`.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> discover_series(get_testdata_file("CT_small.dcm")).describe()
    ['chosen series 1: 1 axial slice, 5 mm, kernel STANDARD (soft tissue)']
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mayo_dx.errors import UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.dicom_headers import DicomHeader, read_header, sop_class_name
from mayo_dx.imaging.geometry import plane_name

__all__ = [
    "DiscoveryReport",
    "SeriesSummary",
    "SkippedSeries",
    "UNIDENTIFIED_PREFIX",
    "discover_series",
    "kernel_class",
]

logger = logging.getLogger(__name__)

#: Series key given to files without SeriesInstanceUID, grouped by ``DicomHeader.fallback_key``.
UNIDENTIFIED_PREFIX = "unidentified-series-"

_SHARP_WORDS = ("BONE", "LUNG", "SHARP", "EDGE", "DETAIL", "HIGH", "ULTRA")
_SOFT_WORDS = ("STANDARD", "SOFT", "SMOOTH", "BODY", "ABDOMEN")
_KERNEL_NUMBER = re.compile(r"^[A-Z]{1,2}(\d{2})")
_KERNEL_RANK = {"soft tissue": 0, "unknown": 1, "sharp": 2}


def kernel_class(kernel: str | None) -> str:
    """Classify a reconstruction kernel as ``"soft tissue"``, ``"sharp"`` or ``"unknown"``.

    Words decide first (STANDARD/SOFT vs BONE/LUNG/SHARP/EDGE/DETAIL); otherwise a Siemens- or
    Canon-style number (``B30f``, ``Br38f``, ``FC08``): up to 45 soft tissue, 50 and above sharp.

    Example:
        >>> kernel_class("Br38f\\\\3"), kernel_class("B70f"), kernel_class("BONEPLUS"), kernel_class(None)
        ('soft tissue', 'sharp', 'sharp', 'unknown')
    """
    text = (kernel or "").upper()
    if any(word in text for word in _SHARP_WORDS):
        return "sharp"
    if any(word in text for word in _SOFT_WORDS):
        return "soft tissue"
    match = _KERNEL_NUMBER.match(text)
    if match:
        number = int(match.group(1))
        return "soft tissue" if number <= 45 else "sharp" if number >= 50 else "unknown"
    return "unknown"


@dataclass(frozen=True)
class SeriesSummary:
    """A usable CT series (no patient data; the UID is kept so a caller can choose it).

    Attributes:
        series_uid: SeriesInstanceUID, or ``unidentified-series-N`` for files without one (pass
            it as ``series_uid=`` to read this series).
        series_number: SeriesNumber, when present.
        slice_count: Frames that are not localizers.
        slice_thickness_mm: SliceThickness of the first image.
        convolution_kernel: Reconstruction kernel text.
        kernel_class: ``"soft tissue"``, ``"sharp"`` or ``"unknown"``.
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        files: The series' CT image files.
        localizers_ignored: Localizer images that shared this series' UID and were left out.
        unplaced_ignored: Images left out for lack of position, orientation or pixel spacing
            (e.g. a header cut short).
    """

    series_uid: str
    series_number: int | None
    slice_count: int
    slice_thickness_mm: float | None
    convolution_kernel: str | None
    kernel_class: str
    plane: str
    files: tuple[Path, ...] = field(repr=False)
    localizers_ignored: int = 0
    unplaced_ignored: int = 0

    def describe(self) -> str:
        """One PHI-free sentence, e.g. ``series 3: 120 axial slices, 1.0 mm, kernel B30f (soft tissue)``."""
        thickness = f"{self.slice_thickness_mm:g} mm" if self.slice_thickness_mm else "thickness unknown"
        kernel = f"kernel {self.convolution_kernel} ({self.kernel_class})" if self.convolution_kernel else "kernel unknown"
        number = self.series_number if self.series_number is not None else "?"
        slices = "slice" if self.slice_count == 1 else "slices"
        return f"series {number}: {self.slice_count} {self.plane} {slices}, {thickness}, {kernel}"

    def _rank(self) -> tuple[Any, ...]:
        return (
            -self.slice_count,
            self.slice_thickness_mm if self.slice_thickness_mm else math.inf,
            _KERNEL_RANK[self.kernel_class],
            self.series_number if self.series_number is not None else math.inf,
            self.series_uid,
        )


@dataclass(frozen=True)
class SkippedSeries:
    """A series discovery did not choose, and why.

    ``code`` is machine-readable: ``not_chosen`` (another series ranked first), ``not_axial``,
    ``not_ct``, ``localizer`` or ``no_geometry``. ``summary`` is set for ``not_chosen`` and
    ``not_axial`` series, which can still be read with ``series_uid=``.
    """

    series_uid: str | None
    series_number: int | None
    file_count: int
    code: str
    reason: str
    summary: SeriesSummary | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One PHI-free sentence."""
        number = self.series_number if self.series_number is not None else "?"
        return f"series {number} ({self.file_count} files) skipped: {self.reason}"


@dataclass(frozen=True)
class DiscoveryReport:
    """What a folder holds: the chosen CT series, the other candidates, and everything skipped.

    Attributes:
        chosen: The series :func:`read_dicom_series` reads by default (None when none fits).
        candidates: Every usable axial CT series, best first (``chosen`` is the first).
        skipped: Series not chosen, each with a reason (other candidates included).
        ignored_files: ``(file name, reason)`` for files that are not DICOM images of a series.
    """

    chosen: SeriesSummary | None
    candidates: tuple[SeriesSummary, ...]
    skipped: tuple[SkippedSeries, ...]
    ignored_files: tuple[tuple[str, str], ...]
    headers: dict[str, tuple[DicomHeader, ...]] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON types, without UIDs or file names (series are named by SeriesNumber)."""
        def series(summary: SeriesSummary) -> dict[str, Any]:
            return {"series_number": summary.series_number, "slice_count": summary.slice_count,
                    "slice_thickness_mm": summary.slice_thickness_mm, "convolution_kernel": summary.convolution_kernel,
                    "kernel_class": summary.kernel_class, "plane": summary.plane}

        return {
            "chosen": series(self.chosen) if self.chosen else None,
            "skipped": [{"series_number": item.series_number, "file_count": item.file_count, "code": item.code,
                         "reason": item.reason} for item in self.skipped],
            "ignored_files": dict(Counter(reason for _, reason in self.ignored_files)),
        }

    def describe(self) -> list[str]:
        """PHI-free lines: the choice, each skipped series, and ignored files counted by reason."""
        lines = [f"chosen {self.chosen.describe()}" if self.chosen else "no usable axial CT series"]
        lines += [series.describe() for series in self.skipped]
        for reason, count in sorted(Counter(reason for _, reason in self.ignored_files).items()):
            lines.append(f"{count} file{'s' if count > 1 else ''} ignored: {reason}")
        return lines


def _source_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise UnreadableFile(f"{path.name}: no such file or folder")
        if path.is_file():
            return [path]
        return sorted(item for item in path.rglob("*") if item.is_file())
    files = [Path(item) for item in source]
    missing = [item.name for item in files if not item.is_file()]
    if missing:
        raise UnreadableFile(f"{missing[0]}: no such file")
    return files


def _has_geometry(header: DicomHeader) -> bool:
    return all(
        frame.position is not None and frame.orientation is not None and frame.pixel_spacing is not None
        for frame in header.frames
        if not frame.is_localizer
    )


def _classify(uid: str, headers: list[DicomHeader]) -> tuple[SeriesSummary | None, SkippedSeries | None]:
    number = next((header.series_number for header in headers if header.series_number is not None), None)

    def skip(code: str, reason: str) -> tuple[None, SkippedSeries]:
        return None, SkippedSeries(uid or None, number, len(headers), code, reason)

    images = [header for header in headers if header.is_ct_image]
    if not images:
        first = headers[0]
        modality = f" (modality {first.modality})" if first.modality else ""
        return skip("not_ct", f"{sop_class_name(first.sop_class_uid)}{modality}, not a CT image")
    modalities = sorted({header.modality for header in images if header.modality and header.modality != "CT"})
    if modalities:
        return skip("not_ct", f"modality {', '.join(modalities)}, not CT")
    volume_images = [header for header in images if not header.is_localizer]
    if not volume_images:
        return skip("localizer", "localizer (scout) images")
    placed = [header for header in volume_images if _has_geometry(header)]
    if not placed:
        return skip("no_geometry", "missing ImagePositionPatient, ImageOrientationPatient or PixelSpacing")
    frames = [frame for header in placed for frame in header.frames if not frame.is_localizer]
    plane = Counter(plane_name(frame.orientation) for frame in frames).most_common(1)[0][0]  # type: ignore[arg-type]
    acquisition = volume_images[0].acquisition
    summary = SeriesSummary(
        series_uid=uid,
        series_number=number,
        slice_count=len(frames),
        slice_thickness_mm=acquisition.slice_thickness_mm,
        convolution_kernel=acquisition.convolution_kernel,
        kernel_class=kernel_class(acquisition.convolution_kernel),
        plane=plane,
        files=tuple(header.path for header in placed),
        localizers_ignored=len(images) - len(volume_images),
        unplaced_ignored=len(volume_images) - len(placed),
    )
    if plane != "axial":
        return None, SkippedSeries(uid, number, len(headers), "not_axial", f"{plane} images, not axial", summary)
    return summary, None


def discover_series(source: str | Path | Sequence[str | Path]) -> DiscoveryReport:
    """Find the CT series in a folder (searched recursively), a file, or a list of files.

    Args:
        source: A folder, one DICOM file, or DICOM file paths.

    Returns:
        The chosen series, the other candidates and every skipped series or file with a reason.

    Raises:
        UnreadableFile: the path does not exist.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> report = discover_series(get_testdata_file("CT_small.dcm"))
        >>> report.chosen.slice_count, report.chosen.plane, report.skipped
        (1, 'axial', ())
    """
    groups: dict[str, list[DicomHeader]] = {}
    unidentified: dict[tuple[Any, ...], str] = {}
    ignored: list[tuple[str, str]] = []
    for path in _source_files(source):
        try:
            header = read_header(path)
        except (UnsupportedFormat, UnreadableFile) as error:
            reason = str(error).split(": ", 1)[-1]
            ignored.append((path.name, reason))
            continue
        if header.series_uid:
            key = header.series_uid
        else:  # de-identified files without SeriesInstanceUID: group by what else they share
            key = unidentified.setdefault(header.fallback_key, f"{UNIDENTIFIED_PREFIX}{len(unidentified) + 1}")
        groups.setdefault(key, []).append(header)
    candidates: list[SeriesSummary] = []
    skipped: list[SkippedSeries] = []
    for uid, headers in groups.items():
        summary, skip = _classify(uid, headers)
        if skip is not None:
            skipped.append(skip)
        elif summary is not None:
            candidates.append(summary)
        if summary is not None:
            for header in headers:
                if not header.is_ct_image:
                    ignored.append((header.path.name, f"{sop_class_name(header.sop_class_uid)} inside a CT series"))
    candidates.sort(key=SeriesSummary._rank)
    chosen = candidates[0] if candidates else None
    for other in candidates[1:]:
        skipped.append(
            SkippedSeries(other.series_uid, other.series_number, len(other.files), "not_chosen",
                          f"another series was preferred ({other.describe()} vs {chosen.describe()})", other)  # type: ignore[union-attr]
        )
    for series in skipped:
        logger.info("%s", series.describe())
    headers_by_uid = {uid: tuple(headers) for uid, headers in groups.items()}
    return DiscoveryReport(chosen, tuple(candidates), tuple(skipped), tuple(ignored), headers_by_uid)
