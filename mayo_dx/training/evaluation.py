"""Evaluate an ECG network on a split: record logits, calibrated metrics with confidence intervals.

:func:`collect_logits` runs a network over an evaluation loader (every sliding window of each
record, window logits aggregated per record) and returns numpy arrays. :func:`summarise`
turns targets and calibrated probabilities into the metrics the model card and the
``mayo-dx evaluate`` command report: per-class and macro AUROC with percentile-bootstrap 95 %
confidence intervals, F1, sensitivity, specificity and precision at the card's thresholds,
and the expected calibration error (15 equal-width bins). :func:`evaluate_checkpoint` does
the whole job for a trained checkpoint on one split of its data. The numbers come from
:mod:`mayo_dx.metrics` and :mod:`mayo_dx.calibration` (numpy, shared with the runtime).

Example:
    >>> targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> probabilities = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.2, 0.3]])
    >>> summary = summarise(targets, probabilities, {"A": 0.5, "B": 0.5}, ["A", "B"], bootstrap_resamples=20)
    >>> summary["auroc_macro"], summary["per_class"]["A"]["f1"]
    (1.0, 1.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from mayo_dx.calibration import apply_temperature
from mayo_dx.errors import InputError
from mayo_dx.metrics import bootstrap_ci, classification_report, expected_calibration_error, macro_auroc, roc_auc

__all__ = ["collect_logits", "evaluate_checkpoint", "summarise"]


@torch.no_grad()
def collect_logits(net: nn.Module, loader: DataLoader, aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-record logits ``[records, labels]`` and targets of an evaluation loader.

    The network is put in eval mode for the pass and restored to its previous mode after.

    Example:
        >>> logits, targets = collect_logits(net, data.evaluation_dataloader("validation"), "max")  # doctest: +SKIP
    """
    from mayo_dx.training.task import aggregate_windows

    was_training = net.training
    net.eval()
    device = next((parameter.device for parameter in net.parameters()), torch.device("cpu"))
    logits, targets = [], []
    try:
        for batch in loader:
            window_logits = net(batch["signal"].to(device))
            logits.append(aggregate_windows(window_logits, batch["windows"], aggregation).float().cpu().numpy())
            targets.append(batch["target"].numpy())
    finally:
        net.train(was_training)
    if not logits:
        raise InputError("the evaluation loader yielded no records")
    return np.concatenate(logits).astype(np.float64), np.concatenate(targets).astype(np.int64)


def _interval(metric: Any, targets: np.ndarray, scores: np.ndarray, resamples: int, seed: int) -> list[float] | None:
    if resamples < 2:
        return None
    try:
        return list(bootstrap_ci(metric, targets, scores, n_resamples=resamples, seed=seed))
    except InputError:  # too few positives or negatives to resample
        return None


