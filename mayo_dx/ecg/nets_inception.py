"""inception1d: the PTB-XL benchmark's InceptionTime-style network (training layer).

Follows ``code/models/inception1d.py`` of helme/ecg_ptbxl_benchmarking with the arguments
the benchmark trains it with (kernel size 40, i.e. branch kernels 39, 19 and 9; depth 6;
bottleneck 32; 32 filters per branch; residual shortcuts every third block; the concat-pool
head with ``lin_ftrs=[128]``, ``ps_head=0.5``).

An inception block: a ``1x1`` bottleneck feeds three convolutions (kernels 39, 19, 9); a
fourth branch max-pools (3, stride 1) the block input and projects it with a ``1x1``; the four
branches (4 x 32 = 128 channels) are concatenated, batch-normalised and ReLU-activated. Every
third block adds a shortcut ``BatchNorm(Conv1x1(block-group input))`` before a ReLU. The
network never downsamples; its documented minimum length is the longest kernel, 39 samples.

Example:
    >>> import torch
    >>> Inception1d(num_labels=5).eval()(torch.zeros(2, 12, 250)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mayo_dx.ecg.nets_common import EcgNetwork, concat_pool_head, initialise_benchmark_weights
from mayo_dx.errors import InputError

__all__ = ["INCEPTION_MINIMUM_LENGTH", "Inception1d", "InceptionBlock1d"]

INCEPTION_MINIMUM_LENGTH = 39
"""Longest branch kernel of inception1d: the shortest accepted input (samples)."""


def _convolution(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv1d:
    return nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=False)


class InceptionBlock1d(nn.Module):
    """Bottleneck, three kernel branches and a max-pool branch, concatenated, BN, ReLU.

    Example:
        >>> InceptionBlock1d(12, 32, (39, 19, 9)).eval()(torch.zeros(1, 12, 100)).shape
        torch.Size([1, 128, 100])
    """

    def __init__(
        self, in_channels: int, filters: int, kernel_sizes: Sequence[int], bottleneck_channels: int = 32
    ) -> None:
        super().__init__()
        branch_input = bottleneck_channels if bottleneck_channels > 0 else in_channels
        self.bottleneck = (
            _convolution(in_channels, bottleneck_channels, 1) if bottleneck_channels > 0 else nn.Identity()
        )
        self.branches = nn.ModuleList(_convolution(branch_input, filters, size) for size in kernel_sizes)
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1), _convolution(in_channels, filters, 1))
        self.norm_activation = nn.Sequential(nn.BatchNorm1d((len(kernel_sizes) + 1) * filters), nn.ReLU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[batch, channels, length]`` (length is kept)."""
        bottled = self.bottleneck(features)
        outputs = [branch(bottled) for branch in self.branches] + [self.pool_branch(features)]
        return self.norm_activation(torch.cat(outputs, dim=1))


class _Shortcut(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.projection = nn.Sequential(_convolution(in_channels, out_channels, 1), nn.BatchNorm1d(out_channels))
        self.activation = nn.ReLU()

    def forward(self, block_input: torch.Tensor, block_output: torch.Tensor) -> torch.Tensor:
        return self.activation(block_output + self.projection(block_input))


class Inception1d(EcgNetwork):
    """The benchmark's inception1d: ``[batch, leads, samples]`` -> logits ``[batch, labels]``.

    Args:
        num_labels: Number of output logits.
        num_leads: Input channels (12).
        kernel_sizes: Branch kernels (the benchmark derives 39, 19, 9 from kernel size 40).
        depth: Inception blocks; a multiple of 3 (a shortcut closes every third block).
        bottleneck_channels: Width of the ``1x1`` bottleneck (32; 0 disables it).
        filters: Channels per branch (32).
        use_residual: Add the shortcuts.
        head_hidden_features: Hidden widths of the head (``lin_ftrs_head``).
        head_dropout: The benchmark's ``ps_head``.

    Example:
        >>> Inception1d(num_labels=2, depth=3).minimum_length
        39
    """

    def __init__(
        self,
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
    ) -> None:
        if depth < 3 or depth % 3 != 0:
            raise InputError(f"depth must be a positive multiple of 3, got {depth}")
        sizes = tuple(int(size) for size in kernel_sizes)
        if not sizes or any(size < 1 or size % 2 == 0 for size in sizes):
            raise InputError(f"kernel_sizes must be odd and positive, got {kernel_sizes}")
        super().__init__(num_labels, num_leads, max(sizes))
        width = (len(sizes) + 1) * filters
        self.use_residual = use_residual
        self.blocks = nn.ModuleList(
            InceptionBlock1d(num_leads if index == 0 else width, filters, sizes, bottleneck_channels)
            for index in range(depth)
        )
        self.shortcuts = nn.ModuleList(
            _Shortcut(num_leads if index == 0 else width, width) for index in range(depth // 3)
        )
        self.head = concat_pool_head(width, num_labels, tuple(head_hidden_features), head_dropout)
        self.apply(initialise_benchmark_weights)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, num_labels]`` of ``signal`` ``[batch, num_leads, samples]``."""
        self.check_input(signal)
        features = signal
        group_input = signal
        for index, block in enumerate(self.blocks):
            features = block(features)
            if self.use_residual and index % 3 == 2:
                features = self.shortcuts[index // 3](group_input, features)
                group_input = features
        return self.head(features)
