"""Diagnostic metrics in numpy/scipy: AUROC, bootstrap intervals, per-class reports, ECE.

Runtime layer: no torch. The definitions follow scikit-learn's so that published figures
computed with it are reproduced exactly:

* :func:`roc_auc` is the area under the ROC curve with tied scores counted as one half, which
  equals scikit-learn's trapezoidal ``roc_auc_score`` (computed here from average ranks, the
  Mann-Whitney form).
* :func:`macro_auroc` is the unweighted mean of per-class AUROC, what
  ``roc_auc_score(y, p, average="macro")`` returns (the PTB-XL benchmark's ``macro_auc``).
  scikit-learn refuses a class without positives or without negatives; here such a class is
  left out of the mean (and :func:`per_class_auroc` reports it as ``nan``).
* Precision, sensitivity (recall), specificity and F1 count a prediction as positive when the
  probability is ``>= threshold``. A ratio whose denominator is zero is reported as ``None``
  (undefined) rather than a made-up 0.

Example:
    >>> import numpy as np
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from mayo_dx.errors import InputError

__all__ = [
    "binary_report",
    "bootstrap_ci",
    "classification_report",
    "expected_calibration_error",
    "macro_auroc",
    "per_class_auroc",
    "roc_auc",
]


def _binary_targets(targets: Any, name: str = "targets") -> np.ndarray:
    array = np.asarray(targets)
    if array.size == 0:
        raise InputError(f"{name} is empty")
    if array.dtype == bool:
        return array.astype(np.int8)
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{name} must be numeric 0/1, got dtype {array.dtype}")
    valid = (array == 0) | (array == 1)
    if not np.all(valid):
        raise InputError(f"{name} must hold only 0 and 1")
    return array.astype(np.int8)


def _finite_scores(scores: Any, shape: tuple[int, ...], name: str = "scores") -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.shape != shape:
        raise InputError(f"{name} shape {array.shape} does not match targets shape {shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contain NaN or infinite values")
    return array


def _probabilities(probabilities: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = _finite_scores(probabilities, shape, "probabilities")
    if array.min() < 0.0 or array.max() > 1.0:
        raise InputError("probabilities must lie in [0, 1]")
    return array


def roc_auc(targets: Any, scores: Any) -> float:
    """Area under the ROC curve of one binary label (ties count one half).

    Args:
        targets: 0/1 labels, shape ``[n]``.
        scores: Real-valued scores (probabilities or logits), shape ``[n]``; higher means
            more likely positive.

    Returns:
        The AUROC in ``[0, 1]``, equal to scikit-learn's ``roc_auc_score``.

    Raises:
        InputError: If the shapes differ, the targets are not 0/1, a score is not finite, or
            only one class is present (AUROC is undefined then).

    Example:
        >>> roc_auc([1, 0, 1, 0], [0.9, 0.9, 0.8, 0.1])
        0.625
    """
    labels = _binary_targets(targets)
    if labels.ndim != 1:
        raise InputError(f"roc_auc takes one label column, got targets of shape {labels.shape}")
    values = _finite_scores(scores, labels.shape)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise InputError("AUROC is undefined when only one class is present in targets")
    ranks = rankdata(values, method="average")
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def per_class_auroc(targets: Any, scores: Any) -> np.ndarray:
    """AUROC of every column; ``nan`` where a column lacks positives or negatives.

    Example:
        >>> per_class_auroc([[0, 1], [1, 1]], [[0.2, 0.3], [0.7, 0.1]]).tolist()
        [1.0, nan]
    """
    labels = _binary_targets(targets)
    if labels.ndim != 2:
        raise InputError(f"targets must be [samples, classes], got shape {labels.shape}")
    values = _finite_scores(scores, labels.shape)
    result = np.full(labels.shape[1], np.nan)
    for column in range(labels.shape[1]):
        positives = int(labels[:, column].sum())
        if 0 < positives < labels.shape[0]:
            result[column] = roc_auc(labels[:, column], values[:, column])
    return result


def macro_auroc(targets: Any, scores: Any) -> float:
    """Unweighted mean AUROC over the classes that have both positives and negatives.

    Args:
        targets: 0/1 matrix ``[samples, classes]`` (multi-label).
        scores: Scores of the same shape.

    Raises:
        InputError: On bad shapes or values, or when no class has both outcomes.

    Example:
        >>> macro_auroc([[1, 0], [0, 1], [1, 1]], [[0.9, 0.5], [0.1, 0.8], [0.6, 0.3]])
        0.75
    """
    values = per_class_auroc(targets, scores)
    if np.all(np.isnan(values)):
        raise InputError("macro AUROC is undefined: no class has both positives and negatives")
    return float(np.nanmean(values))


def _class_mask(labels: np.ndarray) -> np.ndarray:
    """Columns (or the single column) holding both outcomes."""
    column_sums = labels.sum(axis=0)
    return (column_sums > 0) & (column_sums < labels.shape[0])


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    targets: Any,
    scores: Any,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric(targets, scores)``.

    Samples (rows) are drawn with replacement. A resample in which a class that has both
    outcomes in the full data loses its positives or its negatives is drawn again (the PTB-XL
    benchmark does the same), so every resample measures the same set of classes.

    Args:
        metric: Function of ``(targets, scores)`` returning a float, e.g. :func:`macro_auroc`.
        targets: 0/1 labels ``[n]`` or ``[n, classes]``.
        scores: Scores of the same shape.
        n_resamples: Number of accepted resamples.
        seed: Seed of the numpy generator (results are deterministic).
        level: Coverage of the interval, e.g. ``0.95``.

    Returns:
        ``(lower, upper)`` percentiles of the resampled metric.

    Raises:
        InputError: On bad arguments, or when valid resamples cannot be drawn (a class with a
            single positive among very many rows could make this happen).

    Example:
        >>> rng = np.random.default_rng(1)
        >>> y = rng.integers(0, 2, 200)
        >>> scores = y + rng.normal(0, 1, 200)
        >>> lower, upper = bootstrap_ci(roc_auc, y, scores, n_resamples=200)
        >>> bool(lower < roc_auc(y, scores) < upper)
        True
    """
    if not 0.0 < level < 1.0:
        raise InputError(f"level must lie in (0, 1), got {level}")
    if n_resamples < 2:
        raise InputError(f"n_resamples must be at least 2, got {n_resamples}")
    labels = _binary_targets(targets)
    values = _finite_scores(scores, labels.shape)
    size = labels.shape[0]
    required = _class_mask(labels)
    if not np.any(required):
        raise InputError("bootstrap needs at least one class with both positives and negatives")
    generator = np.random.default_rng(seed)
    statistics: list[float] = []
    attempts = 0
    max_attempts = 20 * n_resamples
    while len(statistics) < n_resamples:
        attempts += 1
        if attempts > max_attempts:
            raise InputError(
                f"only {len(statistics)} of {n_resamples} bootstrap resamples kept both outcomes of every class "
                f"after {max_attempts} draws; the data have too few positives or negatives"
            )
        rows = generator.integers(0, size, size)
        sample = labels[rows]
        if not np.all(_class_mask(sample)[required]):
            continue
        statistics.append(float(metric(sample, values[rows])))
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(np.asarray(statistics), [tail, 1.0 - tail])
    return float(lower), float(upper)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def binary_report(targets: Any, probabilities: Any, threshold: float) -> dict[str, Any]:
    """Counts and rates of one binary label at a decision threshold.

    A sample is called positive when ``probability >= threshold``.

    Returns:
        ``{"auroc", "f1", "sensitivity", "specificity", "precision", "support",
        "true_positives", "false_positives", "true_negatives", "false_negatives",
        "threshold"}``; ``support`` is the number of positives; an undefined value
        (a zero denominator, or AUROC with one class present) is ``None``.

    Example:
        >>> report = binary_report([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], threshold=0.5)
        >>> report["sensitivity"], report["specificity"], report["f1"]
        (0.5, 0.5, 0.5)
    """
    labels = _binary_targets(targets)
    if labels.ndim != 1:
        raise InputError(f"binary_report takes one label column, got shape {labels.shape}")
    values = _probabilities(probabilities, labels.shape)
    if not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
        raise InputError(f"threshold must be a number in [0, 1], got {threshold!r}")
    predicted = values >= threshold
    actual = labels == 1
    true_positives = int(np.sum(predicted & actual))
    false_positives = int(np.sum(predicted & ~actual))
    false_negatives = int(np.sum(~predicted & actual))
    true_negatives = int(np.sum(~predicted & ~actual))
    positives = true_positives + false_negatives
    auroc = roc_auc(labels, values) if 0 < positives < labels.size else None
    return {
        "auroc": auroc,
        "f1": _ratio(2 * true_positives, 2 * true_positives + false_positives + false_negatives),
        "sensitivity": _ratio(true_positives, positives),
        "specificity": _ratio(true_negatives, true_negatives + false_positives),
        "precision": _ratio(true_positives, true_positives + false_positives),
        "support": positives,
        "true_positives": true_positives,
        "false_positives": false_positives,
        "true_negatives": true_negatives,
        "false_negatives": false_negatives,
        "threshold": float(threshold),
    }


