"""The phantom's pancreas: a lobulated curved gland with head, body and tail, and its lesions.

The gland is a tube with an elliptical cross-section swept along a smooth centreline: the head
stands upright beside the duodenum, right of the midline at about L1-L2 (with an uncinate
process hooking behind the superior mesenteric vein), the neck and body cross in front of the
SMV, SMA and aorta, and the tail rises backwards to the splenic hilum. The centreline is about
15-20 cm long (it includes the upright head), the gland spans 13-17 cm from right to left, is
1.5-3 cm thick and about 55-105 ml in volume (median about 77 ml).

Regions: the head is everything right of the left border of the superior mesenteric vein
(including the uncinate process, the neck's right part); the rest of the gland is split in
half along its centreline into body and tail. (The AJCC body/tail boundary at the left border
of the aorta would leave this phantom a very short body.)

Lesions are ellipsoids with an irregular (harmonically perturbed) edge, centred on the gland,
the long axis along the gland, clipped to the gland plus a 2-4 mm margin (so a large lesion
bulges slightly beyond the contour); optionally the main duct upstream (towards the tail) is
dilated to 5-7 mm.

Example:
    >>> import numpy as np
    >>> from mayo_dx.imaging.phantom_anatomy import sample_body
    >>> rng = np.random.default_rng(0)
    >>> layout = sample_pancreas(rng, sample_body(rng))
    >>> layout.main_control.shape
    (9, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from mayo_dx.imaging.phantom_anatomy import TISSUES, BodyLayout
from mayo_dx.imaging.phantom_shapes import SamplingGrid, TubeField, rasterize_tubes, smooth_centreline

__all__ = [
    "REGIONS",
    "REGION_PREVALENCE",
    "LesionSpec",
    "PancreasField",
    "PancreasLayout",
    "PlacedLesion",
    "paint_pancreas",
    "place_lesions",
    "rasterize_pancreas",
    "sample_pancreas",
    "splenic_vein_centreline",
]

#: Pancreatic regions, and how often a sampled lesion falls in each (PDAC is mostly in the head).
REGIONS: tuple[str, ...] = ("head", "body", "tail")
REGION_PREVALENCE: tuple[float, ...] = (0.65, 0.2, 0.15)

# Reference-adult centreline (x, y, z) mm with semi-axes (front-back, the other one) in mm.
_MAIN = [
    (-41, -11, -32, 11, 13), (-40, -14, -20, 13, 16), (-36, -21, -6, 12, 15), (-22, -31, 0, 9, 12),
    (-5, -36, 3, 8.5, 11.5), (18, -35, 5, 9, 12), (45, -22, 10, 9, 12), (70, -2, 14, 8.5, 11), (88, 14, 17, 7.5, 10),
]  # fmt: skip
_UNCINATE = [(-38, -10, -28, 7, 9), (-22, -4, -28, 6, 8), (-8, -1, -27, 4.5, 6)]


@dataclass(frozen=True)
class LesionSpec:
    """What a caller asks for; None fields are sampled.

    Attributes:
        diameter_mm: Longest axial diameter (3-60 mm); sampled from 10-35 mm.
        location: ``"head"``, ``"body"`` or ``"tail"``; sampled 65 / 20 / 15 %.
        dilate_duct: Dilate the main duct upstream; sampled (50 % head/body, 20 % tail).

    Example:
        >>> LesionSpec(diameter_mm=20, location="head").location
        'head'
    """

    diameter_mm: float | None = None
    location: str | None = None
    dilate_duct: bool | None = None

    def __post_init__(self) -> None:
        if self.diameter_mm is not None and not 3.0 <= float(self.diameter_mm) <= 60.0:
            raise ValueError(f"lesion diameter_mm must be 3-60 mm, got {self.diameter_mm}")
        if self.location is not None and self.location not in REGIONS:
            raise ValueError(f"lesion location must be one of {REGIONS}, got {self.location!r}")


@dataclass(frozen=True)
class PancreasLayout:
    """One patient's gland: centrelines ``(z, y, x)`` mm with semi-axes, lobulation, head border."""

    main_control: np.ndarray
    main_radii: np.ndarray
    uncinate_control: np.ndarray
    uncinate_radii: np.ndarray
    lobulation: tuple[tuple[float, float, int, float], ...]
    head_end_x_mm: float


