"""Quality checks on real ECGs and on corrupted copies of them.

Calibration facts (default :class:`QualityThresholds`, all 25 CinC 2021 records, PTB-XL
00001_lr, PTB Diagnostic s0010_re, MIT-BIH 100 and pydicom's waveform_ecg.dcm):

* Real records that legitimately trip a check, kept as true positives:
  - JS20004 and JS20008: leads V2, V4 and V6 are exactly zero for the whole 10 s (the source
    stored empty channels) -> ``flat_line`` (reject) on those three leads.
  - JS20007: V6 is swamped by 50 Hz mains interference for its first 5 s (94% of its power
    above 40 Hz, 15 mV peak-to-peak) -> ``high_frequency_noise`` (reject) on V6.
  - JS20006: limb leads II, III, aVR, aVL, aVF carry visible 50 Hz hum (20-39% of their
    power above 40 Hz) -> ``high_frequency_noise`` warnings only; the record stays acceptable.
  - MIT-BIH 100 holds MLII (not a standard lead) and V5 -> ``missing_lead`` for the other 11.
* Every other record reports no issue at all.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from mayo_dx.ecg.io import read
from mayo_dx.ecg.quality import QUALITY_CODES, QualityThresholds, check_quality, is_acceptable
from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord
from mayo_dx.results import QualityIssue

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ECG_DATA = SHARED_DATA / "ecg"


def _waveform_ecg() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("waveform_ecg.dcm"))


def _real(name: str) -> EcgRecord:
    if name == "waveform_ecg.dcm":
        return read(_waveform_ecg())
    path = ECG_DATA / name
    if not path.exists():
        pytest.skip(f"real ECG sample data not present: {path} (see ../shared/data/README.md)")
    return read(path)


CINC_RECORDS = (
    [f"cinc2021/E0750{number}.hea" for number in range(10)]
    + [f"cinc2021/HR0600{number}.hea" for number in range(5)]
    + [f"cinc2021/JS2000{number}.hea" for number in range(10)]
)
CLEAN_RECORDS = CINC_RECORDS + ["ptbxl/00001_lr.hea", "ptb_diagnostic/s0010_re.hea", "waveform_ecg.dcm"]

#: Issues real records legitimately raise: {record: {(code, lead, severity), ...}}.
TRUE_POSITIVES: dict[str, set[tuple[str, str | None, str]]] = {
    "cinc2021/JS20004.hea": {("flat_line", lead, "reject") for lead in ("V2", "V4", "V6")},
    "cinc2021/JS20008.hea": {("flat_line", lead, "reject") for lead in ("V2", "V4", "V6")},
    "cinc2021/JS20007.hea": {("high_frequency_noise", "V6", "reject")},
    "cinc2021/JS20006.hea": {("high_frequency_noise", lead, "warn") for lead in ("II", "III", "aVR", "aVL", "aVF")},
}


def _found(issues: list[QualityIssue]) -> set[tuple[str, str | None, str]]:
    return {(issue.code, issue.lead, issue.severity) for issue in issues}


@pytest.mark.parametrize("name", CLEAN_RECORDS)
def test_real_records_report_exactly_the_known_issues(name: str) -> None:
    issues = check_quality(_real(name))
    assert _found(issues) == TRUE_POSITIVES.get(name, set())
    if name not in ("cinc2021/JS20004.hea", "cinc2021/JS20007.hea", "cinc2021/JS20008.hea"):
        assert is_acceptable(issues), [issue.message for issue in issues]


def test_mit_bih_record_is_flagged_for_each_missing_lead() -> None:
    record = _real("ptb_diagnostic/100.hea")
    issues = check_quality(record)
    assert [issue.lead for issue in issues] == [lead for lead in STANDARD_LEADS if lead != "V5"]
    assert {issue.code for issue in issues} == {"missing_lead"}
    assert not is_acceptable(issues)
    relaxed = check_quality(record, thresholds=QualityThresholds(missing_lead_severity="warn"))
    assert is_acceptable(relaxed) and len(relaxed) == 11


# ------------------------------------------------------------------------------ corruptions

CORRUPTED_RECORDS = ["cinc2021/E07500.hea", "cinc2021/HR06001.hea", "cinc2021/JS20000.hea", "waveform_ecg.dcm"]


def _zero_lead(signal: np.ndarray, fs: float) -> np.ndarray:
    signal[1] = 0.0  # lead II
    return signal


def _stuck_segment(signal: np.ndarray, fs: float) -> np.ndarray:
    start, stop = int(3 * fs), int(5 * fs)
    signal[7, start:stop] = signal[7, start]  # V2 holds its last value for 2 s
    return signal


def _clip(signal: np.ndarray, fs: float) -> np.ndarray:
    centre = np.median(signal, axis=1, keepdims=True)
    high = centre + 0.6 * (signal.max(axis=1, keepdims=True) - centre)
    low = centre - 0.6 * (centre - signal.min(axis=1, keepdims=True))
    return np.clip(signal, low, high)


def _time(signal: np.ndarray, fs: float) -> np.ndarray:
    return np.arange(signal.shape[1]) / fs


def _mains_50(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal + 0.5 * np.sin(2 * np.pi * 50 * _time(signal, fs))


def _mains_60(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal + 0.5 * np.sin(2 * np.pi * 60 * _time(signal, fs) + 0.3)


def _white_noise(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal + np.random.default_rng(0).normal(scale=0.5, size=signal.shape)


def _wander(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal + 2.5 * np.sin(2 * np.pi * 0.2 * _time(signal, fs))


def _microvolts(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal * 1000.0


def _volts(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal / 1000.0


def _nan(signal: np.ndarray, fs: float) -> np.ndarray:
    signal[7, 1000:1010] = np.nan
    signal[2, 50] = np.inf
    return signal


def _crop(signal: np.ndarray, fs: float) -> np.ndarray:
    return signal[:, : int(2 * fs)]


#: corruption -> (code it must raise, leads it must name or None for record-level/any lead)
CORRUPTIONS = {
    "zeroed_lead": (_zero_lead, "flat_line", {"II"}),
    "stuck_segment": (_stuck_segment, "lead_off", {"V2"}),
    "clipped_60_percent": (_clip, "saturation", None),
    "mains_50_hz": (_mains_50, "high_frequency_noise", None),
    "mains_60_hz": (_mains_60, "high_frequency_noise", None),
    "white_noise": (_white_noise, "high_frequency_noise", None),
    "wander_0_2_hz": (_wander, "baseline_wander", None),
    "microvolts_as_millivolts": (_microvolts, "implausible_amplitude", set(STANDARD_LEADS)),
    "volts_as_millivolts": (_volts, "implausible_amplitude", {None}),
    "nan_samples": (_nan, "non_finite", {"V2", "III"}),
    "cropped_to_2_s": (_crop, "too_short", {None}),
}


@pytest.mark.parametrize("name", CORRUPTED_RECORDS)
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_each_corruption_is_flagged_and_nothing_else(name: str, corruption: str) -> None:
    record = _real(name)
    assert check_quality(record) == []
    corrupt, code, leads = CORRUPTIONS[corruption]
    modified = corrupt(np.array(record.signal, dtype=np.float64), record.fs)
    issues = check_quality(EcgRecord(signal=modified, fs=record.fs, missing_leads=record.missing_leads))
    assert {issue.code for issue in issues} == {code}, [issue.message for issue in issues]
    if leads is not None:
        assert {issue.lead for issue in issues} == leads
    for issue in issues:
        assert issue.value is not None and issue.limit is not None
    if code != "baseline_wander":
        assert not is_acceptable(issues)


def test_constant_lead_at_an_offset_is_lead_off() -> None:
    record = _real("waveform_ecg.dcm")
    signal = np.array(record.signal, dtype=np.float64)
    signal[10] = 5.0  # V5 pinned at a 5 mV rail
    issues = check_quality(record.with_signal(signal))
    assert _found(issues) == {("lead_off", "V5", "reject")}


def test_noise_is_not_assessed_when_the_sampling_rate_is_too_low() -> None:
    time_s = np.arange(600) / 60.0
    beats = np.exp(-(((time_s % 0.8) - 0.4) ** 2) / 2e-3)
    noisy = np.tile(beats, (12, 1)) + 0.3 * np.sin(2 * np.pi * 25 * time_s)
    assert "high_frequency_noise" not in {issue.code for issue in check_quality(EcgRecord(signal=noisy, fs=60))}


def test_all_zero_record_is_flat_not_wrong_units() -> None:
    issues = check_quality(EcgRecord(signal=np.zeros((12, 5000)), fs=500))
    assert _found(issues) == {("flat_line", lead, "reject") for lead in STANDARD_LEADS}


# ------------------------------------------------------------------------- messages, thresholds


def test_messages_name_the_lead_and_hold_no_patient_data() -> None:
    record = read(ECG_DATA / "cinc2021/E07500.hea", include_demographics=True) if ECG_DATA.exists() else None
    dicom = read(_waveform_ecg(), include_demographics=True)
    forbidden = ["Anonymous", "642341", "19710123", "1971", "E07500", "waveform_ecg", "male", "patient"]
    issues: list[QualityIssue] = []
    for source in [item for item in (record, dicom) if item is not None]:
        for corrupt, _, _ in CORRUPTIONS.values():
            signal = corrupt(np.array(source.signal, dtype=np.float64), source.fs)
            issues += check_quality(EcgRecord(signal=signal, fs=source.fs, age=source.age, sex=source.sex))
    assert {issue.code for issue in issues} == set(QUALITY_CODES) - {"missing_lead"}
    for issue in issues:
        text = issue.message
        assert text.endswith(".") and text[0].isupper()
        if issue.lead is not None:
            assert f"Lead {issue.lead} " in text
        for word in forbidden:
            assert word.lower() not in text.lower(), (word, text)
        assert not re.search(r"\b(age|sex|years?)\b", text, re.IGNORECASE), text
        json.dumps(issue.to_dict())


def test_thresholds_round_trip_and_validate() -> None:
    custom = QualityThresholds(missing_lead_severity="warn", max_wander_mv=3.0, min_duration_s=2.5)
    data = json.loads(json.dumps(custom.to_dict()))
    assert QualityThresholds.from_dict(data) == custom
    assert QualityThresholds.from_dict({}) == QualityThresholds()
    with pytest.raises(ValueError, match="unknown"):
        QualityThresholds.from_dict({"max_wander": 3.0})
    with pytest.raises(ValueError):
        QualityThresholds(min_duration_s=0)
    with pytest.raises(ValueError):
        QualityThresholds(missing_lead_severity="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QualityThresholds(noise_warn_ratio=0.6, noise_reject_ratio=0.5)


def test_thresholds_change_decisions() -> None:
    short = EcgRecord(signal=np.array(_real("waveform_ecg.dcm").signal)[:, :3000], fs=1000)
    assert {issue.code for issue in check_quality(short)} == {"too_short"}
    assert check_quality(short, thresholds=QualityThresholds(min_duration_s=2.5)) == []


def test_check_is_fast() -> None:
    record = _real("waveform_ecg.dcm")
    check_quality(record)
    start = time.perf_counter()
    for _ in range(5):
        check_quality(record)
    assert (time.perf_counter() - start) / 5 < 0.1
