"""``fit|validate|test -c configs/ct/<name>.yaml``: the LightningCLI entry of the two CT stages.

The YAML mirrors constructors: ``model`` is a ``class_path`` to
:class:`~mayo_dx.training.segmentation.CtSegmentationTask` (localiser) or
:class:`~mayo_dx.training.segmentation.CtAnalyserTask`, whose ``net`` is a ``class_path`` to a
registered network class (:mod:`mayo_dx.imaging.nets`); ``data`` is
:class:`~mayo_dx.imaging.data.CtDataModule` (``preprocessing`` is a
:class:`~mayo_dx.imaging.resample.CtPreprocessing`, stored in the card); ``card`` is
:class:`CtCardCallback`, which, when the analyser's fit ends, evaluates both stages end to end,
calibrates, picks the operating point and writes the card into the best analyser checkpoint.
Train the localiser first; the analyser config names its checkpoint.

Example:
    >>> main(["fit", "-c", "configs/ct/phantom_localiser.yaml"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_warn

from mayo_dx.imaging.data import CtDataModule
from mayo_dx.training.segmentation import CtSegmentationTask

__all__ = ["CtCardCallback", "CtTrainingCLI", "is_ct_config", "main"]


class CtCardCallback(pl.Callback):
    """Write the CT model card into the best analyser checkpoint when ``fit`` ends.

    Args:
        localiser_checkpoint: The trained stage-1 checkpoint; None (localiser runs) does nothing.
        name: Card and registry name.
        version: Card version.
        specificity: Target specificity of the operating threshold on validation.
        bootstrap_resamples: Resamples of the AUROC confidence interval.
        acquisition: Accepted acquisition range written to ``input_spec["acquisition"]``.

    Example:
        >>> CtCardCallback().localiser_checkpoint is None
        True
    """

    def __init__(self, localiser_checkpoint: str | None = None, name: str = "ct_pancreas", version: str = "0.1.0",
                 specificity: float = 0.95, bootstrap_resamples: int = 1000,
                 acquisition: dict[str, Any] | None = None) -> None:
        self.localiser_checkpoint, self.name, self.version = localiser_checkpoint, name, version
        self.specificity, self.bootstrap_resamples, self.acquisition = specificity, bootstrap_resamples, acquisition
        self.card = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Finalise (rank 0) from the best checkpoint and the data module's validation/test split."""
        from mayo_dx.training.ct_evaluation import finalise_ct_model

        if self.localiser_checkpoint is None or getattr(pl_module, "stage", None) != "analyser" or not trainer.is_global_zero:
            return
        callback = trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
        if not best:
            rank_zero_warn("no analyser checkpoint was saved (is the monitored metric logged?): no model card written")
            return
        splits = trainer.datamodule.splits  # type: ignore[attr-defined]
        self.card = finalise_ct_model(self.localiser_checkpoint, best, splits["validation"], splits["test"],
                                      name=self.name, version=self.version, specificity=self.specificity,
                                      bootstrap_resamples=self.bootstrap_resamples, acquisition=self.acquisition)


class CtTrainingCLI(LightningCLI):
    """LightningCLI for the CT tasks, with the ``card`` section.

    Example:
        >>> CtTrainingCLI.__mro__[1].__name__
        'LightningCLI'
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the card callback as ``card`` and take the patch size from the data."""
        parser.add_lightning_class_args(CtCardCallback, "card")
        parser.link_arguments("data.patch_size", "model.init_args.patch_size")


def is_ct_config(argv: Sequence[str]) -> bool:
    """True when a ``-c``/``--config`` file of the arguments trains a CT stage (``model.class_path``).

    ``mayo-dx fit|validate|test`` uses it to route a config to :func:`main` instead of the ECG CLI.

    Example:
        >>> is_ct_config(["fit", "-c", "configs/ct/phantom_localiser.yaml"]), is_ct_config(["fit"])
        (True, False)
    """
    import yaml

    arguments = list(argv)
    for index, argument in enumerate(arguments[:-1]):
        if argument in ("-c", "--config") and Path(arguments[index + 1]).is_file():
            config = yaml.safe_load(Path(arguments[index + 1]).read_text()) or {}
            model = config.get("model") if isinstance(config, dict) else None
            if isinstance(model, dict) and str(model.get("class_path", "")).startswith("mayo_dx.training.segmentation"):
                return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fit``, ``validate`` or ``test`` from a CT config; return the exit status.

    Example:
        >>> main(["fit", "-c", "configs/ct/phantom_analyser.yaml"])  # doctest: +SKIP
        0
    """
    CtTrainingCLI(
        CtSegmentationTask,
        CtDataModule,
        subclass_mode_model=True,
        args=None if argv is None else list(argv),
        seed_everything_default=0,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
