"""Write predicted label maps as NIfTI (nibabel) or DICOM SEG (highdicom) beside the source study.

Label maps are ``[z, y, x]`` arrays on the source volume's own grid (bring a prediction there
with :func:`~mayo_dx.imaging.resample.restore_labels`): 0 background, 1 pancreas, 2 lesion.

NIfTI: uint8, the affine converted from the volume's LPS geometry to NIfTI's RAS (x and y negated),
qform and sform code 1 (scanner).

DICOM SEG: a BINARY Segmentation (one frame per slice and segment, empty frames omitted) that
references each source CT image, one segment per label present (absent labels are left out and
the rest numbered from 1), algorithm type AUTOMATIC, algorithm family DCM 123110 "Artificial
Intelligence" named after the model, manufacturer ``mayo-dx``. Segment codes (CID 7150 category,
CID 7151 type):

- pancreas: category SCT 91723000 "Anatomical Structure", type SCT 15776009 "Pancreas";
- pancreatic lesion: category SCT 49755003 "Morphologically Abnormal Structure", type SCT
  52988006 "Lesion", anatomic region SCT 15776009 "Pancreas". "Lesion" rather than "Neoplasm"
  (SCT 108369006): an automatic finding should not assert a histology.

Privacy: a SEG joins its source study only if it repeats the study's identity, so highdicom
copies the Patient and Study modules from the first source. Here highdicom is handed a stripped
copy of each source instead: the SEG carries Patient Name and Patient ID, Study Instance UID,
Study Date/Time, Study ID and Accession Number, with Birth Date, Sex and Referring Physician
empty (type 2), and no institution, station, device serial, weight or age. ``pseudonym``
replaces Patient Name and ID for a pseudonymised copy of the study (a PACS then files it under
the pseudonym, not under the original patient).

Example:
    >>> import tempfile, numpy as np
    >>> from mayo_dx.imaging.volume import CtVolume
    >>> volume = CtVolume(hu=np.zeros((3, 4, 5), np.int16), spacing=(2.0, 1.0, 1.0))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     nibabel.load(write_nifti_labels(np.ones((3, 4, 5), np.uint8), volume, Path(folder) / "m.nii.gz")).shape
    (5, 4, 3)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Sequence

import highdicom
import nibabel
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from mayo_dx.errors import InputError
from mayo_dx.imaging.volume import GridLike, as_grid

__all__ = ["PANCREAS_SEGMENTS", "SegmentSpec", "write_dicom_seg", "write_nifti_labels"]


@dataclass(frozen=True)
class SegmentSpec:
    """How one label value is described in a DICOM SEG.

    Attributes:
        label: Value in the label map.
        name: Segment label shown by viewers.
        category: Segmented property category (DICOM CID 7150).
        property_type: Segmented property type (DICOM CID 7151).
        anatomic_region: Where the segment lies (CID 4), when the type is not itself anatomy.
    """

    label: int
    name: str
    category: Code
    property_type: Code
    anatomic_region: Code | None = None


PANCREAS_SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(1, "pancreas", codes.SCT.AnatomicalStructure, codes.SCT.Pancreas),
    SegmentSpec(2, "pancreatic lesion", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion,
                codes.SCT.Pancreas),
)

# Attributes handed on to highdicom: identity of the study and of each referenced image, geometry.
_KEPT = (
    "SpecificCharacterSet", "ImageType", "Modality", "PatientName", "PatientID", "StudyInstanceUID",
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "SeriesInstanceUID", "FrameOfReferenceUID",
    "PositionReferenceIndicator", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "SliceThickness", "SpacingBetweenSlices", "Rows", "Columns", "SamplesPerPixel",
    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
)
# Type 2 attributes of the Patient and General Study modules: present, empty unless kept above.
_TYPE_2 = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "PatientName", "PatientID",
          "StudyDate", "StudyTime", "StudyID", "AccessionNumber")


def write_nifti_labels(labels: np.ndarray, geometry: GridLike, path: str | PathLike[str]) -> Path:
    """Write a ``[z, y, x]`` label map as a uint8 NIfTI file with the volume's geometry (RAS affine).

    Args:
        labels: Label map aligned with the volume (values 0-255).
        geometry: The :class:`~mayo_dx.imaging.volume.CtVolume`, its grid, or a spacing ``(z, y, x)``.
        path: Output file (``.nii`` or ``.nii.gz``).

    Returns:
        The written path.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_nifti_labels(np.zeros((2, 3, 4), np.uint8), (2.0, 1.0, 1.0), Path(folder) / "m.nii")
        ...     [float(zoom) for zoom in nibabel.load(path).header.get_zooms()]
        [1.0, 1.0, 2.0]
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError("label values must lie in 0-255")
    grid = as_grid(labels, geometry)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ grid.affine_lps  # LPS -> RAS
    image = nibabel.Nifti1Image(np.ascontiguousarray(labels.astype(np.uint8).transpose(2, 1, 0)), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    nibabel.save(image, str(path))
    return Path(path)


def _stripped_source(dataset: Dataset, pseudonym: str | None) -> Dataset:
    """A copy holding only what the SEG needs; UIDs missing from the data set come from the file meta."""
    meta = getattr(dataset, "file_meta", Dataset())
    stripped = Dataset()
    for keyword in _KEPT:
        if keyword in dataset:
            stripped.add(copy.deepcopy(dataset[keyword]))  # never share elements with the caller's data set
    stripped.SOPClassUID = dataset.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID", "")
    stripped.SOPInstanceUID = dataset.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID", "")
    for keyword in _TYPE_2:
        if keyword not in stripped:
            setattr(stripped, keyword, "")
    if pseudonym is not None:  # a trailing caret marks a one-component person name
        stripped.PatientName, stripped.PatientID = pseudonym if "^" in pseudonym else f"{pseudonym}^", pseudonym
    required = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
                "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
    for keyword in required:
        if not stripped.get(keyword):
            raise InputError(f"a source image lacks {keyword}; the SEG could not reference it")
    return stripped


def _check_order(sources: Sequence[Dataset]) -> None:
    """Refuse sources that are not one series' stack ordered along the slice normal."""
    if len({str(item.SeriesInstanceUID) for item in sources}) != 1:
        raise InputError("source images come from more than one series")
    orientation = np.asarray(sources[0].ImageOrientationPatient, dtype=np.float64)
    if any(not np.allclose(item.ImageOrientationPatient, orientation, atol=1e-4) for item in sources):
        raise InputError("source images differ in orientation")
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([np.dot(normal, np.asarray(item.ImagePositionPatient, float)) for item in sources])
    steps = np.diff(positions)
    if len(steps) and not (np.all(steps > 1e-4) or np.all(steps < -1e-4)):
        raise InputError("source images are not in slice order (sort by ImagePositionPatient along the normal)")


def write_dicom_seg(
    labels: np.ndarray,
    source_images: Sequence[str | PathLike[str] | Dataset],
    path: str | PathLike[str],
    model_name: str = "mayo-dx",
    model_version: str = "0",
    segments: Sequence[SegmentSpec] = PANCREAS_SEGMENTS,
    series_number: int = 900,
    series_description: str = "mayo-dx segmentation",
    pseudonym: str | None = None,
) -> Path:
    """Write a label map as a BINARY DICOM SEG referencing the source CT images.

    Args:
        labels: ``[z, y, x]`` label map; ``labels[i]`` covers ``source_images[i]`` pixel for pixel.
        source_images: The series' single-frame images (paths or pydicom data sets, pixel data
            not needed), in the label map's z order, i.e. sorted by ImagePositionPatient
            projected on the slice normal.
        path: Output file.
        model_name: Algorithm name (the model's registry name).
        model_version: Algorithm version.
        segments: Description of each label value; values absent from the map are omitted.
        series_number: Series number of the new SEG series.
        series_description: Series description of the new SEG series.
        pseudonym: When given, written as Patient Name and Patient ID instead of the source's.

    Returns:
        The written path.

    Raises:
        InputError: If shapes, label values, slice order or source UIDs do not fit, or no segment
            is present (an empty SEG says nothing; report the absence in the result instead).

    Example:
        >>> write_dicom_seg(np.zeros((1, 2, 2), np.uint8), [], "seg.dcm")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.InputError: no source images given
    """
    if not source_images:
        raise InputError("no source images given")
    datasets = [item if isinstance(item, Dataset) else pydicom.dcmread(item, stop_before_pixels=True)
                for item in source_images]
    sources = [_stripped_source(item, pseudonym) for item in datasets]
    labels = np.asarray(labels)
    expected = (len(sources), int(sources[0].Rows), int(sources[0].Columns))
    if labels.shape != expected:
        raise InputError(f"label map shape {labels.shape} does not match the sources {expected}")
    known = {spec.label for spec in segments}
    unknown = sorted(set(np.unique(labels).tolist()) - known - {0})
    if unknown:
        raise InputError(f"label values {unknown} have no segment description")
    _check_order(sources)
    present = [spec for spec in segments if np.any(labels == spec.label)]
    if not present:
        raise InputError("the label map holds no segment; nothing to write")
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name=model_name, family=codes.DCM.ArtificialIntelligence, version=model_version, source="mayo-dx"
    )
    descriptions = [
        highdicom.seg.SegmentDescription(
            segment_number=number, segment_label=spec.name, segmented_property_category=spec.category,
            segmented_property_type=spec.property_type, algorithm_type="AUTOMATIC",
            algorithm_identification=algorithm,
            anatomic_regions=None if spec.anatomic_region is None else [spec.anatomic_region],
        )
        for number, spec in enumerate(present, start=1)
    ]
    masks = np.stack([labels == spec.label for spec in present], axis=-1)
    segmentation = highdicom.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=highdicom.UID(), series_number=series_number, sop_instance_uid=highdicom.UID(),
        instance_number=1, manufacturer="mayo-dx", manufacturer_model_name=model_name,
        software_versions=model_version, device_serial_number="none", series_description=series_description,
        content_label="MAYODX", content_description=f"{model_name} automatic segmentation",
    )
    segmentation.save_as(str(path))
    return Path(path)
