"""Beat morphology of the synthetic ECG generator: cardiac dipole waves per PTB-XL superclass.

A :class:`Morphology` holds the waves of one record's beats. Each :class:`Wave` is a Gaussian
in time (optionally skewed) times a dipole vector in Frank coordinates (X to the patient's
left, Y to the feet, Z to the back, mV); :data:`DOWER_MATRIX` (Dower et al., 1988) projects
dipoles onto leads I, II and V1-V6 and :data:`LIMB_FROM_I_II` derives the other limb leads.
Pathology edits the waves, and criteria are *calibrated* on the projected leads: ST
elevation reaches its target in every lead of the MI territory, Sokolow-Lyon voltage reaches
its target for HYP and stays at most 3.2 mV otherwise.

:mod:`mayo_dx.ecg.synthetic` renders a morphology into a record; use that module's API.

Example:
    >>> import numpy as np
    >>> morphology = sample_morphology(("HYP",), np.random.default_rng(0))
    >>> 3.8 <= round(morphology.sokolow_lyon_mv(), 6) <= 5.5
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DOWER_MATRIX", "LEAD_MATRIX", "LIMB_FROM_I_II", "TERRITORY_LEADS", "Morphology", "Wave", "sample_morphology"]

#: Dower transform: Frank X, Y, Z (columns) to leads I, II, V1-V6 (rows).
DOWER_MATRIX = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ]
)
DOWER_MATRIX.flags.writeable = False

#: Leads I, II, III, aVR, aVL, aVF from leads I and II (Einthoven and Goldberger).
LIMB_FROM_I_II = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])
LIMB_FROM_I_II.flags.writeable = False

#: Frank X, Y, Z to all twelve standard leads, rows in ``STANDARD_LEADS`` order.
LEAD_MATRIX = np.vstack([LIMB_FROM_I_II @ DOWER_MATRIX[:2], DOWER_MATRIX[2:]])
LEAD_MATRIX.flags.writeable = False

_LEAD_INDEX = {name: index for index, name in enumerate(("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))}

#: Leads facing each MI territory.
TERRITORY_LEADS: dict[str, tuple[str, ...]] = {
    "anterior": ("V1", "V2", "V3", "V4"),
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
_TERRITORY_DIRECTION = {"anterior": (0.15, 0.0, -1.0), "inferior": (-0.1, 1.0, 0.1), "lateral": (1.0, -0.4, 0.1)}
_TERRITORY_PROBABILITY = {"anterior": 0.45, "inferior": 0.42, "lateral": 0.13}
_MI_CODES = {"anterior": ("ASMI", "AMI"), "inferior": ("IMI",), "lateral": ("LMI",)}
_INJURY_CODES = {"anterior": "INJAS", "inferior": "INJIN", "lateral": "INJLA"}
_ISCHAEMIA_DIRECTION = (-0.65, -0.5, 0.35)  # towards aVR: ST depression in V4-V6, I, II
_NORMAL_SOKOLOW_LYON_CAP_MV = 3.2


def _unit(vector: np.ndarray | tuple[float, ...]) -> np.ndarray:
    values = np.asarray(vector, dtype=np.float64)
    return values / np.linalg.norm(values)


def _projections(vector: np.ndarray, leads: tuple[str, ...]) -> np.ndarray:
    return LEAD_MATRIX[[_LEAD_INDEX[name] for name in leads]] @ vector


@dataclass
class Wave:
    """One wave of every beat: ``vector * exp(-(t - centre)^2 / (2 sigma^2))``.

    ``offset_s`` is relative to the QRS fiducial (group ``"qrs"``) or to the P-wave centre
    (group ``"p"``); group ``"t"`` waves are placed from the QT interval of each beat and
    their widths scale with the square root of the RR interval. ``sigma_after_s`` is the
    width after the centre (a skewed wave).
    """

    vector: np.ndarray
    offset_s: float
    sigma_s: float
    sigma_after_s: float
    group: str = "qrs"


@dataclass
class Morphology:
    """Waves, ST vector, intervals and labels of one synthetic record."""

    waves: dict[str, Wave]
    heart_rate_bpm: float
    pr_s: float
    qtc_s: float
    st_vector: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scp_codes: dict[str, float] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    territory: str | None = None
    qrs_onset_s: float = 0.0
    qrs_offset_s: float = 0.0
    p_centre_s: float = 0.0

    def add(self, name: str, vector: tuple[float, ...] | np.ndarray, offset_s: float, sigma_s: float, sigma_after_s: float | None = None, group: str = "qrs") -> None:
        """Add or replace a wave."""
        after = sigma_s if sigma_after_s is None else sigma_after_s
        self.waves[name] = Wave(np.asarray(vector, dtype=np.float64), offset_s, sigma_s, after, group)

    def qrs_vectors(self) -> list[np.ndarray]:
        """Dipole vectors of the QRS waves (views: scaling them edits the waves)."""
        return [wave.vector for wave in self.waves.values() if wave.group == "qrs"]

    def qt_s(self, rr_s: np.ndarray) -> np.ndarray:
        """QT interval per beat: Bazett's QTc times sqrt(RR), lengthened by a wide QRS."""
        return self.qtc_s * np.sqrt(rr_s) + max(0.0, self.qrs_offset_s - self.qrs_onset_s - 0.09)

    def t_peak_offsets(self, rr_s: np.ndarray) -> np.ndarray:
        """T-peak time after the QRS fiducial for beats with these preceding RR intervals."""
        return self.qrs_onset_s + self.qt_s(rr_s) - 2.5 * self.waves["T"].sigma_after_s * np.sqrt(rr_s)

    def qrs_template(self, fs: float = 2000.0) -> np.ndarray:
        """QRS waves alone on a grid around the fiducial, projected to ``[12, samples]``."""
        t = np.arange(-0.15, 0.2, 1.0 / fs)
        dipole = np.zeros((3, t.size))
        for wave in self.waves.values():
            if wave.group == "qrs":
                width = np.where(t < wave.offset_s, wave.sigma_s, wave.sigma_after_s)
                dipole += np.outer(wave.vector, np.exp(-0.5 * ((t - wave.offset_s) / width) ** 2))
        return LEAD_MATRIX @ dipole

    def sokolow_lyon_mv(self) -> float:
        """S(V1) + R(V5) of the noise-free QRS template."""
        template = self.qrs_template()
        return float(max(0.0, -template[_LEAD_INDEX["V1"]].min()) + max(0.0, template[_LEAD_INDEX["V5"]].max()))

    def finalise(self) -> None:
        """Compute the nominal QRS onset/offset and place the P wave from the PR interval."""
        qrs = [wave for wave in self.waves.values() if wave.group == "qrs" and np.linalg.norm(wave.vector) > 0.05]
        self.qrs_onset_s = min(wave.offset_s - 2.5 * wave.sigma_s for wave in qrs)
        self.qrs_offset_s = max(wave.offset_s + 2.5 * wave.sigma_after_s for wave in qrs)
        p_half = max(-(wave.offset_s - 2.5 * wave.sigma_s) for wave in self.waves.values() if wave.group == "p")
        self.p_centre_s = self.qrs_onset_s - self.pr_s + p_half


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A small random rotation of the heart (about 8 degrees per axis, at most 20)."""
    x, y, z = np.radians(np.clip(rng.normal(0.0, 8.0, 3), -20, 20))
    about_x = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    about_y = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    about_z = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def _normal_beat(labels: tuple[str, ...], rng: np.random.Generator) -> Morphology:
    """Sinus beat with normal intervals, randomly scaled, rotated and varied."""
    rate = rng.normal(70, 10) if labels == ("NORM",) else rng.normal(74, 14)
    clipped = float(np.clip(rate, 50, 100) if labels == ("NORM",) else np.clip(rate, 45, 115))
    morphology = Morphology(waves={}, heart_rate_bpm=clipped, pr_s=rng.uniform(0.12, 0.19), qtc_s=rng.uniform(0.38, 0.44))
    width = rng.uniform(0.9, 1.1)
    morphology.add("P_right", (0.02, 0.09, -0.03), -0.012, 0.018, group="p")
    morphology.add("P_left", (0.06, 0.07, 0.04), 0.012, 0.018, group="p")
    morphology.add("septal", (-0.12, 0.03, -0.2), -0.024 * width, 0.008 * width)
    morphology.add("R", (1.0, 0.6, 0.7), 0.0, 0.011 * width)
    morphology.add("S", (-0.3, -0.15, 0.2), 0.024 * width, 0.009 * width)
    morphology.add("T", (0.4, 0.25, -0.15), 0.0, 0.055 * rng.uniform(0.9, 1.1), 0.038 * rng.uniform(0.9, 1.1), group="t")
    rotation, scale = _rotation(rng), rng.uniform(0.8, 1.2)
    for wave in morphology.waves.values():
        varied = wave.vector * rng.uniform(0.85, 1.15) + rng.normal(0.0, 0.02, 3)
        wave.vector = scale * rotation @ varied
    return morphology


def _add_conduction_disorder(morphology: Morphology, rng: np.random.Generator) -> None:
    pattern = rng.choice(["CRBBB", "CLBBB", "1AVB"], p=[0.4, 0.3, 0.3])
    size = rng.uniform(0.9, 1.3)
    if pattern == "CRBBB":  # late rightward-anterior forces: rsR' in V1, wide S in I and V6
        morphology.add("R_prime", np.array((-0.45, 0.05, -0.55)) * size, 0.062, 0.02)
        morphology.waves["T"].vector = morphology.waves["T"].vector + np.array((0.15, 0.0, 0.25))
        morphology.findings.append("right_bundle_branch_block")
    elif pattern == "CLBBB":  # septum from the left, slow notched left-posterior activation
        direction = _unit((0.55, 0.15, 0.55))
        morphology.add("septal", (0.1, 0.02, 0.05), -0.03, 0.01)
        morphology.add("R", direction * 0.8 * size, -0.008, 0.017)
        morphology.add("R_notch", direction * 0.85 * size, 0.048, 0.02)
        morphology.add("S", (0.0, 0.0, 0.0), 0.03, 0.01)
        morphology.waves["T"].vector = -rng.uniform(0.25, 0.45) * direction
        morphology.st_vector = morphology.st_vector - rng.uniform(0.08, 0.15) * direction
        morphology.findings.append("left_bundle_branch_block")
    morphology.scp_codes[str(pattern)] = 100.0
    if pattern == "1AVB" or rng.random() < 0.2:
        morphology.pr_s = rng.uniform(0.22, 0.32)
        morphology.scp_codes["1AVB"] = 100.0
        morphology.findings.append("first_degree_av_block")


def _calibrate_voltage(morphology: Morphology, hypertrophy: bool, rng: np.random.Generator) -> None:
    current = morphology.sokolow_lyon_mv()
    target = rng.uniform(3.8, 5.5) if hypertrophy else min(current, _NORMAL_SOKOLOW_LYON_CAP_MV)
    for vector in morphology.qrs_vectors():
        vector *= target / current
    if hypertrophy:
        morphology.findings.append("high_qrs_voltage")
        morphology.scp_codes["LVH"] = 100.0


def _add_infarction(morphology: Morphology, rng: np.random.Generator) -> None:
    names = list(_TERRITORY_PROBABILITY)
    territory = names[rng.choice(len(names), p=list(_TERRITORY_PROBABILITY.values()))]
    leads = TERRITORY_LEADS[territory]
    direction = _unit(_TERRITORY_DIRECTION[territory])
    weakest = float(_projections(direction, leads).min())
    q_waves = rng.random() < 0.8
    st_elevation = not q_waves or rng.random() < 0.35
    if q_waves:  # initial forces point away from the dead territory, which loses R
        morphology.add("Q_infarct", -direction * rng.uniform(0.22, 0.5) / weakest, -0.03, 0.011)
        if territory == "anterior":
            morphology.waves["septal"].vector = np.zeros(3)
        r_wave = morphology.waves["R"]
        r_wave.vector = r_wave.vector - 0.5 * max(0.0, float(r_wave.vector @ direction)) * direction
        morphology.findings.append("pathological_q_waves")
    t_wave = morphology.waves["T"]
    if st_elevation:
        elevation = rng.uniform(0.12, 0.3) / weakest * direction
        morphology.st_vector = morphology.st_vector + elevation
        t_wave.vector = t_wave.vector + 0.6 * elevation
        morphology.findings.append("st_elevation")
        morphology.scp_codes[_INJURY_CODES[territory]] = 100.0
    elif rng.random() < 0.5:  # evolved infarct: T inverted in every territory lead
        highest = float(_projections(t_wave.vector, leads).max())
        t_wave.vector = t_wave.vector - (max(highest, 0.0) + rng.uniform(0.1, 0.25)) / weakest * direction
        morphology.findings.append("territorial_t_inversion")
    codes = _MI_CODES[territory]
    morphology.scp_codes[codes[0] if len(codes) == 1 or rng.random() < 0.85 else codes[1]] = 100.0
    morphology.territory = territory


def _add_st_t_change(morphology: Morphology, rng: np.random.Generator) -> None:
    depression = rng.random() < 0.6
    inversion = not depression or rng.random() < 0.5
    if depression:  # subendocardial ischaemia: ST vector towards aVR
        direction = _unit(_ISCHAEMIA_DIRECTION)
        weakest = float(-_projections(direction, ("V4", "V5", "V6")).max())
        morphology.st_vector = morphology.st_vector + rng.uniform(0.08, 0.2) / weakest * direction
        morphology.findings.append("st_depression")
        morphology.scp_codes[str(rng.choice(["ISC_", "ISCAL", "NST_"]))] = 100.0
    if inversion:
        morphology.waves["T"].vector = -rng.uniform(0.4, 0.9) * morphology.waves["T"].vector
        morphology.findings.append("t_inversion")
        if not depression:
            morphology.scp_codes["NDT"] = 100.0


def _add_hypertrophy_extras(morphology: Morphology, rng: np.random.Generator) -> None:
    if rng.random() < 0.4:  # strain: ST-T opposite to the big QRS vector
        axis = _unit(morphology.waves["R"].vector)
        t_wave = morphology.waves["T"]
        t_wave.vector = t_wave.vector - rng.uniform(1.3, 2.0) * np.linalg.norm(t_wave.vector) * axis
        morphology.st_vector = morphology.st_vector - rng.uniform(0.05, 0.12) * axis
        morphology.findings.append("strain")
    if rng.random() < 0.25:  # left atrial enlargement: broad, notched P
        morphology.waves["P_right"].offset_s = -0.02
        left = morphology.waves["P_left"]
        left.offset_s, left.sigma_s, left.sigma_after_s = 0.025, 0.02, 0.02
        left.vector = left.vector * 1.4
        morphology.findings.append("left_atrial_enlargement")
        morphology.scp_codes["LAO/LAE"] = 100.0


def sample_morphology(labels: tuple[str, ...], rng: np.random.Generator) -> Morphology:
    """Draw the beat morphology, intervals and SCP codes for a checked label set.

    Args:
        labels: Superclasses in canonical order (NORM alone, or any of MI, STTC, CD, HYP).
        rng: The generator to draw from.

    Returns:
        A finalised :class:`Morphology` (P wave placed, QRS onset/offset known).

    Example:
        >>> morphology = sample_morphology(("NORM",), np.random.default_rng(1))
        >>> morphology.scp_codes["NORM"], morphology.sokolow_lyon_mv() <= 3.2 + 1e-9
        (100.0, True)
    """
    morphology = _normal_beat(labels, rng)
    if "NORM" in labels:
        morphology.scp_codes["NORM"] = 100.0
    if "CD" in labels:
        _add_conduction_disorder(morphology, rng)
    _calibrate_voltage(morphology, "HYP" in labels, rng)
    if "MI" in labels:
        _add_infarction(morphology, rng)
    if "STTC" in labels:
        _add_st_t_change(morphology, rng)
    if "HYP" in labels:
        _add_hypertrophy_extras(morphology, rng)
    likelihoods = (50.0, 80.0, 100.0)
    for code in morphology.scp_codes:  # graded confidence, as cardiologists gave in PTB-XL
        if code != "NORM":
            morphology.scp_codes[code] = float(likelihoods[rng.choice(3, p=[0.1, 0.2, 0.7])])
    rate = morphology.heart_rate_bpm
    morphology.scp_codes["SBRAD" if rate < 60 else "STACH" if rate > 100 else "SR"] = 0.0
    morphology.finalise()
    return morphology
