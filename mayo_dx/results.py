"""Typed results: what every prediction returns, in notebooks, pipelines and LLM tools alike.

A :class:`Diagnosis` holds calibrated findings with their thresholds and the model that made
them. When the input fails its quality checks the predictor returns an :class:`Abstention`
with the reasons instead of a number. Both serialise with ``to_dict()`` to plain JSON types.

Example:
    >>> finding = Finding(label="MI", probability=0.81, threshold=0.42)
    >>> finding.positive
    True
    >>> Diagnosis(model="demo", model_version="0.1", findings=(finding,)).to_dict()["findings"][0]["label"]
    'MI'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Abstention", "Diagnosis", "Finding", "QualityIssue"]

Severity = Literal["reject", "warn"]


@dataclass(frozen=True)
class QualityIssue:
    """One reason an input is doubtful or unusable.

    Attributes:
        code: Stable machine name (e.g. ``"flat_line"``, ``"missing_lead"``).
        message: One human sentence, free of patient identifiers.
        lead: The ECG lead concerned, if any.
        severity: ``"reject"`` makes a predictor abstain; ``"warn"`` is reported only.
        value: The measured quantity behind the decision, if any.
        limit: The threshold it was compared with, if any.
    """

    code: str
    message: str
    lead: str | None = None
    severity: Severity = "reject"
    value: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the issue as plain JSON types."""
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One calibrated finding.

    Attributes:
        label: The card's label name (e.g. ``"MI"``).
        probability: Calibrated probability in [0, 1].
        threshold: Decision threshold chosen on validation data.
        code: Code of the label in ``system`` (e.g. an SCP-ECG or SNOMED CT code).
        system: Coding system of ``code``.
        description: Plain-language meaning of the label.
    """

    label: str
    probability: float
    threshold: float
    code: str | None = None
    system: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must lie in [0, 1], got {self.probability}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")

    @property
    def positive(self) -> bool:
        """Whether the probability reaches the threshold."""
        return self.probability >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as plain JSON types, with the decision included."""
        return {**asdict(self), "positive": self.positive}


@dataclass(frozen=True)
class Diagnosis:
    """A model's answer for one input.

    Attributes:
        model: Registry name of the model.
        model_version: Version from the model card.
        findings: One :class:`Finding` per card label.
        quality: Non-blocking quality issues (warnings) seen on the input.
        artifact_sha256: Hash of the artifact that produced the answer, when known.
        measurements: Extra numbers (heart rate, volumes) keyed by name.
        lesions: Per-lesion details as JSON types (CT: number, volume_ml,
            longest_axial_diameter_mm, location, ...), largest first; ``None`` when the model
            does not report lesions. Serialised only when set.
    """

    model: str
    model_version: str
    findings: tuple[Finding, ...] = ()
    quality: tuple[QualityIssue, ...] = ()
    artifact_sha256: str | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    lesions: tuple[dict[str, Any], ...] | None = None

    kind: Literal["diagnosis"] = "diagnosis"

    @property
    def positive_labels(self) -> tuple[str, ...]:
        """Labels whose probability reaches their threshold."""
        return tuple(finding.label for finding in self.findings if finding.positive)

    def to_dict(self) -> dict[str, Any]:
        """Return the diagnosis as plain JSON types."""
        data = {
            "kind": self.kind,
            "model": self.model,
            "model_version": self.model_version,
            "artifact_sha256": self.artifact_sha256,
            "findings": [finding.to_dict() for finding in self.findings],
            "positive_labels": list(self.positive_labels),
            "quality": [issue.to_dict() for issue in self.quality],
            "measurements": dict(self.measurements),
        }
        if self.lesions is not None:
            data["lesions"] = [dict(lesion) for lesion in self.lesions]
        return data


@dataclass(frozen=True)
class Abstention:
    """The model declines to answer: the input cannot be assessed, and here is why.

    Attributes:
        reasons: The blocking quality issues (at least one).
        model: Registry name of the model that abstained, when known.
        model_version: Version from its card, when known.
    """

    reasons: tuple[QualityIssue, ...]
    model: str | None = None
    model_version: str | None = None

    kind: Literal["abstention"] = "abstention"

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("an Abstention needs at least one reason")

    @property
    def summary(self) -> str:
        """One line: "cannot assess: <reasons>"."""
        return "cannot assess: " + "; ".join(reason.message for reason in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """Return the abstention as plain JSON types."""
        return {
            "kind": self.kind,
            "model": self.model,
            "model_version": self.model_version,
            "summary": self.summary,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }
