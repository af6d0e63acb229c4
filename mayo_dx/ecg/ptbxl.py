"""PTB-XL metadata: SCP-ECG codes to the benchmark's label sets, and the stratified folds.

The label sets follow the PTB-XL benchmark of Strodthoff et al. (2021), repository
``helme/ecg_ptbxl_benchmarking`` (``compute_label_aggregations`` and ``select_data``): every
SCP code of a record counts whatever its likelihood (0.0 included); a task keeps the labels
seen more than ``min_samples`` times (``0`` in the benchmark: every label seen) and drops the
records left without a label; classes are sorted by name. Folds 1-8 train, 9 validate, 10 test.

The dataset object holds labels and record paths only, never the demographic or free-text
columns of ``ptbxl_database.csv`` (patient, age, sex, nurse, site, device, date, report).

Example:
    >>> import pandas as pd
    >>> database = pd.DataFrame(
    ...     {"scp_codes": [{"NORM": 100.0, "SR": 0.0}, {"IMI": 50.0, "LVH": 0.0}], "strat_fold": [1, 10]},
    ...     index=pd.Index([1, 2], name="ecg_id"),
    ... )
    >>> labels = label_sets(database, load_scp_statements(), "superdiagnostic")
    >>> labels.tolist()
    [('NORM',), ('HYP', 'MI')]
    >>> multi_hot(labels)
    (array([[0, 0, 1],
           [1, 1, 0]], dtype=uint8), ('HYP', 'MI', 'NORM'))
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mayo_dx.errors import InputError, UnreadableFile, UnsupportedFormat

__all__ = [
    "SAMPLING_RATES", "SPLITS", "TASKS", "PtbxlDataset", "download_ptbxl", "label_sets", "load_database",
    "load_ptbxl", "load_scp_statements", "multi_hot", "split_folds",
]

#: The benchmark's label sets (experiments exp0, exp1, exp1.1, exp1.1.1, exp2, exp3).
TASKS: tuple[str, ...] = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")

#: Split names returned by :func:`split_folds`.
SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Sampling rate in Hz -> the ``ptbxl_database.csv`` column naming its WFDB record.
SAMPLING_RATES: dict[int, str] = {100: "filename_lr", 500: "filename_hr"}

_STATEMENT_COLUMNS = ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
_DIAGNOSTIC_TASKS = {"diagnostic": None, "subdiagnostic": "diagnostic_subclass", "superdiagnostic": "diagnostic_class"}


def _read_csv(path: Path, **options: Any) -> pd.DataFrame:
    if not path.is_file():
        raise UnreadableFile(f"{path.name}: no such file ({path})")
    try:
        return pd.read_csv(path, **options)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise UnreadableFile(f"{path.name}: not a readable CSV table ({type(error).__name__})") from error


def _check_sampling_rate(sampling_rate: int) -> None:
    if sampling_rate not in SAMPLING_RATES:
        raise InputError(f"PTB-XL records exist at 100 or 500 Hz, not {sampling_rate}")


def _require_columns(table: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise UnsupportedFormat(f"{where}: missing column(s) {', '.join(missing)}")


def _parse_scp_codes(values: pd.Series, where: str) -> pd.Series:
    """Parse ``"{'NORM': 100.0}"`` strings safely (``ast.literal_eval``, never ``eval``)."""

    def parse(ecg_id: Any, value: Any) -> dict[str, float]:
        if isinstance(value, dict):
            return value
        try:
            parsed = ast.literal_eval(value) if isinstance(value, str) else None
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            raise UnsupportedFormat(f"{where}: scp_codes of ecg_id {ecg_id} is not a dictionary of codes: {value!r:.60}")
        return parsed

    return pd.Series([parse(key, value) for key, value in values.items()], index=values.index, name="scp_codes")


def load_database(source: str | Path) -> pd.DataFrame:
    """Read ``ptbxl_database.csv`` (a folder holding it, or the CSV itself) indexed by ``ecg_id``.

    ``scp_codes`` becomes a dict per record, ``strat_fold`` an integer. All columns are kept,
    demographics included: the table is for internal use, never for display.

    Raises:
        UnreadableFile: The file is missing, empty or not CSV.
        UnsupportedFormat: ``ecg_id``, ``scp_codes`` or ``strat_fold`` is missing or malformed.

    Example:
        >>> database = load_database("../shared/data/ecg/ptbxl/ptbxl_database_subset.csv")  # doctest: +SKIP
        >>> database.loc[1, "scp_codes"]  # doctest: +SKIP
        {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
    """
    path = Path(source)
    if path.is_dir():
        path = path / "ptbxl_database.csv"
    table = _read_csv(path)
    _require_columns(table, ("ecg_id", "scp_codes", "strat_fold"), path.name)
    numbers = {column: pd.to_numeric(table[column], errors="coerce") for column in ("ecg_id", "strat_fold")}
    for column, values in numbers.items():
        if values.isna().any() or (values % 1 != 0).any():
            raise UnsupportedFormat(f"{path.name}: {column} must be a whole number on every row")
    if not numbers["ecg_id"].is_unique:
        raise UnsupportedFormat(f"{path.name}: ecg_id must be unique")
    table = table.assign(**{column: values.astype(np.int64) for column, values in numbers.items()}).set_index("ecg_id")
    table["scp_codes"] = _parse_scp_codes(table["scp_codes"], path.name)
    return table


def load_scp_statements(path: str | Path | None = None) -> pd.DataFrame:
    """Read ``scp_statements.csv`` indexed by SCP code; ``path=None`` reads the bundled copy.

    The bundled copy is the official table of PTB-XL 1.0.3 (71 statements).

    Raises:
        UnreadableFile: The file is missing, empty or not CSV.
        UnsupportedFormat: A column used by the label sets is missing or not numeric.

    Example:
        >>> statements = load_scp_statements()
        >>> len(statements), statements.loc["IMI", "diagnostic_class"]
        (71, 'MI')
    """
    where = "bundled scp_statements.csv" if path is None else Path(path).name
    if path is None:
        with resources.as_file(resources.files("mayo_dx.ecg").joinpath("data", "scp_statements.csv")) as bundled:
            table = _read_csv(Path(bundled), index_col=0)
    else:
        table = _read_csv(Path(path), index_col=0)
    _require_columns(table, _STATEMENT_COLUMNS, where)
    for column in ("diagnostic", "form", "rhythm"):
        flags = pd.to_numeric(table[column], errors="coerce")
        if flags.isna().sum() != table[column].isna().sum():
            raise UnsupportedFormat(f"{where}: column {column} must hold 1.0 or nothing")
        table[column] = flags
    table.index = table.index.astype(str).rename("scp_code")
    return table


def _code_to_label(statements: pd.DataFrame, task: str) -> dict[str, str] | None:
    """Map each SCP code to its label for ``task``; ``None`` means every code is its own label."""
    if task == "all":
        return None
    if task in _DIAGNOSTIC_TASKS:
        selected = statements[statements["diagnostic"] == 1.0]
        column = _DIAGNOSTIC_TASKS[task]
        labels = selected.index.to_series() if column is None else selected[column]
    else:
        labels = statements[statements[task] == 1.0].index.to_series()
    return {str(code): str(label) for code, label in labels.items() if not pd.isna(label)}


def label_sets(database: pd.DataFrame, statements: pd.DataFrame, task: str, *, min_samples: int = 0) -> pd.Series:
    """Label set of every record for one benchmark task, as in ``select_data``.

    Rules: ``all`` takes every SCP code of the record; ``diagnostic`` the codes whose statement
    has ``diagnostic == 1.0``; ``subdiagnostic``/``superdiagnostic`` their
    ``diagnostic_subclass``/``diagnostic_class``; ``form`` and ``rhythm`` the codes flagged
    ``1.0`` in that column. Likelihoods are ignored (0.0 counts). Except for ``diagnostic``
    (where the benchmark applies no count filter), labels seen in at most ``min_samples``
    records of the whole table are removed. Records left without a label are dropped.

    Args:
        database: From :func:`load_database`; statements: from :func:`load_scp_statements`.
        task: One of :data:`TASKS`.
        min_samples: Keep labels seen in more than this many records (benchmark: 0).

    Returns:
        Sorted label tuples indexed by ``ecg_id``, in database order, named after the task.

    Raises:
        InputError: Unknown task (UnsupportedFormat, a subclass: a needed column is missing).

    Example:
        >>> database = pd.DataFrame({"scp_codes": [{"SR": 0.0}, {"AFIB": 100.0}]}, index=[7, 8])
        >>> label_sets(database, load_scp_statements(), "rhythm").to_dict()
        {7: ('SR',), 8: ('AFIB',)}
    """
    if task not in TASKS:
        raise InputError(f"unknown PTB-XL task {task!r}; choose one of {', '.join(TASKS)}")
    _require_columns(database, ("scp_codes",), "PTB-XL database")
    _require_columns(statements, _STATEMENT_COLUMNS, "SCP statements")
    codes = _parse_scp_codes(database["scp_codes"], "PTB-XL database")
    mapping = _code_to_label(statements, task)
    if mapping is None:
        sets = [set(map(str, record)) for record in codes]
    else:
        sets = [{mapping[code] for code in record if code in mapping} for record in codes]
    if task != "diagnostic":
        counts = pd.Series([label for labels in sets for label in labels], dtype=object).value_counts()
        kept = set(counts[counts > min_samples].index)
        sets = [labels & kept for labels in sets]
    result = pd.Series([tuple(sorted(labels)) for labels in sets], index=database.index, name=task, dtype=object)
    result.index.name = "ecg_id"
    return result[result.map(len) > 0]


def multi_hot(
    label_series: pd.Series | Sequence[Sequence[str]], classes: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Encode label sets as a 0/1 matrix, like scikit-learn's ``MultiLabelBinarizer``.

    ``classes`` gives the column order; ``None`` uses the sorted union of all labels (the
    benchmark's order). Labels outside ``classes`` are ignored. Returns ``(matrix, classes)``:
    a uint8 array ``[records, len(classes)]`` and the class names.

    Example:
        >>> matrix, classes = multi_hot([("MI", "NORM"), ("CD",)])
        >>> classes, matrix.tolist()
        (('CD', 'MI', 'NORM'), [[0, 1, 1], [1, 0, 0]])
    """
    records = list(label_series)
    names = tuple(sorted({label for labels in records for label in labels})) if classes is None else tuple(classes)
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be distinct, got {names}")
    column_of = {name: index for index, name in enumerate(names)}
    matrix = np.zeros((len(records), len(names)), dtype=np.uint8)
    for row, labels in enumerate(records):
        for label in labels:
            if label in column_of:
                matrix[row, column_of[label]] = 1
    return matrix, names


def split_folds(
    database: pd.DataFrame,
    *,
    train_folds: Iterable[int] = range(1, 9),
    validation_folds: Iterable[int] = (9,),
    test_folds: Iterable[int] = (10,),
) -> dict[str, np.ndarray]:
    """Split ``ecg_id`` by ``strat_fold`` (benchmark: 1-8 train, 9 validation, 10 test).

    Records in no listed fold are left out. Ids keep the database order.

    Raises:
        InputError: A fold is listed for two splits; UnsupportedFormat: no ``strat_fold``.

    Example:
        >>> database = pd.DataFrame({"strat_fold": [1, 9, 10, 8]}, index=[11, 12, 13, 14])
        >>> {name: ids.tolist() for name, ids in split_folds(database).items()}
        {'train': [11, 14], 'validation': [12], 'test': [13]}
    """
    _require_columns(database, ("strat_fold",), "PTB-XL database")
    folds = {"train": set(train_folds), "validation": set(validation_folds), "test": set(test_folds)}
    if sum(map(len, folds.values())) != len(set().union(*folds.values())):
        raise InputError(f"a fold is assigned to more than one split: {folds}")
    strat_fold = database["strat_fold"]
    return {name: np.asarray(database.index[strat_fold.isin(chosen)], dtype=np.int64) for name, chosen in folds.items()}


@dataclass(frozen=True, eq=False)
class PtbxlDataset:
    """One PTB-XL benchmark task: classes, label sets, folds and record paths; no identifiers.

    Attributes:
        folder: PTB-XL root folder (holds ``records100/`` and ``records500/``).
        task: One of :data:`TASKS`.
        sampling_rate: 100 or 500 Hz, which selects the record files.
        classes: Sorted class names (the multi-hot column order).
        labels: Sorted label tuple per ``ecg_id`` (records with at least one label).
        record_names: WFDB record path relative to ``folder`` per ``ecg_id`` (no extension).
        splits: ``ecg_id`` arrays for ``train``, ``validation`` and ``test``.
    """

    folder: Path
    task: str
    sampling_rate: int
    classes: tuple[str, ...]
    labels: pd.Series
    record_names: pd.Series
    splits: Mapping[str, np.ndarray]

    def record_path(self, ecg_id: int) -> Path:
        """WFDB record path (without extension) of one record, ready for ``read_wfdb``.

        Example:
            >>> dataset.record_path(1)  # doctest: +SKIP
            PosixPath('/data/ptb-xl/records100/00000/00001_lr')
        """
        if ecg_id not in self.record_names.index:
            raise KeyError(f"ecg_id {ecg_id} is not in the PTB-XL {self.task} task")
        return self.folder / str(self.record_names.loc[ecg_id])

    def targets(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ecg_ids, multi-hot uint8 [records, classes])`` of one split.

        Example:
            >>> ecg_ids, targets = dataset.targets("test")  # doctest: +SKIP
        """
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; choose one of {', '.join(self.splits)}")
        ecg_ids = self.splits[split]
        matrix, _ = multi_hot(self.labels.loc[ecg_ids], self.classes)
        return ecg_ids, matrix

    def summary(self) -> dict[str, Any]:
        """Counts per split and class as JSON types (no identifiers, no record paths).

        Example:
            >>> dataset.summary()["classes"]  # doctest: +SKIP
            ['CD', 'HYP', 'MI', 'NORM', 'STTC']
        """
        counts = {split: self.targets(split)[1].sum(axis=0).astype(int).tolist() for split in self.splits}
        return {
            "task": self.task, "sampling_rate": self.sampling_rate, "classes": list(self.classes),
            "records": {split: int(len(ids)) for split, ids in self.splits.items()},
            "class_counts": {split: dict(zip(self.classes, values)) for split, values in counts.items()},
        }


def load_ptbxl(
    source: str | Path,
    task: str = "superdiagnostic",
    *,
    sampling_rate: int = 100,
    statements: str | Path | pd.DataFrame | None = None,
    min_samples: int = 0,
    train_folds: Iterable[int] = range(1, 9),
    validation_folds: Iterable[int] = (9,),
    test_folds: Iterable[int] = (10,),
) -> PtbxlDataset:
    """Build one benchmark task from a PTB-XL folder (or its database CSV).

    Args:
        source: PTB-XL root folder, or a database CSV whose folder holds the records.
        task: One of :data:`TASKS`.
        sampling_rate: 100 (``filename_lr``) or 500 (``filename_hr``).
        statements: ``scp_statements.csv`` path or table; ``None`` takes the one beside the
            database, else the bundled copy.
        min_samples: See :func:`label_sets`.
        train_folds, validation_folds, test_folds: See :func:`split_folds`.

    Example:
        >>> dataset = load_ptbxl("/data/ptb-xl", "superdiagnostic")  # doctest: +SKIP
        >>> dataset.classes  # doctest: +SKIP
        ('CD', 'HYP', 'MI', 'NORM', 'STTC')
    """
    _check_sampling_rate(sampling_rate)
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    database = load_database(path)
    beside = folder / "scp_statements.csv"
    if statements is None:
        statements = beside if beside.is_file() else None
    statement_table = statements if isinstance(statements, pd.DataFrame) else load_scp_statements(statements)
    column = SAMPLING_RATES[sampling_rate]
    _require_columns(database, (column,), "PTB-XL database")
    labels = label_sets(database, statement_table, task, min_samples=min_samples)
    kept = database.loc[labels.index]
    if kept[column].isna().any():
        raise UnsupportedFormat(f"PTB-XL database: {column} is empty for ecg_id {kept.index[kept[column].isna()][0]}")
    splits = split_folds(kept, train_folds=train_folds, validation_folds=validation_folds, test_folds=test_folds)
    _, classes = multi_hot(labels)
    record_names = kept[column].astype(str).rename("record_name")
    return PtbxlDataset(folder, task, sampling_rate, classes, labels, record_names, splits)


def download_ptbxl(destination: str | Path, *, version: str = "1.0.3", sampling_rate: int = 100) -> Path:
    """Download PTB-XL from PhysioNet (https://physionet.org/content/ptb-xl/1.0.3/) with wfdb.

    Fetches the two metadata CSVs and the records of one sampling rate (about 1 GB at
    100 Hz). wfdb serves only the latest published version; for another one use
    ``wget -r -N -c -np https://physionet.org/files/ptb-xl/1.0.3/``. Never called by tests.

    Example:
        >>> download_ptbxl("/data/ptb-xl")  # doctest: +SKIP
        PosixPath('/data/ptb-xl')
    """
    import wfdb
    from wfdb.io.download import get_version

    _check_sampling_rate(sampling_rate)
    published = get_version("ptb-xl")
    if published != version:
        raise InputError(f"PhysioNet serves PTB-XL {published}, not {version}; fetch {version} with wget")
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.dl_files("ptb-xl", str(folder), ["ptbxl_database.csv", "scp_statements.csv"])
    records = [name for name in wfdb.get_record_list("ptb-xl") if name.startswith(f"records{sampling_rate}/")]
    wfdb.dl_database("ptb-xl", str(folder), records=records, annotators=None)
    return folder
