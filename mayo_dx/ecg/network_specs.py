"""What each registered ECG network is, in plain data (no torch needed to read it).

:data:`NETWORK_SPECS` maps a registry name to a frozen :class:`NetworkSpec`: the documented
trainable-parameter count for 12 leads and 5 labels, the shortest input it accepts, and the
sampling rate and window it was designed for. The training layer (``mayo_dx.ecg.nets``)
registers the factories with these descriptions and tests the counts; the runtime layer and
the CLI can read this module without importing torch (e.g. to check that a card's
``window_samples`` is at least the network's minimum length).

Example:
    >>> NETWORK_SPECS["xresnet1d101"].parameters
    1872261
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["NETWORK_SPECS", "NetworkSpec"]


@dataclass(frozen=True)
class NetworkSpec:
    """Documented facts of one ECG network.

    Attributes:
        name: Registry name.
        description: One line for listings.
        parameters: Trainable parameters with 12 leads and 5 labels (``sum(p.numel())``).
        minimum_length: Shortest input in samples; shorter inputs raise ``InputError``.
        sampling_rate: Sampling rate (Hz) of the reference recipe.
        window_samples: Input window (samples) of the reference recipe.
        reference: Where the architecture comes from.

    Example:
        >>> NETWORK_SPECS["ribeiro_resnet"].window_samples
        4096
    """

    name: str
    description: str
    parameters: int
    minimum_length: int
    sampling_rate: float
    window_samples: int
    reference: str


_BENCHMARK = "Strodthoff et al. 2021, IEEE JBHI (helme/ecg_ptbxl_benchmarking)"

NETWORK_SPECS: Mapping[str, NetworkSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            NetworkSpec(
                name="xresnet1d101",
                description="PTB-XL benchmark xresnet1d101: bottleneck blocks [3, 4, 23, 3], kernel 5, concat pooling",
                parameters=1_872_261,
                minimum_length=32,
                sampling_rate=100.0,
                window_samples=250,
                reference=_BENCHMARK,
            ),
            NetworkSpec(
                name="xresnet1d50",
                description="PTB-XL benchmark xresnet1d50: bottleneck blocks [3, 4, 6, 3], kernel 5, concat pooling",
                parameters=953_989,
                minimum_length=32,
                sampling_rate=100.0,
                window_samples=250,
                reference=_BENCHMARK,
            ),
            NetworkSpec(
                name="xresnet1d18",
                description="PTB-XL benchmark xresnet1d18 (fast): basic blocks [2, 2, 2, 2], kernel 5, concat pooling",
                parameters=364_933,
                minimum_length=32,
                sampling_rate=100.0,
                window_samples=250,
                reference=_BENCHMARK,
            ),
            NetworkSpec(
                name="ribeiro_resnet",
                description="Ribeiro et al. 2020 DNN: 4096 samples at 400 Hz, filters 64/128/196/256/320, kernel 16",
                parameters=6_416_789,
                minimum_length=256,
                sampling_rate=400.0,
                window_samples=4096,
                reference="Ribeiro et al. 2020, Nat. Commun. 11:1760 (antonior92/automatic-ecg-diagnosis)",
            ),
            NetworkSpec(
                name="inception1d",
                description="PTB-XL benchmark inception1d: kernels 39/19/9, depth 6, bottleneck 32, 32 filters",
                parameters=507_653,
                minimum_length=39,
                sampling_rate=100.0,
                window_samples=250,
                reference=_BENCHMARK,
            ),
        )
    }
)
"""Registry name -> :class:`NetworkSpec` (read-only)."""
