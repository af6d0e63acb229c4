"""Static INT8 quantisation of a two-stage CT artifact, with the measured Dice and AUROC change in its card.

Training layer (``onnx`` and ``onnxruntime.quantization``). Steps:

1. **Calibration cases** from the card's data source (:mod:`mayo_dx.export.ct_calibration`:
   ``data`` the user names > the recorded ``extra["data_source"]`` when readable here >
   phantoms from the same generator for a model trained on generated data > refusal asking
   for ``data``).
2. **Calibration feeds**: the float32 runtime (:class:`~mayo_dx.runtime_ct.CtPredictor`)
   analyses each case and every input it feeds a stage is captured
   (:class:`~mayo_dx.export.ct_calibration.CapturingCtPredictor`), so calibration sees exactly
   the runtime's patches; at most :data:`MAX_PATCHES` per stage, spread over the cases.
3. Each stage is quantised with :func:`mayo_dx.export.int8.static_int8` (the one INT8 recipe,
   :data:`~mayo_dx.export.int8.RECIPE`; the float64 instance-norm statistics stay float).
4. **Evaluation** on held-out generated phantoms (a seed the calibration does not use, half
   with a lesion, the matrix recorded on the card or one fitting its acquisition range): both
   artifacts run through the same runtime; pancreas Dice (labels 1 + 2), lesion Dice (label 2,
   cases with a lesion), case-level AUROC of the calibrated probability
   (:func:`mayo_dx.metrics.roc_auc`), and the share of cases whose decision (abstention or
   diagnosis, positive call) changes; plus the INT8/FP32 speed ratio of each stage on one
   captured patch (:func:`mayo_dx.export.int8.speed_ratio`).
5. If the pancreas Dice drops by more than ``max_dice_drop`` or the AUROC by more than
   ``max_auroc_drop``, :class:`~mayo_dx.errors.ArtifactError` is raised and nothing is left on
   disk. Otherwise the INT8 folder is written in a hidden staging folder beside the target and
   moved into place: card version ``<version>+int8``, every stage's ``graph_sha256`` in
   ``extra["export"]["stages"]`` names the new graph (``source_graph_sha256`` the float32 one),
   and ``extra["quantization"]`` holds the report.

Speed: onnxruntime's INT8 3-D convolutions can run slower than its float32 ones (with
onnxruntime 1.32 on this project's x86-64 machine, 3-5x slower: 0.31-0.34x the float32 speed
per CT patch); the report carries the measured ratio of each stage and a warning is logged
(logger ``mayo_dx``) when INT8 is slower; that is not a refusal.

Example:
    >>> quantize_ct_artifact("models/ct_pancreas_phantom")["change"]  # doctest: +SKIP
    {'dice_pancreas': -0.002, 'dice_lesion': -0.01, 'auroc': 0.0}
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from mayo_dx.artifact import STAGE_KEY, read_artifact
from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError
from mayo_dx.export.ct_calibration import CapturingCtPredictor, compare_predictors, generated_cases
from mayo_dx.export.ct_calibration import calibration_cases as choose_calibration_cases
from mayo_dx.export.int8 import RECIPE, speed_ratio, static_int8
from mayo_dx.export.onnx import _bare, _finalise, write_folder_artifact
from mayo_dx.imaging.data_cache import CtCase
from mayo_dx.runtime import load
from mayo_dx.runtime_ct import STAGES

__all__ = ["MAX_PATCHES", "quantize_ct_artifact"]

LOGGER = logging.getLogger("mayo_dx")

#: Most captured patches fed to the calibration of one stage.
MAX_PATCHES = 16
#: Added to ``seed`` for the evaluation phantoms (never the calibration seed).
EVALUATION_SEED_OFFSET = 1_000_003


def _capture(predictor: CapturingCtPredictor, cases: Sequence[CtCase]) -> dict[str, list[np.ndarray]]:
    """Each stage's runtime inputs over the cases, at most :data:`MAX_PATCHES`, evenly taken from every case."""
    quota = max(1, math.ceil(MAX_PATCHES / max(1, len(cases))))
    feeds: dict[str, list[np.ndarray]] = {stage: [] for stage in STAGES}
    for case in cases:
        for stage in STAGES:
            predictor.captured[stage].clear()
        predictor.analyse(case.image_path)
        for stage in STAGES:
            patches = predictor.captured[stage]
            if patches:
                chosen = np.unique(np.linspace(0, len(patches) - 1, min(quota, len(patches))).round().astype(int))
                feeds[stage] += [patches[index] for index in chosen]
    for stage in STAGES:
        if not feeds[stage]:
            raise ArtifactError(f"no calibration case reached the {stage} (the float32 model abstained on all "
                                f"{len(cases)}); pass data with cases the model analyses")
        feeds[stage] = feeds[stage][:MAX_PATCHES]
    return feeds


