"""The typed ECG value every reader returns and every model consumes.

An :class:`EcgRecord` always holds the twelve standard leads in one order, in millivolts.
Leads the source did not record are rows of NaN and are *named* in ``missing_leads``: they are
never padded silently. No patient identifiers live on it; age and sex appear only when the
caller asks the reader for them.

Example:
    >>> import numpy as np
    >>> record = EcgRecord(signal=np.zeros((12, 500), dtype=np.float32), fs=500.0)
    >>> record.duration_s
    1.0
    >>> record.lead("aVR").shape
    (500,)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["STANDARD_LEADS", "EcgRecord", "standard_lead_name"]

STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

_LEAD_BY_LOWER = {name.lower(): name for name in STANDARD_LEADS}

# SCP-ECG lead codes (used by DICOM waveform channel sources) and IEEE 11073 MDC terms.
_LEAD_BY_CODE = {
    "5.6.3-9-1": "I", "5.6.3-9-2": "II", "5.6.3-9-61": "III",
    "5.6.3-9-62": "aVR", "5.6.3-9-63": "aVL", "5.6.3-9-64": "aVF",
    "5.6.3-9-3": "V1", "5.6.3-9-4": "V2", "5.6.3-9-5": "V3",
    "5.6.3-9-6": "V4", "5.6.3-9-7": "V5", "5.6.3-9-8": "V6",
    "mdc_ecg_lead_i": "I", "mdc_ecg_lead_ii": "II", "mdc_ecg_lead_iii": "III",
    "mdc_ecg_lead_avr": "aVR", "mdc_ecg_lead_avl": "aVL", "mdc_ecg_lead_avf": "aVF",
    "mdc_ecg_lead_v1": "V1", "mdc_ecg_lead_v2": "V2", "mdc_ecg_lead_v3": "V3",
    "mdc_ecg_lead_v4": "V4", "mdc_ecg_lead_v5": "V5", "mdc_ecg_lead_v6": "V6",
}


def standard_lead_name(name: str) -> str | None:
    """Map a lead name or code as found in files to its standard spelling.

    Matching ignores case, a leading ``"Lead "``, and a parenthesised suffix such as
    ``"(Einthoven)"``. Codes from SCP-ECG (``5.6.3-9-62``) and MDC (``MDC_ECG_LEAD_AVR``) are
    understood. Anything else (Frank ``vx``, ``MLII``) gives ``None``.

    Example:
        >>> [standard_lead_name(n) for n in ("i", "AVR", "Lead I (Einthoven)", "5.6.3-9-62", "vx")]
        ['I', 'aVR', 'I', 'aVR', None]
    """
    text = name.strip()
    coded = _LEAD_BY_CODE.get(text.lower())
    if coded:
        return coded
    if "(" in text:
        text = text[: text.index("(")].strip()
    lowered = text.lower()
    if lowered.startswith("lead "):
        lowered = lowered[5:].strip()
    return _LEAD_BY_LOWER.get(lowered)


@dataclass(frozen=True)
class EcgRecord:
    """A 12-lead ECG in millivolts, free of patient identifiers.

    Attributes:
        signal: float32 array ``[12, samples]`` in mV, rows in :data:`STANDARD_LEADS` order.
            Rows of leads the source lacked are NaN. The array is read-only.
        fs: Sampling frequency in Hz.
        missing_leads: Standard leads absent from the source, in standard order.
        source_format: ``"wfdb"``, ``"dicom"`` or ``"array"`` (built in code).
        age: Age in years, only when the reader was asked for demographics.
        sex: ``"F"``, ``"M"`` or ``None``, only when the reader was asked for demographics.
    """

    signal: np.ndarray
    fs: float
    missing_leads: tuple[str, ...] = ()
    source_format: str = "array"
    age: int | None = None
    sex: str | None = None
    leads: tuple[str, ...] = field(default=STANDARD_LEADS, init=False)

    def __post_init__(self) -> None:
        signal = np.array(self.signal, dtype=np.float32, copy=True)
        if signal.ndim != 2 or signal.shape[0] != len(STANDARD_LEADS):
            raise ValueError(f"signal must have shape [12, samples], got {signal.shape}")
        if not np.isfinite(self.fs) or self.fs <= 0:
            raise ValueError(f"sampling frequency must be a positive number, got {self.fs}")
        unknown = set(self.missing_leads) - set(STANDARD_LEADS)
        if unknown:
            raise ValueError(f"missing_leads names non-standard leads: {sorted(unknown)}")
        ordered_missing = tuple(name for name in STANDARD_LEADS if name in set(self.missing_leads))
        for name in ordered_missing:
            signal[STANDARD_LEADS.index(name)] = np.nan
        if self.sex not in (None, "F", "M"):
            raise ValueError(f"sex must be 'F', 'M' or None, got {self.sex!r}")
        signal.flags.writeable = False
        object.__setattr__(self, "signal", signal)
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "missing_leads", ordered_missing)

    @property
    def n_samples(self) -> int:
        """Number of samples per lead."""
        return int(self.signal.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.n_samples / self.fs

    @property
    def present_leads(self) -> tuple[str, ...]:
        """Standard leads the source recorded."""
        return tuple(name for name in STANDARD_LEADS if name not in self.missing_leads)

    def lead(self, name: str) -> np.ndarray:
        """Return one lead by any accepted spelling (``"avr"``, ``"aVR"``, ``"AVR"``).

        Raises:
            KeyError: If ``name`` is not one of the twelve standard leads.
        """
        standard = standard_lead_name(name)
        if standard is None:
            raise KeyError(f"{name!r} is not a standard 12-lead ECG lead")
        return self.signal[STANDARD_LEADS.index(standard)]

    def with_signal(self, signal: np.ndarray, fs: float | None = None) -> "EcgRecord":
        """Return a copy with a new signal (and optionally a new sampling rate)."""
        return replace(self, signal=signal, fs=self.fs if fs is None else fs)

    def summary(self) -> dict[str, Any]:
        """Return a PHI-free description of the record (no samples) as JSON types."""
        return {
            "fs": self.fs,
            "n_samples": self.n_samples,
            "duration_s": round(self.duration_s, 3),
            "leads": list(self.leads),
            "missing_leads": list(self.missing_leads),
            "source_format": self.source_format,
        }
