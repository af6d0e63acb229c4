"""Abdominal anatomy of the CT phantom (everything but the pancreas and its lesions).

Tissues are painted as small integer codes (:data:`TISSUES`) into a ``[z, y, x]`` map, in an
order that lets later, more important structures overwrite earlier ones: body wall and fat,
bowel, solid organs, spine and ribs; the pancreas, its lesions and finally the vessels are
painted by :mod:`mayo_dx.imaging.phantom_pancreas`. Positions are anatomical millimetres with
the origin at the level of the pancreatic body (about L1), in front of the spine, x to the
patient's left, y to the back and z to the head (as in LPS), scaled per patient.

Example:
    >>> import numpy as np
    >>> from mayo_dx.imaging.phantom_shapes import SamplingGrid
    >>> body = sample_body(np.random.default_rng(0))
    >>> grid = SamplingGrid((8, 64, 64), (25.0, 6.25, 6.25), (-87.5, -196.875, -196.875))
    >>> tissues = np.zeros(grid.shape, dtype=np.uint8)
    >>> paint_body(grid, body, tissues)
    >>> bool((tissues == TISSUES["liver"]).any()), int(tissues[0, 0, 0]) == TISSUES["air"]
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from mayo_dx.imaging.phantom_shapes import SamplingGrid, ellipsoid_field, rasterize_tubes, smooth_centreline

__all__ = ["TISSUES", "BodyLayout", "paint_body", "paint_vessels", "sample_body"]

#: Tissue codes of the phantom's tissue map (``Phantom.tissues``).
TISSUES: Mapping[str, int] = MappingProxyType(
    {
        name: code
        for code, name in enumerate(
            (
                "air", "table", "skin", "subcutaneous_fat", "muscle", "visceral_fat", "bone_cortex",
                "bone_marrow", "intervertebral_disc", "spinal_canal", "liver", "gallbladder", "spleen",
                "kidney_cortex", "kidney_medulla", "bowel_wall", "bowel_content", "bowel_gas", "aorta",
                "inferior_vena_cava", "portal_venous", "pancreas_head", "pancreas_body", "pancreas_tail",
                "pancreatic_duct", "lesion",
            )
        )
    }
)  # fmt: skip


@dataclass(frozen=True)
class BodyLayout:
    """One patient's body habitus and organ placement (sampled by :func:`sample_body`).

    Attributes:
        scale: Frame size relative to a reference adult (0.9-1.1).
        fat_mm: Subcutaneous fat thickness at the flanks and back.
        front_fat_mm: Extra subcutaneous fat in front.
        wall_mm: Abdominal wall muscle thickness.
        disc_phase_mm: Where the intervertebral discs fall (vertebral period 36 mm).
        rib_phase_mm: Where the ribs fall (period 26 mm).
        organ_shift_mm: Per-organ centre jitter ``(z, y, x)``.
        organ_size: Per-organ size factor.
        bowel_loops: Small-bowel loops as ``(centre (z, y, x), radius, has gas)``.
    """

    scale: float
    fat_mm: float
    front_fat_mm: float
    wall_mm: float
    disc_phase_mm: float
    rib_phase_mm: float
    organ_shift_mm: Mapping[str, np.ndarray]
    organ_size: Mapping[str, float]
    bowel_loops: tuple[tuple[np.ndarray, float, bool], ...]

    def point(self, x: float, y: float, z: float) -> np.ndarray:
        """A reference-adult position ``(x, y, z)`` scaled to this patient, as ``(z, y, x)``."""
        return np.array([z, y, x], dtype=np.float64) * self.scale

    @property
    def core_semi_axes(self) -> tuple[float, float]:
        """Semi-axes ``(left-right, front-back)`` of the outer surface of the abdominal muscles."""
        return 135.0 * self.scale, 95.0 * self.scale

    @property
    def centre_y(self) -> float:
        """Front-back position of the body's centre."""
        return 10.0 * self.scale

    @property
    def body_size_mm(self) -> tuple[float, float]:
        """Outer body width (left-right) and depth (front-back) in mm."""
        semi_x, semi_y = self.core_semi_axes
        return 2 * (semi_x + self.fat_mm), 2 * semi_y + 1.7 * self.fat_mm + self.front_fat_mm


_ORGANS = ("liver", "gallbladder", "spleen", "kidney_left", "kidney_right", "stomach", "vessels")


