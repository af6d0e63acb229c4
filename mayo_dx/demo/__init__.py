"""``mayo-dx demo``: the whole story on bundled and generated data, step by step.

Steps (each prints what it does; a failure names the step and the reason, and stops):

1-5. the data path (:mod:`mayo_dx.demo.data_path`): the real DICOM ECG from pydicom, a
     generated PTB-XL-shaped folder, shared preprocessing, abstention reasons, a CT phantom
     written as DICOM and read back;
6-8. the ECG model (:mod:`mayo_dx.demo.ecg_model`): Lightning training on the generated
     folder, calibration and thresholds, ONNX export with parity into the models folder, then
     the torch-free runtime on the real ECG, generated records and a corrupted copy, with
     saliency and training-curve plots;
9-11. the CT models (:mod:`mayo_dx.demo.ct_model`): localiser and analyser trained on phantoms,
     exported as one two-stage artifact, run on a phantom DICOM series, montage with masks;
12. the LLM tools (:mod:`mayo_dx.demo.agent_tools`): a real MCP client session calls every tool.

Everything lands in ``out`` (re-runnable) and ``out/report.md`` links the results and plots.
The models go to ``models`` (default :func:`mayo_dx.paths.default_models_dir`), where
``mayo-dx serve``, ``mayo-dx predict`` and ``mayo-dx models`` find them without flags. Every
demo model is trained on synthetic data and says so in its card: not for clinical use.

Example:
    >>> run_demo("demo_out", quick=True)  # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mayo_dx.demo import data_path
from mayo_dx.demo.report import write_report

__all__ = ["run_demo"]

Step = tuple[str, Callable[[], dict[str, Any]]]


def _steps(out: Path, models: Path, context: dict[str, Any], *, records: int, seed: int, quick: bool,
           data_only: bool) -> list[Step]:
    steps: list[Step] = [
        ("Real DICOM ECG: read and quality", lambda: data_path.real_ecg(out, context)),
        ("Synthetic PTB-XL-shaped data", lambda: data_path.synthetic_ptbxl(out, context, records, seed)),
        ("Shared preprocessing", lambda: data_path.preprocess_records(out, context)),
        ("Corrupted ECG: abstention reasons", lambda: data_path.abstention(out, context)),
        ("CT phantom: DICOM series, read back, measurements", lambda: data_path.ct_phantom(out, context, seed)),
    ]
    if data_only:
        return steps
    from mayo_dx.demo import agent_tools, ct_model, ecg_model

    epochs = 3 if quick else 10
    steps += [
        ("ECG model: Lightning training, calibration, thresholds",
         lambda: ecg_model.train_ecg(out, context, records=records, epochs=epochs, seed=seed)),
        ("ECG model: ONNX export with parity", lambda: ecg_model.export_ecg(out, context, models=models)),
        ("ECG runtime (no torch): predictions, saliency, plots", lambda: ecg_model.predict_ecg(out, context)),
        ("CT models: phantoms, localiser and analyser training",
         lambda: ct_model.train_ct(out, context, quick=quick, seed=seed)),
        ("CT models: two-stage ONNX export", lambda: ct_model.export_ct(out, context, models=models)),
        ("CT runtime (no torch): a phantom DICOM series, masks, montage", lambda: ct_model.predict_ct(out, context)),
        ("LLM tools: MCP client session calling every tool",
         lambda: agent_tools.call_every_tool(out, context, models=models)),
    ]
    return steps


def run_demo(out: str | Path, *, records: int = 1000, seed: int = 0, models: str | Path | None = None,
             quick: bool = False, data_only: bool = False) -> int:
    """Run every demo step, write ``out/report.md`` and ``out/report.json``; return an exit code.

    Args:
        out: Output folder (created; re-runnable).
        records: Synthetic PTB-XL-shaped records to generate and train on (at least 20).
        seed: Seed of all generated data and of training.
        models: Where artifacts go (default :func:`mayo_dx.paths.default_models_dir`).
        quick: Fewer epochs and smaller CT phantoms (tests; the models learn less).
        data_only: Only the data-path steps (no torch needed).

    Returns:
        0 on success, 1 if a step failed (the step and reason are printed to stderr).

    Example:
        >>> run_demo("demo_out", records=40, data_only=True)  # doctest: +SKIP
        0
    """
    if records < 20:
        raise ValueError("the demo needs at least 20 records (PTB-XL folds 1-10 must all be present)")
    from mayo_dx.paths import default_models_dir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models_dir = Path(models) if models is not None else default_models_dir()
    context: dict[str, Any] = {}
    steps = _steps(out, models_dir, context, records=records, seed=seed, quick=quick, data_only=data_only)
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for number, (title, step) in enumerate(steps, start=1):
        print(f"[{number}/{len(steps)}] {title} ...", flush=True)
        step_start = time.perf_counter()
        try:
            results[title] = step()
        except Exception as error:  # report which step failed and why, then stop
            print(f"demo step {number} ({title}) failed: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        print(f"      done in {time.perf_counter() - step_start:.1f} s", flush=True)
    seconds = time.perf_counter() - started
    (out / "report.json").write_text(json.dumps(results, indent=2, default=str))
    report = write_report(out, results, seconds=seconds, models=models_dir)
    print(f"Report: {report}\nModels: {models_dir} (mayo-dx models lists them; mayo-dx serve and predict use them)")
    print(f"Generated data: {out / 'data'}; figures: {out / 'figures'}; total {seconds:.0f} s")
    return 0
