"""DICOM CT headers: one pass over a file's header, never its pixels, kept free of identifiers.

:func:`read_header` reads a file with ``stop_before_pixels=True`` and keeps only what ordering,
geometry checks, decoding and :class:`~mayo_dx.imaging.volume.AcquisitionInfo` need: no names,
IDs, dates or institutions. Files are recognised by content (the ``DICM`` preamble, or a
preamble-less dataset starting with group 0008 or 0002, read with ``force=True``), not by
suffix. It records the file offset of the Pixel Data element, so native (uncompressed
little-endian) pixels are later read straight into the output array without a second header
parse, and encapsulated ones can be checked for truncation before a decoder sees them. Enhanced CT (multi-frame) files yield one :class:`FrameHeader` per frame from
the shared and per-frame functional groups.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> header = read_header(get_testdata_file("CT_small.dcm"))
    >>> header.modality, header.rows, header.frames[0].intercept, header.is_localizer
    ('CT', 128, -1024.0, False)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import UID

from mayo_dx.errors import UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.volume import AcquisitionInfo

__all__ = [
    "CT_IMAGE_STORAGE",
    "DICOMDIR_STORAGE",
    "DicomHeader",
    "ENHANCED_CT_STORAGE",
    "FrameHeader",
    "looks_like_dicom",
    "read_header",
    "sop_class_name",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.2"
DICOMDIR_STORAGE = "1.2.840.10008.1.3.10"
MULTI_FRAME_CT = (ENHANCED_CT_STORAGE, LEGACY_ENHANCED_CT_STORAGE)

_SOP_CLASS_NAMES = {
    CT_IMAGE_STORAGE: "CT image",
    ENHANCED_CT_STORAGE: "Enhanced CT image",
    LEGACY_ENHANCED_CT_STORAGE: "Legacy Converted Enhanced CT image",
    DICOMDIR_STORAGE: "DICOMDIR media index",
    "1.2.840.10008.5.1.4.1.1.7": "secondary capture",
    "1.2.840.10008.5.1.4.1.1.88.67": "radiation dose report",
    "1.2.840.10008.5.1.4.1.1.11.1": "presentation state",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",
    "1.2.840.10008.5.1.4.1.1.4": "MR image",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR image",
    "1.2.840.10008.5.1.4.1.1.128": "PET image",
    "1.2.840.10008.5.1.4.1.1.1": "computed radiography image",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT structure set",
}


def sop_class_name(uid: str) -> str:
    """A short human name for a SOP class UID (the UID itself when unknown).

    Example:
        >>> sop_class_name("1.2.840.10008.5.1.4.1.1.88.67")
        'radiation dose report'
    """
    if uid in _SOP_CLASS_NAMES:
        return _SOP_CLASS_NAMES[uid]
    for prefix, name in (
        ("1.2.840.10008.5.1.4.1.1.7.", "secondary capture"),
        ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
        ("1.2.840.10008.5.1.4.1.1.4.", "MR image"),
    ):
        if uid.startswith(prefix):
            return name
    return f"SOP class {uid}" if uid else "unknown SOP class"


@dataclass(frozen=True)
class FrameHeader:
    """Geometry and rescale of one frame (a whole single-frame file, or one Enhanced CT frame)."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    is_localizer: bool = False


@dataclass(frozen=True)
class DicomHeader:
    """The identifier-free facts of one DICOM file that the CT reader uses.

    ``fallback_key`` groups files that lack a SeriesInstanceUID (de-identified exports): series
    number, frame of reference, SOP class, orientation, pixel spacing, kernel and thickness.
    """

    path: Path
    sop_class_uid: str
    modality: str
    series_uid: str | None
    series_number: int | None
    image_type: tuple[str, ...]
    transfer_syntax: str
    pixel_offset: int | None
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    photometric: str
    gantry_tilt: float | None
    acquisition: AcquisitionInfo
    frames: tuple[FrameHeader, ...]
    fallback_key: tuple[Any, ...] = ()

    @property
    def is_ct_image(self) -> bool:
        """True for CT Image Storage and (Legacy Converted) Enhanced CT Image Storage."""
        return self.sop_class_uid == CT_IMAGE_STORAGE or self.sop_class_uid in MULTI_FRAME_CT

    @property
    def is_native(self) -> bool:
        """True for uncompressed little-endian pixel data at a known offset (read directly)."""
        syntax = UID(self.transfer_syntax)
        return self.pixel_offset is not None and not syntax.is_encapsulated

    @property
    def is_localizer(self) -> bool:
        """True when ImageType marks a localizer (scout, topogram)."""
        return "LOCALIZER" in self.image_type or all(frame.is_localizer for frame in self.frames)


