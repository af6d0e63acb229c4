"""Label-map writers: NIfTI geometry, and DICOM SEG round trips through highdicom and pydicom."""

from __future__ import annotations

from pathlib import Path

import highdicom
import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SegmentationStorage, generate_uid

from mayo_dx.errors import InputError
from mayo_dx.imaging.resample import Grid
from mayo_dx.imaging.seg_out import PANCREAS_SEGMENTS, write_dicom_seg, write_nifti_labels
from mayo_dx.imaging.volume import CtVolume
from tests.conftest import shared_path
from tests.imaging.test_resample import nifti_labels_and_grid

SHAPE = (12, 32, 32)
IDENTIFIERS = (
    "Doe^Jane", "PID-0001", "19700101", "General Hospital", "Main Street 1", "SN-4711", "Ref^Doctor", "CT-01"
)


def write_ct_series(folder: Path, shape: tuple[int, int, int] = SHAPE, seed: int = 0) -> list[Path]:
    """A small CT series written with pydicom, file names in shuffled order (slice i at z = 100 + 2.5 i)."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(seed)
    names = rng.permutation(shape[0])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(shape[0]):
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = CTImageStorage
        dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.FrameOfReferenceUID = study, series, frame
        dataset.Modality, dataset.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
        dataset.PatientName, dataset.PatientID, dataset.PatientBirthDate = IDENTIFIERS[:3]
        dataset.PatientSex, dataset.PatientAge, dataset.PatientWeight = "F", "054Y", "70"
        dataset.StudyDate, dataset.StudyTime = "20240102", "101500"
        dataset.StudyID, dataset.AccessionNumber = "7", "ACC9"
        dataset.ReferringPhysicianName, dataset.InstitutionName = IDENTIFIERS[6], IDENTIFIERS[3]
        dataset.InstitutionAddress, dataset.DeviceSerialNumber = IDENTIFIERS[4], IDENTIFIERS[5]
        dataset.StationName = IDENTIFIERS[7]
        dataset.Manufacturer, dataset.SeriesNumber, dataset.InstanceNumber = "Vendor", 3, int(names[index]) + 1
        dataset.PositionReferenceIndicator = ""
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        dataset.ImagePositionPatient = [-12.4, -20.0, 100.0 + 2.5 * index]
        dataset.PixelSpacing, dataset.SliceThickness = [0.8, 0.8], 2.5
        dataset.Rows, dataset.Columns = shape[1], shape[2]
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 1
        dataset.RescaleIntercept, dataset.RescaleSlope = 0, 1
        dataset.PixelData = rng.integers(-100, 200, size=shape[1:]).astype(np.int16).tobytes()
        path = folder / f"image_{names[index]:03d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return sorted(paths)


def sort_along_normal(datasets: list[Dataset]) -> list[Dataset]:
    """Order slices by ImagePositionPatient projected on the slice normal (never by name or number)."""
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(datasets, key=lambda item: float(np.dot(normal, np.asarray(item.ImagePositionPatient, float))))


def example_labels(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[2:10, 8:20, 4:28] = 1
    labels[4:7, 10:15, 6:11] = 2
    return labels


def sop_uid(dataset: Dataset) -> str:
    return str(dataset.get("SOPInstanceUID") or dataset.file_meta.MediaStorageSOPInstanceUID)


def labels_from_pydicom(seg: Dataset, uids: list[str]) -> np.ndarray:
    """Rebuild the label map from the SEG's frames with plain pydicom."""
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    rebuilt = np.zeros((len(uids), seg.Rows, seg.Columns), np.uint8)
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        identification = item.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        segment = int(identification[0].ReferencedSegmentNumber)
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        rebuilt[uids.index(source)][frame > 0] = segment
    return rebuilt


@pytest.fixture()
def series(tmp_path: Path) -> list[Dataset]:
    paths = write_ct_series(tmp_path / "ct")
    return sort_along_normal([pydicom.dcmread(path) for path in paths])


