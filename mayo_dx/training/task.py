"""The Lightning task for ECG classification: the network and the labels are passed in.

:class:`ClassificationTask` trains any ``nn.Module`` mapping ``[batch, 12, samples]`` to
logits ``[batch, labels]``: multi-label with binary cross-entropy on logits (one sigmoid per
label) or single-label with cross-entropy (softmax). Training batches are random crops;
validation and test batches hold every sliding window of each record (see
:mod:`mayo_dx.ecg.data`) and the window logits are aggregated per record (``"max"`` in the
PTB-XL benchmark, ``"mean"`` for softmax tasks), exactly as the torch-free runtime does from
the model card. Per epoch it logs ``train_loss``, ``val_loss``, ``val_auroc_macro`` and
``val_auroc_<label>`` (torchmetrics, synchronised across processes), and the same with
``test_`` on test.

Optimisation follows the benchmark's fastai recipe: AdamW (decoupled weight decay) and a
one-cycle schedule peaking at ``lr`` (fastai ``fit_one_cycle``: 25 % warm-up, start at
``lr / 25``, end at ``lr / 1e5``, momentum cycled 0.95 -> 0.85 -> 0.95).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    >>> task = ClassificationTask(net, ["A", "B"])
    >>> batch = {"signal": torch.zeros(6, 12, 10), "windows": torch.tensor([3, 3]), "target": torch.ones(2, 2)}
    >>> task.record_logits(batch).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional
from torchmetrics import Metric
from torchmetrics.classification import BinaryAUROC, MulticlassAUROC, MultilabelAUROC

from mayo_dx.card import ModelCard
from mayo_dx.errors import InputError

__all__ = ["CHECKPOINT_KEY", "ClassCounts", "ClassificationTask", "aggregate_windows"]

#: Key of mayo-dx's own entry in a Lightning checkpoint (network spec, data, model card).
CHECKPOINT_KEY = "mayo_dx"


def aggregate_windows(logits: torch.Tensor, windows: torch.Tensor, aggregation: str) -> torch.Tensor:
    """Per-record logits from window logits ``[all windows, labels]`` and windows per record.

    Example:
        >>> aggregate_windows(torch.tensor([[1.0], [3.0], [2.0]]), torch.tensor([2, 1]), "max").tolist()
        [[3.0], [2.0]]
    """
    if aggregation not in ("max", "mean"):
        raise InputError(f"aggregation must be 'max' or 'mean', got {aggregation!r}")
    counts = windows.tolist()
    if len(set(counts)) == 1:
        grouped = logits.reshape(len(counts), counts[0], logits.shape[-1])
        return grouped.amax(dim=1) if aggregation == "max" else grouped.mean(dim=1)
    parts = torch.split(logits, counts)
    return torch.stack([part.amax(dim=0) if aggregation == "max" else part.mean(dim=0) for part in parts])


class ClassCounts(Metric):
    """Positives per class and records seen (summed across processes): which AUROCs are defined.

    Example:
        >>> counts = ClassCounts(2)
        >>> counts.update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        >>> [value.tolist() for value in counts.compute()]
        [[2.0, 0.0], 2.0]
    """

    full_state_update = False

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.add_state("positives", default=torch.zeros(num_labels), dist_reduce_fx="sum")
        self.add_state("records", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, target: torch.Tensor) -> None:
        """Add a batch of 0/1 targets ``[records, labels]``."""
        self.positives += target.float().sum(dim=0)
        self.records += float(len(target))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positives per class, records)``."""
        return self.positives, self.records


