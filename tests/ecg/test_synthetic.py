"""Synthetic ECGs: reproducibility, lead relations, class morphology and the PTB-XL-like folder.

Morphology is checked with simple measurements written here, independent of the generator:
median beats on noise-free records, QRS bounds from the spatial slope, ST level at J+60 ms
against the PR segment, Sokolow-Lyon voltage, T-wave polarity and R peaks found with scipy.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks

from mayo_dx.ecg import read
from mayo_dx.ecg.record import STANDARD_LEADS
from mayo_dx.ecg.signal import bandpass, resample
from mayo_dx.ecg.synthetic import (
    LABEL_PREVALENCE,
    SCP_CODES_BY_SUPERCLASS,
    SUPERCLASSES,
    generate_ecg,
    generate_labelled_ecg,
    sample_labels,
)
from mayo_dx.ecg.synthetic_morphology import TERRITORY_LEADS
from mayo_dx.ecg.synthetic_ptbxl import ptbxl_like_record, ptbxl_record_name, write_ptbxl_like

FS = 500
LEAD = {name: index for index, name in enumerate(STANDARD_LEADS)}
STATEMENTS = pd.read_csv(Path(__file__).parents[2] / "mayo_dx" / "ecg" / "data" / "scp_statements.csv", index_col=0)
SEEDS = range(12)


def superclasses_from_codes(scp_codes: dict[str, float]) -> set[str]:
    """PTB-XL's aggregation: diagnostic statements -> their diagnostic_class."""
    diagnostic = STATEMENTS[STATEMENTS["diagnostic"] == 1]
    return {diagnostic.loc[code, "diagnostic_class"] for code in scp_codes if code in diagnostic.index}


def median_beat(ecg, before_s: float = 0.6, after_s: float = 0.6) -> tuple[np.ndarray, int]:
    signal = np.asarray(ecg.record.signal, dtype=np.float64)
    before, after = int(before_s * FS), int(after_s * FS)
    beats = [signal[:, k - before : k + after] for k in ecg.beat_samples if k >= before and k + after <= signal.shape[1]]
    return np.median(beats, axis=0), before


def qrs_bounds(beat: np.ndarray, centre: int, quiet_s: float = 0.02) -> tuple[int, int]:
    """Walk out from the fiducial until the summed slope stays low for ``quiet_s``."""
    slope = np.abs(np.diff(beat, axis=1)).sum(axis=0) * FS
    low = slope < 0.08 * slope[centre - int(0.06 * FS) : centre + int(0.06 * FS)].max()
    quiet = int(quiet_s * FS)
    onset = centre
    while not low[onset - quiet + 1 : onset + 1].all():
        onset -= 1
    offset = centre
    while not low[offset : offset + quiet].all():
        offset += 1
    return onset, offset


def measure(ecg) -> dict[str, object]:
    beat, centre = median_beat(ecg)
    onset, offset = qrs_bounds(beat, centre)
    baseline = beat[:, onset - int(0.02 * FS) : onset - int(0.005 * FS)].mean(axis=1)
    relative = beat - baseline[:, None]
    qrs = slice(centre - int(0.08 * FS), centre + int(0.1 * FS))
    t_window = relative[:, offset + int(0.08 * FS) : offset + int(0.4 * FS)]
    t_wave = t_window[np.arange(12), np.abs(t_window).argmax(axis=1)]
    p_window = relative[LEAD["II"], onset - int(0.3 * FS) : onset - int(0.03 * FS)]
    return {
        "qrs_ms": (offset - onset) * 1000 / FS,
        "st": relative[:, offset + int(0.06 * FS)],
        "q": relative[:, centre - int(0.06 * FS) : centre - int(0.012 * FS)].min(axis=1),
        "t": t_wave,
        "sokolow_lyon": -relative[LEAD["V1"], qrs].min() + relative[LEAD["V5"], qrs].max(),
        "p_peak_to_qrs_ms": (p_window.size - p_window.argmax() + int(0.03 * FS)) * 1000 / FS,
    }


def clean(labels: tuple[str, ...], seeds=SEEDS) -> list:
    return [generate_labelled_ecg(labels, seed=seed, noise=False) for seed in seeds]


# ------------------------------------------------------------------------------- generator


