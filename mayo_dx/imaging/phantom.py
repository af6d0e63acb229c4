"""Synthetic abdominal CT phantoms with a pancreas, optional lesions, a label map and the truth.

:func:`generate_phantom` draws one patient from a seed: body habitus and position, organs
(liver, spleen, kidneys with enhancing cortex, stomach, duodenum, colon and small bowel with
gas, gallbladder), spine and lower ribs, vessels (aorta, IVC, SMA, SMV/portal and splenic
vein), and a lobulated pancreas with head, body and tail (see
:mod:`mayo_dx.imaging.phantom_pancreas`), optionally with hypo-attenuating lesions. Hounsfield
units depend on the contrast phase (:data:`TISSUE_HU`), vary per patient, are blurred by a
small point-spread function and get Gaussian noise (sigma 10-20 HU). The result is a
:class:`Phantom`: a :class:`~mayo_dx.imaging.volume.CtVolume`, an MSD-style label map
(0 background, 1 pancreas, 2 lesion), a tissue map (:data:`TISSUES`) and a
:class:`PhantomTruth`. Everything random comes from the seed (no global state); a seed gives
the same patient at any matrix size, so tests can run at 64 x 128 x 128 what a benchmark runs
at 200 x 512 x 512. The patient's midline lies at LPS x = 0 (the scanner's isocentre); the body
is shifted a little within the field of view and the table position (z) varies.
:mod:`mayo_dx.imaging.phantom_io` writes phantoms as DICOM, NIfTI and an MSD Task07-shaped
folder.

Example:
    >>> phantom = generate_phantom(shape=(32, 64, 64), lesions=[LesionSpec(25, "head")], seed=3)
    >>> phantom.volume.shape, phantom.labels.dtype.name, sorted(set(phantom.labels.ravel().tolist()))
    ((32, 64, 64), 'uint8', [0, 1, 2])
    >>> phantom.truth.lesions[0].location, 40 < phantom.truth.pancreas_volume_ml < 120
    ('head', True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from mayo_dx.imaging.phantom_anatomy import TISSUES, paint_body, paint_vessels, sample_body
from mayo_dx.imaging.phantom_pancreas import (
    REGIONS,
    LesionSpec,
    paint_pancreas,
    place_lesions,
    rasterize_pancreas,
    sample_pancreas,
    splenic_vein_centreline,
)
from mayo_dx.imaging.phantom_shapes import SamplingGrid, axial_diameter_mm
from mayo_dx.imaging.volume import AcquisitionInfo, CtVolume

__all__ = ["PHASES", "TISSUES", "TISSUE_HU", "LesionSpec", "LesionTruth", "Phantom", "PhantomTruth", "generate_phantom"]

#: Contrast phases, in the column order of :data:`TISSUE_HU`.
PHASES: tuple[str, ...] = ("non-contrast", "arterial", "portal-venous")

#: Reference mean HU per tissue and phase (before per-patient variation and noise).
TISSUE_HU: Mapping[str, tuple[float, float, float]] = MappingProxyType(
    {
        "air": (-1000, -1000, -1000), "table": (-250, -250, -250), "skin": (30, 30, 30),
        "subcutaneous_fat": (-100, -100, -100), "muscle": (48, 55, 58), "visceral_fat": (-95, -95, -95),
        "bone_cortex": (900, 900, 900), "bone_marrow": (420, 420, 420), "intervertebral_disc": (90, 90, 90),
        "spinal_canal": (20, 20, 20), "liver": (58, 75, 105), "gallbladder": (8, 8, 8), "spleen": (48, 120, 118),
        "kidney_cortex": (32, 190, 170), "kidney_medulla": (32, 70, 150), "bowel_wall": (40, 75, 85),
        "bowel_content": (8, 8, 8), "bowel_gas": (-1000, -1000, -1000), "aorta": (42, 320, 175),
        "inferior_vena_cava": (40, 60, 130), "portal_venous": (42, 120, 170), "pancreas_head": (42, 135, 112),
        "pancreas_body": (42, 135, 112), "pancreas_tail": (42, 135, 112), "pancreatic_duct": (12, 12, 12),
        "lesion": (32, 60, 45),
    }
)  # fmt: skip
_ENHANCING = {"muscle", "liver", "spleen", "kidney_cortex", "kidney_medulla", "bowel_wall", "aorta",
              "inferior_vena_cava", "portal_venous"}  # fmt: skip
_GLAND = ("pancreas_head", "pancreas_body", "pancreas_tail")


@dataclass(frozen=True)
class LesionTruth:
    """What was drawn for one lesion, measured on the final label map.

    Attributes:
        diameter_mm: Longest axial diameter (largest in-plane Feret diameter between voxel centres).
        volume_ml: Voxel count x voxel volume.
        location: ``"head"``, ``"body"`` or ``"tail"`` (the region most of its voxels lie in).
        centroid_zyx: Mean voxel index ``(z, y, x)``.
        centroid_lps_mm: Centroid in LPS mm ``(x, y, z)``.
        hu: Mean lesion HU before noise.
        duct_dilated: True when the main duct upstream was dilated.
        requested_diameter_mm: The diameter asked for (or sampled) before clipping to the gland.
    """

    diameter_mm: float
    volume_ml: float
    location: str
    centroid_zyx: tuple[float, float, float]
    centroid_lps_mm: tuple[float, float, float]
    hu: float
    duct_dilated: bool
    requested_diameter_mm: float

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON types."""
        data = asdict(self)
        data["centroid_zyx"], data["centroid_lps_mm"] = list(self.centroid_zyx), list(self.centroid_lps_mm)
        return data


