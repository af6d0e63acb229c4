"""ECG quality checks: typed reasons why a record cannot (or should not) be assessed.

:func:`check_quality` runs every check on an :class:`~mayo_dx.ecg.record.EcgRecord` and
returns a list of :class:`~mayo_dx.results.QualityIssue`: an empty list means the record is
acceptable, an issue with severity ``"reject"`` makes a predictor abstain, ``"warn"`` is only
reported. Each issue has a stable ``code`` (see :data:`QUALITY_CODES`), the lead concerned,
the measured value and the limit it broke. Limits live in :class:`QualityThresholds`, which
a model card can carry (``to_dict``/``from_dict``).

Every default was calibrated on the real records in ``shared/data/ecg`` (CinC 2021, PTB-XL,
PTB Diagnostic, MIT-BIH) and pydicom's ``waveform_ecg.dcm``; ``tests/ecg/test_quality.py``
states the margins. The checks work on whole leads with numpy/scipy and take a few
milliseconds on 10 s at 500 Hz.

Example:
    >>> import numpy as np
    >>> from mayo_dx.ecg.record import EcgRecord
    >>> time = np.arange(5000) / 500
    >>> beats = np.exp(-(((time % 0.8) - 0.4) ** 2) / 2e-4)  # 1 mV spikes, 75 per minute
    >>> signal = np.tile(beats, (12, 1))
    >>> signal[1] = 0.0  # lead II carries nothing
    >>> [(issue.code, issue.lead) for issue in check_quality(EcgRecord(signal=signal, fs=500))]
    [('flat_line', 'II')]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Literal, Mapping

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord
from mayo_dx.ecg.signal import bandpass
from mayo_dx.results import QualityIssue

__all__ = ["QUALITY_CODES", "QualityThresholds", "check_quality", "is_acceptable"]

#: Every code :func:`check_quality` can report, in the order the checks run.
QUALITY_CODES: tuple[str, ...] = (
    "missing_lead",
    "too_short",
    "non_finite",
    "implausible_amplitude",
    "flat_line",
    "lead_off",
    "saturation",
    "high_frequency_noise",
    "baseline_wander",
)

Severity = Literal["reject", "warn"]


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of :func:`check_quality`, with the reason for each number.

    Attributes:
        missing_lead_severity: ``"reject"`` because a 12-lead model needs twelve leads; a
            model trained with lead dropout may relax it to ``"warn"``.
        min_duration_s: 5 s. Half the 10 s PTB-XL records models are trained on, two 2.5 s
            model windows, and about five beats at 60 bpm: less cannot support rhythm labels.
        flat_peak_to_peak_mv: 0.02 mV (two 10 uV ADC steps). A lead whose whole trace spans
            less is flat; the flattest clean real lead spans 0.23 mV. Also the limit for a
            flat segment inside a lead.
        min_flat_segment_s: 1.5 s. A flat stretch this long inside a live lead means the
            electrode came off. The quietest 1.5 s of any clean real lead still spans 0.09 mV;
            at 1 s a bradycardic record already comes within 0.05 mV (T-P stretch).
        lead_off_offset_mv: 1 mV. A flat lead held this far from zero is pinned at an offset
            or rail (lead off) rather than merely empty; clean baselines sit within 0.25 mV.
        max_saturated_fraction: 1% of samples. Share of a lead sitting exactly at its minimum
            or maximum in runs of two or more identical samples (flat-topped, ADC clipping).
            Clean real leads reach 0.22%; clipping each lead at 60% of its range gives up to
            15% and flags 7 to 12 of the 12 leads of every real record.
        noise_cutoff_hz: 40 Hz. Diagnostic ECG energy lies mostly below 40 Hz; mains (50/60
            Hz) and muscle noise lie above. Not assessed when Nyquist is at or below it.
        noise_warn_ratio: 0.15 of a lead's power above ``noise_cutoff_hz`` (relative to the
            power above 0.5 Hz) is reported as a warning. Clean leads above the RMS floor stay
            below 0.06; limb leads with visible 50 Hz hum reach 0.2 to 0.39.
        noise_reject_ratio: 0.5: noise carries as much power as the ECG; rejected.
        min_noise_rms_mv: 0.05 mV. High-frequency power below this RMS is not called noise
            whatever the ratio, so small clean leads (ratio up to 0.23 at 0.03 mV) pass.
        wander_cutoff_hz: 0.5 Hz, the usual ECG high-pass: slower content is baseline wander.
        max_wander_mv: 2 mV peak-to-peak of the signal below ``wander_cutoff_hz`` (edges
            trimmed) is reported as a warning: preprocessing removes it, but ST levels read
            from the raw trace are unreliable. Clean real leads reach 1.6 mV.
        min_amplitude_mv: 0.05 mV median peak-to-peak over live leads. Clean records have
            0.6 mV or more; volts stored as millivolts give about 0.001 mV.
        max_amplitude_mv: 30 mV peak-to-peak in any lead. Clean real leads reach 15 mV (a lead
            swamped by mains noise); microvolts stored as millivolts give hundreds.
    """

    missing_lead_severity: Severity = "reject"
    min_duration_s: float = 5.0
    flat_peak_to_peak_mv: float = 0.02
    min_flat_segment_s: float = 1.5
    lead_off_offset_mv: float = 1.0
    max_saturated_fraction: float = 0.01
    noise_cutoff_hz: float = 40.0
    noise_warn_ratio: float = 0.15
    noise_reject_ratio: float = 0.5
    min_noise_rms_mv: float = 0.05
    wander_cutoff_hz: float = 0.5
    max_wander_mv: float = 2.0
    min_amplitude_mv: float = 0.05
    max_amplitude_mv: float = 30.0

    def __post_init__(self) -> None:
        if self.missing_lead_severity not in ("reject", "warn"):
            raise ValueError(f"missing_lead_severity must be 'reject' or 'warn', got {self.missing_lead_severity!r}")
        for item in fields(self):
            if item.name != "missing_lead_severity":
                value = float(getattr(self, item.name))
                if not np.isfinite(value) or value <= 0:
                    raise ValueError(f"{item.name} must be a positive number, got {value}")
                object.__setattr__(self, item.name, value)
        if self.noise_warn_ratio > self.noise_reject_ratio:
            raise ValueError("noise_warn_ratio must not exceed noise_reject_ratio")
        if self.min_amplitude_mv >= self.max_amplitude_mv:
            raise ValueError("min_amplitude_mv must be below max_amplitude_mv")

    def to_dict(self) -> dict[str, Any]:
        """Return the thresholds as JSON types for a model card.

        Example:
            >>> QualityThresholds().to_dict()["min_duration_s"]
            5.0
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "QualityThresholds":
        """Rebuild thresholds from a card's mapping; missing keys keep their defaults.

        Raises:
            ValueError: If the mapping has keys this version does not know.

        Example:
            >>> QualityThresholds.from_dict({"max_wander_mv": 3.0}).max_wander_mv
            3.0
        """
        known = {item.name for item in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ECG quality thresholds: {sorted(unknown)}")
        return cls(**dict(data))


def is_acceptable(issues: Iterable[QualityIssue]) -> bool:
    """Whether no issue is severe enough to abstain (no ``"reject"``).

    Example:
        >>> is_acceptable([QualityIssue(code="baseline_wander", message="...", severity="warn")])
        True
    """
    return all(issue.severity != "reject" for issue in issues)


def _issue(code: str, message: str, lead: str | None, value: float | None, limit: float | None,
           severity: Severity = "reject") -> QualityIssue:
    rounded = None if value is None else round(float(value), 6)
    return QualityIssue(code=code, message=message, lead=lead, severity=severity, value=rounded, limit=limit)


def _flat_coverage(values: np.ndarray, window: int, limit: float) -> np.ndarray:
    """Mask of samples lying in some ``window``-long stretch whose peak-to-peak is below ``limit``."""
    length = values.shape[-1]
    covered = np.zeros(values.shape, dtype=bool)
    if window < 2 or length < window:
        return covered
    half = window // 2
    spread = maximum_filter1d(values, window, axis=-1) - minimum_filter1d(values, window, axis=-1)
    flat_start = spread[:, half : length - window + 1 + half] < limit  # window [s, s + window)
    counts = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(flat_start, axis=-1)], axis=-1)
    sample = np.arange(length)
    upper = np.minimum(sample, length - window) + 1
    lower = np.clip(sample - window + 1, 0, None)
    return (counts[:, upper] - counts[:, lower]) > 0


def _longest_run(mask: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if len(starts) else 0


def _saturated_fraction(values: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Share of samples at their lead's extreme in runs of at least two identical samples.

    An extreme within 10% of the span from the median is the baseline itself (a noise-free
    trace whose deflections all point one way), not a clipping level, and is not counted.
    """
    span = np.ptp(values, axis=-1, keepdims=True)
    tolerance = 1e-6 * span
    top, bottom = values.max(axis=-1, keepdims=True), values.min(axis=-1, keepdims=True)
    median = np.median(values, axis=-1, keepdims=True)
    at_extreme = ((values >= top - tolerance) & (top - median >= 0.1 * span)) | (
        (values <= bottom + tolerance) & (median - bottom >= 0.1 * span)
    )
    at_extreme &= ~exclude
    pair = at_extreme[:, 1:] & at_extreme[:, :-1] & (np.abs(np.diff(values, axis=-1)) <= tolerance)
    in_run = np.zeros_like(at_extreme)
    in_run[:, 1:] |= pair
    in_run[:, :-1] |= pair
    return in_run.mean(axis=-1)


