"""Export: checker, parity on real and generated records, card and hashes in the file, stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from mayo_dx.artifact import CARD_KEY, GRAPH_SHA256_KEY, graph_sha256, onnx_metadata, read_artifact, sha256_hex
from mayo_dx.card import Label, ModelCard
from mayo_dx.errors import ArtifactError, ExportParityError
from mayo_dx.export import ExportStage, default_ecg_records, ecg_parity_inputs, export_model, export_stages
from mayo_dx.runtime import Predictor
from tests.conftest import SHARED_DATA
from tests.export.tiny import TinyAnalyser, TinyEcgNet, TinyLocaliser, ecg_card, export_tiny_ecg

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def real_inputs() -> list[np.ndarray]:
    records = default_ecg_records()
    if len(records) < 2:
        pytest.skip(f"real ECG records not present under {SHARED_DATA / 'ecg'}")
    return ecg_parity_inputs(ecg_card(), records, generated=2)


def test_export_parity_on_real_records_and_card_round_trip(tmp_path: Path, real_inputs: list[np.ndarray]) -> None:
    card = ecg_card()
    path = export_model(TinyEcgNet(), card, tmp_path / "tiny.onnx", parity_inputs=real_inputs)
    artifact = read_artifact(path)
    export = artifact.card.extra["export"]
    assert export["parity"]["inputs"] == len(real_inputs) >= 12  # DICOM + 5 real + 2 generated, x2
    assert export["parity"]["max_abs_diff"] <= 1e-4
    assert {tuple(shape[1:2]) for shape in export["parity"]["input_shapes"]} == {(12,)}
    assert len({shape[-1] for shape in export["parity"]["input_shapes"]}) >= 3  # several lengths
    assert export["opset"] >= 17 and export["graph_sha256"] == artifact.graph_sha256["model"]
    without_export = {key: value for key, value in artifact.card.extra.items() if key != "export"}
    assert ModelCard.from_dict({**artifact.card.to_dict(), "extra": without_export}) == card
    model = onnx.load(str(path))
    assert max(item.version for item in model.opset_import if item.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(model, full_check=True)


def test_graph_hash_is_the_serialised_model_without_metadata(tmp_path: Path) -> None:
    path = export_tiny_ecg(tmp_path / "tiny.onnx")
    model = onnx.load(str(path))
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    assert metadata == onnx_metadata(path.read_bytes())
    del model.metadata_props[:]
    assert sha256_hex(model.SerializeToString()) == graph_sha256(path.read_bytes()) == metadata[GRAPH_SHA256_KEY]
    assert json.loads(metadata[CARD_KEY])["name"] == "tiny_ecg"


def test_dynamic_batch_and_length(tmp_path: Path) -> None:
    net = TinyEcgNet().eval()
    path = export_tiny_ecg(tmp_path / "tiny.onnx", net=net)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch, length in ((1, 250), (5, 1000), (2, 777), (64, 250)):
        values = rng.normal(size=(batch, 12, length)).astype(np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(values)).numpy()
        np.testing.assert_allclose(session.run(None, {"signal": values})[0], expected, atol=1e-4, rtol=1e-4)


class _BranchingNet(nn.Module):
    """Traced with positive input it freezes one branch; negative input then disagrees."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyEcgNet()

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        logits = self.inner(signal)
        return logits + 1.0 if float(signal.mean()) > 0 else logits - 1.0


def test_parity_failure_raises_with_deviation_and_writes_nothing(tmp_path: Path) -> None:
    positive = np.abs(np.random.default_rng(0).normal(size=(2, 12, 250))).astype(np.float32)
    target = tmp_path / "bad.onnx"
    with pytest.raises(ExportParityError, match=r"max \|onnx - torch\| = 2"):
        export_model(_BranchingNet(), ecg_card(), target, parity_inputs=[positive, -positive])
    assert not target.exists()
    assert issubclass(ExportParityError, ArtifactError)


def test_head_size_must_match_the_card(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="card needs one output"):
        export_model(TinyEcgNet(num_labels=3), ecg_card(), tmp_path / "x.onnx",
                     parity_inputs=[np.zeros((1, 12, 250), np.float32)])
    with pytest.raises(ValueError, match="opset"):
        export_model(TinyEcgNet(), ecg_card(), tmp_path / "x.onnx", parity_inputs=[np.zeros((1, 12, 250), np.float32)],
                     opset=13)


def test_registered_network_exports_within_tolerance(tmp_path: Path) -> None:
    nets = pytest.importorskip("mayo_dx.ecg.nets")
    card = ecg_card("xresnet1d18")
    network = nets.build_network("xresnet1d18", num_labels=len(card.labels)).eval()
    inputs = ecg_parity_inputs(card, [], generated=2)
    artifact = read_artifact(export_model(network, card, tmp_path / "x.onnx", parity_inputs=inputs))
    assert artifact.card.extra["export"]["parity"]["max_abs_diff"] <= 1e-4


def _ct_card() -> ModelCard:
    return ModelCard(name="tiny_ct", version="0.0.1", task="ct",
                     labels=(Label("pancreatic_lesion", system="mayo-dx", description="lesion present"),),
                     thresholds={"pancreatic_lesion": 0.5}, synthetic_training_data=True)


