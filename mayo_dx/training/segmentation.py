"""Lightning tasks for the two CT stages; the network is passed in.

* :class:`CtSegmentationTask` (stage 1, localiser): Dice + cross-entropy (MONAI ``DiceCELoss``,
  softmax, background excluded from Dice) on random patches; validation runs
  ``monai.inferers.sliding_window_inference`` (Gaussian blending) over each whole coarse volume
  and logs ``val_dice_<class>`` and ``val_dice_mean`` (per-case MONAI ``compute_dice``, summed
  in torchmetrics ``SumMetric`` states so the means are global under DDP; a class absent from
  a case's truth is left out of that class's mean).
* :class:`CtAnalyserTask` (stage 2): the same for pancreas and lesion (``"dicece"`` or
  ``"dicefocal"``: MONAI ``DiceFocalLoss``, for the small, rare lesion class) plus binary
  cross-entropy on the case logit, weighted by ``case_loss_weight``. A patch's case target is 1
  when it holds lesion voxels (the case label for cases without a label map). In validation
  the case logit of a crop is the maximum over its sliding windows (one window when the patch
  covers the crop), and ``val_auroc`` (torchmetrics ``BinaryAUROC``) is logged per epoch.

Optimiser: AdamW with a cosine decay over all training steps. Each checkpoint carries
``checkpoint["mayo_dx"]``: the stage, the network's registry name and arguments, the patch
size, class names and the data module's description (preprocessing included), as JSON types.

Example:
    >>> from mayo_dx.imaging.nets import build_ct_localiser
    >>> task = CtSegmentationTask(build_ct_localiser(features=(4, 4, 8, 8, 16, 4)), patch_size=(32, 32, 32))
    >>> task.class_names, task.stage
    (['background', 'gland'], 'localiser')
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Literal, Sequence

import lightning.pytorch as pl
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss, DiceFocalLoss
from monai.metrics import compute_dice
from torch import nn
from torch.nn import functional
from torchmetrics.aggregation import SumMetric
from torchmetrics.classification import BinaryAUROC

from mayo_dx.errors import InputError
from mayo_dx.imaging.nets import network_config

__all__ = ["CHECKPOINT_KEY", "CtAnalyserTask", "CtSegmentationTask", "sliding_window_case"]

CHECKPOINT_KEY = "mayo_dx"


def sliding_window_case(net: nn.Module, image: torch.Tensor, patch_size: Sequence[int], overlap: float = 0.5,
                        sw_batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Segmentation logits over a whole volume and, for a two-output network, the max case logit.

    Example:
        >>> from mayo_dx.imaging.nets import build_ct_analyser
        >>> net = build_ct_analyser(features=(4, 4, 8, 8, 16, 4)).eval()
        >>> logits, case = sliding_window_case(net, torch.zeros(1, 1, 40, 32, 32), (32, 32, 32))
        >>> tuple(logits.shape), tuple(case.shape)
        ((1, 3, 40, 32, 32), (1, 1))
    """
    cases: list[torch.Tensor] = []

    def predictor(patch: torch.Tensor) -> torch.Tensor:
        output = net(patch)
        if isinstance(output, (tuple, list)):
            cases.append(output[1])
            return output[0]
        return output

    logits = sliding_window_inference(image, tuple(int(s) for s in patch_size), sw_batch_size, predictor,
                                      overlap=overlap, mode="gaussian")
    if cases and image.shape[0] != 1:
        raise InputError("the case logit is aggregated over the windows of one volume: pass a batch of 1")
    case = torch.cat(cases).amax(dim=0, keepdim=True) if cases else None  # every window of the one volume
    return logits, case  # type: ignore[return-value]