def _noise(values: np.ndarray, fs: float, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Per lead: power share above ``cutoff_hz`` (of power above 0.5 Hz) and its RMS in mV."""
    length = values.shape[-1]
    spectrum = np.abs(np.fft.rfft(values - values.mean(axis=-1, keepdims=True), axis=-1)) ** 2
    frequency = np.fft.rfftfreq(length, 1.0 / fs)
    high = spectrum[:, frequency >= cutoff_hz].sum(axis=-1)
    total = spectrum[:, frequency >= 0.5].sum(axis=-1)
    ratio = np.divide(high, total, out=np.zeros_like(high), where=total > 0)
    return ratio, np.sqrt(2.0 * high) / length


def check_quality(record: EcgRecord, *, thresholds: QualityThresholds | None = None) -> list[QualityIssue]:
    """Check a record and return every quality problem found (an empty list: acceptable).

    Leads the source lacked are reported as ``missing_lead``; leads holding NaN or infinite
    samples as ``non_finite`` and are left out of the other checks. A lead that is flat as a
    whole is ``flat_line`` (or ``lead_off`` when pinned at a large offset) and skips the
    signal checks. Implausible amplitudes (wrong units) suspend the checks whose limits are
    in millivolts (flat, lead off, noise floor, wander): for the whole record when it is too
    small, for the lead concerned when one is too large.

    Args:
        record: The record to check.
        thresholds: Limits to apply; defaults to :class:`QualityThresholds()`.

    Returns:
        Issues in check order (:data:`QUALITY_CODES`), then lead order. Messages name the
        lead and the numbers only, never the patient.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> from mayo_dx.ecg.io import read
        >>> check_quality(read(get_testdata_file("waveform_ecg.dcm")))
        []
    """
    limits = thresholds or QualityThresholds()
    issues: list[QualityIssue] = []
    fs = record.fs
    for lead in record.missing_leads:
        issues.append(_issue("missing_lead", f"Lead {lead} was not recorded.", lead, None, None,
                             limits.missing_lead_severity))
    if record.duration_s < limits.min_duration_s:
        issues.append(_issue("too_short", f"The record lasts {record.duration_s:.2f} s, shorter than the "
                             f"{limits.min_duration_s:g} s needed.", None, record.duration_s, limits.min_duration_s))
    recorded = [index for index, lead in enumerate(STANDARD_LEADS) if lead not in record.missing_leads]
    values = np.asarray(record.signal, dtype=np.float64)[recorded]
    finite_counts = np.isfinite(values).sum(axis=-1)
    for row, index in enumerate(recorded):
        bad = record.n_samples - int(finite_counts[row])
        if bad:
            issues.append(_issue("non_finite", f"Lead {STANDARD_LEADS[index]} holds {bad} NaN or infinite samples.",
                                 STANDARD_LEADS[index], bad, 0.0))
    usable = [index for row, index in enumerate(recorded) if finite_counts[row] == record.n_samples]
    if not usable or record.n_samples < 2:
        return issues
    values = np.asarray(record.signal, dtype=np.float64)[usable]
    names = [STANDARD_LEADS[index] for index in usable]
    span = np.ptp(values, axis=-1)
    level = np.median(values, axis=-1)

    constant = span <= 1e-6  # exactly constant leads say nothing about units
    record_amplitude = float(np.median(span[~constant])) if np.any(~constant) else None
    units_too_small = record_amplitude is not None and record_amplitude < limits.min_amplitude_mv
    if units_too_small:
        issues.append(_issue("implausible_amplitude", f"The median lead spans {record_amplitude:.4f} mV, below "
                             f"{limits.min_amplitude_mv:g} mV: the units are likely wrong (volts stored as "
                             "millivolts?).", None, record_amplitude, limits.min_amplitude_mv))
    too_large = span > limits.max_amplitude_mv
    for row in np.flatnonzero(too_large):
        issues.append(_issue("implausible_amplitude", f"Lead {names[row]} spans {span[row]:.1f} mV, above "
                             f"{limits.max_amplitude_mv:g} mV: the units are likely wrong (microvolts stored "
                             "as millivolts?).", names[row], span[row], limits.max_amplitude_mv))

    flat = (span < limits.flat_peak_to_peak_mv) & (constant | (not units_too_small))
    for row in np.flatnonzero(flat):
        if abs(level[row]) >= limits.lead_off_offset_mv:
            issues.append(_issue("lead_off", f"Lead {names[row]} is stuck at {level[row]:.2f} mV for the whole "
                                 "record (electrode off or amplifier at its rail).", names[row], abs(level[row]),
                                 limits.lead_off_offset_mv))
        else:
            issues.append(_issue("flat_line", f"Lead {names[row]} is flat: it spans {span[row]:.4f} mV, below "
                                 f"{limits.flat_peak_to_peak_mv:g} mV.", names[row], span[row],
                                 limits.flat_peak_to_peak_mv))

    live = ~flat
    window = int(round(limits.min_flat_segment_s * fs))
    coverage = _flat_coverage(values, window, limits.flat_peak_to_peak_mv)
    if not units_too_small:
        for row in np.flatnonzero(live & coverage.any(axis=-1) & ~too_large):
            seconds = _longest_run(coverage[row]) / fs
            issues.append(_issue("lead_off", f"Lead {names[row]} goes flat for {seconds:.2f} s (at least "
                                 f"{limits.min_flat_segment_s:g} s): the electrode likely lost contact.",
                                 names[row], seconds, limits.min_flat_segment_s))

    saturated = _saturated_fraction(values, coverage)
    for row in np.flatnonzero(live & (saturated >= limits.max_saturated_fraction)):
        issues.append(_issue("saturation", f"Lead {names[row]} sits at its extreme value in {100 * saturated[row]:.1f}% "
                             f"of samples (limit {100 * limits.max_saturated_fraction:g}%): the signal is clipped.",
                             names[row], saturated[row], limits.max_saturated_fraction))

    if fs > 2.0 * limits.noise_cutoff_hz and not units_too_small:
        ratio, noise_rms = _noise(values, fs, limits.noise_cutoff_hz)
        noisy = live & ~too_large & (noise_rms >= limits.min_noise_rms_mv) & (ratio >= limits.noise_warn_ratio)
        for row in np.flatnonzero(noisy):
            reject = ratio[row] >= limits.noise_reject_ratio
            limit = limits.noise_reject_ratio if reject else limits.noise_warn_ratio
            issues.append(_issue("high_frequency_noise", f"Lead {names[row]} has {100 * ratio[row]:.0f}% of its power "
                                 f"above {limits.noise_cutoff_hz:g} Hz (limit {100 * limit:g}%; mains or muscle "
                                 "noise).", names[row], ratio[row], limit, "reject" if reject else "warn"))

    if not units_too_small and limits.wander_cutoff_hz < fs / 2.0:
        checked = live & ~too_large
        trim = int(min(1.0, 0.25 * record.duration_s) * fs)
        if np.any(checked) and record.n_samples - 2 * trim >= 2:
            slow = bandpass(values[checked], fs, None, limits.wander_cutoff_hz)
            wander = np.zeros(len(names))
            wander[checked] = np.ptp(slow[:, trim : record.n_samples - trim], axis=-1)
            for row in np.flatnonzero(checked & (wander > limits.max_wander_mv)):
                issues.append(_issue("baseline_wander", f"Lead {names[row]} drifts {wander[row]:.2f} mV below "
                                     f"{limits.wander_cutoff_hz:g} Hz (limit {limits.max_wander_mv:g} mV).",
                                     names[row], wander[row], limits.max_wander_mv, "warn"))
    return issues
