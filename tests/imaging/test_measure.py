"""Pancreas and lesion measurements on shapes with known answers and on a real label map."""

from __future__ import annotations

import json

import nibabel
import numpy as np
import pytest

from mayo_dx.errors import InputError
from mayo_dx.imaging.measure import longest_axial_diameter, measure_labels
from mayo_dx.imaging.resample import Grid
from mayo_dx.imaging.volume import CtVolume
from tests.conftest import shared_path
from tests.imaging.test_resample import nifti_labels_and_grid


def ellipsoid(
    grid: Grid, centre_lps: np.ndarray, semi_axes: np.ndarray, rotation: np.ndarray | None = None
) -> np.ndarray:
    """Mask of voxels whose centres lie inside an ellipsoid given in world (LPS mm) coordinates."""
    indices = np.stack(np.meshgrid(*[np.arange(size) for size in grid.shape], indexing="ij"), axis=-1)
    offsets = grid.index_to_world(indices) - centre_lps
    if rotation is not None:
        offsets = offsets @ rotation  # world -> ellipsoid frame
    return ((offsets / semi_axes) ** 2).sum(axis=-1) <= 1.0


def in_plane_rotation(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])


def test_sphere_volume_and_diameter_at_fine_spacing() -> None:
    grid = Grid((50, 50, 50), (0.5, 0.5, 0.5))
    radius = 10.0
    labels = ellipsoid(grid, np.array([12.3, 12.1, 12.2]), np.full(3, radius)).astype(np.uint8) * 2
    result = measure_labels(labels, grid)
    (lesion,) = result.lesions
    assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.02)
    assert 2 * radius - 2 * 0.5 <= lesion.longest_axial_diameter_mm <= 2 * radius  # centre to centre
    assert abs(lesion.diameter_slice - 24.4) <= 1.5
    np.testing.assert_allclose(lesion.centroid_world_mm, [12.3, 12.1, 12.2], atol=0.05)
    assert result.pancreas_volume_ml == pytest.approx(lesion.volume_ml)  # the lesion is part of the gland


def test_sphere_at_anisotropic_ct_spacing() -> None:
    grid = Grid((24, 64, 64), (2.5, 0.7, 0.7), origin=(-20.0, -20.0, -30.0))
    radius = 12.0
    labels = ellipsoid(grid, np.array([2.1, 1.9, -1.0]), np.full(3, radius)).astype(np.uint8) * 2
    (lesion,) = measure_labels(labels, grid).lesions
    assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.05)
    assert 2 * radius - 2 * 0.7 <= lesion.longest_axial_diameter_mm <= 2 * radius
    np.testing.assert_allclose(lesion.centroid_world_mm, [2.1, 1.9, -1.0], atol=0.3)
    np.testing.assert_allclose(grid.index_to_world(np.array(lesion.centroid_voxel)), lesion.centroid_world_mm)


def test_rotated_ellipsoid_diameter_is_the_long_axis_not_the_box() -> None:
    grid = Grid((20, 80, 80), (1.0, 0.5, 0.5))
    semi_axes = np.array([15.0, 6.0, 4.0])  # along the rotated x, y and z
    labels = ellipsoid(grid, np.array([20.0, 20.0, 10.0]), semi_axes, in_plane_rotation(30)).astype(np.uint8) * 2
    (lesion,) = measure_labels(labels, grid).lesions
    assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * semi_axes.prod() / 1000, rel=0.03)
    assert 30.0 - 1.0 <= lesion.longest_axial_diameter_mm <= 30.0
    assert lesion.diameter_slice == 10


