"""mayo-dx: small, validated, task-specific diagnostic models with honest uncertainty.

The top-level package is the runtime layer: importing it never imports torch, lightning or
monai. Training lives behind the ``[train]`` extra in :mod:`mayo_dx.training`.

Example:
    >>> import mayo_dx
    >>> mayo_dx.ModelCard.__name__
    'ModelCard'
"""

from mayo_dx.card import Label, ModelCard
from mayo_dx.errors import InputError, MayoDxError
from mayo_dx.registry import get_model, list_models, register_model
from mayo_dx.results import Abstention, Diagnosis, Finding, QualityIssue
from mayo_dx.runtime import Predictor, load

__version__ = "0.1.0"

__all__ = [
    "Abstention",
    "Diagnosis",
    "Finding",
    "InputError",
    "Label",
    "MayoDxError",
    "ModelCard",
    "Predictor",
    "QualityIssue",
    "__version__",
    "get_model",
    "list_models",
    "load",
    "register_model",
]
