"""The ``mayo-dx`` command line: demo, inspect, models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from mayo_dx.cli import main
from mayo_dx.demo import run_demo


def test_inspect_reports_summary_and_quality_without_identifiers(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(get_testdata_file("waveform_ecg.dcm"))
    assert main(["inspect", str(path)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["input"] == "waveform_ecg.dcm"
    assert line["record"]["fs"] == 1000.0 and line["acceptable"] is True
    assert "patient" not in json.dumps(line).lower()


def test_inspect_reports_an_unreadable_file_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.hea"
    broken.write_text("broken 12 500 5000\nnot a signal line\n")
    good = Path(get_testdata_file("waveform_ecg.dcm"))
    assert main(["inspect", str(broken), str(good)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["input"] for line in lines] == ["broken.hea", "waveform_ecg.dcm"]
    assert "error" in lines[0] and lines[0]["reason"]
    assert lines[1]["acceptable"] is True


def test_demo_runs_every_step_and_is_rerunnable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert run_demo(out, records=30, seed=3, data_only=True) == 0
    first = json.loads((out / "report.json").read_text())
    printed = capsys.readouterr().out
    assert "[1/" in printed and "report.md" in printed
    assert first["Real DICOM ECG: read and quality"]["acceptable"] is True
    assert sum(first["Synthetic PTB-XL-shaped data"]["records"].values()) == 30
    corrupted = first["Corrupted ECG: abstention reasons"]
    assert corrupted["acceptable"] is False
    assert {issue["code"] for issue in corrupted["issues"]} >= {"flat_line"}
    assert corrupted["abstention"]["summary"].startswith("cannot assess")
    ct = first["CT phantom: DICOM series, read back, measurements"]
    assert ct["hu_round_trip_exact"] is True
    truth = ct["truth"]["lesions"][0]["diameter_mm"]
    measured = ct["measurement"]["lesions"][0]["longest_axial_diameter_mm"]
    assert np.isclose(measured, truth, atol=0.5)
    assert run_demo(out, records=30, seed=3, data_only=True) == 0  # idempotent: same results again
    second = json.loads((out / "report.json").read_text())
    assert second["Synthetic PTB-XL-shaped data"] == first["Synthetic PTB-XL-shaped data"]


def test_demo_refuses_too_few_records(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 20"):
        run_demo(tmp_path, records=5)


def test_models_lists_verified_artifacts_and_predict_resolves_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from tests.export.tiny import export_tiny_ecg

    models = tmp_path / "models"
    models.mkdir()
    artifact = export_tiny_ecg(models / "tiny_ecg.onnx")
    (models / "broken.onnx").write_bytes(b"not an onnx file")
    monkeypatch.setenv("MAYO_DX_MODELS", str(models))
    assert main(["models", "--json"]) == 0
    entries = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    card_name = next(name for name in entries if name != "broken")
    assert entries[card_name]["path"] == str(artifact) and entries[card_name]["task"] == "ecg"
    assert "error" in entries["broken"]
    out = tmp_path / "results.jsonl"
    record = Path(get_testdata_file("waveform_ecg.dcm"))
    assert main(["predict", card_name, str(record), "--out", str(out), "--no-progress"]) == 0
    line = json.loads(out.read_text().splitlines()[0])
    assert line["kind"] == "diagnosis" and line["model"] == card_name
    assert main(["predict", "no_such_model", str(record), "--no-progress"]) == 2


def test_models_lists_registered_networks(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main(["models", "--networks", "--json"]) == 0
    names = {entry["name"] for entry in json.loads(capsys.readouterr().out)}
    assert {"xresnet1d101", "ribeiro_resnet"} <= names


@pytest.mark.slow
def test_quick_demo_trains_exports_and_calls_every_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``mayo-dx demo --quick`` end to end: both models trained, exported, run and served."""
    pytest.importorskip("lightning")
    pytest.importorskip("mcp")
    out, models = tmp_path / "demo", tmp_path / "models"
    assert main(["demo", "--out", str(out), "--records", "200", "--quick", "--models", str(models)]) == 0
    printed = capsys.readouterr().out
    assert "[12/12]" in printed and "report.md" in printed
    results = json.loads((out / "report.json").read_text())
    export = results["ECG model: ONNX export with parity"]
    assert export["synthetic_training_data"] is True
    assert any("synthetic" in text.lower() for text in export["limitations"])
    predictions = results["ECG runtime (no torch): predictions, saliency, plots"]["predictions"]
    assert predictions["real DICOM ECG (pydicom waveform_ecg.dcm)"]["kind"] == "diagnosis"
    assert predictions["corrupted copy of it"]["kind"] == "abstention"
    statuses = results["LLM tools: MCP client session calling every tool"]["statuses"]
    assert statuses['analyze_ecg {"path": "ecg/real_waveform_ecg.dcm"}'] == "assessed"
    assert statuses['analyze_ecg {"path": "ecg/corrupted_copy.hea"}'] == "abstained"
    assert statuses['analyze_ecg {"path": "../../etc/passwd"}'] == "cannot_assess"
    assert statuses['analyze_ct_pancreas {"path": "ct/with_lesion"}'] in ("assessed", "abstained")
    assert {path.name for path in models.iterdir()} == {"demo_ecg_synthetic_superdiagnostic.onnx",
                                                         "demo_ct_pancreas_phantom"}
    report = (out / "report.md").read_text()
    assert "synthetic data" in report and "![ecg_12lead_saliency]" in report
