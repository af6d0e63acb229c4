"""Generated DICOM CT series reproducing each pitfall: order, tilt, gaps, duplicates, codecs."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedCTImageStorage, JPEG2000Lossless, RLELossless, generate_uid

from mayo_dx.errors import (
    DuplicateSliceError,
    GantryTiltError,
    GeometryError,
    MissingDependency,
    SeriesNotFound,
    SliceGapError,
    TooFewSlices,
    UnreadableFile,
)
from mayo_dx.imaging import dicom_pixels
from mayo_dx.imaging.read import read_series
from tests.imaging.dicom_writer import AXIAL, ct_dataset, pattern, read_back, write_series

SIZE = 16


def expected_hu(count: int, size: int = SIZE) -> np.ndarray:
    return np.stack([pattern(k, size) for k in range(count)])


def assert_world_consistent(volume, folder: Path) -> None:
    """Every written pixel sits in the volume at the index whose world position matches."""
    inverse = np.linalg.inv(volume.affine_lps)
    for path in sorted(folder.iterdir())[:3]:
        dataset = pydicom.dcmread(path)
        position = np.array(dataset.ImagePositionPatient, dtype=float)
        row, column = np.array(dataset.ImageOrientationPatient, dtype=float).reshape(2, 3)
        stored = dataset.pixel_array.astype(int) + int(dataset.RescaleIntercept)
        for r, c in [(0, 0), (3, 11), (15, 2)]:
            world = position + row * c * float(dataset.PixelSpacing[1]) + column * r * float(dataset.PixelSpacing[0])
            x, y, z = np.round(inverse @ np.append(world, 1.0))[:3].astype(int)
            assert volume.hu[z, y, x] == stored[r, c]


def test_shuffled_names_and_instance_numbers_do_not_change_order(tmp_path: Path) -> None:
    count = 14
    rng = random.Random(7)
    names = [f"{rng.getrandbits(40):x}" for _ in range(count)]  # no .dcm suffix, random order
    numbers = rng.sample(range(1, count + 1), count)
    write_series(tmp_path, count, names=names, instance_numbers=numbers)
    volume = read_series(tmp_path)
    np.testing.assert_array_equal(volume.hu, expected_hu(count))
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert volume.origin == pytest.approx((-5.0, -5.0, 10.0))
    assert volume.warnings == ()
    assert_world_consistent(volume, tmp_path)


def test_descending_positions_are_sorted_by_position(tmp_path: Path) -> None:
    count = 10
    write_series(tmp_path, count, positions=[(0.0, 0.0, 50.0 - 3.0 * k) for k in range(count)])
    volume = read_series(tmp_path)
    np.testing.assert_array_equal(volume.hu, expected_hu(count)[::-1])
    assert volume.origin == pytest.approx((0.0, 0.0, 23.0))
    assert volume.spacing[0] == pytest.approx(3.0)


def test_prone_feet_first_orientation_flipped_into_lps_layout(tmp_path: Path) -> None:
    count = 9
    write_series(tmp_path, count, orientation=(-1, 0, 0, 0, -1, 0))
    volume = read_series(tmp_path)
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-9)
    np.testing.assert_array_equal(volume.hu, expected_hu(count)[:, ::-1, ::-1])
    assert_world_consistent(volume, tmp_path)


def test_sagittal_series_skipped_but_readable_on_request(tmp_path: Path) -> None:
    count = 10
    positions = [(-20.0 + 2.0 * k, -5.0, 40.0) for k in range(count)]
    write_series(tmp_path, count, positions=positions, orientation=(0, 1, 0, 0, 0, -1), series_uid="1.2.826.0.9.1")
    with pytest.raises(SeriesNotFound, match="sagittal images, not axial"):
        read_series(tmp_path)
    volume = read_series(tmp_path, series_uid="1.2.826.0.9.1")
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-9)
    assert volume.shape == (SIZE, SIZE, count)  # z from image rows, y from columns, x from slices
    assert volume.spacing == pytest.approx((0.7, 0.7, 2.0))
    assert any("axes permuted" in warning for warning in volume.warnings)
    assert_world_consistent(volume, tmp_path)


def test_gantry_tilt_refused(tmp_path: Path) -> None:
    angle = np.radians(15.0)
    tilted = (1, 0, 0, 0, np.cos(angle), np.sin(angle))  # tilted image plane, table moving along z
    write_series(tmp_path, 10, orientation=tilted, extra={"GantryDetectorTilt": 15.0})
    with pytest.raises(GantryTiltError, match="15.0 degrees"):
        read_series(tmp_path)


def test_in_plane_drift_with_axial_orientation_refused(tmp_path: Path) -> None:
    write_series(tmp_path, 10, positions=[(0.0, 0.6 * k, 2.5 * k) for k in range(10)])
    with pytest.raises(GantryTiltError, match="drift"):
        read_series(tmp_path)


def test_recorded_tilt_with_consistent_geometry_is_a_warning(tmp_path: Path) -> None:
    angle = np.radians(10.0)
    normal = np.array([0.0, -np.sin(angle), np.cos(angle)])
    write_series(tmp_path, 10, orientation=(1, 0, 0, 0, np.cos(angle), np.sin(angle)),
                 positions=[tuple(2.5 * k * normal) for k in range(10)], extra={"GantryDetectorTilt": 10.0})
    volume = read_series(tmp_path)
    assert volume.spacing[0] == pytest.approx(2.5)
    assert any("GantryDetectorTilt 10" in warning for warning in volume.warnings)


def test_missing_slice_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path, 12)
    paths[6].unlink()
    with pytest.raises(SliceGapError, match=r"gap in the slice stack: 5.00 mm between slices 6 and 7 of 11"):
        read_series(tmp_path)


def test_slightly_uneven_spacing_warned(tmp_path: Path) -> None:
    steps = [2.5, 2.6, 2.4, 2.5, 2.55, 2.45, 2.5, 2.5, 2.5, 2.5]
    depths = np.concatenate([[0.0], np.cumsum(steps)])
    write_series(tmp_path, len(depths), positions=[(0.0, 0.0, depth) for depth in depths])
    volume = read_series(tmp_path)
    assert any("uneven slice spacing" in warning for warning in volume.warnings)
    assert volume.spacing[0] == pytest.approx(depths[-1] / (len(depths) - 1))


def test_exact_duplicate_dropped_with_warning(tmp_path: Path) -> None:
    paths = write_series(tmp_path, 10)
    shutil.copyfile(paths[4], tmp_path / "copy_of_4")
    volume = read_series(tmp_path)
    np.testing.assert_array_equal(volume.hu, expected_hu(10))
    assert any("1 duplicate slice(s)" in warning for warning in volume.warnings)


def test_duplicate_position_with_other_pixels_refused(tmp_path: Path) -> None:
    paths = write_series(tmp_path, 10)
    dataset = read_back(paths[4])
    dataset.PixelData = (np.frombuffer(dataset.PixelData, "<i2") + 5).astype("<i2").tobytes()
    dataset.SOPInstanceUID = generate_uid()
    dataset.save_as(tmp_path / "other_recon", enforce_file_format=True)
    with pytest.raises(DuplicateSliceError, match="different pixels"):
        read_series(tmp_path)


def test_mixed_orientation_size_and_spacing_refused(tmp_path: Path) -> None:
    uid = generate_uid()
    write_series(tmp_path / "orientation", 10, series_uid=uid)
    write_series(tmp_path / "orientation", 1, series_uid=uid, names=["odd"], orientation=(1, 0, 0, 0, 0.8, 0.6),
                 positions=[(0, 0, 100)])
    with pytest.raises(GeometryError, match="mixed orientations"):
        read_series(tmp_path / "orientation")
    uid = generate_uid()
    write_series(tmp_path / "size", 10, series_uid=uid)
    write_series(tmp_path / "size", 1, series_uid=uid, names=["odd"], size=8, positions=[(0, 0, 100)])
    with pytest.raises(GeometryError, match="mixed image sizes"):
        read_series(tmp_path / "size")
    uid = generate_uid()
    write_series(tmp_path / "spacing", 10, series_uid=uid)
    write_series(tmp_path / "spacing", 1, series_uid=uid, names=["odd"], pixel_spacing=(0.8, 0.8), positions=[(0, 0, 100)])
    with pytest.raises(GeometryError, match="mixed pixel spacings"):
        read_series(tmp_path / "spacing")


def test_truncated_file_named_by_basename(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "series", 10)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[:-100])
    with pytest.raises(UnreadableFile, match="IM0003.dcm: pixel data") as caught:
        read_series(tmp_path / "series")
    assert str(tmp_path) not in str(caught.value)


def test_single_slice_refused_by_default(tmp_path: Path) -> None:
    write_series(tmp_path, 1)
    with pytest.raises(TooFewSlices, match="1 distinct slice"):
        read_series(tmp_path)
    volume = read_series(tmp_path, min_slices=1)
    assert volume.shape == (1, SIZE, SIZE)
    assert volume.spacing[0] == 2.5  # from SliceThickness, the only source


@pytest.mark.parametrize(
    ("syntax", "plugin"),
    [(RLELossless, None), (JPEG2000Lossless, None), (JPEG2000Lossless, "pylibjpeg")],
    ids=["rle", "jpeg2000-gdcm", "jpeg2000-openjpeg"],
)
def test_compressed_series_gives_identical_hu(
    tmp_path: Path, syntax: str, plugin: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plugin is not None:  # as without python-gdcm installed
        monkeypatch.setitem(dicom_pixels._PREFERRED_PLUGINS, str(syntax), (plugin,))
    paths = write_series(tmp_path / "plain", 10, size=32)
    (tmp_path / "compressed").mkdir()
    for path in paths:
        dataset = read_back(path)
        dataset.compress(syntax)
        dataset.save_as(tmp_path / "compressed" / path.name, enforce_file_format=True)
    compressed = read_series(tmp_path / "compressed", workers=1)
    assert pydicom.dcmread(next((tmp_path / "compressed").iterdir())).file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(compressed.hu, read_series(tmp_path / "plain").hu)
    np.testing.assert_array_equal(compressed.hu, expected_hu(10, 32))


def test_missing_decoder_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.pixels

    paths = write_series(tmp_path, 8)
    for path in paths:
        dataset = read_back(path)
        dataset.compress(RLELossless)
        dataset.save_as(path, enforce_file_format=True)
    original = pydicom.pixels.get_decoder

    class Unavailable:
        def __init__(self, uid: str) -> None:
            self.UID = original(uid).UID
            self.is_available = False

    monkeypatch.setattr(pydicom.pixels, "get_decoder", Unavailable)
    with pytest.raises(MissingDependency, match="pylibjpeg-rle"):
        read_series(tmp_path)


def test_rescale_slope_half_gives_float(tmp_path: Path) -> None:
    write_series(tmp_path, 8, slope=0.5, intercept=-1000.0)
    volume = read_series(tmp_path)
    assert volume.hu.dtype == np.float32
    stored = expected_hu(8).astype(np.float64) + 1024
    np.testing.assert_array_equal(volume.hu, (stored * 0.5 - 1000).astype(np.float32))


def test_signed_twelve_bit_values_are_sign_extended(tmp_path: Path) -> None:
    paths = write_series(tmp_path, 8, intercept=0.0, extra={"BitsStored": 12, "HighBit": 11})
    for path in paths:
        dataset = read_back(path)
        values = np.full((SIZE, SIZE), -1000, dtype=np.int16) & 0x0FFF  # 12-bit two's complement, high bits clear
        dataset.PixelData = values.astype("<u2").tobytes()
        dataset.save_as(path, enforce_file_format=True)
    volume = read_series(tmp_path)
    assert (volume.hu == -1000).all()
    np.testing.assert_array_equal(volume.hu[0], pydicom.dcmread(paths[0]).pixel_array)


def enhanced_ct(path: Path, count: int, order: list[int]) -> None:
    """A multi-frame Enhanced CT file whose frames are stored in ``order`` (physical index per frame)."""
    base = ct_dataset(pattern(0, SIZE), (0, 0, 0), series_uid=generate_uid())
    base.file_meta.MediaStorageSOPClassUID = base.SOPClassUID = EnhancedCTImageStorage
    base.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "RescaleSlope", "RescaleIntercept", "ConvolutionKernel", "KVP"):
        delattr(base, keyword)
    base.NumberOfFrames = count

    def item(**values) -> Dataset:
        dataset = Dataset()
        for keyword, value in values.items():
            setattr(dataset, keyword, value)
        return dataset

    shared = item(
        PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.7, 0.7], SliceThickness=2.0)]),
        PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=list(AXIAL))]),
        PixelValueTransformationSequence=Sequence([item(RescaleSlope=1, RescaleIntercept=-1024, RescaleType="HU")]),
        CTXRayDetailsSequence=Sequence([item(KVP=100)]),
        CTReconstructionSequence=Sequence([item(ConvolutionKernel="B31f")]),
    )
    base.SharedFunctionalGroupsSequence = Sequence([shared])
    base.PerFrameFunctionalGroupsSequence = Sequence(
        [item(PlanePositionSequence=Sequence([item(ImagePositionPatient=[-5.0, -5.0, 2.0 * k])])) for k in order]
    )
    base.PixelData = b"".join((pattern(k, SIZE).astype(np.int32) + 1024).astype("<i2").tobytes() for k in order)
    base.save_as(path, enforce_file_format=True)


def test_enhanced_ct_multiframe_file(tmp_path: Path) -> None:
    order = [3, 0, 7, 1, 9, 2, 8, 4, 6, 5]
    enhanced_ct(tmp_path / "enhanced", 10, order)
    volume = read_series(tmp_path / "enhanced")
    assert volume.source_format == "dicom-enhanced"
    np.testing.assert_array_equal(volume.hu, expected_hu(10))
    assert volume.spacing == pytest.approx((2.0, 0.7, 0.7))
    assert volume.acquisition.kvp == 100 and volume.acquisition.convolution_kernel == "B31f"
    assert volume.acquisition.slice_thickness_mm == 2.0
    assert read_series(tmp_path).shape == (10, SIZE, SIZE)  # found in a folder too
