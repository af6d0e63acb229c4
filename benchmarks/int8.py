"""INT8 vs FP32 on trained artifacts: speed ratio and metric change, ECG and CT.

For each trained artifact given (the ``make demo`` models by default, from the models folder):

* quantise with the library's own command path (:func:`mayo_dx.export.quantize.quantize_artifact`
  for ECG, :func:`mayo_dx.export.quantize_ct.quantize_ct_artifact` for CT; calibration on the
  card's data source, evaluation on held-out data as those functions document) with the bounds
  opened (``--bound-off``, the default here) so the change is measured even when ``mayo-dx
  quantize`` would refuse it; whether the default bound holds is reported;
* ECG speed: windows/s of a batch of 64 windows (from generated records) through the float32
  and the INT8 artifact, and the p50 latency of one 10 s record file to ``Diagnosis``;
* CT speed: one generated study (an MSD-shaped phantom like the model's data) to ``Diagnosis``
  through both artifacts, median of ``--repeats`` calls.

The ``make demo`` CT model is small and briefly trained (its probabilities sit near 0.5, so an
AUROC over a few phantoms moves with tiny shifts); for the CT figures in RESULTS.md the phantom
recipe's model (``configs/ct/phantom_*.yaml``, exported with ``mayo-dx export``) was used.

Engines take turns by blocks after a pause (see ``benchmarks/ecg_runtime_speed.py``).

Run:   ``.venv/bin/python benchmarks/int8.py --write`` (after ``make demo``)
Smoke: ``.venv/bin/python benchmarks/int8.py --smoke`` (ECG only, tiny untrained network)
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecg_runtime_speed import interleaved_best_seconds, write_record  # noqa: E402

from mayo_dx.ecg.synthetic import generate_ecg  # noqa: E402
from mayo_dx.models_folder import list_artifacts  # noqa: E402
from mayo_dx.runtime import load  # noqa: E402

from results_file import write_section  # benchmarks/ is the script's own folder

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"
SECTION = "## INT8 vs FP32 (trained artifacts)"


def _latency(predictor: Any, path: Path, calls: int) -> float:
    predictor.predict(path)
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        predictor.predict(path)
        timings.append(time.perf_counter() - start)
    return 1000 * statistics.median(timings)


def ecg(artifact: Path, folder: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    """Quantise an ECG artifact and time both."""
    from mayo_dx.export.quantize import quantize_artifact

    report = quantize_artifact(artifact, folder / "ecg.int8.onnx", records=arguments.records,
                               max_auroc_drop=1.0 if arguments.bound_off else 0.01, threads=arguments.threads)
    fp32, int8 = load(artifact, threads=arguments.threads), load(report["artifact"], threads=arguments.threads)
    windows = []
    for seed in range(16):
        item = fp32.prepare(generate_ecg(("NORM",), fs=500.0, seed=seed))
        if not hasattr(item, "windows"):
            continue
        windows.append(item.windows)
    batch = np.ascontiguousarray(np.concatenate(windows)[:64])
    seconds = interleaved_best_seconds({"fp32": lambda: fp32.session().run(None, {"signal": batch}),
                                        "int8": lambda: int8.session().run(None, {"signal": batch})}, arguments.repeats)
    record = write_record(folder)
    return {
        "artifact": artifact.name, "calibration_data": report["calibration_data"],
        "evaluation_data": report["evaluation_data"], "auroc_fp32": report["auroc_fp32"],
        "auroc_int8": report["auroc_int8"], "auroc_change": report["auroc_change"],
        "within_default_bound_0.01": report["auroc_fp32"] - report["auroc_int8"] <= 0.01,
        "max_probability_difference": report["max_probability_difference"],
        "batch_windows": int(len(batch)), "fp32_windows_per_s": len(batch) / seconds["fp32"],
        "int8_windows_per_s": len(batch) / seconds["int8"], "int8_speedup": seconds["fp32"] / seconds["int8"],
        "fp32_record_p50_ms": _latency(fp32, record, arguments.calls),
        "int8_record_p50_ms": _latency(int8, record, arguments.calls),
    }


def ct(artifact: Path, folder: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    """Quantise a CT folder artifact and time one generated study through both."""
    from mayo_dx.export.quantize_ct import quantize_ct_artifact
    from mayo_dx.imaging.read import read_series
    from mayo_dx.imaging.phantom_io import write_msd_pancreas

    bound = 1.0 if arguments.bound_off else None
    options = {} if bound is None else {"max_dice_drop": bound, "max_auroc_drop": bound}
    report = quantize_ct_artifact(artifact, folder / "ct.int8", evaluation_cases=arguments.ct_cases,
                                  threads=arguments.threads, **options)
    fp32, int8 = load(artifact, threads=arguments.threads), load(report["artifact"], threads=arguments.threads)
    study_folder = folder / "study"
    write_msd_pancreas(study_folder, 1, seed=90210, n_test=0, cancer_fraction=1.0)
    volume = read_series(next((study_folder / "imagesTr").glob("*.nii.gz")))
    timings: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(arguments.repeats):
        for name, predictor in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            predictor.predict(volume)
            timings[name].append(time.perf_counter() - start)
    fp32_s, int8_s = statistics.median(timings["fp32"]), statistics.median(timings["int8"])
    figures = {key: value for key, value in report.items() if key not in {"artifact", "method", "cases"}}
    return {"artifact": artifact.name, "study_shape_zyx": list(volume.shape), **figures,
            "fp32_study_s": fp32_s, "int8_study_s": int8_s, "int8_speedup": fp32_s / int8_s}


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in _flatten(f"{prefix}.{key}" if prefix else key, inner)]
    return [(prefix, value)]


def markdown(results: dict[str, Any], command: str) -> str:
    """The RESULTS.md section: one table per model."""
    machine = f"{platform.machine()}, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"
    lines = [SECTION, "", f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {machine}, "
             f"{results['threads']} threads)", ""]
    for model in ("ecg", "ct"):
        if model in results:
            lines += [f"**{model.upper()}**", "", "| quantity | value |", "|---|---:|"]
            lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                      for key, value in _flatten("", results[model])]
            lines.append("")
    return "\n".join(lines)


def _default(task: str) -> Path | None:
    """The first float32 artifact of ``task`` in the default models folder."""
    for entry in list_artifacts():
        if entry.get("task") == task and not str(entry.get("version", "")).endswith("+int8"):
            return Path(entry["path"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ecg", type=Path, default=None, help="trained ECG artifact (default: the demo's)")
    parser.add_argument("--ct", type=Path, default=None, help="trained CT artifact folder (default: the demo's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--records", type=int, default=200, help="ECG calibration and evaluation records")
    parser.add_argument("--ct-cases", type=int, default=16, help="CT held-out phantoms to compare on")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=30, help="single-record latency samples")
    parser.add_argument("--bound-on", dest="bound_off", action="store_false",
                        help="use mayo-dx quantize's default bounds (may refuse)")
    parser.add_argument("--smoke", action="store_true", help="a tiny untrained ECG network only")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    arguments = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs on the root logger
    results: dict[str, Any] = {"threads": arguments.threads}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if arguments.smoke:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.export.tiny import export_tiny_ecg

            arguments.records, arguments.repeats, arguments.calls = 20, 3, 3
            results["ecg"] = ecg(export_tiny_ecg(folder / "tiny.onnx"), folder, arguments)
        else:
            ecg_artifact, ct_artifact = arguments.ecg or _default("ecg"), arguments.ct or _default("ct")
            if ecg_artifact is None and ct_artifact is None:
                raise SystemExit("no trained artifact: run make demo, or pass --ecg/--ct")
            if ecg_artifact is not None:
                results["ecg"] = ecg(Path(ecg_artifact), folder, arguments)
            if ct_artifact is not None:
                results["ct"] = ct(Path(ct_artifact), folder, arguments)
    print(json.dumps(results, indent=1, default=str))
    if arguments.write and not arguments.smoke:
        write_section(SECTION, markdown(results, "python " + " ".join(["benchmarks/int8.py", *sys.argv[1:]])))


if __name__ == "__main__":
    main()
