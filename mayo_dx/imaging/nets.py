"""CT networks (training layer): the pancreas localiser and the multi-task analyser.

Both are MONAI's ``BasicUNet`` (a four-level 3-D U-Net: two 3x3x3 convolutions with instance
norm and leaky ReLU per level, max-pool down, transposed-convolution up). Why BasicUNet and not
DynUNet or SegResNet:

* its encoder stages are named attributes (``conv_0``, ``down_1`` ... ``down_4``), so the
  analyser taps the bottleneck for a classification head with a plain subclass, no hooks;
* every operator (Conv3d, InstanceNorm, LeakyReLU, MaxPool, ConvTranspose3d, pooling, Linear)
  exports to ONNX opset 17 and runs in onnxruntime on CPU;
* the width is one tuple (``features``), so CPU-sized models (8-16 base filters) are a config
  line; DynUNet's strength, per-axis kernels and strides for strongly anisotropic data, is not
  needed because both stages resample to near-isotropic spacing first
  (:class:`~mayo_dx.imaging.resample.CtPreprocessing`).

* :class:`CtLocaliserNet` (registry name ``ct_pancreas_localiser``): whole volume at coarse
  spacing (about 4 mm) -> logits ``[batch, 2, z, y, x]`` (background, gland = pancreas with
  lesion).
* :class:`CtAnalyserNet` (``ct_pancreas_analyser``): crop around the gland at fine spacing ->
  ``(segmentation logits [batch, 3, z, y, x], case logit [batch, 1])`` (background, pancreas,
  lesion; cancer). The case head is a linear layer on pooled features: the bottleneck's global
  mean and max, the last decoder level's global max (full resolution, so a lesion of a few
  voxels still registers) and the lesion evidence, the largest margin of the lesion logit over
  the other classes (detached: the case loss does not train the segmentation through it). Max
  pooling lets a small lesion anywhere in the crop drive the logit.

Spatial sizes should be multiples of 16 (four 2x poolings).

Example:
    >>> import torch
    >>> net = CtAnalyserNet(features=(4, 4, 8, 8, 16, 4))
    >>> segmentation, case = net(torch.zeros(1, 1, 32, 32, 32))
    >>> tuple(segmentation.shape), tuple(case.shape)
    ((1, 3, 32, 32, 32), (1, 1))
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from monai.networks.nets import BasicUNet
from torch import nn

from mayo_dx.registry import register_model

__all__ = ["CtAnalyserNet", "CtLocaliserNet", "build_ct_analyser", "build_ct_localiser", "network_config"]

LOCALISER_NAME = "ct_pancreas_localiser"
ANALYSER_NAME = "ct_pancreas_analyser"


class CtLocaliserNet(BasicUNet):
    """Small 3-D U-Net that finds the pancreas on the whole volume at coarse spacing.

    Args:
        in_channels: Input channels (1: windowed CT).
        out_channels: Classes (2: background, gland).
        features: Six widths (five encoder levels and the last decoder level), as BasicUNet.
        dropout: Dropout probability in the convolution blocks.

    Example:
        >>> import torch
        >>> CtLocaliserNet(features=(4, 4, 8, 8, 16, 4))(torch.zeros(1, 1, 32, 32, 32)).shape
        torch.Size([1, 2, 32, 32, 32])
    """

    registry_name = LOCALISER_NAME

    def __init__(self, in_channels: int = 1, out_channels: int = 2, features: Sequence[int] = (8, 8, 16, 32, 64, 8),
                 dropout: float = 0.0) -> None:
        super().__init__(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                         features=tuple(int(value) for value in features), dropout=dropout)
        self.config = {"in_channels": in_channels, "out_channels": out_channels,
                       "features": [int(value) for value in features], "dropout": float(dropout)}


class CtAnalyserNet(BasicUNet):
    """3-D U-Net segmenting pancreas and lesion, with a case-level cancer head on the bottleneck.

    Args:
        in_channels: Input channels (1: windowed CT).
        out_channels: Segmentation classes (3: background, pancreas, lesion).
        features: Six widths, as BasicUNet.
        dropout: Dropout in the convolution blocks.
        head_dropout: Dropout before the case head's linear layer.

    Example:
        >>> import torch
        >>> _, case = CtAnalyserNet(features=(4, 4, 8, 8, 16, 4))(torch.zeros(2, 1, 32, 32, 32))
        >>> tuple(case.shape)
        (2, 1)
    """

    registry_name = ANALYSER_NAME

    def __init__(self, in_channels: int = 1, out_channels: int = 3, features: Sequence[int] = (16, 16, 32, 64, 128, 16),
                 dropout: float = 0.0, head_dropout: float = 0.2) -> None:
        super().__init__(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                         features=tuple(int(value) for value in features), dropout=dropout)
        if out_channels < 3:
            raise ValueError("the analyser segments background, pancreas and lesion (out_channels >= 3; lesion last)")
        inputs = 2 * int(features[4]) + int(features[5]) + 1
        self.case_head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(inputs, 1))
        self.config = {"in_channels": in_channels, "out_channels": out_channels,
                       "features": [int(value) for value in features], "dropout": float(dropout),
                       "head_dropout": float(head_dropout)}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """Return ``(segmentation logits [b, classes, *spatial], case logit [b, 1])``."""
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u4 = self.upcat_4(x4, x3)
        u3 = self.upcat_3(u4, x2)
        u2 = self.upcat_2(u3, x1)
        u1 = self.upcat_1(u2, x0)
        segmentation = self.final_conv(u1)
        # Lesion evidence: the largest margin of the lesion logit over the other classes' log-sum-exp,
        # detached so that the case loss reads the segmentation without bending it.
        logits = segmentation.detach()
        margin = logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)
        pooled = torch.cat([x4.mean(dim=(2, 3, 4)), x4.amax(dim=(2, 3, 4)), u1.amax(dim=(2, 3, 4)),
                            margin.amax(dim=(1, 2, 3))[:, None]], dim=1)
        return segmentation, self.case_head(pooled)


@register_model(LOCALISER_NAME, task="ct", description="3-D BasicUNet finding the pancreas at ~4 mm (stage 1)")
def build_ct_localiser(in_channels: int = 1, out_channels: int = 2, features: Sequence[int] = (8, 8, 16, 32, 64, 8),
                       dropout: float = 0.0) -> CtLocaliserNet:
    """Build the stage-1 localiser.

    Example:
        >>> build_ct_localiser(features=(4, 4, 8, 8, 16, 4)).config["out_channels"]
        2
    """
    return CtLocaliserNet(in_channels, out_channels, features, dropout)


@register_model(ANALYSER_NAME, task="ct",
                description="3-D BasicUNet segmenting pancreas and lesion with a case-level cancer head (stage 2)")
def build_ct_analyser(in_channels: int = 1, out_channels: int = 3, features: Sequence[int] = (16, 16, 32, 64, 128, 16),
                      dropout: float = 0.0, head_dropout: float = 0.2) -> CtAnalyserNet:
    """Build the stage-2 analyser.

    Example:
        >>> build_ct_analyser(features=(4, 4, 8, 8, 16, 4)).config["out_channels"]
        3
    """
    return CtAnalyserNet(in_channels, out_channels, features, dropout, head_dropout)


def network_config(net: nn.Module) -> dict[str, Any]:
    """Registry name and constructor arguments of a CT network (stored in checkpoints).

    Raises:
        TypeError: If the network is not one of this module's classes.

    Example:
        >>> network_config(build_ct_localiser(features=(4, 4, 8, 8, 16, 4)))["name"]
        'ct_pancreas_localiser'
    """
    if not isinstance(net, (CtLocaliserNet, CtAnalyserNet)):
        raise TypeError(f"not a registered CT network: {type(net).__name__}")
    return {"name": net.registry_name, "kwargs": dict(net.config)}
