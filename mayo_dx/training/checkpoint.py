"""Read trained ECG checkpoints: the network in eval mode and its model card.

A trained model is a plain Lightning ``.ckpt``. Besides what Lightning writes (``state_dict``,
optimiser and scheduler states, loop and callback states, ``hyper_parameters``), the task
adds ``checkpoint["mayo_dx"]`` (:data:`~mayo_dx.training.task.CHECKPOINT_KEY`): the network's
registry spec, the labels, the data description and, once training has finished, the model
card, all as plain JSON types. Files are opened with ``torch.load(..., weights_only=True)``:
only tensors and primitive containers are unpickled, never arbitrary Python objects, so a
checkpoint cannot run code when it is read.

Example:
    >>> net, card = load_trained("runs/synthetic/checkpoints/best.ckpt")  # doctest: +SKIP
    >>> net.training, card.label_names  # doctest: +SKIP
    (False, ('CD', 'HYP', 'MI', 'NORM', 'STTC'))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError
from mayo_dx.training.task import CHECKPOINT_KEY

__all__ = ["load_trained", "read_checkpoint", "read_entry", "write_entry"]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dictionary on the CPU with ``weights_only=True``.

    Raises:
        ArtifactError: The file is missing or not a readable checkpoint.

    Example:
        >>> read_checkpoint("no_such.ckpt")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ArtifactError: no_such.ckpt: no such checkpoint
    """
    file = Path(path)
    if not file.is_file():
        raise ArtifactError(f"{file.name}: no such checkpoint")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle/zip/runtime errors on damaged files
        raise ArtifactError(f"{file.name}: not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ArtifactError(f"{file.name}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def read_entry(path: str | Path) -> dict[str, Any]:
    """The ``mayo_dx`` entry of a checkpoint (network spec, labels, data, card).

    Example:
        >>> read_entry("runs/best.ckpt")["net"]["name"]  # doctest: +SKIP
        'xresnet1d18'
    """
    entry = read_checkpoint(path).get(CHECKPOINT_KEY)
    if not isinstance(entry, dict):
        raise ArtifactError(f"{Path(path).name}: not written by mayo-dx training (no '{CHECKPOINT_KEY}' entry)")
    return entry


def write_entry(path: str | Path, entry: dict[str, Any]) -> None:
    """Replace a checkpoint's ``mayo_dx`` entry, leaving everything else as it is (atomic rename).

    Example:
        >>> write_entry("runs/best.ckpt", task.checkpoint_entry())  # doctest: +SKIP
    """
    file = Path(path)
    checkpoint = read_checkpoint(file)
    checkpoint[CHECKPOINT_KEY] = entry
    handle, temporary = tempfile.mkstemp(dir=file.parent, suffix=".ckpt.partial")
    os.close(handle)
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, file)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_trained(path: str | Path, net: nn.Module | None = None) -> tuple[nn.Module, ModelCard]:
    """Rebuild a trained network (eval mode, CPU) and read its model card.

    Args:
        path: A checkpoint written by ``mayo-dx fit`` (the best one carries the card).
        net: The network to load the weights into; ``None`` rebuilds the registered network
            recorded in the checkpoint. A network that is not a
            :class:`~mayo_dx.training.network.RegisteredNet` must be passed here.

    Returns:
        ``(network, card)``: the bare network (``[batch, 12, samples] -> logits``, what export
        takes) and the :class:`~mayo_dx.card.ModelCard` with calibration and thresholds.

    Raises:
        ArtifactError: No card (training did not finish), no network spec, or weights that do
            not fit the network.

    Example:
        >>> net, card = load_trained("runs/synthetic/checkpoints/best.ckpt")  # doctest: +SKIP
    """
    from mayo_dx.training.network import RegisteredNet

    name = Path(path).name
    checkpoint = read_checkpoint(path)
    entry = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(entry, dict):
        raise ArtifactError(f"{name}: not written by mayo-dx training (no '{CHECKPOINT_KEY}' entry)")
    if entry.get("card") is None:
        raise ArtifactError(
            f"{name}: no model card yet (the card is written into the best checkpoint when fit ends; "
            "use that checkpoint, or run mayo_dx.training.finalise_checkpoint)"
        )
    card = ModelCard.from_dict(entry["card"])
    spec = entry.get("net")
    if net is None:
        if not isinstance(spec, dict):
            raise ArtifactError(f"{name}: the network is not a registered one; pass net= to load_trained")
        net = RegisteredNet(spec["name"], spec["num_labels"], spec.get("num_leads", 12), spec.get("options"))
    state = {key[len("net."):]: value for key, value in checkpoint["state_dict"].items() if key.startswith("net.")}
    if not isinstance(net, RegisteredNet) and state and all(key.startswith("network.") for key in state):
        state = {key[len("network."):]: value for key, value in state.items()}  # bare net given for a RegisteredNet
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        raise ArtifactError(f"{name}: the weights do not fit the network: {error}") from error
    bare = net.network if isinstance(net, RegisteredNet) else net
    if len(card.labels) != (spec or {}).get("num_labels", len(card.labels)):
        raise ArtifactError(
            f"{name}: the card lists {len(card.labels)} labels, the network has {spec['num_labels']} outputs"
        )
    return bare.eval(), card
