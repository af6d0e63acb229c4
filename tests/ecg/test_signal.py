"""The shared ECG preprocessing (numpy/scipy), checked against analytic signals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mayo_dx.ecg import EcgRecord, read
from mayo_dx.ecg.signal import (
    EcgPreprocessing,
    bandpass,
    crop_or_pad,
    fit_standardisation,
    normalise,
    preprocess,
    resample,
    sliding_windows,
)
from mayo_dx.errors import InputError


def sine(frequency: float, fs: float, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    time = np.arange(int(round(seconds * fs))) / fs
    return amplitude * np.sin(2 * np.pi * frequency * time)


@pytest.mark.parametrize("fs, target", [(500, 100), (360, 100), (1000, 500), (100, 250)])
def test_resample_preserves_a_band_limited_sine(fs: float, target: float) -> None:
    original = sine(5.0, fs, 10.0)[None, :]
    resampled = resample(original, fs, target)
    expected = sine(5.0, target, 10.0)[None, :]
    assert resampled.shape == expected.shape
    interior = slice(int(target), -int(target))  # polyphase edges are not exact
    np.testing.assert_allclose(resampled[:, interior], expected[:, interior], atol=5e-3)


@pytest.mark.parametrize("phase", np.linspace(0, 2 * np.pi, 7))
def test_highpass_removes_baseline_wander_and_keeps_the_qrs_band(phase: float) -> None:
    fs = 500.0
    time = np.arange(5000) / fs
    wander = 2.0 * np.sin(2 * np.pi * 0.15 * time + phase / 3)
    content = np.sin(2 * np.pi * 10.0 * time + phase)
    filtered = bandpass((wander + content)[None, :], fs, 0.5, None)[0]
    error = np.abs(filtered - content)
    assert error.max() < 0.3  # edges included, whatever phase the record ends on
    assert error[250:-250].max() < 0.1


def test_filter_is_zero_phase() -> None:
    fs = 100.0
    content = sine(8.0, fs, 10.0)
    filtered = bandpass(content[None, :], fs, 0.5, 40.0)[0]
    lags = np.arange(-10, 11)
    correlation = [np.dot(np.roll(filtered, lag)[100:-100], content[100:-100]) for lag in lags]
    assert lags[int(np.argmax(correlation))] == 0


def test_lowpass_removes_high_frequency_noise() -> None:
    fs = 500.0
    content = sine(5.0, fs, 4.0)
    noisy = content + sine(100.0, fs, 4.0, amplitude=0.5)
    filtered = bandpass(noisy[None, :], fs, None, 40.0, order=4)[0]
    assert np.abs(filtered[10:-10] - content[10:-10]).max() < 0.02


def test_filter_refuses_cutoffs_beyond_nyquist() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        bandpass(np.zeros((1, 100)), 100.0, 0.5, 60.0)


def test_crop_or_pad_positions() -> None:
    values = np.arange(10.0)[None, :]
    assert crop_or_pad(values, 4, "start").tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert crop_or_pad(values, 4, "center").tolist() == [[3.0, 4.0, 5.0, 6.0]]
    assert crop_or_pad(values, 12).shape == (1, 12) and crop_or_pad(values, 12)[0, -1] == 0.0


def test_sliding_windows_cover_the_whole_record() -> None:
    values = np.arange(1000.0)[None, :].repeat(12, axis=0)
    windows = sliding_windows(values, 250, 125)
    assert windows.shape == (7, 12, 250)
    assert windows[0, 0, 0] == 0.0 and windows[-1, 0, -1] == 999.0
    uneven = sliding_windows(np.arange(1010.0)[None, :], 250, 125)
    assert uneven[-1, 0, -1] == 1009.0
    assert sliding_windows(values[:, :100], 250, 125).shape == (1, 12, 250)


def test_preprocess_fills_missing_leads_and_keeps_shape() -> None:
    rng = np.random.default_rng(1)
    record = EcgRecord(signal=rng.normal(size=(12, 5000)), fs=500, missing_leads=("V3", "V4"))
    params = EcgPreprocessing(target_fs=100, duration_s=10.0, normalisation="per_record", missing_lead_fill=0.0)
    output = preprocess(record, params)
    assert output.shape == (12, 1000) and output.dtype == np.float32
    assert np.all(output[8] == 0) and np.all(output[9] == 0)
    assert np.isfinite(output).all()
    np.testing.assert_allclose(output[0].std(), 1.0, rtol=1e-3)


def test_preprocess_refuses_nan_inside_a_recorded_lead() -> None:
    signal = np.zeros((12, 1000))
    signal[2, 10] = np.nan
    with pytest.raises(InputError, match="NaN"):
        preprocess(EcgRecord(signal=signal, fs=100), EcgPreprocessing())


def test_global_normalisation_uses_the_fitted_statistics() -> None:
    rng = np.random.default_rng(2)
    training = [rng.normal(loc=0.3, scale=2.0, size=(12, 1000)) for _ in range(20)]
    mean, std = fit_standardisation(training)
    assert abs(mean[0] - 0.3) < 0.05 and abs(std[0] - 2.0) < 0.05
    params = EcgPreprocessing(target_fs=None, highpass_hz=None, normalisation="global", mean=mean, std=std)
    output = normalise(training[0], params)
    assert abs(output.mean()) < 0.1 and abs(output.std() - 1.0) < 0.1


def test_parameters_round_trip_through_a_card() -> None:
    params = EcgPreprocessing(target_fs=100, lowpass_hz=40, duration_s=2.5, normalisation="global",
                              mean=tuple([0.0] * 12), std=tuple([1.0] * 12))
    restored = EcgPreprocessing.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    with pytest.raises(ValueError, match="unknown"):
        EcgPreprocessing.from_dict({"target_fs": 100, "magic": 1})
    with pytest.raises(ValueError):
        EcgPreprocessing(normalisation="global")


def test_preprocess_is_deterministic_on_a_real_record(waveform_ecg_path) -> None:
    record = read(waveform_ecg_path)
    params = EcgPreprocessing(target_fs=100, highpass_hz=0.5, lowpass_hz=40, duration_s=10.0)
    first = preprocess(record, params)
    second = preprocess(record, params)
    assert first.shape == (12, 1000)
    np.testing.assert_array_equal(first, second)
    # Lead relations survive linear preprocessing: III = II - I.
    np.testing.assert_allclose(first[2], first[1] - first[0], atol=0.02)
