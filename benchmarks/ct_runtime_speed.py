"""CT runtime speed: DICOM series on disk -> ``Diagnosis`` vs a full-resolution MONAI DynUNet sliding window.

Measured side by side in one run, with the same thread count:

* **runtime** (a fresh interpreter without torch, so its peak RSS is the runtime's own): a
  generated 512 x 512 x 200 DICOM series (0.78 x 0.78 x 1.25 mm, on disk, page cache warm) to
  :class:`~mayo_dx.results.Diagnosis` with :class:`~mayo_dx.runtime_ct.CtPredictor`
  (read, acquisition checks, localiser over the whole study at 4 mm, analyser over the gland
  crop at 2 x 1 x 1 mm, restore, measure); wall time of the first call and the median of
  ``--repeats`` calls, peak RSS (``VmHWM``), and a split into read / localiser / analyser;
* **baseline**: MONAI ``DynUNet`` configured like nnU-Net's Task07 3d_fullres plan (spacing
  2.5 x 0.8 x 0.8 mm, patch 40 x 224 x 224, filters 32-320, instance norm, as in
  ``benchmarks/ct_two_stage_speed.py``) run by ``monai.inferers.sliding_window_inference``
  (Gaussian, the same overlap as the card, 0.5) over the whole resampled study, torch eager.
  ``--baseline-windows N`` times N windows and multiplies by the window count instead.

Networks: without ``--artifact`` an artifact is exported here from the registry networks at the
MSD configs' sizes (``configs/ct/msd_pancreas_*.yaml``: features 16-128, patches 48 x 96 x 96
and 64 x 128 x 192) with untrained weights (speed does not depend on them). Untrained, the
localiser's mask means nothing, so the runtime runs the localiser network in full but takes the
phantom's true gland as its mask (``--gland truth``, the default then): the analyser then sees
the crop a trained localiser gives. With ``--artifact`` (a trained export) the model's own mask
is used (``--gland model``).

Run (minutes):   ``.venv/bin/python benchmarks/ct_runtime_speed.py --threads 2 --write``
Quick:           ``.venv/bin/python benchmarks/ct_runtime_speed.py --quick``   (a 100 x 256 x 256 study)
Smoke (seconds): ``.venv/bin/python benchmarks/ct_runtime_speed.py --smoke``   (tiny study and networks)

``--quick`` and ``--smoke`` extrapolate the baseline from 2 windows (its grid is the same
2.5 x 0.8 x 0.8 mm resampling of the same 250 x 400 x 400 mm field whatever the matrix).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from results_file import write_section  # benchmarks/ is the script's own folder

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"
SECTION = "## CT runtime speed"
PROJECT = Path(__file__).resolve().parents[1]


def _sizes(arguments: argparse.Namespace) -> dict[str, Any]:
    if arguments.smoke:
        return {"shape": (64, 128, 128), "features": (4, 4, 8, 8, 16, 4), "localiser_patch": (16, 32, 32),
                "analyser_patch": (32, 32, 32), "baseline_patch": (16, 64, 64), "baseline_filters": (8, 16, 16, 32, 32, 32)}
    shape = (100, 256, 256) if arguments.quick else (200, 512, 512)
    return {"shape": shape, "features": (16, 16, 32, 64, 128, 16), "localiser_patch": (48, 96, 96),
            "analyser_patch": (64, 128, 192), "baseline_patch": (40, 224, 224),
            "baseline_filters": (32, 64, 128, 256, 320, 320)}


def prepare_study(folder: Path, shape: tuple[int, int, int], seed: int = 4) -> tuple[Path, Any]:
    """Write the phantom series (a 250 x 400 x 400 mm field: 0.78 x 0.78 x 1.25 mm at 512 x 512 x 200) and its labels."""
    from mayo_dx.imaging.phantom import generate_phantom
    from mayo_dx.imaging.phantom_io import write_phantom_dicom

    field = (250.0, 400.0, 400.0)
    phantom = generate_phantom(shape=shape, field_of_view_mm=field, lesions=1, seed=seed)
    series = folder / "series"
    write_phantom_dicom(phantom, series, uid_seed=f"bench-{seed}")
    np.save(folder / "labels.npy", phantom.labels)
    return series, phantom


def export_untrained(folder: Path, sizes: dict[str, Any]) -> Path:
    """Export the registry networks at the given sizes (untrained) with a contract card."""
    import torch

    from mayo_dx.export.onnx import ExportStage, export_stages
    from mayo_dx.imaging.nets import build_ct_analyser, build_ct_localiser, network_config
    from mayo_dx.imaging.resample import CtPreprocessing
    from mayo_dx.training.ct_evaluation import build_ct_card

    torch.manual_seed(0)
    nets = {"localiser": build_ct_localiser(features=sizes["features"]).eval(),
            "analyser": build_ct_analyser(features=sizes["features"]).eval()}
    spacing = {"localiser": (4.0, 4.0, 4.0), "analyser": (2.0, 1.0, 1.0)}
    classes = {"localiser": ["background", "gland"], "analyser": ["background", "pancreas", "lesion"]}
    entries = {stage: {"network": network_config(net), "patch_size": list(sizes[f"{stage}_patch"]), "sw_overlap": 0.5,
                       "class_names": classes[stage],
                       "data": {"preprocessing": CtPreprocessing(target_spacing=spacing[stage]).to_dict(), "context_mm": 10.0}}
               for stage, net in nets.items()}
    card = build_ct_card("ct_pancreas_benchmark", "0.0.0", entries["localiser"], entries["analyser"], 1.0, 0.5, {},
                         synthetic=True)
    rng = np.random.default_rng(0)
    stages = [ExportStage(stage, nets[stage], [rng.random((1, 1, *sizes[f"{stage}_patch"]), dtype=np.float32)],
                          output_names=outputs, dynamic_axes={0: "batch"})
              for stage, outputs in (("localiser", ("logits",)), ("analyser", ("segmentation", "case_logit")))]
    return export_stages(stages, card, folder / "artifact")


def peak_rss_gb() -> float:
    """This process's peak resident memory: ``VmHWM`` (reset by exec, unlike ``ru_maxrss``, which a
    child inherits from the parent it was forked from), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def runtime_child(arguments: argparse.Namespace) -> None:
    """In a fresh interpreter: load, predict ``repeats`` times, split the stages, report peak RSS."""
    from mayo_dx.imaging.read import read_series
    from mayo_dx.imaging.resample import CtPreprocessing, preprocess_labels
    from mayo_dx.runtime import load

    started = time.perf_counter()
    predictor = load(arguments.artifact, threads=arguments.threads)
    load_seconds = time.perf_counter() - started
    if arguments.gland == "truth":
        labels = np.load(arguments.labels)
        params = CtPreprocessing.from_dict(predictor.card.preprocessing["localiser"])
        network_localise = predictor.localise

        def localise(volume):  # the network runs in full; its mask is replaced by the phantom's truth
            _, grid = network_localise(volume)
            truth, geometry = preprocess_labels(labels, volume, params)
            return truth > 0, geometry.target

        predictor.localise = localise  # type: ignore[method-assign]
    timings, result = [], None
    for _ in range(arguments.repeats):
        started = time.perf_counter()
        result = predictor.predict(arguments.series)
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    volume = read_series(arguments.series)
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictor.localise(volume)
    localise_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predictor.analyse(volume)
    analyse_seconds = time.perf_counter() - started
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "monai", "lightning"))
    print(json.dumps({
        "result_kind": result.kind, "measurements": getattr(result, "measurements", None),
        "load_seconds": round(load_seconds, 3), "first_seconds": round(timings[0], 3),
        "median_seconds": round(statistics.median(timings[1:] or timings), 3), "repeats": len(timings),
        "read_seconds": round(read_seconds, 3), "localiser_seconds": round(localise_seconds, 3),
        "after_localiser_seconds": round(analyse_seconds - localise_seconds, 3),
        "peak_rss_gb": round(peak_rss_gb(), 3), "torch_imported": leaked,
    }))


