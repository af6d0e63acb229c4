"""Record sources for users' own ECG tasks: a labels CSV, or WFDB folders with header labels.

* :class:`CsvManifestSource`: ``path,label1,label2,...`` with 0/1 label columns (e.g. low
  ejection fraction, as in Mayo's AI-ECG), an optional ``split`` column.
* :class:`WfdbHeaderSource`: labels on one header comment line, e.g. ``# Dx: 59118001,...``
  (SNOMED CT codes, PhysioNet/CinC 2021) or ``# labels: low_ef``.

Without a ``split`` column, records are split by :func:`hash_split`, a stable hash of their
path: a record's split never changes when records are added or reordered. Both are
:class:`~mayo_dx.ecg.sources.RecordSource` objects for :class:`mayo_dx.ecg.data.EcgDataModule`.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "labels.csv").write_text("path,low_ef\\na.hea,1\\nb.hea,0\\n")
    >>> source = CsvManifestSource(folder / "labels.csv")
    >>> [label.name for label in source.labels], sum(len(s.paths) for s in source.splits().values())
    (['low_ef'], 2)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mayo_dx.card import Label
from mayo_dx.ecg.ptbxl import SPLITS
from mayo_dx.ecg.sources import RecordSource, RecordSplit
from mayo_dx.errors import InputError, UnreadableFile, UnsupportedFormat

__all__ = ["CsvManifestSource", "WfdbHeaderSource", "hash_split", "header_values"]


def hash_split(keys: Iterable[str], validation_fraction: float, test_fraction: float, seed: int = 0) -> np.ndarray:
    """Assign ``"train"``/``"validation"``/``"test"`` by a stable hash of each key.

    The same key always lands in the same split (independent of order or of other keys).

    Example:
        >>> hash_split(["a", "b", "a"], 0.5, 0.0).tolist()[0] == hash_split(["a"], 0.5, 0.0).tolist()[0]
        True
    """
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise InputError("validation_fraction and test_fraction must be >= 0 and sum below 1")
    result = []
    for key in keys:
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        if position < test_fraction:
            result.append("test")
        else:
            result.append("validation" if position < test_fraction + validation_fraction else "train")
    return np.asarray(result, dtype=object)


def _splits_from_column(paths: Sequence[Path], targets: np.ndarray, assigned: np.ndarray) -> dict[str, RecordSplit]:
    result = {}
    for split in SPLITS:
        chosen = assigned == split
        result[split] = RecordSplit(tuple(path for path, keep in zip(paths, chosen) if keep), targets[chosen])
    return result


class CsvManifestSource(RecordSource):
    """Users' own tasks from a CSV: ``path,label1,label2,...`` with 0/1 label columns.

    Paths are relative to the CSV's folder (or absolute) and name any record ``mayo_dx.ecg.read``
    accepts (WFDB header or record name, DICOM ECG). An optional ``split`` column holds
    ``train``/``validation``/``test``; without it records are split by :func:`hash_split`.

    Args:
        path: The CSV file.
        labels: Label columns in output order; ``None`` takes every column except ``path`` and ``split``.
        multi_label: ``False`` for one class per record (softmax; every row needs exactly one 1).
        descriptions: Plain-language description per label name, for the card.
        codes: Code per label name (e.g. SNOMED CT), with ``system`` naming the coding system.
        system: Coding system of ``codes``.
        validation_fraction, test_fraction, seed: Hash split when there is no ``split`` column.

    Example:
        >>> import tempfile
        >>> csv = Path(tempfile.mkdtemp()) / "ef.csv"
        >>> _ = csv.write_text("path,low_ef,split\\nr1.hea,1,train\\nr2.hea,0,test\\n")
        >>> CsvManifestSource(csv).splits()["test"].targets.tolist()
        [[0]]
    """

    def __init__(
        self,
        path: str | Path,
        labels: Sequence[str] | None = None,
        multi_label: bool = True,
        descriptions: Mapping[str, str] | None = None,
        codes: Mapping[str, str] | None = None,
        system: str | None = None,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.arguments = {
            "path": str(Path(path).resolve()), "labels": None if labels is None else list(labels),
            "multi_label": bool(multi_label),
            "descriptions": dict(descriptions or {}), "codes": dict(codes or {}), "system": system,
            "validation_fraction": validation_fraction, "test_fraction": test_fraction, "seed": seed,
        }
        self.path = Path(path)
        if not self.path.is_file():
            raise UnreadableFile(f"{self.path.name}: no such manifest ({self.path})")
        try:
            table = pd.read_csv(self.path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise UnreadableFile(f"{self.path.name}: not a readable CSV ({type(error).__name__})") from error
        if "path" not in table.columns:
            raise UnsupportedFormat(f"{self.path.name}: the manifest needs a 'path' column")
        if labels is None:
            names = [column for column in table.columns if column not in ("path", "split")]
        else:
            names = list(labels)
        missing = [name for name in names if name not in table.columns]
        if not names or missing:
            raise UnsupportedFormat(f"{self.path.name}: label columns missing: {missing or 'none given'}")
        values = table[names].apply(pd.to_numeric, errors="coerce")
        if values.isna().any().any() or not values.isin([0, 1]).all().all():
            raise UnsupportedFormat(f"{self.path.name}: label columns must hold 0 or 1 on every row")
        self.multi_label = bool(multi_label)
        if not self.multi_label and not (values.sum(axis=1) == 1).all():
            raise UnsupportedFormat(f"{self.path.name}: a single-label manifest needs exactly one 1 per row")
        targets = values.to_numpy(dtype=np.uint8)
        texts = table["path"].astype(str)
        paths = [Path(text) if Path(text).is_absolute() else self.path.parent / text for text in texts]
        if "split" in table.columns:
            assigned = table["split"].astype(str).str.strip().str.lower().to_numpy(dtype=object)
            unknown = sorted(set(assigned) - set(SPLITS))
            if unknown:
                raise UnsupportedFormat(
                    f"{self.path.name}: unknown split values {unknown}; use train, validation, test"
                )
        else:
            assigned = hash_split(table["path"].astype(str), validation_fraction, test_fraction, seed)
        self._splits = _splits_from_column(paths, targets, assigned)
        codes = dict(codes or {})
        descriptions = dict(descriptions or {})
        self.labels = tuple(
            Label(name, code=codes.get(name), system=system if name in codes else None,
                  description=descriptions.get(name, ""))
            for name in names
        )
        self.description = f"{len(paths)} records listed in {self.path.name} (labels: {', '.join(names)})"

    def splits(self) -> dict[str, RecordSplit]:
        """Record paths and targets per split."""
        return dict(self._splits)


_HEADER_LINE = re.compile(r"^#\s*([A-Za-z_][\w ]*?)\s*:\s*(.*)$")


def header_values(header: Path, field: str) -> list[str]:
    """Comma-separated values of ``# field: a,b`` in a WFDB header (case-insensitive field).

    Example:
        >>> import tempfile
        >>> header = Path(tempfile.mkdtemp()) / "r.hea"
        >>> _ = header.write_text("r 12 500 5000\\n# Dx: 59118001, 426783006\\n")
        >>> header_values(header, "dx")
        ['59118001', '426783006']
    """
    values: list[str] = []
    for line in header.read_text(errors="replace").splitlines():
        match = _HEADER_LINE.match(line.strip())
        if match and match.group(1).strip().lower() == field.lower():
            values += [item.strip() for item in match.group(2).split(",") if item.strip()]
    return values


class WfdbHeaderSource(RecordSource):
    """A folder of WFDB records whose headers carry labels on one comment line.

    ``labels`` maps each label name to the value that marks it on the header line, e.g.
    ``{"RBBB": "59118001"}`` for ``# Dx: 59118001,426783006`` (CinC 2021, ``system="SNOMED CT"``),
    or ``{"low_ef": "low_ef"}`` for ``# labels: low_ef``. A record without any listed value
    is a negative for every label. Records are split by :func:`hash_split` of their name.

    Example:
        >>> source = WfdbHeaderSource("../shared/data/ecg/cinc2021", {"TAb": "164934002"})  # doctest: +SKIP
    """

    def __init__(
        self,
        folder: str | Path,
        labels: Mapping[str, str],
        field: str = "Dx",
        system: str | None = "SNOMED CT",
        descriptions: Mapping[str, str] | None = None,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.arguments = {
            "folder": str(Path(folder).resolve()), "labels": dict(labels), "field": field, "system": system,
            "descriptions": dict(descriptions or {}), "validation_fraction": validation_fraction,
            "test_fraction": test_fraction, "seed": seed,
        }
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UnreadableFile(f"{self.folder.name}: no such folder ({self.folder})")
        if not labels:
            raise InputError("WfdbHeaderSource needs at least one label")
        headers = sorted(self.folder.rglob("*.hea"))
        if not headers:
            raise UnsupportedFormat(f"{self.folder.name}: no WFDB headers (.hea) found")
        names = list(labels)
        targets = np.zeros((len(headers), len(names)), dtype=np.uint8)
        for row, header in enumerate(headers):
            present = set(header_values(header, field))
            targets[row] = [str(labels[name]) in present for name in names]
        keys = [str(header.relative_to(self.folder).with_suffix("")) for header in headers]
        paths = [header.with_suffix("") for header in headers]
        self._splits = _splits_from_column(paths, targets, hash_split(keys, validation_fraction, test_fraction, seed))
        descriptions = dict(descriptions or {})
        self.labels = tuple(
            Label(name, code=str(labels[name]), system=system, description=descriptions.get(name, "")) for name in names
        )
        self.description = f"{len(headers)} WFDB records in {self.folder.name}, labels from header field '{field}'"

    def splits(self) -> dict[str, RecordSplit]:
        """Record paths and targets per split."""
        return dict(self._splits)
