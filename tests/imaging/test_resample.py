"""CT preprocessing: orientation, spacing, window, crop, and the inverse back to the source grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from mayo_dx.errors import InputError
from mayo_dx.imaging.resample import (
    CtPreprocessing,
    Grid,
    ObliqueVolume,
    box_from_world,
    crop,
    paste_back,
    preprocess_ct,
    preprocess_labels,
    reorient,
    resample,
    resample_to_grid,
    restore_labels,
    window,
)
from mayo_dx.imaging.volume import CtVolume
from tests.conftest import shared_path


def nifti_labels_and_grid(path: Path) -> tuple[np.ndarray, Grid]:
    """A NIfTI label file as ``[z, y, x]`` plus its grid in LPS (test helper; RAS affine -> LPS)."""
    image = nibabel.load(path)
    data = np.asarray(image.dataobj)
    affine_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine
    zooms = np.sqrt((affine_lps[:3, :3] ** 2).sum(axis=0))  # per (i, j, k)
    direction = affine_lps[:3, :3] / zooms[None, :]
    return data.transpose(2, 1, 0), Grid(data.shape[::-1], zooms[::-1], affine_lps[:3, 3], direction)


def rotation_z(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])


# A sagittal-like stack: index x runs toward the feet, index y toward anterior, index z to the right.
PERMUTED = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])


def all_indices(shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(size) for size in shape], indexing="ij"), axis=-1).reshape(-1, 3)


def dice(first: np.ndarray, second: np.ndarray) -> float:
    return 2.0 * np.logical_and(first, second).sum() / (first.sum() + second.sum())


def test_parameters_round_trip_through_json_and_refuse_unknown_keys() -> None:
    params = CtPreprocessing(target_spacing=(3.0, 1.5, 1.5), window_low=-100, window_high=240)
    restored = CtPreprocessing.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    assert CtPreprocessing().to_dict()["window_low"] == -87.0 and CtPreprocessing().to_dict()["window_high"] == 199.0
    assert CtPreprocessing.from_dict({"target_spacing": None}).target_spacing is None
    with pytest.raises(ValueError, match="unknown CT preprocessing"):
        CtPreprocessing.from_dict({**params.to_dict(), "gamma": 2})
    with pytest.raises(ValueError):
        CtPreprocessing(window_low=200, window_high=100)
    with pytest.raises(ValueError):
        CtPreprocessing(target_spacing=(1.0, 0.0, 1.0))


@pytest.mark.parametrize(
    "direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]), PERMUTED, PERMUTED @ np.diag([1, -1, 1])]
)
def test_reorient_reaches_identity_and_keeps_every_voxel_at_its_world_position(direction: np.ndarray) -> None:
    shape, spacing = (3, 4, 5), (2.5, 0.8, 1.1)
    grid = Grid(shape, spacing, origin=(10.0, -20.0, 30.0), direction=direction)
    array = np.arange(np.prod(shape)).reshape(shape)
    output, new_grid = reorient(array, grid)
    np.testing.assert_allclose(new_grid.direction, np.eye(3), atol=1e-12)
    indices = all_indices(output.shape)
    source = grid.world_to_index(new_grid.index_to_world(indices))
    np.testing.assert_allclose(source, np.rint(source), atol=1e-9)
    source = np.rint(source).astype(int)
    np.testing.assert_array_equal(output[tuple(indices.T)], array[tuple(source.T)])


def test_reorient_refuses_oblique_volumes_and_keeps_small_rotations_exact() -> None:
    array = np.arange(60).reshape(3, 4, 5)
    with pytest.raises(ObliqueVolume, match="20.0 degrees"):
        reorient(array, Grid(array.shape, (1, 1, 1), direction=rotation_z(20)))
    assert issubclass(ObliqueVolume, InputError)
    tilted = Grid(array.shape, (2.0, 1.0, 1.0), direction=np.diag([-1.0, 1.0, 1.0]) @ rotation_z(3))
    output, new_grid = reorient(array, tilted, max_obliquity_degrees=5)
    assert not np.allclose(new_grid.direction, np.eye(3))  # the residual 3 degrees are kept
    indices = all_indices(output.shape)
    source = np.rint(tilted.world_to_index(new_grid.index_to_world(indices))).astype(int)
    np.testing.assert_array_equal(output[tuple(indices.T)], array[tuple(source.T)])


def test_linear_resampling_preserves_world_positions_of_voxel_centres() -> None:
    # Linear interpolation reproduces a linear function of position exactly, so every output
    # voxel must hold the function's value at its own world position.
    grid = Grid((12, 20, 18), (2.5, 0.7, 0.9), origin=(-30.0, 12.0, 400.0), direction=np.diag([-1.0, 1.0, -1.0]))
    gradient = np.array([0.3, -0.2, 0.5])
    values = (grid.index_to_world(all_indices(grid.shape)) @ gradient).reshape(grid.shape).astype(np.float32)
    output, new_grid = resample(values, grid, (1.5, 1.5, 1.5))
    assert output.dtype == np.float32
    assert output.shape == (20, 9, 11)  # round(extent / target)
    indices = all_indices(output.shape)
    inside = np.all((indices >= 1) & (indices <= np.array(output.shape) - 2), axis=1)
    expected = new_grid.index_to_world(indices[inside]) @ gradient
    np.testing.assert_allclose(output[tuple(indices[inside].T)], expected, atol=1e-3)
    # The output block is centred on the input block.
    centre_in = grid.index_to_world((np.array(grid.shape) - 1) / 2)
    centre_out = new_grid.index_to_world((np.array(output.shape) - 1) / 2)
    np.testing.assert_allclose(centre_in, centre_out, atol=1e-9)


def test_label_resampling_is_nearest_and_keeps_dtype() -> None:
    labels = np.zeros((6, 10, 10), np.uint8)
    labels[2:4, 2:6, 4:8] = 2
    labels[0, 0, 0] = 1
    output, _ = resample(labels, (3.0, 1.0, 1.0), (1.5, 0.5, 0.5), order=0)
    assert output.dtype == np.uint8
    assert set(np.unique(output)) == {0, 1, 2}
    assert int((output == 2).sum()) == 32 * 8  # each voxel became 2 x 2 x 2 voxels


def test_output_shape_follows_the_extent_for_a_typical_ct() -> None:
    params = CtPreprocessing(target_spacing=(1.5, 1.5, 1.5))
    array, geometry = preprocess_ct(np.zeros((200, 64, 64), np.int16), params, spacing=(1.25, 0.78, 0.78))
    assert array.shape == (167, 33, 33)
    assert geometry.target.spacing == (1.5, 1.5, 1.5)


def test_window_clips_and_scales_to_the_output_range() -> None:
    hu = np.array([-1024, -87, 56, 199, 2000], dtype=np.int16)
    np.testing.assert_allclose(window(hu, -87, 199), [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(window(hu, -87, 199, (-1.0, 1.0)), [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)
    assert window(hu, -87, 199).dtype == np.float32


def test_preprocess_accepts_volumes_and_plain_arrays_and_never_changes_the_input() -> None:
    hu = np.random.default_rng(0).normal(40, 80, size=(8, 24, 24)).astype(np.float32)
    original = hu.copy()
    params = CtPreprocessing(target_spacing=None)
    from_array, _ = preprocess_ct(hu, params, spacing=(2.0, 0.8, 0.8))
    from_volume, geometry = preprocess_ct(CtVolume(hu=hu, spacing=(2.0, 0.8, 0.8)), params)
    np.testing.assert_array_equal(hu, original)
    np.testing.assert_array_equal(from_array, from_volume)
    assert from_array.dtype == np.float32 and 0.0 <= from_array.min() and from_array.max() <= 1.0
    json.dumps(geometry.to_dict())
    with pytest.raises(InputError, match="spacing"):
        preprocess_ct(hu, params)


def test_crop_pads_beyond_the_volume_and_paste_back_restores_it() -> None:
    grid = Grid((10, 12, 14), (2.0, 1.0, 0.5), origin=(5.0, 6.0, 7.0))
    array = np.arange(np.prod(grid.shape), dtype=np.int32).reshape(grid.shape)
    part, part_grid, info = crop(array, grid, (0, 3, 10), (4, 6, 14), margin_mm=2.0, fill=-1)
    assert info.start == (-1, 1, 6) and info.stop == (5, 8, 18)
    assert part.shape == (6, 7, 12)
    assert (part[0] == -1).all() and (part[:, :, -4:] == -1).all()
    np.testing.assert_allclose(part_grid.index_to_world([0, 0, 0]), grid.index_to_world(info.start))
    restored = paste_back(part, info, fill=-7)
    inside = restored != -7
    np.testing.assert_array_equal(restored[inside], array[inside])
    assert inside.sum() == 5 * 7 * 8
    with pytest.raises(InputError):
        paste_back(part[:-1], info)


def test_box_from_world_and_preprocess_crop_around_a_lesion() -> None:
    hu = np.full((20, 40, 40), -1000, np.int16)
    hu[8:12, 10:20, 25:35] = 100
    volume = CtVolume(hu=hu, spacing=(2.0, 1.0, 1.0), origin=(-20.0, -20.0, 100.0))
    grid = Grid.of(volume)
    low, high = grid.index_to_world([8, 10, 25]), grid.index_to_world([11, 19, 34])
    assert box_from_world(low, high, grid) == ((8, 10, 25), (12, 20, 35))
    params = CtPreprocessing(target_spacing=(2.0, 1.0, 1.0), crop_margin_mm=6.0)
    array, geometry = preprocess_ct(volume, params, box=(low, high))
    assert array.shape == (4 + 6, 10 + 12, 10 + 12)
    np.testing.assert_allclose(array[3:7, 6:16, 6:16], (100 + 87) / 286, rtol=1e-6)
    assert array[0].max() == 0.0  # air
    labels, _ = preprocess_labels((hu > 0).astype(np.uint8), volume, params, box=(low, high))
    np.testing.assert_array_equal(restore_labels(labels, geometry), hu > 0)


def test_a_crop_reaching_outside_the_volume_is_filled_with_air() -> None:
    volume = CtVolume(hu=np.full((4, 8, 8), 50, np.int16), spacing=(1.0, 1.0, 1.0))
    params = CtPreprocessing(target_spacing=None, crop_margin_mm=2.0)
    array, _ = preprocess_ct(volume, params, box=((0, 0, 0), (1, 1, 1)))
    assert array.shape == (6, 6, 6)
    assert array[0, 0, 0] == 0.0 and array[2, 2, 2] == pytest.approx(137 / 286)


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([1.0, -1.0, -1.0]), PERMUTED])
def test_labels_survive_preprocessing_and_restoration(direction: np.ndarray) -> None:
    grid = Grid((6, 16, 16), (3.0, 0.75, 0.75), origin=(1.0, 2.0, 3.0), direction=direction)
    labels = np.zeros(grid.shape, np.uint8)
    labels[1:4, 2:8, 4:10] = 1  # blocks on even voxel boundaries survive 2:1 in-plane pooling
    labels[3:5, 10:14, 10:16] = 2
    params = CtPreprocessing(target_spacing=(1.5, 1.5, 1.5))
    output, geometry = preprocess_labels(labels, grid, params)
    assert output.dtype == np.uint8 and output.flags.c_contiguous
    np.testing.assert_array_equal(restore_labels(output, geometry), labels)
    image, image_geometry = preprocess_ct(CtVolume(hu=labels.astype(np.int16) * 100, spacing=grid.spacing,
                                                   origin=grid.origin, direction=direction), params)
    assert image_geometry.target == geometry.target and image.shape == output.shape
    with pytest.raises(InputError):
        restore_labels(output[1:], geometry)


def test_resample_to_grid_fills_outside() -> None:
    small = Grid((2, 2, 2), (1.0, 1.0, 1.0))
    large = Grid((4, 4, 4), (1.0, 1.0, 1.0), origin=(-1.0, -1.0, -1.0))
    output = resample_to_grid(np.ones((2, 2, 2), np.uint8), small, large, fill=9)
    assert output[1:3, 1:3, 1:3].tolist() == np.ones((2, 2, 2)).tolist()
    assert int((output == 9).sum()) == 64 - 8


def test_real_totalsegmentator_pancreas_survives_a_round_trip_through_1_5_mm() -> None:
    path = shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz")
    labels, grid = nifti_labels_and_grid(path)
    pancreas = (labels == 7).astype(np.uint8)
    assert grid.direction[1][1] < 0  # this file's j axis runs anterior: reorientation flips it
    output, geometry = preprocess_labels(pancreas, grid, CtPreprocessing(target_spacing=(1.5, 1.5, 1.5)))
    assert np.allclose(geometry.target.direction, np.eye(3))
    restored = restore_labels(output, geometry)
    assert dice(restored == 1, pancreas == 1) > 0.85
    centroid = grid.index_to_world(np.argwhere(pancreas).mean(axis=0))
    output_centroid = geometry.target.index_to_world(np.argwhere(output).mean(axis=0))
    restored_centroid = grid.index_to_world(np.argwhere(restored).mean(axis=0))
    # Nearest sampling of a thin organ moves its centroid by less than one 1.5 mm voxel.
    assert np.linalg.norm(centroid - output_centroid) < 1.5
    assert np.linalg.norm(centroid - restored_centroid) < 1.5


def test_nearest_resampling_of_a_sphere_keeps_its_centroid_and_volume() -> None:
    grid = Grid((40, 60, 60), (2.0, 0.977, 0.977))
    centre = np.array([29.3, 28.1, 39.7])
    inside = np.linalg.norm(grid.index_to_world(all_indices(grid.shape)) - centre, axis=1) < 12.0
    labels = inside.reshape(grid.shape).astype(np.uint8)
    for spacing in [(1.5, 1.5, 1.5), (1.0, 1.0, 1.0), (3.0, 3.0, 3.0)]:
        output, geometry = preprocess_labels(labels, grid, CtPreprocessing(target_spacing=spacing))
        centroid = geometry.target.index_to_world(np.argwhere(output).mean(axis=0))
        assert np.linalg.norm(centroid - centre) < 0.25 * max(spacing) + 0.1
        assert output.sum() * np.prod(spacing) == pytest.approx(labels.sum() * np.prod(grid.spacing), rel=0.1)
