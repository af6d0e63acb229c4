"""The model card: the artifact describes itself.

A :class:`ModelCard` is data. It is stored as JSON inside the ONNX file (``metadata_props``)
and read back by the torch-free runtime, so anyone holding the artifact can rebuild the
preprocessing, calibration and thresholds. The head size of a network comes from
``len(card.labels)``.

Example:
    >>> card = ModelCard(
    ...     name="demo_ecg", version="0.1.0", task="ecg",
    ...     labels=(Label("NORM", code="NORM", system="SCP-ECG", description="normal ECG"),),
    ...     training_data="synthetic ECGs", synthetic_training_data=True,
    ... )
    >>> ModelCard.from_json(card.to_json()) == card
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

__all__ = ["Label", "ModelCard"]

CARD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Label:
    """One output of a model.

    Attributes:
        name: Short label used in results (e.g. ``"MI"``).
        code: Code in ``system`` (e.g. SCP-ECG statement or SNOMED CT concept).
        system: Coding system (``"SCP-ECG"``, ``"SNOMED CT"``, ``"mayo-dx"``).
        description: Plain-language meaning.
    """

    name: str
    code: str | None = None
    system: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to run, trust and audit a model, stored with its weights.

    Attributes:
        name: Registry name; identical in configs, artifacts and tool output.
        version: Semantic version of the trained model.
        task: Task family (``"ecg"`` or ``"ct"``).
        labels: Outputs in network order.
        owner: Who maintains the model.
        license: Licence of the weights.
        input_spec: What the model accepts (leads, sampling rate, duration, spacing...).
        preprocessing: Parameters of the shared preprocessing implementation.
        thresholds: Decision threshold per label name, chosen on validation data.
        calibration: Calibration method and parameters (e.g. ``{"temperature": 1.3}``).
        metrics: Validation/test metrics with confidence intervals.
        training_data: Plain description of the data the model learnt from.
        synthetic_training_data: True when the model was trained on generated data only.
        intended_use: What the model is for, in plain words.
        limitations: Known limitations, one sentence each.
        extra: Anything else worth keeping (export details, hashes of stages).
    """

    name: str
    version: str
    task: str
    labels: tuple[Label, ...]
    owner: str = "mayo-dx"
    license: str = "Apache-2.0"
    input_spec: Mapping[str, Any] = field(default_factory=dict)
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    training_data: str = ""
    synthetic_training_data: bool = False
    intended_use: str = "Research use only. Not a medical device; supports, never replaces, a clinician."
    limitations: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("a model card needs at least one label")
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"label names must be unique, got {names}")
        unknown = set(self.thresholds) - set(names)
        if unknown:
            raise ValueError(f"thresholds for unknown labels: {sorted(unknown)}")
        if self.synthetic_training_data and not any("synthetic" in text.lower() for text in self.limitations):
            object.__setattr__(
                self,
                "limitations",
                (*self.limitations, "Trained on synthetic data only: not for clinical use."),
            )

    @property
    def label_names(self) -> tuple[str, ...]:
        """Label names in network output order."""
        return tuple(label.name for label in self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Return the card as plain JSON types, with a schema version."""
        data = asdict(self)
        data["labels"] = [asdict(label) for label in self.labels]
        data["limitations"] = list(self.limitations)
        data["schema_version"] = CARD_SCHEMA_VERSION
        return json.loads(json.dumps(data))

    def to_json(self) -> str:
        """Return the card as a JSON string (sorted keys, stable across runs)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelCard":
        """Build a card from :meth:`to_dict` output, refusing unknown schema versions.

        Raises:
            ValueError: If the schema version is newer than this library understands or a
                required field is missing.
        """
        schema = int(data.get("schema_version", CARD_SCHEMA_VERSION))
        if schema > CARD_SCHEMA_VERSION:
            raise ValueError(f"model card schema {schema} is newer than supported ({CARD_SCHEMA_VERSION})")
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["labels"] = tuple(Label(**label) for label in data["labels"])
        values["limitations"] = tuple(data.get("limitations", ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        """Build a card from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))