def sample_body(rng: np.random.Generator) -> BodyLayout:
    """Sample a patient's habitus, organ jitter and bowel loops.

    Example:
        >>> layout = sample_body(np.random.default_rng(1))
        >>> 0.9 <= layout.scale <= 1.1 and 8 <= layout.fat_mm <= 40
        True
    """
    scale = float(rng.uniform(0.9, 1.1))
    shifts = {name: np.clip(rng.normal(0.0, 3.0, 3), -6, 6) for name in _ORGANS}
    sizes = {name: float(rng.uniform(0.9, 1.1)) for name in _ORGANS}
    loops = []
    for _ in range(int(rng.integers(14, 22))):
        centre = np.array([rng.uniform(-100, 10), rng.uniform(-75, -20), rng.uniform(-80, 80)]) * scale
        loops.append((centre, float(rng.uniform(10, 16) * scale), bool(rng.random() < 0.5)))
    return BodyLayout(
        scale=scale,
        fat_mm=float(rng.uniform(8, 40)),
        front_fat_mm=float(rng.uniform(0, 15)),
        wall_mm=float(rng.uniform(10, 14)),
        disc_phase_mm=float(rng.uniform(0, 36)),
        rib_phase_mm=float(rng.uniform(0, 26)),
        organ_shift_mm=MappingProxyType(shifts),
        organ_size=MappingProxyType(sizes),
        bowel_loops=tuple(loops),
    )


def _ellipse(y: np.ndarray, x: np.ndarray, centre: tuple[float, float], semi: tuple[float, float]) -> np.ndarray:
    return ((y - centre[0]) / semi[0]) ** 2 + ((x - centre[1]) / semi[1]) ** 2 <= 1.0


def _paint(tissues: np.ndarray, box, mask: np.ndarray, name: str) -> None:
    tissues[box][mask] = TISSUES[name]


def _paint_axial(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray) -> np.ndarray:
    """Paint the z-invariant cross-section (table, skin, fat, muscle); return the cavity mask."""
    y, x = grid.axis(1)[:, None], grid.axis(2)[None, :]
    semi_x, semi_y = body.core_semi_axes
    centre = body.centre_y
    front = y < centre
    outer_y = np.where(front, semi_y + body.fat_mm + body.front_fat_mm, semi_y + 0.7 * body.fat_mm)
    outer = ((x / (semi_x + body.fat_mm)) ** 2 + ((y - centre) / outer_y) ** 2) <= 1.0
    skin_inner = ((x / (semi_x + body.fat_mm - 2.5)) ** 2 + ((y - centre) / (outer_y - 2.5)) ** 2) <= 1.0
    core = _ellipse(y, x, (centre, 0.0), (semi_y, semi_x))
    cavity = _ellipse(y, x, (centre, 0.0), (semi_y - body.wall_mm, semi_x - body.wall_mm))
    back = centre + semi_y + 0.7 * body.fat_mm
    section = np.full((grid.shape[1], grid.shape[2]), TISSUES["air"], dtype=np.uint8)
    section[(y > back + 4) & (y < back + 16) & (np.abs(x) < 230)] = TISSUES["table"]
    section[outer] = TISSUES["skin"]
    section[skin_inner] = TISSUES["subcutaneous_fat"]
    section[core] = TISSUES["muscle"]
    section[cavity] = TISSUES["visceral_fat"]
    s = body.scale
    for side in (-1, 1):
        section[_ellipse(y, x, (72 * s, side * 32 * s), (18 * s, 24 * s))] = TISSUES["muscle"]
    tissues[:] = section[None]
    return np.broadcast_to(cavity[None], grid.shape)


def _paint_bowel(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray, cavity: np.ndarray) -> None:
    for centre, radius, has_gas in body.bowel_loops:
        box = grid.box(centre - radius, centre + radius)
        if box is None:
            continue
        field = ellipsoid_field(grid, box, centre, (radius * 0.9, radius, radius))
        inside = (field <= 1.0) & cavity[box]
        _paint(tissues, box, inside, "bowel_wall")
        lumen = field <= ((radius - 2.5) / radius) ** 2
        _paint(tissues, box, lumen & inside, "bowel_content")
        if has_gas:
            _, y, _ = grid.coordinates(box)
            _paint(tissues, box, lumen & inside & (y < centre[1] - 0.3 * radius), "bowel_gas")
    p = body.point
    segments = (  # ascending, transverse and descending colon: (centreline, radii)
        ([p(-92, -5, -100), p(-95, -12, -40), p(-86, -30, 2), p(-60, -55, 12)], [22, 21, 20, 19]),
        ([p(-60, -55, 12), p(-40, -68, 12), p(0, -72, 8), p(45, -65, 18), p(75, -45, 32)], [19, 18, 18, 17, 16]),
        ([p(75, -45, 32), p(90, -20, 35), p(98, 5, 15), p(100, 12, -40), p(95, 10, -100)], [16, 15, 15, 15, 15]),
    )
    for control, radii in segments:
        points, parameter = smooth_centreline(np.array(control), step_mm=12.0)
        radius = np.interp(parameter, np.arange(len(radii)), radii) * body.scale
        _paint_hollow_tube(grid, tissues, rasterize_tubes(grid, [(points, radius, radius)]), cavity, 3.0)