@dataclass(frozen=True)
class PhantomTruth:
    """The ground truth of a phantom (no identifiers: it is synthetic).

    Attributes:
        seed: The seed it was generated from.
        phase: Contrast phase (one of :data:`PHASES`).
        noise_sigma_hu: Standard deviation of the added noise.
        pancreas_volume_ml: Volume of label 1 (parenchyma and duct, lesions excluded).
        gland_volume_ml: Volume of labels 1 and 2 together.
        region_volume_ml: Parenchyma volume per region (head, body, tail).
        pancreas_length_mm: Centreline length from the lower head to the tail tip.
        body_size_mm: Body width and depth.
        tissue_hu: Mean HU per tissue for this patient, before blur and noise.
        lesions: One record per lesion.
    """

    seed: int
    phase: str
    noise_sigma_hu: float
    pancreas_volume_ml: float
    gland_volume_ml: float
    region_volume_ml: Mapping[str, float]
    pancreas_length_mm: float
    body_size_mm: tuple[float, float]
    tissue_hu: Mapping[str, float]
    lesions: tuple[LesionTruth, ...]

    @property
    def has_cancer(self) -> bool:
        """True when the phantom has at least one lesion (the case-level label)."""
        return bool(self.lesions)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON types.

        Example:
            >>> generate_phantom(shape=(16, 32, 32), seed=1).truth.to_dict()["lesions"]
            []
        """
        return {
            "seed": self.seed, "phase": self.phase, "noise_sigma_hu": self.noise_sigma_hu,
            "pancreas_volume_ml": self.pancreas_volume_ml, "gland_volume_ml": self.gland_volume_ml,
            "region_volume_ml": dict(self.region_volume_ml), "pancreas_length_mm": self.pancreas_length_mm,
            "body_size_mm": list(self.body_size_mm), "tissue_hu": dict(self.tissue_hu),
            "has_cancer": self.has_cancer, "lesions": [lesion.to_dict() for lesion in self.lesions],
        }  # fmt: skip


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic CT case.

    Attributes:
        volume: The CT volume (int16 HU, LPS geometry, identity direction).
        labels: uint8 ``[z, y, x]``: 0 background, 1 pancreas, 2 lesion (MSD Task07 convention).
        tissues: uint8 ``[z, y, x]`` tissue codes (:data:`TISSUES`), head/body/tail distinct.
        truth: The ground truth.
    """

    volume: CtVolume
    labels: np.ndarray
    tissues: np.ndarray
    truth: PhantomTruth


def _patient_hu(phase: str, rng: np.random.Generator) -> dict[str, float]:
    column = PHASES.index(phase)
    enhancement = rng.uniform(0.85, 1.15)  # contrast dose and timing
    values = {}
    for name, reference in TISSUE_HU.items():
        plain, value = reference[0], reference[column]
        if name in _ENHANCING or name in _GLAND:
            value = plain + enhancement * (value - plain)
        if name not in ("air", "bowel_gas"):
            value += float(np.clip(rng.normal(0, 3), -6, 6))
        values[name] = round(float(value), 1)
    gland = values["pancreas_body"]
    for name in _GLAND:
        values[name] = gland
    drop = {"non-contrast": (5, 15), "arterial": (60, 90), "portal-venous": (45, 70)}[phase]
    lesion = gland - rng.uniform(*drop)
    values["lesion"] = round(float(np.clip(lesion, 30, 60) if phase == "portal-venous" else lesion), 1)
    return values


