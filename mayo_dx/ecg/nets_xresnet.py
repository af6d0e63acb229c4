"""xresnet1d: the PTB-XL benchmark's 1-D "bag of tricks" ResNet (training layer).

Follows ``code/models/xresnet1d.py`` of helme/ecg_ptbxl_benchmarking (Strodthoff et al.,
IEEE JBHI 2021), itself fastai's xresnet in one dimension, with the arguments the benchmark
trains it with (``fastai_model``: kernel size 5, head ``lin_ftrs=[128]``, ``ps_head=0.5``):

* stem: three ``Conv(k=5) -> BatchNorm -> ReLU`` layers of 32, 32 and 64 channels (the first
  with stride 2), then ``MaxPool1d(3, stride 2, padding 1)``;
* four stages of residual blocks (``layers``), stride 1 then 2, 2, 2. Unlike the 2-D xresnet,
  every stage is 64 channels wide (times ``expansion``), as in the benchmark's code. A
  bottleneck block (expansion 4) is ``1x1 -> k x k (stride) -> 1x1``; a basic block
  (expansion 1) is two ``k``-convolutions. The shortcut average-pools (stride 2, ceil mode)
  and projects with a ``1x1`` convolution + BatchNorm where the width changes;
* the concat-pooling head of :func:`~mayo_dx.ecg.nets_common.concat_pool_head`.

The total stride is 32, so an input of 32 samples leaves one sample per channel at the last
stage: that is the documented minimum length.

Example:
    >>> import torch
    >>> network = XResNet1d(num_labels=5, expansion=1, layers=(1, 1, 1, 1)).eval()
    >>> network(torch.zeros(2, 12, 250)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mayo_dx.ecg.nets_common import EcgNetwork, concat_pool_head, conv_norm, initialise_benchmark_weights
from mayo_dx.errors import InputError

__all__ = ["XRESNET_MINIMUM_LENGTH", "XResNet1d", "XResNetBlock"]

XRESNET_MINIMUM_LENGTH = 32
"""Total stride of the xresnet1d family: the shortest accepted input (samples)."""

_STAGE_WIDTH = 64
_STEM_WIDTHS = (32, 32, 64)


class XResNetBlock(nn.Module):
    """One residual block: ``relu(convolutions(x) + shortcut(x))``.

    Args:
        expansion: 1 (basic block of two ``kernel_size`` convolutions) or 4 (bottleneck).
        in_width: Input width before expansion (the input has ``in_width * expansion``
            channels).
        width: Inner width; the output has ``width * expansion`` channels.
        stride: Stride of the spatial convolution (and of the shortcut's average pooling).
        kernel_size: Kernel of the spatial convolution(s).

    Example:
        >>> XResNetBlock(4, 16, 64, stride=2, kernel_size=5)(torch.zeros(1, 64, 31)).shape
        torch.Size([1, 256, 16])
    """

    def __init__(self, expansion: int, in_width: int, width: int, stride: int = 1, kernel_size: int = 5) -> None:
        super().__init__()
        in_channels, out_channels = in_width * expansion, width * expansion
        if expansion == 1:
            convolutions = [
                conv_norm(in_channels, width, kernel_size, stride=stride),
                conv_norm(width, out_channels, kernel_size, activation=False),
            ]
        else:
            convolutions = [
                conv_norm(in_channels, width, 1),
                conv_norm(width, width, kernel_size, stride=stride),
                conv_norm(width, out_channels, 1, activation=False),
            ]
        self.convolutions = nn.Sequential(*convolutions)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(2, ceil_mode=True))
        if in_channels != out_channels:
            shortcut.append(conv_norm(in_channels, out_channels, 1, activation=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[batch, channels, length]``."""
        return self.activation(self.convolutions(features) + self.shortcut(features))


class XResNet1d(EcgNetwork):
    """The benchmark's xresnet1d for ``[batch, leads, samples]`` -> logits ``[batch, labels]``.

    Args:
        num_labels: Number of output logits.
        num_leads: Input channels (12 for a standard ECG).
        expansion: 4 for xresnet1d50/101 (bottleneck blocks), 1 for xresnet1d18/34.
        layers: Blocks per stage, e.g. ``(3, 4, 23, 3)`` for xresnet1d101.
        kernel_size: Kernel of the stem and of the blocks' spatial convolutions (5).
        head_hidden_features: Hidden widths of the head (the benchmark's ``lin_ftrs_head``).
        head_dropout: The benchmark's ``ps_head``.

    Example:
        >>> XResNet1d(num_labels=3, expansion=1, layers=(1, 1)).minimum_length
        32
    """

    def __init__(
        self,
        num_labels: int,
        num_leads: int = 12,
        *,
        expansion: int = 4,
        layers: Sequence[int] = (3, 4, 23, 3),
        kernel_size: int = 5,
        head_hidden_features: Sequence[int] = (128,),
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__(num_labels, num_leads, XRESNET_MINIMUM_LENGTH)
        if expansion not in (1, 4):
            raise InputError(f"expansion must be 1 or 4, got {expansion}")
        if not layers or any(int(count) < 1 for count in layers):
            raise InputError(f"layers must be positive block counts, got {layers}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InputError(f"kernel_size must be odd and positive, got {kernel_size}")
        stem_widths = (num_leads, *_STEM_WIDTHS)
        self.stem = nn.Sequential(
            *[
                conv_norm(stem_widths[index], stem_widths[index + 1], kernel_size, stride=2 if index == 0 else 1)
                for index in range(len(_STEM_WIDTHS))
            ],
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        stage_widths = [_STAGE_WIDTH // expansion] + [_STAGE_WIDTH] * len(layers)
        stages = []
        for index, count in enumerate(layers):
            blocks = [
                XResNetBlock(
                    expansion,
                    stage_widths[index] if block == 0 else stage_widths[index + 1],
                    stage_widths[index + 1],
                    stride=(1 if index == 0 else 2) if block == 0 else 1,
                    kernel_size=kernel_size,
                )
                for block in range(int(count))
            ]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = concat_pool_head(_STAGE_WIDTH * expansion, num_labels, tuple(head_hidden_features), head_dropout)
        self.apply(initialise_benchmark_weights)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, num_labels]`` of ``signal`` ``[batch, num_leads, samples]``."""
        self.check_input(signal)
        return self.head(self.stages(self.stem(signal)))
