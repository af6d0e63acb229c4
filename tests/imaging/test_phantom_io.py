"""Phantoms written as a real DICOM CT series and as NIfTI, read back with pydicom and nibabel."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest

from mayo_dx.imaging.nifti import read_nifti, read_nifti_labels
from mayo_dx.imaging.phantom import LesionSpec, Phantom, generate_phantom
from mayo_dx.imaging.phantom_io import planted_identifiers, write_phantom_dicom, write_phantom_nifti
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.volume import CtVolume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(shape=(24, 96, 96), spacing=(2.5, 2.8, 2.8), lesions=[LesionSpec(20, "head")], seed=3)


@pytest.fixture(scope="module")
def series(phantom: Phantom, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_phantom_dicom(phantom, tmp_path_factory.mktemp("dicom"), case_number=7)


def _stack(paths: list[Path]) -> tuple[np.ndarray, list[pydicom.Dataset]]:
    """Read files in any order, sort by position along the slice normal, return HU and datasets."""
    datasets = [pydicom.dcmread(path) for path in paths]
    orientation = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    datasets.sort(key=lambda dataset: float(np.dot(np.array(dataset.ImagePositionPatient, dtype=float), normal)))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])
    return hu, datasets


def test_files_are_valid_ct_image_storage(series: list[Path]) -> None:
    assert [path.name for path in series[:2]] == ["slice_0001.dcm", "slice_0002.dcm"] and len(series) == 24
    datasets = [pydicom.dcmread(path) for path in series]  # no force=True: preamble and meta present
    for dataset in datasets:
        assert dataset.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
        assert dataset.file_meta.MediaStorageSOPClassUID == dataset.SOPClassUID == CT_IMAGE_STORAGE
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
        assert dataset.Modality == "CT" and dataset.Manufacturer == "mayo-dx phantom"
        assert (dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation) == (16, 16, 15, 0)
        assert dataset.PhotometricInterpretation == "MONOCHROME2" and dataset.SamplesPerPixel == 1
        assert (float(dataset.RescaleIntercept), float(dataset.RescaleSlope)) == (-1024.0, 1.0)
        assert float(dataset.KVP) == 120.0 and dataset.ContrastBolusAgent
        assert str(dataset.PatientName) == "Phantom^Case0007" and dataset.PatientID == "PHANTOM-0007"
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({getattr(d, keyword) for d in datasets}) == 1
    assert [d.InstanceNumber for d in datasets] == list(range(1, 25))


def test_dicom_round_trip_has_the_same_hu_and_geometry(phantom: Phantom, series: list[Path]) -> None:
    shuffled = list(series)
    random.Random(0).shuffle(shuffled)
    hu, datasets = _stack(shuffled)
    volume = phantom.volume
    assert np.array_equal(hu, volume.hu)
    first, second = (np.array(d.ImagePositionPatient, dtype=float) for d in datasets[:2])
    assert np.allclose(first, volume.origin, atol=1e-4)
    assert np.dot(second - first, volume.direction[:, 2]) == pytest.approx(volume.spacing[0], abs=1e-4)
    assert np.allclose([float(v) for v in datasets[0].PixelSpacing], volume.spacing[1:], atol=1e-6)
    assert np.allclose([float(v) for v in datasets[0].ImageOrientationPatient], [1, 0, 0, 0, 1, 0])
    assert float(datasets[0].SliceThickness) == pytest.approx(2.5)
    for index, dataset in enumerate(datasets):
        position = np.array(dataset.ImagePositionPatient, dtype=float)
        assert np.allclose(position, volume.index_to_world((index, 0, 0)), atol=1e-4)


def test_the_series_reader_reads_it_back(phantom: Phantom, series: list[Path]) -> None:
    volume = read_series(series[0].parent)
    assert np.array_equal(volume.hu, phantom.volume.hu)
    assert np.allclose(volume.spacing, phantom.volume.spacing)
    assert np.allclose(volume.origin, phantom.volume.origin, atol=1e-4)
    assert np.allclose(volume.direction, np.eye(3)) and volume.warnings == ()
    assert volume.acquisition.contrast is True and volume.acquisition.manufacturer == "mayo-dx phantom"


def test_signed_pixels_and_plain_volumes(tmp_path: Path) -> None:
    volume = CtVolume(hu=np.array([[[-1024, 0], [3000, -50]]] * 3, dtype=np.int16), spacing=(3, 1, 1), origin=(5, -7, 100))
    paths = write_phantom_dicom(volume, tmp_path, signed=True, uid_seed="fixed")
    hu, datasets = _stack(paths)
    assert np.array_equal(hu, volume.hu) and datasets[0].PixelRepresentation == 1
    assert "ContrastBolusAgent" not in datasets[0]  # contrast unknown for a bare volume
    again = write_phantom_dicom(volume, tmp_path / "again", uid_seed="fixed")
    assert pydicom.dcmread(again[0]).SOPInstanceUID == datasets[0].SOPInstanceUID


def test_non_contrast_phantoms_carry_no_contrast_agent(tmp_path: Path) -> None:
    plain = generate_phantom(shape=(2, 32, 32), phase="non-contrast", seed=0)
    dataset = pydicom.dcmread(write_phantom_dicom(plain, tmp_path)[0])
    assert "ContrastBolusAgent" not in dataset and "non-contrast" in dataset.SeriesDescription


def test_planted_identifiers_fill_every_field_with_valid_values(tmp_path: Path) -> None:
    planted = planted_identifiers(42)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydicom warns on a value that breaks its VR
        paths = write_phantom_dicom(generate_phantom(shape=(2, 16, 16), seed=0), tmp_path, identifiers=planted)
    for path in paths:
        dataset = pydicom.dcmread(path)
        for keyword, value in planted.items():
            assert str(dataset.data_element(keyword).value) == value, keyword
    assert len(planted) >= 40 and "PLANTED-MRN-000042" in planted.values()
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        write_phantom_dicom(generate_phantom(shape=(2, 16, 16), seed=0), tmp_path, identifiers={"PatientNickname": "x"})


def test_nifti_round_trip_and_ras_affine(phantom: Phantom, tmp_path: Path) -> None:
    image_path, label_path = write_phantom_nifti(phantom, tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz")
    image, labels = nibabel.load(image_path), nibabel.load(label_path)
    assert image.get_data_dtype() == np.int16 and labels.get_data_dtype() == np.uint8
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ phantom.volume.affine_lps
    assert np.allclose(image.affine, ras, atol=1e-4) and np.allclose(labels.affine, ras, atol=1e-4)
    assert np.array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), phantom.volume.hu)
    assert np.array_equal(np.asarray(labels.dataobj).transpose(2, 1, 0), phantom.labels)
    volume = read_nifti(image_path)
    assert np.array_equal(volume.hu, phantom.volume.hu) and np.allclose(volume.origin, phantom.volume.origin, atol=1e-4)
    assert np.array_equal(read_nifti_labels(label_path, like=volume), phantom.labels)
    image_only, none = write_phantom_nifti(phantom, tmp_path / "only.nii")
    assert image_only.is_file() and none is None
