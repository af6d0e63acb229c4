"""After CT training: end-to-end evaluation, calibration, the operating point and the model card.

:func:`evaluate_cases` runs both stages (:mod:`mayo_dx.training.ct_pipeline`) on whole source
volumes, as the runtime will, and measures per case: the case logit, Dice of the gland
("pancreas": labels 1 and 2 together, as the Decathlon's pancreas region) and of the lesion
(cases with a lesion in the truth only) on the source grid, and the truth's largest lesion
diameter (:func:`mayo_dx.imaging.measure.measure_labels`). A case where the localiser finds no
gland keeps a logit of ``-20`` (a confident "no") and is counted in ``localisation_failures``.

:func:`finalise_ct_model` then, on the **validation** cases, fits a temperature
(:func:`fit_temperature_smoothed`: cross-entropy with Platt-smoothed targets, applied with
:func:`mayo_dx.calibration.apply_temperature`) and chooses the threshold on the calibrated
probability giving at least the target specificity (95 % by default, as the clinical papers
report; :func:`threshold_at_specificity`); reports validation and test metrics (AUROC with a
bootstrap 95 % CI, sensitivity and specificity at the threshold, Dice, sensitivity for lesions
< 20 mm and >= 20 mm); and stores the card (contract: ``notes/ct_card_contract.md``) in the
analyser checkpoint, where :func:`~mayo_dx.training.ct_checkpoint.load_trained_ct` reads it.

Example:
    >>> threshold_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.5, 0.9], 0.75) > 0.3
    True
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from scipy.optimize import minimize_scalar

from mayo_dx.calibration import TEMPERATURE_BOUNDS, apply_temperature
from mayo_dx.card import Label, ModelCard
from mayo_dx.errors import InputError
from mayo_dx.imaging.data_cache import CtCase
from mayo_dx.imaging.measure import measure_labels
from mayo_dx.imaging.nifti import read_nifti_labels
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.resample import CtPreprocessing
from mayo_dx.metrics import bootstrap_ci, roc_auc
from mayo_dx.training.ct_checkpoint import load_stage
from mayo_dx.training.ct_pipeline import analyse, localise

__all__ = ["CANCER_LABEL", "build_ct_card", "evaluate_cases", "finalise_ct_model", "fit_temperature_smoothed",
           "summarise_cases", "threshold_at_specificity"]

#: The case-level output (SNOMED CT 363418001, malignant tumour of pancreas).
CANCER_LABEL = Label("pancreatic_cancer", code="363418001", system="SNOMED CT",
                     description="Pancreatic cancer (a pancreatic mass) present in the study")
NOT_LOCALISED_LOGIT = -20.0
SIZE_SPLIT_MM = 20.0


def threshold_at_specificity(targets: Sequence[int], probabilities: Sequence[float], specificity: float = 0.95) -> float:
    """The operating threshold keeping the specificity at the target with the highest sensitivity.

    ``k = floor((1 - specificity) * negatives)`` negatives may lie at or above the threshold; the
    threshold is the logit-midpoint between the (k+1)-th highest negative probability and the
    next higher observed probability (just above that negative when there is none), so the
    rule ``p >= t`` meets the target on these data without sitting on an observed value.

    Example:
        >>> round(threshold_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.5, 0.9], 0.75), 4)
        0.3956
        >>> threshold_at_specificity([0, 1], [0.4, 0.3])
        0.4000000000000001
    """
    labels = np.asarray(targets, dtype=int)
    values = np.asarray(probabilities, dtype=np.float64)
    negatives = np.sort(values[labels == 0])[::-1]
    if not negatives.size:
        return float(values.min()) if values.size else 0.5
    allowed = int(np.floor((1.0 - specificity) * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return float(values.min())
    boundary = float(negatives[allowed])
    above = values[values > boundary]
    if not above.size:
        return float(np.nextafter(boundary, np.inf))
    low, high = np.clip([boundary, float(above.min())], 1e-12, 1 - 1e-12)
    middle = (np.log(low / (1 - low)) + np.log(high / (1 - high))) / 2.0
    return float(max(1.0 / (1.0 + np.exp(-middle)), np.nextafter(boundary, np.inf)))


def fit_temperature_smoothed(logits: Sequence[float], targets: Sequence[int]) -> float:
    """Temperature minimising cross-entropy against Platt-smoothed targets.

    Targets become ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (Platt 1999), so a small,
    perfectly separated validation set does not drive the temperature to its lower bound
    (plain maximum likelihood would, making every probability 0 or 1).

    Example:
        >>> round(fit_temperature_smoothed([-4.0, -3.0, 3.0, 4.0], [0, 0, 1, 1]), 2) > 1.0
        True
    """
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    labels = np.asarray(targets, dtype=int).reshape(-1)
    positives, negatives = int(labels.sum()), int((labels == 0).sum())
    if not positives or not negatives:
        return 1.0
    soft = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(log_temperature: float) -> float:
        scaled = values / np.exp(log_temperature)
        return float(np.mean(np.logaddexp(0.0, scaled) - soft * scaled))

    bounds = np.log(TEMPERATURE_BOUNDS)
    return float(np.exp(minimize_scalar(loss, bounds=tuple(bounds), method="bounded").x))


def _dice(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    total = int(predicted.sum()) + int(truth.sum())
    return None if not truth.any() else 2.0 * float(np.logical_and(predicted, truth).sum()) / total


def evaluate_cases(localiser: Any, analyser: Any, cases: Sequence[CtCase], localiser_entry: Mapping[str, Any],
                   analyser_entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run both stages on each case's source volume; one record per case (see module notes).

    Example:
        >>> evaluate_cases(localiser, analyser, cases, localiser_entry, analyser_entry)[0]["logit"]  # doctest: +SKIP
        3.2
    """
    loc_data, ana_data = localiser_entry["data"], analyser_entry["data"]
    loc_params = CtPreprocessing.from_dict(loc_data["preprocessing"])
    ana_params = CtPreprocessing.from_dict(ana_data["preprocessing"])
    records = []
    for case in cases:
        volume = read_series(case.image_path, min_slices=1)
        truth = read_nifti_labels(case.label_path, like=volume) if case.label_path is not None else None
        record: dict[str, Any] = {"case_id": case.case_id, "target": case.case_label, "localised": True,
                                  "dice_pancreas": None, "dice_lesion": None, "lesion_diameter_mm": None}
        if truth is not None:
            lesions = measure_labels(truth, volume).lesions
            record["lesion_diameter_mm"] = max((item.longest_axial_diameter_mm for item in lesions), default=None)
            record["target"] = int(bool(lesions)) if case.case_label is None else case.case_label
        box = localise(localiser, volume, loc_params, localiser_entry["patch_size"], localiser_entry["sw_overlap"],
                       ana_data["context_mm"])
        if box is None:
            record.update(localised=False, logit=NOT_LOCALISED_LOGIT)
            predicted = np.zeros(volume.shape, np.uint8)
        else:
            predicted, record["logit"] = analyse(analyser, volume, box, ana_params, analyser_entry["patch_size"],
                                                 analyser_entry["sw_overlap"])
        if truth is not None:
            record["dice_pancreas"] = _dice(predicted > 0, truth > 0)
            record["dice_lesion"] = _dice(predicted == 2, truth == 2)
        if record["target"] is None:
            raise InputError(f"{case.case_id}: no case label and no label map")
        records.append(record)
    return records


