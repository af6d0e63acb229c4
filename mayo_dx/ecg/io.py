"""ECG readers: WFDB records and DICOM waveforms to :class:`~mayo_dx.ecg.record.EcgRecord`.

wfdb and pydicom are wrapped here once; the rest of mayo-dx sees only ``EcgRecord``. Files are
recognised by content (the DICOM preamble, a WFDB header line), not by suffix alone. Every
failure is a typed :class:`~mayo_dx.errors.InputError`; patient identifiers in headers are
never copied out (age and sex only on request).

Example:
    >>> from pydicom.data import get_testdata_file
    >>> record = read(get_testdata_file("waveform_ecg.dcm"))
    >>> record.signal.shape, record.fs, record.leads[3]
    ((12, 10000), 1000.0, 'aVR')
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord, standard_lead_name
from mayo_dx.errors import InputError, UnitError, UnreadableFile, UnsupportedFormat

__all__ = ["ECG_SOP_CLASS_UIDS", "read", "read_dicom_ecg", "read_wfdb"]

logger = logging.getLogger(__name__)

#: DICOM SOP classes read as ECG waveforms: 12-lead ECG and General ECG Waveform Storage.
ECG_SOP_CLASS_UIDS: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG Waveform Storage",
}

#: Physical units accepted, as multipliers to millivolts (WFDB and UCUM spellings).
UNIT_TO_MILLIVOLT: dict[str, float] = {
    "mv": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "v": 1e3,
    "nv": 1e-6,
}

_SIGNAL_SUFFIXES = (".dat", ".mat")


def _unit_factor(unit: str | None, where: str) -> float:
    key = (unit or "").strip().lower()
    if key not in UNIT_TO_MILLIVOLT:
        raise UnitError(f"{where}: unknown physical unit {unit!r}; expected one of mV, uV, V")
    return UNIT_TO_MILLIVOLT[key]


def _assemble(
    channels: Sequence[tuple[str, np.ndarray]],
    fs: float,
    source_format: str,
    where: str,
    age: int | None = None,
    sex: str | None = None,
) -> EcgRecord:
    """Place named channels (already in mV) into the standard 12-lead layout."""
    if not channels:
        raise UnsupportedFormat(f"{where}: no signals found")
    n_samples = len(channels[0][1])
    rows: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    for raw_name, values in channels:
        standard = standard_lead_name(raw_name)
        if standard is None:
            ignored.append(raw_name)
            continue
        if standard in rows:
            logger.warning("%s: lead %s appears twice; keeping the first channel", where, standard)
            continue
        rows[standard] = values
    if not rows:
        raise UnsupportedFormat(
            f"{where}: none of its {len(channels)} channels is a standard ECG lead "
            "(I, II, III, aVR, aVL, aVF, V1-V6)"
        )
    if ignored:
        logger.debug("%s: non-standard channels dropped: %s", where, ", ".join(ignored))
    signal = np.full((len(STANDARD_LEADS), n_samples), np.nan, dtype=np.float32)
    for index, name in enumerate(STANDARD_LEADS):
        if name in rows:
            signal[index] = rows[name]
    missing = tuple(name for name in STANDARD_LEADS if name not in rows)
    return EcgRecord(signal=signal, fs=fs, missing_leads=missing, source_format=source_format, age=age, sex=sex)


# ----------------------------------------------------------------------------------------- WFDB


def _header_path(path: Path) -> Path | None:
    """The ``.hea`` file for a record given by header, signal file or bare record name."""
    if path.suffix.lower() == ".hea":
        return path
    candidate = path.with_suffix(".hea") if path.suffix.lower() in _SIGNAL_SUFFIXES else Path(f"{path}.hea")
    return candidate if candidate.is_file() else None


def _looks_like_wfdb_header(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = stripped.split()
        return len(tokens) >= 2 and tokens[1].isdigit()
    return False


_AGE_PATTERN = re.compile(r"^\s*age\s*:\s*(\d{1,3})\s*$", re.IGNORECASE)
_SEX_PATTERN = re.compile(r"^\s*sex\s*:\s*(\w+)\s*$", re.IGNORECASE)


def _demographics_from_comments(comments: Sequence[str]) -> tuple[int | None, str | None]:
    age: int | None = None
    sex: str | None = None
    for comment in comments:
        age_match = _AGE_PATTERN.match(comment)
        if age_match and age is None:
            age = int(age_match.group(1))
        sex_match = _SEX_PATTERN.match(comment)
        if sex_match and sex is None:
            word = sex_match.group(1).lower()
            sex = "F" if word in ("f", "female") else "M" if word in ("m", "male") else None
    return age, sex


def _diagnose_wfdb_failure(wfdb: Any, header: Path, error: Exception) -> str:
    """A precise reason for a failed ``wfdb.rdrecord`` (only computed on failure: it re-reads)."""
    where = header.name
    try:
        header_info = wfdb.rdheader(str(header.with_suffix("")))
    except Exception:
        return f"{where}: the WFDB header cannot be parsed ({type(error).__name__})"
    for file_name in sorted(set(header_info.file_name or [])):
        signal_file = header.parent / file_name
        if not signal_file.is_file():
            return f"{where}: signal file {file_name} is missing"
        if signal_file.stat().st_size == 0:
            return f"{where}: signal file {file_name} is empty"
    if not header_info.sig_len or not header_info.n_sig:
        return f"{where}: the header declares no samples or no signals"
    return f"{where}: the signal data cannot be read ({type(error).__name__}: truncated or corrupt?)"


def read_wfdb(path: str | Path, *, include_demographics: bool = False) -> EcgRecord:
    """Read a WFDB record (header plus ``.dat``/``.mat`` signal files) as a 12-lead record.

    Physical values come from ``wfdb`` (after ``adc_gain`` and ``baseline``), converted from
    the header's units (mV, uV, V) to mV. Lead names match case-insensitively; extra leads
    (Frank vx/vy/vz, MLII) are dropped; missing standard leads are named on the record.

    Args:
        path: The ``.hea`` file, a signal file beside it, or the record name without suffix.
        include_demographics: Also parse ``age:``/``sex:`` header comments.

    Returns:
        The record with ``source_format="wfdb"``.

    Raises:
        UnreadableFile: Missing, truncated or corrupt header or signal files.
        UnitError: A standard lead has units other than mV/uV/V.
        UnsupportedFormat: No standard ECG lead in the record.

    Example:
        >>> record = read_wfdb("../shared/data/ecg/ptbxl/00001_lr.hea")  # doctest: +SKIP
        >>> record.fs  # doctest: +SKIP
        100.0
    """
    import wfdb  # wrapped once, imported lazily: its import pulls pandas and matplotlib.

    given = Path(path)
    header = _header_path(given)
    if header is None or not header.is_file():
        raise UnreadableFile(f"{given.name}: no WFDB header (.hea) found for this record")
    record_name = str(header.with_suffix(""))
    where = header.name
    try:
        wfdb_record = wfdb.rdrecord(record_name, physical=True)
    except Exception as error:  # wfdb raises bare ValueError/IndexError/etc.; diagnose below
        raise UnreadableFile(_diagnose_wfdb_failure(wfdb, header, error)) from error
    if getattr(wfdb_record, "n_seg", None):
        raise UnsupportedFormat(f"{where}: multi-segment WFDB records are not supported")
    expected = int(wfdb_record.sig_len or 0)
    signal = wfdb_record.p_signal
    if expected <= 0 or signal is None or signal.ndim != 2 or signal.shape[0] != expected:
        got = 0 if signal is None else signal.shape[0]
        raise UnreadableFile(f"{where}: expected {expected} samples per lead, the signal files hold {got} (truncated?)")
    units = list(wfdb_record.units or ["mV"] * wfdb_record.n_sig)
    channels: list[tuple[str, np.ndarray]] = []
    for index, name in enumerate(wfdb_record.sig_name):
        values = signal[:, index]
        if standard_lead_name(name) is not None:
            values = values * _unit_factor(units[index], f"{where} lead {name}")
        channels.append((name, values))
    age, sex = _demographics_from_comments(wfdb_record.comments or []) if include_demographics else (None, None)
    return _assemble(channels, float(wfdb_record.fs), "wfdb", where, age=age, sex=sex)


# ---------------------------------------------------------------------------------------- DICOM


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _group_label(group: Any) -> str:
    return str(getattr(group, "MultiplexGroupLabel", "") or "").strip().upper()


def _choose_rhythm_group(dataset: Any) -> int:
    groups = list(getattr(dataset, "WaveformSequence", []) or [])
    if not groups:
        raise UnsupportedFormat("the DICOM file holds no waveform sequence")
    labelled = [index for index, group in enumerate(groups) if _group_label(group) == "RHYTHM"]
    candidates = labelled or list(range(len(groups)))

    def duration(index: int) -> float:
        group = groups[index]
        return float(group.NumberOfWaveformSamples) / float(group.SamplingFrequency)

    return max(candidates, key=duration)


def _channel_name(channel: Any) -> str:
    sources = getattr(channel, "ChannelSourceSequence", None)
    if not sources:
        return ""
    source = sources[0]
    code = str(getattr(source, "CodeValue", "") or "")
    if standard_lead_name(code):
        return code
    return str(getattr(source, "CodeMeaning", "") or code)


def _channel_unit(channel: Any) -> str | None:
    units = getattr(channel, "ChannelSensitivityUnitsSequence", None)
    if not units:
        return None
    return str(getattr(units[0], "CodeValue", "") or "") or None


def read_dicom_ecg(path: str | Path, *, include_demographics: bool = False) -> EcgRecord:
    """Read a DICOM 12-lead or General ECG Waveform Storage file as a 12-lead record.

    The rhythm multiplex group is used (``MultiplexGroupLabel == "RHYTHM"``, else the longest
    group). Channel sources are mapped to lead names by SCP-ECG/MDC code or code meaning, and
    each channel's ``ChannelSensitivityUnits`` (UCUM uV/mV/V) is honoured.

    Args:
        path: The DICOM file.
        include_demographics: Also take age (``PatientAge``) and sex (``PatientSex``).

    Raises:
        UnreadableFile: Not readable as DICOM, or the waveform data is truncated.
        UnsupportedFormat: Not an ECG waveform SOP class, or no standard lead in it.
        UnitError: A channel's sensitivity units are missing or unknown.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> read_dicom_ecg(get_testdata_file("waveform_ecg.dcm")).missing_leads
        ()
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    given = Path(path)
    where = given.name
    try:
        dataset = pydicom.dcmread(given)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError) as error:
        raise UnreadableFile(f"{where}: not a readable DICOM file ({type(error).__name__})") from error
    sop_class = str(getattr(dataset, "SOPClassUID", "") or dataset.file_meta.get("MediaStorageSOPClassUID", ""))
    if sop_class not in ECG_SOP_CLASS_UIDS:
        modality = str(getattr(dataset, "Modality", "") or "unknown")
        raise UnsupportedFormat(
            f"{where}: DICOM SOP class {sop_class or 'missing'} (modality {modality}) is not an ECG waveform"
        )
    group_index = _choose_rhythm_group(dataset)
    group = dataset.WaveformSequence[group_index]
    try:
        samples = dataset.waveform_array(group_index)
    except Exception as error:  # pydicom raises ValueError/IndexError on short waveform data
        raise UnreadableFile(f"{where}: waveform data cannot be decoded ({type(error).__name__}: truncated?)") from error
    if samples.ndim != 2 or samples.shape[0] != int(group.NumberOfWaveformSamples):
        raise UnreadableFile(f"{where}: waveform data shorter than its declared sample count (truncated?)")
    channels: list[tuple[str, np.ndarray]] = []
    for index, channel in enumerate(group.ChannelDefinitionSequence):
        name = _channel_name(channel)
        values = samples[:, index].astype(np.float64)
        if standard_lead_name(name) is not None:
            unit = _channel_unit(channel)
            if unit is None:
                raise UnitError(f"{where}: channel {index + 1} has no sensitivity units")
            values = values * _unit_factor(unit, f"{where} channel {index + 1}")
        channels.append((name, values))
    age: int | None = None
    sex: str | None = None
    if include_demographics:
        age_text = str(getattr(dataset, "PatientAge", "") or "")
        if len(age_text) == 4 and age_text[:3].isdigit() and age_text[3].upper() == "Y":
            age = int(age_text[:3])
        sex_text = str(getattr(dataset, "PatientSex", "") or "").upper()
        sex = sex_text if sex_text in ("F", "M") else None
    return _assemble(channels, float(group.SamplingFrequency), "dicom", where, age=age, sex=sex)