def sample_pancreas(rng: np.random.Generator, body: BodyLayout) -> PancreasLayout:
    """Sample the gland's shape for a patient (position, thickness, lobulation).

    Example:
        >>> from mayo_dx.imaging.phantom_anatomy import sample_body
        >>> rng = np.random.default_rng(3)
        >>> sample_pancreas(rng, sample_body(rng)).main_radii.shape
        (9, 2)
    """
    thickness = rng.uniform(0.93, 1.05) * np.sqrt(body.scale)  # gland size varies less than the frame
    main = np.array([body.point(x, y, z) for x, y, z, _, _ in _MAIN])
    jitter = np.clip(rng.normal(0.0, 2.5, main.shape), -5, 5)
    jitter[4, 1] = min(jitter[4, 1], 0.0)  # the neck never moves back into the SMV
    main += jitter
    main[7:, 0] += rng.uniform(-5, 10)  # the tail often rises towards the splenic hilum
    radii = np.array([(a, b) for *_, a, b in _MAIN]) * thickness * np.clip(rng.normal(1, 0.05, (len(_MAIN), 1)), 0.9, 1.1)
    uncinate = np.array([body.point(x, y, z) for x, y, z, _, _ in _UNCINATE]) + jitter[0]
    uncinate_radii = np.array([(a, b) for *_, a, b in _UNCINATE]) * thickness
    lobulation = tuple(  # (amplitude, arc frequency, angular order, phase)
        (float(rng.uniform(0.03, 0.07)), float(2 * np.pi / rng.uniform(12, 30)), int(rng.integers(1, 5)), float(rng.uniform(0, 6.3)))
        for _ in range(4)
    )
    head_end = body.point(2.5, 0, 0)[2] + 0.5 * body.organ_shift_mm["vessels"][2]
    return PancreasLayout(main, radii, uncinate, uncinate_radii, lobulation, float(head_end))


@dataclass(frozen=True)
class PancreasField:
    """The rasterised gland: distances over its box, centreline and region boundaries.

    Attributes:
        tubes: Per-voxel distances (main tube index 0, uncinate index 1).
        centreline: ``[m, 3]`` main centreline samples ``(z, y, x)`` mm.
        arc_mm: Arc length of each sample.
        radii: ``[m, 2]`` semi-axes at each sample.
        head_end_mm: Arc length where the head ends.
        body_end_mm: Arc length where the body ends.
        region: uint8 over the box: 1 head, 2 body, 3 tail (for every voxel, inside or not).
    """

    tubes: TubeField
    centreline: np.ndarray
    arc_mm: np.ndarray
    radii: np.ndarray
    head_end_mm: float
    body_end_mm: float
    region: np.ndarray

    @property
    def box(self) -> tuple[slice, slice, slice]:
        """The grid box the arrays cover."""
        return self.tubes.box

    @property
    def length_mm(self) -> float:
        """Centreline length from the lower head to the tail tip."""
        return float(self.arc_mm[-1])

    @property
    def inside(self) -> np.ndarray:
        """Boolean gland mask over the box."""
        return self.tubes.normalised <= 1.0


def rasterize_pancreas(grid: SamplingGrid, layout: PancreasLayout) -> PancreasField | None:
    """Rasterise the gland (None when it misses the grid).

    Example:
        >>> from mayo_dx.imaging.phantom_anatomy import sample_body
        >>> rng = np.random.default_rng(0)
        >>> layout = sample_pancreas(rng, sample_body(rng))
        >>> grid = SamplingGrid((40, 60, 80), (3.0, 3.0, 3.0), (-60.0, -90.0, -100.0))
        >>> field = rasterize_pancreas(grid, layout)
        >>> 140 < field.length_mm < 200, sorted(np.unique(field.region).tolist())
        (True, [1, 2, 3])
    """
    points, parameter = smooth_centreline(layout.main_control, step_mm=6.0)
    index = np.arange(len(layout.main_control))
    radii = np.stack([np.interp(parameter, index, layout.main_radii[:, k]) for k in range(2)], axis=1)
    uncinate, uncinate_parameter = smooth_centreline(layout.uncinate_control, step_mm=4.0)
    uncinate_index = np.arange(len(layout.uncinate_control))
    uncinate_radii = [np.interp(uncinate_parameter, uncinate_index, layout.uncinate_radii[:, k]) for k in range(2)]
    tubes = rasterize_tubes(
        grid,
        [(points, radii[:, 0], radii[:, 1]), (uncinate, *uncinate_radii)],
        margin_mm=6.0,
        lobulation=layout.lobulation,
    )
    if tubes is None:
        return None
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    crossing = np.nonzero(points[:, 2] >= layout.head_end_x_mm)[0]
    head_end = float(arc[crossing[0]]) if crossing.size else float(arc[-1]) * 0.4
    body_end = head_end + (float(arc[-1]) - head_end) / 2
    region = np.full(tubes.normalised.shape, 3, dtype=np.uint8)
    region[tubes.arc_mm < body_end] = 2
    region[(tubes.arc_mm < head_end) | (tubes.tube_index == 1)] = 1
    return PancreasField(tubes, points, arc, radii, head_end, body_end, region)