def summarise(
    targets: np.ndarray,
    probabilities: np.ndarray,
    thresholds: Mapping[str, float],
    label_names: Sequence[str],
    *,
    multi_label: bool = True,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of calibrated probabilities against 0/1 targets (JSON types).

    Args:
        targets: 0/1 ``[records, labels]`` (one-hot for single-label tasks).
        probabilities: Calibrated probabilities of the same shape.
        thresholds: Decision threshold per label (``p >= threshold`` is positive).
        label_names: Labels in column order.
        multi_label: Selects the ECE definition (per-probability or top-label).
        bootstrap_resamples: Resamples of the AUROC confidence intervals (< 2: none).
        seed: Bootstrap seed.

    Returns:
        ``{"records", "auroc_macro", "auroc_macro_ci95", "f1_macro", "sensitivity_macro",
        "specificity_macro", "ece", "per_class": {label: {"auroc", "auroc_ci95", "f1",
        "sensitivity", "specificity", "precision", "support", "threshold"}}}``; a value that is
        undefined on this data (a class without positives) is ``None``.

    Example:
        >>> summarise(np.array([[1], [0]]), np.array([[0.8], [0.4]]), {"A": 0.5}, ["A"], bootstrap_resamples=0)["ece"]
        0.3
    """
    targets = np.asarray(targets, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    report = classification_report(targets, probabilities, thresholds, list(label_names))
    both = [(0 < targets[:, k].sum() < len(targets)) for k in range(targets.shape[1])]
    macro = macro_auroc(targets, probabilities) if any(both) else None
    per_class: dict[str, Any] = {}
    for column, name in enumerate(label_names):
        entry = report["per_class"][name]
        interval = None
        if both[column]:
            interval = _interval(roc_auc, targets[:, column], probabilities[:, column], bootstrap_resamples, seed)
        per_class[name] = {
            "auroc": entry["auroc"],
            "auroc_ci95": interval,
            **{key: entry[key] for key in ("f1", "sensitivity", "specificity", "precision", "support", "threshold")},
        }
    ece_targets = targets if multi_label else targets.argmax(axis=1)
    return {
        "records": int(len(targets)),
        "auroc_macro": macro,
        "auroc_macro_ci95": (
            _interval(macro_auroc, targets, probabilities, bootstrap_resamples, seed) if any(both) else None
        ),
        "f1_macro": report["macro"]["f1"],
        "sensitivity_macro": report["macro"]["sensitivity"],
        "specificity_macro": report["macro"]["specificity"],
        "ece": float(expected_calibration_error(ece_targets, probabilities)),
        "per_class": per_class,
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    split: str = "test",
    *,
    source: Any = None,
    batch_size: int = 32,
    bootstrap_resamples: int = 1000,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a trained checkpoint on one split of its data, with the card's calibration.

    Records are preprocessed from the card (``preprocessing``, ``input_spec``), exactly as the
    runtime does; probabilities are calibrated with the card's temperatures and called
    positive at the card's thresholds.

    Args:
        checkpoint: A checkpoint holding a model card (written after ``mayo-dx fit``).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        source: A record source; ``None`` rebuilds the one the model was trained on.
        batch_size: Records per batch.
        bootstrap_resamples: Resamples of the AUROC confidence intervals.
        output: Also write the result as JSON to this file.

    Returns:
        ``{"model", "version", "split", "threshold_rule", "calibration", **summarise(...)}``.

    Raises:
        ArtifactError: The checkpoint has no card; InputError: labels of the source differ.

    Example:
        >>> evaluate_checkpoint("runs/synthetic/checkpoints/best.ckpt", "test")["auroc_macro"]  # doctest: +SKIP
        0.97
    """
    from mayo_dx.ecg.data import EcgDataset, RecordReader, collate_windows
    from mayo_dx.ecg.signal import EcgPreprocessing
    from mayo_dx.ecg.sources import source_from_dict
    from mayo_dx.training.checkpoint import load_trained, read_entry

    net, card = load_trained(checkpoint)
    if source is None:
        data = read_entry(checkpoint).get("data") or {}
        if "source" not in data:
            raise InputError("the checkpoint does not record its data source; pass source=")
        source = source_from_dict(data["source"])
    names = [label.name for label in source.labels]
    if names != list(card.label_names):
        raise InputError(f"the source's labels {names} differ from the model's {list(card.label_names)}")
    splits = source.splits()
    if split not in splits or not len(splits[split].paths):
        raise InputError(f"the data source has no records in split {split!r}")
    params = EcgPreprocessing.from_dict(card.preprocessing)
    spec = card.input_spec
    dataset = EcgDataset(RecordReader(splits[split].paths, params), splits[split].targets, params, mode="windows",
                         window_samples=int(spec["window_samples"]), stride_samples=int(spec["stride_samples"]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_windows)
    logits, targets = collect_logits(net, loader, str(spec["aggregation"]))
    multi_label = bool(spec.get("multi_label", True))
    probabilities = apply_temperature(logits, card.calibration["temperature"], multi_label=multi_label)
    result = {
        "model": card.name,
        "version": card.version,
        "split": split,
        "threshold_rule": card.metrics.get("threshold_rule"),
        "calibration": dict(card.calibration),
        **summarise(targets, probabilities, card.thresholds, card.label_names, multi_label=multi_label,
                    bootstrap_resamples=bootstrap_resamples),
    }
    if output is not None:
        Path(output).write_text(json.dumps(result, indent=2))
    return result
