"""JSON schemas of the LLM tools' inputs and outputs (JSON Schema 2020-12, plain dicts).

Every output is an object with a ``status``: ``"assessed"`` (a model answered),
``"abstained"`` (the input was read but fails the quality checks the model needs: reasons
given, no probability), ``"cannot_assess"`` (bad input or a refused request: ``reason`` says
what to fix; MCP marks it ``isError``), or ``"ok"`` for the catalogue and rendering tools.
Schemas are shared by the MCP server (``inputSchema``/``outputSchema``), the OpenAI and
Anthropic shapes (input only) and the tests, which validate every result against them.

Example:
    >>> ECG_INPUT["required"]
    ['path']
    >>> sorted(CANNOT_ASSESS["properties"])
    ['error_type', 'reason', 'status']
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANALYZE_CT_OUTPUT",
    "ANALYZE_ECG_OUTPUT",
    "CANNOT_ASSESS",
    "CT_INPUT",
    "DESCRIBE_MODEL_INPUT",
    "DESCRIBE_MODEL_OUTPUT",
    "ECG_INPUT",
    "LIST_MODELS_INPUT",
    "LIST_MODELS_OUTPUT",
    "RENDER_CT_INPUT",
    "RENDER_ECG_INPUT",
    "RENDER_OUTPUT",
    "with_cannot_assess",
]

Schema = dict[str, Any]

_NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
_STRING_OR_NULL: Schema = {"type": ["string", "null"]}

_PATH: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 1024,
    "description": "Path relative to the server's data root (e.g. 'ecg/patient_0001.hea'). No URLs, no '..'.",
}
_MODEL: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "description": "Registry name of the model (see list_models). Omit to use the default model for this task.",
}

CANNOT_ASSESS: Schema = {
    "type": "object",
    "description": "The request could not be served; 'reason' says what to change.",
    "properties": {
        "status": {"const": "cannot_assess"},
        "reason": {"type": "string", "description": "Why, in one or two sentences an agent can act on."},
        "error_type": {"type": "string", "description": "Stable error class name, e.g. 'PathNotAllowed'."},
    },
    "required": ["status", "reason", "error_type"],
    "additionalProperties": False,
}

PROVENANCE: Schema = {
    "type": "object",
    "description": "Which model answered, and what it may and may not be used for.",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "artifact_sha256": _STRING_OR_NULL,
        "training_data": {"type": "string"},
        "synthetic_training_data": {"type": "boolean"},
        "intended_use": {"type": "string"},
        "limitations": {"type": "array", "items": {"type": "string"}},
        "calibration": _STRING_OR_NULL,
        "threshold_rule": _STRING_OR_NULL,
    },
    "required": ["name", "version", "artifact_sha256", "training_data", "intended_use", "limitations"],
}

_ISSUE: Schema = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "lead": _STRING_OR_NULL,
        "severity": {"enum": ["reject", "warn"]},
        "value": _NUMBER_OR_NULL,
        "limit": _NUMBER_OR_NULL,
    },
    "required": ["code", "message", "severity"],
}
QUALITY: Schema = {
    "type": "object",
    "properties": {
        "acceptable": {"type": "boolean", "description": "False when an issue of severity 'reject' was found."},
        "issues": {"type": "array", "items": _ISSUE},
    },
    "required": ["acceptable", "issues"],
}
_FINDING: Schema = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "code": _STRING_OR_NULL,
        "system": _STRING_OR_NULL,
        "description": {"type": "string"},
        "probability": {"type": "number", "minimum": 0, "maximum": 1, "description": "Calibrated probability."},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1, "description": "Decision threshold from validation."},
        "positive": {"type": "boolean", "description": "probability >= threshold."},
    },
    "required": ["label", "code", "system", "description", "probability", "threshold", "positive"],
}


def _object(properties: Schema, required: list[str], description: str) -> Schema:
    return {"type": "object", "description": description, "properties": properties, "required": required}


def with_cannot_assess(*answers: Schema) -> Schema:
    """An output schema: one of the given answer shapes, or the cannot-assess shape.

    Example:
        >>> len(with_cannot_assess({"type": "object"})["oneOf"])
        2
    """
    return {"type": "object", "oneOf": [*answers, CANNOT_ASSESS]}


ECG_INPUT: Schema = {
    "type": "object",
    "properties": {"path": {**_PATH, "description": _PATH["description"] + " A WFDB record (.hea with its .dat/.mat) or a DICOM ECG."}, "model": _MODEL},
    "required": ["path"],
    "additionalProperties": False,
}
CT_INPUT: Schema = {
    "type": "object",
    "properties": {"path": {**_PATH, "description": _PATH["description"] + " A folder holding ONE DICOM CT series, or a NIfTI file (.nii/.nii.gz)."}, "model": _MODEL},
    "required": ["path"],
    "additionalProperties": False,
}
RENDER_ECG_INPUT: Schema = {
    "type": "object",
    "properties": {
        "path": ECG_INPUT["properties"]["path"],
        "model": {**_MODEL, "description": "Model whose saliency (where it looked) is overlaid; omit for the default ECG model."},
        "saliency": {"type": "boolean", "default": True, "description": "Overlay the model's saliency when it provides one."},
    },
    "required": ["path"],
    "additionalProperties": False,
}
RENDER_CT_INPUT: Schema = {
    "type": "object",
    "properties": {
        "path": CT_INPUT["properties"]["path"],
        "model": {**_MODEL, "description": "Model whose pancreas/lesion masks are drawn; omit for the default CT model."},
        "masks": {"type": "boolean", "default": True, "description": "Draw the model's pancreas and lesion masks when available."},
    },
    "required": ["path"],
    "additionalProperties": False,
}
LIST_MODELS_INPUT: Schema = {
    "type": "object",
    "properties": {"task": {"enum": ["ecg", "ct"], "description": "Only models of this task."}},
    "additionalProperties": False,
}
DESCRIBE_MODEL_INPUT: Schema = {
    "type": "object",
    "properties": {"model": {**_MODEL, "description": "Registry name from list_models."}},
    "required": ["model"],
    "additionalProperties": False,
}

_ECG_MEASUREMENTS: Schema = {
    "type": "object",
    "properties": {
        "heart_rate_bpm": {**_NUMBER_OR_NULL, "description": "60 / median RR interval; null when not measurable."},
        "duration_s": {"type": "number"},
        "sampling_rate_hz": {"type": "number"},
        "missing_leads": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["heart_rate_bpm", "duration_s", "sampling_rate_hz", "missing_leads"],
}
ANALYZE_ECG_OUTPUT: Schema = with_cannot_assess(
    _object(
        {
            "status": {"const": "assessed"},
            "findings": {"type": "array", "items": _FINDING},
            "positive_labels": {"type": "array", "items": {"type": "string"}},
            "quality": QUALITY,
            "measurements": _ECG_MEASUREMENTS,
            "model": PROVENANCE,
            "summary": {"type": "string"},
        },
        ["status", "findings", "positive_labels", "quality", "measurements", "model", "summary"],
        "The model's calibrated findings for an acceptable ECG.",
    ),
    _object(
        {
            "status": {"const": "abstained"},
            "reason": {"type": "string"},
            "quality": QUALITY,
            "measurements": _ECG_MEASUREMENTS,
            "model": PROVENANCE,
            "summary": {"type": "string"},
        },
        ["status", "reason", "quality", "model", "summary"],
        "The ECG was read but fails quality checks; no probability is given.",
    ),
)

_LESION: Schema = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "volume_ml": {"type": "number"},
        "longest_axial_diameter_mm": {"type": "number"},
        "location": {"enum": ["head", "body", "tail", "unknown"]},
    },
    "required": ["number", "volume_ml", "longest_axial_diameter_mm", "location"],
}
_CT_PANCREAS: Schema = {
    "type": "object",
    "properties": {
        "found": {"type": ["boolean", "null"], "description": "null when the model does not report it."},
        "volume_ml": _NUMBER_OR_NULL,
        "lesions": {"type": ["array", "null"], "items": _LESION},
    },
    "required": ["found", "volume_ml", "lesions"],
}
_CT_VOLUME: Schema = {
    "type": "object",
    "properties": {
        "shape_zyx": {"type": "array", "items": {"type": "integer"}},
        "spacing_zyx_mm": {"type": "array", "items": {"type": "number"}},
        "source_format": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["shape_zyx", "spacing_zyx_mm", "source_format", "warnings"],
}
ANALYZE_CT_OUTPUT: Schema = with_cannot_assess(
    _object(
        {
            "status": {"const": "assessed"},
            "cancer": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "code": _STRING_OR_NULL,
                    "system": _STRING_OR_NULL,
                    "probability": {"type": "number", "minimum": 0, "maximum": 1},
                    "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                    "positive": {"type": "boolean"},
                },
                "required": ["label", "probability", "threshold", "positive"],
            },
            "findings": {"type": "array", "items": _FINDING},
            "pancreas": _CT_PANCREAS,
            "quality": QUALITY,
            "volume": _CT_VOLUME,
            "model": PROVENANCE,
            "summary": {"type": "string"},
        },
        ["status", "cancer", "findings", "pancreas", "quality", "volume", "model", "summary"],
        "Study-level pancreatic cancer probability with the evidence behind it.",
    ),
    _object(
        {
            "status": {"const": "abstained"},
            "reason": {"type": "string"},
            "quality": QUALITY,
            "volume": _CT_VOLUME,
            "model": PROVENANCE,
            "summary": {"type": "string"},
        },
        ["status", "reason", "quality", "model", "summary"],
        "The study was read but the model cannot assess it (e.g. no pancreas in view).",
    ),
)

_MODEL_ENTRY: Schema = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "task": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "synthetic_training_data": {"type": "boolean"},
        "intended_use": {"type": "string"},
        "default": {"type": "boolean", "description": "Used when a tool call names no model."},
    },
    "required": ["name", "version", "task", "labels", "synthetic_training_data", "intended_use", "default"],
}
LIST_MODELS_OUTPUT: Schema = with_cannot_assess(
    _object({"status": {"const": "ok"}, "models": {"type": "array", "items": _MODEL_ENTRY}}, ["status", "models"],
            "Models this server can run.")
)
DESCRIBE_MODEL_OUTPUT: Schema = with_cannot_assess(
    _object(
        {
            "status": {"const": "ok"},
            "model": PROVENANCE,
            "task": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "object"}},
            "thresholds": {"type": "object", "additionalProperties": {"type": "number"}},
            "metrics": {"type": "object", "description": "Validation and test metrics with confidence intervals."},
            "input_spec": {"type": "object"},
            "owner": {"type": "string"},
            "license": {"type": "string"},
        },
        ["status", "model", "task", "labels", "thresholds", "metrics", "input_spec"],
        "The model card.",
    )
)
RENDER_OUTPUT: Schema = with_cannot_assess(
    _object(
        {
            "status": {"const": "ok"},
            "mime_type": {"const": "image/png"},
            "width_px": {"type": "integer"},
            "height_px": {"type": "integer"},
            "description": {"type": "string", "description": "What the attached image shows."},
            "overlay": {"type": ["string", "null"], "description": "'saliency', 'masks' or null (none drawn)."},
            "model": {"anyOf": [PROVENANCE, {"type": "null"}]},
        },
        ["status", "mime_type", "width_px", "height_px", "description", "overlay", "model"],
        "A PNG image is attached to the result (MCP image content).",
    )
)