def paint_pancreas(tissues: np.ndarray, field: PancreasField) -> None:
    """Paint the gland as head, body and tail codes (in place).

    Example:
        >>> from mayo_dx.imaging.phantom_anatomy import sample_body
        >>> rng = np.random.default_rng(0)
        >>> grid = SamplingGrid((40, 60, 80), (3.0, 3.0, 3.0), (-60.0, -90.0, -100.0))
        >>> field = rasterize_pancreas(grid, sample_pancreas(rng, sample_body(rng)))
        >>> tissues = np.zeros(grid.shape, dtype=np.uint8)
        >>> paint_pancreas(tissues, field)
        >>> bool((tissues == TISSUES["pancreas_tail"]).any())
        True
    """
    view = tissues[field.box]
    inside = field.inside
    for code, name in enumerate(("pancreas_head", "pancreas_body", "pancreas_tail"), start=1):
        view[inside & (field.region == code)] = TISSUES[name]


def splenic_vein_centreline(field: PancreasField, confluence: np.ndarray, gap_mm: float = 5.5) -> np.ndarray:
    """Centreline of the splenic vein: from the portal confluence along the back of body and tail.

    Example:
        >>> from mayo_dx.imaging.phantom_anatomy import sample_body
        >>> rng = np.random.default_rng(0)
        >>> grid = SamplingGrid((40, 60, 80), (3.0, 3.0, 3.0), (-60.0, -90.0, -100.0))
        >>> field = rasterize_pancreas(grid, sample_pancreas(rng, sample_body(rng)))
        >>> splenic_vein_centreline(field, np.array([-2.0, -18.0, -4.0])).shape[1]
        3
    """
    tangent = np.gradient(field.centreline, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    backwards = np.array([0.0, 1.0, 0.0]) - tangent[:, 1:2] * tangent
    backwards /= np.linalg.norm(backwards, axis=1, keepdims=True)
    behind = field.centreline + backwards * (field.radii[:, :1] + gap_mm)
    keep = (field.centreline[:, 2] > confluence[2] + 8.0) & (field.arc_mm < field.arc_mm[-1] - 6.0)
    return np.vstack([confluence[None], behind[keep]])


@dataclass(frozen=True)
class PlacedLesion:
    """A lesion as drawn: resolved request, mask over the gland's box, duct state."""

    diameter_mm: float
    location: str
    dilate_duct: bool
    mask: np.ndarray


def _resolve(spec: LesionSpec, rng: np.random.Generator, used: set[str], retry: int) -> tuple[float, str, bool]:
    """Fill in what the caller left open; on a retry prefer a free region and a smaller size."""
    location = spec.location
    if location is None:
        free = [region for region in REGIONS if region not in used] if retry else []
        weights = np.array([REGION_PREVALENCE[REGIONS.index(region)] for region in free or REGIONS])
        location = str(rng.choice(free or REGIONS, p=weights / weights.sum()))
    diameter = float(spec.diameter_mm) if spec.diameter_mm is not None else float(rng.uniform(10, 35)) * 0.8**retry
    dilate = spec.dilate_duct if spec.dilate_duct is not None else bool(rng.random() < (0.2 if location == "tail" else 0.5))
    return max(diameter, 3.0), location, bool(dilate)


def _lesion_mask(grid: SamplingGrid, field: PancreasField, diameter: float, location: str, rng: np.random.Generator) -> np.ndarray:
    """One attempt at a lesion of the given size in the given region (mask over the gland box)."""
    bounds = {"head": (0.0, field.head_end_mm), "body": (field.head_end_mm, field.body_end_mm),
              "tail": (field.body_end_mm, field.length_mm)}[location]  # fmt: skip
    low, high = bounds
    arc = rng.uniform(low + 0.15 * (high - low), high - 0.2 * (high - low))
    centre = np.array([np.interp(arc, field.arc_mm, field.centreline[:, k]) for k in range(3)])
    radius = min(np.interp(arc, field.arc_mm, field.radii[:, 0]), np.interp(arc, field.arc_mm, field.radii[:, 1]))
    direction = rng.normal(size=3)
    centre = centre + direction / np.linalg.norm(direction) * rng.uniform(0, 0.3) * radius
    step = max(1, int(np.searchsorted(field.arc_mm, arc)))
    tangent = field.centreline[min(step, len(field.arc_mm) - 1)] - field.centreline[step - 1]
    in_plane = np.hypot(tangent[1], tangent[2]) > 0.5 * abs(tangent[0])  # else the upright head: any direction
    angle = (np.arctan2(tangent[2], tangent[1]) if in_plane else rng.uniform(0, np.pi)) + rng.normal(0, 0.25)
    axes = np.array([[1, 0, 0], [0, np.cos(angle), np.sin(angle)], [0, -np.sin(angle), np.cos(angle)]])
    semi = np.array([rng.uniform(0.7, 0.95), 1.0, rng.uniform(0.75, 0.95)]) * diameter / 2
    box = grid.box(centre - diameter * 0.7, centre + diameter * 0.7)
    mask = np.zeros(field.inside.shape, dtype=bool)
    if box is None:
        return mask
    box = tuple(slice(max(s.start, b.start), min(s.stop, b.stop)) for s, b in zip(box, field.box))
    if any(s.stop <= s.start for s in box):
        return mask
    local = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(box, field.box))
    z, y, x = grid.coordinates(box)
    offsets = (z - centre[0], y - centre[1], x - centre[2])
    u = [sum(offsets[k] * np.float32(row[k]) for k in range(3)) for row in axes]
    azimuth, elevation = np.arctan2(u[2], u[1]), np.arctan2(u[0], np.hypot(u[1], u[2]))
    edge = np.ones(np.broadcast_shapes(*(item.shape for item in u)), dtype=np.float32)
    for _ in range(4):  # an irregular, slightly spiculated edge
        edge += rng.uniform(0.03, 0.09) * np.sin(rng.integers(2, 7) * azimuth + rng.uniform(0, 6.3)) * np.cos(
            rng.integers(0, 3) * elevation + rng.uniform(0, 6.3)
        )
    inside = sum((component / np.float32(length)) ** 2 for component, length in zip(u, semi)) <= edge**2
    margin = rng.uniform(2.0, 4.0)
    allowed = field.tubes.normalised[local] <= 1.0 + margin / field.tubes.radius_mm[local]
    mask[local] = inside & allowed
    return mask


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    pieces, count = ndimage.label(mask, np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return mask
    return pieces == int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1


_VESSELS = [TISSUES[name] for name in ("aorta", "inferior_vena_cava", "portal_venous")]
_GLAND = [TISSUES[name] for name in ("pancreas_head", "pancreas_body", "pancreas_tail")]


def place_lesions(
    grid: SamplingGrid, field: PancreasField, tissues: np.ndarray, specs: Sequence[LesionSpec], rng: np.random.Generator
) -> list[PlacedLesion]:
    """Draw lesions (and dilated ducts) into ``tissues`` after the vessels have been painted.

    A lesion spares the vessels (they stay visible through it, as in encasement), is kept as
    one connected piece, and never touches another lesion.

    Raises:
        ValueError: When a lesion cannot be placed (too small for the voxels, or no room).

    Example:
        >>> from mayo_dx.imaging.phantom_anatomy import sample_body
        >>> rng = np.random.default_rng(0)
        >>> grid = SamplingGrid((40, 60, 80), (3.0, 3.0, 3.0), (-60.0, -90.0, -100.0))
        >>> field = rasterize_pancreas(grid, sample_pancreas(rng, sample_body(rng)))
        >>> tissues = np.zeros(grid.shape, dtype=np.uint8)
        >>> paint_pancreas(tissues, field)
        >>> [lesion.location for lesion in place_lesions(grid, field, tissues, [LesionSpec(20, "body")], rng)]
        ['body']
    """
    view = tissues[field.box]
    vessel = np.isin(view, _VESSELS)
    placed: list[PlacedLesion] = []
    taken = np.zeros(field.inside.shape, dtype=bool)
    structure = np.ones((3, 3, 3), dtype=bool)
    for spec in specs:
        for attempt in range(60):
            if attempt % 15 == 0:  # (re)draw what the caller left open: another size or region may fit
                diameter, location, dilate = _resolve(spec, rng, {lesion.location for lesion in placed}, attempt // 15)
            mask = _largest_piece(_lesion_mask(grid, field, diameter, location, rng) & ~vessel)
            if not mask.any() or (ndimage.binary_dilation(mask, structure) & taken).any():
                continue
            if REGIONS[int(np.argmax(np.bincount(field.region[mask], minlength=4)[1:]))] == location:
                break
        else:
            raise ValueError(
                f"cannot place a {diameter:.0f} mm {location} lesion (outside the field of view, voxels too coarse, or no room left)"
            )
        taken |= mask
        placed.append(PlacedLesion(diameter, location, dilate, mask))
        if dilate:
            arc = field.tubes.arc_mm
            upstream_start = float(np.median(arc[mask])) + diameter * 0.4
            duct_radius = rng.uniform(2.5, 3.5)
            duct = (
                np.isin(view, _GLAND) & (field.tubes.tube_index == 0) & (field.tubes.distance_mm <= duct_radius)
                & (arc > upstream_start) & (arc < field.length_mm - 6.0)
            )  # fmt: skip
            view[duct & ~taken] = TISSUES["pancreatic_duct"]
    view[taken] = TISSUES["lesion"]
    return placed
