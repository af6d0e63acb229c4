"""Static INT8 quantisation of an ECG artifact, calibrated on the card's data source.

Training layer (needs ``onnx`` through ``onnxruntime.quantization``). Steps:

1. **Calibration records** come from the card's data source, in this order: ``data`` (record
   files, folders or a manifest the user names, read like ``mayo-dx predict`` inputs); else
   the training split of ``card.extra["data_source"]`` (the record source the model was
   trained on, recorded by :func:`mayo_dx.training.finalise.build_card`) when it is readable
   here; else, for a model trained on generated data, records from the same generator; else
   :class:`~mayo_dx.errors.ArtifactError` (pass ``data``). Every record is prepared exactly as
   the runtime prepares it (quality, preprocessing from the card, windows).
2. :func:`mayo_dx.export.int8.static_int8` (QDQ, per-channel int8 weights, uint8 activations).
3. **Evaluation** on held-out records: the test split of the data source when it is readable
   (its labels matched to the card's by name), else generated records with PTB-XL superclass
   labels (:func:`mayo_dx.ecg.synthetic.generate_labelled_ecg`, a seed the calibration does
   not use). Both graphs predict through the card (window aggregation, temperature); macro
   AUROC (:func:`mayo_dx.metrics.macro_auroc`) of each, the largest probability difference,
   and the INT8/FP32 speed ratio on one batch of windows are reported.
4. If the AUROC drops by more than ``max_auroc_drop`` (default 0.01) nothing is written and
   :class:`~mayo_dx.errors.ArtifactError` is raised. Otherwise the INT8 graph is written with
   its own card: ``extra["quantization"]`` holds the report; ``extra["export"]["graph_sha256"]``
   names the new graph and ``source_graph_sha256`` the float32 one.

CT folder artifacts are quantised by :func:`mayo_dx.export.quantize_ct.quantize_ct_artifact`.

Example:
    >>> quantize_artifact("ecg.onnx", "ecg.int8.onnx")  # doctest: +SKIP
    {'artifact': 'ecg.int8.onnx', 'auroc_fp32': 0.91, 'auroc_int8': 0.908, ...}
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import onnx

from mayo_dx.artifact import CARD_KEY, CARD_SHA256_KEY, graph_sha256, read_artifact, sha256_hex
from mayo_dx.card import ModelCard
from mayo_dx.ecg.synthetic import SUPERCLASSES, generate_labelled_ecg, sample_labels
from mayo_dx.errors import ArtifactError, MayoDxError
from mayo_dx.export.int8 import RECIPE, speed_ratio, static_int8
from mayo_dx.export.onnx import _bare, _finalise, _write
from mayo_dx.metrics import macro_auroc
from mayo_dx.runtime import load
from mayo_dx.runtime_batch import discover_inputs

__all__ = ["quantize_artifact"]

LOGGER = logging.getLogger("mayo_dx")


@dataclasses.dataclass
class _Records:
    """Prepared window stacks, their targets over the card's labels (or None) and where they came from."""

    windows: list[np.ndarray]
    targets: np.ndarray | None
    description: str


def _prepare(predictor: Any, sources: Iterable[Any], limit: int) -> tuple[list[np.ndarray], list[int]]:
    windows, kept = [], []
    for index, source in enumerate(sources):
        if len(windows) >= limit:
            break
        try:
            item = predictor.prepare(source)
        except MayoDxError:  # an unreadable file does not stop calibration; it is counted out
            continue
        if hasattr(item, "windows"):
            windows.append(item.windows)
            kept.append(index)
    return windows, kept


def _generated(predictor: Any, card: ModelCard, count: int, seed: int) -> _Records:
    names = list(card.label_names)
    if not any(name in SUPERCLASSES for name in names):
        raise ArtifactError("generated records carry PTB-XL superclass labels; this card has none of them: "
                            "pass data (records of the model's own data source)")
    rng = np.random.default_rng(seed)
    labelled = [generate_labelled_ecg(sample_labels(rng), fs=500.0, seed=rng) for _ in range(count)]
    windows, kept = _prepare(predictor, [ecg.record for ecg in labelled], count)
    targets = np.array([[name in labelled[index].labels for name in names] for index in kept], dtype=int)
    return _Records(windows, targets, f"{len(windows)} generated PTB-XL-like records (mayo_dx.ecg.synthetic, "
                                      f"seed {seed})")


