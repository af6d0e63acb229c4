"""Training layer: Lightning task, CLI, calibration after training, checkpoints (imports torch).

Never imported by the runtime layer. The parts:

* :class:`~mayo_dx.training.task.ClassificationTask`: the LightningModule; the network and the
  labels are passed in.
* :class:`~mayo_dx.training.network.RegisteredNet`: a registry network by name, rebuildable
  from a checkpoint.
* :class:`~mayo_dx.training.finalise.ModelCardCallback`: temperature scaling, thresholds,
  metrics and the model card when ``fit`` ends.
* :func:`~mayo_dx.training.checkpoint.load_trained`: ``(network in eval mode, ModelCard)``.
* :func:`~mayo_dx.training.evaluation.evaluate_checkpoint`: metrics of a checkpoint on a split.
* :mod:`mayo_dx.training.cli`: ``mayo-dx fit|validate|test -c configs/ecg/<name>.yaml``.

Example:
    >>> from mayo_dx.training import ClassificationTask, load_trained
    >>> ClassificationTask.__name__
    'ClassificationTask'
"""

from mayo_dx.training.checkpoint import load_trained
from mayo_dx.training.evaluation import evaluate_checkpoint
from mayo_dx.training.finalise import ModelCardCallback, finalise_checkpoint
from mayo_dx.training.network import RegisteredNet
from mayo_dx.training.task import ClassificationTask

__all__ = [
    "ClassificationTask",
    "ModelCardCallback",
    "RegisteredNet",
    "evaluate_checkpoint",
    "finalise_checkpoint",
    "load_trained",
]
