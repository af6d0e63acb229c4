"""Synthetic abdominal CT phantoms: reproducibility, anatomy, HU per tissue, lesion truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mayo_dx.imaging.phantom import TISSUES, LesionSpec, Phantom, generate_phantom
from mayo_dx.imaging.volume import CtVolume

SHAPE = (64, 128, 128)
REQUESTS = (LesionSpec(25, "head", dilate_duct=True), LesionSpec(20, "body", dilate_duct=False), LesionSpec(18, "tail"))


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return generate_phantom(shape=SHAPE, lesions=REQUESTS, seed=11)


def _tissue(phantom: Phantom, *names: str, erode: int = 1) -> np.ndarray:
    mask = np.isin(phantom.tissues, [TISSUES[name] for name in names])
    return ndimage.binary_erosion(mask, iterations=erode) if erode else mask


def _mean_hu(phantom: Phantom, *names: str, erode: int = 1) -> float:
    mask = _tissue(phantom, *names, erode=erode)
    assert mask.sum() > 20, f"too few voxels of {names}"
    return float(phantom.volume.hu[mask].mean())


def _centre_mm(phantom: Phantom, mask: np.ndarray) -> np.ndarray:
    """Mean voxel position of a mask in LPS mm (x, y, z)."""
    return phantom.volume.index_to_world(np.argwhere(mask).mean(axis=0))


# --- reproducibility -------------------------------------------------------------------------


def test_same_seed_gives_identical_phantoms() -> None:
    first, second = (generate_phantom(shape=(32, 64, 64), lesions=1, seed=5) for _ in range(2))
    assert np.array_equal(first.volume.hu, second.volume.hu)
    assert np.array_equal(first.labels, second.labels) and np.array_equal(first.tissues, second.tissues)
    assert first.truth.to_dict() == second.truth.to_dict()
    assert first.volume.origin == second.volume.origin and first.volume.spacing == second.volume.spacing


def test_different_seeds_give_different_phantoms() -> None:
    first, second = (generate_phantom(shape=(32, 64, 64), seed=seed) for seed in (1, 2))
    assert not np.array_equal(first.volume.hu, second.volume.hu)
    assert first.truth.body_size_mm != second.truth.body_size_mm
    assert first.truth.pancreas_length_mm != second.truth.pancreas_length_mm


def test_a_seed_is_the_same_patient_at_any_matrix_size() -> None:
    small, large = (generate_phantom(shape=shape, seed=4, lesions=1) for shape in ((32, 64, 64), (64, 128, 128)))
    assert small.truth.body_size_mm == large.truth.body_size_mm
    assert small.truth.pancreas_length_mm == large.truth.pancreas_length_mm
    assert small.truth.lesions[0].location == large.truth.lesions[0].location
    assert small.truth.gland_volume_ml == pytest.approx(large.truth.gland_volume_ml, rel=0.2)


# --- volume, geometry, labels ----------------------------------------------------------------


def test_volume_is_a_ct_volume_with_clinical_geometry_at_512() -> None:
    phantom = generate_phantom(shape=(4, 512, 512), spacing=None, seed=0)
    volume = phantom.volume
    assert isinstance(volume, CtVolume) and volume.hu.dtype == np.int16 and volume.shape == (4, 512, 512)
    assert 0.7 <= volume.spacing[1] == volume.spacing[2] <= 0.9
    assert np.array_equal(volume.direction, np.eye(3))
    assert volume.acquisition.contrast is True and volume.acquisition.manufacturer == "mayo-dx phantom"
    assert volume.hu.min() >= -1024


def test_spacing_and_field_of_view_are_honoured() -> None:
    by_spacing = generate_phantom(shape=(10, 64, 64), spacing=(2.5, 0.8, 0.8), seed=0)
    by_extent = generate_phantom(shape=(10, 64, 64), field_of_view_mm=(30, 64, 64), seed=0)
    assert by_spacing.volume.spacing == (2.5, 0.8, 0.8) and by_extent.volume.spacing == (3.0, 1.0, 1.0)
    assert by_spacing.volume.acquisition.slice_thickness_mm == 2.5


def test_arrays_are_read_only_and_labels_follow_msd(phantom: Phantom) -> None:
    assert phantom.labels.dtype == np.uint8 and phantom.labels.shape == phantom.volume.shape
    assert set(np.unique(phantom.labels).tolist()) == {0, 1, 2}
    for array in (phantom.labels, phantom.tissues, phantom.volume.hu):
        assert not array.flags.writeable
    codes = [TISSUES[name] for name in ("pancreas_head", "pancreas_body", "pancreas_tail", "pancreatic_duct")]
    gland = np.isin(phantom.tissues, codes)
    assert np.array_equal(phantom.labels == 1, gland)
    assert np.array_equal(phantom.labels == 2, phantom.tissues == TISSUES["lesion"])


# --- HU per tissue ----------------------------------------------------------------------------


def test_portal_venous_hu_per_tissue_are_in_range(phantom: Phantom) -> None:
    ranges = {
        ("pancreas_head", "pancreas_body", "pancreas_tail"): (95, 135),
        ("aorta",): (145, 205),
        ("liver",): (90, 120),
        ("spleen",): (95, 135),
        ("subcutaneous_fat",): (-120, -80),
        ("muscle",): (40, 70),
        ("bone_marrow",): (380, 480),
        ("bone_cortex",): (700, 1000),
        ("air",): (-1010, -985),
        ("bowel_gas",): (-1010, -950),
    }
    for names, (low, high) in ranges.items():
        assert low <= _mean_hu(phantom, *names) <= high, names
    assert _mean_hu(phantom, "kidney_cortex") > _mean_hu(phantom, "kidney_medulla", erode=0) + 5


def test_noise_is_gaussian_with_the_stated_sigma(phantom: Phantom) -> None:
    liver = phantom.volume.hu[_tissue(phantom, "liver", erode=2)].astype(float)
    assert 10 <= phantom.truth.noise_sigma_hu <= 20
    assert liver.std() == pytest.approx(phantom.truth.noise_sigma_hu, rel=0.15)
    quiet = generate_phantom(shape=(32, 64, 64), noise_sigma_hu=0, blur_mm=0, seed=11)
    assert quiet.volume.hu[quiet.tissues == TISSUES["liver"]].std() == 0


@pytest.mark.parametrize(
    ("phase", "aorta", "pancreas"), [("non-contrast", (30, 60), (30, 60)), ("arterial", (250, 400), (110, 160))]
)
def test_contrast_phase_changes_enhancement(phase: str, aorta: tuple[int, int], pancreas: tuple[int, int]) -> None:
    phantom = generate_phantom(shape=SHAPE, phase=phase, seed=11)
    assert aorta[0] <= _mean_hu(phantom, "aorta") <= aorta[1]
    assert pancreas[0] <= _mean_hu(phantom, "pancreas_head", "pancreas_body", "pancreas_tail") <= pancreas[1]
    assert phantom.volume.acquisition.contrast is (phase != "non-contrast") and phantom.truth.phase == phase


# --- pancreas anatomy -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pancreas_volume_length_and_thickness_are_realistic(seed: int) -> None:
    phantom = generate_phantom(shape=SHAPE, seed=seed)
    voxel_ml = float(np.prod(phantom.volume.spacing)) / 1000
    assert phantom.truth.pancreas_volume_ml == pytest.approx((phantom.labels == 1).sum() * voxel_ml)
    assert 50 <= phantom.truth.pancreas_volume_ml <= 110
    assert 140 <= phantom.truth.pancreas_length_mm <= 210
    gland = phantom.labels > 0
    assert 120 <= np.ptp(np.nonzero(gland.any(axis=(0, 1)))[0]) * phantom.volume.spacing[2] <= 175
    thickness = 2 * ndimage.distance_transform_edt(gland, sampling=phantom.volume.spacing).max()
    assert 15 <= thickness <= 36
    assert all(volume > 5 for volume in phantom.truth.region_volume_ml.values())


def test_pancreas_runs_from_a_right_sided_head_over_the_aorta_to_a_left_tail(phantom: Phantom) -> None:
    head = _centre_mm(phantom, phantom.tissues == TISSUES["pancreas_head"])
    body = _centre_mm(phantom, phantom.tissues == TISSUES["pancreas_body"])
    tail = _centre_mm(phantom, phantom.tissues == TISSUES["pancreas_tail"])
    aorta = _centre_mm(phantom, phantom.tissues == TISSUES["aorta"])
    spleen = _centre_mm(phantom, phantom.tissues == TISSUES["spleen"])
    assert head[0] < aorta[0] - 20 < tail[0]  # LPS x grows to the patient's left: head right, tail left
    assert body[1] < aorta[1] - 20  # the body lies in front of (smaller y than) the aorta
    assert head[2] < tail[2]  # the head sits lower than the tail
    assert np.linalg.norm(tail - spleen) < np.linalg.norm(head - spleen)
    assert head[0] < -15 and tail[0] > 40  # the patient's midline is at LPS x = 0


# --- lesions ----------------------------------------------------------------------------------


def _diameter_brute_force(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Largest in-slice distance between voxel centres, every pair (independent of the hull)."""
    best = 0.0
    for plane in mask:
        points = np.argwhere(plane) * np.array(spacing[1:])
        if len(points) > 1:
            best = max(best, float(np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max()))
    return best