def _source(card: ModelCard) -> Any | None:
    """The card's record source when it is readable here (nothing is written or downloaded)."""
    recorded = card.extra.get("data_source")
    if not isinstance(recorded, dict):
        return None
    arguments = dict(recorded.get("init_args", {}))
    raw = arguments.get("folder") or arguments.get("path")
    if not raw:
        return None
    location = Path(str(raw))
    ptbxl = str(recorded.get("class_path", "")).endswith(("PtbxlSource", "SyntheticPtbxlSource"))
    if not location.exists() or (ptbxl and not (location / "ptbxl_database.csv").is_file()):
        return None  # a generated PTB-XL folder is not rewritten here: the generator serves instead
    from mayo_dx.ecg.sources import source_from_dict

    try:
        return source_from_dict(recorded)
    except (MayoDxError, OSError, ValueError, KeyError, TypeError):
        return None


def _split(predictor: Any, card: ModelCard, source: Any, splits: dict[str, Any], split: str, count: int,
           seed: int) -> _Records:
    part = splits[split]
    order = np.random.default_rng(seed).permutation(len(part.paths))
    chosen = [part.paths[index] for index in order]
    windows, kept = _prepare(predictor, chosen, count)
    source_names = [label.name for label in source.labels]
    columns = [source_names.index(name) if name in source_names else -1 for name in card.label_names]
    rows = np.asarray(part.targets)[order][kept]
    targets = np.stack([rows[:, column] if column >= 0 else np.full(len(rows), -1) for column in columns], axis=1)
    return _Records(windows, targets, f"{len(windows)} records of the {split} split of {source.description}")


def _user_data(predictor: Any, data: Sequence[str | Path], count: int) -> _Records:
    items = discover_inputs([str(path) for path in data], task="ecg")
    windows, _ = _prepare(predictor, (item.path for item in items if item.error is None), count)
    if not windows:
        raise ArtifactError(f"no readable ECG record in {[Path(path).name for path in data]}")
    return _Records(windows, None, f"{len(windows)} records given by the user")


def _evaluate(predictor: Any, windows: list[np.ndarray]) -> np.ndarray:
    return np.stack([predictor.probabilities(predictor.run({"signal": item})[0]) for item in windows])