def baseline(phantom: Any, sizes: dict[str, Any], threads: int, sample_windows: int | None) -> dict[str, Any]:
    """nnU-Net-like DynUNet sliding window over the whole study at 2.5 x 0.8 x 0.8 mm (torch eager)."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import DynUNet

    from mayo_dx.imaging.inference import window_slices
    from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct

    torch.set_num_threads(threads)
    kernels = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    net = DynUNet(3, 1, 3, kernels, strides, strides[1:], filters=list(sizes["baseline_filters"]),
                  norm_name="instance", res_block=False).eval()
    array, _ = preprocess_ct(phantom.volume, CtPreprocessing(target_spacing=(2.5, 0.8, 0.8)))
    patch = tuple(sizes["baseline_patch"])
    windows = len(window_slices(np.maximum(array.shape, patch), patch, 0.5))
    image = torch.from_numpy(array)[None, None]
    with torch.inference_mode():
        net(torch.zeros(1, 1, *patch))  # warm-up
        started = time.perf_counter()
        if sample_windows:
            for _ in range(sample_windows):
                net(torch.zeros(1, 1, *patch))
            seconds = (time.perf_counter() - started) / sample_windows * windows
        else:
            sliding_window_inference(image, patch, 1, net, overlap=0.5, mode="gaussian")
            seconds = time.perf_counter() - started
    return {"grid_zyx": list(array.shape), "patch_zyx": list(patch), "windows": windows,
            "seconds": round(seconds, 2), "measured": "extrapolated" if sample_windows else "full"}


def markdown(results: dict[str, Any], command: str) -> str:
    """The RESULTS.md section."""
    runtime, base = results["runtime"], results["baseline"]
    machine = (f"{platform.machine()}, {results['cpus']} CPUs, Python {platform.python_version()}, onnxruntime "
               f"{results['onnxruntime']}, torch {results['torch']}, MONAI {results['monai']}")
    rows = [
        f"| study | generated {' x '.join(map(str, results['shape_zyx'][::-1]))} DICOM series, "
        f"{' x '.join(f'{s:g}' for s in results['spacing_zyx_mm'][::-1])} mm, on disk |",
        f"| threads | {results['threads']} |",
        f"| gland mask | {results['gland']} |",
        f"| runtime: file -> Diagnosis, first call (s) | {runtime['first_seconds']} |",
        f"| runtime: file -> Diagnosis, median of {runtime['repeats'] - 1 or 1} (s) | {runtime['median_seconds']} |",
        f"| runtime: read / localiser / rest (s) | {runtime['read_seconds']} / {runtime['localiser_seconds']} / "
        f"{runtime['after_localiser_seconds']} |",
        f"| runtime: peak RSS (GB) | {runtime['peak_rss_gb']} |",
        f"| runtime: result | {runtime['result_kind']} |",
        f"| baseline: DynUNet {base['grid_zyx']} grid, patch {base['patch_zyx']}, {base['windows']} windows (s, "
        f"{base['measured']}) | {base['seconds']} |",
        f"| speed-up (baseline / runtime median) | {results['speedup']} |",
    ]
    return "\n".join([SECTION, "", f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {machine})", "",
                      "| quantity | value |", "|---|---:|", *rows, ""])


def main() -> None:
    """Parse arguments; run the parent (study, artifact, baseline) or the runtime child."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runtime predictions (the first is reported apart)")
    parser.add_argument("--artifact", type=Path, default=None, help="a trained CT artifact folder (default: export one)")
    parser.add_argument("--gland", choices=("truth", "model"), default=None, help="localiser mask source (see docstring)")
    parser.add_argument("--baseline-windows", type=int, default=None,
                        help="time N windows and extrapolate (default: the full sliding window; 2 with --quick/--smoke)")
    parser.add_argument("--quick", action="store_true", help="a 100 x 256 x 256 study")
    parser.add_argument("--smoke", action="store_true", help="tiny study and networks (seconds)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the series and artifact go (default: temp)")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    parser.add_argument("--runtime-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--series", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.runtime_child:
        runtime_child(arguments)
        return
    import monai
    import onnxruntime
    import torch

    sizes = _sizes(arguments)
    gland = arguments.gland or ("model" if arguments.artifact else "truth")
    with tempfile.TemporaryDirectory() as temporary:
        folder = arguments.workdir or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        series, phantom = prepare_study(folder, sizes["shape"])
        artifact = arguments.artifact or export_untrained(folder, sizes)
        command = [sys.executable, str(Path(__file__).resolve()), "--runtime-child", "--artifact", str(artifact),
                   "--series", str(series), "--labels", str(folder / "labels.npy"), "--threads", str(arguments.threads),
                   "--repeats", str(arguments.repeats), "--gland", gland]
        child = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT, check=False)
        if child.returncode != 0:
            raise SystemExit(f"runtime child failed:\n{child.stderr[-3000:]}")
        runtime = json.loads(child.stdout.strip().splitlines()[-1])
        sample = arguments.baseline_windows or (2 if arguments.quick or arguments.smoke else None)
        base = baseline(phantom, sizes, arguments.threads, sample)
    results = {"shape_zyx": list(sizes["shape"]), "spacing_zyx_mm": list(phantom.volume.spacing),
               "threads": arguments.threads, "gland": gland, "runtime": runtime, "baseline": base,
               "speedup": round(base["seconds"] / runtime["median_seconds"], 1), "cpus": len(__import__("os").sched_getaffinity(0)),
               "onnxruntime": onnxruntime.__version__, "torch": torch.__version__.split("+")[0], "monai": monai.__version__}
    print(json.dumps(results, indent=1))
    if arguments.write:
        write_section(SECTION, markdown(results, "python " + " ".join(["benchmarks/ct_runtime_speed.py", *sys.argv[1:]])))


if __name__ == "__main__":
    main()