def _paint_hollow_tube(
    grid: SamplingGrid, tissues: np.ndarray, field, cavity: np.ndarray | None, wall_mm: float, gas_arc_mm: float = np.inf
) -> None:
    """Bowel: wall, fluid content, and gas in front (a supine patient) or within ``gas_arc_mm``."""
    if field is None:
        return
    inside = field.normalised <= 1.0
    if cavity is not None:
        inside &= cavity[field.box]
    lumen = inside & (field.normalised < 1.0 - wall_mm / field.radius_mm)
    _paint(tissues, field.box, inside, "bowel_wall")
    _paint(tissues, field.box, lumen, "bowel_content")
    gas = lumen & ((field.offset_mm < -0.2 * field.radius_mm) if np.isinf(gas_arc_mm) else (field.arc_mm < gas_arc_mm))
    _paint(tissues, field.box, gas, "bowel_gas")


def _rotation_about_z(angle: float) -> np.ndarray:
    """Rows: the z axis, and two in-plane axes turned by ``angle`` (radians) in the (y, x) plane."""
    return np.array([[1, 0, 0], [0, np.cos(angle), np.sin(angle)], [0, -np.sin(angle), np.cos(angle)]])


def _paint_ellipsoid(grid, tissues, name, centre, semi, rotation=None, clip=None) -> tuple | None:
    reach = max(semi) * 1.05
    box = grid.box(centre - reach, centre + reach)
    if box is None:
        return None
    field = ellipsoid_field(grid, box, centre, semi, rotation)
    inside = field <= 1.0
    if clip is not None:
        inside &= clip[box]
    _paint(tissues, box, inside, name)
    return box, field, inside


def _paint_organs(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray, cavity: np.ndarray) -> None:
    p, shift, size, s = body.point, body.organ_shift_mm, body.organ_size, body.scale
    # Psoas muscles: grow from L1 downwards, beside the vertebral bodies.
    box = grid.box((-200 * s, 15 * s, -75 * s), (12 * s, 70 * s, 75 * s))
    if box is not None:
        z, y, x = grid.coordinates(box)
        radius = np.clip(6 + 0.14 * (10 * s - z), 0, 22 * s)
        for side in (-1, 1):
            centre_x = side * (28 * s + 0.18 * (10 * s - z))
            muscle = ((x - centre_x) / (radius + 1e-3)) ** 2 + ((y - 38 * s) / (0.85 * radius + 1e-3)) ** 2 <= 1
            _paint(tissues, box, muscle & (z < 10 * s), "muscle")
    liver_centre = p(-75, -5, 70) + shift["liver"]
    liver_semi = np.array([95, 85, 72]) * s * size["liver"]
    box = grid.box(liver_centre - liver_semi, liver_centre + liver_semi)
    if box is not None:  # the liver's medial edge moves to the patient's left as it rises
        z, y, x = grid.coordinates(box)
        medial_edge = liver_centre[2] + 20 * s + 0.9 * (z - liver_centre[0] + 70 * s) - 0.5 * (y - liver_centre[1])
        inside = (ellipsoid_field(grid, box, liver_centre, liver_semi) <= 1.0) & (x < medial_edge) & cavity[box]
        _paint(tissues, box, inside, "liver")
    gallbladder = np.array([32, 14, 14]) * s * size["gallbladder"]
    _paint_ellipsoid(grid, tissues, "gallbladder", p(-48, -42, 22) + shift["gallbladder"], gallbladder)
    _paint_ellipsoid(grid, tissues, "spleen", p(95, 42, 45) + shift["spleen"], np.array([58, 52, 24]) * s * size["spleen"],
                     _rotation_about_z(np.arctan2(0.6, 1.0)), clip=cavity)  # fmt: skip
    for name, x_sign, z_level in (("kidney_left", 1, -25), ("kidney_right", -1, -40)):
        centre = p(75 * x_sign, 55, z_level) + shift[name]
        semi = np.array([52, 24, 27]) * s * size[name]
        found = _paint_ellipsoid(grid, tissues, "kidney_cortex", centre, semi, _rotation_about_z(-x_sign * 0.5))
        if found is not None:
            box, field, inside = found
            _paint(tissues, box, inside & (field <= ((semi[1] - 6 * s) / semi[1]) ** 2), "kidney_medulla")
            hilum = centre + np.array([0, -0.45 * semi[1], -x_sign * 0.55 * semi[2]])
            _paint_ellipsoid(grid, tissues, "visceral_fat", hilum, semi * np.array([0.35, 0.3, 0.3]))
    stomach = _paint_ellipsoid(grid, tissues, "bowel_wall", p(50, -50, 62) + shift["stomach"],
                               np.array([45, 32, 42]) * s * size["stomach"], clip=cavity)  # fmt: skip
    if stomach is not None:
        box, field, inside = stomach
        lumen = inside & (field <= ((32 * s - 4) / (32 * s)) ** 2)
        _paint(tissues, box, lumen, "bowel_content")
        _, y, _ = grid.coordinates(box)
        _paint(tissues, box, lumen & (y < (-50 - 0.45 * 32) * s + shift["stomach"][1]), "bowel_gas")
    _paint_duodenum(grid, body, tissues)