def quantize_artifact(artifact: str | Path, output: str | Path | None = None, *,
                      data: Sequence[str | Path] | None = None, records: int = 200, max_auroc_drop: float = 0.01,
                      seed: int = 0, threads: int | None = 1) -> dict[str, Any]:
    """Write a static INT8 copy of an ECG artifact if its macro AUROC holds.

    Args:
        artifact: Float32 ``.onnx`` ECG artifact.
        output: Target path; default ``<stem>.int8.onnx`` beside the input.
        data: Record files, folders or manifests to calibrate on, instead of the card's data
            source.
        records: Records to calibrate on, and records to evaluate on (each at least 10).
        max_auroc_drop: Largest accepted macro-AUROC drop (fp32 minus int8).
        seed: Seed of record sampling and of generated records.
        threads: onnxruntime threads for the evaluation and the speed measurement.

    Returns:
        A JSON-ready report (also stored in the new card's ``extra["quantization"]``).

    Raises:
        ArtifactError: Not an ECG artifact, no calibration data (pass ``data``), no label to
            evaluate, or the AUROC drop exceeds the bound (nothing written).

    Example:
        >>> quantize_artifact("ecg.onnx", records=100)["auroc_change"]  # doctest: +SKIP
        -0.002
    """
    source = read_artifact(artifact)
    card = source.card
    if card.task != "ecg" or "model" not in source.stages:
        raise ArtifactError("quantize_artifact takes single-file ECG artifacts (CT folders: quantize_ct_artifact)")
    if records < 10:
        raise ArtifactError("quantize needs at least 10 calibration and 10 evaluation records")
    predictor = load(artifact, threads=threads)
    record_source = _source(card)
    splits = record_source.splits() if record_source is not None else {}
    if data:
        calibration = _user_data(predictor, data, records)
    elif record_source is not None:
        calibration = _split(predictor, card, record_source, splits, "train", records, seed)
    elif card.synthetic_training_data:
        calibration = _generated(predictor, card, records, seed)
    else:
        raise ArtifactError(f"the card's data source ({card.training_data or 'not recorded'}) is not readable here; "
                            "pass data: records of that source to calibrate on")
    evaluation = None
    if record_source is not None and len(splits["test"].paths):
        evaluation = _split(predictor, card, record_source, splits, "test", records, seed + 1)
    if evaluation is None or evaluation.targets is None or not (evaluation.targets >= 0).any():
        evaluation = _generated(predictor, card, records, seed + 1_000_003)
    targets = np.asarray(evaluation.targets)
    evaluated = [column for column in range(targets.shape[1])
                 if (targets[:, column] >= 0).all() and 0 < targets[:, column].sum() < len(targets)]
    if not evaluated:
        raise ArtifactError("no label has both classes in the evaluation records; raise records")
    truth = targets[:, evaluated]
    fp32_graph = _bare(onnx.load_from_string(source.stages["model"]))
    int8_model = static_int8(fp32_graph, ({"signal": windows} for windows in calibration.windows))
    reference = _evaluate(predictor, evaluation.windows)
    digest = graph_sha256(_bare(int8_model))
    export = {**dict(card.extra["export"]), "graph_sha256": digest, "source_graph_sha256": source.graph_sha256["model"]}
    timing_batch = np.concatenate(evaluation.windows)[:64]
    report: dict[str, Any] = {
        "method": RECIPE, "calibration_data": calibration.description, "evaluation_data": evaluation.description,
        "calibration_records": len(calibration.windows), "evaluation_records": len(evaluation.windows),
        "evaluated_labels": [card.label_names[column] for column in evaluated],
        "auroc_fp32": round(float(macro_auroc(truth, reference[:, evaluated])), 5), "max_auroc_drop": max_auroc_drop,
        "seed": seed,
        "speed": {"windows": int(len(timing_batch)), **speed_ratio(fp32_graph, _bare(int8_model), {"signal": timing_batch},
                                                                   threads=threads or 1)},
    }
    with tempfile.TemporaryDirectory() as folder:  # evaluate the INT8 graph through the same runtime
        staging = Path(folder) / "int8.onnx"
        staged_card = dataclasses.replace(card, extra={**dict(card.extra), "export": export})
        text = staged_card.to_json()
        staged, _ = _finalise(int8_model, {CARD_KEY: text, CARD_SHA256_KEY: sha256_hex(text.encode("utf-8"))})
        staging.write_bytes(staged)
        quantised = _evaluate(load(staging, threads=threads), evaluation.windows)
    auroc_int8 = float(macro_auroc(truth, quantised[:, evaluated]))
    report.update(auroc_int8=round(auroc_int8, 5), auroc_change=round(auroc_int8 - report["auroc_fp32"], 5),
                  max_probability_difference=round(float(np.abs(quantised - reference).max()), 5))
    if report["auroc_fp32"] - auroc_int8 > max_auroc_drop:
        raise ArtifactError(f"INT8 macro AUROC {auroc_int8:.4f} is {report['auroc_fp32'] - auroc_int8:.4f} below fp32 "
                            f"{report['auroc_fp32']:.4f}, beyond the bound {max_auroc_drop}; nothing written")
    if report["speed"]["int8_speedup"] < 1.0:
        LOGGER.warning("the INT8 graph ran %.2fx as fast as float32 on this CPU; the float32 artifact may serve "
                       "better here", report["speed"]["int8_speedup"])
    final_card = dataclasses.replace(card, version=f"{card.version}+int8",
                                     extra={**dict(card.extra), "export": export, "quantization": report})
    text = final_card.to_json()
    target = Path(output) if output is not None else Path(artifact).with_suffix(".int8.onnx")
    written, _ = _finalise(int8_model, {CARD_KEY: text, CARD_SHA256_KEY: sha256_hex(text.encode("utf-8"))})
    _write(target, written)
    read_artifact(target)
    return {"artifact": str(target), **report}