def _check_source(folder: Path) -> ModelCard:
    source = read_artifact(folder)
    if source.card.task != "ct" or not folder.is_dir() or set(source.stages) != set(STAGES):
        raise ArtifactError(f"{folder.name}: quantize_ct_artifact takes CT folder artifacts with the stages "
                            f"{list(STAGES)} (single-file ECG artifacts: mayo_dx.export.quantize.quantize_artifact)")
    return source.card


def _target(folder: Path, output: str | Path | None) -> Path:
    target = Path(output) if output is not None else folder.with_name(folder.name + ".int8")
    if target.resolve() == folder.resolve():
        raise ArtifactError("the INT8 artifact cannot replace its float32 source; choose another output")
    if target.exists() and not (target / "manifest.json").is_file():
        raise ArtifactError(f"{target.name} exists and is not an artifact folder; choose another output")
    return target


def _move_into_place(card: ModelCard, stages: list[tuple[str, bytes, str, str, list[str]]], target: Path) -> None:
    """Write the folder beside ``target`` under a hidden name, then rename it (an old artifact is replaced)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    retired = None
    try:
        write_folder_artifact(staging, card, stages)
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, retired)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None and not target.exists():
            os.replace(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def quantize_ct_artifact(artifact: str | Path, output: str | Path | None = None, *, data: str | Path | None = None,
                         calibration_cases: int = 4, evaluation_cases: int = 8, max_dice_drop: float = 0.02,
                         max_auroc_drop: float = 0.05, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Write a static INT8 copy of a two-stage CT artifact if its Dice and AUROC hold.

    Args:
        artifact: The float32 CT artifact folder (stages ``localiser`` and ``analyser``).
        output: Target folder; default ``<folder>.int8`` beside the input.
        data: A Decathlon Task07-shaped folder or a CT manifest CSV to calibrate on, instead of
            the card's data source.
        calibration_cases: Cases the float32 runtime analyses to capture calibration patches.
        evaluation_cases: Generated phantoms (half with a lesion) both artifacts are compared on.
        max_dice_drop: Largest accepted drop of the mean pancreas Dice (fp32 minus int8).
        max_auroc_drop: Largest accepted drop of the case-level AUROC.
        seed: Seed of case sampling; the evaluation phantoms use ``seed + 1000003``.
        threads: onnxruntime threads of both predictors and of the speed measurement.

    Returns:
        A JSON-ready report (also stored in the new card's ``extra["quantization"]``), with
        ``"artifact"``: the written folder.

    Raises:
        ArtifactError: Not a CT folder artifact, no calibration data (pass ``data``), no case
            reached a stage, or a drop beyond its bound (nothing written).

    Example:
        >>> quantize_ct_artifact("ct_model", calibration_cases=2, evaluation_cases=4)["int8"]["auroc"]  # doctest: +SKIP
        1.0
    """
    folder = Path(artifact)
    card = _check_source(folder)
    if calibration_cases < 1 or evaluation_cases < 2:
        raise ArtifactError("quantize needs at least 1 calibration case and 2 evaluation cases")
    target = _target(folder, output)
    source = read_artifact(folder)
    with ExitStack() as stack:
        chosen = choose_calibration_cases(card, data, calibration_cases, seed, stack)
        feeds = _capture(CapturingCtPredictor(source, threads=threads), chosen.cases)
        records = {record["name"]: record for record in card.extra["export"]["stages"]}
        stages, graphs, export_stages = [], {}, []
        for stage in STAGES:
            fp32 = _bare(onnx.load_from_string(source.stages[stage]))
            model = static_int8(fp32, ({"image": patch[None]} for patch in feeds[stage]))
            int8 = _bare(model)
            written, digest = _finalise(model, {STAGE_KEY: stage})
            graphs[stage] = (fp32, int8)
            outputs = [item.name for item in model.graph.output]
            stages.append((stage, written, digest, model.graph.input[0].name, outputs))
            export_stages.append({**records[stage], "graph_sha256": digest,
                                  "source_graph_sha256": source.graph_sha256[stage], "quantization": RECIPE})
        export = {**dict(card.extra["export"]), "stages": export_stages}
        staged_card = dataclasses.replace(card, version=f"{card.version}+int8",
                                          extra={**dict(card.extra), "export": export})
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mayo-dx-int8-"))) / folder.name
        write_folder_artifact(staging, staged_card, stages)
        evaluation_seed = seed + EVALUATION_SEED_OFFSET
        if evaluation_seed == chosen.description.get("seed"):
            evaluation_seed += 1
        phantoms = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mayo-dx-evaluation-")))
        cases = generated_cases(phantoms, card, evaluation_cases, evaluation_seed, cancer_fraction=0.5)
        reference, candidate = load(folder, threads=threads), load(staging, threads=threads)
        comparison = compare_predictors(reference, candidate, cases)  # type: ignore[arg-type]
        speed = {stage: {"patch": list(feeds[stage][0].shape),
                         **speed_ratio(*graphs[stage], {"image": feeds[stage][0][None]}, threads=threads or 1)}
                 for stage in STAGES}
    report: dict[str, Any] = {
        "method": RECIPE,
        "data": {"calibration": chosen.description,
                 "evaluation": {"source": "generated phantoms", "name": "mayo_dx.imaging.phantom_io.write_msd_pancreas",
                                "seed": evaluation_seed, "cases": len(cases),
                                "lesion_cases": sum(record["target"] for record in comparison["cases"])}},
        "calibration_patches": {stage: len(feeds[stage]) for stage in STAGES},
        **comparison, "max_dice_drop": max_dice_drop, "max_auroc_drop": max_auroc_drop, "seed": seed, "speed": speed,
        "source_version": card.version,
    }
    drops = {"pancreas Dice": (comparison["change"]["dice_pancreas"], max_dice_drop),
             "AUROC": (comparison["change"]["auroc"], max_auroc_drop)}
    beyond = [f"{name} changed by {change:+.4f} (bound: a drop of at most {bound:g})"
              for name, (change, bound) in drops.items() if change is not None and -change > bound]
    if beyond:
        raise ArtifactError(f"INT8 {'; '.join(beyond)} on {len(cases)} held-out phantoms; nothing written")
    slower = {stage: figures["int8_speedup"] for stage, figures in speed.items() if figures["int8_speedup"] < 1.0}
    if slower:
        LOGGER.warning("INT8 ran slower than float32 on this CPU (speed ratio %s; below 1 is slower): onnxruntime's "
                       "INT8 3-D convolutions lack a fast kernel here; the float32 artifact may serve better",
                       ", ".join(f"{stage} {ratio:.2f}x" for stage, ratio in slower.items()))
    final_card = dataclasses.replace(staged_card, extra={**dict(staged_card.extra), "quantization": report})
    _move_into_place(final_card, stages, target)
    read_artifact(target)
    return {"artifact": str(target), **report}
