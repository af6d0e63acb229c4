"""Temperature scaling and decision thresholds, fitted on validation data (numpy/scipy).

Runtime layer: no torch. The training layer fits these on the validation fold and writes them
into the model card (``card.calibration`` and ``card.thresholds``); the runtime applies them
to the network's logits with :func:`apply_temperature`.

* Multi-label (sigmoid) models get one temperature per class, each minimising the binary
  cross-entropy of ``sigmoid(logit / T_k)`` on that class.
* Single-label (softmax) models get one temperature minimising the negative log-likelihood of
  ``softmax(logits / T)``.
* Temperatures are searched on ``log T`` in ``[log 0.05, log 20]`` with scipy's bounded
  scalar minimiser, so every returned value is positive and finite.

Threshold rules of :func:`choose_thresholds` (a sample is positive when ``p >= threshold``):

* ``"max_f1"``: the threshold maximising F1 on the given data.
* ``"youden"``: the threshold maximising Youden's J = sensitivity + specificity - 1.

Candidates are the distinct observed probabilities; of equally good candidates the highest
is taken (fewest positive calls). A class with no positives, or (for Youden) no negatives,
has no informative threshold and gets ``0.5``.

Example:
    >>> import numpy as np
    >>> apply_temperature(np.array([[2.0, -2.0]]), [2.0, 1.0]).round(3).tolist()
    [[0.731, 0.119]]
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

from mayo_dx.errors import InputError

__all__ = [
    "TEMPERATURE_BOUNDS",
    "THRESHOLD_RULES",
    "apply_temperature",
    "choose_thresholds",
    "fit_temperature",
]

TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)
"""Search interval of the temperature (inclusive)."""

THRESHOLD_RULES: tuple[str, ...] = ("max_f1", "youden")
"""Rules :func:`choose_thresholds` accepts."""

_FALLBACK_THRESHOLD = 0.5


def _finite_matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{name} must be a non-empty [samples, classes] array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contain NaN or infinite values")
    return array


def _binary_matrix(targets: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(targets)
    if array.shape != shape:
        raise InputError(f"targets shape {array.shape} does not match {shape}")
    if not np.all((array == 0) | (array == 1)):
        raise InputError("multi-label targets must hold only 0 and 1")
    return array.astype(np.float64)


def _class_indices(targets: Any, samples: int, classes: int) -> np.ndarray:
    array = np.asarray(targets)
    if array.ndim == 2 and array.shape == (samples, classes):
        if not np.all((array == 0) | (array == 1)) or not np.all(array.sum(axis=1) == 1):
            raise InputError("one-hot targets must hold exactly one 1 per row")
        return array.argmax(axis=1)
    if array.shape != (samples,) or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"single-label targets must be {samples} class indices or a one-hot matrix")
    if array.min() < 0 or array.max() >= classes:
        raise InputError(f"class indices must lie in [0, {classes})")
    return array


def _minimise_log_temperature(loss: Any) -> float:
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    result = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    return float(math.exp(result.x))


def fit_temperature(logits: Any, targets: Any, *, multi_label: bool = True) -> list[float]:
    """Fit temperature scaling on held-out logits.

    Args:
        logits: Network outputs ``[samples, classes]`` (before sigmoid/softmax).
        targets: Multi-label: 0/1 matrix of the same shape. Single-label: class indices
            ``[samples]`` or a one-hot matrix.
        multi_label: ``True`` for per-class sigmoid temperatures, ``False`` for one softmax
            temperature.

    Returns:
        Multi-label: one temperature per class (``1.0`` for a class whose targets hold a
        single outcome: its calibration cannot be estimated). Single-label: ``[T]``.

    Raises:
        InputError: On bad shapes or values.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> true_logits = rng.normal(0, 3, (4000, 1))
        >>> targets = (rng.random((4000, 1)) < 1 / (1 + np.exp(-true_logits))).astype(int)
        >>> round(fit_temperature(true_logits * 2.0, targets)[0], 1)
        2.0
    """
    values = _finite_matrix(logits, "logits")
    if multi_label:
        labels = _binary_matrix(targets, values.shape)
        temperatures = []
        for column in range(values.shape[1]):
            column_logits, column_labels = values[:, column], labels[:, column]
            if column_labels.min() == column_labels.max():
                temperatures.append(1.0)
                continue

            def binary_cross_entropy(log_temperature: float) -> float:
                scaled = column_logits / math.exp(log_temperature)
                return float(np.mean(np.logaddexp(0.0, scaled) - column_labels * scaled))

            temperatures.append(_minimise_log_temperature(binary_cross_entropy))
        return temperatures
    classes = _class_indices(targets, values.shape[0], values.shape[1])
    rows = np.arange(values.shape[0])

    def negative_log_likelihood(log_temperature: float) -> float:
        return float(-np.mean(log_softmax(values / math.exp(log_temperature), axis=1)[rows, classes]))

    return [_minimise_log_temperature(negative_log_likelihood)]


def apply_temperature(logits: Any, temperature: float | Sequence[float], *, multi_label: bool = True) -> np.ndarray:
    """Calibrated probabilities: ``sigmoid(logits / T_k)`` or ``softmax(logits / T)``.

    Args:
        logits: ``[samples, classes]`` (or ``[classes]`` for one sample).
        temperature: One positive temperature, or one per class (multi-label only).
        multi_label: Sigmoid per class when ``True``; softmax over classes when ``False``.

    Returns:
        Probabilities with the shape of ``logits`` (float64).

    Example:
        >>> apply_temperature(np.array([[1.0, 1.0, 0.0]]), [1.0], multi_label=False).round(3).tolist()
        [[0.422, 0.422, 0.155]]
    """
    values = np.asarray(logits, dtype=np.float64)
    if values.ndim not in (1, 2) or values.size == 0:
        raise InputError(f"logits must be [classes] or [samples, classes], got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InputError("logits contain NaN or infinite values")
    temperatures = np.atleast_1d(np.asarray(temperature, dtype=np.float64))
    if temperatures.ndim != 1 or not np.all(np.isfinite(temperatures)) or np.any(temperatures <= 0):
        raise InputError(f"temperatures must be positive finite numbers, got {temperature!r}")
    if temperatures.size not in (1, values.shape[-1]) or (not multi_label and temperatures.size != 1):
        raise InputError(f"expected 1 temperature or {values.shape[-1]} (multi-label), got {temperatures.size}")
    scaled = values / temperatures
    return expit(scaled) if multi_label else softmax(scaled, axis=-1)


def _best_threshold(labels: np.ndarray, probabilities: np.ndarray, rule: str) -> float:
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or (rule == "youden" and negatives == 0):
        return _FALLBACK_THRESHOLD
    order = np.argsort(-probabilities, kind="stable")
    sorted_probabilities = probabilities[order]
    sorted_labels = labels[order]
    # The last index of each run of equal probabilities: calling every sample >= that value.
    run_ends = np.flatnonzero(np.diff(sorted_probabilities, append=-np.inf) != 0)
    true_positives = np.cumsum(sorted_labels)[run_ends]
    false_positives = (run_ends + 1) - true_positives
    if rule == "max_f1":
        scores = 2 * true_positives / (positives + run_ends + 1)  # 2TP / (2TP + FP + FN)
    else:
        scores = true_positives / positives - false_positives / negatives
    best = int(np.argmax(scores))  # first maximum = highest threshold
    return float(sorted_probabilities[run_ends[best]])


def choose_thresholds(
    targets: Any,
    probabilities: Any,
    label_names: Sequence[str],
    *,
    rule: Literal["max_f1", "youden"] = "max_f1",
) -> dict[str, float]:
    """Per-class decision thresholds on calibrated probabilities (see the module notes).

    Args:
        targets: 0/1 matrix ``[samples, classes]`` (validation fold).
        probabilities: Calibrated probabilities of the same shape, in ``[0, 1]``.
        label_names: Class names in column order.
        rule: ``"max_f1"`` or ``"youden"``.

    Returns:
        ``{label name: threshold in [0, 1]}``; a sample is positive when ``p >= threshold``.

    Example:
        >>> choose_thresholds([[1], [1], [0], [0]], [[0.9], [0.6], [0.7], [0.1]], ["AF"])
        {'AF': 0.6}
    """
    if rule not in THRESHOLD_RULES:
        raise InputError(f"unknown threshold rule {rule!r}; choose one of {THRESHOLD_RULES}")
    values = _finite_matrix(probabilities, "probabilities")
    if values.min() < 0.0 or values.max() > 1.0:
        raise InputError("probabilities must lie in [0, 1]")
    labels = _binary_matrix(targets, values.shape)
    names = list(label_names)
    if len(names) != values.shape[1] or len(set(names)) != len(names):
        raise InputError(f"label_names must be {values.shape[1]} distinct names, got {names}")
    return {name: _best_threshold(labels[:, column], values[:, column], rule) for column, name in enumerate(names)}