def test_same_seed_same_signal_and_different_seed_different() -> None:
    first = generate_labelled_ecg(("MI", "CD"), seed=11)
    again = generate_labelled_ecg(("MI", "CD"), seed=11)
    other = generate_labelled_ecg(("MI", "CD"), seed=12)
    np.testing.assert_array_equal(first.record.signal, again.record.signal)
    assert dict(first.scp_codes) == dict(again.scp_codes) and first.findings == again.findings
    assert not np.allclose(first.record.signal, other.record.signal)
    from_generator = generate_ecg(("MI", "CD"), seed=np.random.default_rng(11))
    np.testing.assert_array_equal(first.record.signal, from_generator.signal)


def test_noise_flag_keeps_the_beats_and_only_adds_small_noise() -> None:
    noisy = generate_labelled_ecg(("STTC",), seed=5)
    quiet = generate_labelled_ecg(("STTC",), seed=5, noise=False)
    np.testing.assert_array_equal(noisy.beat_samples, quiet.beat_samples)
    difference = np.asarray(noisy.record.signal, dtype=np.float64) - quiet.record.signal
    assert 0.003 < difference.std() < 0.2 and np.abs(difference).max() < 0.8


@pytest.mark.parametrize("fs", [100.0, 500.0])
@pytest.mark.parametrize("labels", [("NORM",), ("MI", "STTC"), ("CD", "HYP")])
def test_limb_leads_obey_einthoven_and_goldberger(labels: tuple[str, ...], fs: float) -> None:
    record = generate_ecg(labels, fs=fs, seed=3)
    lead = {name: np.asarray(record.lead(name), dtype=np.float64) for name in STANDARD_LEADS}
    assert record.signal.shape == (12, int(10 * fs)) and record.fs == fs
    np.testing.assert_allclose(lead["III"], lead["II"] - lead["I"], atol=1e-5)
    np.testing.assert_allclose(lead["aVR"], -(lead["I"] + lead["II"]) / 2, atol=1e-5)
    np.testing.assert_allclose(lead["aVL"], lead["I"] - lead["II"] / 2, atol=1e-5)
    np.testing.assert_allclose(lead["aVF"], lead["II"] - lead["I"] / 2, atol=1e-5)


def test_invalid_labels_are_refused() -> None:
    for labels in [(), ("NORM", "MI"), ("AFIB",)]:
        with pytest.raises(ValueError):
            generate_ecg(labels, seed=0)


def test_sample_labels_prevalence_and_exclusivity() -> None:
    rng = np.random.default_rng(2024)
    draws = [sample_labels(rng) for _ in range(5000)]
    for labels in draws:
        assert labels and set(labels) <= set(SUPERCLASSES)
        assert labels == ("NORM",) or "NORM" not in labels
        assert list(labels) == sorted(labels, key=SUPERCLASSES.index)
    for name in SUPERCLASSES:
        observed = np.mean([name in labels for labels in draws])
        assert abs(observed - LABEL_PREVALENCE[name]) < 0.025, name
    assert np.mean([len(labels) > 1 for labels in draws]) > 0.1


def test_scp_codes_exist_and_aggregate_back_to_the_labels() -> None:
    for superclass, codes in SCP_CODES_BY_SUPERCLASS.items():
        assert {STATEMENTS.loc[code, "diagnostic_class"] for code in codes} == {superclass}
    rng = np.random.default_rng(8)
    for _ in range(150):
        ecg = generate_labelled_ecg(sample_labels(rng), fs=100, seed=rng)
        assert set(ecg.scp_codes) <= set(STATEMENTS.index)
        assert superclasses_from_codes(dict(ecg.scp_codes)) == set(ecg.labels)
        assert sum(STATEMENTS.loc[code, "rhythm"] == 1 for code in ecg.scp_codes) == 1


def test_heart_rate_in_range_and_rr_intervals_vary() -> None:
    # Pan-Tompkins-like detector: band-pass, summed slope, 50 ms moving average, peaks.
    means = []
    for seed in SEEDS:
        ecg = generate_labelled_ecg(("NORM",), seed=seed)
        filtered = bandpass(np.asarray(ecg.record.signal, dtype=np.float64), FS, 5.0, 30.0)
        slope = np.convolve(np.abs(np.diff(filtered, axis=1)).sum(axis=0), np.ones(25) / 25, mode="same")
        peaks, _ = find_peaks(slope, height=0.4 * slope.max(), distance=int(0.3 * FS))
        assert len(peaks) == len(ecg.beat_samples)
        assert np.abs(peaks - ecg.beat_samples).max() < 0.03 * FS
        rr = np.diff(peaks) / FS
        assert 45 <= 60 / rr.mean() <= 105
        assert rr.std() > 0.003
        means.append(rr.mean())
    assert np.std(means) > 0.03


