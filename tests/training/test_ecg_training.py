"""ECG training layer: config-driven fit on generated data, the card, checkpoints, data sources, DDP.

The fit test trains the shipped ``configs/ecg/synthetic.yaml`` recipe (xresnet1d18) on 400
generated PTB-XL-shaped records for a few epochs on the CPU and asserts a macro test AUROC of
at least 0.90; the same pipeline with the untrained network scores far below that, which the
test also checks, so the bar cannot be met by a model that learns nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mayo_dx.card import ModelCard
from mayo_dx.ecg.data import EcgDataModule, collate_windows
from mayo_dx.ecg.io import read
from mayo_dx.ecg.signal import preprocess, sliding_windows
from mayo_dx.ecg.manifest import CsvManifestSource, WfdbHeaderSource
from mayo_dx.ecg.sources import SyntheticPtbxlSource
from mayo_dx.errors import ArtifactError, InputError, UnsupportedFormat
from mayo_dx.training.checkpoint import load_trained, read_entry
from mayo_dx.training.evaluation import evaluate_checkpoint
from mayo_dx.training.finalise import SYNTHETIC_STATEMENT, build_card
from mayo_dx.training.network import RegisteredNet
from mayo_dx.training.task import ClassificationTask, aggregate_windows

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / "configs" / "ecg" / "synthetic.yaml"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
RECORDS = 400


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synthetic_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic") / "ptbxl"
    SyntheticPtbxlSource(folder, n_records=RECORDS, seed=3)  # writes the folder
    return folder


def _fit_arguments(folder: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit", "-c", str(CONFIG),
        "--data.source.init_args.folder", str(folder), "--data.source.init_args.n_records", str(RECORDS),
        "--data.source.init_args.seed", "3", "--data.source.init_args.workers", "1",
        "--data.cache_dir", str(root / "cache"), "--data.cache_workers", "1", "--data.batch_size", "32",
        "--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root),
        "--card.bootstrap_resamples", "200", *extra,
    ]


@pytest.fixture(scope="module")
def trained(synthetic_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mayo_dx.cli import main

    root = tmp_path_factory.mktemp("run")
    started = time.perf_counter()
    assert main(_fit_arguments(synthetic_folder, root, "--trainer.max_epochs", "12")) == 0
    seconds = time.perf_counter() - started
    checkpoints = sorted(root.rglob("best-*.ckpt"))
    assert len(checkpoints) == 1, checkpoints
    print(f"\nconfig-driven fit on {RECORDS} records: {seconds:.1f} s")
    return {"checkpoint": checkpoints[0], "root": root, "seconds": seconds}


def test_fit_reaches_auroc_and_writes_card(trained: dict) -> None:
    checkpoint = trained["checkpoint"]
    card = ModelCard.from_json((checkpoint.parent / "card.json").read_text())
    assert card.metrics["test"]["auroc_macro"] >= 0.90, card.metrics["test"]
    low, high = card.metrics["test"]["auroc_macro_ci95"]
    assert low <= card.metrics["test"]["auroc_macro"] <= high
    assert card.label_names == ("CD", "HYP", "MI", "NORM", "STTC")
    assert card.labels[2].system == "SCP-ECG" and "myocardial infarction" in card.labels[2].description
    assert card.calibration["method"] == "temperature" and len(card.calibration["temperature"]) == 5
    assert set(card.thresholds) == set(card.label_names) and card.metrics["threshold_rule"] == "max_f1"
    assert card.synthetic_training_data and SYNTHETIC_STATEMENT in card.limitations
    assert card.input_spec == {
        "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"], "sampling_rate": 100.0,
        "window_samples": 250, "stride_samples": 125, "aggregation": "max", "multi_label": True, "min_duration_s": 2.5,
    }
    assert card.preprocessing["normalisation"] == "global" and len(card.preprocessing["std"]) == 12
    for split in ("validation", "test"):
        per_class = card.metrics[split]["per_class"]
        assert {"auroc", "auroc_ci95", "f1", "sensitivity", "specificity"} <= set(per_class["NORM"])
        assert 0.0 <= card.metrics[split]["ece"] <= 1.0
    # The same card is stored inside the checkpoint, as plain JSON types.
    assert ModelCard.from_dict(read_entry(checkpoint)["card"]) == card
    metrics = (next(trained["root"].rglob("metrics.csv"))).read_text().splitlines()[0].split(",")
    assert {"train_loss", "val_loss", "val_auroc_macro", "val_auroc_MI"} <= set(metrics)


def test_untrained_network_fails_the_bar(trained: dict, synthetic_folder: Path) -> None:
    """The AUROC bar is informative: the same pipeline without training stays well below 0.90."""
    torch.manual_seed(0)
    data = EcgDataModule(SyntheticPtbxlSource(synthetic_folder, n_records=RECORDS, seed=3), cache_dir=trained["root"] / "cache")
    data.setup("fit")
    task = ClassificationTask(RegisteredNet("xresnet1d18", num_labels=5), data.label_names)
    card = build_card(task, data, name="untrained", bootstrap_resamples=0)
    print(f"\nuntrained macro test AUROC: {card.metrics['test']['auroc_macro']:.3f}")
    assert card.metrics["test"]["auroc_macro"] < 0.85


def test_load_trained_round_trip_and_evaluate(trained: dict) -> None:
    checkpoint = trained["checkpoint"]
    net, card = load_trained(checkpoint)
    assert not net.training
    spec = read_entry(checkpoint)["net"]
    task = ClassificationTask.load_from_checkpoint(checkpoint, net=RegisteredNet(spec["name"], spec["num_labels"]), weights_only=True)
    task.eval()
    signal = torch.randn(3, 12, 1000)
    with torch.no_grad():
        assert torch.equal(net(signal), task.net(signal))
    assert task.card == card
    # evaluate re-reads the records from their files with the card's preprocessing (no cache).
    result = evaluate_checkpoint(checkpoint, "test", bootstrap_resamples=0)
    assert result["auroc_macro"] == pytest.approx(card.metrics["test"]["auroc_macro"], abs=1e-6)
    assert result["per_class"]["MI"]["f1"] == pytest.approx(card.metrics["test"]["per_class"]["MI"]["f1"], abs=1e-9)


def test_evaluate_command_writes_json(trained: dict, tmp_path: Path) -> None:
    from mayo_dx.cli import main

    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(trained["checkpoint"]), "--fold", "validation", "--out", str(out), "--bootstrap", "50"]) == 0
    result = json.loads(out.read_text())
    assert result["split"] == "validation" and result["per_class"]["CD"]["sensitivity"] is not None
    assert "ece" in result and result["auroc_macro_ci95"] is not None


def test_checkpoint_without_card_is_refused(tmp_path: Path) -> None:
    task = ClassificationTask(RegisteredNet("xresnet1d18", num_labels=2), ["A", "B"])
    path = tmp_path / "bare.ckpt"
    torch.save({"state_dict": task.state_dict(), "mayo_dx": task.checkpoint_entry()}, path)
    with pytest.raises(ArtifactError, match="no model card"):
        load_trained(path)
    with pytest.raises(ArtifactError, match="no such checkpoint"):
        load_trained(tmp_path / "missing.ckpt")


def test_cache_and_windows_match_shared_preprocessing(synthetic_folder: Path, tmp_path: Path) -> None:
    source = SyntheticPtbxlSource(synthetic_folder, n_records=RECORDS, seed=3)
    cached = EcgDataModule(source, cache_dir=tmp_path / "cache")
    lazy = EcgDataModule(source, standardisation_records=None)
    cached.setup("fit")
    lazy.setup("fit")
    assert np.allclose(cached.mean, lazy.mean, atol=1e-6) and np.allclose(cached.std, lazy.std, atol=1e-6)
    path = source.splits()["test"].paths[0]
    expected = preprocess(read(path), cached.preprocessing)
    item = cached.dataset("test")[0]
    windows = sliding_windows(expected, 250, 125)
    assert item["signal"].shape == (7, 12, 250)
    assert np.allclose(item["signal"].numpy(), windows, atol=1e-5)
    assert np.allclose(lazy.dataset("test")[0]["signal"].numpy(), windows, atol=1e-6)
    crop = cached.dataset("train")[0]["signal"]
    assert crop.shape == (12, 250)


def test_csv_manifest_datamodule(synthetic_folder: Path, tmp_path: Path) -> None:
    records = sorted((synthetic_folder / "records100").rglob("*.hea"))[:30]
    rows = ["path,low_ef,afib,split"]
    for index, header in enumerate(records):
        split = "train" if index < 20 else "validation" if index < 25 else "test"
        rows.append(f"{os.path.relpath(header.with_suffix(''), tmp_path)},{index % 2},{int(index % 3 == 0)},{split}")
    manifest = tmp_path / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n")
    source = CsvManifestSource(manifest, descriptions={"low_ef": "ejection fraction <= 35 %"})
    data = EcgDataModule(source, batch_size=8, eval_batch_size=5)
    assert data.label_names == ["low_ef", "afib"] and data.num_labels == 2
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["signal"].shape == (8, 12, 250) and batch["target"].shape == (8, 2)
    evaluation = next(iter(data.val_dataloader()))
    assert evaluation["windows"].tolist() == [7] * 5 and evaluation["signal"].shape == (35, 12, 250)
    assert data.describe()["labels"][0]["description"] == "ejection fraction <= 35 %"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,low_ef\nx.hea,2\n")
    with pytest.raises(UnsupportedFormat, match="0 or 1"):
        CsvManifestSource(bad)


def test_single_label_manifest_fit_and_card(synthetic_folder: Path, tmp_path: Path) -> None:
    """A softmax task from a CSV manifest trains through Lightning and gets one temperature, mean aggregation."""
    import lightning.pytorch as pl
    import pandas as pd

    from mayo_dx.ecg.sources import SyntheticPtbxlSource as Source

    splits = Source(synthetic_folder, n_records=RECORDS, seed=3).splits()
    database = pd.read_csv(synthetic_folder / "ptbxl_database.csv", index_col="ecg_id")
    normal = {
        f"records100/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_lr"
        for ecg_id in database.index
        if "NORM" in database.loc[ecg_id, "scp_codes"]
    }
    rows = ["path,normal,abnormal,split"]
    for split, name in (("train", "train"), ("validation", "validation"), ("test", "test")):
        for path in splits[split].paths[:60 if split == "train" else 20]:
            relative = str(path.relative_to(synthetic_folder))
            rows.append(f"{relative},{int(relative in normal)},{int(relative not in normal)},{name}")
    manifest = synthetic_folder / "single_label.csv"
    manifest.write_text("\n".join(rows) + "\n")
    data = EcgDataModule(CsvManifestSource(manifest, multi_label=False), batch_size=16, eval_batch_size=10)
    task = ClassificationTask(RegisteredNet("xresnet1d18", data.num_labels), data.label_names, multi_label=data.multi_label)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=data)
    assert "val_auroc_macro" in trainer.callback_metrics
    card = build_card(task, data, name="normal_vs_abnormal", bootstrap_resamples=0)
    assert card.input_spec["aggregation"] == "mean" and card.input_spec["multi_label"] is False
    assert len(card.calibration["temperature"]) == 1 and set(card.thresholds) == {"normal", "abnormal"}
    assert not card.synthetic_training_data  # a CSV manifest is the user's data; the card does not guess


def test_wfdb_header_source_reads_snomed_labels() -> None:
    folder = SHARED_DATA / "ecg" / "cinc2021"
    if not folder.is_dir():
        pytest.skip(f"real CinC 2021 sample records not present: {folder}")
    source = WfdbHeaderSource(folder, {"TAb": "164934002", "SR": "426783006"}, validation_fraction=0.3, test_fraction=0.3)
    splits = source.splits()
    targets = np.concatenate([split.targets for split in splits.values()])
    assert len(targets) == sum(1 for _ in folder.glob("*.hea"))
    assert targets[:, 0].sum() >= 1 and targets[:, 1].sum() >= 1
    assert source.labels[0].system == "SNOMED CT"


def test_single_label_task_and_aggregation() -> None:
    task = ClassificationTask(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 4, 3)), ["a", "b", "c"], multi_label=False)
    assert task.aggregation == "mean"
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    assert task.loss(logits, torch.tensor([[1, 0, 0], [0, 0, 1]])) < task.loss(logits, torch.tensor([[0, 1, 0], [0, 1, 0]]))
    uneven = aggregate_windows(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([1, 2]), "mean")
    assert uneven.tolist() == [[1.0], [4.0]]
    batch = collate_windows([{"signal": torch.zeros(2, 12, 4), "target": torch.tensor([0.0, 1.0, 0.0])}] * 3)
    assert task.record_logits(batch).shape == (3, 3)
    with pytest.raises(InputError):
        ClassificationTask(torch.nn.Identity(), ["only"], multi_label=False)


def test_one_label_task_logs_auroc() -> None:
    """A single binary label (e.g. low ejection fraction) uses a binary AUROC; the separable signal scores 1."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    items = []
    for index in range(16):
        signal = torch.randn(3, 12, 8) * 0.1 + (index % 2)
        items.append({"signal": signal, "target": torch.tensor([float(index % 2)])})
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12 * 8, 1))
    torch.nn.init.constant_(net[1].weight, 1.0)
    task = ClassificationTask(net, ["low_ef"])
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(task, DataLoader(items, batch_size=4, collate_fn=collate_windows), verbose=False)[0]
    assert metrics["val_auroc_low_ef"] == pytest.approx(1.0) and metrics["val_auroc_macro"] == pytest.approx(1.0)