def looks_like_dicom(path: Path) -> bool:
    """True for a ``DICM`` preamble, or a preamble-less dataset starting at group 0008/0002.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> looks_like_dicom(Path(get_testdata_file("CT_small.dcm")))
        True
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def _numbers(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(item) for item in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(item).strip() for item in value)
    else:
        text = str(value).strip()
    return text or None


def _first_item(dataset: Any, keyword: str) -> Any:
    if dataset is None:
        return None
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _contrast(dataset: Any) -> bool | None:
    """True when an agent is recorded, False when recorded as none, None when unknown."""
    agent = _text(dataset.get("ContrastBolusAgent"))
    route = _text(dataset.get("ContrastBolusRoute"))
    if agent or route:
        word = (agent or route or "").strip().upper()
        return word not in {"NONE", "NO", "N", "-", "0", "NO CONTRAST", "NON-CONTRAST"}
    if dataset.get("ContrastBolusAgentSequence"):
        return True
    usage = _first_item(_first_item(dataset, "SharedFunctionalGroupsSequence"), "ContrastBolusUsageSequence")
    administered = _text(usage.get("ContrastBolusAgentAdministered")) if usage is not None else None
    return {"YES": True, "NO": False}.get((administered or "").upper())


def _frame(item: Any, shared: Any, is_enhanced: bool, dataset: Any) -> FrameHeader:
    if not is_enhanced:
        image_type = tuple(str(value).upper() for value in (dataset.get("ImageType") or ()))
        return FrameHeader(
            position=_numbers(dataset.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
            orientation=_numbers(dataset.get("ImageOrientationPatient"), 6),
            pixel_spacing=_numbers(dataset.get("PixelSpacing"), 2),  # type: ignore[arg-type]
            slope=_number(dataset.get("RescaleSlope")) or 1.0,
            intercept=_number(dataset.get("RescaleIntercept")) or 0.0,
            is_localizer="LOCALIZER" in image_type,
        )

    def group(keyword: str) -> Any:
        return _first_item(item, keyword) or _first_item(shared, keyword)

    position, orientation = group("PlanePositionSequence"), group("PlaneOrientationSequence")
    measures, transform = group("PixelMeasuresSequence"), group("PixelValueTransformationSequence")
    frame_type = group("CTImageFrameTypeSequence")
    frame_words = tuple(str(value).upper() for value in (frame_type.get("FrameType") or ())) if frame_type else ()
    return FrameHeader(
        position=_numbers(position.get("ImagePositionPatient"), 3) if position else None,  # type: ignore[arg-type]
        orientation=_numbers(orientation.get("ImageOrientationPatient"), 6) if orientation else None,
        pixel_spacing=_numbers(measures.get("PixelSpacing"), 2) if measures else None,  # type: ignore[arg-type]
        slope=(_number(transform.get("RescaleSlope")) if transform else None) or 1.0,
        intercept=(_number(transform.get("RescaleIntercept")) if transform else None) or 0.0,
        is_localizer="LOCALIZER" in frame_words,
    )


def _acquisition(dataset: Any, shared: Any, first_frame: Any, is_enhanced: bool) -> AcquisitionInfo:
    thickness = _number(dataset.get("SliceThickness"))
    kvp = _number(dataset.get("KVP"))
    kernel = _text(dataset.get("ConvolutionKernel"))
    if is_enhanced:
        def group(keyword: str) -> Any:
            return _first_item(first_frame, keyword) or _first_item(shared, keyword)

        measures, details, reconstruction = (
            group("PixelMeasuresSequence"), group("CTXRayDetailsSequence"), group("CTReconstructionSequence"),
        )
        thickness = thickness or (_number(measures.get("SliceThickness")) if measures else None)
        kvp = kvp or (_number(details.get("KVP")) if details else None)
        kernel = kernel or (_text(reconstruction.get("ConvolutionKernel")) if reconstruction else None)
    return AcquisitionInfo(
        slice_thickness_mm=thickness,
        kvp=kvp,
        contrast=_contrast(dataset),
        manufacturer=_text(dataset.get("Manufacturer")),
        convolution_kernel=kernel,
    )


def read_header(path: str | Path) -> DicomHeader:
    """Read the header of one DICOM file (pixels are not read).

    Args:
        path: A DICOM file, with or without a ``.dcm`` suffix.

    Returns:
        The identifier-free header facts, one :class:`FrameHeader` per frame.

    Raises:
        UnsupportedFormat: the file is not DICOM, or is a DICOMDIR.
        UnreadableFile: the header cannot be parsed (truncated or corrupt).

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> read_header(get_testdata_file("CT_small.dcm")).frames[0].pixel_spacing
        (0.661468, 0.661468)
    """
    path = Path(path)
    if path.name.upper() == "DICOMDIR":
        raise UnsupportedFormat(f"{path.name}: a DICOMDIR media index, not an image")
    if not looks_like_dicom(path):
        raise UnsupportedFormat(f"{path.name}: not a DICOM file")
    try:
        with open(path, "rb") as handle:
            dataset = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
            offset = handle.tell()
            tag = handle.read(4)
    except Exception as error:  # pydicom raises many types on corrupt headers
        raise UnreadableFile(f"{path.name}: the DICOM header cannot be parsed ({type(error).__name__})") from error
    meta = getattr(dataset, "file_meta", None)
    sop_class = str(dataset.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else "") or "")
    if sop_class == DICOMDIR_STORAGE or "DirectoryRecordSequence" in dataset:
        raise UnsupportedFormat(f"{path.name}: a DICOMDIR media index, not an image")
    if not sop_class and "Rows" not in dataset and "Modality" not in dataset:
        raise UnsupportedFormat(f"{path.name}: not a DICOM image (no SOP class, modality or rows)")
    syntax = UID(str(meta.get("TransferSyntaxUID", "")) if meta else "")
    if not syntax:
        implicit, little = dataset.original_encoding
        syntax = UID("1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
    is_enhanced = sop_class in MULTI_FRAME_CT
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence") or ())
    count = int(_number(dataset.get("NumberOfFrames")) or 1)
    if is_enhanced:
        frames = tuple(_frame(per_frame[k] if k < len(per_frame) else None, shared, True, dataset) for k in range(count))
    else:
        frames = (_frame(None, None, False, dataset),)
    tilt = _number(dataset.get("GantryDetectorTilt"))
    if tilt is None and is_enhanced:
        details = _first_item(per_frame[0] if per_frame else None, "CTAcquisitionDetailsSequence") or _first_item(
            shared, "CTAcquisitionDetailsSequence"
        )
        tilt = _number(details.get("GantryDetectorTilt")) if details is not None else None
    series_number = _number(dataset.get("SeriesNumber"))
    acquisition = _acquisition(dataset, shared, per_frame[0] if per_frame else None, is_enhanced)
    return DicomHeader(
        path=path,
        sop_class_uid=sop_class,
        modality=str(dataset.get("Modality") or "").upper(),
        series_uid=str(dataset.get("SeriesInstanceUID") or "") or None,
        series_number=int(series_number) if series_number is not None else None,
        image_type=tuple(str(value).upper() for value in (dataset.get("ImageType") or ())),
        transfer_syntax=str(syntax),
        pixel_offset=offset if tag == b"\xe0\x7f\x10\x00" and syntax.is_little_endian and not syntax.is_deflated else None,
        rows=int(_number(dataset.get("Rows")) or 0),
        columns=int(_number(dataset.get("Columns")) or 0),
        bits_allocated=int(_number(dataset.get("BitsAllocated")) or 16),
        bits_stored=int(_number(dataset.get("BitsStored")) or _number(dataset.get("BitsAllocated")) or 16),
        pixel_representation=int(_number(dataset.get("PixelRepresentation")) or 0),
        samples_per_pixel=int(_number(dataset.get("SamplesPerPixel")) or 1),
        photometric=str(dataset.get("PhotometricInterpretation") or "MONOCHROME2").upper(),
        gantry_tilt=tilt,
        acquisition=acquisition,
        frames=frames,
        fallback_key=(
            series_number, str(dataset.get("FrameOfReferenceUID") or ""), sop_class, frames[0].orientation and
            tuple(round(value, 3) for value in frames[0].orientation), frames[0].pixel_spacing,
            acquisition.convolution_kernel, acquisition.slice_thickness_mm,
        ),
    )
