"""Labelled synthetic 12-lead ECGs with class-specific morphology (PTB-XL superclasses).

Every beat is a sum of Gaussian waves (P, Q, R, S, T), as in McSharry et al.'s ECGSYN, but
each wave is a *cardiac dipole*: a 3-vector in Frank X (left), Y (feet), Z (back)
coordinates that the Dower transform projects onto leads I, II and V1-V6, which gives R-wave
progression across the chest leads. Leads III, aVR, aVL and aVF are derived from I and II,
and noise is added per electrode, so Einthoven's and Goldberger's relations hold exactly in
the output. Pathology changes the dipoles (see :mod:`mayo_dx.ecg.synthetic_morphology`):

* NORM: sinus rhythm, normal intervals, Sokolow-Lyon voltage at most 3.2 mV.
* MI: pathological Q waves and/or ST elevation (with hyperacute T) in one territory, chosen
  at random: anterior (V1-V4), inferior (II, III, aVF) or lateral (I, aVL, V5, V6).
* STTC: ST depression (V4-V6 lowest, aVR raised) and/or T-wave inversion.
* CD: right bundle-branch block (rsR' in V1, QRS about 150 ms), left bundle-branch block
  (QS in V1, broad notched R in V5/V6, discordant ST-T), and/or first-degree AV block
  (PR 220-320 ms).
* HYP: left ventricular hypertrophy, Sokolow-Lyon S(V1) + R(V5) of 3.8-5.5 mV, sometimes
  with strain (lateral ST depression, T inversion) or left atrial enlargement (broad P).

Records also get heart-rate variability (respiratory and Mayer waves plus jitter), a small
random rotation and scaling of the heart, and (unless ``noise=False``) baseline wander,
white noise and sometimes 50/60 Hz interference. All randomness comes from one
``numpy.random.Generator``; no global state is touched.

Example:
    >>> ecg = generate_labelled_ecg(("MI",), seed=7)
    >>> ecg.record.signal.shape, ecg.labels, ecg.territory in ("anterior", "inferior", "lateral")
    ((12, 5000), ('MI',), True)
    >>> sorted(ecg.scp_codes) == sorted(set(ecg.scp_codes))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
from scipy.special import expit

from mayo_dx.ecg.record import EcgRecord
from mayo_dx.ecg.synthetic_morphology import DOWER_MATRIX, LIMB_FROM_I_II, Morphology, sample_morphology

__all__ = [
    "LABEL_PREVALENCE",
    "SCP_CODES_BY_SUPERCLASS",
    "SUPERCLASSES",
    "SyntheticEcg",
    "generate_ecg",
    "generate_labelled_ecg",
    "sample_labels",
]

#: The PTB-XL benchmark's superdiagnostic classes, in the benchmark's order.
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")

#: SCP statements (from the bundled ``scp_statements.csv``) the generator may emit per class.
SCP_CODES_BY_SUPERCLASS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "NORM": ("NORM",),
        "MI": ("ASMI", "AMI", "IMI", "LMI", "INJAS", "INJIN", "INJLA"),
        "STTC": ("ISC_", "ISCAL", "NST_", "NDT"),
        "CD": ("CRBBB", "CLBBB", "1AVB"),
        "HYP": ("LVH", "LAO/LAE"),
    }
)

_NORMAL_PROBABILITY = 0.44
# Independent draws for the abnormal classes, repeated until at least one is drawn.
_ABNORMAL_DRAW_PROBABILITY: dict[str, float] = {"MI": 0.38, "STTC": 0.36, "CD": 0.34, "HYP": 0.18}


def _label_prevalence() -> dict[str, float]:
    none_drawn = float(np.prod([1 - value for value in _ABNORMAL_DRAW_PROBABILITY.values()]))
    abnormal = 1 - _NORMAL_PROBABILITY
    prevalence = {"NORM": _NORMAL_PROBABILITY}
    for name, value in _ABNORMAL_DRAW_PROBABILITY.items():
        prevalence[name] = round(abnormal * value / (1 - none_drawn), 4)
    return prevalence


#: Expected share of records carrying each class under :func:`sample_labels` (multi-label, so
#: the values sum to more than one). Close to PTB-XL v1.0.3: NORM 44 %, MI 25 %, STTC 24 %,
#: CD 22 %, HYP 12 %. About a third of abnormal records carry two or more classes.
LABEL_PREVALENCE: Mapping[str, float] = MappingProxyType(_label_prevalence())

# Electrodes RA, LA, LL, V1..V6 to leads I, II, V1..V6 (chest leads against Wilson's terminal).
_ELECTRODES_TO_LEADS = np.zeros((8, 9))
_ELECTRODES_TO_LEADS[0, [0, 1]] = (-1.0, 1.0)
_ELECTRODES_TO_LEADS[1, [0, 2]] = (-1.0, 1.0)
_ELECTRODES_TO_LEADS[2:, :3] = -1.0 / 3.0
_ELECTRODES_TO_LEADS[2:, 3:] = np.eye(6)


@dataclass(frozen=True, eq=False)
class SyntheticEcg:
    """A synthetic record with the ground truth it was generated from.

    Attributes:
        record: The 12-lead signal in mV.
        labels: Superclasses, a subset of :data:`SUPERCLASSES` in that order.
        scp_codes: SCP statement -> likelihood (PTB-XL style, e.g. ``{'IMI': 100.0, 'SR': 0.0}``).
        findings: Morphology actually drawn, e.g. ``("pathological_q_waves", "st_elevation")``.
        territory: MI territory (``"anterior"``, ``"inferior"``, ``"lateral"``) or ``None``.
        heart_rate_bpm: Mean heart rate.
        beat_samples: Sample index of each beat's QRS fiducial (main R-wave centre) in the record.
        pr_interval_ms: Nominal PR interval (P onset to QRS onset).
        qrs_duration_ms: Nominal QRS duration.
        qt_interval_ms: Nominal QT interval at the mean RR interval.
    """

    record: EcgRecord
    labels: tuple[str, ...]
    scp_codes: Mapping[str, float]
    findings: tuple[str, ...]
    territory: str | None
    heart_rate_bpm: float
    beat_samples: np.ndarray
    pr_interval_ms: float
    qrs_duration_ms: float
    qt_interval_ms: float


def _as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _children(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """Independent child generators (seeded from draws when the generator cannot spawn)."""
    try:
        return rng.spawn(count)
    except TypeError:  # a bit generator built without a SeedSequence
        return [np.random.default_rng(int(value)) for value in rng.integers(0, 2**63, count)]


def sample_labels(seed: int | np.random.Generator | None = None) -> tuple[str, ...]:
    """Draw a label set with PTB-XL-like prevalence (see :data:`LABEL_PREVALENCE`).

    NORM comes alone with probability 0.44; otherwise MI, STTC, CD and HYP are drawn
    independently (0.38, 0.36, 0.34, 0.18) until at least one is present.

    Args:
        seed: An integer seed or a generator (advanced in place); ``None`` for fresh entropy.

    Returns:
        Superclasses in :data:`SUPERCLASSES` order.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> all(set(sample_labels(rng)) <= set(SUPERCLASSES) for _ in range(100))
        True
    """
    rng = _as_generator(seed)
    if rng.random() < _NORMAL_PROBABILITY:
        return ("NORM",)
    names = tuple(_ABNORMAL_DRAW_PROBABILITY)
    probabilities = np.array([_ABNORMAL_DRAW_PROBABILITY[name] for name in names])
    while True:
        drawn = rng.random(len(names)) < probabilities
        if drawn.any():
            return tuple(name for name, chosen in zip(names, drawn) if chosen)


def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = (labels,)
    unknown = set(labels) - set(SUPERCLASSES)
    if unknown:
        raise ValueError(f"unknown superclasses {sorted(unknown)}; expected a subset of {SUPERCLASSES}")
    if not labels:
        raise ValueError("at least one superclass is needed")
    if "NORM" in labels and len(set(labels)) > 1:
        raise ValueError("NORM excludes the other superclasses")
    return tuple(name for name in SUPERCLASSES if name in set(labels))


def _beat_times(morphology: Morphology, duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fiducial times covering the record (plus a margin) and the RR interval before each."""
    mean_rr = 60.0 / morphology.heart_rate_bpm
    count = int(np.ceil((duration_s + 2.0) / (0.7 * mean_rr))) + 2
    first = -rng.uniform(0.6, 0.6 + mean_rr)
    approximate = first + mean_rr * np.arange(count)
    breathing = rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * approximate + rng.uniform(0, 2 * np.pi))
    mayer = rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(0.08, 0.12) * approximate + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0.0, rng.uniform(0.005, 0.015), count)
    intervals = np.clip(mean_rr * (1.0 + breathing + mayer + jitter), 0.3, 2.0)
    times = first + np.concatenate(([0.0], np.cumsum(intervals[1:])))
    keep = times < duration_s + 0.8
    return times[keep], intervals[keep]