def test_lesion_truth_matches_the_label_map(phantom: Phantom) -> None:
    pieces, count = ndimage.label(phantom.labels == 2, np.ones((3, 3, 3), dtype=bool))
    assert count == len(phantom.truth.lesions) == len(REQUESTS)
    voxel_ml = float(np.prod(phantom.volume.spacing)) / 1000
    pixel = phantom.volume.spacing[1]
    for request, truth in zip(REQUESTS, phantom.truth.lesions):
        number = pieces[tuple(np.round(truth.centroid_zyx).astype(int))]
        mask = pieces == number
        assert number > 0
        assert truth.volume_ml == pytest.approx(mask.sum() * voxel_ml, abs=1e-3)
        assert truth.diameter_mm == pytest.approx(_diameter_brute_force(mask, phantom.volume.spacing), abs=1e-4)
        assert abs(truth.diameter_mm - request.diameter_mm) <= 0.25 * request.diameter_mm + 2 * pixel
        assert np.allclose(truth.centroid_zyx, np.argwhere(mask).mean(axis=0), atol=1e-2)
        assert np.allclose(truth.centroid_lps_mm, phantom.volume.index_to_world(truth.centroid_zyx), atol=1e-2)
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        codes = [TISSUES[f"pancreas_{region}"] for region in ("head", "body", "tail")]
        around = np.bincount(phantom.tissues[shell], minlength=len(TISSUES))[codes]
        assert truth.location == request.location == ("head", "body", "tail")[int(np.argmax(around))]


