"""Building blocks shared by the 1-D ECG networks (training layer: imports torch).

* :class:`EcgNetwork`: base class that checks the input (``float32 [batch, leads, samples]``,
  at least ``minimum_length`` samples) with a clear :class:`~mayo_dx.errors.InputError`; the
  check is skipped while torch traces or compiles the module (ONNX export), so the exported
  graph keeps a dynamic length.
* :class:`AdaptiveConcatPool1d` and :func:`concat_pool_head`: the PTB-XL benchmark's head
  (fastai ``create_head1d``): adaptive max and average pooling concatenated, then
  ``BatchNorm -> Dropout -> Linear`` blocks with ReLU between them.
* :func:`initialise_benchmark_weights`: the initialisation the benchmark applies before
  training (Kaiming-normal convolution and linear weights, zero biases, BatchNorm weight 1 and
  bias 0).

Example:
    >>> import torch
    >>> head = concat_pool_head(64, 5)
    >>> head.eval()(torch.zeros(2, 64, 9)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mayo_dx.errors import InputError

__all__ = [
    "AdaptiveConcatPool1d",
    "EcgNetwork",
    "concat_pool_head",
    "conv_norm",
    "initialise_benchmark_weights",
]


def _exporting() -> bool:
    """True while torch traces, scripts, exports or compiles (shape checks must not run)."""
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling())


class EcgNetwork(nn.Module):
    """Base class of the ECG networks: holds the input contract and checks it.

    Attributes:
        num_labels: Size of the output (logits per label).
        num_leads: Number of input channels.
        minimum_length: Shortest input (samples) the network accepts.

    Example:
        >>> network = EcgNetwork(num_labels=2, num_leads=12, minimum_length=8)
        >>> network.check_input(torch.zeros(1, 3, 8))
        Traceback (most recent call last):
        ...
        mayo_dx.errors.InputError: expected 12 leads, got input of shape [1, 3, 8]
    """

    def __init__(self, num_labels: int, num_leads: int, minimum_length: int) -> None:
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 1:
            raise InputError(f"num_labels must be a positive integer, got {num_labels!r}")
        if not isinstance(num_leads, int) or num_leads < 1:
            raise InputError(f"num_leads must be a positive integer, got {num_leads!r}")
        self.num_labels = num_labels
        self.num_leads = num_leads
        self.minimum_length = minimum_length

    def check_input(self, signal: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``signal`` is ``[batch, num_leads, >= minimum_length]``."""
        if _exporting():
            return
        shape = list(signal.shape)
        if signal.dim() != 3:
            raise InputError(f"expected a [batch, leads, samples] tensor, got shape {shape}")
        if shape[1] != self.num_leads:
            raise InputError(f"expected {self.num_leads} leads, got input of shape {shape}")
        if shape[2] < self.minimum_length:
            name = type(self).__name__
            raise InputError(f"input has {shape[2]} samples; {name} needs at least {self.minimum_length}")
        if not signal.is_floating_point():
            raise InputError(f"expected a floating-point signal, got {signal.dtype}")


def conv_norm(
    in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, activation: bool = True
) -> nn.Sequential:
    """``Conv1d`` (no bias, centred padding) -> ``BatchNorm1d`` -> optional ReLU.

    This is fastai's ``ConvLayer`` with batch norm first, as the benchmark's xresnet uses it.

    Example:
        >>> conv_norm(12, 32, 5, stride=2)(torch.zeros(1, 12, 250)).shape
        torch.Size([1, 32, 125])
    """
    layers: list[nn.Module] = [
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=False),
        nn.BatchNorm1d(out_channels),
    ]
    if activation:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class AdaptiveConcatPool1d(nn.Module):
    """Concatenate adaptive max pooling and adaptive average pooling (``[max, avg]``).

    Example:
        >>> AdaptiveConcatPool1d()(torch.arange(4.0).view(1, 1, 4)).flatten().tolist()
        [3.0, 1.5]
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_pool = nn.AdaptiveMaxPool1d(1)
        self.average_pool = nn.AdaptiveAvgPool1d(1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Pool ``[batch, channels, length]`` to ``[batch, 2 * channels, 1]``."""
        return torch.cat([self.max_pool(features), self.average_pool(features)], dim=1)


def concat_pool_head(
    in_features: int, num_labels: int, hidden_features: Sequence[int] = (128,), dropout: float = 0.5
) -> nn.Sequential:
    """The benchmark's classification head over ``[batch, in_features, length]`` features.

    ``AdaptiveConcatPool1d -> Flatten -> [BatchNorm1d -> Dropout -> Linear -> ReLU]* ->
    BatchNorm1d -> Dropout -> Linear``. As in fastai's ``create_head1d`` with one dropout
    value ``p``, the hidden blocks drop ``p / 2`` and the last block drops ``p``.

    Args:
        in_features: Channels of the last feature map (pooled to ``2 * in_features``).
        num_labels: Output logits.
        hidden_features: Widths of the hidden linear layers (the benchmark's ``[128]``).
        dropout: The benchmark's ``ps_head`` (0.5).

    Example:
        >>> [type(m).__name__ for m in concat_pool_head(8, 2, hidden_features=())]
        ['AdaptiveConcatPool1d', 'Flatten', 'BatchNorm1d', 'Dropout', 'Linear']
    """
    widths = [2 * in_features, *hidden_features, num_labels]
    layers: list[nn.Module] = [AdaptiveConcatPool1d(), nn.Flatten()]
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        last = index == len(widths) - 2
        layers.append(nn.BatchNorm1d(width_in))
        probability = dropout if last else dropout / 2
        if probability > 0:
            layers.append(nn.Dropout(probability))
        layers.append(nn.Linear(width_in, width_out))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def initialise_benchmark_weights(module: nn.Module) -> None:
    """Kaiming-normal conv/linear weights, zero biases, BatchNorm weight 1 and bias 0 (in place).

    Use with ``network.apply(initialise_benchmark_weights)``.

    Example:
        >>> layer = nn.Linear(4, 2)
        >>> initialise_benchmark_weights(layer)
        >>> layer.bias.abs().sum().item()
        0.0
    """
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
