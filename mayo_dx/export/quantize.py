"""Static INT8 quantisation of an ECG artifact, with the measured AUROC change in its card.

Training layer (needs ``onnx`` through ``onnxruntime.quantization``). Steps:

1. Generate labelled synthetic records (:func:`mayo_dx.ecg.synthetic.generate_labelled_ecg`
   with PTB-XL-like label sets), preprocessed and windowed exactly as the runtime does. The
   first half calibrates, the second half evaluates.
2. ``quant_pre_process`` (constant folding, shape inference), then
   ``onnxruntime.quantization.quantize_static``: QDQ format, per-channel INT8 weights, INT8
   activations, MinMax calibration over the calibration windows.
3. Both graphs predict the evaluation records through the card (window aggregation and
   temperature); macro AUROC (:func:`mayo_dx.metrics.macro_auroc`, over card labels that are
   PTB-XL superclasses) is computed for each.
4. If the AUROC drops by more than ``max_auroc_drop`` (default 0.01) nothing is written and
   :class:`~mayo_dx.errors.ArtifactError` is raised. Otherwise the INT8 graph is written with
   its own card: ``extra["quantization"]`` holds both AUROCs, the change, the bound, the
   largest probability difference and the record counts; ``extra["export"]["graph_sha256"]``
   names the new graph.

Example:
    >>> quantize_artifact("ecg.onnx", "ecg.int8.onnx")  # doctest: +SKIP
    {'artifact': 'ecg.int8.onnx', 'auroc_fp32': 0.91, 'auroc_int8': 0.908, ...}
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from mayo_dx.artifact import CARD_KEY, CARD_SHA256_KEY, graph_sha256, read_artifact, sha256_hex
from mayo_dx.ecg.synthetic import SUPERCLASSES, generate_labelled_ecg, sample_labels
from mayo_dx.errors import ArtifactError
from mayo_dx.export.onnx import _bare, _finalise, _write
from mayo_dx.metrics import macro_auroc
from mayo_dx.runtime import load

__all__ = ["quantize_artifact"]


class _Windows(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"signal": batch}


def _evaluate(predictor: Any, prepared: list[Any]) -> np.ndarray:
    return np.stack([predictor.probabilities(predictor.run({"signal": item.windows})[0]) for item in prepared])


def quantize_artifact(artifact: str | Path, output: str | Path | None = None, *, records: int = 200,
                      max_auroc_drop: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """Write a static INT8 (QDQ, per-channel) copy of an ECG artifact if its AUROC holds.

    Args:
        artifact: Float32 ``.onnx`` ECG artifact.
        output: Target path; default ``<stem>.int8.onnx`` beside the input.
        records: Generated records (half calibrate, half evaluate; at least 20).
        max_auroc_drop: Largest accepted macro-AUROC drop (fp32 minus int8).
        seed: Seed of the generated records.

    Returns:
        A JSON-ready report (also stored in the new card's ``extra["quantization"]``).

    Raises:
        ArtifactError: Not an ECG artifact, no superclass labels to evaluate, or the AUROC
            drop exceeds the bound (nothing written).

    Example:
        >>> quantize_artifact("ecg.onnx", records=100)["auroc_change"]  # doctest: +SKIP
        -0.002
    """
    source = read_artifact(artifact)
    card = source.card
    if card.task != "ecg" or "model" not in source.stages:
        raise ArtifactError("quantize supports single-file ECG artifacts")
    evaluated = [index for index, name in enumerate(card.label_names) if name in SUPERCLASSES]
    if not evaluated or records < 20:
        raise ArtifactError("quantize evaluates AUROC on generated PTB-XL superclass labels; none in this card")
    predictor = load(artifact, threads=1)
    rng = np.random.default_rng(seed)
    prepared, targets = [], []
    for _ in range(records):
        ecg = generate_labelled_ecg(sample_labels(rng), fs=500.0, seed=rng)
        item = predictor.prepare(ecg.record)
        if hasattr(item, "windows"):
            prepared.append(item)
            targets.append([name in ecg.labels for name in card.label_names])
    half = len(prepared) // 2
    calibration, evaluation = prepared[:half], prepared[half:]
    truth = np.asarray(targets[half:], dtype=int)[:, evaluated]
    target = Path(output) if output is not None else Path(artifact).with_suffix(".int8.onnx")
    with tempfile.TemporaryDirectory() as folder:
        plain, ready, quantized = (Path(folder) / name for name in ("fp32.onnx", "ready.onnx", "int8.onnx"))
        plain.write_bytes(_bare(onnx.load_from_string(source.stages["model"])))
        quant_pre_process(str(plain), str(ready), skip_symbolic_shape=True)  # folds constants (conv biases)
        quantize_static(str(ready), str(quantized), _Windows([item.windows for item in calibration]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
        int8_model = onnx.load(str(quantized))
    reference = _evaluate(predictor, evaluation)
    auroc_fp32 = macro_auroc(truth, reference[:, evaluated])
    digest = graph_sha256(_bare(int8_model))
    export = {**dict(card.extra["export"]), "graph_sha256": digest, "source_graph_sha256": source.graph_sha256["model"]}
    report: dict[str, Any] = {"method": "onnxruntime.quantization static INT8, QDQ, per-channel weights, MinMax",
                              "calibration_records": len(calibration), "evaluation_records": len(evaluation),
                              "auroc_fp32": round(float(auroc_fp32), 5), "max_auroc_drop": max_auroc_drop,
                              "data": "generated PTB-XL-like records (mayo_dx.ecg.synthetic)", "seed": seed}
    with tempfile.TemporaryDirectory() as folder:  # evaluate the INT8 graph through the same runtime
        staging = Path(folder) / "int8.onnx"
        staged_card = dataclasses.replace(card, extra={**dict(card.extra), "export": export})
        text = staged_card.to_json()
        data, _ = _finalise(int8_model, {CARD_KEY: text, CARD_SHA256_KEY: sha256_hex(text.encode("utf-8"))})
        staging.write_bytes(data)
        quantized_probabilities = _evaluate(load(staging, threads=1), evaluation)
    auroc_int8 = macro_auroc(truth, quantized_probabilities[:, evaluated])
    report.update(auroc_int8=round(float(auroc_int8), 5), auroc_change=round(float(auroc_int8 - auroc_fp32), 5),
                  max_probability_difference=round(float(np.abs(quantized_probabilities - reference).max()), 5))
    if auroc_fp32 - auroc_int8 > max_auroc_drop:
        raise ArtifactError(f"INT8 macro AUROC {auroc_int8:.4f} is {auroc_fp32 - auroc_int8:.4f} below fp32 "
                            f"{auroc_fp32:.4f}, beyond the bound {max_auroc_drop}; nothing written")
    final_card = dataclasses.replace(card, version=f"{card.version}+int8",
                                     extra={**dict(card.extra), "export": export, "quantization": report})
    text = final_card.to_json()
    data, _ = _finalise(int8_model, {CARD_KEY: text, CARD_SHA256_KEY: sha256_hex(text.encode("utf-8"))})
    _write(target, data)
    read_artifact(target)
    return {"artifact": str(target), **report}
