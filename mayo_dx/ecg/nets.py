"""1-D ECG networks registered by name (training layer: imports torch).

Importing this module registers, with ``task="ecg"``:

========================  ==========================================  ==========  =======
name                      architecture                                parameters  minimum
========================  ==========================================  ==========  =======
``xresnet1d101``          PTB-XL benchmark xresnet1d101               1,872,261   32
``xresnet1d50``           PTB-XL benchmark xresnet1d50                953,989     32
``xresnet1d18``           PTB-XL benchmark xresnet1d18 (fast)         364,933     32
``ribeiro_resnet``        Ribeiro et al. 2020 DNN (4096 @ 400 Hz)     6,416,789   256
``inception1d``           PTB-XL benchmark inception1d                507,653     39
========================  ==========================================  ==========  =======

Parameters are trainable parameters with 12 leads and 5 labels; minimum is the shortest
input in samples (see :data:`~mayo_dx.ecg.network_specs.NETWORK_SPECS`). Every factory
takes ``(num_labels, num_leads=12, **options)`` and returns an
:class:`~mayo_dx.ecg.nets_common.EcgNetwork` mapping float32 ``[batch, leads, samples]`` to
logits ``[batch, num_labels]`` for any ``samples >= minimum``.

Example:
    >>> import torch
    >>> network = build_network("xresnet1d18", num_labels=5).eval()
    >>> network(torch.zeros(2, 12, 250)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from mayo_dx.ecg.network_specs import NETWORK_SPECS, NetworkSpec
from mayo_dx.ecg.nets_common import EcgNetwork
from mayo_dx.ecg.nets_inception import Inception1d
from mayo_dx.ecg.nets_ribeiro import RibeiroResNet
from mayo_dx.ecg.nets_xresnet import XResNet1d
from mayo_dx.errors import ModelNotFound
from mayo_dx.registry import get_model, register_model

__all__ = [
    "NETWORK_SPECS",
    "EcgNetwork",
    "Inception1d",
    "NetworkSpec",
    "RibeiroResNet",
    "XResNet1d",
    "build_network",
    "count_parameters",
    "inception1d",
    "ribeiro_resnet",
    "xresnet1d101",
    "xresnet1d18",
    "xresnet1d50",
]

_TASK = "ecg"


@register_model("xresnet1d101", task=_TASK, description=NETWORK_SPECS["xresnet1d101"].description)
def xresnet1d101(
    num_labels: int,
    num_leads: int = 12,
    *,
    kernel_size: int = 5,
    head_hidden_features: Sequence[int] = (128,),
    head_dropout: float = 0.5,
) -> XResNet1d:
    """The PTB-XL benchmark's xresnet1d101 (bottleneck blocks ``[3, 4, 23, 3]``).

    Example:
        >>> xresnet1d101(num_labels=5).minimum_length
        32
    """
    return XResNet1d(
        num_labels,
        num_leads,
        expansion=4,
        layers=(3, 4, 23, 3),
        kernel_size=kernel_size,
        head_hidden_features=head_hidden_features,
        head_dropout=head_dropout,
    )


@register_model("xresnet1d50", task=_TASK, description=NETWORK_SPECS["xresnet1d50"].description)
def xresnet1d50(
    num_labels: int,
    num_leads: int = 12,
    *,
    kernel_size: int = 5,
    head_hidden_features: Sequence[int] = (128,),
    head_dropout: float = 0.5,
) -> XResNet1d:
    """The PTB-XL benchmark's xresnet1d50 (bottleneck blocks ``[3, 4, 6, 3]``).

    Example:
        >>> count_parameters(xresnet1d50(num_labels=5))
        953989
    """
    return XResNet1d(
        num_labels,
        num_leads,
        expansion=4,
        layers=(3, 4, 6, 3),
        kernel_size=kernel_size,
        head_hidden_features=head_hidden_features,
        head_dropout=head_dropout,
    )


@register_model("xresnet1d18", task=_TASK, description=NETWORK_SPECS["xresnet1d18"].description)
def xresnet1d18(
    num_labels: int,
    num_leads: int = 12,
    *,
    kernel_size: int = 5,
    head_hidden_features: Sequence[int] = (128,),
    head_dropout: float = 0.5,
) -> XResNet1d:
    """The PTB-XL benchmark's xresnet1d18 (basic blocks ``[2, 2, 2, 2]``, expansion 1).

    Example:
        >>> count_parameters(xresnet1d18(num_labels=5))
        364933
    """
    return XResNet1d(
        num_labels,
        num_leads,
        expansion=1,
        layers=(2, 2, 2, 2),
        kernel_size=kernel_size,
        head_hidden_features=head_hidden_features,
        head_dropout=head_dropout,
    )


@register_model("ribeiro_resnet", task=_TASK, description=NETWORK_SPECS["ribeiro_resnet"].description)
def ribeiro_resnet(
    num_labels: int,
    num_leads: int = 12,
    *,
    filters: Sequence[int] = (64, 128, 196, 256, 320),
    kernel_size: int = 16,
    dropout: float = 0.8,
) -> RibeiroResNet:
    """The Ribeiro et al. (2020) residual network (logits; designed for 4096 samples at 400 Hz).

    Example:
        >>> ribeiro_resnet(num_labels=6).minimum_length
        256
    """
    return RibeiroResNet(num_labels, num_leads, filters=filters, kernel_size=kernel_size, dropout=dropout)


@register_model("inception1d", task=_TASK, description=NETWORK_SPECS["inception1d"].description)
def inception1d(
    num_labels: int,
    num_leads: int = 12,
    *,
    kernel_sizes: Sequence[int] = (39, 19, 9),
    depth: int = 6,
    bottleneck_channels: int = 32,
    filters: int = 32,
    use_residual: bool = True,
    head_hidden_features: Sequence[int] = (128,),
    head_dropout: float = 0.5,
) -> Inception1d:
    """The PTB-XL benchmark's inception1d (kernels 39/19/9, depth 6).

    Example:
        >>> count_parameters(inception1d(num_labels=5))
        507653
    """
    return Inception1d(
        num_labels,
        num_leads,
        kernel_sizes=kernel_sizes,
        depth=depth,
        bottleneck_channels=bottleneck_channels,
        filters=filters,
        use_residual=use_residual,
        head_hidden_features=head_hidden_features,
        head_dropout=head_dropout,
    )


def build_network(name: str, num_labels: int, num_leads: int = 12, **options: Any) -> EcgNetwork:
    """Build the registered ECG network ``name``.

    Args:
        name: Registry name, e.g. ``"xresnet1d101"``.
        num_labels: Output logits (``len(card.labels)``).
        num_leads: Input channels.
        **options: Keyword options of that network's factory.

    Raises:
        ModelNotFound: If ``name`` is not a registered ECG network.

    Example:
        >>> build_network("inception1d", num_labels=3).num_labels
        3
    """
    entry = get_model(name)
    if entry.task != _TASK:
        raise ModelNotFound(f"model {name!r} serves task {entry.task!r}, not {_TASK!r}")
    return entry.factory(num_labels, num_leads, **options)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)
