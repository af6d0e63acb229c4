"""Static INT8 quantisation of ECG artifacts: calibration from the card's data source,
measured AUROC change and speed in the new card, refusal beyond the bound."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from mayo_dx.ecg.sources import SyntheticPtbxlSource
from mayo_dx.errors import ArtifactError
from mayo_dx.export.quantize import quantize_artifact
from mayo_dx.runtime import load
from tests.export.tiny import ecg_card, export_tiny_ecg

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet_root_logger() -> None:
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization warns on the root logger


def test_quantize_writes_card_with_auroc_change_and_refuses_beyond_bound(tmp_path: Path) -> None:
    source = export_tiny_ecg(tmp_path / "tiny.onnx")
    report = quantize_artifact(source, tmp_path / "tiny.int8.onnx", records=20, max_auroc_drop=0.2)
    quantized = load(tmp_path / "tiny.int8.onnx", threads=1)
    stored = quantized.card.extra["quantization"]
    assert quantized.card.version.endswith("+int8") and stored["auroc_int8"] == report["auroc_int8"]
    assert stored["auroc_change"] == pytest.approx(stored["auroc_int8"] - stored["auroc_fp32"], abs=2e-5)
    assert stored["evaluation_records"] == 20 and 0 < stored["max_probability_difference"] < 0.1
    assert "generated" in stored["calibration_data"] and "uint8 activations" in stored["method"]
    assert stored["speed"]["int8_seconds"] > 0 and stored["speed"]["fp32_seconds"] > 0
    assert quantized.card.extra["export"]["graph_sha256"] != load(source).card.extra["export"]["graph_sha256"]
    target = tmp_path / "refused.onnx"
    with pytest.raises(ArtifactError, match="beyond the bound"):
        quantize_artifact(source, target, records=20, max_auroc_drop=-1.0)
    assert not target.exists()


def test_calibrates_on_the_cards_record_source_and_evaluates_on_its_test_split(tmp_path: Path) -> None:
    folder = tmp_path / "ptbxl_like"
    recorded = SyntheticPtbxlSource(folder, n_records=60, seed=3)
    card = dataclasses.replace(ecg_card(), extra={"data_source": recorded.to_dict()})
    source = export_tiny_ecg(tmp_path / "tiny.onnx", card=card)
    report = quantize_artifact(source, tmp_path / "tiny.int8.onnx", records=12, max_auroc_drop=1.0)
    assert report["calibration_data"].startswith("12 records of the train split")
    test_records = len(recorded.splits()["test"].paths)
    assert "test split" in report["evaluation_data"] and report["evaluation_records"] == test_records > 0
    assert set(report["evaluated_labels"]) <= set(card.label_names) and report["evaluated_labels"]


def test_user_data_overrides_and_a_missing_real_source_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ptbxl_like"
    SyntheticPtbxlSource(folder, n_records=30, seed=4)
    real = dataclasses.replace(ecg_card(), synthetic_training_data=False, training_data="PTB-XL (gone)",
                               limitations=(), extra={"data_source": {"class_path": "mayo_dx.ecg.sources.PtbxlSource",
                                                                      "init_args": {"folder": str(tmp_path / "gone")}}})
    source = export_tiny_ecg(tmp_path / "real.onnx", card=real)
    with pytest.raises(ArtifactError, match="pass data"):
        quantize_artifact(source, tmp_path / "never.onnx", records=10)
    assert not (tmp_path / "never.onnx").exists()
    report = quantize_artifact(source, tmp_path / "real.int8.onnx", data=[folder / "records100"], records=10,
                               max_auroc_drop=1.0)
    assert report["calibration_data"] == "10 records given by the user"
    assert "generated" in report["evaluation_data"]


def test_tiny_budgets_are_refused(tmp_path: Path) -> None:
    source = export_tiny_ecg(tmp_path / "tiny.onnx")
    with pytest.raises(ArtifactError, match="at least 10"):
        quantize_artifact(source, records=5)


def test_cli_reports_a_refusal_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mayo_dx.cli import main

    assert main(["quantize", str(tmp_path / "missing.onnx")]) == 2
    assert capsys.readouterr().err.strip() == "mayo-dx quantize: missing.onnx: no such artifact file or folder"
    source = export_tiny_ecg(tmp_path / "tiny.onnx")
    assert main(["quantize", str(source), "-o", str(tmp_path / "no.onnx"), "--records", "10",
                 "--max-auroc-drop", "-1"]) == 2
    assert "beyond the bound" in capsys.readouterr().err and not (tmp_path / "no.onnx").exists()
