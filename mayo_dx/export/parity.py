"""Parity inputs for ECG exports: real and generated records, preprocessed exactly as the runtime does.

Each record gives two network inputs: its sliding windows as one batch ``[windows, 12,
window_samples]`` (what the runtime feeds) and the whole preprocessed signal ``[1, 12, length]``
(which proves the dynamic length). The real records are those in ``../shared/data/ecg`` when
present and pydicom's ``waveform_ecg.dcm`` (always installed); generated records from
:mod:`mayo_dx.ecg.synthetic` cover every superclass.

Example:
    >>> from mayo_dx.card import Label, ModelCard
    >>> card = ModelCard(name="demo", version="0", task="ecg", labels=(Label("NORM"),),
    ...     input_spec={"window_samples": 250, "stride_samples": 125},
    ...     preprocessing={"target_fs": 100.0})
    >>> [item.shape for item in ecg_parity_inputs(card, [], generated=1)]
    [(7, 12, 250), (1, 12, 1000)]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from mayo_dx.card import ModelCard
from mayo_dx.ecg.io import read
from mayo_dx.ecg.record import EcgRecord
from mayo_dx.ecg.signal import EcgPreprocessing, preprocess, sliding_windows
from mayo_dx.ecg.synthetic import SUPERCLASSES, generate_ecg
from mayo_dx.errors import InputError

__all__ = ["REAL_ECG_RECORDS", "default_ecg_records", "ecg_parity_inputs"]

logger = logging.getLogger(__name__)

#: Real records under ``shared/data/ecg`` used for parity (10 s to 38 s, 100 to 1000 Hz).
REAL_ECG_RECORDS: tuple[str, ...] = (
    "ptbxl/00001_lr.hea",
    "cinc2021/HR06000.hea",
    "cinc2021/E07500.hea",
    "cinc2021/JS20000.hea",
    "ptb_diagnostic/s0010_re.hea",
)


def _shared_ecg_folder() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ecg"


def default_ecg_records(data_folder: str | Path | None = None) -> list[EcgRecord]:
    """The real parity records: pydicom's DICOM ECG plus :data:`REAL_ECG_RECORDS` when present.

    Args:
        data_folder: Folder holding the ``shared/data/ecg`` layout; defaults to the one beside
            the project. Missing files are skipped with a log line.

    Example:
        >>> len(default_ecg_records("/nonexistent")) >= 1  # the DICOM ECG ships with pydicom
        True
    """
    from pydicom.data import get_testdata_file

    records = [read(get_testdata_file("waveform_ecg.dcm"))]
    folder = Path(data_folder) if data_folder is not None else _shared_ecg_folder()
    for relative in REAL_ECG_RECORDS:
        path = folder / relative
        if not path.is_file():
            logger.info("parity record %s not present; skipped", relative)
            continue
        try:
            records.append(read(path))
        except InputError as error:
            logger.warning("parity record %s unreadable: %s", relative, error)
    return records


def ecg_parity_inputs(card: ModelCard, records: Iterable[EcgRecord], *, generated: int = 3,
                      seed: int = 0) -> list[np.ndarray]:
    """Network inputs for parity: windows and whole signal of every record, preprocessed per the card.

    Args:
        card: An ECG card with ``preprocessing`` and ``input_spec`` (``window_samples``,
            ``stride_samples``).
        records: Real records (e.g. :func:`default_ecg_records`).
        generated: Generated 10 s records to add, cycling through the superclasses.
        seed: Seed of the generated records.

    Returns:
        float32 arrays, two per record: ``[windows, 12, window]`` then ``[1, 12, length]``.

    Example:
        >>> ecg_parity_inputs(card, default_ecg_records())  # doctest: +SKIP
    """
    params = EcgPreprocessing.from_dict(card.preprocessing)
    window = int(card.input_spec["window_samples"])
    stride = int(card.input_spec.get("stride_samples", window))
    rng = np.random.default_rng(seed)
    all_records = list(records) + [
        generate_ecg((SUPERCLASSES[index % len(SUPERCLASSES)],), fs=500.0, seed=rng) for index in range(generated)
    ]
    inputs: list[np.ndarray] = []
    for record in all_records:
        try:
            signal = preprocess(record, params)
        except InputError as error:
            logger.warning("parity record skipped: %s", error)
            continue
        inputs.append(np.ascontiguousarray(sliding_windows(signal, window, stride), dtype=np.float32))
        inputs.append(signal[None].astype(np.float32))
    return inputs
