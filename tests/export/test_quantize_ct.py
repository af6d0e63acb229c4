"""Static INT8 quantisation of two-stage CT artifacts: networks trained here on phantoms (so Dice and
AUROC mean something), calibration from the card's recorded source, the measured change in the new
card, refusals (bound, ECG artifact, unreadable source without data) and the CLI."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402

from mayo_dx.artifact import read_artifact  # noqa: E402
from mayo_dx.errors import ArtifactError  # noqa: E402
from mayo_dx.export.onnx import ExportStage, export_stages, write_folder_artifact  # noqa: E402
from mayo_dx.export.quantize_ct import quantize_ct_artifact  # noqa: E402
from mayo_dx.imaging.data import CtDataModule, PhantomData  # noqa: E402
from mayo_dx.imaging.data_cache import VolumeCache, cases_from_msd  # noqa: E402
from mayo_dx.imaging.phantom import generate_phantom  # noqa: E402
from mayo_dx.imaging.phantom_io import write_msd_pancreas  # noqa: E402
from mayo_dx.imaging.resample import CtPreprocessing  # noqa: E402
from mayo_dx.results import Diagnosis  # noqa: E402
from mayo_dx.runtime import load  # noqa: E402
from mayo_dx.training.ct_evaluation import build_ct_card  # noqa: E402
from tests.export.tiny import export_tiny_ecg  # noqa: E402

SHAPE = (40, 80, 80)  # 5 mm slices: inside the card's default 0.5-5 mm range
PHANTOMS = {"n_cases": 10, "seed": 0, "shape": list(SHAPE), "cancer_fraction": 0.5}
PATCHES = {"localiser": (24, 48, 48), "analyser": (24, 32, 48)}
SPACING = {"localiser": 8.0, "analyser": 4.0}
CONTEXT_MM = 8.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _quiet_root_logger() -> None:
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization warns on the root logger


class MiniUNet(nn.Module):
    """One full-resolution level, one half-resolution level with dilated context; optional case head."""

    def __init__(self, classes: int, width: int = 6, case_head: bool = False) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, width, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv3d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(2 * width, 2 * width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv3d(2 * width, 2 * width, 3, padding=4, dilation=4), nn.ReLU())
        self.up = nn.ConvTranspose3d(2 * width, width, 2, stride=2)
        self.head = nn.Sequential(nn.Conv3d(2 * width, width, 3, padding=1), nn.ReLU(), nn.Conv3d(width, classes, 1))
        self.case = nn.Linear(1, 1) if case_head else None

    def forward(self, image: torch.Tensor):
        features = self.stem(image)
        segmentation = self.head(torch.cat([features, self.up(self.down(features))], dim=1))
        if self.case is None:
            return segmentation
        margin = segmentation[:, -1] - torch.logsumexp(segmentation[:, :-1], dim=1)
        return segmentation, self.case(margin.amax(dim=(1, 2, 3))[:, None].detach())


def _crop(image: np.ndarray, labels: np.ndarray, size: tuple[int, ...], rng: np.random.Generator):
    padding = [(0, max(0, wanted - have)) for wanted, have in zip(size, image.shape)]
    image, labels = np.pad(image, padding), np.pad(labels, padding)
    if rng.random() < 0.5 and labels.any():
        centre = np.argwhere(labels > 0)[rng.integers(0, int((labels > 0).sum()))]
        start = [int(np.clip(c - s // 2, 0, d - s)) for c, s, d in zip(centre, size, image.shape)]
    else:
        start = [int(rng.integers(0, d - s + 1)) for s, d in zip(size, image.shape)]
    window = tuple(slice(a, a + s) for a, s in zip(start, size))
    return image[window], labels[window]


def _train(net: nn.Module, cases: list, size: tuple[int, ...], steps: int, weights: list[float]) -> nn.Module:
    """Cross-entropy plus nested soft Dice (gland, lesion) on patches, Adam; seeded."""
    rng = np.random.default_rng(0)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = [_crop(np.asarray(cases[index][0]), np.asarray(cases[index][1]), size, rng)
                 for index in rng.integers(0, len(cases), 2)]
        image = torch.from_numpy(np.stack([item[0] for item in batch]))[:, None]
        target = torch.from_numpy(np.stack([item[1] for item in batch]).astype(np.int64))
        output = net(image)
        logits = output[0] if isinstance(output, tuple) else output
        loss = functional.cross_entropy(logits, target, weight=torch.tensor(weights))
        probabilities = logits.softmax(1)
        for level in range(1, logits.shape[1]):
            truth, predicted = (target >= level).float(), probabilities[:, level:].sum(1)
            loss = loss + 1 - (2 * (predicted * truth).sum() + 1) / (predicted.sum() + truth.sum() + 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def _entry(stage: str, classes: list[str], folder: Path) -> dict:
    preprocessing = CtPreprocessing(target_spacing=(SPACING[stage],) * 3, crop_margin_mm=10.0).to_dict()
    data_source = {"msd_folder": str(folder.resolve()), "manifest": None, "phantoms": PHANTOMS}
    return {"format": 1, "task": "ct", "stage": stage, "network": {"name": f"mini_unet_{stage}", "kwargs": {}},
            "class_names": classes, "patch_size": list(PATCHES[stage]), "sw_overlap": 0.25,
            "data": {"preprocessing": preprocessing, "context_mm": CONTEXT_MM, "data_source": data_source,
                     "split_seed": 0, "split_fractions": [0.2, 0.0]}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Both stages trained for a few seconds on 10 phantoms, exported as a CT folder artifact."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ct_int8")
    data = root / "phantoms"
    write_msd_pancreas(data, PHANTOMS["n_cases"], seed=PHANTOMS["seed"], n_test=1, shape=SHAPE,
                       cancer_fraction=PHANTOMS["cancer_fraction"])
    entries = {"localiser": _entry("localiser", ["background", "gland"], data),
               "analyser": _entry("analyser", ["background", "pancreas", "lesion"], data)}
    nets = {}
    for stage, classes, steps, weights in (("localiser", 2, 120, [1.0, 3.0]), ("analyser", 3, 150, [1.0, 3.0, 10.0])):
        torch.manual_seed(0)
        net = MiniUNet(classes, case_head=stage == "analyser")
        params = CtPreprocessing.from_dict(entries[stage]["data"]["preprocessing"])
        cache = VolumeCache(root / "cache", stage, params, CONTEXT_MM if stage == "analyser" else 0.0)
        cases = [cache.load(case)[:2] for case in cases_from_msd(data)]
        nets[stage] = _train(net, cases, PATCHES[stage], steps, weights)
    card = build_ct_card("ct_int8_test", "0.0.1", entries["localiser"], entries["analyser"], temperature=1.0,
                         threshold=0.5, metrics={}, synthetic=True)
    rng = np.random.default_rng(0)
    stages = [ExportStage(stage, nets[stage], [rng.random((1, 1, *PATCHES[stage]), dtype=np.float32)],
                          output_names=("logits",) if stage == "localiser" else ("segmentation", "case_logit"),
                          dynamic_axes={0: "batch"}) for stage in ("localiser", "analyser")]
    return {"artifact": export_stages(stages, card, root / "ct_model"), "data": data, "root": root}


@pytest.fixture(scope="module")
def quantised(trained: dict) -> dict:
    output = trained["root"] / "ct_model.int8"
    report = quantize_ct_artifact(trained["artifact"], output, calibration_cases=2, evaluation_cases=4,
                                  max_dice_drop=1.0, max_auroc_drop=1.0, threads=1)
    return {"report": report, "output": output}


def _copy_with_card(source: Path, target: Path, **changes) -> Path:
    """The same stage graphs under a changed card (a new, consistent folder artifact)."""
    artifact = read_artifact(source)
    card = dataclasses.replace(artifact.card, **changes)
    stages = [(name, data, artifact.graph_sha256[name], "image",
               ["logits"] if name == "localiser" else ["segmentation", "case_logit"])
              for name, data in artifact.stages.items()]
    return write_folder_artifact(target, card, stages)


def test_card_records_the_data_source(trained: dict, tmp_path: Path) -> None:
    card = read_artifact(trained["artifact"]).card
    assert card.extra["data_source"]["msd_folder"] == str(trained["data"].resolve())
    assert card.extra["data_source"]["phantoms"] == PHANTOMS and card.extra["data_source"]["split_seed"] == 0
    module = CtDataModule("localiser", str(tmp_path), CtPreprocessing(), (16, 32, 32), msd_folder=str(trained["data"]),
                          phantoms=PhantomData(n_cases=10, shape=SHAPE))
    source = module.describe()["data_source"]
    assert source == {"msd_folder": str(trained["data"].resolve()), "manifest": None,
                      "phantoms": {"n_cases": 10, "seed": 0, "shape": list(SHAPE), "cancer_fraction": 0.5}}


def test_int8_artifact_carries_the_measured_change(trained: dict, quantised: dict) -> None:
    report, output = quantised["report"], quantised["output"]
    source = read_artifact(trained["artifact"])
    new = load(output, threads=1)
    assert new.card.version == "0.0.1+int8" and report["artifact"] == str(output)
    stored = new.card.extra["quantization"]
    assert stored == json.loads(json.dumps({key: value for key, value in report.items() if key != "artifact"}))
    for key in ("dice_pancreas", "dice_lesion", "auroc"):
        if report["fp32"][key] is not None:
            assert report["change"][key] == pytest.approx(report["int8"][key] - report["fp32"][key], abs=2e-5)
    assert report["fp32"]["dice_pancreas"] > 0.3  # the trained networks find the gland
    assert abs(report["change"]["dice_pancreas"]) < 0.1 and report["fp32"]["auroc"] is not None
    assert 0.0 <= report["decision_changed_fraction"] <= 1.0 and len(report["cases"]) == 4
    assert report["data"]["calibration"]["source"].startswith("recorded data source")
    assert report["data"]["calibration"]["name"] == "phantoms" and "/" not in json.dumps(report["data"])
    assert report["data"]["evaluation"]["lesion_cases"] == 2 and report["data"]["evaluation"]["seed"] != 0
    for stage in ("localiser", "analyser"):
        assert 1 <= report["calibration_patches"][stage] <= 16
        assert report["speed"][stage]["fp32_seconds"] > 0 and report["speed"][stage]["int8_seconds"] > 0
    records = {record["name"]: record for record in new.card.extra["export"]["stages"]}
    for stage, digest in source.graph_sha256.items():
        assert records[stage]["graph_sha256"] != digest and records[stage]["source_graph_sha256"] == digest
        graph = onnx.load_from_string(read_artifact(output).stages[stage]).graph
        assert "QuantizeLinear" in {node.op_type for node in graph.node}
    phantom = generate_phantom(shape=SHAPE, seed=77, lesions=1)
    result = new.predict(phantom.volume)
    assert result.model_version == "0.0.1+int8"
    if isinstance(result, Diagnosis):
        assert 0.0 <= result.findings[0].probability <= 1.0


def test_a_bound_that_cannot_hold_refuses_and_leaves_nothing(trained: dict, tmp_path: Path) -> None:
    target = tmp_path / "refused.int8"
    with pytest.raises(ArtifactError, match="pancreas Dice .* nothing written"):
        quantize_ct_artifact(trained["artifact"], target, calibration_cases=1, evaluation_cases=2, max_dice_drop=-1.0,
                             threads=1)
    assert list(tmp_path.iterdir()) == []


def test_other_artifacts_and_unreadable_sources_are_refused(trained: dict, tmp_path: Path) -> None:
    ecg = export_tiny_ecg(tmp_path / "ecg.onnx")
    with pytest.raises(ArtifactError, match="CT folder artifacts"):
        quantize_ct_artifact(ecg)
    card = read_artifact(trained["artifact"]).card
    gone = {**card.extra["data_source"], "msd_folder": str(tmp_path / "moved_away")}
    real = _copy_with_card(trained["artifact"], tmp_path / "real_data_model", synthetic_training_data=False,
                           extra={**dict(card.extra), "data_source": gone})
    with pytest.raises(ArtifactError, match="pass data"):
        quantize_ct_artifact(real, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(ArtifactError, match="Decathlon"):
        quantize_ct_artifact(real, tmp_path / "never", data=tmp_path / "ecg.onnx")


def test_cli_quantizes_a_ct_folder_with_user_data(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from mayo_dx.cli import main

    card = read_artifact(trained["artifact"]).card
    real = _copy_with_card(trained["artifact"], tmp_path / "real_data_model", synthetic_training_data=False,
                           extra={key: value for key, value in card.extra.items() if key != "data_source"})
    output = tmp_path / "real.int8"
    status = main(["quantize", str(real), "-o", str(output), "--data", str(trained["data"]), "--calibration-cases", "1",
                   "--evaluation-cases", "2", "--max-dice-drop", "1", "--max-auroc-drop", "1", "--threads", "1"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["artifact"] == str(output)
    assert report["data"]["calibration"] == {"source": "given", "name": "phantoms", "cases": 1}
    assert load(output, threads=1).card.version.endswith("+int8")
    slower = [stage for stage, figures in report["speed"].items() if figures["int8_speedup"] < 1.0]
    warned = [record.getMessage() for record in caplog.records
              if record.name == "mayo_dx" and record.levelno == logging.WARNING]
    assert bool(slower) == any("INT8 ran slower than float32" in message for message in warned)
