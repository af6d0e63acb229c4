"""Metrics against hand-computed cases and brute-force definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mayo_dx.errors import InputError
from mayo_dx.metrics import (
    binary_report,
    bootstrap_ci,
    classification_report,
    expected_calibration_error,
    macro_auroc,
    per_class_auroc,
    roc_auc,
)


def pairwise_auroc(targets: np.ndarray, scores: np.ndarray) -> float:
    """AUROC by its definition: P(score of a positive > score of a negative), ties one half."""
    positives, negatives = scores[targets == 1], scores[targets == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_roc_auc_hand_computed_cases() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)  # scikit-learn's doc example
    assert roc_auc([1, 0, 1, 0], [0.9, 0.9, 0.8, 0.1]) == pytest.approx(0.625)  # one tied pair counts 1/2
    assert roc_auc([0, 1], [0.2, 0.7]) == 1.0
    assert roc_auc([0, 1], [0.7, 0.2]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc(np.array([True, False]), [3.0, -2.0]) == 1.0


def test_roc_auc_equals_the_pairwise_definition_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        targets = rng.integers(0, 2, 60)
        targets[:2] = [0, 1]
        scores = rng.integers(0, 6, 60).astype(float)  # heavy ties
        assert roc_auc(targets, scores) == pytest.approx(pairwise_auroc(targets, scores), abs=1e-12)


def test_roc_auc_is_invariant_to_monotone_transforms() -> None:
    rng = np.random.default_rng(4)
    targets = rng.integers(0, 2, 300)
    logits = rng.normal(size=300) + targets
    assert roc_auc(targets, logits) == pytest.approx(roc_auc(targets, 1 / (1 + np.exp(-logits))), abs=1e-12)


@pytest.mark.parametrize(
    ("targets", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([0, 1], [0.1, 0.2, 0.3], "shape"),
        ([], [], "empty"),
    ],
)
def test_roc_auc_refuses_bad_input(targets: list, scores: list, message: str) -> None:
    with pytest.raises(InputError, match=message):
        roc_auc(targets, scores)


def test_macro_auroc_is_the_mean_over_classes_with_both_outcomes() -> None:
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.8, 0.2], [0.6, 0.3, 0.3], [0.2, 0.6, 0.4]])
    per_class = per_class_auroc(targets, scores)
    assert per_class[0] == 1.0 and per_class[1] == pytest.approx(0.5) and np.isnan(per_class[2])
    assert macro_auroc(targets, scores) == pytest.approx(0.75)
    with pytest.raises(InputError, match="no class"):
        macro_auroc(np.zeros((3, 2), dtype=int), np.zeros((3, 2)))
    with pytest.raises(InputError, match="samples, classes"):
        macro_auroc([0, 1], [0.1, 0.2])


def test_bootstrap_ci_is_deterministic_and_brackets_the_point_estimate() -> None:
    rng = np.random.default_rng(5)
    targets = rng.integers(0, 2, (300, 3))
    scores = targets + rng.normal(0, 1.2, (300, 3))
    point = macro_auroc(targets, scores)
    lower, upper = bootstrap_ci(macro_auroc, targets, scores, n_resamples=300, seed=1)
    assert lower < point < upper
    assert (lower, upper) == bootstrap_ci(macro_auroc, targets, scores, n_resamples=300, seed=1)
    narrow = bootstrap_ci(macro_auroc, targets, scores, n_resamples=300, seed=1, level=0.5)
    assert lower < narrow[0] < narrow[1] < upper
    assert 0.02 < upper - lower < 0.2  # about +-2 standard errors of an AUROC on 300 samples


def test_bootstrap_ci_redraws_resamples_that_lose_a_class() -> None:
    targets = np.zeros(20, dtype=int)
    targets[0] = 1  # a single positive: many plain resamples would lack it
    scores = np.linspace(0, 1, 20)[::-1]
    seen: list[int] = []

    def recording_auroc(sample_targets: np.ndarray, sample_scores: np.ndarray) -> float:
        seen.append(int(sample_targets.sum()))
        return roc_auc(sample_targets, sample_scores)  # would raise on a single-class resample

    assert bootstrap_ci(recording_auroc, targets, scores, n_resamples=50) == (1.0, 1.0)
    assert len(seen) == 50 and min(seen) >= 1


def test_bootstrap_ci_refuses_bad_arguments() -> None:
    with pytest.raises(InputError, match="level"):
        bootstrap_ci(roc_auc, [0, 1], [0.1, 0.2], level=1.5)
    with pytest.raises(InputError, match="both positives and negatives"):
        bootstrap_ci(roc_auc, [1, 1], [0.1, 0.2])


def test_binary_report_hand_computed() -> None:
    report = binary_report([1, 1, 1, 0, 0, 0, 0], [0.9, 0.5, 0.2, 0.7, 0.3, 0.1, 0.5], threshold=0.5)
    # called positive (p >= 0.5): 0.9 (TP), 0.5 (TP), 0.7 (FP), 0.5 (FP); missed: 0.2 (FN)
    assert (report["true_positives"], report["false_positives"]) == (2, 2)
    assert (report["false_negatives"], report["true_negatives"]) == (1, 2)
    assert report["sensitivity"] == pytest.approx(2 / 3)
    assert report["specificity"] == pytest.approx(0.5)
    assert report["precision"] == pytest.approx(0.5)
    assert report["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    assert report["support"] == 3
    assert report["auroc"] == pytest.approx(pairwise_auroc(np.array([1, 1, 1, 0, 0, 0, 0]),
                                                           np.array([0.9, 0.5, 0.2, 0.7, 0.3, 0.1, 0.5])))


def test_binary_report_marks_undefined_values_none() -> None:
    report = binary_report([0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5)
    assert report["sensitivity"] is None and report["precision"] is None and report["f1"] is None
    assert report["auroc"] is None and report["specificity"] == 1.0
    with pytest.raises(InputError, match="threshold"):
        binary_report([0, 1], [0.1, 0.2], threshold=1.5)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        binary_report([0, 1], [0.1, 1.2], threshold=0.5)


def test_classification_report_per_class_and_macro() -> None:
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probabilities = np.array([[0.8, 0.2], [0.4, 0.9], [0.6, 0.7], [0.1, 0.6]])
    report = classification_report(targets, probabilities, {"B": 0.65, "A": 0.5}, ["A", "B"])
    a, b = report["per_class"]["A"], report["per_class"]["B"]
    assert (a["sensitivity"], a["specificity"]) == (0.5, 0.5)
    assert (b["sensitivity"], b["specificity"]) == (1.0, 1.0)
    assert report["macro"]["f1"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["macro"]["auroc"] == pytest.approx((0.75 + 1.0) / 2)
    assert report["samples"] == 4
    assert classification_report(targets, probabilities, [0.5, 0.65], ["A", "B"]) == report
    with pytest.raises(InputError, match="lack"):
        classification_report(targets, probabilities, {"A": 0.5}, ["A", "B"])
    with pytest.raises(InputError, match="distinct"):
        classification_report(targets, probabilities, [0.5, 0.5], ["A", "A"])


def test_expected_calibration_error_hand_computed() -> None:
    assert expected_calibration_error([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], n_bins=2) == pytest.approx(0.25)
    # top-label (single-label) form: confidence 0.8 correct, 0.6 wrong -> (0.2 + 0.6) / 2
    assert expected_calibration_error(np.array([0, 1]), [[0.8, 0.2], [0.6, 0.4]], n_bins=10) == pytest.approx(0.4)
    assert expected_calibration_error([[1, 0]], [[1.0, 0.0]]) == 0.0


def test_expected_calibration_error_small_when_calibrated_large_when_not() -> None:
    rng = np.random.default_rng(6)
    probabilities = rng.random((50_000, 2))
    outcomes = (rng.random((50_000, 2)) < probabilities).astype(int)
    assert expected_calibration_error(outcomes, probabilities) < 0.01
    overconfident = np.clip(np.where(probabilities > 0.5, probabilities + 0.3, probabilities - 0.3), 0, 1)
    assert expected_calibration_error(outcomes, overconfident) > 0.15
    with pytest.raises(InputError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.4], n_bins=0)