def test_seg_round_trips_through_highdicom(series: list[Dataset], tmp_path: Path) -> None:
    labels = example_labels()
    path = write_dicom_seg(labels, [Path(item.filename) for item in series], tmp_path / "seg.dcm",
                           model_name="pancreas-ct-demo", model_version="1.2")
    seg = highdicom.seg.segread(path)
    assert seg.SOPClassUID == SegmentationStorage and seg.SegmentationType == "BINARY"
    uids = [item.SOPInstanceUID for item in series]
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    np.testing.assert_array_equal(pixels, labels)
    assert sorted(uid for _, _, uid in seg.get_source_image_uids()) == sorted(uids)
    assert seg.StudyInstanceUID == series[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    pancreas, lesion = seg.SegmentSequence
    assert (pancreas.SegmentLabel, lesion.SegmentLabel) == ("pancreas", "pancreatic lesion")
    assert pancreas.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    assert pancreas.SegmentedPropertyTypeCodeSequence[0].CodeValue == "15776009"
    assert lesion.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert lesion.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    assert lesion.AnatomicRegionSequence[0].CodeValue == "15776009"
    for segment in seg.SegmentSequence:
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("pancreas-ct-demo", "1.2")
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == "123110"


def test_seg_frames_read_with_plain_pydicom_match_the_label_map(series: list[Dataset], tmp_path: Path) -> None:
    labels = example_labels()
    path = write_dicom_seg(labels, series, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(path)
    uids = [item.SOPInstanceUID for item in series]
    np.testing.assert_array_equal(labels_from_pydicom(seg, uids), labels)
    instances = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    referenced = [item.ReferencedSOPInstanceUID for item in instances]
    assert sorted(referenced) == sorted(uids)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series[0].SeriesInstanceUID
    assert int(seg.NumberOfFrames) == int(sum(np.any(labels == value, axis=(1, 2)).sum() for value in (1, 2)))


def test_seg_carries_only_the_identity_needed_to_join_the_study(series: list[Dataset], tmp_path: Path) -> None:
    seg = pydicom.dcmread(write_dicom_seg(example_labels(), series, tmp_path / "seg.dcm"))
    assert (str(seg.PatientName), seg.PatientID) == ("Doe^Jane", "PID-0001")
    assert (seg.PatientBirthDate, seg.PatientSex, str(seg.ReferringPhysicianName)) == ("", "", "")
    assert (seg.StudyDate, seg.StudyID, seg.AccessionNumber) == ("20240102", "7", "ACC9")
    for keyword in ("PatientAge", "PatientWeight", "InstitutionName", "InstitutionAddress", "StationName"):
        assert keyword not in seg
    dump = str(seg)
    for identifier in IDENTIFIERS[2:]:
        assert identifier not in dump


def test_seg_pseudonym_replaces_patient_name_and_id(series: list[Dataset], tmp_path: Path) -> None:
    seg = pydicom.dcmread(write_dicom_seg(example_labels(), series, tmp_path / "seg.dcm", pseudonym="CASE-0042"))
    assert (str(seg.PatientName), seg.PatientID) == ("CASE-0042^", "CASE-0042")
    assert "Doe^Jane" not in str(seg) and "PID-0001" not in str(seg)
    assert (str(series[0].PatientName), series[0].PatientID) == ("Doe^Jane", "PID-0001")  # sources untouched


def test_seg_leaves_out_absent_segments_and_does_not_touch_the_sources(series: list[Dataset], tmp_path: Path) -> None:
    labels = np.where(example_labels() == 2, 2, 0).astype(np.uint8)
    before = [item.to_json_dict() for item in series[:2]]
    seg = highdicom.seg.segread(write_dicom_seg(labels, series, tmp_path / "seg.dcm"))
    assert len(seg.SegmentSequence) == 1
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    uids = [item.SOPInstanceUID for item in series]
    np.testing.assert_array_equal(seg.get_pixels_by_source_instance(uids, combine_segments=True), labels > 0)
    assert [item.to_json_dict() for item in series[:2]] == before


def test_seg_refuses_inputs_that_do_not_fit(series: list[Dataset], tmp_path: Path) -> None:
    labels = example_labels()
    with pytest.raises(InputError, match="slice order"):
        write_dicom_seg(labels, series[::2] + series[1::2], tmp_path / "seg.dcm")
    with pytest.raises(InputError, match="does not match"):
        write_dicom_seg(labels[:-1], series, tmp_path / "seg.dcm")
    with pytest.raises(InputError, match="no segment description"):
        write_dicom_seg(labels * 3, series, tmp_path / "seg.dcm")
    with pytest.raises(InputError, match="nothing to write"):
        write_dicom_seg(np.zeros_like(labels), series, tmp_path / "seg.dcm")
    for keyword in ("StudyInstanceUID", "ImagePositionPatient"):
        stripped = [pydicom.dcmread(Path(item.filename)) for item in series]
        delattr(stripped[0], keyword)
        with pytest.raises(InputError, match=keyword):
            write_dicom_seg(labels, stripped, tmp_path / "seg.dcm")
    mixed = [pydicom.dcmread(Path(item.filename)) for item in series]
    mixed[3].SeriesInstanceUID = generate_uid()
    with pytest.raises(InputError, match="more than one series"):
        write_dicom_seg(labels, mixed, tmp_path / "seg.dcm")
    mixed = [pydicom.dcmread(Path(item.filename)) for item in series]
    mixed[3].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    with pytest.raises(InputError, match="orientation"):
        write_dicom_seg(labels, mixed, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
    assert [spec.label for spec in PANCREAS_SEGMENTS] == [1, 2]


def test_nifti_labels_carry_the_volume_geometry_in_ras(tmp_path: Path) -> None:
    direction = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    volume = CtVolume(hu=np.zeros((5, 6, 7), np.int16), spacing=(2.5, 0.9, 0.7), origin=(10.0, -5.0, 30.0),
                      direction=direction)
    labels = np.random.default_rng(1).integers(0, 3, size=volume.shape).astype(np.int64)
    image = nibabel.load(write_nifti_labels(labels, volume, tmp_path / "labels.nii.gz"))
    data = np.asarray(image.dataobj)
    assert data.dtype == np.uint8 and data.shape == (7, 6, 5)
    np.testing.assert_array_equal(data.transpose(2, 1, 0), labels)
    index = np.array([3, 2, 4])  # (z, y, x)
    ras = image.affine @ np.r_[index[::-1], 1.0]
    np.testing.assert_allclose(ras[:3] * [-1, -1, 1], volume.index_to_world(index), atol=1e-5)
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
    read_back, grid = nifti_labels_and_grid(tmp_path / "labels.nii.gz")
    np.testing.assert_allclose(grid.affine_lps, Grid.of(volume).affine_lps, atol=1e-5)


def test_real_nifti_labels_are_rewritten_unchanged(tmp_path: Path) -> None:
    source = shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz")
    labels, grid = nifti_labels_and_grid(source)
    written = nibabel.load(write_nifti_labels(labels, grid, tmp_path / "copy.nii.gz"))
    np.testing.assert_allclose(written.affine, nibabel.load(source).affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(nibabel.load(source).dataobj))


def test_real_series_seg_with_totalsegmentator_pancreas(tmp_path: Path) -> None:
    folder = shared_path("ct", "totalseg_dicom")
    labels_path = shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz")
    series = sort_along_normal([pydicom.dcmread(path) for path in sorted(folder.iterdir())])
    # The shared sample had its Study/Series UIDs blanked; give the copies in memory stand-ins.
    study, series_uid = generate_uid(), generate_uid()
    for item in series:
        item.StudyInstanceUID, item.SeriesInstanceUID = study, series_uid
    # Geometry of the sorted series, then the NIfTI voxel that holds each DICOM voxel centre.
    first, last = (np.asarray(item.ImagePositionPatient, float) for item in (series[0], series[-1]))
    orientation = np.asarray(series[0].ImageOrientationPatient, float)
    row_spacing, column_spacing = (float(value) for value in series[0].PixelSpacing)
    slice_step = (last - first) / (len(series) - 1)
    dicom_affine = np.eye(4)
    dicom_affine[:3, 0] = orientation[:3] * column_spacing
    dicom_affine[:3, 1] = orientation[3:] * row_spacing
    dicom_affine[:3, 2], dicom_affine[:3, 3] = slice_step, first
    nifti = nibabel.load(labels_path)
    mapping = np.linalg.inv(np.diag([-1.0, -1.0, 1.0, 1.0]) @ nifti.affine) @ dicom_affine
    np.testing.assert_allclose(mapping, np.rint(mapping), atol=1e-3)  # a signed permutation on whole voxels
    mapping = np.rint(mapping).astype(int)
    nifti_axis = np.argmax(np.abs(mapping[:3, :3]), axis=0)  # NIfTI axis of DICOM x, y, z
    sizes = (int(series[0].Columns), int(series[0].Rows), len(series))
    picks = [
        mapping[nifti_axis[axis], axis] * np.arange(sizes[axis]) + mapping[nifti_axis[axis], 3] for axis in range(3)
    ]
    data = np.transpose(np.asarray(nifti.dataobj), [nifti_axis[2], nifti_axis[1], nifti_axis[0]])
    labels = data[np.ix_(picks[2], picks[1], picks[0])]
    pancreas = (labels == 7).astype(np.uint8)
    assert pancreas.sum() == (np.asarray(nifti.dataobj) == 7).sum()
    # Check the mapping against the image itself: enhanced pancreas is soft tissue, not fat or air.
    hu = np.stack([item.pixel_array * float(item.RescaleSlope) + float(item.RescaleIntercept) for item in series])
    assert 40 < hu[pancreas == 1].mean() < 250
    assert hu[labels == 0].mean() < -300
    path = write_dicom_seg(pancreas, series, tmp_path / "seg.dcm", model_name="demo")
    seg = highdicom.seg.segread(path)
    uids = [sop_uid(item) for item in series]
    np.testing.assert_array_equal(seg.get_pixels_by_source_instance(uids, combine_segments=True), pancreas)
    assert sorted(uid for _, _, uid in seg.get_source_image_uids()) == sorted(uids)
    np.testing.assert_array_equal(labels_from_pydicom(pydicom.dcmread(path), uids), pancreas)