@pytest.mark.parametrize("task", ["all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm"])
def test_ptbxl_configs_hold_the_benchmark_recipe(task: str) -> None:
    subset = SHARED_DATA / "ecg" / "ptbxl" / "ptbxl_database_subset.csv"
    if not subset.is_file():
        pytest.skip(f"real PTB-XL metadata subset not present: {subset}")
    from mayo_dx.training.cli import EcgTrainingCLI

    config = PROJECT_ROOT / "configs" / "ecg" / f"ptbxl_{task}.yaml"
    cli = EcgTrainingCLI(
        ClassificationTask, EcgDataModule, run=False, auto_configure_optimizers=False,
        args=["-c", str(config), "--data.source.init_args.folder", str(subset), "--trainer.logger", "false"],
    )
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    assert model.net.spec["name"] == "xresnet1d101" and model.net.spec["num_labels"] == len(model.label_names)
    assert model.label_names == data.label_names and data.source.task == task
    assert (model.hparams.lr, model.hparams.weight_decay, model.hparams.schedule, model.aggregation) == (
        0.01, 0.01, "one_cycle", "max"
    )
    assert (data.base.target_fs, data.window_samples, data.stride_samples, data.batch_size) == (100.0, 250, 125, 128)
    assert trainer.max_epochs == 50 and cli.config["card"]["name"] == f"ecg_ptbxl_{task}"
    assert data.source.arguments["train_folds"] == list(range(1, 9)) and data.source.arguments["test_folds"] == [10]