@pytest.fixture()
def two_stage(tmp_path: Path) -> tuple[Path, TinyLocaliser, TinyAnalyser]:
    rng = np.random.default_rng(2)
    localiser, analyser = TinyLocaliser().eval(), TinyAnalyser().eval()
    stages = [
        ExportStage("localiser", localiser, [rng.normal(size=(1, 1, 8, 16, 16)).astype(np.float32),
                                             rng.normal(size=(2, 1, 6, 12, 10)).astype(np.float32)],
                    output_names=("mask_logits",)),
        ExportStage("analyser", analyser, [rng.normal(size=(1, 1, 8, 8, 8)).astype(np.float32)],
                    output_names=("logits", "features"), extra={"patch": [8, 8, 8]}),
    ]
    return export_stages(stages, _ct_card(), tmp_path / "tiny_ct"), localiser, analyser


def test_two_stage_artifact_folder(two_stage: tuple[Path, TinyLocaliser, TinyAnalyser]) -> None:
    folder, localiser, analyser = two_stage
    assert sorted(item.name for item in folder.iterdir()) == ["analyser.onnx", "card.json", "localiser.onnx",
                                                              "manifest.json"]
    artifact = read_artifact(folder)
    assert artifact.sha256 == sha256_hex((folder / "manifest.json").read_bytes())
    assert [stage["name"] for stage in artifact.card.extra["export"]["stages"]] == ["localiser", "analyser"]
    predictor = Predictor(artifact, threads=1)
    volume = np.random.default_rng(3).normal(size=(1, 1, 10, 20, 14)).astype(np.float32)
    with torch.no_grad():
        expected_mask = localiser(torch.from_numpy(volume)).numpy()
        expected_logits, _ = analyser(torch.from_numpy(volume))
    np.testing.assert_allclose(predictor.run({"image": volume}, "localiser")[0], expected_mask, atol=1e-5)
    np.testing.assert_allclose(predictor.run({"image": volume}, "analyser")[0], expected_logits.numpy(), atol=1e-5)


def test_two_stage_tampering_refused(two_stage: tuple[Path, TinyLocaliser, TinyAnalyser]) -> None:
    folder = two_stage[0]
    original = (folder / "card.json").read_text()
    (folder / "card.json").write_text(original.replace('"pancreatic_lesion": 0.5', '"pancreatic_lesion": 0.1'))
    with pytest.raises(ArtifactError, match="card.json does not match"):
        read_artifact(folder)
    (folder / "card.json").write_text(original)
    localiser, analyser = (folder / "localiser.onnx").read_bytes(), (folder / "analyser.onnx").read_bytes()
    (folder / "localiser.onnx").write_bytes(localiser[: len(localiser) // 2])
    with pytest.raises(ArtifactError, match="localiser.onnx does not match"):
        read_artifact(folder)
    manifest = json.loads((folder / "manifest.json").read_text())  # swap stages, hashes updated too
    (folder / "localiser.onnx").write_bytes(analyser)
    manifest["stages"][0]["sha256"] = sha256_hex(analyser)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match the card and manifest"):
        read_artifact(folder)
    with pytest.raises(ArtifactError, match="differs from the expected"):
        read_artifact(folder, expected_sha256="0" * 64)


def test_instance_norms_export_with_float64_statistics_for_onnxruntime_parity(tmp_path: Path) -> None:
    """onnxruntime's float32 InstanceNormalization drifts on large 3-D maps; the export avoids it."""
    import io

    import onnxruntime
    from torch import nn

    from mayo_dx.export.precise_norm import PreciseInstanceNorm, with_precise_instance_norms

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.InstanceNorm3d(8, affine=True), nn.LeakyReLU(0.01),
                        nn.Conv3d(8, 8, 3, padding=1), nn.InstanceNorm3d(8, affine=True)).eval()
    with torch.no_grad():
        net[0].bias.add_(3.0)  # a large mean over a small variance: where float32 accumulation hurts
    values = np.random.default_rng(0).uniform(0.0, 1.0, size=(2, 1, 32, 64, 64)).astype(np.float32)
    values[:, :, :, :32] = 0.0  # saturated background, as in a windowed CT
    precise = with_precise_instance_norms(net)
    assert isinstance(precise[1], PreciseInstanceNorm) and isinstance(net[1], nn.InstanceNorm3d)
    with torch.no_grad():
        reference = net(torch.from_numpy(values)).numpy()
        assert np.abs(precise(torch.from_numpy(values)).numpy() - reference).max() < 1e-5

    def onnxruntime_output(module: nn.Module) -> np.ndarray:
        buffer = io.BytesIO()
        torch.onnx.export(module, (torch.from_numpy(values),), buffer, input_names=["image"], output_names=["out"],
                          opset_version=17, dynamo=False)
        session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        return session.run(None, {"image": values})[0]

    assert np.abs(onnxruntime_output(precise) - reference).max() < 2e-5
    assert with_precise_instance_norms(nn.Sequential(nn.Conv1d(12, 4, 3), nn.BatchNorm1d(4))) is not None
