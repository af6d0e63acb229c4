"""Demo steps for the CT models: phantoms, two Lightning stages, a two-stage artifact, the runtime.

The localiser and analyser train on generated abdominal phantoms in the MSD Task07 layout (the
recipe of ``configs/ct/phantom_*.yaml``, fewer cases and epochs), the card is calibrated on
validation phantoms, and the exported folder is run torch-free on a phantom DICOM series the
models never saw. The card states that the model learnt from synthetic data only.

Example:
    >>> from mayo_dx.demo.ct_model import stage_config
    >>> stage_config(Path("o"), "localiser", quick=True, seed=0)["data"]["stage"]
    'localiser'
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["CT_MODEL_NAME", "export_ct", "predict_ct", "stage_config", "train_ct"]

#: Registry name of the demo CT model (card, artifact folder, tool output).
CT_MODEL_NAME = "demo_ct_pancreas_phantom"

StepResult = dict[str, Any]

_AUGMENTATION = {"probability": 0.15, "rotate_degrees": 10.0, "scale_range": 0.1, "intensity_scale": 0.1,
                 "intensity_shift": 0.05, "noise_std": 0.02, "gamma_range": [0.8, 1.25]}


def stage_config(out: Path, stage: str, *, quick: bool, seed: int) -> dict[str, Any]:
    """The LightningCLI config of one stage (``configs/ct/phantom_<stage>.yaml``, smaller).

    Example:
        >>> stage_config(Path("o"), "analyser", quick=False, seed=0)["model"]["class_path"].rsplit(".", 1)[-1]
        'CtAnalyserTask'
    """
    runs = out / "runs" / "ct"
    folder = runs / stage
    localiser = stage == "localiser"
    # The lesion is the slow part to learn (Dice still 0 at epoch 20 on phantoms): the analyser
    # gets 60 epochs; configs/ct/phantom_analyser.yaml trains 100 for the full recipe.
    epochs = (4 if quick else 20) if localiser else (4 if quick else 60)
    network = {"class_path": f"mayo_dx.imaging.nets.{'CtLocaliserNet' if localiser else 'CtAnalyserNet'}",
               "init_args": {"features": [8, 8, 16, 32, 64, 8], **({} if localiser else {"head_dropout": 0.2})}}
    model_args: dict[str, Any] = {"net": network, "lr": 0.003, "weight_decay": 1.0e-5, "sw_overlap": 0.25,
                                  "class_names": ["background", "gland"] if localiser
                                  else ["background", "pancreas", "lesion"]}
    if not localiser:
        model_args.update({"segmentation_loss": "dicece", "case_loss_weight": 0.5, "class_weights": [1.0, 1.0, 5.0]})
    return {
        "seed_everything": seed,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_epochs": epochs, "default_root_dir": str(folder),
            "enable_progress_bar": True, "log_every_n_steps": 5, "num_sanity_val_steps": 0,
            "check_val_every_n_epoch": 2 if quick else (5 if localiser else 10),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": str(folder), "name": "logs"}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(folder), "filename": "best", "monitor": "val_dice_mean",
                                         "mode": "max", "save_top_k": 1, "enable_version_counter": False}}],
        },
        "model": {"class_path": "mayo_dx.training.segmentation." + ("CtSegmentationTask" if localiser else "CtAnalyserTask"),
                  "init_args": model_args},
        "data": {
            "stage": stage, "msd_folder": str(runs / "data"),
            "phantoms": {"n_cases": 16 if quick else 30, "seed": seed, "shape": [64, 128, 128], "cancer_fraction": 0.5},
            "cache_dir": str(runs / "cache"),
            "preprocessing": {"target_spacing": [6.0, 6.0, 6.0] if localiser else [3.0, 3.0, 3.0],
                              "window_low": -87.0, "window_high": 199.0, "crop_margin_mm": 10.0},
            "patch_size": [32, 64, 64] if localiser else [48, 48, 64],
            **({} if localiser else {"context_mm": 8.0}),
            "batch_size": 2, "samples_per_case": 1, "foreground_probability": 0.67 if localiser else 0.5,
            "augmentation": _AUGMENTATION, "validation_fraction": 0.25, "test_fraction": 0.25, "split_seed": seed,
            "num_workers": 0,
        },
        "card": {"localiser_checkpoint": None if localiser else str(runs / "localiser" / "best.ckpt"),
                 "name": CT_MODEL_NAME, "version": "0.1.0", "specificity": 0.95, "bootstrap_resamples": 500},
    }


def train_ct(out: Path, context: dict[str, Any], *, quick: bool, seed: int) -> StepResult:
    """Train the localiser, then the analyser (whose fit end writes the calibrated card)."""
    import json

    import yaml

    from mayo_dx.demo.ecg_model import run_fit

    runs = out / "runs" / "ct"
    for stage in ("localiser", "analyser"):
        shutil.rmtree(runs / stage, ignore_errors=True)
    checkpoints: dict[str, Path] = {}
    for stage in ("localiser", "analyser"):
        path = out / "configs" / f"ct_demo_{stage}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(stage_config(out, stage, quick=quick, seed=seed), sort_keys=False))
        status = run_fit(path)
        checkpoint = runs / stage / "best.ckpt"
        if status != 0 or not checkpoint.is_file():
            raise RuntimeError(f"CT {stage} training failed (status {status}, checkpoint {checkpoint})")
        checkpoints[stage] = checkpoint
    context["ct_checkpoints"] = checkpoints
    context["ct_metrics_csv"] = next(iter(sorted((runs / "analyser").rglob("metrics.csv"))), None)
    from mayo_dx.training.checkpoint import read_entry

    card = read_entry(checkpoints["analyser"]).get("card") or {}
    return {"checkpoints": {stage: str(path) for stage, path in checkpoints.items()},
            "metrics": json.loads(json.dumps(card.get("metrics", {}), default=str)),
            "thresholds": card.get("thresholds"), "calibration": card.get("calibration")}


def export_ct(out: Path, context: dict[str, Any], *, models: Path) -> StepResult:
    """Export both stages and the card as one artifact folder ``models/<name>/``."""
    from mayo_dx.export.ct import export_ct_checkpoints
    from mayo_dx.runtime import load

    checkpoints = context["ct_checkpoints"]
    target = models / CT_MODEL_NAME
    shutil.rmtree(target, ignore_errors=True)
    artifact = export_ct_checkpoints(checkpoints["localiser"], checkpoints["analyser"], target, generated=1)
    predictor = load(artifact)
    context["ct_artifact"] = artifact
    return {"artifact": str(artifact), "sha256": predictor.artifact_sha256, "stages": list(predictor.stages),
            "synthetic_training_data": predictor.card.synthetic_training_data}


def predict_ct(out: Path, context: dict[str, Any]) -> StepResult:
    """Run the CT artifact on an unseen phantom DICOM series (a lesion) and a lesion-free one; plot."""
    from mayo_dx.imaging import generate_phantom, read_series, write_phantom_dicom
    from mayo_dx.plots import plot_ct_montage, plot_training_curves, save_png
    from mayo_dx.runtime import load

    predictor = load(context["ct_artifact"], threads=2)
    figures = out / "figures"
    results: dict[str, Any] = {}
    paths: dict[str, Path] = {}
    for name, lesions, case_seed in (("with_lesion", [{"diameter_mm": 25.0, "location": "head"}], 9001),
                                     ("without_lesion", 0, 9002)):
        phantom = generate_phantom(shape=(64, 128, 128), lesions=lesions, seed=case_seed)
        folder = out / "data" / "ct" / name
        shutil.rmtree(folder, ignore_errors=True)
        write_phantom_dicom(phantom, folder, uid_seed=f"mayo-dx-demo-ct-{case_seed}")
        paths[name] = folder
        volume = read_series(folder)
        results[name] = {"truth": phantom.truth.to_dict(), "prediction": predictor.predict(volume).to_dict()}
        labels = predictor.segment(volume)
        masks = {"pancreas": labels >= 1, "lesion": labels == 2}
        save_png(plot_ct_montage(volume, masks=masks), figures / f"ct_montage_{name}.png")
    if context.get("ct_metrics_csv"):
        save_png(plot_training_curves(context["ct_metrics_csv"]), figures / "ct_training_curves.png")
    context.setdefault("tool_paths", {})["ct"] = paths["with_lesion"]
    return {"cases": results, "figures": sorted(str(path) for path in figures.glob("ct_*.png"))}
