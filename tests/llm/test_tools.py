"""The tools through :class:`Toolbox` and :func:`call_tool`: results, schemas, PHI, bad input, vendor shapes."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mayo_dx.llm.guard import Limits
from mayo_dx.llm.toolbox import Toolbox
from mayo_dx.llm.tools import FORMATS, TOOLS, call_tool, get_tool, tool_definitions
from tests.llm.conftest import REAL_ECG, assert_no_phi


def _check(name: str, result: dict[str, Any]) -> dict[str, Any]:
    structured = {key: value for key, value in result.items() if key != "images"}
    Draft202012Validator(get_tool(name).output_schema).validate(structured)
    assert_no_phi(json.dumps(result), f"{name} result")
    return result


@pytest.fixture(scope="module")
def toolbox(models_dir: Path, data_root: Path) -> Toolbox:
    return Toolbox(models_dir, [data_root], threads=1)


def test_list_and_describe_models(toolbox: Toolbox) -> None:
    listed = _check("list_models", call_tool("list_models", {}, toolbox=toolbox))
    assert [model["name"] for model in listed["models"]] == ["tiny_ecg_llm"]  # the broken artifact is left out
    assert listed["models"][0]["default"] and listed["models"][0]["synthetic_training_data"]
    assert _check("list_models", call_tool("list_models", {"task": "ct"}, toolbox=toolbox))["models"] == []
    card = _check("describe_model", call_tool("describe_model", {"model": "tiny_ecg_llm"}, toolbox=toolbox))
    assert card["thresholds"] == {"NORM": 0.5, "MI": 0.4, "CD": 0.45}
    assert len(card["model"]["artifact_sha256"]) == 64
    missing = _check("describe_model", call_tool("describe_model", {"model": "nope"}, toolbox=toolbox))
    assert missing["error_type"] == "ModelNotFound" and "tiny_ecg_llm" in missing["reason"]


@pytest.mark.parametrize("path", ["ecg/record_a.hea", "ecg/waveform_b.dcm"])
def test_analyze_ecg_on_planted_inputs(toolbox: Toolbox, path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = _check("analyze_ecg", call_tool("analyze_ecg", {"path": path}, toolbox=toolbox))
    assert result["status"] == "assessed", result
    assert [item["label"] for item in result["findings"]] == ["NORM", "MI", "CD"]
    assert {item["code"] for item in result["findings"]} == {"426783006", "164865005", "59118001"}  # codes survive scrubbing
    for item in result["findings"]:
        assert item["positive"] == (item["probability"] >= item["threshold"])
    assert result["model"]["name"] == "tiny_ecg_llm" and len(result["model"]["artifact_sha256"]) == 64
    assert 40 < result["measurements"]["heart_rate_bpm"] < 140
    summary = result["summary"]
    assert "not certainties" in summary and "does not replace" in summary and "synthetic data" in summary
    assert_no_phi(caplog.text, "logs")


def test_analyze_ecg_on_real_records(toolbox: Toolbox, data_root: Path) -> None:
    available = [name for name in REAL_ECG if (data_root / "real" / f"{name}.hea").exists()]
    if not available:
        pytest.skip("real sample data not present (../shared/data/ecg)")
    for name in available:
        result = _check("analyze_ecg", call_tool("analyze_ecg", {"path": f"real/{name}.hea"}, toolbox=toolbox))
        assert result["status"] in ("assessed", "abstained"), (name, result)
        if result["status"] == "assessed":
            assert result["measurements"]["sampling_rate_hz"] > 0


def test_abstention_on_nan_leads(toolbox: Toolbox) -> None:
    result = _check("analyze_ecg", call_tool("analyze_ecg", {"path": "bad/nan_leads.hea"}, toolbox=toolbox))
    assert result["status"] == "abstained"
    assert "non_finite" in {issue["code"] for issue in result["quality"]["issues"]}
    assert "probability" not in json.dumps(result["quality"]) and "No probability" in result["summary"]


@pytest.mark.parametrize(
    ("tool", "arguments", "error_type", "fragment"),
    [
        ("analyze_ecg", {"path": "bad/truncated.hea"}, "UnreadableFile", "truncated"),
        ("analyze_ecg", {"path": "bad/empty.hea"}, "UnreadableFile", ""),
        ("analyze_ecg", {"path": "bad/notes.txt"}, "UnsupportedFormat", "neither"),
        ("analyze_ecg", {"path": "bad/missing.hea"}, "UnreadableFile", "no such"),
        ("analyze_ecg", {"path": "bad"}, "InputError", "folder"),
        ("analyze_ecg", {"path": "ct/volume_a.nii.gz"}, "UnsupportedFormat", ""),
        ("analyze_ecg", {"path": "../../etc/passwd"}, "PathNotAllowed", ".."),
        ("analyze_ecg", {"path": "/etc/passwd"}, "PathNotAllowed", "outside"),
        ("analyze_ecg", {"path": "http://evil.example/a.hea"}, "PathNotAllowed", "URL"),
        ("analyze_ecg", {"path": "ecg/record_a.hea\x00"}, "PathNotAllowed", "null"),
        ("analyze_ecg", {"path": "ecg/record_a.hea", "model": "nope"}, "ModelNotFound", "list_models"),
        ("analyze_ecg", {}, "InvalidArguments", "path"),
        ("analyze_ecg", {"path": 7}, "InvalidArguments", "path"),
        ("analyze_ecg", {"path": "a.hea", "extra": 1}, "InvalidArguments", "extra"),
        ("analyze_ct_pancreas", {"path": "ct/series_a"}, "ModelNotFound", "ct"),
        ("render_ct", {"path": "ct/two_series"}, "InputError", "2 usable axial CT series"),
        ("render_ct", {"path": "ecg"}, "SeriesNotFound", ""),
        ("render_ct", {"path": "bad/notes.txt"}, "UnsupportedFormat", ""),
        ("no_such_tool", {}, "UnknownTool", "available"),
    ],
)
def test_bad_input_gives_cannot_assess(toolbox: Toolbox, tool: str, arguments: dict, error_type: str, fragment: str) -> None:
    result = call_tool(tool, arguments, toolbox=toolbox)
    assert result["status"] == "cannot_assess" and result["error_type"] == error_type, result
    assert fragment in result["reason"]
    assert "Traceback" not in result["reason"]
    if get_tool(tool) is not None:
        _check(tool, result)


def test_json_string_arguments_and_broken_json(toolbox: Toolbox) -> None:
    assert call_tool("list_models", '{"task": "ecg"}', toolbox=toolbox)["status"] == "ok"
    assert call_tool("list_models", "{not json", toolbox=toolbox)["error_type"] == "InvalidArguments"


def test_render_tools_attach_png_and_hold_no_phi(toolbox: Toolbox) -> None:
    ecg = _check("render_ecg", call_tool("render_ecg", {"path": "ecg/record_a.hea"}, toolbox=toolbox))
    assert ecg["overlay"] == "saliency" and ecg["images"][0]["mime_type"] == "image/png"
    plain = _check("render_ecg", call_tool("render_ecg", {"path": "ecg/waveform_b.dcm", "saliency": False}, toolbox=toolbox))
    assert plain["overlay"] is None and plain["model"] is None and plain["width_px"] > 500
    ct = _check("render_ct", call_tool("render_ct", {"path": "ct/series_a"}, toolbox=toolbox))
    assert ct["overlay"] is None and ct["images"][0]["data_base64"]
    nifti = _check("render_ct", call_tool("render_ct", {"path": "ct/volume_a.nii.gz", "masks": False}, toolbox=toolbox))
    assert nifti["height_px"] > 100


def test_input_text_is_never_echoed(toolbox: Toolbox) -> None:
    results = [call_tool("render_ct", {"path": "ct/series_a"}, toolbox=toolbox),
               call_tool("analyze_ecg", {"path": "bad/notes.txt"}, toolbox=toolbox)]
    for result in results:
        assert "ignore" not in json.dumps(result).lower()


def test_timeout_gives_cannot_assess(models_dir: Path, data_root: Path) -> None:
    slow = Toolbox(models_dir, [data_root], limits=Limits(call_timeout_s=0.001))
    result = call_tool("render_ct", {"path": "ct/series_a"}, toolbox=slow)
    assert result["error_type"] == "LimitExceeded" and "longer than the limit" in result["reason"]


def test_call_tool_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAYO_DX_MODELS", raising=False)
    monkeypatch.delenv("MAYO_DX_DATA_ROOT", raising=False)
    assert call_tool("list_models", {})["error_type"] == "NotConfigured"


def test_call_tool_from_the_environment(monkeypatch: pytest.MonkeyPatch, models_dir: Path, data_root: Path) -> None:
    monkeypatch.setenv("MAYO_DX_MODELS", str(models_dir))
    monkeypatch.setenv("MAYO_DX_DATA_ROOT", str(data_root))
    assert call_tool("list_models", {})["models"][0]["name"] == "tiny_ecg_llm"


_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI and Anthropic tool-name rule


@pytest.mark.parametrize("format", FORMATS)
def test_vendor_shapes(format: str) -> None:
    definitions = tool_definitions(format)
    assert len(definitions) == len(TOOLS) == 6
    for definition, tool in zip(definitions, TOOLS):
        if format == "mcp":
            import mcp.types as types

            parsed = types.Tool.model_validate(definition)
            assert parsed.input_schema == tool.input_schema and parsed.output_schema == tool.output_schema
            assert parsed.annotations.read_only_hint is True
            schema = definition["inputSchema"]
            Draft202012Validator.check_schema(definition["outputSchema"])
        elif format == "openai":
            assert set(definition) == {"type", "name", "description", "parameters", "strict"}
            assert definition["type"] == "function" and definition["strict"] is False
            schema = definition["parameters"]
        elif format == "openai-chat":
            assert set(definition) == {"type", "function"} and definition["type"] == "function"
            assert set(definition["function"]) == {"name", "description", "parameters", "strict"}
            schema = definition["function"]["parameters"]
            definition = definition["function"]
        else:
            assert set(definition) == {"name", "description", "input_schema"}
            schema = definition["input_schema"]
        assert _NAME.match(definition["name"]) and len(definition["description"]) > 80
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", [])) <= set(schema["properties"])
        for prop in schema["properties"].values():
            assert prop.get("description"), prop
    with pytest.raises(ValueError, match="unknown format"):
        tool_definitions("gemini")


def test_cli_prints_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    from mayo_dx.cli import main

    assert main(["tools", "--format", "anthropic"]) == 0
    assert [tool["name"] for tool in json.loads(capsys.readouterr().out)] == [tool.name for tool in TOOLS]


class _CtStandIn:
    """Test double of a CT predictor: returns a real Diagnosis (the CT runtime is not part of this version yet)."""

    def __init__(self, card: Any, probability: float, lesions: list[dict[str, Any]] | None) -> None:
        self.card, self.probability, self.lesions = card, probability, lesions

    def predict(self, volume: Any) -> Any:
        from dataclasses import dataclass

        from mayo_dx.results import Diagnosis, Finding

        @dataclass(frozen=True)
        class WithLesions(Diagnosis):
            lesions: tuple = ()

        finding = Finding(label="PDAC", probability=self.probability, threshold=0.3, code="372142002", system="SNOMED CT",
                          description="pancreatic ductal adenocarcinoma")
        values = dict(model=self.card.name, model_version=self.card.version, findings=(finding,), artifact_sha256="c" * 64,
                      measurements={"pancreas_volume_ml": 71.25, "pancreas_found": 1.0})
        if self.lesions is None:
            return Diagnosis(**values)
        return WithLesions(**values, lesions=tuple(self.lesions))


@pytest.mark.parametrize(("probability", "lesions"), [(0.82, [{"volume_ml": 3.1, "longest_axial_diameter_mm": 21.4,
                                                              "location": "head"}]), (0.05, None)])
def test_analyze_ct_output_with_a_ct_predictor(data_root: Path, probability: float, lesions: list | None) -> None:
    from mayo_dx.card import Label, ModelCard
    from mayo_dx.llm.catalog import CatalogEntry
    from mayo_dx.llm.context import CallFacts, ToolContext
    from mayo_dx.llm.guard import PathGuard
    from mayo_dx.llm.tools_ct import analyze_ct_pancreas

    card = ModelCard(name="ct_stand_in", version="0.1", task="ct", labels=(Label("PDAC", "372142002", "SNOMED CT"),),
                     thresholds={"PDAC": 0.3}, training_data="phantoms", synthetic_training_data=True)

    class Catalog:
        def choose(self, name: Any, task: str) -> CatalogEntry:
            return CatalogEntry(path=data_root, card=card, sha256="c" * 64)

        def predictor(self, name: str) -> _CtStandIn:
            return _CtStandIn(card, probability, lesions)

    facts = CallFacts()
    output = analyze_ct_pancreas(ToolContext(PathGuard([data_root]), Catalog()), {"path": "ct/series_a"}, facts)  # type: ignore[arg-type]
    result = _check("analyze_ct_pancreas", output.structured)
    assert result["cancer"]["positive"] == (probability >= 0.3) and facts.decision in ("positive", "negative")
    assert result["pancreas"]["found"] is True and result["pancreas"]["volume_ml"] == 71.25
    assert result["volume"]["shape_zyx"] == [16, 64, 64]
    if lesions:
        assert result["pancreas"]["lesions"][0]["location"] == "head" and "21 mm" in result["summary"]
    else:
        assert result["pancreas"]["lesions"] is None and "does not report lesion" in result["summary"]
    assert "does not replace" in result["summary"] and "ignore" not in json.dumps(result).lower()