# ------------------------------------------------------------------------------------- dispatch


def read(path: str | Path, *, include_demographics: bool = False) -> EcgRecord:
    """Read any supported ECG file, recognised by content.

    DICOM files are recognised by their preamble whatever their suffix; WFDB records by a
    header beside the given path (``x.hea``, ``x.dat``, ``x.mat`` or the bare record name).

    Args:
        path: A DICOM ECG file, a WFDB header/signal file, or a WFDB record name.
        include_demographics: Also return age and sex (never names, IDs or dates).

    Returns:
        An :class:`EcgRecord` with the twelve standard leads in mV.

    Raises:
        UnreadableFile: The file does not exist or cannot be read.
        UnsupportedFormat: The file is not an ECG mayo-dx can read.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> read(get_testdata_file("waveform_ecg.dcm")).source_format
        'dicom'
    """
    given = Path(path)
    if given.is_dir():
        raise InputError(f"{given.name}: is a folder; give one ECG file or WFDB record")
    header = _header_path(given)
    if not given.exists() and (header is None or not header.is_file()):
        raise UnreadableFile(f"{given.name}: no such file or WFDB record")
    if given.is_file() and _is_dicom(given):
        return read_dicom_ecg(given, include_demographics=include_demographics)
    if header is not None and _looks_like_wfdb_header(header):
        return read_wfdb(header, include_demographics=include_demographics)
    if given.is_file() and given.stat().st_size == 0:
        raise UnreadableFile(f"{given.name}: the file is empty")
    if given.is_file():
        # A DICOM file without preamble still parses; anything else is not an ECG we know.
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            pydicom.dcmread(given, stop_before_pixels=True, force=False)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
            pass
        else:
            return read_dicom_ecg(given, include_demographics=include_demographics)
    raise UnsupportedFormat(f"{given.name}: neither a DICOM ECG nor a WFDB record (no valid .hea header)")
