"""Temperature scaling and threshold rules."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mayo_dx.calibration import TEMPERATURE_BOUNDS, apply_temperature, choose_thresholds, fit_temperature
from mayo_dx.errors import InputError
from mayo_dx.metrics import binary_report, expected_calibration_error


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def test_per_class_temperatures_are_recovered_from_synthetic_logits() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 3.0, (20_000, 3))
    targets = (rng.random(true_logits.shape) < _sigmoid(true_logits)).astype(int)
    known = np.array([0.5, 2.0, 4.0])
    fitted = fit_temperature(true_logits * known, targets)
    assert len(fitted) == 3
    np.testing.assert_allclose(fitted, known, rtol=0.08)
    before = expected_calibration_error(targets, _sigmoid(true_logits * known))
    after = expected_calibration_error(targets, apply_temperature(true_logits * known, fitted))
    assert after < 0.02 < before


def test_single_label_temperature_is_recovered() -> None:
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0.0, 2.0, (20_000, 4))
    probabilities = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    classes = (rng.random((20_000, 1)) > probabilities.cumsum(axis=1)).sum(axis=1)
    fitted = fit_temperature(true_logits * 2.5, classes, multi_label=False)
    assert len(fitted) == 1 and fitted[0] == pytest.approx(2.5, rel=0.08)
    one_hot = np.eye(4, dtype=int)[classes]
    assert fit_temperature(true_logits * 2.5, one_hot, multi_label=False) == pytest.approx(fitted)


def test_degenerate_class_keeps_temperature_one_and_bounds_hold() -> None:
    logits = np.array([[5.0, 1.0], [4.0, -1.0], [3.0, 2.0], [6.0, -2.0]])
    targets = np.array([[0, 1], [0, 0], [0, 1], [0, 0]])
    fitted = fit_temperature(logits, targets)
    assert fitted[0] == 1.0
    assert TEMPERATURE_BOUNDS[0] <= fitted[1] <= TEMPERATURE_BOUNDS[1]


def test_fit_temperature_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="NaN"):
        fit_temperature([[np.nan]], [[1]])
    with pytest.raises(InputError, match="shape"):
        fit_temperature([[0.1, 0.2]], [[1]])
    with pytest.raises(InputError, match="class indices"):
        fit_temperature([[0.1, 0.2]], [2], multi_label=False)


def test_apply_temperature_is_stable_and_shaped() -> None:
    logits = np.array([[1000.0, -1000.0, 0.0], [-745.0, 745.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probabilities = apply_temperature(logits, 1.0)
        softmax = apply_temperature(logits, [2.0], multi_label=False)
    assert np.all(np.isfinite(probabilities)) and probabilities[0, 0] == 1.0 and probabilities[0, 1] == 0.0
    np.testing.assert_allclose(softmax.sum(axis=1), 1.0)
    np.testing.assert_allclose(apply_temperature(np.array([[2.0, 2.0]]), [1.0, 2.0]), _sigmoid(np.array([[2.0, 1.0]])))
    assert apply_temperature(np.array([0.0, 1.0]), 1.0).shape == (2,)


@pytest.mark.parametrize(
    ("temperature", "multi_label"), [(0.0, True), (-1.0, True), ([1.0, 2.0], True), ([1.0, 2.0, 3.0], False)]
)
def test_apply_temperature_refuses_bad_temperatures(temperature: object, multi_label: bool) -> None:
    with pytest.raises(InputError, match="temperature"):
        apply_temperature(np.zeros((2, 3)), temperature, multi_label=multi_label)  # type: ignore[arg-type]


def test_threshold_rules_hand_computed() -> None:
    targets = [[1], [1], [0], [0]]
    probabilities = [[0.9], [0.6], [0.7], [0.1]]
    # max F1: >= 0.6 calls 0.9, 0.7, 0.6 -> TP 2, FP 1, F1 0.8 (best)
    assert choose_thresholds(targets, probabilities, ["A"]) == {"A": 0.6}
    # Youden: J(0.9) = 0.5 + 1 - 1 = 0.5 ties J(0.6) = 1 + 0.5 - 1; the higher threshold wins
    assert choose_thresholds(targets, probabilities, ["A"], rule="youden") == {"A": 0.9}


def test_threshold_rules_reach_the_brute_force_optimum() -> None:
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 2, (400, 3))
    probabilities = np.round(_sigmoid(targets * 1.5 + rng.normal(0, 1, (400, 3))), 2)  # rounded: ties
    names = ["A", "B", "C"]
    for rule, score in (
        ("max_f1", lambda r: r["f1"]),
        ("youden", lambda r: r["sensitivity"] + r["specificity"] - 1),
    ):
        chosen = choose_thresholds(targets, probabilities, names, rule=rule)  # type: ignore[arg-type]
        for column, name in enumerate(names):
            assert 0.0 <= chosen[name] <= 1.0
            candidates = np.unique(probabilities[:, column])
            best = max(score(binary_report(targets[:, column], probabilities[:, column], t)) for t in candidates)
            achieved = score(binary_report(targets[:, column], probabilities[:, column], chosen[name]))
            assert achieved == pytest.approx(best, abs=1e-12), (rule, name)


def test_thresholds_fall_back_when_a_class_lacks_an_outcome_and_refuse_bad_input() -> None:
    targets = np.array([[0, 1], [0, 1], [0, 1]])
    probabilities = np.array([[0.2, 0.3], [0.4, 0.8], [0.1, 0.9]])
    assert choose_thresholds(targets, probabilities, ["none", "all"]) == {"none": 0.5, "all": 0.3}
    assert choose_thresholds(targets, probabilities, ["none", "all"], rule="youden") == {"none": 0.5, "all": 0.5}
    with pytest.raises(InputError, match="unknown threshold rule"):
        choose_thresholds(targets, probabilities, ["a", "b"], rule="accuracy")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        choose_thresholds(targets, probabilities * 2, ["a", "b"])
    with pytest.raises(InputError, match="distinct"):
        choose_thresholds(targets, probabilities, ["a"])