def _paint_duodenum(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray) -> None:
    p = body.point
    control = np.array([p(-38, -46, 26), p(-60, -36, 18), p(-70, -18, 4), p(-70, -13, -28), p(-56, -8, -50),
                        p(-20, -7, -56), p(14, -12, -54), p(30, -22, -42), p(32, -30, -30)])  # fmt: skip
    points, parameter = smooth_centreline(control, step_mm=8.0)
    radius = np.interp(parameter, [0, 1, 8], [13, 11, 10]) * body.scale
    field = rasterize_tubes(grid, [(points, radius, radius)])
    _paint_hollow_tube(grid, tissues, field, None, 3.0, gas_arc_mm=20 * body.scale)  # gas in the bulb


def _paint_spine_and_ribs(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray) -> None:
    s = body.scale
    box = grid.box((-1e6, 15 * s, -50 * s), (1e6, 100 * s, 50 * s))
    if box is None:
        return
    _, y, x = grid.coordinates(box)
    y, x = y[0], x[0]
    vertebral_body = _ellipse(y, x, (40 * s, 0), (16 * s, 21 * s))
    marrow = _ellipse(y, x, (40 * s, 0), (16 * s - 2.5, 21 * s - 2.5))
    radius = np.hypot(y - 66 * s, x)
    arch = (radius >= 9 * s) & (radius <= 15 * s)
    spinous = (np.abs(x) < 4 * s) & (y > 76 * s) & (y < 96 * s)
    transverse = (np.abs(x) < 42 * s) & (np.abs(y - 62 * s) < 4 * s)
    z = grid.axis(0)
    position = np.mod(z - body.disc_phase_mm, 36.0 * s)
    disc, middle = position < 9 * s, (position > 18 * s) & (position < 27 * s)
    view = tissues[:, box[1], box[2]]
    bone, marrow_code = TISSUES["bone_cortex"], TISSUES["bone_marrow"]
    vertebra = np.zeros(vertebral_body.shape, dtype=np.uint8)
    vertebra[arch | spinous | vertebral_body] = bone
    vertebra[marrow] = marrow_code
    vertebra[radius < 9 * s] = TISSUES["spinal_canal"]
    processes = vertebra.copy()
    processes[transverse & (vertebra == 0)] = bone
    disc_section = vertebra.copy()
    disc_section[vertebral_body] = TISSUES["intervertebral_disc"]
    for levels, section in ((~disc & ~middle, vertebra), (middle, processes), (disc, disc_section)):
        if levels.any():
            view[levels] = np.where(section[None] > 0, section[None], view[levels])
    # Lower ribs: in the lateral and back parts of the wall above L1, sloping down to the front,
    # so that an axial slice cuts several separate rib segments on each side.
    y_all, x_all = grid.axis(1)[:, None], grid.axis(2)[None, :]
    semi_x, semi_y = body.core_semi_axes
    centre = body.centre_y
    shell = _ellipse(y_all, x_all, (centre, 0), (semi_y, semi_x)) & ~_ellipse(
        y_all, x_all, (centre, 0), (semi_y - 9 * s, semi_x - 9 * s)
    )
    shell &= (y_all - centre) > -0.3 * semi_y
    rib_slices = np.nonzero(z > 15 * s)[0]
    pixels = np.flatnonzero(shell)
    if rib_slices.size and pixels.size:
        rows, columns = np.unravel_index(pixels, shell.shape)
        arc = np.arctan2(np.abs(x_all[0, columns]), y_all[rows, 0] - centre) * 0.5 * (semi_x + semi_y)
        level = np.mod(z[rib_slices, None] + 0.5 * arc[None, :] - body.rib_phase_mm, 26.0 * s) < 8 * s
        flat = tissues.reshape(grid.shape[0], -1)
        selection = np.ix_(rib_slices, pixels)
        flat[selection] = np.where(level, np.uint8(bone), flat[selection])


