"""A PTB-XL-shaped folder of synthetic ECGs, for tests, demos and offline training runs.

The folder looks like PTB-XL v1.0.3 to code that reads PTB-XL: ``ptbxl_database.csv``
(index ``ecg_id`` from 1; ``patient_id``, ``age``, ``sex`` with 0 male / 1 female,
``scp_codes`` as a Python dict string, ``strat_fold`` 1-10, ``filename_lr``,
``filename_hr``), ``scp_statements.csv`` (the bundled statement table), and WFDB records
(format 16, 1000 units per mV, leads ``I II III AVR AVL AVF V1..V6``) in
``records100/00000/00001_lr`` and ``records500/00000/00001_hr``, 1000 records per subfolder
as in PTB-XL. The 100 Hz record is the 500 Hz signal resampled, as in PTB-XL.

Every record is a function of ``(seed, ecg_id)`` alone (see :func:`ptbxl_like_record`),
so folders written with different ``n_records`` or ``workers`` agree record by record.
Headers carry only ``age``/``sex`` and a note that the data are synthetic: no names,
identifiers or dates.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> folder = write_ptbxl_like(Path(tempfile.mkdtemp()) / "ptbxl", 3, seed=0)
    >>> table = pd.read_csv(folder / "ptbxl_database.csv", index_col="ecg_id")
    >>> table.index.tolist(), table.loc[1, "filename_hr"]
    ([1, 2, 3], 'records500/00000/00001_hr')
"""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mayo_dx.ecg.signal import resample
from mayo_dx.ecg.synthetic import SyntheticEcg, generate_labelled_ecg, sample_labels

__all__ = ["PTBXL_LEAD_NAMES", "ptbxl_like_record", "ptbxl_record_name", "write_ptbxl_like"]

#: Lead names as PTB-XL's WFDB headers spell them.
PTBXL_LEAD_NAMES: tuple[str, ...] = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

_SUFFIX_BY_RATE = {100: "lr", 500: "hr"}
_ADC_GAIN_PER_MV = 1000.0
_BASE_RATE = 500
_DURATION_S = 10.0
_REPEAT_PATIENT_PROBABILITY = 0.13  # PTB-XL: 21,799 records of 18,869 patients


def ptbxl_record_name(ecg_id: int, sampling_rate: int) -> str:
    """Relative record name (no suffix) as PTB-XL stores it: 1000 records per subfolder.

    Example:
        >>> ptbxl_record_name(1, 100), ptbxl_record_name(1234, 500)
        ('records100/00000/00001_lr', 'records500/01000/01234_hr')
    """
    if sampling_rate not in _SUFFIX_BY_RATE:
        raise ValueError(f"PTB-XL holds records at 100 and 500 Hz, not {sampling_rate}")
    return f"records{sampling_rate}/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_{_SUFFIX_BY_RATE[sampling_rate]}"


def ptbxl_like_record(ecg_id: int, *, seed: int) -> SyntheticEcg:
    """The 500 Hz, 10 s synthetic record that :func:`write_ptbxl_like` writes for ``ecg_id``.

    Labels come from :func:`~mayo_dx.ecg.synthetic.sample_labels`, then the record from the
    same generator, seeded by ``numpy.random.SeedSequence(seed, spawn_key=(1, ecg_id))``.

    Example:
        >>> ptbxl_like_record(5, seed=0).labels == ptbxl_like_record(5, seed=0).labels
        True
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, ecg_id)))
    labels = sample_labels(rng)
    return generate_labelled_ecg(labels, fs=_BASE_RATE, duration_s=_DURATION_S, seed=rng)


def _patients(n_records: int, seed: int) -> list[tuple[int, int, int]]:
    """``(patient_id, age, sex)`` per record; some patients have several records."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    known: list[tuple[int, int, int]] = []
    rows = []
    for _ in range(n_records):
        if known and rng.random() < _REPEAT_PATIENT_PROBABILITY:
            rows.append(known[int(rng.integers(len(known)))])
            continue
        patient = (len(known) + 1, int(np.clip(round(rng.normal(61, 17)), 18, 95)), int(rng.random() < 0.48))
        known.append(patient)
        rows.append(patient)
    return rows


def _write_wfdb(folder: Path, record_name: str, signal: np.ndarray, fs: int, comments: list[str]) -> None:
    import wfdb  # wrapped here and in mayo_dx.ecg.io only; imported lazily (pulls matplotlib)

    path = folder / record_name
    path.parent.mkdir(parents=True, exist_ok=True)
    digital = np.clip(np.round(signal.T * _ADC_GAIN_PER_MV), -32767, 32767).astype(np.int16)
    n_leads = len(PTBXL_LEAD_NAMES)
    wfdb.wrsamp(
        path.name,
        fs=fs,
        units=["mV"] * n_leads,
        sig_name=list(PTBXL_LEAD_NAMES),
        d_signal=digital,
        fmt=["16"] * n_leads,
        adc_gain=[_ADC_GAIN_PER_MV] * n_leads,
        baseline=[0] * n_leads,
        comments=comments,
        write_dir=str(path.parent),
    )


