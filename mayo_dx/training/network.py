"""A network built from the model registry by name, so a checkpoint can rebuild it.

The task module is handed any ``nn.Module`` (DESIGN.md: pass the network in). Configs name
the network through :class:`RegisteredNet`, whose arguments (registry name, head size, leads,
options) are plain data: the task stores them in every checkpoint and
:func:`mayo_dx.training.checkpoint.load_trained` rebuilds the same network from them, with no
pickled Python objects. ``num_labels`` is linked from the data module in the CLI, so labels
are stated once.

Example:
    >>> import torch
    >>> net = RegisteredNet("xresnet1d18", num_labels=5, options={"head_dropout": 0.25})
    >>> net(torch.zeros(2, 12, 250)).shape, net.spec["options"]
    (torch.Size([2, 5]), {'head_dropout': 0.25})
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Mapping

import torch
from torch import nn

from mayo_dx.errors import ModelNotFound
from mayo_dx.registry import RegisteredModel, get_model

__all__ = ["NETWORK_MODULES", "RegisteredNet", "find_network"]

#: Modules imported to register the built-in networks before a name is looked up.
NETWORK_MODULES: tuple[str, ...] = ("mayo_dx.ecg.nets",)


def find_network(name: str) -> RegisteredModel:
    """Registry entry of ``name``, importing the built-in network modules first if needed.

    Raises:
        ModelNotFound: Nothing is registered under ``name``.

    Example:
        >>> find_network("no_such_net")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ModelNotFound: no model named 'no_such_net'; registered: ...
    """
    try:
        return get_model(name)
    except ModelNotFound:
        for module in NETWORK_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                if error.name != module:
                    raise
        return get_model(name)


class RegisteredNet(nn.Module):
    """The registered network ``name`` with ``num_labels`` outputs (``[batch, leads, samples] -> logits``).

    Args:
        name: Registry name (e.g. ``"xresnet1d101"``); ``mayo-dx models`` lists them.
        num_labels: Head size; linked from the data module's labels in the CLI.
        num_leads: Input channels.
        options: Keyword arguments of the registered factory (JSON types).

    Attributes:
        network: The built network (what export and inference use).
        spec: ``{"name", "num_labels", "num_leads", "options"}``, stored in checkpoints.

    Example:
        >>> RegisteredNet("xresnet1d18", num_labels=5).spec["name"]
        'xresnet1d18'
    """

    def __init__(
        self, name: str, num_labels: int = 1, num_leads: int = 12, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        options = dict(options or {})
        json.dumps(options)  # refuse non-JSON options early: the spec must round-trip
        entry = find_network(name)
        self.network = entry.factory(int(num_labels), num_leads=int(num_leads), **options)
        self.spec = {"name": name, "num_labels": int(num_labels), "num_leads": int(num_leads), "options": options}

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, num_labels]``."""
        return self.network(signal)
