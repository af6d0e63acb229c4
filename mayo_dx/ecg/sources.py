"""Where training records come from: PTB-XL, generated PTB-XL, a labels CSV, WFDB header labels.

A record source answers three questions for the ECG DataModule, without reading any signal:
which labels (in network output order, with their codes), which record paths, and which
0/1 targets per split (``train``, ``validation``, ``test``). Signals are read later, one
record at a time. Every source is built from plain arguments, so a LightningCLI config
names it with ``class_path`` and ``init_args`` and :meth:`RecordSource.to_dict` records
those arguments in the checkpoint (for ``mayo-dx evaluate``).

Sources here: :class:`PtbxlSource` (the benchmark's tasks and folds) and
:class:`SyntheticPtbxlSource` (a generated PTB-XL-shaped folder, written when missing). Users'
own tasks live in :mod:`mayo_dx.ecg.manifest`: :class:`~mayo_dx.ecg.manifest.CsvManifestSource`
(``path,label1,label2,...`` with 0/1 columns, e.g. low ejection fraction) and
:class:`~mayo_dx.ecg.manifest.WfdbHeaderSource` (labels on a WFDB header comment line).

Example:
    >>> import tempfile
    >>> source = SyntheticPtbxlSource(Path(tempfile.mkdtemp()) / "synthetic", n_records=20)
    >>> sorted(source.splits()), source.to_dict()["init_args"]["n_records"]
    (['test', 'train', 'validation'], 20)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mayo_dx.card import Label
from mayo_dx.ecg.ptbxl import SPLITS, load_ptbxl, load_scp_statements
from mayo_dx.errors import InputError

__all__ = [
    "SUPERCLASS_DESCRIPTIONS",
    "PtbxlSource",
    "RecordSource",
    "RecordSplit",
    "SyntheticPtbxlSource",
    "ptbxl_label",
    "source_from_dict",
]

#: PTB-XL diagnostic superclasses in plain words (Wagner et al. 2020, Scientific Data).
SUPERCLASS_DESCRIPTIONS: Mapping[str, str] = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}


@dataclass(frozen=True)
class RecordSplit:
    """Record paths of one split and their 0/1 targets ``[records, labels]`` (uint8)."""

    paths: tuple[Path, ...]
    targets: np.ndarray

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.targets):
            raise ValueError("one target row per record path is needed")


class RecordSource:
    """Base of the record sources: labels, splits and a description for the model card.

    Subclasses set ``labels``, ``multi_label``, ``synthetic``, ``description`` and implement
    :meth:`splits`. :meth:`to_dict` returns the constructor arguments (``arguments``).

    Example:
        >>> issubclass(PtbxlSource, RecordSource)
        True
    """

    labels: tuple[Label, ...] = ()
    multi_label: bool = True
    synthetic: bool = False
    description: str = ""
    arguments: dict[str, Any]

    def splits(self) -> dict[str, RecordSplit]:
        """Return ``{"train": ..., "validation": ..., "test": ...}``."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Create anything missing on disk (called once, on one process, before reading)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}`` as JSON types (paths as strings)."""
        arguments = {key: str(value) if isinstance(value, Path) else value for key, value in self.arguments.items()}
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": arguments}


def source_from_dict(data: Mapping[str, Any]) -> RecordSource:
    """Rebuild a source written by :meth:`RecordSource.to_dict` (only classes of this module).

    Example:
        >>> source_from_dict({"class_path": "os.system", "init_args": {}})
        Traceback (most recent call last):
        ...
        mayo_dx.errors.InputError: unknown record source 'os.system'
    """
    class_path = str(data.get("class_path", ""))
    from mayo_dx.ecg.manifest import CsvManifestSource, WfdbHeaderSource

    classes = (PtbxlSource, SyntheticPtbxlSource, CsvManifestSource, WfdbHeaderSource)
    known = {f"{cls.__module__}.{cls.__name__}": cls for cls in classes}
    if class_path not in known:
        raise InputError(f"unknown record source {class_path!r}")
    return known[class_path](**dict(data.get("init_args", {})))


def ptbxl_label(name: str, task: str, statements: pd.DataFrame) -> Label:
    """The card label of one PTB-XL class: SCP-ECG code and description from the statement table.

    Superclasses (``superdiagnostic``) and subclasses (``subdiagnostic``) are groups of SCP
    statements: their description names the statements they gather.

    Example:
        >>> ptbxl_label("IMI", "diagnostic", load_scp_statements())
        Label(name='IMI', code='IMI', system='SCP-ECG', description='inferior myocardial infarction')
    """
    if task in ("superdiagnostic", "subdiagnostic"):
        column = "diagnostic_class" if task == "superdiagnostic" else "diagnostic_subclass"
        members = sorted(statements.index[(statements["diagnostic"] == 1.0) & (statements[column] == name)])
        plain = SUPERCLASS_DESCRIPTIONS.get(name, f"diagnostic subclass {name}")
        kind = "superclass" if task == "superdiagnostic" else "subclass"
        description = f"{plain} (PTB-XL diagnostic {kind}: {', '.join(members)})"
        return Label(name, code=name, system="SCP-ECG", description=description)
    description = str(statements.loc[name, "description"]) if name in statements.index else ""
    return Label(name, code=name, system="SCP-ECG", description=description)