def _render_dipole(morphology: Morphology, times: np.ndarray, intervals: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sum every wave of every beat into the dipole ``[3, samples]`` (two nearest beats each)."""
    beat_gain = 1.0 + rng.uniform(0.01, 0.04) * np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * times + rng.uniform(0, 2 * np.pi))
    root_rr = np.sqrt(intervals)
    t_peak = morphology.t_peak_offsets(intervals)
    vectors = [wave.vector for wave in morphology.waves.values()] + [morphology.st_vector]
    shapes = np.empty((len(vectors), t.size))
    last = len(times) - 1
    for row, wave in enumerate(morphology.waves.values()):
        if wave.group == "t":
            centres, before, after = times + t_peak, wave.sigma_s * root_rr, wave.sigma_after_s * root_rr
        else:
            offset = wave.offset_s + (morphology.p_centre_s if wave.group == "p" else 0.0)
            centres = times + offset
            before, after = np.full(len(times), wave.sigma_s), np.full(len(times), wave.sigma_after_s)
        following = np.clip(np.searchsorted(centres, t), 1, last)
        total = np.zeros(t.size)
        for index in (following - 1, following):
            distance = t - centres[index]
            width = np.where(distance < 0, before[index], after[index])
            total += beat_gain[index] * np.exp(-0.5 * (distance / width) ** 2)
        shapes[row] = total
    # ST segment: a smooth plateau from the J point to just before the T peak.
    onsets = times + morphology.qrs_offset_s
    ends = times + t_peak - 0.03 * root_rr
    following = np.clip(np.searchsorted(onsets, t), 1, last)
    nearest = np.where(np.abs(t - onsets[following - 1]) < np.abs(t - onsets[following]), following - 1, following)
    nearest = np.where(t >= onsets[following - 1], following - 1, nearest)
    shapes[-1] = expit((t - onsets[nearest]) / 0.006) - expit((t - ends[nearest]) / 0.008)
    return np.asarray(vectors).T @ shapes


def _electrode_noise(n_samples: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Baseline wander, white noise and sometimes mains hum on each of the nine electrodes."""
    t = np.arange(n_samples) / fs
    frequencies = [rng.uniform(0.15, 0.35), rng.uniform(0.02, 0.1)]
    amplitudes = [rng.uniform(0.0, 0.06, 9), rng.uniform(0.0, 0.1, 9)]
    if rng.random() < 0.25 and fs > 2.5 * 50:
        frequencies.append(50.0 if rng.random() < 0.8 else 60.0)
        amplitudes.append(rng.uniform(0.0, 0.01, 9))
    phases = rng.uniform(0, 2 * np.pi, (9, len(frequencies)))
    basis = np.stack([np.sin(2 * np.pi * f * t) for f in frequencies] + [np.cos(2 * np.pi * f * t) for f in frequencies])
    weights = np.concatenate([np.stack(amplitudes, 1) * np.cos(phases), np.stack(amplitudes, 1) * np.sin(phases)], axis=1)
    white = rng.standard_normal((9, n_samples)) * rng.uniform(0.004, 0.015)
    return weights @ basis + white


def generate_labelled_ecg(
    labels: Sequence[str],
    *,
    fs: float = 500.0,
    duration_s: float = 10.0,
    seed: int | np.random.Generator | None = None,
    noise: bool = True,
) -> SyntheticEcg:
    """Generate one synthetic 12-lead ECG and the ground truth behind it.

    The morphology, rhythm and noise come from separate child generators, so ``noise=False``
    with the same seed gives the same beats without wander or noise.

    Args:
        labels: Superclasses from :data:`SUPERCLASSES`; NORM must come alone.
        fs: Sampling rate in Hz.
        duration_s: Length in seconds.
        seed: An integer seed or a generator (advanced in place); ``None`` for fresh entropy.
        noise: Add baseline wander, white noise and occasional 50/60 Hz interference.

    Returns:
        The record (mV), labels, SCP codes, findings and nominal intervals.

    Raises:
        ValueError: Unknown labels, no label, NORM with others, or a non-positive rate/duration.

    Example:
        >>> ecg = generate_labelled_ecg(["CD"], seed=3, noise=False)
        >>> ecg.labels, ecg.record.fs, ecg.qrs_duration_ms > 120 or ecg.pr_interval_ms > 200
        (('CD',), 500.0, True)
    """
    chosen = _check_labels(labels)
    if fs <= 0 or duration_s <= 0:
        raise ValueError("fs and duration_s must be positive")
    morphology_rng, rhythm_rng, noise_rng = _children(_as_generator(seed), 3)
    morphology = sample_morphology(chosen, morphology_rng)
    n_samples = int(round(duration_s * fs))
    t = np.arange(n_samples) / fs
    times, intervals = _beat_times(morphology, duration_s, rhythm_rng)
    leads = DOWER_MATRIX @ _render_dipole(morphology, times, intervals, t, rhythm_rng)
    if noise:
        leads += _ELECTRODES_TO_LEADS @ _electrode_noise(n_samples, fs, noise_rng)
    signal = np.vstack([LIMB_FROM_I_II @ leads[:2], leads[2:]])
    inside = (times >= 0) & (times < n_samples / fs)
    beat_samples = np.round(times[inside] * fs).astype(np.int64)
    beat_samples = beat_samples[beat_samples < n_samples]
    beat_samples.flags.writeable = False
    mean_rr = 60.0 / morphology.heart_rate_bpm
    return SyntheticEcg(
        record=EcgRecord(signal=signal, fs=fs),
        labels=chosen,
        scp_codes=MappingProxyType(dict(morphology.scp_codes)),
        findings=tuple(morphology.findings),
        territory=morphology.territory,
        heart_rate_bpm=round(float(morphology.heart_rate_bpm), 2),
        beat_samples=beat_samples,
        pr_interval_ms=round(1000 * float(morphology.pr_s), 1),
        qrs_duration_ms=round(1000 * float(morphology.qrs_offset_s - morphology.qrs_onset_s), 1),
        qt_interval_ms=round(1000 * float(morphology.qt_s(np.array([mean_rr]))[0]), 1),
    )


def generate_ecg(
    labels: Sequence[str],
    *,
    fs: float = 500.0,
    duration_s: float = 10.0,
    seed: int | np.random.Generator | None = None,
    noise: bool = True,
) -> EcgRecord:
    """Generate one synthetic 12-lead ECG record (mV) for the given superclasses.

    The same as ``generate_labelled_ecg(...).record``; see :func:`generate_labelled_ecg`.

    Example:
        >>> record = generate_ecg(("STTC", "HYP"), fs=100, seed=1)
        >>> record.signal.shape, record.fs
        ((12, 1000), 100.0)
    """
    return generate_labelled_ecg(labels, fs=fs, duration_s=duration_s, seed=seed, noise=noise).record
