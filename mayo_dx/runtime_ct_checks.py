"""Checks that decide whether a CT model may answer: acquisition range and the localised gland.

Runtime layer (numpy/scipy). Each check returns :class:`~mayo_dx.results.QualityIssue` values;
``"reject"`` issues make :class:`~mayo_dx.runtime_ct.CtPredictor` abstain, ``"warn"`` issues
travel with the diagnosis.

Acquisition (``card.input_spec["acquisition"]``, see :class:`AcquisitionRange`):

* ``slice_thickness``: the recorded slice thickness (the slice spacing when none is recorded,
  e.g. NIfTI) outside ``slice_thickness_mm = [min, max]`` -> reject;
* ``slice_spacing``: slices further apart than the largest accepted thickness (gaps) -> reject;
* ``contrast_phase``: a contrast-phase model (e.g. ``"portal-venous"``) given a series that
  records no contrast agent -> reject; contrast not recorded at all -> ``contrast_unknown`` warning;
* the reader's geometry warnings (uneven spacing, dropped duplicates...) -> ``geometry_warning``.

Modality is enforced by the reader (only axial CT series are read from DICOM).

Gland (on the localiser's grid): nothing found, or a component under ``min_gland_volume_ml``
-> ``pancreas_not_found`` (the study may not show the abdomen: head-only or chest-only CT);
a component touching the edge of the volume -> ``pancreas_truncated`` (the card requires the
whole pancreas in the field of view).

Example:
    >>> import numpy as np
    >>> from mayo_dx.imaging.volume import AcquisitionInfo, CtVolume
    >>> volume = CtVolume(np.zeros((8, 8, 8), np.int16), (8.0, 1.0, 1.0), acquisition=AcquisitionInfo(contrast=True))
    >>> [issue.code for issue in check_acquisition(volume, AcquisitionRange())]
    ['slice_thickness', 'slice_spacing']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import ndimage

from mayo_dx.imaging.volume import CtVolume, Grid
from mayo_dx.results import QualityIssue

__all__ = ["AcquisitionRange", "check_acquisition", "gland_issues", "largest_component"]

_AXES = ("feet", "head", "anterior", "posterior", "right", "left")  # low/high index of z, y, x (LPS)


@dataclass(frozen=True)
class AcquisitionRange:
    """The acquisitions a CT model accepts (``card.input_spec["acquisition"]``).

    Attributes:
        modality: Must be ``"CT"``.
        slice_thickness_mm: Accepted ``(min, max)`` slice thickness.
        contrast_phase: Trained phase (``"portal-venous"``, ``"arterial"``, ``"non-contrast"``)
            or None (any).

    Example:
        >>> AcquisitionRange.from_spec({"modality": "CT", "slice_thickness_mm": [1, 3]}).slice_thickness_mm
        (1.0, 3.0)
    """

    modality: str = "CT"
    slice_thickness_mm: tuple[float, float] = (0.5, 5.0)
    contrast_phase: str | None = "portal-venous"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "AcquisitionRange":
        """Read the card's acquisition entry.

        Raises:
            ValueError: A modality other than CT, or an invalid thickness range.

        Example:
            >>> AcquisitionRange.from_spec({"contrast_phase": None}).contrast_phase is None
            True
        """
        modality = str(spec.get("modality", "CT")).upper()
        low, high = (float(value) for value in spec.get("slice_thickness_mm", (0.5, 5.0)))
        if modality != "CT" or not 0 < low <= high:
            raise ValueError(f"acquisition needs modality CT and 0 < min <= max thickness, got {dict(spec)}")
        phase = spec.get("contrast_phase", "portal-venous")
        return cls(modality, (low, high), None if phase is None else str(phase))


def check_acquisition(volume: CtVolume, accepted: AcquisitionRange) -> list[QualityIssue]:
    """Compare a volume with the accepted acquisitions (rules in the module docstring).

    Example:
        >>> volume = CtVolume(np.zeros((8, 8, 8), np.int16), (2.0, 1.0, 1.0))
        >>> [(issue.code, issue.severity) for issue in check_acquisition(volume, AcquisitionRange())]
        [('contrast_unknown', 'warn')]
    """
    issues: list[QualityIssue] = []
    low, high = accepted.slice_thickness_mm
    recorded = volume.acquisition.slice_thickness_mm
    thickness = float(recorded) if recorded else float(volume.spacing[0])
    source = "slice thickness" if recorded else "slice spacing (no thickness recorded)"
    if not low <= thickness <= high:
        issues.append(QualityIssue(
            code="slice_thickness", value=thickness, limit=high if thickness > high else low,
            message=f"The {source} is {thickness:g} mm; the model accepts {low:g}-{high:g} mm."))
    spacing = float(volume.spacing[0])
    if spacing > high:
        issues.append(QualityIssue(
            code="slice_spacing", value=spacing, limit=high,
            message=f"Slices are {spacing:g} mm apart, more than the largest accepted thickness ({high:g} mm)."))
    phase = accepted.contrast_phase
    if phase is not None and phase != "non-contrast":
        if volume.acquisition.contrast is False:
            issues.append(QualityIssue(
                code="contrast_phase",
                message=f"The series records no contrast agent; the model was trained on {phase} contrast CT."))
        elif volume.acquisition.contrast is None:
            issues.append(QualityIssue(
                code="contrast_unknown", severity="warn",
                message=f"The contrast phase is not recorded; the model was trained on {phase} contrast CT."))
    issues += [QualityIssue(code="geometry_warning", message=text, severity="warn") for text in volume.warnings]
    return issues


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty; first on ties).

    Example:
        >>> mask = np.zeros((1, 1, 7), bool); mask[0, 0, [0, 2, 3, 4]] = True
        >>> largest_component(mask)[0, 0].astype(int).tolist()
        [0, 0, 1, 1, 1, 0, 0]
    """
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return components > 0
    sizes = np.bincount(components.ravel())[1:]
    return components == (int(np.argmax(sizes)) + 1)


