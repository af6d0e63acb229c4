"""Cases for INT8 quantisation of a CT artifact: calibration sources, captured stage inputs, evaluation.

Training layer (helpers of :mod:`mayo_dx.export.quantize_ct`). Calibration cases come from,
in this order: the ``data`` the user names (a Decathlon Task07-shaped folder or a CT manifest
CSV); the card's recorded ``extra["data_source"]`` when its folder or manifest is readable here
(the training split, with the recorded split seed and fractions); for a card trained on
generated data, phantoms from the same generator (:func:`write_msd_pancreas`) with the
recorded settings (or defaults that fit the card's accepted slice thickness); else
:class:`~mayo_dx.errors.ArtifactError`.

The stage inputs are captured from the float32 runtime itself (:class:`CapturingCtPredictor`
records what :meth:`CtPredictor._stage_run` feeds each stage), so calibration sees exactly the
patches the runtime produces. Evaluation compares two predictors case by case on phantoms
with known labels (:func:`compare_predictors`).

Example:
    >>> default_phantom_shape({"slice_thickness_mm": [0.5, 5.0]})
    (64, 128, 128)
"""

from __future__ import annotations

import math
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError, MayoDxError
from mayo_dx.imaging.data_cache import CtCase, cases_from_manifest, cases_from_msd, split_cases
from mayo_dx.imaging.nifti import read_nifti_labels
from mayo_dx.imaging.phantom_io import write_msd_pancreas
from mayo_dx.imaging.read import read_series
from mayo_dx.metrics import roc_auc
from mayo_dx.results import Diagnosis
from mayo_dx.runtime_ct import STAGES, CtPredictor

__all__ = ["CalibrationCases", "CapturingCtPredictor", "calibration_cases", "compare_predictors",
           "default_phantom_shape", "generated_cases"]

#: The phantom generator's extent along z (mm) when no spacing is given.
PHANTOM_Z_MM = 200.0
#: Matrix of generated phantoms when the card records none (the DataModule's default).
DEFAULT_SHAPE = (64, 128, 128)


@dataclass(frozen=True)
class CalibrationCases:
    """Cases to calibrate on and where they came from (no absolute path of user data).

    Example:
        >>> CalibrationCases([], {"source": "given", "name": "msd"}).description["name"]
        'msd'
    """

    cases: list[CtCase]
    description: dict[str, Any]