class CtSegmentationTask(pl.LightningModule):
    """Patch-trained 3-D segmentation with sliding-window validation (stage 1 by default).

    Args:
        net: Network ``[b, 1, z, y, x] -> [b, classes, z, y, x]`` (e.g. ``CtLocaliserNet``).
        class_names: Names of the output channels, background first.
        patch_size: Sliding-window size; None takes the data module's ``patch_size``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        sw_overlap: Overlap of validation windows.
        sw_batch_size: Windows per forward pass in validation.
        stage: ``"localiser"`` or ``"analyser"`` (recorded in checkpoints).
        class_weights: Per-class weights of the cross-entropy and Dice terms (None: equal).
    """

    def __init__(self, net: nn.Module, class_names: Sequence[str] = ("background", "gland"),
                 patch_size: Sequence[int] | None = None, lr: float = 1e-3, weight_decay: float = 1e-5,
                 sw_overlap: float = 0.5, sw_batch_size: int = 2, stage: Literal["localiser", "analyser"] = "localiser",
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.net = net
        self.class_names = [str(name) for name in class_names]
        if len(self.class_names) < 2:
            raise InputError("class_names needs background and at least one class")
        self.patch_size = None if patch_size is None else [int(size) for size in patch_size]
        self.stage = stage
        if class_weights is not None and len(class_weights) != len(self.class_names):
            raise InputError(f"class_weights needs one weight per class ({len(self.class_names)})")
        self.save_hyperparameters(ignore=["net"])
        weight = None if class_weights is None else torch.tensor([float(value) for value in class_weights])
        self.segmentation_loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                                            weight=weight)
        # Per-class Dice sums and case counts, synchronised across processes (torchmetrics), so every
        # rank logs the same global means and runs the same collectives (DDP-safe).
        self.dice_totals = nn.ModuleDict({
            stage: nn.ModuleDict({f"{kind}_{index}": SumMetric() for index in range(1, len(self.class_names))
                                  for kind in ("sum", "count")})
            for stage in ("val", "test")
        })

    def forward(self, image: torch.Tensor) -> Any:
        """The network's output for a batch of patches."""
        return self.net(image)

    def _patch(self) -> list[int]:
        if self.patch_size is None:
            datamodule = self._trainer.datamodule if self._trainer is not None else None
            if datamodule is None or not hasattr(datamodule, "patch_size"):
                raise InputError("patch_size is not set and no data module gives one")
            self.patch_size = [int(size) for size in datamodule.patch_size]
        return self.patch_size

    def _segmentation_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        labelled = batch["has_labels"].bool()
        if not bool(labelled.any()):
            return logits.sum() * 0.0
        return self.segmentation_loss(logits[labelled], batch["label"][labelled])

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        """Dice + CE on a batch of patches; logged per epoch as ``train_loss``."""
        loss = self._segmentation_loss(self.net(batch["image"]), batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def on_train_epoch_start(self) -> None:
        """Reseed patch sampling for the epoch (the dataset reads ``epoch``)."""
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "epoch"):
            dataset.epoch = self.current_epoch  # type: ignore[union-attr]

    def infer(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sliding-window logits (and case logit) of one whole volume ``[1, 1, z, y, x]``."""
        return sliding_window_case(self.net, image, self._patch(), self.hparams.sw_overlap, self.hparams.sw_batch_size)

    def _update_dice(self, logits: torch.Tensor, batch: dict[str, Any], stage: str) -> None:
        labelled = batch["has_labels"].bool()
        if not bool(labelled.any()):
            return
        classes = logits.shape[1]
        predicted = functional.one_hot(logits[labelled].argmax(dim=1), classes).permute(0, 4, 1, 2, 3)
        truth = functional.one_hot(batch["label"][labelled][:, 0].clamp(min=0), classes).permute(0, 4, 1, 2, 3)
        values = compute_dice(predicted, truth, include_background=False, ignore_empty=True)  # NaN: class absent
        totals = self.dice_totals[stage]
        for index in range(1, classes):
            column = values[:, index - 1]
            present = torch.isfinite(column)
            totals[f"sum_{index}"].update(column[present].sum())
            totals[f"count_{index}"].update(present.sum().float())

    def _log_dice(self, stage: str) -> dict[str, float]:
        totals = self.dice_totals[stage]
        result = {}
        for index, name in enumerate(self.class_names[1:], start=1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a metric never updated (no labelled case) computes to 0
                total, count = float(totals[f"sum_{index}"].compute()), float(totals[f"count_{index}"].compute())
            totals[f"sum_{index}"].reset()
            totals[f"count_{index}"].reset()
            if count > 0:
                result[name] = total / count
                self.log(f"{stage}_dice_{name}", result[name], sync_dist=False)
        if result:
            self.log(f"{stage}_dice_mean", sum(result.values()) / len(result), prog_bar=True, sync_dist=False)
        return result

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        """Sliding-window segmentation of one whole volume; Dice per class."""
        logits, _ = self.infer(batch["image"])
        self._update_dice(logits, batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val_dice_<class>`` and ``val_dice_mean``."""
        self._log_dice("val")

    def test_step(self, batch: dict[str, Any], batch_index: int) -> None:
        """As validation, on held-out volumes."""
        logits, _ = self.infer(batch["image"])
        self._update_dice(logits, batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log ``test_dice_<class>`` and ``test_dice_mean``."""
        self._log_dice("test")

    def configure_optimizers(self) -> Any:
        """AdamW with cosine decay stepped every batch."""
        optimiser = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps, eta_min=self.hparams.lr * 0.01)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def checkpoint_entry(self) -> dict[str, Any]:
        """What a checkpoint records for :func:`mayo_dx.training.ct_checkpoint.load_trained_ct`.

        Example:
            >>> from mayo_dx.imaging.nets import build_ct_localiser
            >>> CtSegmentationTask(build_ct_localiser(), patch_size=(32, 32, 32)).checkpoint_entry()["network"]["name"]
            'ct_pancreas_localiser'
        """
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        describe: Callable[[], dict[str, Any]] | None = getattr(datamodule, "describe", None)
        patch = self.patch_size if self.patch_size is not None or datamodule is None else list(datamodule.patch_size)
        return {"format": 1, "task": "ct", "stage": self.stage, "network": network_config(self.net),
                "class_names": list(self.class_names), "patch_size": patch,
                "sw_overlap": float(self.hparams.sw_overlap), "data": describe() if callable(describe) else None}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store :meth:`checkpoint_entry` under ``checkpoint["mayo_dx"]``."""
        checkpoint[CHECKPOINT_KEY] = self.checkpoint_entry()


class CtAnalyserTask(CtSegmentationTask):
    """Stage 2: pancreas and lesion segmentation plus the case-level cancer logit.

    Args:
        net: Network returning ``(segmentation logits, case logit [b, 1])`` (``CtAnalyserNet``).
        class_names: Output channel names, background first.
        patch_size: Sliding-window size; None takes the data module's.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        sw_overlap: Overlap of validation windows.
        sw_batch_size: Windows per forward pass in validation.
        segmentation_loss: ``"dicece"`` or ``"dicefocal"``.
        case_loss_weight: Weight of the case BCE against the segmentation loss.
        class_weights: Per-class loss weights (e.g. ``[1, 1, 5]`` to favour the small lesion class).

    Example:
        >>> from mayo_dx.imaging.nets import build_ct_analyser
        >>> CtAnalyserTask(build_ct_analyser(features=(4, 4, 8, 8, 16, 4)), patch_size=(32, 32, 32)).stage
        'analyser'
    """

    def __init__(self, net: nn.Module, class_names: Sequence[str] = ("background", "pancreas", "lesion"),
                 patch_size: Sequence[int] | None = None, lr: float = 1e-3, weight_decay: float = 1e-5,
                 sw_overlap: float = 0.5, sw_batch_size: int = 2,
                 segmentation_loss: Literal["dicece", "dicefocal"] = "dicece", case_loss_weight: float = 0.5,
                 class_weights: Sequence[float] | None = None) -> None:
        super().__init__(net, class_names, patch_size, lr, weight_decay, sw_overlap, sw_batch_size, stage="analyser",
                         class_weights=class_weights)
        if segmentation_loss == "dicefocal":
            weight = None if class_weights is None else [float(value) for value in class_weights]
            self.segmentation_loss = DiceFocalLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True,
                                                   weight=weight)
        elif segmentation_loss != "dicece":
            raise InputError(f"segmentation_loss must be 'dicece' or 'dicefocal', got {segmentation_loss!r}")
        self.auroc = nn.ModuleDict({"val": BinaryAUROC(), "test": BinaryAUROC()})
        self.case_counts = nn.ModuleDict({stage: nn.ModuleDict({"positives": SumMetric(), "cases": SumMetric()})
                                          for stage in ("val", "test")})

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        """Segmentation loss + ``case_loss_weight`` x BCE on the case logit."""
        logits, case = self.net(batch["image"])
        segmentation = self._segmentation_loss(logits, batch)
        case_loss = functional.binary_cross_entropy_with_logits(case, batch["case"].float())
        loss = segmentation + self.hparams.case_loss_weight * case_loss
        size = len(batch["image"])
        self.log("train_segmentation_loss", segmentation, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train_case_loss", case_loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        logits, case = self.infer(batch["image"])
        self._update_dice(logits, batch, stage)
        target = batch["case"].long().reshape(-1)
        self.auroc[stage].update(torch.sigmoid(case.reshape(-1)), target)  # type: ignore[union-attr]
        self.case_counts[stage]["positives"].update(target.sum().float())
        self.case_counts[stage]["cases"].update(torch.tensor(float(len(target))))

    def _log_auroc(self, stage: str) -> None:
        counts = self.case_counts[stage]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            positives, cases = float(counts["positives"].compute()), float(counts["cases"].compute())
        if 0 < positives < cases:  # the same decision on every rank: the counts are synchronised
            self.log(f"{stage}_auroc", self.auroc[stage].compute(), prog_bar=True, sync_dist=False)
        for metric in (self.auroc[stage], counts["positives"], counts["cases"]):
            metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        """Sliding-window segmentation and max-over-windows case logit of one crop."""
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        """Log ``val_dice_pancreas``, ``val_dice_lesion``, ``val_dice_mean`` and ``val_auroc``."""
        self._log_dice("val")
        self._log_auroc("val")

    def test_step(self, batch: dict[str, Any], batch_index: int) -> None:
        """As validation, on held-out crops."""
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test Dice and AUROC."""
        self._log_dice("test")
        self._log_auroc("test")