def test_conduction_disorder_widens_qrs_or_lengthens_pr() -> None:
    normal = [measure(ecg) for ecg in clean(("NORM",))]
    blocks = [ecg for ecg in clean(("CD",), range(30)) if "bundle_branch_block" in " ".join(ecg.findings)]
    av_blocks = [ecg for ecg in clean(("CD",), range(30)) if "first_degree_av_block" in ecg.findings and ecg.heart_rate_bpm < 90]
    assert len(blocks) >= 5 and len(av_blocks) >= 3
    normal_width = max(item["qrs_ms"] for item in normal)
    assert normal_width < 110
    for ecg in blocks:
        assert measure(ecg)["qrs_ms"] > max(120, normal_width + 25)
    for ecg in blocks:
        v1 = median_beat(ecg)[0][LEAD["V1"]]
        if "right_bundle_branch_block" in ecg.findings:  # rsR': a late positive wave in V1
            centre = median_beat(ecg)[1]
            assert v1[centre + int(0.04 * FS) : centre + int(0.09 * FS)].max() > 0.2
    normal_pr = [item["p_peak_to_qrs_ms"] for item, ecg in zip(normal, clean(("NORM",))) if ecg.heart_rate_bpm < 90]
    for ecg in av_blocks:
        assert measure(ecg)["p_peak_to_qrs_ms"] > max(normal_pr) + 20
        assert ecg.pr_interval_ms > 200


def test_hypertrophy_raises_sokolow_lyon_voltage() -> None:
    normal = [measure(ecg)["sokolow_lyon"] for ecg in clean(("NORM",))]
    hypertrophy = [measure(ecg)["sokolow_lyon"] for ecg in clean(("HYP",))]
    assert max(normal) < 3.5 < min(hypertrophy)


def test_infarction_q_waves_and_st_elevation_in_its_territory() -> None:
    infarcts = clean(("MI",), range(30))
    assert {ecg.territory for ecg in infarcts} == set(TERRITORY_LEADS)
    checked_q = checked_st = 0
    for ecg in infarcts:
        result = measure(ecg)
        leads = [LEAD[name] for name in TERRITORY_LEADS[ecg.territory]]
        if "pathological_q_waves" in ecg.findings:
            assert result["q"][leads].max() < -0.1
            checked_q += 1
        if "st_elevation" in ecg.findings:
            assert result["st"][leads].min() > 0.1
            checked_st += 1
    assert checked_q >= 10 and checked_st >= 5
    for ecg in clean(("NORM",)):  # a normal upsloping ST stays well below 0.15 mV
        assert np.abs(measure(ecg)["st"]).max() < 0.15


def test_st_t_change_depresses_st_or_inverts_t() -> None:
    normal = [measure(ecg) for ecg in clean(("NORM",))]
    assert min(item["t"][LEAD["V5"]] for item in normal) > 0.1
    changes = clean(("STTC",), range(20))
    assert {"st_depression", "t_inversion"} <= {finding for ecg in changes for finding in ecg.findings}
    for ecg in changes:
        result = measure(ecg)
        if "st_depression" in ecg.findings:
            assert result["st"][[LEAD["V4"], LEAD["V5"], LEAD["V6"]]].mean() < -0.05
            assert result["st"][LEAD["aVR"]] > 0
        if "t_inversion" in ecg.findings:
            assert result["t"][LEAD["V5"]] < -0.05


def test_generation_is_fast() -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(100):
        generate_ecg(sample_labels(rng), seed=rng)
    assert (time.perf_counter() - start) / 100 < 0.02  # a few ms each; generous for busy CI


# ------------------------------------------------------------------------ PTB-XL-like folder


@pytest.fixture(scope="module")
def ptbxl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ptbxl_like(tmp_path_factory.mktemp("synthetic") / "ptbxl", 12, seed=42)


