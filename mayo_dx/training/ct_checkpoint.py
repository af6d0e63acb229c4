"""Read trained CT checkpoints: both stage networks (eval mode) and the model card.

Each stage is a plain Lightning ``.ckpt`` whose ``checkpoint["mayo_dx"]`` entry (written by
:class:`~mayo_dx.training.segmentation.CtSegmentationTask`) names the stage, the registered
network and its arguments, the patch size and the data module's description (preprocessing
included). After training, :func:`mayo_dx.training.ct_evaluation.finalise_ct_model` adds the
model card (calibration, threshold, metrics) to the analyser's entry. Files are read with
``torch.load(weights_only=True)`` (no code runs on load).

Example:
    >>> localiser, analyser, card = load_trained_ct("runs/loc/best.ckpt", "runs/ana/best.ckpt")  # doctest: +SKIP
    >>> card.task, card.input_spec["analyser"]["patch_size"]  # doctest: +SKIP
    ('ct', [32, 32, 48])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

import mayo_dx.imaging.nets  # noqa: F401  (registers the CT networks)
from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError
from mayo_dx.registry import get_model
from mayo_dx.training.checkpoint import read_checkpoint
from mayo_dx.training.segmentation import CHECKPOINT_KEY

__all__ = ["load_stage", "load_trained_ct", "stage_entry"]


def stage_entry(checkpoint: dict[str, Any], expected_stage: str, name: str) -> dict[str, Any]:
    """The checkpoint's ``mayo_dx`` entry, checked to be a CT stage of the expected kind.

    Example:
        >>> stage_entry({"mayo_dx": {"task": "ct", "stage": "localiser"}}, "analyser", "x.ckpt")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ArtifactError: x.ckpt: a localiser checkpoint, expected the analyser
    """
    entry = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(entry, dict) or entry.get("task") != "ct":
        raise ArtifactError(f"{name}: not a mayo-dx CT training checkpoint (no CT '{CHECKPOINT_KEY}' entry)")
    if entry.get("stage") != expected_stage:
        raise ArtifactError(f"{name}: a {entry.get('stage')} checkpoint, expected the {expected_stage}")
    return entry


def load_stage(path: str | Path, expected_stage: str) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild one stage's registered network with its trained weights (eval mode, CPU).

    Raises:
        ArtifactError: Missing or foreign checkpoint, wrong stage, or weights that do not fit.

    Example:
        >>> load_stage("no_such.ckpt", "localiser")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ArtifactError: no_such.ckpt: no such checkpoint
    """
    name = Path(path).name
    checkpoint = read_checkpoint(path)
    entry = stage_entry(checkpoint, expected_stage, name)
    spec = entry["network"]
    net = get_model(spec["name"]).factory(**spec["kwargs"])
    state = {key[len("net."):]: value for key, value in checkpoint["state_dict"].items() if key.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise ArtifactError(f"{name}: the weights do not fit {spec['name']}: {error}") from error
    return net.eval(), entry


def load_trained_ct(localiser_checkpoint: str | Path, analyser_checkpoint: str | Path) -> tuple[nn.Module, nn.Module, ModelCard]:
    """``(localiser, analyser, card)`` for export: both networks in eval mode on the CPU.

    The localiser maps ``[b, 1, z, y, x]`` to logits ``[b, 2, z, y, x]``; the analyser to
    ``(segmentation logits [b, 3, z, y, x], case logit [b, 1])``. The card (see
    ``notes/ct_card_contract.md``) is the one :func:`~mayo_dx.training.ct_evaluation.finalise_ct_model`
    stored in the analyser checkpoint; its recorded localiser checkpoint must match.

    Raises:
        ArtifactError: A checkpoint is missing, of the wrong stage, or the analyser has no card yet.

    Example:
        >>> load_trained_ct("runs/loc/best.ckpt", "runs/ana/best.ckpt")  # doctest: +SKIP
    """
    localiser, localiser_entry = load_stage(localiser_checkpoint, "localiser")
    analyser, analyser_entry = load_stage(analyser_checkpoint, "analyser")
    card_data = analyser_entry.get("card")
    if card_data is None:
        raise ArtifactError(f"{Path(analyser_checkpoint).name}: no model card yet; run "
                            "mayo_dx.training.ct_evaluation.finalise_ct_model (or the analyser config's card callback)")
    card = ModelCard.from_dict(card_data)
    recorded = (card.extra.get("stages") or {}).get("localiser", {}).get("network")
    if recorded is not None and recorded != localiser_entry["network"]:
        raise ArtifactError("the card was made with a different localiser network than the one given")
    if card.preprocessing.get("localiser") != (localiser_entry.get("data") or {}).get("preprocessing"):
        raise ArtifactError("the card's localiser preprocessing differs from the localiser checkpoint's")
    return localiser, analyser, card
