"""Core value types, errors and the registry."""

from __future__ import annotations

import importlib
import json

import pytest

import mayo_dx
from mayo_dx.card import Label, ModelCard
from mayo_dx.errors import InputError, MayoDxError, ModelNotFound, UnitError, UnreadableFile, UnsupportedFormat
from mayo_dx.registry import get_model, list_models, register_model
from mayo_dx.results import Abstention, Diagnosis, Finding, QualityIssue


def make_card(**changes: object) -> ModelCard:
    values: dict = dict(
        name="unit_test_ecg",
        version="1.2.3",
        task="ecg",
        labels=(Label("NORM", "NORM", "SCP-ECG", "normal ECG"), Label("MI", "MI", "SCP-ECG", "myocardial infarction")),
        preprocessing={"target_fs": 100.0, "highpass_hz": 0.5},
        thresholds={"NORM": 0.4, "MI": 0.3},
        calibration={"method": "temperature", "temperature": 1.7},
        metrics={"test": {"macro_auroc": {"value": 0.9, "ci95": [0.88, 0.92]}}},
        training_data="generated PTB-XL-shaped records",
    )
    values.update(changes)
    return ModelCard(**values)  # type: ignore[arg-type]


def _isort_key(name: str) -> tuple[int, str]:
    """Constants first, then classes, then functions (ruff RUF022 / isort style)."""
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


@pytest.mark.parametrize("package", ["mayo_dx", "mayo_dx.ecg", "mayo_dx.imaging"])
def test_public_surface_is_sorted_and_complete(package: str) -> None:
    module = importlib.import_module(package)
    assert list(module.__all__) == sorted(module.__all__, key=_isort_key)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_card_round_trips_through_json() -> None:
    card = make_card()
    text = card.to_json()
    assert json.loads(text)["schema_version"] == 1
    assert ModelCard.from_json(text) == card
    assert card.label_names == ("NORM", "MI")


def test_card_refuses_inconsistent_content() -> None:
    with pytest.raises(ValueError, match="unique"):
        make_card(labels=(Label("A"), Label("A")))
    with pytest.raises(ValueError, match="unknown labels"):
        make_card(thresholds={"HYP": 0.5})
    with pytest.raises(ValueError, match="at least one label"):
        make_card(labels=())
    newer = make_card().to_dict() | {"schema_version": 99}
    with pytest.raises(ValueError, match="newer"):
        ModelCard.from_dict(newer)


def test_synthetic_card_says_so_in_plain_words() -> None:
    card = make_card(synthetic_training_data=True)
    assert any("synthetic" in text.lower() and "not for clinical use" in text.lower() for text in card.limitations)


def test_finding_decision_and_bounds() -> None:
    assert Finding("MI", probability=0.3, threshold=0.3).positive
    assert not Finding("MI", probability=0.29, threshold=0.3).positive
    with pytest.raises(ValueError):
        Finding("MI", probability=1.2, threshold=0.3)


def test_diagnosis_and_abstention_serialise_to_json() -> None:
    issue = QualityIssue(code="flat_line", message="Lead V2 is flat.", lead="V2", severity="warn", value=0.0, limit=0.02)
    diagnosis = Diagnosis(
        model="unit_test_ecg",
        model_version="1.2.3",
        findings=(Finding("NORM", 0.1, 0.4), Finding("MI", 0.8, 0.3)),
        quality=(issue,),
        measurements={"heart_rate_bpm": 72.0},
    )
    data = json.loads(json.dumps(diagnosis.to_dict()))
    assert data["kind"] == "diagnosis"
    assert data["positive_labels"] == ["MI"]
    assert data["findings"][1]["positive"] is True
    abstention = Abstention(reasons=(issue,), model="unit_test_ecg")
    assert abstention.to_dict()["summary"] == "cannot assess: Lead V2 is flat."
    with pytest.raises(ValueError):
        Abstention(reasons=())


def test_error_hierarchy() -> None:
    for error in (UnreadableFile, UnsupportedFormat, UnitError):
        assert issubclass(error, InputError)
        assert issubclass(error, MayoDxError)
    assert issubclass(InputError, ValueError)


def test_registry_registers_and_lists_by_task() -> None:
    @register_model("unit_test_net", task="unit-test", description="for tests")
    def build(labels: list[str]) -> int:
        return len(labels)

    assert get_model("unit_test_net").factory(["a", "b"]) == 2
    assert "unit_test_net" in list_models()
    assert list_models(task="unit-test") == ["unit_test_net"]
    with pytest.raises(ValueError, match="already registered"):
        register_model("unit_test_net", task="unit-test")(lambda labels: 0)
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        get_model("nope")