def _grid(shape, spacing, field_of_view_mm, body, rng) -> tuple[SamplingGrid, tuple[float, float, float]]:
    margin = rng.uniform(40, 90)  # drawn whatever the caller fixes, so the patient stays the same
    centre = (rng.uniform(-15, 5) * body.scale, body.centre_y + rng.uniform(-15, 15), rng.uniform(-15, 15))
    if spacing is None:
        if field_of_view_mm is None:
            in_plane = float(np.clip(max(body.body_size_mm) + margin, 360, 460))
            field_of_view_mm = (200.0, in_plane, in_plane)
        spacing = tuple(float(extent) / count for extent, count in zip(field_of_view_mm, shape))
    spacing = tuple(round(float(step), 5) for step in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (z, y, x), got {spacing}")
    start = tuple(round(c - (n - 1) / 2 * s, 4) for c, n, s in zip(centre, shape, spacing))
    return SamplingGrid(tuple(shape), spacing, start), spacing


def _to_specs(lesions: int | Sequence[LesionSpec | Mapping[str, Any]]) -> list[LesionSpec]:
    if isinstance(lesions, (int, np.integer)):
        if lesions < 0:
            raise ValueError(f"lesions must be a count >= 0 or a list of LesionSpec, got {lesions}")
        return [LesionSpec() for _ in range(int(lesions))]
    return [item if isinstance(item, LesionSpec) else LesionSpec(**item) for item in lesions]


def _render(tissues: np.ndarray, lookup: np.ndarray, spacing, blur_mm: float, sigma: float, rng) -> np.ndarray:
    """Tissue codes -> HU: look-up, point-spread blur, noise (in slabs), round, clip."""
    hu = lookup[tissues]
    sigmas = [blur_mm / step if blur_mm / step >= 0.5 else 0.0 for step in spacing]
    if any(sigmas):  # blur the body only (outside it is air); sub-half-voxel spreads stay sharp
        rows, columns = np.nonzero((tissues[0] != TISSUES["air"]) & (tissues[0] != TISSUES["table"]))
        if rows.size:
            body = (slice(None), slice(max(rows.min() - 3, 0), rows.max() + 4))
            body += (slice(max(columns.min() - 3, 0), columns.max() + 4),)
            hu[body] = ndimage.gaussian_filter(hu[body], sigmas, mode="nearest", truncate=3.0)
    slab = 16
    for first in range(0, hu.shape[0], slab):
        part = hu[first : first + slab]
        part += rng.standard_normal(part.shape, dtype=np.float32) * np.float32(sigma)
    np.rint(hu, out=hu)
    np.clip(hu, -1024, 3071, out=hu)
    return hu.astype(np.int16)


def generate_phantom(
    *,
    shape: tuple[int, int, int] = (64, 128, 128),
    spacing: tuple[float, float, float] | None = None,
    field_of_view_mm: tuple[float, float, float] | None = None,
    lesions: int | Sequence[LesionSpec | Mapping[str, Any]] = 0,
    phase: str = "portal-venous",
    noise_sigma_hu: float | None = None,
    blur_mm: float = 0.4,
    seed: int = 0,
) -> Phantom:
    """Generate one synthetic abdominal CT case with a pancreas, labels and truth.

    Args:
        shape: Matrix ``(z, y, x)``; ``(200, 512, 512)`` is a clinical size.
        spacing: Voxel size ``(z, y, x)`` mm; default from ``field_of_view_mm``.
        field_of_view_mm: Extent ``(z, y, x)`` mm; default 200 mm along z and, in-plane, the
            body plus 40-90 mm within 360-460 mm (0.7-0.9 mm pixels at 512).
        lesions: A number of lesions to sample, or one :class:`LesionSpec` (or dict of its
            fields) per lesion.
        phase: ``"non-contrast"``, ``"arterial"`` or ``"portal-venous"``.
        noise_sigma_hu: Noise standard deviation; sampled from 10-20 HU when None; 0 for none.
        blur_mm: Gaussian point-spread sigma in mm (0 for none).
        seed: The seed; the same seed gives the same patient at any shape.

    Returns:
        A :class:`Phantom`.

    Raises:
        ValueError: For an unknown phase, bad sizes, or a lesion that cannot be placed.

    Example:
        >>> first = generate_phantom(shape=(16, 48, 48), seed=5)
        >>> again = generate_phantom(shape=(16, 48, 48), seed=5)
        >>> bool((first.volume.hu == again.volume.hu).all()), first.truth.has_cancer
        (True, False)
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    shape = tuple(int(size) for size in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    specs = _to_specs(lesions)
    anatomy_rng, pancreas_rng, lesion_rng, hu_rng, noise_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(int(seed)).spawn(5)
    )
    body = sample_body(anatomy_rng)
    layout = sample_pancreas(pancreas_rng, body)
    grid, spacing = _grid(shape, spacing, field_of_view_mm, body, anatomy_rng)
    world_z = round(float(anatomy_rng.uniform(-250, 250)), 1)
    tissues = np.zeros(shape, dtype=np.uint8)
    paint_body(grid, body, tissues)
    field = rasterize_pancreas(grid, layout)
    splenic_vein = None
    if field is not None:
        paint_pancreas(tissues, field)
        splenic_vein = splenic_vein_centreline(field, body.point(-4, -18, -2))
    paint_vessels(grid, body, tissues, splenic_vein)
    if specs and field is None:
        raise ValueError("the field of view misses the pancreas: no room for lesions")
    placed = place_lesions(grid, field, tissues, specs, lesion_rng) if specs else []
    tissue_hu = _patient_hu(phase, hu_rng)
    lookup = np.zeros(256, dtype=np.float32)
    for name, code in TISSUES.items():
        lookup[code] = tissue_hu[name]
    sigma = float(hu_rng.uniform(10, 20)) if noise_sigma_hu is None else float(noise_sigma_hu)
    hu = _render(tissues, lookup, spacing, blur_mm, sigma, noise_rng)
    origin = (grid.start[2], grid.start[1], round(grid.start[0] + world_z, 4))
    acquisition = AcquisitionInfo(spacing[0], 120.0, phase != "non-contrast", "mayo-dx phantom", "STANDARD")
    volume = CtVolume(hu=hu, spacing=spacing, origin=origin, acquisition=acquisition)
    labels = np.zeros(shape, dtype=np.uint8)
    if field is not None:
        view = tissues[field.box]
        labels[field.box][np.isin(view, [TISSUES[name] for name in (*_GLAND, "pancreatic_duct")])] = 1
        labels[field.box][view == TISSUES["lesion"]] = 2
    truth = _truth(seed, phase, sigma, body, field, placed, tissues, labels, volume, tissue_hu)
    for array in (labels, tissues):
        array.flags.writeable = False
    return Phantom(volume=volume, labels=labels, tissues=tissues, truth=truth)


def _truth(seed, phase, sigma, body, field, placed, tissues, labels, volume, tissue_hu) -> PhantomTruth:
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    box = field.box if field is not None else (slice(0, 0),) * 3
    counts = np.bincount(labels[box].ravel(), minlength=3)
    codes = np.bincount(tissues[box].ravel(), minlength=len(TISSUES))
    region_volume = {name: round(float(codes[TISSUES[f"pancreas_{name}"]]) * voxel_ml, 4) for name in REGIONS}
    duct_present = bool(codes[TISSUES["pancreatic_duct"]])
    records = []
    for lesion in placed:
        mask = lesion.mask
        index = np.argwhere(mask) + [s.start for s in field.box]
        centroid = tuple(round(float(value), 3) for value in index.mean(axis=0))
        majority = int(np.argmax(np.bincount(field.region[mask], minlength=4)[1:]))
        records.append(
            LesionTruth(
                diameter_mm=axial_diameter_mm(mask, volume.spacing),
                volume_ml=round(float(mask.sum()) * voxel_ml, 4),
                location=REGIONS[majority],
                centroid_zyx=centroid,  # type: ignore[arg-type]
                centroid_lps_mm=tuple(round(float(v), 3) for v in volume.index_to_world(centroid)),  # type: ignore[arg-type]
                hu=tissue_hu["lesion"],
                duct_dilated=lesion.dilate_duct and duct_present,
                requested_diameter_mm=round(lesion.diameter_mm, 3),
            )
        )
    return PhantomTruth(
        seed=int(seed),
        phase=phase,
        noise_sigma_hu=round(sigma, 3),
        pancreas_volume_ml=round(float(counts[1]) * voxel_ml, 4),
        gland_volume_ml=round(float(counts[1] + counts[2]) * voxel_ml, 4),
        region_volume_ml=MappingProxyType(region_volume),
        pancreas_length_mm=round(field.length_mm, 2) if field is not None else 0.0,
        body_size_mm=tuple(round(value, 2) for value in body.body_size_mm),  # type: ignore[arg-type]
        tissue_hu=MappingProxyType(tissue_hu),
        lesions=tuple(records),
    )