def test_own_task_config_reads_a_labels_csv(tmp_path: Path) -> None:
    from mayo_dx.training.cli import EcgTrainingCLI

    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,low_ef,other\n" + "".join(f"r{index}.hea,{index % 2},0\n" for index in range(40)))
    cli = EcgTrainingCLI(
        ClassificationTask, EcgDataModule, run=False, auto_configure_optimizers=False,
        args=["-c", str(PROJECT_ROOT / "configs" / "ecg" / "own_task_csv.yaml"), "--trainer.logger", "false",
              "--data.source.init_args.path", str(manifest)],
    )
    assert cli.model.label_names == ["low_ef"] and cli.model.net.spec["num_labels"] == 1
    assert cli.datamodule.source.labels[0].description.startswith("left ventricular ejection fraction")
    assert sum(len(split.paths) for split in cli.datamodule.splits().values()) == 40


@pytest.mark.slow
def test_ddp_two_cpu_processes(synthetic_folder: Path, tmp_path: Path) -> None:
    """Lightning's DDP strategy (gloo, 2 CPU processes) trains a few steps and writes the same card."""
    command = [sys.executable, "-m", "mayo_dx.training.cli", *_fit_arguments(synthetic_folder, tmp_path)[0:],
               "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--card.bootstrap_resamples", "0"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PL_TORCH_DISTRIBUTED_BACKEND": "gloo"}
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240, env=environment, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    card = ModelCard.from_json(next(tmp_path.rglob("card.json")).read_text())
    assert set(card.metrics) == {"threshold_rule", "validation", "test"}
    assert 0.0 <= card.metrics["test"]["auroc_macro"] <= 1.0
    header = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert "val_auroc_macro" in header and "train_loss" in header
