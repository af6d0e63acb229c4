"""CT runtime: two-stage artifact -> CtPredictor (localise, crop, analyse, restore, measure, abstain) and CT export."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from torch import nn  # noqa: E402

from mayo_dx.card import ModelCard  # noqa: E402
from mayo_dx.errors import ArtifactError  # noqa: E402
from mayo_dx.export.onnx import ExportStage, export_stages  # noqa: E402
from mayo_dx.imaging.measure import measure_labels  # noqa: E402
from mayo_dx.imaging.phantom import generate_phantom  # noqa: E402
from mayo_dx.imaging.phantom_io import write_phantom_dicom  # noqa: E402
from mayo_dx.imaging.resample import CtPreprocessing  # noqa: E402
from mayo_dx.imaging.volume import AcquisitionInfo, CtVolume  # noqa: E402
from mayo_dx.results import Abstention, Diagnosis  # noqa: E402
from mayo_dx.runtime import load  # noqa: E402
from mayo_dx.runtime_ct import CtPredictor  # noqa: E402
from mayo_dx.training.ct_evaluation import build_ct_card  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
SHARED_CT = PROJECT.parent / "shared" / "data" / "ct"
TINY = (4, 4, 8, 8, 16, 4)
LOCALISER_PATCH, ANALYSER_PATCH = [16, 32, 32], [32, 32, 32]
ABSTENTION_CODES = {"slice_thickness", "slice_spacing", "contrast_phase", "oblique_volume", "pancreas_not_found",
                    "pancreas_truncated"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- networks whose answer is known
class ThresholdLocaliser(nn.Module):
    """Gland wherever the windowed CT is above 0.4 (about 27 HU); ``found=False``: nowhere."""

    def __init__(self, found: bool = True) -> None:
        super().__init__()
        self.found = found

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gland = 40.0 * (image - 0.4) if self.found else torch.full_like(image, -10.0)
        return torch.cat([torch.zeros_like(image), gland], dim=1)


class ThresholdAnalyser(nn.Module):
    """Pancreas above 0.4, lesion above 0.86 (bright); case logit from the brightest voxel."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        segmentation = torch.cat([torch.zeros_like(image), 40.0 * (image - 0.4), 200.0 * (image - 0.86)], dim=1)
        return segmentation, 10.0 * (image.amax(dim=(2, 3, 4)) - 0.9)


def _entry(stage: str, net: nn.Module | None, patch: list[int], spacing: float, classes: list[str]) -> dict:
    from mayo_dx.imaging.nets import network_config

    network = network_config(net) if net is not None else {"name": f"threshold_{stage}", "kwargs": {}}
    preprocessing = CtPreprocessing(target_spacing=(spacing,) * 3, crop_margin_mm=10.0).to_dict()
    return {"format": 1, "task": "ct", "stage": stage, "network": network, "class_names": classes,
            "patch_size": patch, "sw_overlap": 0.5, "data": {"preprocessing": preprocessing, "context_mm": 8.0}}


def _card(localiser: nn.Module | None = None, analyser: nn.Module | None = None,
          localiser_patch: list[int] = LOCALISER_PATCH) -> tuple[ModelCard, dict, dict]:
    loc = _entry("localiser", localiser, localiser_patch, 4.0, ["background", "gland"])
    ana = _entry("analyser", analyser, ANALYSER_PATCH, 2.0, ["background", "pancreas", "lesion"])
    card = build_ct_card("ct_test", "0.0.1", loc, ana, temperature=2.0, threshold=0.5, metrics={}, synthetic=True)
    return card, loc, ana


def _export(folder: Path, localiser: nn.Module, analyser: nn.Module, card: ModelCard,
            graph_patch: list[int] = LOCALISER_PATCH) -> Path:
    rng = np.random.default_rng(0)
    stages = [
        ExportStage("localiser", localiser.eval(), [rng.random((1, 1, *graph_patch), dtype=np.float32),
                                                    rng.random((2, 1, *graph_patch), dtype=np.float32)],
                    output_names=("logits",), dynamic_axes={0: "batch"}),
        ExportStage("analyser", analyser.eval(), [rng.random((1, 1, *ANALYSER_PATCH), dtype=np.float32)],
                    output_names=("segmentation", "case_logit"), dynamic_axes={0: "batch"}),
    ]
    return export_stages(stages, card, folder)


