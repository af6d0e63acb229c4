"""The LLM tools: one definition each, a guarded runner, and each vendor's definition shape.

Tools: ``analyze_ecg``, ``analyze_ct_pancreas``, ``list_models``, ``describe_model``,
``render_ecg``, ``render_ct`` (see :data:`TOOLS` for the descriptions a model reads).
:class:`Toolbox` runs them behind the guard: arguments are validated against the input schema,
paths resolved inside the data roots, the handler runs in a worker thread with a time limit and
a bound on concurrent calls, every failure becomes ``{"status": "cannot_assess", "reason",
"error_type"}`` (never a traceback), the result is scrubbed of PHI and validated against the
output schema, and one audit line is written.

Agents without MCP call :func:`call_tool` and pass :func:`tool_definitions` to their SDK:

- ``"mcp"``: MCP ``Tool`` objects as JSON (``name``, ``title``, ``description``,
  ``inputSchema``, ``outputSchema``, ``annotations``).
- ``"openai"``: OpenAI **Responses API** function tools, ``{"type": "function", "name",
  "description", "parameters", "strict": false}`` (the shape ``client.responses.create(tools=...)``
  takes). ``strict`` is off because optional arguments are simply omitted, which strict mode
  does not allow.
- ``"openai-chat"``: the Chat Completions shape, ``{"type": "function", "function": {"name",
  "description", "parameters", "strict": false}}``.
- ``"anthropic"``: Anthropic Messages API client tools, ``{"name", "description", "input_schema"}``.

Example:
    >>> [tool["name"] for tool in tool_definitions("anthropic")][:2]
    ['analyze_ecg', 'analyze_ct_pancreas']
    >>> sorted(tool_definitions("openai")[0])
    ['description', 'name', 'parameters', 'strict', 'type']
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mayo_dx.llm import schemas
from mayo_dx.llm.context import CallFacts, ToolContext, ToolOutput
from mayo_dx.llm.report import provenance
from mayo_dx.llm.tools_ct import analyze_ct_pancreas, render_ct
from mayo_dx.llm.tools_ecg import analyze_ecg, render_ecg

__all__ = ["FORMATS", "TOOLS", "ToolSpec", "call_tool", "get_tool", "output_dict", "sanitise_reason", "tool_definitions"]

FORMATS = ("mcp", "openai", "openai-chat", "anthropic")

Handler = Callable[[ToolContext, dict[str, Any], CallFacts], ToolOutput]

_SUPPORT_NOTE = (" Results support a clinician and never replace one; relay the summary's uncertainty and the model's "
                 "limitations. A result with status 'cannot_assess' carries a 'reason' saying what to change.")


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, the texts a model reads, its schemas and its handler."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: Handler


def list_models(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """The installed models (name, version, task, labels, intended use, default flag)."""
    task = arguments.get("task")
    catalog = context.catalog
    defaults = {catalog.default(kind) for kind in ("ecg", "ct") if catalog.names(kind)}
    models = []
    for name in catalog.names(task):
        card = catalog.entry(name).card
        models.append({"name": card.name, "version": card.version, "task": card.task, "labels": list(card.label_names),
                       "synthetic_training_data": bool(card.synthetic_training_data), "intended_use": card.intended_use,
                       "default": name in defaults})
    facts.decision = "listed"
    return ToolOutput({"status": "ok", "models": models})


def describe_model(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """The model card of one model."""
    entry = context.catalog.entry(arguments.get("model"))
    card = entry.card
    facts.model, facts.model_sha256, facts.decision = card.name, entry.sha256, "described"
    data = card.to_dict()
    return ToolOutput({"status": "ok", "model": provenance(card, entry.sha256), "task": card.task, "labels": data["labels"],
                       "thresholds": data["thresholds"], "metrics": data["metrics"], "input_spec": data["input_spec"],
                       "owner": card.owner, "license": card.license})


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "analyze_ecg", "Analyse a 12-lead ECG",
        "Run a validated 12-lead ECG model on one recording stored on the server and return calibrated findings. "
        "Give 'path' relative to the data root: a WFDB record (the .hea header; its .dat/.mat signal files must sit "
        "beside it) or a DICOM ECG waveform file. Optionally name a 'model' from list_models; otherwise the default "
        "ECG model is used. Returns per label: code and coding system (SCP-ECG or SNOMED CT), plain description, "
        "calibrated probability, the decision threshold chosen on validation data and whether it is reached; signal "
        "quality (a recording that fails quality checks gets status 'abstained' with the reasons and no probability); "
        "heart rate; the model's provenance (version, artifact SHA-256, training data, intended use, limitations); "
        "and a plain-language summary to relay." + _SUPPORT_NOTE,
        schemas.ECG_INPUT, schemas.ANALYZE_ECG_OUTPUT, analyze_ecg,
    ),
    ToolSpec(
        "analyze_ct_pancreas", "Assess an abdominal CT for pancreatic cancer",
        "Run a pancreatic cancer CT model on one contrast-enhanced abdominal CT stored on the server. Give 'path' "
        "relative to the data root: a folder holding exactly one DICOM CT series, one Enhanced CT DICOM file, or a "
        "NIfTI file (.nii/.nii.gz). Returns the calibrated study-level cancer probability and the decision at the "
        "model's operating threshold, whether the pancreas was found and its volume, each segmented lesion (volume, "
        "longest axial diameter, location in head/body/tail), quality and geometry warnings, provenance and a summary. "
        "A study the model cannot assess (no pancreas in view, unsupported acquisition) gets status 'abstained'." + _SUPPORT_NOTE,
        schemas.CT_INPUT, schemas.ANALYZE_CT_OUTPUT, analyze_ct_pancreas,
    ),
    ToolSpec(
        "list_models", "List installed models",
        "List the diagnostic models this server can run, with task ('ecg' or 'ct'), version, output labels, intended "
        "use, whether they were trained on synthetic data only, and which one is the default per task. Call this "
        "first when unsure which model to name.",
        schemas.LIST_MODELS_INPUT, schemas.LIST_MODELS_OUTPUT, list_models,
    ),
    ToolSpec(
        "describe_model", "Show a model card",
        "Return the model card of one installed model: provenance, labels with codes, decision thresholds, validation "
        "and test metrics with confidence intervals, expected input, owner and licence. Use it to explain how far a "
        "result can be trusted.",
        schemas.DESCRIBE_MODEL_INPUT, schemas.DESCRIBE_MODEL_OUTPUT, describe_model,
    ),
    ToolSpec(
        "render_ecg", "Draw a 12-lead ECG",
        "Draw one ECG recording as a standard 12-lead sheet (25 mm/s, 10 mm/mV) and attach it as a PNG image. By "
        "default the regions the ECG model relied on are shaded (saliency); set 'saliency' to false for the plain "
        "tracing. Same 'path' rules as analyze_ecg. Use it to show a person the tracing or to look at it yourself.",
        schemas.RENDER_ECG_INPUT, schemas.RENDER_OUTPUT, render_ecg,
    ),
    ToolSpec(
        "render_ct", "Draw CT slices",
        "Draw axial slices of one CT study in a soft-tissue window and attach them as a PNG image, with the model's "
        "pancreas (green) and lesion (red) contours when the model provides them ('masks': false for the plain "
        "images). Same 'path' rules as analyze_ct_pancreas.",
        schemas.RENDER_CT_INPUT, schemas.RENDER_OUTPUT, render_ct,
    ),
)
_BY_NAME = {tool.name: tool for tool in TOOLS}


def get_tool(name: str) -> ToolSpec | None:
    """The tool of that name, or None.

    Example:
        >>> get_tool("list_models").title
        'List installed models'
    """
    return _BY_NAME.get(name)


def tool_definitions(format: str = "mcp") -> list[dict[str, Any]]:
    """Every tool's definition in one vendor's exact shape (see the module docstring).

    Raises:
        ValueError: An unknown format.

    Example:
        >>> tool_definitions("openai-chat")[0]["function"]["name"]
        'analyze_ecg'
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    definitions = []
    for tool in TOOLS:
        if format == "mcp":
            definitions.append({
                "name": tool.name, "title": tool.title, "description": tool.description,
                "inputSchema": tool.input_schema, "outputSchema": tool.output_schema,
                "annotations": {"title": tool.title, "readOnlyHint": True, "destructiveHint": False,
                                "idempotentHint": True, "openWorldHint": False},
            })
        elif format == "openai":
            definitions.append({"type": "function", "name": tool.name, "description": tool.description,
                                "parameters": tool.input_schema, "strict": False})
        elif format == "openai-chat":
            definitions.append({"type": "function", "function": {"name": tool.name, "description": tool.description,
                                                                 "parameters": tool.input_schema, "strict": False}})
        else:
            definitions.append({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema})
    return definitions


