"""Heart rate from R peaks, detected on an energy envelope pooled over the usable leads.

Method (a multi-lead variant of Pan and Tompkins, 1985): each usable lead is band-passed to
the QRS band (5-15 Hz, zero-phase), differentiated and squared, scaled by its typical QRS
energy (the median over 1.5 s blocks of each block's maximum: one large lead or one giant
ectopic beat cannot dominate, and lead polarity does not matter), summed over leads and
smoothed with a 0.12 s moving average. ``scipy.signal.find_peaks`` then takes peaks at least
0.25 s apart (at most 240 beats per minute) above 30 % of the envelope's typical QRS peak
(same block median). The heart rate is 60 / median RR interval over intervals of 0.25 to 2.5 s.
Pooling the leads tolerates one noisy or inverted lead; the caller passes only leads without
quality problems. Needs a sampling rate of at least 40 Hz and at least three beats.

Example:
    >>> from mayo_dx.ecg.synthetic import generate_labelled_ecg
    >>> ecg = generate_labelled_ecg(("NORM",), seed=2)
    >>> abs(estimate_heart_rate(ecg.record).bpm - ecg.heart_rate_bpm) < 3
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import signal as scipy_signal
from scipy.ndimage import uniform_filter1d

from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord

__all__ = ["HeartRate", "estimate_heart_rate"]

_QRS_BAND_HZ = (5.0, 15.0)
_MIN_RR_S = 0.25
_MAX_RR_S = 2.5
_BLOCK_S = 1.5  # every 1.5 s block holds a beat at 40 bpm or more


def _typical_peak(values: np.ndarray, block: int) -> np.ndarray:
    """Per row: median over 1.5 s blocks of the block maximum (a typical QRS, robust to outliers)."""
    length = values.shape[-1]
    count = max(1, length // block)
    trimmed = values[:, : count * block] if length >= block else values
    return np.median(trimmed.reshape(values.shape[0], count, -1).max(axis=-1), axis=-1)


@dataclass(frozen=True)
class HeartRate:
    """A heart-rate estimate.

    Attributes:
        bpm: Beats per minute (60 / median RR).
        rr_interval_ms: Median RR interval.
        beats: R peaks detected.
        leads: Leads the envelope pooled.

    Example:
        >>> HeartRate(bpm=60.0, rr_interval_ms=1000.0, beats=10, leads=("II",)).bpm
        60.0
    """

    bpm: float
    rr_interval_ms: float
    beats: int
    leads: tuple[str, ...]


def estimate_heart_rate(record: EcgRecord, *, leads: Sequence[str] | None = None) -> HeartRate | None:
    """Estimate the heart rate of a record (see the module docstring for the method).

    Args:
        record: The record (any sampling rate of 40 Hz or more).
        leads: Leads to pool; default every recorded lead with finite samples.

    Returns:
        The estimate, or ``None`` when fewer than three beats (two intervals) are found or
        the sampling rate is below 40 Hz.

    Example:
        >>> import numpy as np
        >>> estimate_heart_rate(EcgRecord(signal=np.zeros((12, 1000)), fs=100)) is None
        True
    """
    if record.fs < 40.0:
        return None
    chosen = [name for name in (leads if leads is not None else STANDARD_LEADS) if name not in record.missing_leads]
    rows = [STANDARD_LEADS.index(name) for name in chosen]
    values = np.asarray(record.signal, dtype=np.float64)[rows] if rows else np.zeros((0, record.n_samples))
    finite = np.all(np.isfinite(values), axis=-1)
    values = values[finite]
    used = tuple(name for name, keep in zip(chosen, finite) if keep)
    minimum_length = int(2 * _MIN_RR_S * record.fs) + 1
    if not used or record.n_samples < max(minimum_length, 30):
        return None
    high = min(_QRS_BAND_HZ[1], 0.45 * record.fs)
    sos = scipy_signal.butter(2, [_QRS_BAND_HZ[0], high], btype="bandpass", fs=record.fs, output="sos")
    filtered = scipy_signal.sosfiltfilt(sos, values, axis=-1)
    energy = np.gradient(filtered, axis=-1) ** 2
    block = int(round(_BLOCK_S * record.fs))
    scale = _typical_peak(energy, block)
    live = scale > 1e-12
    if not np.any(live):
        return None
    pooled = (energy[live] / scale[live, None]).sum(axis=0)
    envelope = uniform_filter1d(pooled, size=max(1, int(round(0.12 * record.fs))))
    level = float(_typical_peak(envelope[None], block)[0])
    peaks, _ = scipy_signal.find_peaks(envelope, distance=max(1, int(_MIN_RR_S * record.fs)), height=0.3 * level)
    intervals = np.diff(peaks) / record.fs
    intervals = intervals[(intervals >= _MIN_RR_S) & (intervals <= _MAX_RR_S)]
    if len(intervals) < 2:
        return None
    rr = float(np.median(intervals))
    leads_used = tuple(name for name, keep in zip(used, live) if keep)
    return HeartRate(bpm=round(60.0 / rr, 1), rr_interval_ms=round(1000.0 * rr, 1), beats=int(len(peaks)),
                     leads=leads_used)
