"""NIfTI reader and writer: RAS to LPS, [z, y, x] layout, round trips, labels, real files."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel
import numpy as np
import pytest

from mayo_dx.errors import GeometryError, TooFewSlices, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.geometry import to_nearest_lps
from mayo_dx.imaging.nifti import read_nifti, read_nifti_labels, write_nifti
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.volume import CtVolume
from tests.conftest import shared_path

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def small_volume(dtype=np.int16) -> CtVolume:
    rng = np.random.default_rng(3)
    hu = rng.integers(-1024, 1500, size=(5, 6, 7)).astype(dtype)
    if dtype == np.float32:
        hu = hu + np.float32(0.25)
    return CtVolume(hu=hu, spacing=(2.5, 0.75, 0.8), origin=(-120.5, 33.25, -700.0), source_format="array")


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_volume_round_trip(tmp_path: Path, dtype, suffix: str) -> None:
    volume = small_volume(dtype)
    again = read_nifti(write_nifti(volume, tmp_path / f"ct{suffix}"))
    assert again.hu.dtype == dtype
    np.testing.assert_array_equal(again.hu, volume.hu)
    assert again.spacing == pytest.approx(volume.spacing)
    assert again.origin == pytest.approx(volume.origin, abs=1e-4)
    np.testing.assert_allclose(again.direction, volume.direction, atol=1e-6)
    assert again.source_format == "nifti"


def test_written_file_is_ras_for_other_tools(tmp_path: Path) -> None:
    volume = small_volume()
    image = nibabel.load(write_nifti(volume, tmp_path / "ct.nii.gz"))
    assert image.shape == (7, 6, 5)  # x, y, z
    assert nibabel.aff2axcodes(image.affine) == ("L", "P", "S")  # our LPS axes, described in RAS terms
    assert image.affine[:3, 3] == pytest.approx([120.5, -33.25, -700.0])
    assert np.asarray(image.dataobj)[3, 2, 1] == volume.hu[1, 2, 3]
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1


def test_label_map_round_trip(tmp_path: Path) -> None:
    volume = small_volume()
    labels = np.zeros(volume.shape, dtype=np.int64)
    labels[2, 3, 4], labels[1, 1, 1] = 1, 2
    path = write_nifti(labels, tmp_path / "seg.nii.gz", like=volume)
    image = nibabel.load(path)
    assert image.get_data_dtype() == np.uint8
    assert image.header.get_intent()[0] == "label"
    again = read_nifti_labels(path, like=volume)
    assert again.dtype == np.uint8
    np.testing.assert_array_equal(again, labels)
    mask = write_nifti(labels > 0, tmp_path / "mask.nii", like=volume)
    assert nibabel.load(mask).get_data_dtype() == np.uint8


def test_labels_that_do_not_align_are_refused(tmp_path: Path) -> None:
    volume = small_volume()
    path = write_nifti(np.zeros(volume.shape, np.uint8), tmp_path / "seg.nii.gz", like=volume)
    moved = CtVolume(hu=volume.hu, spacing=volume.spacing, origin=(0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="origin differs"):
        read_nifti_labels(path, like=moved)
    other_shape = CtVolume(hu=np.zeros((5, 6, 8), np.int16), spacing=volume.spacing, origin=volume.origin)
    with pytest.raises(GeometryError, match="shape"):
        read_nifti_labels(path, like=other_shape)


@pytest.mark.parametrize("axes", list(itertools.permutations(range(3))))
def test_any_axis_order_and_flip_reads_into_lps_layout(tmp_path: Path, axes: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(axes))
    data = rng.integers(-1000, 1000, size=(4, 5, 6)).astype(np.int16)
    signs = rng.choice([-1.0, 1.0], size=3)
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, list(axes)] * signs * np.array([0.9, 1.1, 3.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    nibabel.save(nibabel.Nifti1Image(data, affine), tmp_path / "odd.nii.gz")
    volume = read_nifti(tmp_path / "odd.nii.gz")
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)
    for index in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:  # each voxel keeps its RAS world position
        world_ras = (affine @ np.append(index, 1.0))[:3]
        world_lps = (RAS_TO_LPS[:3, :3] @ world_ras)
        zyx = np.round(np.linalg.solve(volume.affine_lps[:3, :3], world_lps - volume.origin))[::-1].astype(int)
        assert volume.hu[tuple(zyx)] == data[index]


def test_to_nearest_lps_keeps_world_positions_under_rotation() -> None:
    angle = np.radians(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    direction = rotation @ np.eye(3)[:, [2, 0, 1]] @ np.diag([1.0, -1.0, 1.0])
    array = np.arange(60).reshape(3, 4, 5)
    spacing, origin = (2.0, 1.0, 0.5), (1.0, 2.0, 3.0)
    out, new_spacing, new_origin, new_direction, permuted = to_nearest_lps(array, spacing, origin, direction)
    assert permuted
    old = CtVolume(hu=array.astype(np.int16), spacing=spacing, origin=origin, direction=direction)
    new = CtVolume(hu=out.astype(np.int16), spacing=new_spacing, origin=new_origin, direction=new_direction)
    inverse = np.linalg.inv(new.affine_lps)
    for index in [(0, 0, 0), (2, 3, 4), (1, 0, 3)]:
        x, y, z = np.round(inverse @ np.append(old.index_to_world(index), 1.0))[:3].astype(int)
        assert new.hu[z, y, x] == old.hu[index]


def test_scaled_integers_read_as_float(tmp_path: Path) -> None:
    image = nibabel.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    image.header.set_slope_inter(0.5, -1000.0)
    nibabel.save(image, tmp_path / "scaled.nii")
    volume = read_nifti(tmp_path / "scaled.nii")
    assert volume.hu.dtype == np.float32
    assert volume.hu.min() == pytest.approx(-1000.0) and volume.hu.max() == pytest.approx(-988.5)


def test_broken_inputs(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no such file"):
        read_nifti(tmp_path / "absent.nii.gz")
    good = write_nifti(small_volume(), tmp_path / "ct.nii.gz")
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UnreadableFile, match="cut.nii.gz"):
        read_nifti(truncated)
    nibabel.save(nibabel.Nifti1Image(np.zeros((3, 3, 3, 2), np.int16), np.eye(4)), tmp_path / "4d.nii.gz")
    with pytest.raises(UnsupportedFormat, match="3-D"):
        read_nifti(tmp_path / "4d.nii.gz")
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    nibabel.save(nibabel.Nifti1Image(np.zeros((3, 3, 3), np.int16), sheared), tmp_path / "shear.nii.gz")
    with pytest.raises(GeometryError, match="sheared"):
        read_nifti(tmp_path / "shear.nii.gz")
    with pytest.raises(ValueError, match="like="):
        write_nifti(np.zeros((2, 2, 2)), tmp_path / "x.nii.gz")
    with pytest.raises(UnsupportedFormat, match=".nii"):
        write_nifti(small_volume(), tmp_path / "x.npy")


def test_read_series_dispatches_nifti_with_min_slices(tmp_path: Path) -> None:
    path = write_nifti(small_volume(), tmp_path / "ct.nii.gz")
    assert read_series(path, min_slices=5).source_format == "nifti"
    with pytest.raises(TooFewSlices):
        read_series(path)


def test_real_totalsegmentator_ct() -> None:
    path = shared_path("ct", "totalseg_nifti", "example_ct_sm.nii.gz")
    volume = read_series(path)
    assert volume.shape == (30, 101, 122)
    assert volume.spacing == pytest.approx((3.0, 3.0, 3.0))
    assert volume.hu.dtype == np.int16
    assert -1100 <= volume.hu.min() < -900 and 500 < volume.hu.max() < 3000
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)
    labels = read_nifti_labels(shared_path("ct", "totalseg_nifti", "example_seg.nii.gz"), like=volume)
    liver, pancreas = volume.hu[labels == 5], volume.hu[labels == 7]
    assert liver.size > 10000 and 30 <= np.median(liver) <= 80  # non-contrast liver
    assert pancreas.size > 100 and -60 <= np.median(pancreas) <= 100  # 3 mm voxels: soft tissue mixed with fat
    assert np.median(volume.hu[labels == 0][:1000]) < -500  # the first background voxels are air
