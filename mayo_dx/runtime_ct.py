"""CT predictor: localise the pancreas, crop, analyse, calibrate; numpy and onnxruntime only.

Runtime layer (no torch, lightning or monai). :class:`CtPredictor` follows the CT model-card
contract (``notes/ct_card_contract.md``) step for step, as training's end-to-end evaluation
(``mayo_dx.training.ct_pipeline``) does with torch:

1. read (:func:`~mayo_dx.imaging.read.read_series`: a DICOM folder, DICOM file(s) or NIfTI)
   unless a :class:`~mayo_dx.imaging.volume.CtVolume` is given; acquisition checks against
   ``input_spec["acquisition"]`` (:mod:`mayo_dx.runtime_ct_checks`);
2. localiser: :func:`~mayo_dx.imaging.resample.preprocess_ct` with the localiser's
   parameters, :func:`~mayo_dx.imaging.inference.sliding_window_predict` (Gaussian blending,
   the card's patch, overlap and sigma), ``argmax > 0``, the largest 26-connected component;
3. box: that component's LPS corners widened by ``context_mm``
   (:func:`~mayo_dx.imaging.data_cache.gland_world_box`);
4. analyser: ``preprocess_ct(..., box=box)`` (adds ``crop_margin_mm``), sliding window; the
   case logit is the maximum over the windows; labels ``argmax`` mapped back to the source grid
   with :func:`~mayo_dx.imaging.resample.restore_labels` (0 outside the crop);
5. ``p = sigmoid(case_logit / T)``, positive when ``p >= threshold``; measurements from
   :func:`~mayo_dx.imaging.measure.measure_labels` on the source grid.

Abstentions (an :class:`~mayo_dx.results.Abstention`, never a probability): slice thickness or
slice spacing outside the card's range, no contrast recorded for a contrast-phase model, an
oblique volume, no gland found by the localiser (e.g. a head-only or chest-only study) or a
component below ``min_gland_volume_ml``, and a gland that reaches the edge of the field of view
(the card requires the whole pancreas in the study). Unreadable input or a DICOM folder without
an axial CT series (e.g. MR) raises the reader's :class:`~mayo_dx.errors.InputError`.

Results: one finding (``pancreatic_cancer``) with its threshold; ``measurements`` with
``pancreas_found``, ``pancreas_volume_ml`` (labels 1 + 2 of the analyser, source grid),
``localiser_gland_volume_ml``, ``lesion_count``, ``largest_lesion_diameter_mm`` and
``largest_lesion_volume_ml`` (0 without lesions), ``total_lesion_volume_ml`` and
``case_logit``; ``lesions`` with one dict per lesion (volume, longest axial diameter, location,
centroid; :class:`~mayo_dx.imaging.measure.LesionMeasurement`); the volume's reader warnings as
``"warn"`` quality issues. Threads and session options as in :func:`mayo_dx.runtime.load`;
results are deterministic for the same input, thread count and machine.

Example:
    >>> from mayo_dx.runtime import load
    >>> predictor = load("models/ct_pancreas_phantom", threads=2)  # doctest: +SKIP
    >>> predictor.predict("../shared/data/ct/totalseg_dicom").kind  # doctest: +SKIP
    'abstention'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mayo_dx.errors import ArtifactError, ObliqueVolume
from mayo_dx.imaging.data_cache import WorldBox, gland_world_box
from mayo_dx.imaging.inference import sliding_window_predict
from mayo_dx.imaging.measure import PancreasMeasurement, measure_labels
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct, restore_labels
from mayo_dx.imaging.volume import CtVolume, Grid
from mayo_dx.results import Abstention, Diagnosis, Finding, QualityIssue
from mayo_dx.runtime import Predictor
from mayo_dx.runtime_ct_checks import (
    AcquisitionRange,
    check_acquisition,
    gland_issues,
    largest_component,
)

__all__ = ["CtAnalysis", "CtPredictor", "StageSettings"]

STAGES = ("localiser", "analyser")


@dataclass(frozen=True)
class StageSettings:
    """Sliding-window settings of one stage, from ``card.input_spec[stage]``.

    Example:
        >>> StageSettings.from_spec({"patch_size": [32, 64, 64], "overlap": 0.5}).mode
        'gaussian'
    """

    patch_size: tuple[int, int, int]
    overlap: float = 0.5
    mode: str = "gaussian"
    sigma_scale: float = 0.125
    pad_value: float = 0.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> "StageSettings":
        """Read ``patch_size``, ``overlap``, ``blend``, ``sigma_scale`` and ``pad_value``.

        Raises:
            ValueError: Missing or invalid values.

        Example:
            >>> StageSettings.from_spec({"patch_size": [16, 32, 32], "overlap": 0.25}).overlap
            0.25
        """
        patch = tuple(int(size) for size in spec["patch_size"])
        if len(patch) != 3 or min(patch) < 1:
            raise ValueError(f"patch_size must be three positive sizes, got {spec['patch_size']}")
        settings = cls(patch, float(spec.get("overlap", 0.5)), str(spec.get("blend", "gaussian")),  # type: ignore[arg-type]
                       float(spec.get("sigma_scale", 0.125)), float(spec.get("pad_value", 0.0)))
        if not 0 <= settings.overlap < 1 or settings.mode not in ("gaussian", "constant"):
            raise ValueError(f"overlap must lie in [0, 1) and blend be gaussian/constant, got {spec}")
        return settings


@dataclass(frozen=True, eq=False)
class CtAnalysis:
    """Everything one pass over a study gives: the result, the label map and the crop box.

    Attributes:
        result: The :class:`Diagnosis` or :class:`Abstention`.
        labels: uint8 ``[z, y, x]`` on the source volume's grid (0 background, 1 pancreas,
            2 lesion); all zeros when the predictor abstained.
        case_logit: The analyser's case logit (max over windows); None when abstained.
        box_mm: The LPS box (mm) the analyser cropped; None when no gland was localised.
        volume: The volume that was read.

    Example:
        >>> analysis = predictor.analyse("ct/case_001")  # doctest: +SKIP
        >>> analysis.labels.shape == analysis.volume.shape  # doctest: +SKIP
        True
    """

    result: Diagnosis | Abstention
    labels: np.ndarray
    case_logit: float | None
    box_mm: WorldBox | None
    volume: CtVolume


def _measure(labels: np.ndarray, volume: CtVolume) -> PancreasMeasurement:
    """:func:`measure_labels` on the labels' bounding box (same numbers, indices of the full grid)."""
    present = np.flatnonzero(labels.any(axis=(1, 2)))
    if not present.size:
        return measure_labels(labels[:1, :1, :1] * 0, volume.spacing)
    rows, columns = np.flatnonzero(labels.any(axis=(0, 2))), np.flatnonzero(labels.any(axis=(0, 1)))
    start = np.array([present[0], rows[0], columns[0]])
    stop = np.array([present[-1], rows[-1], columns[-1]]) + 1
    grid = Grid.of(volume)
    part = labels[tuple(slice(a, b) for a, b in zip(start, stop))]
    sub = Grid(part.shape, grid.spacing, tuple(grid.index_to_world(start).tolist()), grid.direction)
    result = measure_labels(part, sub)
    lesions = tuple(dataclasses.replace(
        lesion, diameter_slice=lesion.diameter_slice + int(start[0]),
        centroid_voxel=tuple(float(value + offset) for value, offset in zip(lesion.centroid_voxel, start)))
        for lesion in result.lesions)
    return dataclasses.replace(result, lesions=lesions)


