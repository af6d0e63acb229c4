"""CT training layer: networks, numpy sliding window vs MONAI, cache, data modules, fit, card."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("lightning")

from monai.inferers import sliding_window_inference  # noqa: E402

from mayo_dx.errors import ArtifactError, InputError  # noqa: E402
from mayo_dx.imaging.data import Augmentation, CtDataModule, CtPatchDataset  # noqa: E402
from mayo_dx.imaging.data_cache import VolumeCache, cases_from_manifest, cases_from_msd, split_cases  # noqa: E402
from mayo_dx.imaging.inference import sliding_window_predict  # noqa: E402
from mayo_dx.imaging.nets import build_ct_analyser, build_ct_localiser, network_config  # noqa: E402
from mayo_dx.imaging.phantom_io import write_msd_pancreas  # noqa: E402
from mayo_dx.imaging.resample import CtPreprocessing  # noqa: E402
from mayo_dx.registry import get_model, list_models  # noqa: E402
from mayo_dx.training.ct_evaluation import fit_temperature_smoothed, summarise_cases, threshold_at_specificity  # noqa: E402
from mayo_dx.training.segmentation import sliding_window_case  # noqa: E402

TINY = (4, 4, 8, 8, 16, 4)
COARSE = CtPreprocessing(target_spacing=(8.0, 8.0, 8.0))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("msd")
    write_msd_pancreas(folder, 6, seed=3, n_test=1, shape=(32, 48, 48), cancer_fraction=0.5)
    return folder


# ---------------------------------------------------------------- networks
def test_networks_are_registered_and_give_the_documented_shapes() -> None:
    assert {"ct_pancreas_analyser", "ct_pancreas_localiser"} <= set(list_models("ct"))
    localiser = get_model("ct_pancreas_localiser").factory(features=TINY).eval()
    analyser = build_ct_analyser(features=TINY, out_channels=3).eval()
    with torch.no_grad():
        assert localiser(torch.zeros(2, 1, 32, 48, 64)).shape == (2, 2, 32, 48, 64)
        segmentation, case = analyser(torch.zeros(2, 1, 32, 32, 48))
    assert segmentation.shape == (2, 3, 32, 32, 48) and case.shape == (2, 1)
    assert network_config(analyser) == {"name": "ct_pancreas_analyser", "kwargs": analyser.config}
    with pytest.raises(TypeError):
        network_config(torch.nn.Linear(1, 1))


# ---------------------------------------------------------------- numpy sliding window
def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 3, 3, padding=1)).eval()


@pytest.mark.parametrize(("shape", "patch", "overlap", "mode"), [
    ((20, 37, 29), (16, 16, 16), 0.5, "gaussian"),
    ((20, 37, 29), (16, 24, 16), 0.25, "gaussian"),
    ((11, 40, 18), (16, 16, 16), 0.5, "gaussian"),  # z and x shorter than the patch: padded
    ((20, 37, 29), (16, 16, 16), 0.5, "constant"),
])
def test_numpy_sliding_window_matches_monai(shape, patch, overlap, mode) -> None:
    net = _tiny_net()
    volume = np.random.default_rng(1).normal(size=(1, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = sliding_window_inference(torch.from_numpy(volume)[None], patch, 1, net, overlap=overlap, mode=mode)[0].numpy()

        def run_patch(window: np.ndarray) -> np.ndarray:
            return net(torch.from_numpy(window)[None])[0].numpy()

        actual = sliding_window_predict(volume, run_patch, patch, overlap=overlap, mode=mode)
    assert actual.shape == expected.shape == (3, *shape)
    assert np.abs(actual - expected).max() < 1e-4


def test_numpy_sliding_window_refuses_bad_shapes() -> None:
    with pytest.raises(InputError):
        sliding_window_predict(np.zeros((8, 8, 8), np.float32), lambda patch: patch, (4, 4, 4))
    with pytest.raises(InputError):
        sliding_window_predict(np.zeros((1, 8, 8, 8), np.float32), lambda patch: patch[:, :2], (4, 4, 4))


def test_case_logit_is_the_maximum_over_windows() -> None:
    class Probe(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2, *x.shape[2:]), x.amax(dim=(1, 2, 3, 4))[:, None]

    image = torch.zeros(1, 1, 16, 16, 40)
    image[..., 35] = 7.0  # only the last window sees it
    _, case = sliding_window_case(Probe(), image, (16, 16, 16), overlap=0.5, sw_batch_size=2)
    assert case.tolist() == [[7.0]]


# ---------------------------------------------------------------- cache and data
def test_cache_is_on_disk_memory_mapped_and_reused(phantom_folder: Path, tmp_path: Path) -> None:
    cases = cases_from_msd(phantom_folder)
    assert sorted({case.case_label for case in cases}) == [0, 1]
    first = VolumeCache(tmp_path, "analyser", COARSE, context_mm=8.0)
    image, labels, meta = first.load(cases[0])
    assert isinstance(image, np.memmap) and isinstance(labels, np.memmap) and first.built == 1
    assert image.dtype == np.float32 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert set(np.unique(labels)) <= {0, 1, 2} and meta["foreground_box"] is not None
    assert {path.suffix for path in first.folder.iterdir()} == {".npy", ".json"}
    second = VolumeCache(tmp_path, "analyser", COARSE, context_mm=8.0)  # same recipe: read, not rebuilt
    again, _, _ = second.load(cases[0])
    assert second.built == 0 and second.loaded == 1 and np.array_equal(again, image)
    changed = VolumeCache(tmp_path, "analyser", CtPreprocessing(target_spacing=(6.0, 6.0, 6.0)), context_mm=8.0)
    assert changed.folder != first.folder and not changed.is_cached(cases[0])


def test_cached_analyser_crop_is_the_runtime_preprocessing(phantom_folder: Path, tmp_path: Path) -> None:
    """Training reads exactly what preprocess_ct gives for the gland box: one implementation."""
    from mayo_dx.imaging.data_cache import gland_world_box
    from mayo_dx.imaging.msd import load_msd_case, read_msd_dataset
    from mayo_dx.imaging.resample import preprocess_ct
    from mayo_dx.imaging.volume import Grid

    dataset = read_msd_dataset(phantom_folder)
    case = cases_from_msd(phantom_folder)[1]
    loaded = load_msd_case(dataset, case.case_id)
    cache = VolumeCache(tmp_path, "analyser", COARSE, context_mm=8.0)
    image, labels, meta = cache.load(case)
    box = gland_world_box(loaded.labels, Grid.of(loaded.volume), 8.0)
    expected, geometry = preprocess_ct(loaded.volume, COARSE, box=box)
    assert np.array_equal(np.asarray(image), expected)
    assert meta["geometry"] == geometry.to_dict() and labels.shape == expected.shape


def test_datamodule_second_epoch_reads_the_cache(phantom_folder: Path, tmp_path: Path) -> None:
    module = CtDataModule("localiser", str(tmp_path), COARSE, (16, 32, 32), msd_folder=str(phantom_folder),
                          batch_size=2, augmentation=Augmentation(probability=1.0), validation_fraction=0.34)
    module.prepare_data()
    module.setup("fit")
    built = module.cache.built
    assert built == 6
    for epoch in range(2):
        module.train_dataset.epoch = epoch
        batches = list(module.train_dataloader())
        assert batches[0]["image"].shape[1:] == (1, 16, 32, 32) and batches[0]["label"].dtype == torch.int64
    assert module.cache.built == built and module.cache.loaded >= 2 * len(module.train_dataset)
    validation = next(iter(module.val_dataloader()))
    assert validation["image"].shape[:2] == (1, 1) and validation["label"].shape == validation["image"].shape
    description = module.describe()
    assert description["synthetic"] is True and description["preprocessing"] == COARSE.to_dict()


def test_patches_are_deterministic_and_augmented_only_in_training(phantom_folder: Path, tmp_path: Path) -> None:
    cache = VolumeCache(tmp_path, "localiser", COARSE)
    cases = cases_from_msd(phantom_folder)
    plain = CtPatchDataset(cache, cases, (16, 32, 32), seed=5)
    augmented = CtPatchDataset(cache, cases, (16, 32, 32), seed=5, augmentation=Augmentation(probability=1.0).build())
    assert torch.equal(plain[3]["image"], plain[3]["image"])
    assert torch.equal(augmented[3]["image"], augmented[3]["image"])  # seeded per (seed, epoch, index)
    assert not torch.equal(plain[3]["image"], augmented[3]["image"])


def test_manifest_cases_and_datamodule(phantom_folder: Path, tmp_path: Path) -> None:
    dataset = json.loads((phantom_folder / "dataset.json").read_text())
    manifest = tmp_path / "cases.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "cancer"])
        for number, entry in enumerate(dataset["training"]):
            label = str(phantom_folder / entry["label"]) if number else ""  # first case: no label map
            writer.writerow([str(phantom_folder / entry["image"]), label, "1" if number == 0 else ""])
    cases = cases_from_manifest(manifest)
    assert cases[0].label_path is None and cases[0].case_label == 1 and cases[1].case_label is None
    module = CtDataModule("localiser", str(tmp_path / "cache"), COARSE, (16, 32, 32), manifest=str(manifest),
                          validation_fraction=0.0, augmentation=Augmentation(probability=0.0))
    module.prepare_data()
    module.setup("fit")
    samples = [module.train_dataset[index] for index in range(len(module.train_dataset))]
    unlabelled = [sample for sample in samples if not sample["has_labels"]]
    assert unlabelled and all(bool((sample["label"] == -1).all()) for sample in unlabelled)
    analyser = CtDataModule("analyser", str(tmp_path / "cache"), COARSE, (16, 32, 32), manifest=str(manifest))
    with pytest.raises(InputError, match="no pancreas box"):
        analyser.prepare_data()  # an unlabelled case needs a localiser checkpoint for its crop
    bad = tmp_path / "bad.csv"
    bad.write_text("image,cancer\n" + dataset["training"][0]["image"] + ",2\n")
    with pytest.raises(Exception, match="does not exist|cancer must be 0 or 1"):
        cases_from_manifest(bad)


def test_split_is_stratified_and_seeded(phantom_folder: Path) -> None:
    cases = cases_from_msd(phantom_folder)
    first, second = split_cases(cases, 0.34, 0.0, seed=1), split_cases(cases, 0.34, 0.0, seed=1)
    assert first == second
    assert sorted(case.case_label for case in first["validation"]) == [0, 1]


# ---------------------------------------------------------------- operating point and metrics
def test_threshold_at_specificity_and_summary() -> None:
    rng = np.random.default_rng(0)
    targets = np.r_[np.zeros(100, int), np.ones(50, int)]
    scores = np.r_[rng.normal(0, 1, 100), rng.normal(2, 1, 50)]
    probabilities = 1 / (1 + np.exp(-scores))
    threshold = threshold_at_specificity(targets, probabilities, 0.95)
    specificity = float(np.mean(probabilities[targets == 0] < threshold))
    sensitivity = float(np.mean(probabilities[targets == 1] >= threshold))
    assert specificity >= 0.95
    for candidate in np.unique(probabilities):  # no threshold meeting the target has a higher sensitivity
        if np.mean(probabilities[targets == 0] < candidate) >= 0.95:
            assert np.mean(probabilities[targets == 1] >= candidate) <= sensitivity
    separable_logits = np.r_[-np.linspace(2, 4, 4), np.linspace(2, 4, 4)]
    assert fit_temperature_smoothed(separable_logits, [0] * 4 + [1] * 4) > 0.5  # not driven to its bound
    records = [{"target": int(t), "logit": float(s), "localised": True, "dice_pancreas": 0.8, "dice_lesion": None,
                "lesion_diameter_mm": (15.0 if i % 2 else 30.0) if t else None} for i, (t, s) in enumerate(zip(targets, scores))]
    summary = summarise_cases(records, 1.0, threshold, bootstrap_resamples=50)
    assert 0.85 < summary["auroc"] < 0.97 and summary["auroc_ci95"][0] < summary["auroc"] < summary["auroc_ci95"][1]
    assert summary["specificity"] >= 0.95
    sizes = summary["sensitivity_by_lesion_size"]
    assert sizes["lt_20mm"]["cases"] == 25 and sizes["ge_20mm"]["cases"] == 25


# ---------------------------------------------------------------- end to end through LightningCLI
def _cli(config: str, root: Path, data: Path, *extra: str) -> None:
    from mayo_dx.training.ct_cli import main

    stage = "localiser" if "localiser" in config else "analyser"
    main(["fit", "-c", config, "--data.msd_folder", str(data), "--data.cache_dir", str(root / "cache"),
          "--trainer.default_root_dir", str(root / stage), "--trainer.logger", "false",
          "--trainer.callbacks.dirpath", str(root / stage), "--data.validation_fraction", "0.25",
          "--data.test_fraction", "0.25", "--data.phantoms.n_cases", "16", "--data.phantoms.shape", "[48, 64, 64]",
          "--data.phantoms.seed", "0", "--data.augmentation.probability", "0.0", *extra])


@pytest.mark.slow
def test_two_stages_train_through_the_cli_and_write_a_card(tmp_path: Path) -> None:
    from mayo_dx.card import ModelCard
    from mayo_dx.training.ct_checkpoint import load_trained_ct

    project = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    _cli(str(project / "configs/ct/phantom_localiser.yaml"), tmp_path, data, "--trainer.max_epochs", "16",
         "--trainer.check_val_every_n_epoch", "16", "--data.preprocessing.target_spacing", "[6.0, 6.0, 6.0]",
         "--data.patch_size", "[32, 48, 48]", "--data.samples_per_case", "2")
    localiser_checkpoint = tmp_path / "localiser" / "best.ckpt"
    with pytest.raises(ArtifactError, match="a localiser checkpoint, expected the analyser"):
        load_trained_ct(localiser_checkpoint, localiser_checkpoint)
    _cli(str(project / "configs/ct/phantom_analyser.yaml"), tmp_path, data, "--trainer.max_epochs", "16",
         "--trainer.check_val_every_n_epoch", "16", "--data.preprocessing.target_spacing", "[4.0, 4.0, 4.0]",
         "--data.patch_size", "[32, 32, 48]", "--data.samples_per_case", "2", "--card.bootstrap_resamples", "100",
         "--card.localiser_checkpoint", str(localiser_checkpoint), "--model.init_args.class_weights", "null")
    localiser, analyser, card = load_trained_ct(localiser_checkpoint, tmp_path / "analyser" / "best.ckpt")
    assert isinstance(card, ModelCard) and card.task == "ct" and card.synthetic_training_data
    assert set(card.preprocessing) == {"localiser", "analyser"}
    assert card.input_spec["analyser"]["patch_size"] == [32, 32, 48] and card.input_spec["localiser"]["patch_size"] == [32, 48, 48]
    assert card.calibration["method"] == "temperature" and card.calibration["temperature"][0] > 0
    assert 0.0 <= card.thresholds["pancreatic_cancer"] <= 1.0 and "specificity >= 0.95" in card.metrics["threshold_rule"]
    validation, test = card.metrics["validation"], card.metrics["test"]
    assert validation["cases"] == 4 and test["cases"] == 4
    assert set(test["sensitivity_by_lesion_size"]) == {"lt_20mm", "ge_20mm"}
    # Clearly learnt: a network that learns nothing gives Dice near 0 (empty) or ~0.05 (everything).
    assert validation["dice_pancreas"] > 0.4 and test["dice_pancreas"] > 0.4, card.metrics
    with torch.no_grad():
        assert localiser(torch.zeros(1, 1, 32, 48, 48)).shape == (1, 2, 32, 48, 48)
        assert analyser(torch.zeros(1, 1, 32, 32, 48))[1].shape == (1, 1)
    assert ModelCard.from_json(card.to_json()) == card


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """Lightning DDP (gloo, 2 CPU processes) trains the analyser task; the synchronised metrics are logged."""
    import os
    import subprocess
    import sys

    project = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    write_msd_pancreas(data, 8, seed=1, n_test=1, shape=(32, 48, 48), cancer_fraction=0.5)
    command = [sys.executable, "-m", "mayo_dx.training.ct_cli", "fit", "-c", "configs/ct/phantom_analyser.yaml",
               "--data.msd_folder", str(data), "--data.cache_dir", str(tmp_path / "cache"),
               "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
               "--trainer.callbacks.dirpath", str(tmp_path / "analyser"), "--data.validation_fraction", "0.5",
               "--data.preprocessing.target_spacing", "[8.0, 8.0, 8.0]", "--data.patch_size", "[16, 32, 32]",
               "--data.augmentation.probability", "0.0", "--model.init_args.net.init_args.features", "[4, 4, 8, 8, 16, 4]",
               "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
               "--trainer.max_epochs", "1", "--trainer.check_val_every_n_epoch", "1", "--card.localiser_checkpoint", "null"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PL_TORCH_DISTRIBUTED_BACKEND": "gloo"}
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=240, env=environment, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    header = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {"val_dice_pancreas", "val_auroc", "train_loss"} <= set(header)
    assert (tmp_path / "analyser" / "best.ckpt").is_file()
