"""ECG readers on every real file in ../shared/data/ecg and on broken copies of them."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import wfdb

from mayo_dx.ecg import STANDARD_LEADS, EcgRecord, read, standard_lead_name
from mayo_dx.errors import InputError, UnitError, UnreadableFile, UnsupportedFormat
from tests.conftest import shared_files, shared_path

REAL_HEADERS = shared_files("ecg/**/*.hea")
# Written out independently of the reader's own table.
TO_MILLIVOLT = {"mv": 1.0, "uv": 0.001, "v": 1000.0}
EXPECTED_NAMES = {
    "i": "I", "ii": "II", "iii": "III", "avr": "aVR", "avl": "aVL", "avf": "aVF",
    "v1": "V1", "v2": "V2", "v3": "V3", "v4": "V4", "v5": "V5", "v6": "V6",
}


def copy_record(header: Path, destination: Path) -> Path:
    """Copy a WFDB record (header and its signal files) into a writable folder."""
    for file in header.parent.glob(header.stem + ".*"):
        target = destination / file.name
        shutil.copyfile(file, target)
    return destination / header.name


def test_real_ecg_files_are_present() -> None:
    if not REAL_HEADERS:
        pytest.skip("../shared/data/ecg is absent")
    assert len(REAL_HEADERS) >= 28


@pytest.mark.parametrize("header", REAL_HEADERS, ids=lambda path: path.stem)
def test_wfdb_values_equal_wfdb_physical_signal(header: Path) -> None:
    record = read(header)
    reference = wfdb.rdrecord(str(header.with_suffix("")))
    assert record.leads == STANDARD_LEADS
    assert record.fs == float(reference.fs)
    assert record.signal.dtype == np.float32
    assert record.signal.shape == (12, reference.sig_len)
    found = set()
    for column, name in enumerate(reference.sig_name):
        standard = EXPECTED_NAMES.get(name.lower())
        if standard is None:
            continue
        found.add(standard)
        expected = reference.p_signal[:, column] * TO_MILLIVOLT[reference.units[column].lower()]
        np.testing.assert_allclose(record.lead(standard), expected, rtol=1e-6, atol=1e-6)
    assert set(record.missing_leads) == set(STANDARD_LEADS) - found
    for name in record.missing_leads:
        assert np.isnan(record.lead(name)).all()


def test_fifteen_lead_ptb_record_gives_the_twelve_standard_leads() -> None:
    header = shared_path("ecg", "ptb_diagnostic", "s0010_re.hea")
    record = read(header)
    assert record.missing_leads == ()
    assert record.fs == 1000.0
    assert np.isfinite(record.signal).all()


def test_mit_bih_record_reports_its_missing_leads() -> None:
    record = read(shared_path("ecg", "ptb_diagnostic", "100.hea"))
    assert record.present_leads == ("V5",)  # MLII is not one of the twelve standard leads
    assert len(record.missing_leads) == 11 and "II" in record.missing_leads
    assert record.fs == 360.0


def test_ptbxl_upper_case_names_and_bare_record_name() -> None:
    header = shared_path("ecg", "ptbxl", "00001_lr.hea")
    by_header = read(header)
    by_name = read(header.with_suffix(""))
    by_signal_file = read(header.with_suffix(".dat"))
    np.testing.assert_array_equal(by_header.signal, by_name.signal)
    np.testing.assert_array_equal(by_header.signal, by_signal_file.signal)
    assert by_header.fs == 100.0 and by_header.n_samples == 1000


def test_dicom_waveform_rhythm_group_in_millivolts(waveform_ecg_path: Path) -> None:
    record = read(waveform_ecg_path)
    dataset = pydicom.dcmread(waveform_ecg_path)
    rhythm = dataset.waveform_array(0)  # group 0 is RHYTHM (10 s), group 1 MEDIAN BEAT (1.2 s)
    assert dataset.WaveformSequence[0].MultiplexGroupLabel == "RHYTHM"
    assert record.source_format == "dicom"
    assert record.fs == 1000.0 and record.signal.shape == (12, 10000)
    names = [channel.ChannelSourceSequence[0].CodeMeaning for channel in dataset.WaveformSequence[0].ChannelDefinitionSequence]
    for column, meaning in enumerate(names):
        standard = meaning.replace("Lead ", "").split(" (")[0]
        np.testing.assert_allclose(record.lead(standard), rhythm[:, column] / 1000.0, rtol=1e-6, atol=1e-6)


def test_dicom_recognised_by_content_without_suffix(waveform_ecg_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ECG0001"
    shutil.copyfile(waveform_ecg_path, copy)
    assert read(copy).signal.shape == (12, 10000)


def test_dicom_channel_units_are_honoured(waveform_ecg_path: Path, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(waveform_ecg_path)
    for channel in dataset.WaveformSequence[0].ChannelDefinitionSequence:
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
    changed = tmp_path / "millivolt.dcm"
    dataset.save_as(changed)
    original = read(waveform_ecg_path)
    np.testing.assert_allclose(read(changed).signal, original.signal * 1000.0, rtol=1e-6)
    dataset.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivityUnitsSequence[0].CodeValue = "mmHg"
    dataset.save_as(changed)
    with pytest.raises(UnitError, match="unknown physical unit"):
        read(changed)


def test_no_patient_identifiers_on_the_record(waveform_ecg_path: Path) -> None:
    dataset = pydicom.dcmread(waveform_ecg_path)
    record = read(waveform_ecg_path)
    assert record.age is None and record.sex is None
    text = repr(record.summary()) + repr({k: v for k, v in vars(record).items() if k != "signal"})
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName", "StudyDate"):
        value = str(dataset.get(keyword, "") or "")
        if len(value) >= 3:
            assert value not in text, keyword
    assert {field.name for field in dataclasses.fields(record)} == {"signal", "fs", "missing_leads", "source_format", "age", "sex", "leads"}


def test_demographics_only_on_request(waveform_ecg_path: Path) -> None:
    dataset = pydicom.dcmread(waveform_ecg_path)
    record = read(waveform_ecg_path, include_demographics=True)
    assert record.sex == dataset.PatientSex
    assert record.age == int(dataset.PatientAge[:3])
    header = shared_path("ecg", "ptb_diagnostic", "s0010_re.hea")
    assert (read(header, include_demographics=True).age, read(header, include_demographics=True).sex) == (81, "F")
    assert read(header).age is None


def test_lower_case_and_odd_lead_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = ["i", "II", "iii", "avr", "AVL", "aVF", "v1", "V2", "v3", "V4", "v5", "V6", "vx"]
    values = rng.normal(scale=0.5, size=(500, len(names)))
    wfdb.wrsamp("mixed", fs=250, units=["uV"] * len(names), sig_name=names, p_signal=values * 1000,
                fmt=["16"] * len(names), adc_gain=[10.0] * len(names), baseline=[0] * len(names), write_dir=str(tmp_path))
    record = read(tmp_path / "mixed.hea")
    assert record.missing_leads == ()
    np.testing.assert_allclose(record.lead("aVR"), values[:, 3], atol=1e-3)  # 0.1 uV quantisation


@pytest.mark.parametrize("name, expected", [("Lead I (Einthoven)", "I"), ("MDC_ECG_LEAD_AVF", "aVF"), ("5.6.3-9-62", "aVR"), ("MLII", None), ("vz", None)])
def test_standard_lead_name(name: str, expected: str | None) -> None:
    assert standard_lead_name(name) == expected


# ------------------------------------------------------------------------------- bad input


def test_truncated_wfdb_signal_file(tmp_path: Path) -> None:
    header = copy_record(shared_path("ecg", "cinc2021", "HR06000.hea"), tmp_path)
    signal_file = header.with_suffix(".mat")
    signal_file.write_bytes(signal_file.read_bytes()[:50_000])
    with pytest.raises(UnreadableFile, match="HR06000.hea"):
        read(header)
    assert signal_file.stat().st_size == 50_000  # the input is left as it was


def test_missing_and_empty_signal_file(tmp_path: Path) -> None:
    header = copy_record(shared_path("ecg", "ptbxl", "00001_lr.hea"), tmp_path)
    header.with_suffix(".dat").write_bytes(b"")
    with pytest.raises(UnreadableFile, match="empty"):
        read(header)
    header.with_suffix(".dat").unlink()
    with pytest.raises(UnreadableFile, match="missing"):
        read(header)


def test_garbled_header(tmp_path: Path) -> None:
    header = tmp_path / "broken.hea"
    header.write_text("broken 12 500 5000\nbroken.dat 16 nonsense\n")
    with pytest.raises(UnreadableFile):
        read(header)


def test_unknown_units_in_wfdb_header(tmp_path: Path) -> None:
    values = np.zeros((100, 1))
    wfdb.wrsamp("pressure", fs=100, units=["mmHg"], sig_name=["II"], p_signal=values, fmt=["16"],
                adc_gain=[100.0], baseline=[0], write_dir=str(tmp_path))
    with pytest.raises(UnitError, match="mmHg"):
        read(tmp_path / "pressure.hea")


def test_record_without_any_standard_lead(tmp_path: Path) -> None:
    values = np.zeros((100, 1))
    wfdb.wrsamp("holter", fs=100, units=["mV"], sig_name=["MLII"], p_signal=values, fmt=["16"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    with pytest.raises(UnsupportedFormat, match="standard ECG lead"):
        read(tmp_path / "holter.hea")


def test_truncated_dicom(waveform_ecg_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "truncated.dcm"
    broken.write_bytes(waveform_ecg_path.read_bytes()[:100_000])
    with pytest.raises(UnreadableFile):
        read(broken)


def test_ct_dicom_is_not_an_ecg(ct_small_path: Path) -> None:
    with pytest.raises(UnsupportedFormat, match="not an ECG"):
        read(ct_small_path)


@pytest.mark.parametrize("content", [b"", b"hello, this is not an ECG\n", bytes(range(256)) * 10])
def test_files_that_are_not_ecgs(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "mystery.bin"
    path.write_bytes(content)
    with pytest.raises(InputError):
        read(path)


def test_missing_path_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no such file"):
        read(tmp_path / "absent.hea")
    with pytest.raises(InputError, match="folder"):
        read(tmp_path)


def test_record_is_immutable_and_validated() -> None:
    record = EcgRecord(signal=np.zeros((12, 10)), fs=100)
    with pytest.raises(ValueError):
        record.signal[0, 0] = 1.0
    with pytest.raises(ValueError, match="shape"):
        EcgRecord(signal=np.zeros((8, 10)), fs=100)
    with pytest.raises(ValueError, match="positive"):
        EcgRecord(signal=np.zeros((12, 10)), fs=0)
    with pytest.raises(ValueError, match="non-standard"):
        EcgRecord(signal=np.zeros((12, 10)), fs=100, missing_leads=("MLII",))