def gland_issues(gland: np.ndarray, grid: Grid, min_volume_ml: float = 2.0) -> list[QualityIssue]:
    """Reasons to abstain after localisation: no gland, too small a gland, or a gland cut by the field of view.

    Args:
        gland: Boolean ``[z, y, x]`` mask on ``grid`` (the largest component).
        grid: The localiser's grid (canonical LPS orientation).
        min_volume_ml: Smaller components count as not found.

    Example:
        >>> gland = np.zeros((6, 6, 6), bool); gland[2:4, 2:4, 0:3] = True
        >>> [issue.code for issue in gland_issues(gland, Grid((6, 6, 6), (10.0, 10.0, 10.0)))]
        ['pancreas_truncated']
    """
    volume_ml = float(gland.sum()) * float(np.prod(grid.spacing)) / 1000.0
    if volume_ml <= 0 or volume_ml < min_volume_ml:
        found = f" (largest candidate {volume_ml:.2g} ml, below {min_volume_ml:g} ml)" if volume_ml > 0 else ""
        return [QualityIssue(
            code="pancreas_not_found", value=volume_ml, limit=min_volume_ml,
            message=(f"The localiser found no pancreas in this study{found}; it may not cover the upper abdomen "
                     "(e.g. a head-only or chest-only CT), so no cancer probability is given."))]
    touched = []
    for axis in range(3):
        present = np.flatnonzero(gland.any(axis=tuple(other for other in range(3) if other != axis)))
        if present[0] == 0:
            touched.append(_AXES[2 * axis])
        if present[-1] == gland.shape[axis] - 1:
            touched.append(_AXES[2 * axis + 1])
    if touched:
        return [QualityIssue(
            code="pancreas_truncated", value=volume_ml,
            message=(f"The pancreas found reaches the edge of the field of view ({', '.join(touched)} side); the model "
                     "needs the whole gland in the study."))]
    return []
