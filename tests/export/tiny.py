"""Small ECG/CT networks and cards for the export and runtime tests (training layer: torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mayo_dx.card import Label, ModelCard
from mayo_dx.ecg.record import STANDARD_LEADS
from mayo_dx.ecg.signal import EcgPreprocessing

__all__ = ["TinyAnalyser", "TinyEcgNet", "TinyLocaliser", "ecg_card", "export_tiny_ecg"]

LABELS = ("NORM", "MI", "STTC", "CD", "HYP")


class TinyEcgNet(nn.Module):
    """Conv, batch norm, global average + max pooling, linear: the xresnet head in miniature."""

    def __init__(self, num_labels: int = len(LABELS), num_leads: int = 12, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv1d(num_leads, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 5, stride=2, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
        )
        self.average = nn.AdaptiveAvgPool1d(1)
        self.maximum = nn.AdaptiveMaxPool1d(1)
        self.head = nn.Linear(32, num_labels)
        with torch.no_grad():  # non-trivial running statistics, as after training
            for module in self.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.running_mean.uniform_(-0.1, 0.1)
                    module.running_var.uniform_(0.5, 1.5)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        features = self.features(signal)
        return self.head(torch.cat([self.average(features), self.maximum(features)], dim=1).flatten(1))


class TinyLocaliser(nn.Module):
    """A 3-D two-channel segmenter stand-in (CT localiser stage)."""

    def __init__(self, out_channels: int = 2) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, out_channels, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


class TinyAnalyser(nn.Module):
    """A 3-D classifier stand-in (CT analyser stage): two outputs, logits and a feature map."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(4, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(image))
        return self.head(self.pool(features).flatten(1)), features


def ecg_card(name: str = "tiny_ecg", aggregation: str = "max") -> ModelCard:
    """A complete ECG card per the contract (100 Hz, 2.5 s windows, 1.25 s stride)."""
    return ModelCard(
        name=name, version="0.0.1", task="ecg",
        labels=tuple(Label(label, code=label, system="SCP-ECG", description=f"{label} superclass") for label in LABELS),
        input_spec={"leads": list(STANDARD_LEADS), "sampling_rate": 100.0, "window_samples": 250,
                    "stride_samples": 125, "aggregation": aggregation, "multi_label": True, "min_duration_s": 5.0},
        preprocessing=EcgPreprocessing(target_fs=100.0, highpass_hz=0.5, normalisation="per_record").to_dict(),
        thresholds={label: 0.5 for label in LABELS},
        calibration={"method": "temperature", "temperature": [1.5, 1.0, 2.0, 0.8, 1.2]},
        metrics={"threshold_rule": "fixed 0.5 (test card)"},
        training_data="untrained test network", synthetic_training_data=True,
    )


def export_tiny_ecg(path: Path, *, net: nn.Module | None = None, card: ModelCard | None = None) -> Path:
    """Export the tiny net with windows and whole signals of generated records as parity inputs."""
    from mayo_dx.export import ecg_parity_inputs

    card = card or ecg_card()
    inputs = ecg_parity_inputs(card, [], generated=2, seed=0)
    inputs.append(np.random.default_rng(0).normal(size=(3, 12, 333)).astype(np.float32))
    from mayo_dx.export import export_model

    return export_model(net or TinyEcgNet(), card, path, parity_inputs=inputs)