_MACRO_KEYS = ("auroc", "f1", "sensitivity", "specificity", "precision")


def classification_report(
    targets: Any,
    probabilities: Any,
    thresholds: Mapping[str, float] | Sequence[float],
    label_names: Sequence[str],
) -> dict[str, Any]:
    """Per-class :func:`binary_report` of a multi-label problem, plus macro averages.

    Args:
        targets: 0/1 matrix ``[samples, classes]``.
        probabilities: Calibrated probabilities of the same shape.
        thresholds: One threshold per class, as ``{label name: threshold}`` or a sequence in
            ``label_names`` order.
        label_names: Class names in column order.

    Returns:
        ``{"per_class": {name: report}, "macro": {metric: mean over classes where defined,
        or None}, "samples": n}``.

    Example:
        >>> report = classification_report([[1, 0], [0, 1]], [[0.8, 0.3], [0.2, 0.6]], [0.5, 0.5], ["A", "B"])
        >>> report["macro"]["f1"], report["per_class"]["B"]["support"]
        (1.0, 1)
    """
    labels = _binary_targets(targets)
    if labels.ndim != 2:
        raise InputError(f"targets must be [samples, classes], got shape {labels.shape}")
    values = _probabilities(probabilities, labels.shape)
    names = list(label_names)
    if len(names) != labels.shape[1] or len(set(names)) != len(names):
        raise InputError(f"label_names must be {labels.shape[1]} distinct names, got {names}")
    if isinstance(thresholds, Mapping):
        missing = [name for name in names if name not in thresholds]
        if missing:
            raise InputError(f"thresholds lack labels {missing}")
        threshold_list = [thresholds[name] for name in names]
    else:
        threshold_list = list(thresholds)
        if len(threshold_list) != len(names):
            raise InputError(f"expected {len(names)} thresholds, got {len(threshold_list)}")
    per_class = {
        name: binary_report(labels[:, column], values[:, column], float(threshold_list[column]))
        for column, name in enumerate(names)
    }
    macro: dict[str, float | None] = {}
    for key in _MACRO_KEYS:
        defined = [report[key] for report in per_class.values() if report[key] is not None]
        macro[key] = float(np.mean(defined)) if defined else None
    return {"per_class": per_class, "macro": macro, "samples": int(labels.shape[0])}