class ClassificationTask(pl.LightningModule):
    """Train a network on ECG windows; evaluate records by aggregating window logits.

    Args:
        net: Network ``[batch, leads, samples] -> [batch, len(labels)]`` (e.g.
            :class:`mayo_dx.training.network.RegisteredNet`).
        labels: Label names in output order (linked from the data module in the CLI).
        multi_label: Sigmoid per label with BCE (``True``) or one softmax with cross-entropy.
        aggregation: ``"max"`` or ``"mean"`` over window logits; ``None``: max for
            multi-label, mean for single-label.
        lr: Peak learning rate (benchmark: 1e-2).
        weight_decay: AdamW decoupled weight decay (benchmark: 1e-2).
        schedule: ``"one_cycle"`` (benchmark) or ``"constant"``.
        pct_start: Share of steps warming up in the one-cycle schedule.
        div_factor: One-cycle start ``lr / div_factor``.
        final_div_factor: One-cycle end ``lr / (div_factor * final_div_factor)``.

    Example:
        >>> task = ClassificationTask(torch.nn.Linear(3, 2), ["NORM", "MI"], lr=1e-3)
        >>> task.aggregation, task.hparams.lr
        ('max', 0.001)
    """

    def __init__(
        self,
        net: nn.Module,
        labels: Sequence[str],
        multi_label: bool = True,
        aggregation: Literal["max", "mean"] | None = None,
        lr: float = 1e-2,
        weight_decay: float = 1e-2,
        schedule: Literal["one_cycle", "constant"] = "one_cycle",
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 4000.0,
    ) -> None:
        super().__init__()
        labels = [str(label) for label in labels]
        if not labels or len(set(labels)) != len(labels):
            raise InputError(f"labels must be distinct and non-empty, got {labels}")
        if not multi_label and len(labels) < 2:
            raise InputError("a single-label (softmax) task needs at least two classes")
        declared = getattr(net, "spec", {}).get("num_labels") if isinstance(getattr(net, "spec", None), dict) else None
        if declared is not None and declared != len(labels):
            raise InputError(f"the network has {declared} outputs but {len(labels)} labels were given")
        if schedule not in ("one_cycle", "constant"):
            raise InputError(f"unknown schedule {schedule!r}")
        self.net = net
        self.label_names = labels
        self.multi_label = bool(multi_label)
        self.aggregation = aggregation or ("max" if multi_label else "mean")
        if self.aggregation not in ("max", "mean"):
            raise InputError(f"aggregation must be 'max' or 'mean', got {aggregation!r}")
        self.card: ModelCard | None = None
        self.save_hyperparameters(ignore=["net"])
        self.metrics = nn.ModuleDict({stage: self._stage_metrics() for stage in ("val", "test")})

    def _stage_metrics(self) -> nn.ModuleDict:
        count = len(self.label_names)
        if self.multi_label:
            auroc = MultilabelAUROC(count, average=None) if count > 1 else BinaryAUROC()  # one label: a binary task
        else:
            auroc = MulticlassAUROC(count, average=None)
        return nn.ModuleDict({"auroc": auroc, "counts": ClassCounts(count)})

    # ------------------------------------------------------------------ forward and loss
    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of windows ``[batch, leads, window]``."""
        return self.net(signal)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE with logits (multi-label) or cross-entropy against the one-hot target's class."""
        if self.multi_label:
            return functional.binary_cross_entropy_with_logits(logits, target.float())
        return functional.cross_entropy(logits, target.argmax(dim=1))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Uncalibrated sigmoid or softmax of logits."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    def record_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-record logits of an evaluation batch (all windows, aggregated)."""
        return aggregate_windows(self(batch["signal"]), batch["windows"], self.aggregation)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        """Loss on random crops; logged per epoch as ``train_loss``."""
        loss = self.loss(self(batch["signal"]), batch["target"])
        size = len(batch["target"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def _evaluation_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self.record_logits(batch)
        target = batch["target"]
        loss = self.loss(logits, target)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=len(target), sync_dist=True)
        metrics = self.metrics[stage]
        labels = target.long() if self.multi_label else target.argmax(dim=1)
        probabilities = self.probabilities(logits)
        if isinstance(metrics["auroc"], BinaryAUROC):
            probabilities, labels = probabilities[:, 0], labels[:, 0]
        metrics["auroc"].update(probabilities, labels)
        metrics["counts"].update(target)
        return loss

    def _log_auroc(self, stage: str) -> None:
        metrics = self.metrics[stage]
        if not metrics["counts"].update_called:
            return
        per_class = metrics["auroc"].compute().float().reshape(-1)
        positives, records = metrics["counts"].compute()
        defined = (positives > 0) & (positives < records)  # AUROC needs both outcomes
        for name, value in zip(self.label_names, per_class):
            self.log(f"{stage}_auroc_{name}", value, sync_dist=False)
        macro = per_class[defined].mean() if bool(defined.any()) else torch.tensor(float("nan"))
        self.log(f"{stage}_auroc_macro", macro, prog_bar=True, sync_dist=False)
        for metric in metrics.values():
            metric.reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        """Loss and AUROC on whole records (aggregated windows)."""
        return self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val_auroc_macro`` (classes with both outcomes) and ``val_auroc_<label>``."""
        self._log_auroc("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        """Loss and AUROC on whole test records."""
        return self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log ``test_auroc_macro`` and ``test_auroc_<label>``."""
        self._log_auroc("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        """Per-record logits (uncalibrated)."""
        return self.record_logits(batch)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """AdamW, with the one-cycle schedule stepped every batch."""
        settings = self.hparams
        optimiser = torch.optim.AdamW(
            self.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, betas=(0.9, 0.99)
        )
        if settings.schedule == "constant":
            return optimiser
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=settings.lr, total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
            pct_start=settings.pct_start, div_factor=settings.div_factor, final_div_factor=settings.final_div_factor,
            base_momentum=0.85, max_momentum=0.95,
        )
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoint
    def checkpoint_entry(self) -> dict[str, Any]:
        """What mayo-dx keeps in a checkpoint: network spec, labels, data description, card.

        Example:
            >>> ClassificationTask(torch.nn.Linear(3, 2), ["A", "B"]).checkpoint_entry()["labels"]
            ['A', 'B']
        """
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        describe = getattr(datamodule, "describe", None)
        data = None
        if callable(describe):
            try:
                data = describe()
            except InputError:  # not set up yet (statistics unfitted)
                data = None
        return {
            "format": 1,
            "net": getattr(self.net, "spec", None),
            "labels": list(self.label_names),
            "multi_label": self.multi_label,
            "aggregation": self.aggregation,
            "data": data,
            "card": None if self.card is None else self.card.to_dict(),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store :meth:`checkpoint_entry` (plain JSON types) under ``checkpoint["mayo_dx"]``."""
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_entry()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the model card when the checkpoint holds one."""
        card = (checkpoint.get(CHECKPOINT_KEY) or {}).get("card")
        self.card = None if card is None else ModelCard.from_dict(card)
