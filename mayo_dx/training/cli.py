"""``mayo-dx fit|validate|test -c configs/ecg/<name>.yaml``: the LightningCLI entry for ECG training.

The YAML mirrors the constructors: ``model`` is :class:`~mayo_dx.training.task.ClassificationTask`
(its ``net`` a ``class_path``, normally :class:`~mayo_dx.training.network.RegisteredNet` with a
registry name), ``data`` is :class:`~mayo_dx.ecg.data.EcgDataModule` (its ``source`` a
``class_path`` from :mod:`mayo_dx.ecg.sources`), ``card`` is
:class:`~mayo_dx.training.finalise.ModelCardCallback`, and ``trainer`` is Lightning's Trainer
(strategies, devices and nodes come from Lightning: ``--trainer.strategy ddp
--trainer.devices 2`` scales out). Labels are stated once, by the data source, and linked
into the model when the data module is built: ``data.label_names -> model.labels``,
``data.multi_label -> model.multi_label`` and ``data.num_labels ->
model.net.init_args.num_labels`` (so the network's ``class_path`` must take ``num_labels``).

Example:
    >>> main(["fit", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from mayo_dx.ecg.data import EcgDataModule
from mayo_dx.training.finalise import ModelCardCallback
from mayo_dx.training.task import ClassificationTask

__all__ = ["SUBCOMMANDS", "EcgTrainingCLI", "main"]

#: Subcommands handed to LightningCLI by ``mayo-dx``.
SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test")


class EcgTrainingCLI(LightningCLI):
    """LightningCLI with the label links and the ``card`` section.

    Example:
        >>> EcgTrainingCLI.__mro__[1].__name__
        'LightningCLI'
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link labels from the data to the model and add the model-card callback as ``card``."""
        parser.link_arguments("data.label_names", "model.labels", apply_on="instantiate")
        parser.link_arguments("data.multi_label", "model.multi_label", apply_on="instantiate")
        parser.link_arguments("data.num_labels", "model.net.init_args.num_labels", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCardCallback, "card")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fit``, ``validate`` or ``test`` from a config; return the exit status.

    Example:
        >>> main(["fit", "-c", "configs/ecg/synthetic.yaml"])  # doctest: +SKIP
        0
    """
    EcgTrainingCLI(
        ClassificationTask,
        EcgDataModule,
        args=None if argv is None else list(argv),
        seed_everything_default=0,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