def test_record_names_group_a_thousand_per_folder() -> None:
    assert ptbxl_record_name(1, 100) == "records100/00000/00001_lr"
    assert ptbxl_record_name(999, 500) == "records500/00000/00999_hr"
    assert ptbxl_record_name(1000, 100) == "records100/01000/01000_lr"
    assert ptbxl_record_name(21799, 500) == "records500/21000/21799_hr"
    with pytest.raises(ValueError):
        ptbxl_record_name(1, 250)


def test_database_table_has_ptbxl_columns_and_types(ptbxl_folder: Path) -> None:
    table = pd.read_csv(ptbxl_folder / "ptbxl_database.csv", index_col="ecg_id")
    assert table.index.tolist() == list(range(1, 13))
    for column in ("patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr"):
        assert column in table.columns
    for column in ("patient_id", "age", "sex", "strat_fold"):
        assert pd.api.types.is_integer_dtype(table[column]), column
    assert set(table["sex"]) <= {0, 1} and table["age"].between(18, 95).all()
    assert table["strat_fold"].between(1, 10).all() and table["strat_fold"].nunique() == 10
    assert table.groupby("patient_id")["strat_fold"].nunique().max() == 1
    for ecg_id, row in table.iterrows():
        codes = ast.literal_eval(row["scp_codes"])
        assert isinstance(codes, dict) and all(isinstance(value, float) for value in codes.values())
        assert row["filename_lr"] == f"records100/00000/{ecg_id:05d}_lr"
        assert row["filename_hr"] == f"records500/00000/{ecg_id:05d}_hr"
    copied = pd.read_csv(ptbxl_folder / "scp_statements.csv", index_col=0)
    pd.testing.assert_frame_equal(copied, STATEMENTS)


def test_records_read_back_equal_the_generated_signal(ptbxl_folder: Path) -> None:
    table = pd.read_csv(ptbxl_folder / "ptbxl_database.csv", index_col="ecg_id")
    for ecg_id, row in table.iterrows():
        generated = ptbxl_like_record(ecg_id, seed=42)
        high = read(ptbxl_folder / (row["filename_hr"] + ".hea"), include_demographics=True)
        low = read(ptbxl_folder / (row["filename_lr"] + ".hea"))
        assert high.signal.shape == (12, 5000) and high.fs == 500 and not high.missing_leads
        assert low.signal.shape == (12, 1000) and low.fs == 100 and not low.missing_leads
        np.testing.assert_allclose(high.signal, generated.record.signal, atol=0.5e-3 + 1e-6)
        expected_low = resample(np.asarray(generated.record.signal, dtype=np.float64), 500, 100)
        np.testing.assert_allclose(low.signal, expected_low, atol=0.5e-3 + 1e-6)
        assert high.age == row["age"] and high.sex == ("F" if row["sex"] == 1 else "M")
        assert superclasses_from_codes(ast.literal_eval(row["scp_codes"])) == set(generated.labels)


def test_headers_use_ptbxl_lead_names_and_hold_no_identifiers(ptbxl_folder: Path) -> None:
    header = (ptbxl_folder / "records500" / "00000" / "00001_hr.hea").read_text().splitlines()
    assert header[0].split()[:4] == ["00001_hr", "12", "500", "5000"]
    assert [line.split()[-1] for line in header[1:13]] == ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert all(line.split()[1:3] == ["16", "1000.0(0)/mV"] for line in header[1:13])
    comments = [line for line in header if line.startswith("#")]
    assert comments[0].startswith("# synthetic ECG") and len(comments) == 3
    assert comments[1].startswith("# age: ") and comments[2] in ("# sex: F", "# sex: M")


def test_parallel_writing_gives_the_same_folder(tmp_path: Path) -> None:
    serial = write_ptbxl_like(tmp_path / "serial", 4, seed=7, sampling_rates=(500,))
    parallel = write_ptbxl_like(tmp_path / "parallel", 4, seed=7, sampling_rates=(500,), workers=2)
    assert (serial / "ptbxl_database.csv").read_bytes() == (parallel / "ptbxl_database.csv").read_bytes()
    for path in sorted((serial / "records500").rglob("*.dat")):
        assert path.read_bytes() == (parallel / path.relative_to(serial)).read_bytes()
    assert not (serial / "records100").exists()
    assert "filename_lr" not in pd.read_csv(serial / "ptbxl_database.csv").columns


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_ptbxl_like(tmp_path, 0, seed=0)
    with pytest.raises(ValueError):
        write_ptbxl_like(tmp_path, 2, seed=0, sampling_rates=(250,))