def _box_volume(top_slice: int = 24) -> CtVolume:
    """-100 HU body, a 20 x 24 x 84 mm gland block (120 HU) and a 12 mm bright lesion at its right (head) end."""
    hu = np.full((40, 96, 96), -100, dtype=np.int16)
    hu[16:top_slice, 40:56, 20:76] = 120
    z, y, x = np.meshgrid(np.arange(40) * 2.5, np.arange(96) * 1.5, np.arange(96) * 1.5, indexing="ij")
    hu[(z - 50.0) ** 2 + (y - 72.0) ** 2 + (x - 45.0) ** 2 <= 6.0**2] = 250
    return CtVolume(hu=hu, spacing=(2.5, 1.5, 1.5), origin=(-70.0, -40.0, 300.0),
                    acquisition=AcquisitionInfo(slice_thickness_mm=2.5, contrast=True))


@pytest.fixture(scope="module")
def threshold_artifact(tmp_path_factory) -> Path:
    card, _, _ = _card()
    return _export(tmp_path_factory.mktemp("ct_threshold") / "ct_test", ThresholdLocaliser(), ThresholdAnalyser(), card)


@pytest.fixture(scope="module")
def predictor(threshold_artifact: Path) -> CtPredictor:
    return load(threshold_artifact, threads=1)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def box_dicom(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("box_dicom")
    write_phantom_dicom(_box_volume(), folder, uid_seed="box")
    return folder


# ---------------------------------------------------------------- the recipe on a known study
def test_load_gives_a_ct_predictor(predictor: CtPredictor) -> None:
    assert isinstance(predictor, CtPredictor) and set(predictor.stages) == {"localiser", "analyser"}
    assert predictor.card.task == "ct" and predictor.probability(0.0) == pytest.approx(0.5)


def test_crop_restore_and_measure_on_a_known_study(predictor: CtPredictor, box_dicom: Path) -> None:
    analysis = predictor.analyse(box_dicom)
    result = analysis.result
    assert isinstance(result, Diagnosis), getattr(result, "summary", "")
    truth_gland_ml = 20 * 24 * 84 / 1000.0  # lesion voxels sit inside the block's footprint or just next to it
    m = result.measurements
    assert m["pancreas_found"] == 1.0 and m["pancreas_volume_ml"] == pytest.approx(truth_gland_ml, rel=0.2)
    assert m["lesion_count"] == 1.0 and 9.0 <= m["largest_lesion_diameter_mm"] <= 13.5
    lesion = result.lesions[0]
    assert lesion["location"] == "head" and lesion["volume_ml"] == pytest.approx(4 / 3 * np.pi * 6**3 / 1000, rel=0.35)
    # Labels are on the source grid; the measurements are measure_labels' on them.
    assert analysis.labels.shape == analysis.volume.shape and set(np.unique(analysis.labels)) == {0, 1, 2}
    direct = measure_labels(analysis.labels, analysis.volume)
    assert direct.pancreas_volume_ml == pytest.approx(m["pancreas_volume_ml"])
    expected = direct.lesions[0].to_dict()  # measured on the bounding box: equal up to float rounding
    assert set(expected) == set(lesion) and expected["location"] == lesion["location"]
    for key in set(expected) - {"location"}:
        assert np.allclose(expected[key], lesion[key], rtol=0, atol=1e-9), key
    # Calibrated probability: sigmoid(case_logit / T) with T = 2; the bright lesion makes it positive.
    finding = result.findings[0]
    assert finding.label == "pancreatic_cancer" and finding.code == "363418001" and finding.threshold == 0.5
    assert finding.probability == pytest.approx(1 / (1 + np.exp(-m["case_logit"] / 2.0))) and finding.positive
    assert json.loads(json.dumps(result.to_dict()))["lesions"][0]["location"] == "head"
    assert np.array_equal(predictor.segment(box_dicom), analysis.labels)


def test_runtime_matches_the_torch_pipeline(predictor: CtPredictor) -> None:
    from mayo_dx.training.ct_pipeline import analyse, localise

    volume = _box_volume()
    card = predictor.card
    params = {stage: CtPreprocessing.from_dict(card.preprocessing[stage]) for stage in ("localiser", "analyser")}
    box = localise(ThresholdLocaliser(), volume, params["localiser"], LOCALISER_PATCH, 0.5, context_mm=8.0)
    labels, logit = analyse(ThresholdAnalyser(), volume, box, params["analyser"], ANALYSER_PATCH, 0.5)
    analysis = predictor.analyse(volume)
    assert np.allclose(np.ravel(analysis.box_mm), np.ravel(box))
    assert analysis.case_logit == pytest.approx(logit, abs=1e-4)
    assert np.mean(analysis.labels == labels) > 0.9999


def test_deterministic_and_picklable(predictor: CtPredictor, box_dicom: Path) -> None:
    first = predictor.predict(box_dicom).to_dict()
    assert predictor.predict(box_dicom).to_dict() == first
    copy = pickle.loads(pickle.dumps(predictor))
    assert copy.predict(box_dicom).to_dict() == first


# ---------------------------------------------------------------- abstentions
def test_no_gland_abstains_and_segment_is_empty(tmp_path: Path) -> None:
    card, _, _ = _card()
    artifact = _export(tmp_path / "nothing", ThresholdLocaliser(found=False), ThresholdAnalyser(), card)
    nothing = load(artifact, threads=1)
    result = nothing.predict(_box_volume())
    assert isinstance(result, Abstention) and [reason.code for reason in result.reasons] == ["pancreas_not_found"]
    assert "no pancreas" in result.summary and "head-only or chest-only" in result.summary
    assert not nothing.segment(_box_volume()).any()


def test_gland_cut_by_the_field_of_view_abstains(predictor: CtPredictor) -> None:
    result = predictor.predict(_box_volume(top_slice=40))
    assert isinstance(result, Abstention) and result.reasons[0].code == "pancreas_truncated"
    assert "head side" in result.reasons[0].message


@pytest.mark.parametrize("change, code", [
    ({"spacing": (8.0, 1.5, 1.5), "acquisition": AcquisitionInfo(slice_thickness_mm=8.0, contrast=True)}, "slice_thickness"),
    ({"acquisition": AcquisitionInfo(slice_thickness_mm=2.5, contrast=False)}, "contrast_phase"),
    ({"acquisition": AcquisitionInfo(slice_thickness_mm=0.2, contrast=True)}, "slice_thickness"),
])
def test_acquisition_outside_the_card_abstains(predictor: CtPredictor, change: dict, code: str) -> None:
    volume = _box_volume()
    result = predictor.predict(volume.with_hu(volume.hu, **change))
    assert isinstance(result, Abstention) and code in [reason.code for reason in result.reasons]
    assert result.model == "ct_test"


def test_thick_slice_dicom_series_abstains_and_warnings_travel(predictor: CtPredictor, tmp_path: Path) -> None:
    thick = generate_phantom(shape=(16, 48, 48), seed=2)  # 200 mm / 16 slices = 12.5 mm
    write_phantom_dicom(thick, tmp_path / "thick", uid_seed="thick")
    result = predictor.predict(tmp_path / "thick")
    assert isinstance(result, Abstention) and {"slice_thickness", "slice_spacing"} <= {r.code for r in result.reasons}
    unknown = _box_volume()
    result = predictor.predict(unknown.with_hu(unknown.hu, acquisition=AcquisitionInfo(), warnings=("uneven spacing",)))
    assert isinstance(result, Diagnosis)
    assert [(issue.code, issue.severity) for issue in result.quality] == [("contrast_unknown", "warn"),
                                                                         ("geometry_warning", "warn")]


def test_card_patch_that_disagrees_with_the_graph_is_refused(tmp_path: Path) -> None:
    card, _, _ = _card(localiser_patch=[32, 32, 32])
    artifact = _export(tmp_path / "mismatch", ThresholdLocaliser(), ThresholdAnalyser(), card, graph_patch=LOCALISER_PATCH)
    with pytest.raises(ArtifactError, match="patch"):
        load(artifact)


# ---------------------------------------------------------------- registry networks, checkpoints, export CLI
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    from mayo_dx.imaging.nets import build_ct_analyser, build_ct_localiser

    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    localiser, analyser = build_ct_localiser(features=TINY), build_ct_analyser(features=TINY)
    card, loc, ana = _card(localiser, analyser)
    ana["card"] = card.to_dict()
    paths = []
    for name, net, entry in (("localiser", localiser, loc), ("analyser", analyser, ana)):
        path = folder / f"{name}.ckpt"
        torch.save({"state_dict": {f"net.{key}": value for key, value in net.state_dict().items()}, "mayo_dx": entry}, path)
        paths.append(path)
    return paths[0], paths[1]


def test_export_cli_from_two_checkpoints_and_predict_a_phantom_series(
        checkpoints: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mayo_dx.cli import main

    localiser, analyser = checkpoints
    output = tmp_path / "ct_model"
    with pytest.raises(ArtifactError, match="--localiser"):
        main(["export", str(analyser), "-o", str(output)])
    assert main(["export", str(analyser), "--localiser", str(localiser), "-o", str(output), "--generated", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["artifact"] == str(output)
    predictor = load(output, threads=1)
    stages = {stage["name"]: stage for stage in predictor.card.extra["export"]["stages"]}
    for stage in stages.values():
        assert stage["parity"]["max_abs_diff"] <= 1e-4 and stage["parity"]["inputs"] >= 2
    if (SHARED_CT / "totalseg_dicom").is_dir():
        assert "totalseg_dicom" in stages["analyser"]["parity_studies"]
    phantom = generate_phantom(shape=(32, 64, 64), seed=4, lesions=1)
    write_phantom_dicom(phantom, tmp_path / "series", uid_seed="p4")
    result = predictor.predict(tmp_path / "series")
    if isinstance(result, Abstention):  # untrained weights: the documented abstentions only
        assert {reason.code for reason in result.reasons} <= ABSTENTION_CODES
    else:
        assert 0.0 <= result.findings[0].probability <= 1.0 and result.measurements["pancreas_found"] == 1.0
    assert predictor.predict(tmp_path / "series").to_dict() == result.to_dict()


def test_fresh_interpreter_runtime_leaves_torch_out(threshold_artifact: Path, box_dicom: Path) -> None:
    code = (
        "import json, sys\n"
        "from mayo_dx.runtime import load\n"
        "import mayo_dx.runtime_ct, mayo_dx.runtime_ct_checks\n"
        f"result = load({str(threshold_artifact)!r}, threads=1).predict({str(box_dicom)!r})\n"
        "print(json.dumps([result.kind, sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'monai', 'torchvision', 'torchmetrics', 'onnx'))]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, timeout=120,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    kind, leaked = json.loads(completed.stdout.strip().splitlines()[-1])
    assert kind == "diagnosis" and leaked == []


def test_llm_tools_use_the_predictor_and_its_segmentation(threshold_artifact: Path, tmp_path: Path) -> None:
    import shutil

    from mayo_dx.llm.toolbox import Toolbox

    models, data = tmp_path / "models", tmp_path / "data"
    shutil.copytree(threshold_artifact, models / threshold_artifact.name)
    write_phantom_dicom(_box_volume(), data / "box", uid_seed="box")
    toolbox = Toolbox(models, [data])
    answer = toolbox.call("analyze_ct_pancreas", {"path": str(data / "box")}).structured
    assert answer["status"] == "assessed" and answer["cancer"]["positive"] and answer["pancreas"]["found"]
    assert answer["pancreas"]["lesions"][0]["location"] == "head" and "pancreatic head" in answer["summary"]
    rendered = toolbox.call("render_ct", {"path": str(data / "box")}).structured
    assert rendered["overlay"] == "masks"


@pytest.mark.skipif(not (SHARED_CT / "totalseg_dicom").is_dir(), reason="shared/data/ct (real TotalSegmentator CT) absent")
def test_real_study_with_a_cut_pancreas_is_refused() -> None:
    """The real 20-slice TotalSegmentator series holds only the pancreas' lowest 4 slices (label 7)."""
    from mayo_dx.imaging.nifti import read_nifti_labels
    from mayo_dx.imaging.read import read_series
    from mayo_dx.imaging.resample import preprocess_labels
    from mayo_dx.runtime_ct_checks import gland_issues, largest_component

    volume = read_series(SHARED_CT / "totalseg_dicom")
    truth = read_nifti_labels(SHARED_CT / "totalseg_nifti" / "example_seg_dicom.nii.gz", like=volume) == 7
    gland, geometry = preprocess_labels(truth, volume, CtPreprocessing(target_spacing=(4.0, 4.0, 4.0)))
    issues = gland_issues(largest_component(gland > 0), geometry.target, min_volume_ml=0.5)
    assert [issue.code for issue in issues] == ["pancreas_truncated"] and "feet" in issues[0].message
