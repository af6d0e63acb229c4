"""Write small but real DICOM CT files with pydicom, to reproduce each series pitfall in tests.

Every slice holds a known pattern: stored values ``hu + 1024`` where ``hu = 1000 * k + 32 * row
+ column`` for the slice's physical index ``k``, so order and in-plane orientation can be checked.
Identifying tags are filled with fake values so tests can assert none of them leaks out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

FAKE_PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN998877", "InstitutionName": "Fake General Hospital",
            "StudyDate": "20240131", "PatientBirthDate": "19600101", "AccessionNumber": "ACC55555"}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def pattern(k: int, size: int) -> np.ndarray:
    """Hounsfield pattern of the slice with physical index ``k``."""
    rows, columns = np.mgrid[0:size, 0:size]
    return (1000 * k + 32 * rows + columns).astype(np.int16)


def ct_dataset(
    pixels: np.ndarray,
    position: Sequence[float],
    *,
    series_uid: str,
    orientation: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.7, 0.7),
    instance_number: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    sop_class: str = CTImageStorage,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    thickness: float = 2.5,
    kernel: str = "B30f",
    series_number: int = 2,
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """One single-frame image dataset; ``pixels`` are stored values (int16, signed)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    for keyword, value in FAKE_PHI.items():
        setattr(dataset, keyword, value)
    dataset.Modality = modality
    dataset.Manufacturer = "ACME"
    dataset.StudyInstanceUID = "1.2.3.4"
    dataset.SeriesInstanceUID = series_uid
    dataset.SeriesNumber = series_number
    dataset.FrameOfReferenceUID = "1.2.3.5"
    dataset.ImageType = list(image_type)
    dataset.InstanceNumber = instance_number
    dataset.ImagePositionPatient = [float(value) for value in position]
    dataset.ImageOrientationPatient = [float(value) for value in orientation]
    dataset.PixelSpacing = [float(value) for value in pixel_spacing]
    dataset.SliceThickness = thickness
    dataset.KVP = 120
    dataset.ConvolutionKernel = kernel
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1
    dataset.RescaleSlope = slope
    dataset.RescaleIntercept = intercept
    dataset.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    for keyword, value in (extra or {}).items():
        setattr(dataset, keyword, value)
    return dataset


def write_series(
    folder: Path,
    count: int = 12,
    *,
    size: int = 16,
    step: float = 2.5,
    positions: Sequence[Sequence[float]] | None = None,
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
    instance_numbers: Sequence[int] | None = None,
    **options: Any,
) -> list[Path]:
    """Write ``count`` slices (physical index k at ``positions[k]``, default ``(0, 0, k * step)``)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    positions = positions if positions is not None else [(-5.0, -5.0, 10.0 + k * step) for k in range(count)]
    paths = []
    for k, position in enumerate(positions):
        stored = pattern(k, size).astype(np.int32) + 1024
        dataset = ct_dataset(
            stored.astype(np.int16), position, series_uid=series_uid,
            instance_number=instance_numbers[k] if instance_numbers is not None else k + 1, **options,
        )
        path = folder / (names[k] if names is not None else f"IM{k:04d}.dcm")
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_mr_series(folder: Path, count: int = 10) -> list[Path]:
    """An axial MR series (MR Image Storage, modality MR)."""
    return write_series(folder, count, modality="MR", sop_class=MRImageStorage, intercept=0.0)


def read_back(path: Path) -> Dataset:
    """The dataset of a written file (for tests that modify one)."""
    return pydicom.dcmread(path)
