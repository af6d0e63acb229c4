"""Peak resident memory while training on a generated PTB-XL-shaped set (default 20,000 records, 100 Hz).

Step 1 writes the synthetic folder (``write_ptbxl_like``, in worker processes, reused when
present). Step 2 runs in a fresh Python process so that its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, Linux kilobytes) covers only training:
``EcgDataModule`` builds the preprocessed-signal cache (or reads records lazily with
``--lazy``), fits the per-lead standardisation on folds 1-8, and ``Trainer.fit`` trains
``ClassificationTask`` for ``--epochs`` epochs with validation on fold 9. Records are read one
at a time with ``os.pread``/wfdb, never the whole set in memory: the float32 signals of 20,000
records would take 960 MB on their own.

Run: ``.venv/bin/python benchmarks/ecg_training_memory.py --data /tmp/ptbxl_like_20000``
(writes the "ECG training memory" section of benchmarks/RESULTS.md); ``--smoke`` for a tiny
check that writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from results_file import write_section as replace_section  # benchmarks/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## ECG training memory"


def train_and_measure(folder: Path, records: int, epochs: int, lazy: bool, net: str, cache: Path, train_batches: int | None) -> dict:
    """Run in the child process: train, then report peak RSS and timings as a dict."""
    import lightning.pytorch as pl
    import torch

    from mayo_dx.ecg.data import EcgDataModule
    from mayo_dx.ecg.sources import SyntheticPtbxlSource
    from mayo_dx.training.network import RegisteredNet
    from mayo_dx.training.task import ClassificationTask

    torch.set_num_threads(2)
    after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    source = SyntheticPtbxlSource(folder, n_records=records, seed=0)
    data = EcgDataModule(source, batch_size=128, cache_dir=None if lazy else cache, cache_workers=1)
    data.prepare_data()
    data.setup("fit")
    prepared = time.perf_counter()
    after_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    task = ClassificationTask(RegisteredNet(net, data.num_labels), data.label_names)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_train_batches=train_batches)
    trainer.fit(task, datamodule=data)
    return {
        "records": records, "train_records": len(data.dataset("train")), "lazy": lazy, "net": net, "epochs": epochs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_imports_mb": after_imports / 1024, "rss_after_setup_mb": after_setup / 1024,
        "setup_s": prepared - started, "fit_s": time.perf_counter() - prepared,
        "val_auroc_macro": float(trainer.callback_metrics.get("val_auroc_macro", float("nan"))),
    }


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md."""
    replace_section(SECTION, text, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--net", default="xresnet1d18")
    parser.add_argument("--lazy", action="store_true", help="read records from their files (no cache)")
    parser.add_argument("--train-batches", type=int, default=None, help="limit training batches per epoch")
    parser.add_argument("--data", type=Path, default=Path("/tmp/mayo_dx_ptbxl_like"), help="generated folder (reused)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating records")
    parser.add_argument("--smoke", action="store_true", help="300 records, 3 training batches; writes nothing")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.records, arguments.train_batches = 300, 3
        arguments.data = arguments.data.with_name(arguments.data.name + "_smoke")
    folder = arguments.data / f"records_{arguments.records}"
    cache = arguments.data / f"cache_{arguments.records}"
    if arguments.child:
        print(json.dumps(train_and_measure(folder, arguments.records, arguments.epochs, arguments.lazy, arguments.net, cache,
                                           arguments.train_batches)))
        return
    started = time.perf_counter()
    if not (folder / "ptbxl_database.csv").is_file():
        from mayo_dx.ecg.synthetic_ptbxl import write_ptbxl_like

        write_ptbxl_like(folder, arguments.records, seed=0, sampling_rates=(100,), workers=arguments.workers)
    generated = time.perf_counter() - started
    command = [sys.executable, __file__, "--child", "--records", str(arguments.records), "--epochs", str(arguments.epochs),
               "--net", arguments.net, "--data", str(arguments.data)]
    command += ["--lazy"] if arguments.lazy else []
    command += ["--train-batches", str(arguments.train_batches)] if arguments.train_batches else []
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    result = json.loads(output)
    result["generate_s"] = generated
    print(json.dumps(result, indent=2))
    if arguments.smoke:
        return
    signals_mb = arguments.records * 12 * 1000 * 4 / 1e6
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    flags = " --lazy" if arguments.lazy else ""
    write_section(
        f"{SECTION}\n\n"
        f"Command: `.venv/bin/python benchmarks/ecg_training_memory.py --records {arguments.records} --epochs {arguments.epochs} "
        f"--net {arguments.net}{flags}` ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load} at the end, Python {platform.python_version()})\n\n"
        "| records | reading | peak RSS MB | RSS after imports MB | RSS after setup MB | setup s | fit s | float32 signals in RAM would be MB |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|\n"
        f"| {result['records']} | {'lazy (wfdb per record)' if result['lazy'] else 'cache (os.pread per record)'} | "
        f"{result['peak_rss_mb']:.0f} | {result['rss_after_imports_mb']:.0f} | {result['rss_after_setup_mb']:.0f} | "
        f"{result['setup_s']:.0f} | {result['fit_s']:.0f} | {signals_mb:.0f} |\n\n"
        "Peak RSS from `resource.getrusage(RUSAGE_SELF).ru_maxrss` of a fresh process that builds the cache (or reads lazily), "
        "fits the standardisation and trains; setup includes building the cache once.\n"
    )


if __name__ == "__main__":
    main()