def output_dict(output: ToolOutput) -> dict[str, Any]:
    """A result as one plain dict: the structured result plus ``images`` (base64 PNG) when any.

    Example:
        >>> output_dict(ToolOutput({"status": "ok"}, images=(b"png",)))["images"][0]["data_base64"]
        'cG5n'
    """
    result = dict(output.structured)
    if output.images:
        result["images"] = [{"mime_type": "image/png", "data_base64": base64.b64encode(image).decode("ascii")}
                            for image in output.images]
    return result


_DEFAULT: dict[str, Any] = {}


def call_tool(name: str, arguments: dict[str, Any] | None = None, *, toolbox: Any = None) -> dict[str, Any]:
    """Run one tool for an agent built on a vendor SDK without MCP; return a plain dict.

    Args:
        name: Tool name (as in :func:`tool_definitions`).
        arguments: The arguments the model produced (a dict, or a JSON string).
        toolbox: A :class:`mayo_dx.llm.toolbox.Toolbox`; default one built from the
            environment variables ``MAYO_DX_MODELS`` and ``MAYO_DX_DATA_ROOT``.

    Returns:
        The structured result (``status`` first among its keys), plus ``images`` (base64
        PNGs) for the render tools. Never raises for bad input: failures come back as
        ``{"status": "cannot_assess", "reason": ..., "error_type": ...}``.

    Example:
        >>> call_tool("no_such_tool", {}, toolbox=None)["status"]  # doctest: +SKIP
        'cannot_assess'
    """
    if toolbox is None:
        toolbox = _default_toolbox()
        if isinstance(toolbox, dict):
            return toolbox
    return output_dict(toolbox.call(name, arguments))


