"""Write phantoms as a real DICOM CT series, as NIfTI, and as an MSD Task07-shaped folder.

* :func:`write_phantom_dicom`: one CT Image Storage file per slice (``slice_0001.dcm``...),
  Explicit VR Little Endian, LPS geometry from the volume, stored values ``HU + 1024`` with
  RescaleIntercept -1024, and clearly fake patient tags (``Phantom^Case0001``,
  ``PHANTOM-0001``). ``identifiers=`` plants values in any other tags, e.g.
  :func:`planted_identifiers` fills every common PHI-capable field, to test scrubbing.
* :func:`write_phantom_nifti`: image (int16) and label map (uint8) through
  :func:`mayo_dx.imaging.nifti.write_nifti` (LPS converted to nibabel's RAS affine).
* :func:`write_msd_pancreas`: ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` and a
  ``dataset.json`` with the fields of the Medical Segmentation Decathlon's Task07_Pancreas.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from mayo_dx.imaging.phantom import generate_phantom
    >>> phantom = generate_phantom(shape=(4, 32, 32), seed=0)
    >>> files = write_phantom_dicom(phantom, Path(tempfile.mkdtemp()))
    >>> [path.name for path in files][:2]
    ['slice_0001.dcm', 'slice_0002.dcm']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from mayo_dx.imaging.nifti import write_nifti
from mayo_dx.imaging.phantom import Phantom, PhantomTruth, generate_phantom
from mayo_dx.imaging.volume import CtVolume

__all__ = [
    "MSD_CANCER_FRACTION",
    "planted_identifiers",
    "write_msd_pancreas",
    "write_phantom_dicom",
    "write_phantom_nifti",
]

#: Default share of synthetic MSD cases with a lesion (the real Task07 has a mass in nearly all).
MSD_CANCER_FRACTION = 0.5
_MANUFACTURER = "mayo-dx phantom"


def planted_identifiers(case_number: int = 1) -> dict[str, str]:
    """Fake but identifier-shaped values for the common PHI-capable DICOM fields.

    Every value contains ``PLANTED`` or ``Planted`` (dates and times excepted), so a scrubbing
    test can assert that none survives. Values respect their VR (lengths, formats).

    Example:
        >>> values = planted_identifiers(7)
        >>> values["PatientID"], values["PatientBirthDate"]
        ('PLANTED-MRN-000007', '19450704')
    """
    name = f"Planted^Identifier^Case{case_number:04d}"
    return {
        "PatientName": name, "PatientID": f"PLANTED-MRN-{case_number:06d}", "PatientBirthDate": "19450704",
        "PatientBirthTime": "081500", "PatientSex": "F", "PatientAge": "079Y", "PatientSize": "1.68",
        "PatientWeight": "71.5", "PatientAddress": "12 Planted Street, Faketown",
        "PatientTelephoneNumbers": "+1-555-0100", "PatientMotherBirthName": "Planted^Mother",
        "OtherPatientIDs": "PLANTED-OTHER-ID", "OtherPatientNames": "Planted^Alias",
        "PatientBirthName": "Planted^Birthname", "MilitaryRank": "Planted rank", "BranchOfService": "Planted service",
        "EthnicGroup": "PLANTED", "Occupation": "Planted job", "PatientReligiousPreference": "Planted",
        "AdditionalPatientHistory": f"History of {name}", "PatientComments": f"Comment about {name}",
        "MedicalRecordLocator": "PLANTED-LOCATOR", "IssuerOfPatientID": "PLANTED HOSPITAL MRN",
        "CountryOfResidence": "Plantedland", "RegionOfResidence": "Planted region",
        "ResponsiblePerson": "Planted^Guardian", "ResponsibleOrganization": "Planted organisation",
        "InstitutionName": "Planted General Hospital", "InstitutionAddress": "1 Planted Plaza, Faketown",
        "InstitutionalDepartmentName": "Planted Radiology", "StationName": "PLANTED-CT01",
        "DeviceSerialNumber": "PLANTED-SN-0001", "ReferringPhysicianName": "Planted^Referrer",
        "ReferringPhysicianAddress": "2 Planted Road", "ReferringPhysicianTelephoneNumbers": "+1-555-0101",
        "PerformingPhysicianName": "Planted^Performer", "NameOfPhysiciansReadingStudy": "Planted^Reader",
        "PhysiciansOfRecord": "Planted^Physician", "OperatorsName": "Planted^Operator",
        "RequestingPhysician": "Planted^Requester", "AccessionNumber": f"PLANTEDACC{case_number:04d}",
        "StudyID": f"PLANTED{case_number:04d}", "StudyDate": "20240229", "SeriesDate": "20240229",
        "AcquisitionDate": "20240229", "ContentDate": "20240229", "StudyTime": "101010", "SeriesTime": "101020",
        "AcquisitionTime": "101030", "ContentTime": "101040", "StudyDescription": f"CT abdomen of {name}",
        "RequestedProcedureDescription": f"Pancreas CT for {name}", "ImageComments": f"{name} PLANTED-MRN",
        "ProtocolName": "Planted protocol", "CurrentPatientLocation": "Planted ward 3",
    }  # fmt: skip


def _volume_and_phase(source: Phantom | CtVolume) -> tuple[CtVolume, str | None]:
    if isinstance(source, Phantom):
        return source.volume, source.truth.phase
    if isinstance(source, CtVolume):
        return source, None
    raise TypeError(f"expected a Phantom or a CtVolume, got {type(source).__name__}")


def _uid(seed: str | None, role: str) -> str:
    return generate_uid() if seed is None else generate_uid(entropy_srcs=[seed, role])


def _common_tags(volume: CtVolume, phase: str | None, case_number: int, series_description: str | None) -> dict[str, Any]:
    info = volume.acquisition
    contrast = info.contrast if phase is None else phase != "non-contrast"
    description = series_description or f"Phantom abdomen {phase or 'CT'}"
    tags: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 100", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "Modality": "CT",
        "Manufacturer": _MANUFACTURER, "ManufacturerModelName": "synthetic abdomen",
        "SoftwareVersions": "mayo-dx", "PatientName": f"Phantom^Case{case_number:04d}",
        "PatientID": f"PHANTOM-{case_number:04d}", "PatientBirthDate": "", "PatientSex": "",
        "StudyDate": "", "StudyTime": "", "ReferringPhysicianName": "", "StudyID": "", "AccessionNumber": "",
        "SeriesNumber": 2, "AcquisitionNumber": 1, "SeriesDescription": description, "BodyPartExamined": "ABDOMEN",
        "PatientPosition": "HFS", "PositionReferenceIndicator": "", "KVP": format_number_as_ds(float(info.kvp or 120.0)),
        "ConvolutionKernel": info.convolution_kernel or "STANDARD", "RescaleIntercept": "-1024", "RescaleSlope": "1",
        "RescaleType": "HU", "WindowCenter": "40", "WindowWidth": "400", "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15,
        "SliceThickness": format_number_as_ds(float(info.slice_thickness_mm or volume.spacing[0])),
        "PixelSpacing": [format_number_as_ds(volume.spacing[1]), format_number_as_ds(volume.spacing[2])],
        "ImageOrientationPatient": [format_number_as_ds(float(v)) for v in volume.direction[:, :2].T.ravel()],
        "Rows": volume.shape[1], "Columns": volume.shape[2],
    }  # fmt: skip
    if contrast:
        tags.update({"ContrastBolusAgent": "IOHEXOL (SYNTHETIC)", "ContrastBolusRoute": "IV"})
    return tags


def write_phantom_dicom(
    source: Phantom | CtVolume,
    folder: str | Path,
    *,
    case_number: int = 1,
    identifiers: Mapping[str, Any] | None = None,
    signed: bool = False,
    series_description: str | None = None,
    uid_seed: str | None = None,
) -> list[Path]:
    """Write a phantom (or any CT volume) as a DICOM CT series, one file per slice.

    Args:
        source: A :class:`~mayo_dx.imaging.phantom.Phantom` or a :class:`CtVolume`.
        folder: Destination folder (created); files are ``slice_0001.dcm`` upwards in z order.
        case_number: Used in the fake PatientName / PatientID.
        identifiers: Extra or overriding tags by DICOM keyword (e.g. :func:`planted_identifiers`).
        signed: Store pixels as signed (PixelRepresentation 1) instead of unsigned 16-bit.
        series_description: SeriesDescription (default names the contrast phase).
        uid_seed: When given, UIDs are derived from it (reproducible files); random otherwise.

    Returns:
        The written paths, in slice order.

    Raises:
        ValueError: An unknown keyword in ``identifiers``.

    Example:
        >>> import tempfile, pydicom
        >>> from pathlib import Path
        >>> from mayo_dx.imaging.phantom import generate_phantom
        >>> files = write_phantom_dicom(generate_phantom(shape=(2, 16, 16), seed=0), Path(tempfile.mkdtemp()))
        >>> dataset = pydicom.dcmread(files[0])
        >>> dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2", str(dataset.PatientName)
        (True, 'Phantom^Case0001')
    """
    volume, phase = _volume_and_phase(source)
    for keyword in identifiers or {}:
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"identifiers: {keyword!r} is not a DICOM keyword")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tags = _common_tags(volume, phase, case_number, series_description)
    tags.update(identifiers or {})
    study, series, frame = (_uid(uid_seed, role) for role in ("study", "series", "frame-of-reference"))
    normal = volume.direction[:, 2]
    hu = np.asarray(volume.hu)
    low, high = (-1024, 64511) if not signed else (-32768 + 1024, 32767 + 1024)
    stored = (np.clip(np.rint(hu), low, high).astype(np.int32) + 1024).astype(np.int16 if signed else np.uint16)
    paths = []
    for index in range(volume.shape[0]):
        position = volume.index_to_world((index, 0, 0))
        instance = _uid(uid_seed, f"instance-{index}")
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = CTImageStorage
        dataset.file_meta.MediaStorageSOPInstanceUID = instance
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, instance
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.FrameOfReferenceUID = study, series, frame
        for keyword, value in tags.items():
            setattr(dataset, keyword, value)
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [format_number_as_ds(float(value)) for value in position]
        dataset.SliceLocation = format_number_as_ds(float(np.dot(position, normal)))
        dataset.PixelRepresentation = 1 if signed else 0
        dataset.PixelData = stored[index].tobytes()
        path = folder / f"slice_{index + 1:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_phantom_nifti(
    phantom: Phantom, image_path: str | Path, label_path: str | Path | None = None
) -> tuple[Path, Path | None]:
    """Write a phantom's image (int16 HU) and, optionally, its label map (uint8) as NIfTI.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from mayo_dx.imaging.phantom import generate_phantom
        >>> folder = Path(tempfile.mkdtemp())
        >>> phantom = generate_phantom(shape=(4, 32, 32), seed=0)
        >>> image, labels = write_phantom_nifti(phantom, folder / "ct.nii.gz", folder / "seg.nii.gz")
        >>> image.name, labels.name
        ('ct.nii.gz', 'seg.nii.gz')
    """
    image = write_nifti(phantom.volume, image_path)
    labels = write_nifti(phantom.labels, label_path, like=phantom.volume) if label_path is not None else None
    return image, labels


def _dataset_json(training: list[str], test: list[str]) -> dict[str, Any]:
    """Task07_Pancreas's dataset.json fields (``relase`` is the real file's spelling)."""
    return {
        "name": "Pancreas",
        "description": "Pancreas and cancer segmentation (synthetic mayo-dx phantoms in the MSD Task07 layout)",
        "reference": "mayo-dx synthetic phantoms; layout of the Medical Segmentation Decathlon Task07_Pancreas",
        "licence": "CC0-1.0 (synthetic data, no patient data)",
        "relase": "mayo-dx synthetic 1.0",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
        "numTraining": len(training),
        "numTest": len(test),
        "training": [{"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"} for case in training],
        "test": [f"./imagesTs/{case}.nii.gz" for case in test],
    }


def write_msd_pancreas(
    folder: str | Path,
    n_cases: int,
    *,
    seed: int,
    n_test: int | None = None,
    cancer_fraction: float = MSD_CANCER_FRACTION,
    shape: tuple[int, int, int] = (64, 128, 128),
    spacing: tuple[float, float, float] | None = None,
    phase: str = "portal-venous",
) -> dict[str, PhantomTruth]:
    """Write synthetic phantoms as a Medical Segmentation Decathlon Task07_Pancreas folder.

    Layout: ``imagesTr/pancreas_XXX.nii.gz`` with ``labelsTr/pancreas_XXX.nii.gz`` (0
    background, 1 pancreas, 2 cancer) for the training cases, ``imagesTs/`` without labels for
    the test cases, ``dataset.json`` as in the real dataset, and ``phantom_truth.json`` (not
    in the real dataset) with each case's :class:`PhantomTruth`. As in the real release, case
    numbers interleave training and test. ``round(cancer_fraction * count)`` cases of each
    split have one sampled lesion (10-35 mm), the others none; the real Task07 has a mass in
    nearly every case, so this mix is for case-level (cancer yes/no) experiments.

    Args:
        folder: Destination (created).
        n_cases: Number of training cases (with labels).
        seed: Seed of the whole dataset; each case gets its own derived seed.
        n_test: Number of test images (default ``max(1, n_cases // 4)``).
        cancer_fraction: Share of cases with a lesion, 0-1.
        shape: Matrix ``(z, y, x)`` of every case.
        spacing: Voxel size; default from the phantom's field of view.
        phase: Contrast phase (Task07 is portal-venous).

    Returns:
        Case id (``pancreas_XXX``) to truth, training cases first.

    Example:
        >>> import tempfile, json
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> truth = write_msd_pancreas(folder, 2, seed=0, n_test=1, shape=(16, 48, 48))
        >>> json.loads((folder / "dataset.json").read_text())["numTraining"], len(truth)
        (2, 3)
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    if not 0.0 <= cancer_fraction <= 1.0:
        raise ValueError(f"cancer_fraction must be within 0-1, got {cancer_fraction}")
    n_test = max(1, n_cases // 4) if n_test is None else int(n_test)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(1)[0])
    numbers = rng.permutation(n_cases + n_test) + 1
    training = [f"pancreas_{number:03d}" for number in sorted(numbers[:n_cases])]
    test = [f"pancreas_{number:03d}" for number in sorted(numbers[n_cases:])]
    cancer = {
        case
        for cases in (training, test)
        for case in rng.permutation(cases)[: int(round(cancer_fraction * len(cases)))]
    }
    case_seeds = np.random.SeedSequence(int(seed)).generate_state(n_cases + n_test + 1)[1:]
    folder = Path(folder)
    truths: dict[str, PhantomTruth] = {}
    for case, case_seed in zip(training + test, case_seeds):
        lesions = 1 if case in cancer else 0
        phantom = generate_phantom(shape=shape, spacing=spacing, lesions=lesions, phase=phase, seed=int(case_seed))
        if case in training:
            write_phantom_nifti(phantom, folder / "imagesTr" / f"{case}.nii.gz", folder / "labelsTr" / f"{case}.nii.gz")
        else:
            write_phantom_nifti(phantom, folder / "imagesTs" / f"{case}.nii.gz")
        truths[case] = phantom.truth
    (folder / "dataset.json").write_text(json.dumps(_dataset_json(training, test), indent=4) + "\n")
    report = {case: truth.to_dict() for case, truth in truths.items()}
    (folder / "phantom_truth.json").write_text(json.dumps(report, indent=1) + "\n")
    return truths
