"""DICOM CT reader on real series (../shared/data/ct, pydicom's CT_small) and series choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, XRayRadiationDoseSRStorage, generate_uid

from mayo_dx.errors import SeriesNotFound, SliceGapError, TooFewSlices, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.dicom import discover_series, kernel_class, read_dicom_series
from mayo_dx.imaging.nifti import read_nifti, read_nifti_labels
from mayo_dx.imaging.read import read_series
from tests.conftest import shared_path
from tests.imaging.dicom_writer import FAKE_PHI, write_mr_series, write_series

AORTA, PANCREAS = 52, 7  # TotalSegmentator v2 class indices


@pytest.fixture(scope="module")
def totalseg_volume():
    return read_series(shared_path("ct", "totalseg_dicom"))


def reference_hu(folder: Path) -> np.ndarray:
    """pydicom's own decoding, sorted by z, rescaled: an independent reference."""
    datasets = [pydicom.dcmread(path) for path in folder.iterdir()]
    datasets.sort(key=lambda dataset: float(dataset.ImagePositionPatient[2]))
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])


def test_totalseg_jpeg2000_series_reads_with_geometry(totalseg_volume) -> None:
    volume = totalseg_volume
    assert volume.shape == (20, 512, 512)
    assert volume.hu.dtype == np.int16
    assert volume.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))  # 2 mm steps, not the 3 mm thickness
    assert volume.origin == pytest.approx((-249.51171875, -437.51171875, -804.5))
    np.testing.assert_allclose(volume.direction, np.eye(3))
    assert volume.acquisition.slice_thickness_mm == 3.0
    assert volume.acquisition.kvp == 120.0
    assert volume.acquisition.contrast is True
    assert volume.acquisition.manufacturer == "SIEMENS"
    assert volume.acquisition.convolution_kernel.startswith("Br38f")
    assert volume.source_format == "dicom"
    assert any("no SeriesInstanceUID" in warning for warning in volume.warnings)


def test_totalseg_hu_equal_pydicom_reference(totalseg_volume) -> None:
    np.testing.assert_array_equal(totalseg_volume.hu, reference_hu(shared_path("ct", "totalseg_dicom")))