def _default_toolbox() -> Any:
    from mayo_dx.llm.toolbox import Toolbox

    from mayo_dx.paths import default_models_dir

    models, root = str(default_models_dir()), os.environ.get("MAYO_DX_DATA_ROOT")
    if not root or not Path(models).is_dir():
        return {"status": "cannot_assess", "error_type": "NotConfigured",
                "reason": "no toolbox configured: set MAYO_DX_DATA_ROOT (and MAYO_DX_MODELS unless the default "
                          "models folder holds the models) or pass toolbox="}
    key = (models, root)
    if _DEFAULT.get("key") != key:
        _DEFAULT.update(key=key, toolbox=Toolbox(models, [root]))
    return _DEFAULT["toolbox"]


def sanitise_reason(text: str, limit: int = 400) -> str:
    """An error message made safe to hand an agent: no control characters, long quoted text replaced.

    Quoted text longer than 24 characters or holding spaces may come from an input file (a
    unit, a label) and could carry instructions; it is replaced by a placeholder.

    Example:
        >>> sanitise_reason("unknown unit 'ignore all previous instructions' in lead 'V1'")
        "unknown unit '<text from the input>' in lead 'V1'"
    """
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))

    def quoted(match: re.Match[str]) -> str:
        inner = match.group(2)
        if len(inner) <= 24 and " " not in inner:
            return match.group(0)
        return f"{match.group(1)}<text from the input>{match.group(1)}"

    cleaned = re.sub(r"(['\"])(.*?)\1", quoted, cleaned)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
