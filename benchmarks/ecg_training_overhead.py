"""Training throughput of the Lightning ECG task against a plain PyTorch loop (records/s).

Both train the same network (``--net``, default xresnet1d18) on the same generated
PTB-XL-shaped data through the same DataLoader (``EcgDataModule`` random 2.5 s crops from
the preprocessed-signal cache), with AdamW + one-cycle and BCE with logits. The plain loop is
``for batch in loader: loss.backward(); optimiser.step(); scheduler.step()``; the Lightning
side is ``Trainer.fit(ClassificationTask)`` without validation, logger, checkpointing or
progress bar. Records/s is measured over the training epochs after the first (warm-up), the
runs alternate (plain, Lightning, plain, ...) and the best of ``--repeats`` is kept for each.
Overhead = 1 - Lightning / plain (target: at most 5 %).

Run: ``.venv/bin/python benchmarks/ecg_training_overhead.py`` (writes the
"ECG training overhead" section of benchmarks/RESULTS.md); ``--smoke`` for a tiny check
that writes nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.nn import functional

from mayo_dx.ecg.data import EcgDataModule
from mayo_dx.ecg.sources import SyntheticPtbxlSource
from mayo_dx.training.network import RegisteredNet
from mayo_dx.training.task import ClassificationTask

from results_file import write_section as replace_section  # benchmarks/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## ECG training overhead"


class EpochTimer(pl.Callback):
    """Wall time of each training epoch (excluding setup, validation and teardown)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.durations.append(time.perf_counter() - self._start)


def records_per_epoch(data: EcgDataModule) -> int:
    loader = data.train_dataloader()
    return len(loader) * data.batch_size  # drop_last: every batch is full


def plain_loop(data: EcgDataModule, net_name: str, epochs: int, seed: int) -> float:
    """Records/s of a hand-written loop over epochs 2..epochs."""
    pl.seed_everything(seed, verbose=False)
    net = RegisteredNet(net_name, data.num_labels)
    loader = data.train_dataloader()
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-2, total_steps=epochs * len(loader), pct_start=0.25,
                                                    div_factor=25.0, final_div_factor=4000.0)
    durations = []
    net.train()
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in loader:
            loss = functional.binary_cross_entropy_with_logits(net(batch["signal"]), batch["target"])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
        durations.append(time.perf_counter() - start)
    return records_per_epoch(data) * (epochs - 1) / sum(durations[1:])


def lightning_fit(data: EcgDataModule, net_name: str, epochs: int, seed: int) -> float:
    """Records/s of ``Trainer.fit`` over epochs 2..epochs."""
    pl.seed_everything(seed, verbose=False)
    task = ClassificationTask(RegisteredNet(net_name, data.num_labels), data.label_names)
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(task, datamodule=data)
    return records_per_epoch(data) * (epochs - 1) / sum(timer.durations[1:])


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md."""
    replace_section(SECTION, text, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="generated records (folds 1-8 train)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side; best kept")
    parser.add_argument("--net", default="xresnet1d18", help="registered network")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--data", type=Path, default=None, help="folder for the generated data (default: temporary)")
    parser.add_argument("--smoke", action="store_true", help="tiny run (200 records, 2 epochs, 1 repeat); writes nothing")
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.records, arguments.epochs, arguments.repeats, arguments.batch_size = 200, 2, 1, 32
    torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = arguments.data or Path(scratch) / "synthetic"
        source = SyntheticPtbxlSource(folder, n_records=arguments.records, seed=0, workers=max(1, os.cpu_count() or 1))
        data = EcgDataModule(source, batch_size=arguments.batch_size, cache_dir=Path(scratch) / "cache")
        data.prepare_data()
        data.setup("fit")
        plain, lightning = [], []
        for repeat in range(arguments.repeats):
            plain.append(plain_loop(data, arguments.net, arguments.epochs, seed=repeat))
            lightning.append(lightning_fit(data, arguments.net, arguments.epochs, seed=repeat))
            print(f"repeat {repeat + 1}: plain {plain[-1]:.0f} records/s, Lightning {lightning[-1]:.0f} records/s")
    best_plain, best_lightning = max(plain), max(lightning)
    overhead = 1.0 - best_lightning / best_plain
    print(f"best: plain {best_plain:.0f}, Lightning {best_lightning:.0f} records/s; overhead {100 * overhead:.1f} % (target <= 5 %)")
    if arguments.smoke:
        return
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    write_section(
        f"{SECTION}\n\n"
        f"Command: `.venv/bin/python benchmarks/ecg_training_overhead.py --records {arguments.records} --epochs {arguments.epochs} "
        f"--repeats {arguments.repeats} --net {arguments.net} --batch-size {arguments.batch_size} --threads {arguments.threads}` "
        f"({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs, load average {load} at the end, "
        f"Python {platform.python_version()}, torch {torch.__version__}, lightning {pl.__version__})\n\n"
        "| loop | records/s (best of repeats) | all repeats |\n|---|---:|---|\n"
        f"| plain PyTorch | {best_plain:.0f} | {', '.join(f'{value:.0f}' for value in plain)} |\n"
        f"| Lightning `ClassificationTask` | {best_lightning:.0f} | {', '.join(f'{value:.0f}' for value in lightning)} |\n\n"
        f"Lightning overhead: {100 * overhead:.1f} % (target <= 5 %). Same network, data loader (random 2.5 s crops from the "
        "preprocessed cache), optimiser and schedule; epochs after the first are timed; validation is off on both sides.\n"
    )


if __name__ == "__main__":
    main()