def paint_body(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray) -> None:
    """Paint everything but the pancreas, its lesions and the vessels into ``tissues`` (in place).

    Example:
        >>> grid = SamplingGrid((4, 32, 32), (40.0, 12.5, 12.5), (-60.0, -193.75, -193.75))
        >>> tissues = np.zeros(grid.shape, dtype=np.uint8)
        >>> paint_body(grid, sample_body(np.random.default_rng(2)), tissues)
        >>> bool((tissues == TISSUES["subcutaneous_fat"]).any())
        True
    """
    cavity = _paint_axial(grid, body, tissues)
    _paint_bowel(grid, body, tissues, cavity)
    _paint_organs(grid, body, tissues, cavity)
    _paint_spine_and_ribs(grid, body, tissues)


def paint_vessels(grid: SamplingGrid, body: BodyLayout, tissues: np.ndarray, splenic_vein: np.ndarray | None) -> None:
    """Paint the aorta, inferior vena cava, SMA, SMV/portal vein and splenic vein (in place).

    Vessels are painted last so that they carve their course through the pancreas and any lesion.

    Args:
        grid: The voxel grid.
        body: The patient layout.
        tissues: Tissue map to paint into.
        splenic_vein: Optional ``[n, 3]`` centreline of the splenic vein (behind the pancreas).

    Example:
        >>> grid = SamplingGrid((4, 32, 32), (40.0, 12.5, 12.5), (-60.0, -193.75, -193.75))
        >>> tissues = np.zeros(grid.shape, dtype=np.uint8)
        >>> paint_vessels(grid, sample_body(np.random.default_rng(2)), tissues, None)
        >>> bool((tissues == TISSUES["aorta"]).any())
        True
    """
    p, s = body.point, body.scale
    jitter = body.organ_shift_mm["vessels"] * np.array([0.0, 0.5, 0.5])
    y, x = grid.axis(1)[:, None], grid.axis(2)[None, :]
    aorta_centre = p(14, 11, 0) + jitter
    aorta = _ellipse(y, x, (aorta_centre[1], aorta_centre[2]), (12 * s, 12 * s))
    cava = _ellipse(y, x, (12 * s + jitter[1], -25 * s + jitter[2]), (10 * s, 14 * s))
    for mask, name in ((cava, "inferior_vena_cava"), (aorta, "aorta")):
        tissues[:, mask] = TISSUES[name]
    tubes = {
        "aorta": [np.array([p(13, 0, 12), p(12, -14, 2), p(10, -22, -20), p(6, -32, -60), p(2, -40, -100)]) + jitter, 4.0],
        "portal_venous": [np.array([p(-52, 0, 45), p(-30, -6, 30), p(-12, -14, 12), p(-4, -18, -2), p(-8, -26, -20),
                                    p(-10, -36, -60), p(-14, -44, -100)]) + jitter, 6.5],
    }  # fmt: skip
    for name, (control, radius) in tubes.items():
        points, _ = smooth_centreline(control, step_mm=8.0)
        radii = np.full(len(points), radius * s)
        field = rasterize_tubes(grid, [(points, radii, radii)])
        if field is not None:
            _paint(tissues, field.box, field.normalised <= 1.0, name)
    if splenic_vein is not None and len(splenic_vein) > 1:
        radii = np.full(len(splenic_vein), 4.5 * s)
        field = rasterize_tubes(grid, [(splenic_vein, radii, radii)])
        if field is not None:
            _paint(tissues, field.box, field.normalised <= 1.0, "portal_venous")