def test_lesions_sit_in_or_against_the_gland_and_are_hypo_attenuating(phantom: Phantom) -> None:
    pieces, count = ndimage.label(phantom.labels == 2, np.ones((3, 3, 3), dtype=bool))
    parenchyma = _mean_hu(phantom, "pancreas_head", "pancreas_body", "pancreas_tail")
    for number in range(1, count + 1):
        mask = pieces == number
        touching = ndimage.binary_dilation(mask, np.ones((3, 3, 3), dtype=bool)) & (phantom.labels == 1)
        assert touching.sum() >= 10
    gland_distance = ndimage.distance_transform_edt(phantom.labels != 1, sampling=phantom.volume.spacing)
    assert gland_distance[phantom.labels == 2].max() <= max(request.diameter_mm for request in REQUESTS) / 2 + 5
    lesion_hu = _mean_hu(phantom, "lesion")
    assert 25 <= lesion_hu <= 65 and parenchyma - lesion_hu >= 35
    assert all(30 <= truth.hu <= 60 for truth in phantom.truth.lesions)


def test_dilated_duct_is_fluid_inside_the_pancreas_label(phantom: Phantom) -> None:
    assert phantom.truth.lesions[0].duct_dilated and not phantom.truth.lesions[1].duct_dilated
    duct = phantom.tissues == TISSUES["pancreatic_duct"]
    assert duct.sum() > 0 and np.all(phantom.labels[duct] == 1)
    assert phantom.volume.hu[duct].mean() < 70


def test_sampled_lesions_and_no_lesions() -> None:
    sampled = generate_phantom(shape=(32, 64, 64), lesions=2, seed=21)
    assert len(sampled.truth.lesions) == 2 and sampled.truth.has_cancer
    assert all(10 <= lesion.requested_diameter_mm <= 35 for lesion in sampled.truth.lesions)
    clean = generate_phantom(shape=(32, 64, 64), seed=21)
    assert clean.labels.max() == 1 and not clean.truth.has_cancer and clean.truth.to_dict()["lesions"] == []
    from_dicts = generate_phantom(shape=(32, 64, 64), lesions=[{"diameter_mm": 20, "location": "body"}], seed=21)
    assert from_dicts.truth.lesions[0].location == "body"


@pytest.mark.parametrize(
    "call",
    [
        lambda: LesionSpec(diameter_mm=100),
        lambda: LesionSpec(location="neck"),
        lambda: generate_phantom(shape=(8, 16, 16), phase="venous"),
        lambda: generate_phantom(shape=(8, 16), seed=0),
        lambda: generate_phantom(shape=(8, 16, 16), lesions=-1),
    ],
)
def test_bad_requests_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()