class CtPredictor(Predictor):
    """Pancreatic-cancer predictor over a two-stage CT artifact (see the module docstring).

    Construct with :func:`mayo_dx.runtime.load` on an artifact folder with the stages
    ``localiser`` and ``analyser``. Thread-safe and picklable.

    Example:
        >>> predictor.predict("ct/case_001").measurements["pancreas_volume_ml"]  # doctest: +SKIP
        71.3
    """

    def _validate(self) -> None:
        card, where = self.card, self.path.name
        spec = dict(card.input_spec)
        if card.task != "ct" or set(self.stages) != set(STAGES):
            raise ArtifactError(f"{where}: a CT predictor needs task 'ct' and the stages {list(STAGES)}")
        if len(card.labels) != 1:
            raise ArtifactError(f"{where}: a CT card has one case-level label, found {len(card.labels)}")
        try:
            self._params = {stage: CtPreprocessing.from_dict(card.preprocessing[stage]) for stage in STAGES}
            self._settings = {stage: StageSettings.from_spec(spec[stage]) for stage in STAGES}
            self._context_mm = float(spec["analyser"].get("context_mm", 0.0))
            self._min_gland_ml = float(spec["localiser"].get("min_gland_volume_ml", 2.0))
            self._acquisition = AcquisitionRange.from_spec(spec.get("acquisition", {}))
            if spec["analyser"].get("case_aggregation", "max") != "max":
                raise ValueError(f"case_aggregation {spec['analyser']['case_aggregation']!r} (this runtime: 'max')")
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactError(f"{where}: the card's preprocessing or input_spec is invalid ({error!r})") from error
        self._outputs = {"localiser": self._check_graph("localiser", ("logits",)),
                         "analyser": self._check_graph("analyser", ("segmentation", "case_logit"))}
        calibration = dict(card.calibration)
        if calibration.get("method", "none") not in ("temperature", "none"):
            raise ArtifactError(f"{where}: unknown calibration method {calibration.get('method')!r}")
        temperature = np.asarray(calibration.get("temperature", [1.0]), dtype=np.float64).ravel()
        if temperature.size != 1 or not temperature[0] > 0:
            raise ArtifactError(f"{where}: CT calibration needs one positive temperature")
        self._temperature = float(temperature[0])
        self._label = card.labels[0]
        if self._label.name not in card.thresholds:
            raise ArtifactError(f"{where}: the card has no threshold for {self._label.name!r}")
        self._threshold = float(card.thresholds[self._label.name])

    def _check_graph(self, stage: str, wanted: Sequence[str]) -> list[str]:
        """Check one stage's graph against the card; return the output names to fetch, in ``wanted`` order."""
        session = self.session(stage)
        inputs, outputs = session.get_inputs(), [item.name for item in session.get_outputs()]
        if [item.name for item in inputs] != ["image"]:
            raise ArtifactError(f"{self.path.name}: stage {stage!r} needs one input 'image'")
        names = list(wanted) if all(name in outputs for name in wanted) else outputs[: len(wanted)]
        if len(names) != len(wanted):
            raise ArtifactError(f"{self.path.name}: stage {stage!r} needs outputs {list(wanted)}, has {outputs}")
        shape = inputs[0].shape
        patch = self._settings[stage].patch_size
        fixed = [size for size in shape[2:] if isinstance(size, int)]
        if len(shape) != 5 or (len(fixed) == 3 and tuple(fixed) != patch):
            raise ArtifactError(f"{self.path.name}: stage {stage!r} takes {shape}, the card's patch is {list(patch)}")
        return names

    def _stage_run(self, stage: str, patch: np.ndarray) -> list[np.ndarray]:
        feeds = {"image": np.ascontiguousarray(patch[None], dtype=np.float32)}
        return self.session(stage).run(self._outputs[stage], feeds)

    def _sliding(self, stage: str, array: np.ndarray, collect: list[float] | None = None) -> np.ndarray:
        settings = self._settings[stage]

        def run_patch(patch: np.ndarray) -> np.ndarray:
            outputs = self._stage_run(stage, patch)
            if collect is not None:
                collect.append(float(np.max(outputs[1])))
            return outputs[0][0]

        return sliding_window_predict(array[None], run_patch, settings.patch_size, settings.overlap, settings.mode,
                                      settings.sigma_scale, settings.pad_value)

    def _abstain(self, *reasons: QualityIssue) -> Abstention:
        return Abstention(reasons=tuple(reasons), model=self.card.name, model_version=self.card.version)

    def localise(self, volume: CtVolume) -> tuple[np.ndarray, Grid]:
        """Stage 1: the largest gland component on the localiser's grid, and that grid.

        Example:
            >>> gland, grid = predictor.localise(volume)  # doctest: +SKIP
            >>> gland.dtype, gland.shape == grid.shape  # doctest: +SKIP
            (dtype('bool'), True)
        """
        array, geometry = preprocess_ct(volume, self._params["localiser"])
        logits = self._sliding("localiser", array)
        return largest_component(np.argmax(logits, axis=0) > 0), geometry.target

    def analyse(self, source: str | Path | Sequence[str | Path] | CtVolume) -> CtAnalysis:
        """Run the whole recipe once and keep the label map (what :meth:`predict` and :meth:`segment` return).

        Raises:
            InputError: The input cannot be read as a CT volume.

        Example:
            >>> analysis = predictor.analyse("ct/case_001")  # doctest: +SKIP
            >>> analysis.result.kind, analysis.labels.shape  # doctest: +SKIP
            ('diagnosis', (200, 512, 512))
        """
        volume = source if isinstance(source, CtVolume) else read_series(source)
        empty = np.zeros(volume.shape, dtype=np.uint8)
        issues = check_acquisition(volume, self._acquisition)
        rejected = [issue for issue in issues if issue.severity == "reject"]
        if rejected:
            return CtAnalysis(self._abstain(*rejected), empty, None, None, volume)
        try:
            gland, grid = self.localise(volume)
        except ObliqueVolume as error:
            issue = QualityIssue(code="oblique_volume", message=f"{error}; the model needs axial slices.")
            return CtAnalysis(self._abstain(issue), empty, None, None, volume)
        problems = gland_issues(gland, grid, self._min_gland_ml)
        if problems:
            return CtAnalysis(self._abstain(*problems), empty, None, None, volume)
        box = gland_world_box(gland, grid, self._context_mm)
        array, geometry = preprocess_ct(volume, self._params["analyser"], box=box)
        cases: list[float] = []
        segmentation = self._sliding("analyser", array, cases)
        labels = restore_labels(np.argmax(segmentation, axis=0).astype(np.uint8), geometry)
        case_logit = max(cases)
        gland_ml = float(gland.sum()) * float(np.prod(grid.spacing)) / 1000.0
        result = self._diagnosis(labels, volume, case_logit, gland_ml, issues)
        return CtAnalysis(result, labels, case_logit, box, volume)

    def probability(self, case_logit: float) -> float:
        """Calibrated probability ``sigmoid(case_logit / T)``.

        Example:
            >>> predictor.probability(0.0)  # doctest: +SKIP
            0.5
        """
        scaled = float(case_logit) / self._temperature
        return float(1.0 / (1.0 + np.exp(-scaled))) if scaled >= 0 else float(np.exp(scaled) / (1.0 + np.exp(scaled)))

    def _diagnosis(self, labels: np.ndarray, volume: CtVolume, case_logit: float, gland_ml: float,
                   issues: Sequence[QualityIssue]) -> Diagnosis:
        measured = _measure(labels, volume)
        lesions = measured.lesions
        measurements = {
            "pancreas_found": 1.0, "pancreas_volume_ml": measured.pancreas_volume_ml,
            "localiser_gland_volume_ml": gland_ml, "lesion_count": float(len(lesions)),
            "largest_lesion_diameter_mm": max((item.longest_axial_diameter_mm for item in lesions), default=0.0),
            "largest_lesion_volume_ml": lesions[0].volume_ml if lesions else 0.0,
            "total_lesion_volume_ml": measured.total_lesion_volume_ml, "case_logit": float(case_logit),
        }
        label = self._label
        finding = Finding(label=label.name, probability=float(np.clip(self.probability(case_logit), 0.0, 1.0)),
                          threshold=self._threshold, code=label.code, system=label.system,
                          description=label.description or None)
        return Diagnosis(model=self.card.name, model_version=self.card.version, findings=(finding,),
                         quality=tuple(issues), artifact_sha256=self.artifact_sha256, measurements=measurements,
                         lesions=tuple(lesion.to_dict() for lesion in lesions))

    def predict(self, source: str | Path | Sequence[str | Path] | CtVolume) -> Diagnosis | Abstention:
        """Diagnose one CT study (steps 1-5 of the module docstring).

        Raises:
            InputError: The input cannot be read as a CT volume.

        Example:
            >>> predictor.predict("ct/case_001").positive_labels  # doctest: +SKIP
            ('pancreatic_cancer',)
        """
        return self.analyse(source).result

    def segment(self, source: str | Path | Sequence[str | Path] | CtVolume) -> np.ndarray:
        """The label map on the source grid: uint8 ``[z, y, x]``, 0 background, 1 pancreas, 2 lesion.

        All zeros when the predictor abstains (see :meth:`predict` for the reason).

        Example:
            >>> sorted(np.unique(predictor.segment(volume)).tolist())  # doctest: +SKIP
            [0, 1, 2]
        """
        return self.analyse(source).labels
