"""Plain JSON pieces of tool results: provenance, quality, findings, and the summary sentences.

Everything here is built from numbers, the model card and fixed sentences. No text read from
an input file (series descriptions, comments, channel labels) is ever copied in, so an input
cannot place instructions in front of the agent, and the summary never names the patient.

Example:
    >>> from mayo_dx.card import Label, ModelCard
    >>> card = ModelCard(name="demo", version="1.0", task="ecg", labels=(Label("MI"),), training_data="PTB-XL")
    >>> provenance(card, "ab" * 32)["name"], provenance(card, None)["artifact_sha256"]
    ('demo', None)
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from mayo_dx.card import ModelCard
from mayo_dx.results import Finding, QualityIssue

__all__ = [
    "CLINICIAN_NOTE",
    "UNCERTAINTY_MARGIN",
    "finding_dict",
    "findings_sentence",
    "provenance",
    "quality_dict",
    "uncertainty_sentence",
]

#: Closing sentence of every summary.
CLINICIAN_NOTE = (
    "This is decision support for a qualified clinician, who must review the study; it does not replace "
    "a clinician's judgement and is not a diagnosis on its own."
)
#: A probability within this distance of its threshold is called borderline in summaries.
UNCERTAINTY_MARGIN = 0.1


def provenance(card: ModelCard, artifact_sha256: str | None) -> dict[str, Any]:
    """Who answered: name, version, artifact hash, training data, intended use, limitations."""
    return {
        "name": card.name,
        "version": card.version,
        "artifact_sha256": artifact_sha256,
        "training_data": card.training_data,
        "synthetic_training_data": bool(card.synthetic_training_data),
        "intended_use": card.intended_use,
        "limitations": list(card.limitations),
        "calibration": str(card.calibration.get("method")) if card.calibration.get("method") else None,
        "threshold_rule": str(card.metrics["threshold_rule"]) if card.metrics.get("threshold_rule") else None,
    }


def quality_dict(issues: Iterable[QualityIssue]) -> dict[str, Any]:
    """``{"acceptable": bool, "issues": [...]}`` from quality issues.

    Example:
        >>> quality_dict([QualityIssue(code="too_short", message="Too short.")])["acceptable"]
        False
    """
    listed = [issue.to_dict() for issue in issues]
    return {"acceptable": all(issue["severity"] != "reject" for issue in listed), "issues": listed}


def finding_dict(finding: Finding, card: ModelCard) -> dict[str, Any]:
    """A finding with its code, system and plain description (from the card when the finding lacks them).

    Example:
        >>> from mayo_dx.card import Label, ModelCard
        >>> card = ModelCard(name="d", version="1", task="ecg", labels=(Label("MI", "164865005", "SNOMED CT", "heart attack"),))
        >>> finding_dict(Finding(label="MI", probability=0.7, threshold=0.5), card)["description"]
        'heart attack'
    """
    label = next((item for item in card.labels if item.name == finding.label), None)
    return {
        "label": finding.label,
        "code": finding.code if finding.code is not None else (label.code if label else None),
        "system": finding.system if finding.system is not None else (label.system if label else None),
        "description": finding.description or (label.description if label else "") or finding.label,
        "probability": round(float(finding.probability), 4),
        "threshold": round(float(finding.threshold), 4),
        "positive": bool(finding.positive),
    }


def _named(item: dict[str, Any]) -> str:
    description = item["description"]
    return item["label"] if description == item["label"] else f"{item['label']} ({description})"


def findings_sentence(findings: Sequence[dict[str, Any]]) -> str:
    """One or two sentences naming the positive findings with probability and threshold.

    Example:
        >>> findings_sentence([{"label": "MI", "description": "MI", "probability": 0.8, "threshold": 0.5, "positive": True}])
        'Finding at or above its validated threshold: MI (calibrated probability 0.80, threshold 0.50).'
    """
    positive = [item for item in findings if item["positive"]]
    if not positive:
        return (f"None of the {len(findings)} findings the model looks for reached its validated threshold "
                f"(highest: {_named(max(findings, key=lambda item: item['probability']))} at "
                f"{max(item['probability'] for item in findings):.2f}).") if findings else "The model gave no findings."
    parts = [f"{_named(item)} (calibrated probability {item['probability']:.2f}, threshold {item['threshold']:.2f})"
             for item in positive]
    noun = "Finding" if len(parts) == 1 else "Findings"
    verb = "its" if len(parts) == 1 else "their"
    return f"{noun} at or above {verb} validated threshold: " + "; ".join(parts) + "."


def uncertainty_sentence(findings: Sequence[dict[str, Any]], synthetic: bool) -> str:
    """What the numbers do and do not mean, naming borderline findings.

    Example:
        >>> uncertainty_sentence([], True).startswith("Probabilities are calibrated")
        True
    """
    close = [item["label"] for item in findings if abs(item["probability"] - item["threshold"]) < UNCERTAINTY_MARGIN]
    text = ("Probabilities are calibrated estimates from a statistical model, not certainties; "
            "a finding can be missed or wrongly flagged.")
    if close:
        text += f" Borderline (within {UNCERTAINTY_MARGIN:g} of the threshold), so especially uncertain: {', '.join(close)}."
    if synthetic:
        text += " This model was trained on synthetic data only and is not valid for clinical use."
    return text