def expected_calibration_error(targets: Any, probabilities: Any, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width probability bins.

    ``ECE = sum_b (n_b / N) * |mean confidence in b - observed frequency in b|``.

    * Binary or multi-label (``targets`` has the shape of ``probabilities``): every
      (sample, class) probability is one prediction, compared with its 0/1 outcome.
    * Single-label (``targets`` are class indices ``[n]``, ``probabilities`` are ``[n, k]``
      rows of a softmax): the top-label confidence is compared with top-label accuracy.

    Bin ``b`` holds probabilities in ``[b / n_bins, (b + 1) / n_bins)``; 1.0 falls in the last.

    Example:
        >>> expected_calibration_error([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], n_bins=2)
        0.25
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer, got {n_bins!r}")
    target_array = np.asarray(targets)
    probability_array = np.asarray(probabilities, dtype=np.float64)
    if target_array.ndim == 1 and probability_array.ndim == 2:
        if probability_array.shape[0] != target_array.shape[0]:
            raise InputError("targets and probabilities disagree on the number of samples")
        values = _probabilities(probability_array, probability_array.shape)
        classes = np.asarray(target_array)
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= values.shape[1]:
            raise InputError("single-label targets must be class indices in [0, classes)")
        confidence = values.max(axis=1)
        outcome = (values.argmax(axis=1) == classes).astype(np.float64)
    else:
        outcome = _binary_targets(target_array).astype(np.float64).ravel()
        confidence = _probabilities(probability_array, target_array.shape).ravel()
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    confidence_sums = np.bincount(bins, weights=confidence, minlength=n_bins)
    outcome_sums = np.bincount(bins, weights=outcome, minlength=n_bins)
    occupied = counts > 0
    gaps = np.abs(confidence_sums[occupied] - outcome_sums[occupied])  # n_b * |mean gap|
    return float(gaps.sum() / confidence.size)