class PtbxlSource(RecordSource):
    """A PTB-XL benchmark task (:func:`mayo_dx.ecg.ptbxl.load_ptbxl`): classes, folds, records.

    Args:
        folder: PTB-XL root (holds ``ptbxl_database.csv`` and ``records100/``).
        task: ``all``, ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form`` or ``rhythm``.
        sampling_rate: 100 or 500 Hz record files.
        train_folds, validation_folds, test_folds: ``strat_fold`` values (benchmark 1-8, 9, 10).
        min_samples: Keep labels seen in more than this many records (benchmark: 0).

    Example:
        >>> source = PtbxlSource("/data/ptb-xl", "superdiagnostic")  # doctest: +SKIP
        >>> [label.name for label in source.labels]  # doctest: +SKIP
        ['CD', 'HYP', 'MI', 'NORM', 'STTC']
    """

    def __init__(
        self,
        folder: str | Path,
        task: str = "superdiagnostic",
        sampling_rate: int = 100,
        train_folds: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8),
        validation_folds: Sequence[int] = (9,),
        test_folds: Sequence[int] = (10,),
        min_samples: int = 0,
    ) -> None:
        self.arguments = {
            "folder": str(Path(folder).resolve()), "task": task, "sampling_rate": int(sampling_rate),
            "train_folds": list(train_folds),
            "validation_folds": list(validation_folds), "test_folds": list(test_folds), "min_samples": int(min_samples),
        }
        self.folder = Path(folder)
        self.task = task
        self.prepare()
        self._dataset = load_ptbxl(
            self.folder, task, sampling_rate=sampling_rate, min_samples=min_samples,
            train_folds=train_folds, validation_folds=validation_folds, test_folds=test_folds,
        )
        root = self.folder if self.folder.is_dir() else self.folder.parent
        beside = root / "scp_statements.csv"
        statements = load_scp_statements(beside) if beside.is_file() else load_scp_statements()
        self.labels = tuple(ptbxl_label(name, task, statements) for name in self._dataset.classes)
        self.description = (
            f"PTB-XL ({self.folder.name}), task {task}, {sampling_rate} Hz records; folds "
            f"{self.arguments['train_folds']} train, {self.arguments['validation_folds']} validation, "
            f"{self.arguments['test_folds']} test"
        )

    def splits(self) -> dict[str, RecordSplit]:
        """Record paths and multi-hot targets per split, in database order."""
        result = {}
        for split in SPLITS:
            ecg_ids, targets = self._dataset.targets(split)
            result[split] = RecordSplit(tuple(self._dataset.record_path(int(ecg_id)) for ecg_id in ecg_ids), targets)
        return result


class SyntheticPtbxlSource(PtbxlSource):
    """A generated PTB-XL-shaped folder (:func:`~mayo_dx.ecg.synthetic_ptbxl.write_ptbxl_like`).

    The folder is written when ``ptbxl_database.csv`` is missing; an existing folder with a
    different record count is refused rather than silently reused. The model card states
    that the model learnt from synthetic data.

    Example:
        >>> import tempfile
        >>> source = SyntheticPtbxlSource(Path(tempfile.mkdtemp()) / "synthetic", n_records=30)
        >>> source.synthetic, [label.name for label in source.labels][:2]
        (True, ['CD', 'HYP'])
    """

    synthetic = True

    def __init__(
        self,
        folder: str | Path,
        n_records: int = 2000,
        seed: int = 0,
        task: str = "superdiagnostic",
        workers: int = 1,
        train_folds: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8),
        validation_folds: Sequence[int] = (9,),
        test_folds: Sequence[int] = (10,),
    ) -> None:
        self.n_records, self.seed, self.workers = int(n_records), int(seed), int(workers)
        self.folder = Path(folder)
        super().__init__(folder, task, 100, train_folds, validation_folds, test_folds)
        self.arguments = {
            "folder": str(Path(folder).resolve()), "n_records": self.n_records, "seed": self.seed, "task": task,
            "workers": self.workers, "train_folds": list(train_folds), "validation_folds": list(validation_folds),
            "test_folds": list(test_folds),
        }
        self.description = (
            f"{self.n_records} synthetic 10 s 12-lead ECGs generated by mayo_dx.ecg.synthetic "
            f"(seed {self.seed}), PTB-XL-shaped, task {task}; folds as PTB-XL. Not patient data."
        )

    def prepare(self) -> None:
        """Write the folder when it has no database yet (records at 100 Hz only)."""
        from mayo_dx.ecg.synthetic_ptbxl import write_ptbxl_like

        database = self.folder / "ptbxl_database.csv"
        if not database.is_file():
            write_ptbxl_like(self.folder, self.n_records, seed=self.seed, sampling_rates=(100,), workers=self.workers)
            return
        rows = sum(1 for _ in database.open()) - 1
        if rows != self.n_records:
            raise InputError(
                f"{self.folder} holds {rows} synthetic records, not {self.n_records}; choose another folder"
            )
