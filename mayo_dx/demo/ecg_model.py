"""Demo steps for the ECG model: train with Lightning, export to ONNX, run the torch-free runtime.

The model learns the five PTB-XL superdiagnostic classes from generated PTB-XL-shaped records
(the same loader, preprocessing and recipe as the real benchmark, at a CPU-sized scale), so its
card says in plain words that it is trained on synthetic data and not for clinical use.

Example:
    >>> from mayo_dx.demo.ecg_model import training_config
    >>> training_config(Path("out"), records=400, epochs=2, seed=0)["model"]["net"]["init_args"]["name"]
    'xresnet1d18'
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ECG_MODEL_NAME", "export_ecg", "predict_ecg", "run_fit", "train_ecg", "training_config"]

#: Registry name of the demo ECG model (card name, artifact file name and tool output).
ECG_MODEL_NAME = "demo_ecg_synthetic_superdiagnostic"

StepResult = dict[str, Any]


def training_config(out: Path, *, records: int, epochs: int, seed: int) -> dict[str, Any]:
    """The LightningCLI config the demo trains with (``configs/ecg/synthetic.yaml``, smaller).

    Example:
        >>> training_config(Path("o"), records=100, epochs=1, seed=0)["trainer"]["max_epochs"]
        1
    """
    runs = out / "runs" / "ecg"
    return {
        "seed_everything": seed,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_epochs": epochs, "default_root_dir": str(runs),
            "enable_progress_bar": True, "log_every_n_steps": 5,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(runs), "name": "logs"}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"monitor": "val_auroc_macro", "mode": "max", "save_top_k": 1,
                                         "filename": "best-{epoch:02d}"}}],
        },
        "model": {"net": {"class_path": "mayo_dx.training.network.RegisteredNet", "init_args": {"name": "xresnet1d18"}},
                  "aggregation": "max", "lr": 0.01, "weight_decay": 0.01, "schedule": "one_cycle"},
        "data": {
            "source": {"class_path": "mayo_dx.ecg.sources.SyntheticPtbxlSource",
                       "init_args": {"folder": str(out / "data" / "ptbxl_synthetic"), "n_records": records,
                                     "seed": seed, "task": "superdiagnostic"}},
            "target_fs": 100.0, "highpass_hz": None, "normalisation": "global",
            "window_samples": 250, "stride_samples": 125, "batch_size": 64, "eval_batch_size": 64,
            "num_workers": 0, "cache_dir": str(runs / "cache"), "cache_workers": 1,
        },
        "card": {"name": ECG_MODEL_NAME, "version": "0.1.0", "threshold_rule": "max_f1", "bootstrap_resamples": 500},
    }


def run_fit(config: Path) -> int:
    """``mayo-dx fit -c config`` in this process (LightningCLI sees only these arguments)."""
    import sys

    from mayo_dx.cli import main

    saved = sys.argv
    sys.argv = [saved[0]]  # LightningCLI warns when the demo's own arguments are also present
    try:
        return main(["fit", "-c", str(config)])
    finally:
        sys.argv = saved


def train_ecg(out: Path, context: dict[str, Any], *, records: int, epochs: int, seed: int) -> StepResult:
    """Train the demo ECG model through ``mayo-dx fit`` with a config written to ``out/configs``."""
    import yaml

    config = training_config(out, records=records, epochs=epochs, seed=seed)
    runs = Path(config["trainer"]["default_root_dir"])
    shutil.rmtree(runs, ignore_errors=True)  # re-runnable: a fresh run each time
    path = out / "configs" / "ecg_demo.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    status = run_fit(path)
    if status != 0:
        raise RuntimeError(f"mayo-dx fit exited with {status}")
    checkpoints = sorted(runs.rglob("best-*.ckpt"))
    if not checkpoints:
        raise RuntimeError(f"training wrote no checkpoint under {runs}")
    card = json.loads((checkpoints[-1].parent / "card.json").read_text())
    context["ecg_checkpoint"] = checkpoints[-1]
    context["ecg_metrics_csv"] = next(iter(sorted(runs.rglob("metrics.csv"))), None)
    return {"config": str(path), "checkpoint": str(checkpoints[-1]), "test_metrics": card["metrics"].get("test", {}),
            "thresholds": card["thresholds"], "calibration": card["calibration"]}


def export_ecg(out: Path, context: dict[str, Any], *, models: Path) -> StepResult:
    """Export the best checkpoint to ``models/<name>.onnx`` with torch vs onnxruntime parity."""
    from mayo_dx.export.checkpoint import export_checkpoint
    from mayo_dx.runtime import load

    models.mkdir(parents=True, exist_ok=True)
    artifact = export_checkpoint(context["ecg_checkpoint"], models / f"{ECG_MODEL_NAME}.onnx", generated=4)
    predictor = load(artifact)
    context["ecg_artifact"] = artifact
    parity = predictor.card.extra.get("export", {}).get("parity", {})
    return {"artifact": str(artifact), "sha256": predictor.artifact_sha256, "parity": parity,
            "synthetic_training_data": predictor.card.synthetic_training_data,
            "limitations": list(predictor.card.limitations)}


def _write_corrupted(out: Path, record: Any) -> Path:
    """A copy of the real ECG with V2 off and a noise burst on II, as a WFDB record."""
    import wfdb

    signal = np.array(record.signal, dtype=np.float64, copy=True)
    signal[record.leads.index("V2")] = 0.0
    burst = np.random.default_rng(0).normal(scale=2.0, size=signal.shape[1] // 4)
    signal[record.leads.index("II"), : burst.size] += burst
    folder = out / "data" / "ecg"
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp("corrupted_copy", fs=record.fs, units=["mV"] * 12, sig_name=list(record.leads),
                p_signal=signal.T, fmt=["16"] * 12, write_dir=str(folder))
    return folder / "corrupted_copy.hea"


def predict_ecg(out: Path, context: dict[str, Any]) -> StepResult:
    """Run the artifact on the real ECG, generated test records and a corrupted copy; plot."""
    from pydicom.data import get_testdata_file

    from mayo_dx.plots import plot_ecg_12lead, plot_training_curves, save_png
    from mayo_dx.runtime import load

    predictor = load(context["ecg_artifact"], threads=2)
    real_path = out / "data" / "ecg" / "real_waveform_ecg.dcm"
    real_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file("waveform_ecg.dcm"), real_path)
    corrupted = _write_corrupted(out, context["real_record"])
    dataset = context["dataset"]
    test_ids = [int(ecg_id) for ecg_id in dataset.splits["test"][:3]]
    inputs = {"real DICOM ECG (pydicom waveform_ecg.dcm)": real_path, "corrupted copy of it": corrupted}
    inputs.update({f"generated test record {ecg_id} (truth: {', '.join(dataset.labels.loc[ecg_id])})":
                   dataset.record_path(ecg_id).with_suffix(".hea") for ecg_id in test_ids})
    results = {title: predictor.predict(path).to_dict() for title, path in inputs.items()}
    figures = out / "figures"
    # Occlusion saliency is the probability drop when a segment is blanked; a negative drop
    # (blanking raised the probability) is not evidence for the finding, so it is not shaded.
    saliency = np.clip(predictor.saliency(real_path), 0.0, None)
    from mayo_dx.ecg import read

    record = read(real_path)
    save_png(plot_ecg_12lead(record, saliency=_to_record_rate(saliency, predictor, record),
                             title="real ECG, saliency of the demo model (synthetic training, not for clinical use)"),
             figures / "ecg_12lead_saliency.png")
    if context.get("ecg_metrics_csv"):
        save_png(plot_training_curves(context["ecg_metrics_csv"]), figures / "ecg_training_curves.png")
    context.setdefault("tool_paths", {}).update({"ecg": real_path, "ecg_corrupted": corrupted})
    return {"predictions": results, "figures": sorted(str(path) for path in figures.glob("ecg_*.png"))}


def _to_record_rate(saliency: np.ndarray, predictor: Any, record: Any) -> np.ndarray:
    """Stretch saliency from the network's sampling rate to the record's (nearest sample)."""
    positions = np.minimum((np.arange(record.n_samples) * saliency.shape[1] / record.n_samples).astype(int),
                           saliency.shape[1] - 1)
    return saliency[:, positions]
