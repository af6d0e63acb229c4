"""Peak memory (RSS) of CT training with the on-disk cache, on generated clinical-size phantoms.

Generates ``--cases`` phantoms of ``--shape`` (default 100 x 200 x 512 x 512, about 10 GB of
int16 voxels) as an MSD Task07-shaped NIfTI folder in a separate process, then, in this
process, builds each stage's preprocessed-volume cache and trains each stage for
``--epochs`` epoch(s), reporting the peak resident set size (Linux ``VmHWM``, reset between
phases through ``/proc/self/clear_refs``) of every phase, the cache size on disk, and what
holding every preprocessed volume in RAM would take instead.

Full run (the lead's; tens of minutes, about 5 GB of disk):
    python benchmarks/ct_training_memory.py --cases 100 --shape 200 512 512 --output benchmarks/ct_training_memory.json
Smoke run (seconds):
    python benchmarks/ct_training_memory.py --smoke
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from mayo_dx.imaging.data import Augmentation, CtDataModule
from mayo_dx.imaging.nets import build_ct_analyser, build_ct_localiser
from mayo_dx.imaging.phantom_io import write_msd_pancreas
from mayo_dx.imaging.resample import CtPreprocessing
from mayo_dx.training.segmentation import CtAnalyserTask, CtSegmentationTask


def _status(field: str) -> float:
    """A ``/proc/self/status`` memory field in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def _generate(folder: str, cases: int, shape: tuple[int, int, int], seed: int) -> None:
    write_msd_pancreas(folder, cases, seed=seed, n_test=1, shape=shape, cancer_fraction=0.5)


def _folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


def _phase(name: str, action, results: dict) -> None:
    _reset_peak()
    start = time.perf_counter()
    action()
    results[name] = {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mib": round(_status("VmHWM"), 1)}
    print(name, results[name], file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given; a temporary folder otherwise")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="4 cases of 32 x 64 x 64: checks the script only")
    arguments = parser.parse_args(argv)
    if arguments.smoke:
        arguments.cases, arguments.shape = 4, (32, 64, 64)
    torch.set_num_threads(arguments.threads)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="ct_memory_"))
    data, cache = workdir / "data", workdir / "cache"
    results: dict = {"cases": arguments.cases, "shape_zyx": list(arguments.shape), "epochs": arguments.epochs,
                     "threads": arguments.threads, "machine": f"{platform.machine()} {platform.system()}",
                     "cpu_count": multiprocessing.cpu_count(), "torch": torch.__version__}
    try:
        if not (data / "dataset.json").is_file():
            start = time.perf_counter()
            process = multiprocessing.get_context("spawn").Process(
                target=_generate, args=(str(data), arguments.cases, tuple(arguments.shape), 0))
            process.start()
            process.join()
            if process.exitcode != 0:
                raise RuntimeError("phantom generation failed")
            results["generation_seconds"] = round(time.perf_counter() - start, 1)
        results["source_mib_on_disk"] = round(_folder_mib(data), 1)
        results["baseline_rss_mib"] = round(_status("VmRSS"), 1)
        smoke = arguments.smoke
        stages = {
            "localiser": (CtPreprocessing(target_spacing=(4.0, 4.0, 4.0)), (32, 64, 64) if smoke else (48, 96, 96),
                          CtSegmentationTask(build_ct_localiser(features=(8, 8, 16, 32, 64, 8))), 0.0),
            "analyser": (CtPreprocessing(target_spacing=(2.0, 1.0, 1.0)), (32, 64, 64) if smoke else (64, 128, 192),
                         CtAnalyserTask(build_ct_analyser(features=(8, 8, 16, 32, 64, 8))), 10.0),
        }
        import lightning.pytorch as pl

        for stage, (params, patch, task, context) in stages.items():
            module = CtDataModule(stage, str(cache), params, patch, msd_folder=str(data), batch_size=2,
                                  samples_per_case=1, augmentation=Augmentation(probability=0.2), context_mm=context,
                                  validation_fraction=0.1 if arguments.cases >= 10 else 0.25)
            _phase(f"{stage}_cache_build", module.prepare_data, results)
            arrays = sum(path.stat().st_size for path in module.cache.folder.glob("*.npy")) / 2**20
            results[f"{stage}_cache_mib_on_disk"] = round(arrays, 1)
            trainer = pl.Trainer(max_epochs=arguments.epochs, accelerator="cpu", logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                 num_sanity_val_steps=0, limit_val_batches=min(4, arguments.cases))
            _phase(f"{stage}_training", lambda: trainer.fit(task, module), results)
        training_peaks = [results[f"{stage}_training"]["peak_rss_mib"] for stage in stages]
        results["peak_rss_training_mib"] = max(training_peaks)
        results["all_preprocessed_in_ram_would_need_mib"] = round(
            sum(results[f"{stage}_cache_mib_on_disk"] for stage in stages), 1)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if arguments.output is not None:
        arguments.output.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
