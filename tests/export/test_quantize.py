"""Static INT8 quantisation: measured AUROC change in the new card, refusal beyond the bound."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from mayo_dx.errors import ArtifactError
from mayo_dx.export.quantize import quantize_artifact
from mayo_dx.runtime import load
from tests.export.tiny import export_tiny_ecg

torch.set_num_threads(1)


def test_quantize_writes_card_with_auroc_change_and_refuses_beyond_bound(tmp_path: Path) -> None:
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization warns on the root logger
    source = export_tiny_ecg(tmp_path / "tiny.onnx")
    report = quantize_artifact(source, tmp_path / "tiny.int8.onnx", records=40, max_auroc_drop=0.2)
    quantized = load(tmp_path / "tiny.int8.onnx", threads=1)
    stored = quantized.card.extra["quantization"]
    assert quantized.card.version.endswith("+int8") and stored["auroc_int8"] == report["auroc_int8"]
    assert stored["auroc_change"] == pytest.approx(stored["auroc_int8"] - stored["auroc_fp32"], abs=2e-5)
    assert stored["evaluation_records"] == 20 and 0 < stored["max_probability_difference"] < 0.1
    assert quantized.card.extra["export"]["graph_sha256"] != load(source).card.extra["export"]["graph_sha256"]
    target = tmp_path / "refused.onnx"
    with pytest.raises(ArtifactError, match="beyond the bound"):
        quantize_artifact(source, target, records=40, max_auroc_drop=-1.0)
    assert not target.exists()