class CapturingCtPredictor(CtPredictor):
    """A float32 :class:`CtPredictor` that keeps a copy of every stage input it runs (nothing else changes).

    Example:
        >>> predictor = CapturingCtPredictor(read_artifact("ct_model"), threads=1)  # doctest: +SKIP
        >>> _ = predictor.analyse(volume); len(predictor.captured["localiser"]) > 0  # doctest: +SKIP
        True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.captured: dict[str, list[np.ndarray]] = {stage: [] for stage in STAGES}
        super().__init__(*args, **kwargs)

    def _stage_run(self, stage: str, patch: np.ndarray) -> list[np.ndarray]:
        self.captured[stage].append(np.array(patch, dtype=np.float32, copy=True))
        return super()._stage_run(stage, patch)


def default_phantom_shape(acquisition: Mapping[str, Any]) -> tuple[int, int, int]:
    """The DataModule's default phantom matrix, with as many slices as the accepted thickness needs.

    Example:
        >>> default_phantom_shape({"slice_thickness_mm": [0.5, 2.0]})
        (100, 128, 128)
    """
    low, high = (float(value) for value in acquisition.get("slice_thickness_mm", (0.5, 5.0)))
    slices = DEFAULT_SHAPE[0]
    if PHANTOM_Z_MM / slices > high:
        slices = math.ceil(PHANTOM_Z_MM / high)
    elif PHANTOM_Z_MM / slices < low:
        slices = max(1, math.floor(PHANTOM_Z_MM / low))
    return (slices, *DEFAULT_SHAPE[1:])


def _phantom_settings(card: ModelCard) -> dict[str, Any]:
    recorded = dict(card.extra.get("data_source") or {}).get("phantoms") or {}
    default = default_phantom_shape(card.input_spec.get("acquisition", {}))
    shape = tuple(int(size) for size in recorded.get("shape") or default)
    return {"shape": shape, "seed": int(recorded.get("seed", 0)), "recorded": bool(recorded)}


def generated_cases(folder: Path, card: ModelCard, count: int, seed: int, *,
                    cancer_fraction: float = 0.5) -> list[CtCase]:
    """Write ``count`` labelled phantoms (the card's recorded matrix, or the default) and return them.

    Example:
        >>> generated_cases(Path(tempfile.mkdtemp()), card, 4, seed=7)[0].label_path.name  # doctest: +SKIP
        'pancreas_001.nii.gz'
    """
    settings = _phantom_settings(card)
    write_msd_pancreas(folder, count, seed=seed, n_test=0, shape=settings["shape"], cancer_fraction=cancer_fraction)
    return cases_from_msd(folder)


def _cases_at(path: Path) -> list[CtCase]:
    if path.is_dir() and (path / "dataset.json").is_file():
        return cases_from_msd(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return cases_from_manifest(path)
    raise ArtifactError(f"{path.name}: calibration data must be a Decathlon Task07-shaped folder (dataset.json) "
                        "or a CT manifest .csv")


def _recorded_cases(card: ModelCard) -> tuple[list[CtCase], str] | None:
    """The training cases of the card's recorded source, when it is readable here."""
    recorded = card.extra.get("data_source")
    if not isinstance(recorded, Mapping):
        return None
    for key in ("msd_folder", "manifest"):
        location = recorded.get(key)
        if not location:
            continue
        path = Path(str(location))
        try:
            cases = _cases_at(path)
        except (MayoDxError, OSError, ValueError):
            return None
        fractions = recorded.get("split_fractions")
        if isinstance(fractions, Sequence) and len(fractions) == 2:
            cases = split_cases(cases, float(fractions[0]), float(fractions[1]),
                                seed=int(recorded.get("split_seed") or 0))["train"]
        return cases, path.name
    return None


def calibration_cases(card: ModelCard, data: str | Path | None, count: int, seed: int,
                      stack: ExitStack) -> CalibrationCases:
    """Choose the calibration cases (order in the module docstring); temporary folders live on ``stack``.

    Raises:
        ArtifactError: Unreadable ``data``, or no readable source and a card not trained on
            generated data (the message asks for ``data``).

    Example:
        >>> with ExitStack() as stack:  # doctest: +SKIP
        ...     calibration_cases(card, None, 4, 0, stack).description["source"]
        'generated phantoms'
    """
    rng = np.random.default_rng(seed)
    if data is not None:
        path = Path(data)
        try:
            cases = _cases_at(path)
        except ArtifactError:
            raise
        except MayoDxError as error:
            raise ArtifactError(f"calibration data {path.name}: {error}") from error
        origin = {"source": "given", "name": path.name}
    elif (recorded := _recorded_cases(card)) is not None:
        cases, name = recorded
        origin = {"source": "recorded data source (training split)", "name": name}
    elif card.synthetic_training_data:
        settings = _phantom_settings(card)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mayo-dx-calibration-")))
        cases = generated_cases(folder, card, count, settings["seed"], cancer_fraction=0.5)
        origin = {"source": "generated phantoms", "name": "mayo_dx.imaging.phantom_io.write_msd_pancreas",
                  "seed": settings["seed"], "shape": list(settings["shape"]),
                  "settings": ("recorded on the card" if settings["recorded"]
                               else "defaults fitting the acquisition range")}
    else:
        raise ArtifactError(f"the card's data source ({card.training_data or 'not recorded'}) is not readable here and "
                            "the model was not trained on generated data: pass data (a Decathlon-shaped folder or a "
                            "CT manifest of that source) to calibrate on")
    if not cases:
        raise ArtifactError(f"no case to calibrate on in {origin['name']}")
    chosen = [cases[index] for index in rng.permutation(len(cases))[:count]]
    return CalibrationCases(chosen, {**origin, "cases": len(chosen)})


def _dice(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    total = int(predicted.sum()) + int(truth.sum())
    return None if not truth.any() else 2.0 * float(np.logical_and(predicted, truth).sum()) / total


def _outcome(predictor: CtPredictor, volume: Any, truth: np.ndarray) -> dict[str, Any]:
    analysis = predictor.analyse(volume)
    result = analysis.result
    probability = float(result.findings[0].probability) if isinstance(result, Diagnosis) else 0.0
    return {"kind": result.kind, "probability": probability,
            "positive": bool(isinstance(result, Diagnosis) and result.positive_labels),
            "dice_pancreas": _dice(analysis.labels > 0, truth > 0),
            "dice_lesion": _dice(analysis.labels == 2, truth == 2)}


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(float(np.mean(present)), 5) if present else None


def _summary(outcomes: Sequence[Mapping[str, Any]], targets: np.ndarray) -> dict[str, Any]:
    scores = np.array([outcome["probability"] for outcome in outcomes])
    return {"dice_pancreas": _mean([outcome["dice_pancreas"] for outcome in outcomes]),
            "dice_lesion": _mean([outcome["dice_lesion"] for outcome in outcomes]),
            "auroc": round(float(roc_auc(targets, scores)), 5) if 0 < targets.sum() < len(targets) else None,
            "abstentions": sum(outcome["kind"] == "abstention" for outcome in outcomes),
            "positive_calls": sum(outcome["positive"] for outcome in outcomes)}


def _change(new: float | None, old: float | None) -> float | None:
    return None if new is None or old is None else round(new - old, 5)


def compare_predictors(reference: CtPredictor, candidate: CtPredictor, cases: Sequence[CtCase]) -> dict[str, Any]:
    """Run both predictors on each labelled case; Dice, AUROC, abstentions and changed decisions.

    An abstention scores probability 0 (a confident "no", as training's evaluation counts a
    case without a localised gland) and Dice 0 (its label map is empty). Pancreas Dice: labels
    1 + 2 against truth 1 + 2; lesion Dice: label 2, over cases with a lesion in the truth.

    Returns:
        ``{"fp32": summary, "int8": summary, "change": int8 - fp32, "decision_changed_fraction",
        "kind_changed_fraction", "positive_call_changed_fraction", "max_probability_difference",
        "cases": [per case]}`` (``fp32`` is ``reference``, ``int8`` is ``candidate``).

    Example:
        >>> compare_predictors(fp32, int8, cases)["change"]["dice_pancreas"]  # doctest: +SKIP
        -0.003
    """
    records, pairs, targets = [], [], []
    for case in cases:
        volume = read_series(case.image_path)
        truth = read_nifti_labels(case.label_path, like=volume)
        target = int((truth == 2).any())
        first, second = _outcome(reference, volume, truth), _outcome(candidate, volume, truth)
        pairs.append((first, second))
        targets.append(target)
        records.append({"case_id": case.case_id, "target": target, "fp32": first, "int8": second})
    truth_targets = np.array(targets, dtype=int)
    fp32 = _summary([pair[0] for pair in pairs], truth_targets)
    int8 = _summary([pair[1] for pair in pairs], truth_targets)
    kind = [a["kind"] != b["kind"] for a, b in pairs]
    positive = [a["positive"] != b["positive"] for a, b in pairs]
    count = max(1, len(pairs))
    return {"fp32": fp32, "int8": int8,
            "change": {key: _change(int8[key], fp32[key]) for key in ("dice_pancreas", "dice_lesion", "auroc")},
            "decision_changed_fraction": round(sum(a or b for a, b in zip(kind, positive)) / count, 5),
            "kind_changed_fraction": round(sum(kind) / count, 5),
            "positive_call_changed_fraction": round(sum(positive) / count, 5),
            "max_probability_difference": round(max((abs(a["probability"] - b["probability"]) for a, b in pairs),
                                                    default=0.0), 6),
            "cases": records}