def test_totalseg_hu_values_are_anatomical(totalseg_volume) -> None:
    labels = read_nifti_labels(shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz"), like=totalseg_volume)
    aorta = totalseg_volume.hu[labels == AORTA]
    pancreas = totalseg_volume.hu[labels == PANCREAS]
    assert aorta.size > 5000 and 150 <= aorta.mean() <= 200  # contrast-filled aorta
    assert pancreas.size > 1000 and 0 <= pancreas.mean() <= 200  # soft tissue
    assert totalseg_volume.hu[:, :20, :20].mean() == pytest.approx(-1000, abs=40)  # air outside the body


def test_totalseg_labels_align_in_world_space(totalseg_volume) -> None:
    labels = read_nifti(shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz"))
    assert labels.shape == totalseg_volume.shape
    assert labels.spacing == pytest.approx(totalseg_volume.spacing)
    assert labels.origin == pytest.approx(totalseg_volume.origin, abs=1e-3)
    np.testing.assert_allclose(labels.direction, totalseg_volume.direction, atol=1e-6)


def test_process_pool_decoding_gives_the_same_values(totalseg_volume) -> None:
    pooled = read_series(shared_path("ct", "totalseg_dicom"), workers=2)
    np.testing.assert_array_equal(pooled.hu, totalseg_volume.hu)


def test_dcmqi_three_ge_slices_implicit_vr() -> None:
    folder = shared_path("ct", "dcmqi_3slice")
    with pytest.raises(TooFewSlices, match="min_slices=8"):
        read_series(folder)
    volume = read_series(folder, min_slices=3)
    assert volume.shape == (3, 512, 512)
    assert volume.spacing == pytest.approx((1.0, 0.810547, 0.810547))
    assert volume.origin == pytest.approx((-235.199997, -226.800003, -128.690002))
    assert volume.acquisition.manufacturer == "GE MEDICAL SYSTEMS"
    np.testing.assert_array_equal(volume.hu, reference_hu(folder))


def test_monai_gap_is_refused_and_contiguous_slices_read(tmp_path: Path) -> None:
    folder = shared_path("ct", "monai_small")
    with pytest.raises(SliceGapError, match="gap"):
        read_series(folder, min_slices=3)
    positions = {path: float(pydicom.dcmread(path).ImagePositionPatient[2]) for path in folder.iterdir()}
    far = min(positions, key=positions.get)  # the slice far below the other three
    for path in positions:
        if path != far:
            shutil.copyfile(path, tmp_path / path.name)
    volume = read_series(tmp_path, min_slices=3)
    assert volume.shape == (3, 16, 16)
    assert volume.spacing[0] == pytest.approx(1.25)
    assert read_series([p for p in positions if p != far], min_slices=3).shape == (3, 16, 16)


@pytest.mark.parametrize("keep", [0.5, -10], ids=["half", "last-10-bytes-cut"])
def test_truncated_jpeg2000_file_named(tmp_path: Path, keep: float) -> None:
    # a truncated codestream once aborted the interpreter inside GDCM: this must raise instead
    source = sorted(shared_path("ct", "totalseg_dicom").iterdir())
    for path in source:
        shutil.copyfile(path, tmp_path / path.name)
    victim = tmp_path / source[4].name
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[: int(keep)])
    with pytest.raises(UnreadableFile, match=f"{source[4].name}: pixel data cannot be decoded"):
        read_series(tmp_path, workers=1)


def test_pydicom_ct_small_needs_min_slices_one(ct_small_path: Path) -> None:
    with pytest.raises(TooFewSlices):
        read_series(ct_small_path)
    volume = read_series(ct_small_path, min_slices=1)
    dataset = pydicom.dcmread(ct_small_path)
    expected = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
    np.testing.assert_array_equal(volume.hu[0], expected)
    np.testing.assert_array_equal(read_dicom_series(ct_small_path, min_slices=1).hu, volume.hu)
    assert volume.spacing[1:] == pytest.approx(tuple(float(value) for value in dataset.PixelSpacing))
    assert any("single slice" in warning for warning in volume.warnings)


# ---------------------------------------------------------------------------- series choice


def test_larger_series_chosen_and_smaller_reported(tmp_path: Path) -> None:
    large = write_series(tmp_path, 12, series_uid="1.2.826.0.1.1", series_number=3, names=[f"a{k}" for k in range(12)])
    write_series(tmp_path, 9, series_uid="1.2.826.0.1.2", series_number=4, names=[f"b{k}" for k in range(9)])
    report = discover_series(tmp_path)
    assert report.chosen.series_uid == "1.2.826.0.1.1"
    assert set(report.chosen.files) == set(large)
    (skipped,) = report.skipped
    assert skipped.series_uid == "1.2.826.0.1.2" and skipped.code == "not_chosen"
    assert "preferred" in skipped.reason
    assert read_series(tmp_path).shape[0] == 12
    assert read_series(tmp_path, series_uid="1.2.826.0.1.2").shape[0] == 9
    with pytest.raises(SeriesNotFound, match="no series with the requested"):
        read_series(tmp_path, series_uid="1.2.826.0.1.99")


def test_ties_broken_by_thickness_then_soft_kernel(tmp_path: Path) -> None:
    write_series(tmp_path / "sharp", 10, series_uid="1.2.826.0.2.1", kernel="B70f", series_number=1)
    write_series(tmp_path / "soft", 10, series_uid="1.2.826.0.2.2", kernel="B30f", series_number=2)
    write_series(tmp_path / "thick", 10, series_uid="1.2.826.0.2.3", kernel="B30f", thickness=5.0, series_number=0)
    assert discover_series(tmp_path).chosen.series_uid == "1.2.826.0.2.2"
    write_series(tmp_path / "thin", 10, series_uid="1.2.826.0.2.4", kernel="B70f", thickness=1.0)
    assert discover_series(tmp_path).chosen.series_uid == "1.2.826.0.2.4"


def test_kernel_classes() -> None:
    assert kernel_class("STANDARD") == "soft tissue"
    assert kernel_class("LUNG") == "sharp"
    assert kernel_class("FC08") == "soft tissue"
    assert kernel_class("Qr40d") == "soft tissue"
    assert kernel_class("I70f") == "sharp"
    assert kernel_class("XYZ") == "unknown"


def test_localizer_series_skipped(tmp_path: Path) -> None:
    write_series(tmp_path, 10, series_uid="1.2.826.0.3.1")
    write_series(tmp_path / "scout", 2, series_uid="1.2.826.0.3.2", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                 orientation=(1, 0, 0, 0, 0, -1), positions=[(0, 0, 0), (0, 5, 0)])
    report = discover_series(tmp_path)
    assert report.chosen.series_uid == "1.2.826.0.3.1"
    assert [(series.code, series.reason) for series in report.skipped] == [("localizer", "localizer (scout) images")]


def test_localizer_inside_the_series_left_out(tmp_path: Path) -> None:
    write_series(tmp_path, 10, series_uid="1.2.826.0.4.1")
    write_series(tmp_path, 1, series_uid="1.2.826.0.4.1", names=["scout"], image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                 orientation=(1, 0, 0, 0, 0, -1), positions=[(0, 0, 0)])
    volume = read_series(tmp_path)
    assert volume.shape[0] == 10
    assert any("localizer" in warning for warning in volume.warnings)


def test_clinical_export_with_dose_report_and_secondary_capture(tmp_path: Path) -> None:
    write_series(tmp_path / "axial", 10, series_uid="1.2.826.0.6.1")
    write_series(tmp_path / "sharp", 10, series_uid="1.2.826.0.6.2", kernel="B70f")
    write_series(tmp_path / "capture", 1, series_uid="1.2.826.0.6.3", sop_class=SecondaryCaptureImageStorage, modality="OT")
    dose = Dataset()
    dose.file_meta = FileMetaDataset()
    dose.file_meta.MediaStorageSOPClassUID = dose.SOPClassUID = XRayRadiationDoseSRStorage
    dose.file_meta.MediaStorageSOPInstanceUID = dose.SOPInstanceUID = generate_uid()
    dose.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dose.Modality, dose.SeriesInstanceUID, dose.SeriesNumber = "SR", "1.2.826.0.6.4", 997
    dose.save_as(tmp_path / "dose", enforce_file_format=True)
    report = discover_series(tmp_path)
    assert report.chosen.series_uid == "1.2.826.0.6.1"  # equal counts: the soft-tissue kernel wins
    reasons = {series.series_uid: series.reason for series in report.skipped}
    assert reasons["1.2.826.0.6.3"] == "secondary capture (modality OT), not a CT image"
    assert reasons["1.2.826.0.6.4"] == "radiation dose report (modality SR), not a CT image"
    assert "another series was preferred" in reasons["1.2.826.0.6.2"]
    assert report.to_dict()["chosen"]["kernel_class"] == "soft tissue"


def test_mr_series_refused(tmp_path: Path) -> None:
    write_mr_series(tmp_path)
    with pytest.raises(UnsupportedFormat, match="MR") as caught:
        read_series(tmp_path)
    assert isinstance(caught.value, SeriesNotFound)


def test_empty_folder_refused(tmp_path: Path) -> None:
    with pytest.raises(SeriesNotFound, match="no files"):
        read_series(tmp_path)


def test_non_dicom_files_refused_then_ignored_beside_a_series(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "notes").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    (tmp_path / ".DS_Store").write_bytes(bytes(10))
    with pytest.raises(SeriesNotFound, match="not a DICOM file"):
        read_series(tmp_path)
    write_series(tmp_path / "series", 10)
    report = discover_series(tmp_path)
    assert report.chosen.slice_count == 10
    assert {name for name, _ in report.ignored_files} == {"README.txt", "notes", ".DS_Store"}
    assert read_series(tmp_path).shape[0] == 10



def test_file_cut_inside_its_header_is_left_out_with_a_warning(tmp_path: Path) -> None:
    paths = write_series(tmp_path, 11)
    data = paths[-1].read_bytes()
    paths[-1].write_bytes(data[: data.index(b"\x20\x00\x32\x00")])  # cut before ImagePositionPatient
    volume = read_series(tmp_path)
    assert volume.shape[0] == 10
    assert any("without position" in warning for warning in volume.warnings)
    paths[5].write_bytes(paths[5].read_bytes()[:200])  # a slice in the middle: its absence is a gap
    with pytest.raises(SliceGapError):
        read_series(tmp_path)


def test_dicomdir_layout_is_read(tmp_path: Path) -> None:
    from pydicom.fileset import FileSet

    source = write_series(tmp_path / "source", 10)
    file_set = FileSet()
    for path in source:
        dataset = pydicom.dcmread(path)
        dataset.StudyTime, dataset.StudyID = "120000", "1"  # required by the default DICOMDIR records
        file_set.add(dataset)
    file_set.write(tmp_path / "media")
    assert (tmp_path / "media" / "DICOMDIR").is_file()
    report = discover_series(tmp_path / "media")
    assert ("DICOMDIR", "a DICOMDIR media index, not an image") in report.ignored_files
    volume = read_series(tmp_path / "media")
    np.testing.assert_array_equal(volume.hu, read_series(tmp_path / "source").hu)


def test_missing_path_and_other_files(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no such file"):
        read_series(tmp_path / "absent")
    text = tmp_path / "table.csv"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(UnsupportedFormat, match="neither DICOM"):
        read_series(text)


def test_report_and_errors_carry_no_patient_data(tmp_path: Path) -> None:
    write_series(tmp_path, 12, series_uid="1.2.826.0.5.1", names=[f"a{k}" for k in range(12)])
    write_series(tmp_path, 8, series_uid="1.2.826.0.5.2", names=[f"b{k}" for k in range(8)])
    report = discover_series(tmp_path)
    texts = report.describe() + [json.dumps(report.to_dict())]
    assert "1.2.826.0.5" not in texts[-1]  # no UIDs in the JSON form either
    volume = read_series(tmp_path)
    texts += [str(volume.summary()), repr(volume.acquisition)]
    (tmp_path / "a5").unlink()
    with pytest.raises(SliceGapError) as caught:
        read_series(tmp_path)
    texts.append(str(caught.value))
    for value in FAKE_PHI.values():
        assert all(value not in text for text in texts), value