def _write_one(job: tuple[Path, int, int, int, int, tuple[int, ...]]) -> dict[str, Any]:
    folder, ecg_id, seed, age, sex, rates = job
    ecg = ptbxl_like_record(ecg_id, seed=seed)
    signal = np.asarray(ecg.record.signal, dtype=np.float64)
    comments = [
        "synthetic ECG generated by mayo_dx.ecg.synthetic; not patient data",
        f"age: {age}",
        f"sex: {'F' if sex else 'M'}",
    ]
    for rate in rates:
        values = signal if rate == _BASE_RATE else resample(signal, _BASE_RATE, rate)
        _write_wfdb(folder, ptbxl_record_name(ecg_id, rate), values, rate, comments)
    return {"ecg_id": ecg_id, "labels": ecg.labels, "scp_codes": dict(ecg.scp_codes), "findings": ecg.findings}


def _stratified_folds(patient_ids: Sequence[int], labels: Sequence[tuple[str, ...]]) -> list[int]:
    """Folds 1-10 per patient: patients sorted by label set, dealt out in turn."""
    first_labels: dict[int, str] = {}
    for patient, record_labels in zip(patient_ids, labels):
        first_labels.setdefault(patient, "+".join(record_labels))
    order = sorted(first_labels, key=lambda patient: (first_labels[patient], patient))
    fold_of = {patient: position % 10 + 1 for position, patient in enumerate(order)}
    return [fold_of[patient] for patient in patient_ids]


def write_ptbxl_like(
    folder: str | Path,
    n_records: int,
    *,
    seed: int,
    sampling_rates: Sequence[int] = (100, 500),
    workers: int = 1,
) -> Path:
    """Write a PTB-XL-shaped folder of ``n_records`` labelled synthetic 10 s ECGs.

    Args:
        folder: Destination (created if needed; existing files of the same names replaced).
        n_records: Number of records (``ecg_id`` 1 to ``n_records``).
        seed: Seed for labels, demographics and signals.
        sampling_rates: Which of PTB-XL's rates to write: 100 (``filename_lr``) and/or 500
            (``filename_hr``). The 100 Hz signal is the 500 Hz one resampled.
        workers: Processes writing records in parallel (1: in this process).

    Returns:
        The folder.

    Raises:
        ValueError: ``n_records`` or ``workers`` below 1, or a rate other than 100 or 500.

    Example:
        >>> import tempfile
        >>> folder = write_ptbxl_like(tempfile.mkdtemp(), 2, seed=1, sampling_rates=(100,))
        >>> sorted(path.name for path in folder.iterdir())
        ['ptbxl_database.csv', 'records100', 'scp_statements.csv']
    """
    import pandas as pd

    rates = tuple(sorted({int(rate) for rate in sampling_rates}))
    if not rates or any(rate not in _SUFFIX_BY_RATE for rate in rates):
        raise ValueError(f"sampling_rates must be a non-empty subset of (100, 500), got {tuple(sampling_rates)}")
    if n_records < 1 or workers < 1:
        raise ValueError("n_records and workers must be at least 1")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    patients = _patients(n_records, seed)
    jobs = [(root, ecg_id, seed, age, sex, rates) for ecg_id, (_, age, sex) in enumerate(patients, start=1)]
    if workers == 1:
        results = [_write_one(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    patient_ids = [patient for patient, _, _ in patients]
    table = pd.DataFrame(
        {
            "ecg_id": [result["ecg_id"] for result in results],
            "patient_id": patient_ids,
            "age": [age for _, age, _ in patients],
            "sex": [sex for _, _, sex in patients],
            "device": "synthetic",
            "report": ["synthetic: " + (", ".join(result["findings"]) or "normal") for result in results],
            "scp_codes": [str(result["scp_codes"]) for result in results],
            "strat_fold": _stratified_folds(patient_ids, [result["labels"] for result in results]),
        }
    ).set_index("ecg_id")
    for rate in rates:
        table[f"filename_{_SUFFIX_BY_RATE[rate]}"] = [ptbxl_record_name(ecg_id, rate) for ecg_id in table.index]
    table.to_csv(root / "ptbxl_database.csv")
    statements = resources.files("mayo_dx.ecg").joinpath("data", "scp_statements.csv")
    with resources.as_file(statements) as source:
        shutil.copyfile(source, root / "scp_statements.csv")
    return root
