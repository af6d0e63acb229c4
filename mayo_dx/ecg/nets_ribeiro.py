"""Ribeiro et al. 2020 residual network for 12-lead ECG (training layer).

After "Automatic diagnosis of the 12-lead ECG using a deep neural network" (Ribeiro et al.,
Nature Communications 11, 1760, 2020; Keras reference ``model.py`` in
antonior92/automatic-ecg-diagnosis). Designed for 4096 samples at 400 Hz (10.24 s):

* stem: ``Conv1d(64, kernel 16) -> BatchNorm -> ReLU``;
* four residual units of 128, 196, 256 and 320 filters, each downsampling by 4. A unit takes
  ``(x, y)`` and computes ``x = Conv(k16)(x) -> BN -> ReLU -> Dropout -> Conv(k16, stride 4)``;
  the skip is ``y -> MaxPool(4) -> Conv1x1`` (the 1x1 only where the width changes); then
  ``y = x + skip`` and ``x = Dropout(ReLU(BN(y)))`` (pre-activation form);
* ``Flatten -> Dense``. The paper ends in a sigmoid; this module returns the logits.

Faithful details: convolutions have no bias; 'same' padding (left 7, right 8 for the kernel
16 stride-1 convolutions, 6 and 6 for the stride-4 ones, which is TensorFlow's 'same' for
lengths divisible by 4); Keras' BatchNormalization defaults (epsilon 1e-3, momentum 0.99,
i.e. torch momentum 0.01); dropout rate 0.8 as in the reference code; He-normal weights.

Departure, so that any length of at least 256 samples works: adaptive average pooling to 16
samples (:func:`adaptive_average_pool`, ONNX-exportable with a dynamic length) precedes the
flatten. With 4096 samples the last unit already yields 16 samples, so the
pooling is the identity there and the network equals the reference. The total stride is 256:
shorter inputs leave no sample for the last unit, hence the minimum length of 256.

Example:
    >>> import torch
    >>> network = RibeiroResNet(num_labels=6).eval()
    >>> network(torch.zeros(1, 12, 4096)).shape
    torch.Size([1, 6])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mayo_dx.ecg.nets_common import EcgNetwork
from mayo_dx.errors import InputError

__all__ = ["RIBEIRO_MINIMUM_LENGTH", "RibeiroResNet", "RibeiroResidualUnit", "adaptive_average_pool"]

RIBEIRO_MINIMUM_LENGTH = 256
"""Total stride (4 ** 4) of the network: the shortest accepted input (samples)."""

_KERAS_EPSILON = 1e-3
_KERAS_MOMENTUM = 0.01  # Keras momentum 0.99 is torch momentum 0.01.
_OUTPUT_SAMPLES = 16  # what 4096 samples become after four downsamplings by 4


def _batch_norm(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=_KERAS_EPSILON, momentum=_KERAS_MOMENTUM)


def _same_padding(kernel_size: int) -> nn.ConstantPad1d:
    """TensorFlow's 'same' zero padding of a stride-1 convolution (the extra sample on the right)."""
    return nn.ConstantPad1d(((kernel_size - 1) // 2, kernel_size // 2), 0.0)


def adaptive_average_pool(features: torch.Tensor, bins: int) -> torch.Tensor:
    """``nn.AdaptiveAvgPool1d(bins)`` written as a matrix product, so it exports to ONNX.

    The legacy ONNX exporter refuses adaptive pooling to more than one bin when the length is
    dynamic; a ``[length, bins]`` averaging matrix built from ``arange`` exports as plain
    Range/Less/MatMul operators. Bin ``j`` averages samples ``floor(j L / bins)`` to
    ``ceil((j + 1) L / bins) - 1``, exactly as torch's adaptive pooling does.

    Example:
        >>> adaptive_average_pool(torch.arange(6.0).view(1, 1, 6), 4).flatten().tolist()
        [0.5, 1.5, 3.5, 4.5]
    """
    length = features.shape[-1]
    positions = torch.arange(length, device=features.device).unsqueeze(1)
    bin_index = torch.arange(bins, device=features.device).unsqueeze(0)
    starts = torch.div(bin_index * length, bins, rounding_mode="floor")
    ends = torch.div((bin_index + 1) * length + bins - 1, bins, rounding_mode="floor")
    members = ((positions >= starts) & (positions < ends)).to(features.dtype)
    return torch.matmul(features, members / members.sum(dim=0, keepdim=True))


class RibeiroResidualUnit(nn.Module):
    """One pre-activation residual unit of Ribeiro et al. (2020); maps ``(x, y)`` to ``(x, y)``.

    Example:
        >>> unit = RibeiroResidualUnit(64, 128).eval()
        >>> [t.shape[1:] for t in unit(torch.zeros(1, 64, 4096), torch.zeros(1, 64, 4096))]
        [torch.Size([128, 1024]), torch.Size([128, 1024])]
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int = 16, downsample: int = 4, dropout: float = 0.8
    ) -> None:
        super().__init__()
        skip: list[nn.Module] = [nn.MaxPool1d(downsample, stride=downsample)] if downsample > 1 else []
        if in_channels != out_channels:
            skip.append(nn.Conv1d(in_channels, out_channels, 1, bias=False))
        self.skip = nn.Sequential(*skip)
        self.first_convolution = nn.Sequential(
            _same_padding(kernel_size), nn.Conv1d(in_channels, out_channels, kernel_size, bias=False)
        )
        self.first_norm = _batch_norm(out_channels)
        self.second_convolution = nn.Conv1d(
            out_channels,
            out_channels,
            kernel_size,
            stride=downsample,
            padding=max(0, (kernel_size - downsample + 1) // 2),
            bias=False,
        )
        self.output_norm = _batch_norm(out_channels)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the activated output and the new residual stream."""
        skip = self.skip(residual)
        features = self.dropout(self.activation(self.first_norm(self.first_convolution(features))))
        residual = self.second_convolution(features) + skip
        return self.dropout(self.activation(self.output_norm(residual))), residual


class RibeiroResNet(EcgNetwork):
    """The Ribeiro et al. (2020) DNN: ``[batch, leads, samples]`` -> logits ``[batch, labels]``.

    Args:
        num_labels: Number of output logits (6 in the paper).
        num_leads: Input channels (12).
        filters: Widths of the stem and the four residual units.
        kernel_size: Convolution kernel (16).
        dropout: Dropout rate inside the units (0.8 in the reference code).

    Example:
        >>> RibeiroResNet(num_labels=2).minimum_length
        256
    """

    def __init__(
        self,
        num_labels: int,
        num_leads: int = 12,
        *,
        filters: Sequence[int] = (64, 128, 196, 256, 320),
        kernel_size: int = 16,
        dropout: float = 0.8,
    ) -> None:
        widths = [int(width) for width in filters]
        if len(widths) != 5 or min(widths) < 1:
            raise InputError(f"filters must be five positive widths (stem + four units), got {filters}")
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout must lie in [0, 1), got {dropout}")
        super().__init__(num_labels, num_leads, RIBEIRO_MINIMUM_LENGTH)
        self.stem = nn.Sequential(
            _same_padding(kernel_size),
            nn.Conv1d(num_leads, widths[0], kernel_size, bias=False),
            _batch_norm(widths[0]),
            nn.ReLU(),
        )
        self.units = nn.ModuleList(
            RibeiroResidualUnit(widths[index], widths[index + 1], kernel_size=kernel_size, dropout=dropout)
            for index in range(4)
        )
        self.classifier = nn.Linear(widths[-1] * _OUTPUT_SAMPLES, num_labels)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)  # Keras 'he_normal'
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, num_labels]`` of ``signal`` ``[batch, num_leads, samples]``."""
        self.check_input(signal)
        features = self.stem(signal)
        residual = features
        for unit in self.units:
            features, residual = unit(features, residual)
        return self.classifier(torch.flatten(adaptive_average_pool(features, _OUTPUT_SAMPLES), 1))