def _mean(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(np.mean(present)) if present else None


def summarise_cases(records: Sequence[Mapping[str, Any]], temperature: float, threshold: float,
                    bootstrap_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Metrics of evaluated cases at a temperature and threshold (JSON types; None when undefined).

    Example:
        >>> records = [{"target": t, "logit": l, "lesion_diameter_mm": d, "dice_pancreas": 0.8, "dice_lesion": None,
        ...             "localised": True} for t, l, d in [(0, -2.0, None), (1, 2.0, 25.0), (1, -1.0, 12.0), (0, -3.0, None)]]
        >>> summary = summarise_cases(records, 1.0, 0.5, bootstrap_resamples=20)
        >>> summary["auroc"], summary["sensitivity"], summary["sensitivity_by_lesion_size"]["ge_20mm"]["sensitivity"]
        (1.0, 0.5, 1.0)
    """
    targets = np.array([int(record["target"]) for record in records])
    logits = np.array([float(record["logit"]) for record in records])
    probabilities = apply_temperature(logits[:, None], [temperature])[:, 0]
    called = probabilities >= threshold
    both = 0 < targets.sum() < len(targets)
    summary: dict[str, Any] = {"cases": len(records), "positives": int(targets.sum()),
                               "auroc": float(roc_auc(targets, probabilities)) if both else None, "auroc_ci95": None}
    if both and bootstrap_resamples >= 2:
        summary["auroc_ci95"] = list(bootstrap_ci(roc_auc, targets, probabilities, n_resamples=bootstrap_resamples, seed=seed))
    positives, negatives = targets == 1, targets == 0
    summary["sensitivity"] = float(called[positives].mean()) if positives.any() else None
    summary["specificity"] = float((~called[negatives]).mean()) if negatives.any() else None
    sizes: dict[str, Any] = {}
    for name, test in (("lt_20mm", lambda d: d < SIZE_SPLIT_MM), ("ge_20mm", lambda d: d >= SIZE_SPLIT_MM)):
        chosen = [index for index, record in enumerate(records)
                  if record["target"] == 1 and record["lesion_diameter_mm"] is not None and test(record["lesion_diameter_mm"])]
        sizes[name] = {"cases": len(chosen), "sensitivity": float(called[chosen].mean()) if chosen else None}
    summary["sensitivity_by_lesion_size"] = sizes
    summary["dice_pancreas"] = _mean([record["dice_pancreas"] for record in records])
    summary["dice_lesion"] = _mean([record["dice_lesion"] for record in records])
    summary["localisation_failures"] = int(sum(not record["localised"] for record in records))
    return summary


def build_ct_card(name: str, version: str, localiser_entry: Mapping[str, Any], analyser_entry: Mapping[str, Any],
                  temperature: float, threshold: float, metrics: Mapping[str, Any], *, synthetic: bool,
                  acquisition: Mapping[str, Any] | None = None, training_data: str = "") -> ModelCard:
    """The CT model card (contract in ``notes/ct_card_contract.md``).

    When the analyser entry's ``data`` holds ``data_source`` (from
    :meth:`mayo_dx.imaging.data.CtDataModule.describe`), it goes to ``extra["data_source"]``
    with the split seed and fractions.

    Example:
        >>> entry = {"network": {"name": "n", "kwargs": {}}, "patch_size": [32, 32, 32], "sw_overlap": 0.5,
        ...          "class_names": ["background", "gland"], "data": {"preprocessing": {}, "context_mm": 8.0}}
        >>> card = build_ct_card("ct_demo", "0.1.0", entry, entry, 1.0, 0.5, {}, synthetic=True)
        >>> card.thresholds, card.input_spec["analyser"]["case_aggregation"]
        ({'pancreatic_cancer': 0.5}, 'max')
    """
    def stage_spec(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {"patch_size": list(entry["patch_size"]), "overlap": float(entry["sw_overlap"]), "blend": "gaussian",
                "sigma_scale": 0.125, "pad_value": 0.0, "classes": list(entry["class_names"]), "input": "image"}

    analyser = {**stage_spec(analyser_entry), "outputs": ["segmentation", "case_logit"], "case_aggregation": "max",
                "context_mm": float(analyser_entry["data"]["context_mm"]),
                "crop_margin_mm": float(analyser_entry["data"]["preprocessing"].get("crop_margin_mm", 0.0))}
    localiser = {**stage_spec(localiser_entry), "outputs": ["segmentation"], "gland_component": "largest"}
    data = analyser_entry.get("data") or {}
    extra: dict[str, Any] = {"stages": {"localiser": {"network": dict(localiser_entry["network"])},
                                        "analyser": {"network": dict(analyser_entry["network"])}}}
    if isinstance(data.get("data_source"), Mapping):  # where the cases came from (INT8 calibration reads it)
        extra["data_source"] = {**dict(data["data_source"]), "split_seed": data.get("split_seed"),
                                "split_fractions": data.get("split_fractions")}
    acquisition = dict(acquisition or {"modality": "CT", "body_part": "abdomen; the whole pancreas in the field of view",
                                       "contrast_phase": "portal-venous", "slice_thickness_mm": [0.5, 5.0]})
    return ModelCard(
        name=name, version=version, task="ct", labels=(CANCER_LABEL,),
        input_spec={"stages": ["localiser", "analyser"], "localiser": localiser, "analyser": analyser,
                    "acquisition": acquisition, "lesion_size_split_mm": SIZE_SPLIT_MM,
                    "segmentation_labels": {"0": "background", "1": "pancreas", "2": "lesion"}},
        preprocessing={"localiser": dict(localiser_entry["data"]["preprocessing"]),
                       "analyser": dict(analyser_entry["data"]["preprocessing"])},
        thresholds={CANCER_LABEL.name: float(threshold)},
        calibration={"method": "temperature", "temperature": [float(temperature)],
                     "fit": "cross-entropy on validation with Platt-smoothed targets"},
        metrics=dict(metrics), training_data=training_data, synthetic_training_data=synthetic,
        limitations=("Validated only on the data described under training_data.",
                     "Needs the whole pancreas in the field of view; one contrast phase (portal-venous) was trained."),
        extra=extra,
    )


def finalise_ct_model(localiser_checkpoint: str | Path, analyser_checkpoint: str | Path, validation: Sequence[CtCase],
                      test: Sequence[CtCase], *, name: str, version: str = "0.1.0", specificity: float = 0.95,
                      bootstrap_resamples: int = 1000, synthetic: bool | None = None,
                      acquisition: Mapping[str, Any] | None = None, write: bool = True) -> ModelCard:
    """Calibrate on validation, choose the operating point, measure, and store the card.

    Args:
        localiser_checkpoint: Stage-1 checkpoint.
        analyser_checkpoint: Stage-2 checkpoint; the card is written into it when ``write``.
        validation: Cases for temperature and threshold (never trained on by either stage).
        test: Held-out cases for the reported test metrics (may be empty).
        name: Registry/card name.
        version: Card version.
        specificity: Target specificity of the operating threshold on validation.
        bootstrap_resamples: Resamples of the AUROC confidence interval.
        synthetic: Trained on generated data; None reads it from the data description.
        acquisition: Accepted acquisition range for ``input_spec["acquisition"]``.
        write: Store the card in the analyser checkpoint.

    Example:
        >>> finalise_ct_model("loc.ckpt", "ana.ckpt", splits["validation"], splits["test"], name="ct_phantom")  # doctest: +SKIP
    """
    from mayo_dx.training.checkpoint import read_checkpoint, write_entry

    if not validation:
        raise InputError("calibration needs validation cases")
    localiser, localiser_entry = load_stage(localiser_checkpoint, "localiser")
    analyser, analyser_entry = load_stage(analyser_checkpoint, "analyser")
    same = ("split_seed", "split_fractions", "source")
    if any((localiser_entry.get("data") or {}).get(key) != (analyser_entry.get("data") or {}).get(key) for key in same):
        raise InputError("the localiser and analyser were trained on different data splits (source, split_seed, "
                         "split_fractions must match), so validation/test cases may have been seen in training")
    evaluated = {"validation": evaluate_cases(localiser, analyser, validation, localiser_entry, analyser_entry)}
    if test:
        evaluated["test"] = evaluate_cases(localiser, analyser, test, localiser_entry, analyser_entry)
    logits = np.array([[record["logit"]] for record in evaluated["validation"]])
    targets = np.array([[record["target"]] for record in evaluated["validation"]])
    temperature = fit_temperature_smoothed(logits[:, 0], targets[:, 0])
    probabilities = apply_temperature(logits, [temperature])[:, 0]
    threshold = threshold_at_specificity(targets[:, 0], probabilities, specificity)
    metrics: dict[str, Any] = {split: summarise_cases(records, temperature, threshold, bootstrap_resamples)
                               for split, records in evaluated.items()}
    metrics["threshold_rule"] = (f"specificity >= {specificity:g} on validation: logit-midpoint above the highest "
                                 "negative allowed below the threshold")
    metrics["dice_definition"] = "pancreas: labels 1+2 (gland incl. lesion); lesion: label 2, cases with a lesion"
    data = analyser_entry.get("data") or {}
    synthetic = bool(data.get("synthetic")) if synthetic is None else synthetic
    training = (f"{data.get('source', 'unknown source')}; cases per split {data.get('cases')}; "
                f"split seed {data.get('split_seed')}")
    card = build_ct_card(name, version, localiser_entry, analyser_entry, temperature, threshold, metrics,
                         synthetic=synthetic, acquisition=acquisition, training_data=training)
    if write:
        entry = dict(read_checkpoint(analyser_checkpoint)["mayo_dx"])
        entry["card"] = card.to_dict()
        write_entry(analyser_checkpoint, entry)
    return dataclasses.replace(card)