def test_two_separate_lesions_largest_first_and_small_components_ignored() -> None:
    grid = Grid((30, 60, 60), (1.0, 1.0, 1.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[ellipsoid(grid, np.array([15.0, 30.0, 15.0]), np.full(3, 5.0))] = 2
    labels[ellipsoid(grid, np.array([45.0, 30.0, 15.0]), np.full(3, 8.0))] = 2
    labels[2, 2, 2] = 2  # 1 mm3: below the 10 mm3 minimum
    labels[28, 58, 58] = labels[29, 59, 59] = 2  # corners touching: one 26-connected component of 2 mm3
    result = measure_labels(labels, grid)
    assert [lesion.number for lesion in result.lesions] == [1, 2]
    large, small = result.lesions
    assert large.volume_ml == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.05)
    assert small.volume_ml == pytest.approx(4 / 3 * np.pi * 5**3 / 1000, rel=0.08)
    np.testing.assert_allclose(large.centroid_world_mm, [45.0, 30.0, 15.0], atol=0.01)
    np.testing.assert_allclose(small.centroid_world_mm, [15.0, 30.0, 15.0], atol=0.01)
    assert result.ignored_components == 2
    assert result.total_lesion_volume_ml == pytest.approx(large.volume_ml + small.volume_ml)
    assert len(measure_labels(labels, grid, min_lesion_volume_mm3=0).lesions) == 4


def test_diameter_handles_lines_points_and_anisotropic_pixels() -> None:
    mask = np.zeros((2, 5, 12), bool)
    mask[0, 2, 1:11] = True  # a line: collinear boundary points
    assert longest_axial_diameter(mask, (3.0, 0.5, 0.8)) == (pytest.approx(9 * 0.8), 0)
    single = np.zeros((1, 3, 3), bool)
    single[0, 1, 1] = True
    assert longest_axial_diameter(single, (1.0, 1.0, 1.0)) == (0.0, 0)
    assert longest_axial_diameter(np.zeros((2, 3, 3), bool), (1.0, 1.0, 1.0)) == (0.0, -1)


def gland_with_lesions(grid: Grid, lesion_x_fractions: list[float]) -> np.ndarray:
    """An elongated gland along the x index with one small lesion at each fraction of its length."""
    labels = np.zeros(grid.shape, np.uint8)
    labels[4:8, 20:30, 10:90] = 1
    for fraction in lesion_x_fractions:
        x = int(10 + fraction * 80)
        labels[5:7, 23:27, x - 2 : x + 2] = 2
    return labels


def test_location_follows_the_gland_axis_from_the_patient_right() -> None:
    grid = Grid((12, 50, 100), (2.0, 1.0, 1.0))  # x index increases toward the patient's left
    labels = gland_with_lesions(grid, [0.1, 0.5, 0.9])
    lesions = sorted(measure_labels(labels, grid).lesions, key=lambda lesion: lesion.centroid_voxel[2])
    assert [lesion.location for lesion in lesions] == ["head", "body", "tail"]
    assert [round(lesion.gland_position, 1) for lesion in lesions] == [0.1, 0.5, 0.9]
    mirrored = Grid(grid.shape, grid.spacing, direction=np.diag([-1.0, 1.0, 1.0]))  # x index toward the right
    lesions = sorted(measure_labels(labels, mirrored).lesions, key=lambda lesion: lesion.centroid_voxel[2])
    assert [lesion.location for lesion in lesions] == ["tail", "body", "head"]
    custom = measure_labels(labels, grid, location_boundaries=(0.05, 0.2))
    assert sorted(lesion.location for lesion in custom.lesions) == ["body", "tail", "tail"]


def test_location_of_an_oblique_gland() -> None:
    grid = Grid((16, 100, 100), (2.0, 1.0, 1.0))
    rotation = in_plane_rotation(-25)  # head toward the patient's right and anterior, tail left and posterior
    gland = ellipsoid(grid, np.array([50.0, 50.0, 15.0]), np.array([40.0, 8.0, 8.0]), rotation)
    labels = gland.astype(np.uint8)
    for along in (-30.0, 0.0, 30.0):
        centre = np.array([50.0, 50.0, 15.0]) + rotation @ np.array([along, 0.0, 0.0])
        labels[ellipsoid(grid, centre, np.full(3, 3.0)) & gland] = 2
    lesions = sorted(measure_labels(labels, grid).lesions, key=lambda lesion: lesion.centroid_world_mm[0])
    assert [lesion.location for lesion in lesions] == ["head", "body", "tail"]


def test_results_are_json_and_gland_counts_both_labels() -> None:
    grid = Grid((12, 50, 100), (2.0, 1.0, 1.0))
    labels = gland_with_lesions(grid, [0.5])
    result = measure_labels(labels, CtVolume(hu=np.zeros(grid.shape, np.int16), spacing=grid.spacing))
    assert result.pancreas_voxel_count == int((labels > 0).sum())
    assert result.pancreas_volume_ml == pytest.approx((labels > 0).sum() * 2.0 / 1000)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["lesions"][0]["location"] == "body" and len(data["lesions"][0]["centroid_world_mm"]) == 3
    assert measure_labels(labels, grid, pancreas_labels=(1,)).pancreas_voxel_count == int((labels == 1).sum())


def test_empty_map_and_refused_inputs() -> None:
    empty = measure_labels(np.zeros((4, 5, 6), np.uint8), (1.0, 1.0, 1.0))
    assert (empty.pancreas_volume_ml, empty.lesions, empty.ignored_components) == (0.0, (), 0)
    with pytest.raises(InputError, match="does not match"):
        measure_labels(np.zeros((4, 5, 6), np.uint8), Grid((4, 5, 7), (1.0, 1.0, 1.0)))
    coronal = Grid((4, 5, 6), (1.0, 1.0, 1.0), direction=[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    with pytest.raises(InputError, match="head-feet"):
        measure_labels(np.zeros((4, 5, 6), np.uint8), coronal)
    with pytest.raises(InputError, match="integer"):
        measure_labels(np.zeros((4, 5, 6), np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="location_boundaries"):
        measure_labels(np.zeros((4, 5, 6), np.uint8), (1.0, 1.0, 1.0), location_boundaries=(0.7, 0.3))


def test_real_totalsegmentator_pancreas_volume_and_location() -> None:
    path = shared_path("ct", "totalseg_nifti", "example_seg_dicom.nii.gz")
    image = nibabel.load(path)
    data = np.asarray(image.dataobj)
    voxel_ml = float(np.prod(image.header.get_zooms())) / 1000
    expected_ml = int((data == 7).sum()) * voxel_ml
    labels, grid = nifti_labels_and_grid(path)
    pancreas = np.where(labels == 7, 1, 0).astype(np.uint8)
    result = measure_labels(pancreas, grid)
    assert 1000 < result.pancreas_voxel_count < 1600
    assert result.pancreas_volume_ml == pytest.approx(expected_ml, rel=1e-6)
    # Mark the gland's most right-sided and most left-sided voxels (LPS x) as lesions.
    world_x = grid.index_to_world(np.argwhere(pancreas))[:, 0]
    marked = pancreas.copy()
    voxels = np.argwhere(pancreas)
    marked[tuple(voxels[world_x <= np.percentile(world_x, 4)].T)] = 2
    marked[tuple(voxels[world_x >= np.percentile(world_x, 96)].T)] = 2
    lesions = measure_labels(marked, grid, min_lesion_volume_mm3=20).lesions
    by_side = sorted(lesions, key=lambda lesion: lesion.centroid_world_mm[0])
    assert by_side[0].location == "head" and by_side[-1].location == "tail"
    assert measure_labels(marked, grid).pancreas_volume_ml == pytest.approx(expected_ml, rel=1e-6)
