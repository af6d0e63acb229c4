"""PTB-XL label sets and folds on the real metadata subset, checked against independent counts.

The expected counts are computed here with the ``csv`` module and ``ast.literal_eval`` only,
following the benchmark's rules (Strodthoff et al. 2021, ``helme/ecg_ptbxl_benchmarking``:
``utils.compute_label_aggregations`` and ``select_data``), not by calling the module.
"""

from __future__ import annotations

import ast
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mayo_dx.ecg import ptbxl
from mayo_dx.errors import InputError, UnreadableFile, UnsupportedFormat

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PTBXL_FOLDER = SHARED_DATA / "ecg" / "ptbxl"
SUBSET_CSV = PTBXL_FOLDER / "ptbxl_database_subset.csv"
BUNDLED_STATEMENTS = Path(ptbxl.__file__).parent / "data" / "scp_statements.csv"
IDENTIFYING_COLUMNS = ("patient_id", "age", "sex", "height", "weight", "nurse", "site", "device", "recording_date", "report")


@pytest.fixture(scope="module")
def subset_csv() -> Path:
    if not SUBSET_CSV.is_file():
        pytest.skip(f"real PTB-XL metadata subset not present: {SUBSET_CSV} (see ../shared/data/README.md)")
    return SUBSET_CSV


@pytest.fixture(scope="module")
def statements_csv() -> Path:
    """The shared scp_statements.csv when it is there (its README lists it), else the bundled copy."""
    shared = PTBXL_FOLDER / "scp_statements.csv"
    return shared if shared.is_file() else BUNDLED_STATEMENTS


@pytest.fixture(scope="module")
def raw_rows(subset_csv: Path) -> list[dict[str, object]]:
    """ecg_id, strat_fold and parsed scp_codes of every row, read with plain Python."""
    with open(subset_csv, newline="") as handle:
        return [
            {"ecg_id": int(row["ecg_id"]), "fold": int(row["strat_fold"]), "codes": ast.literal_eval(row["scp_codes"])}
            for row in csv.DictReader(handle)
        ]


@pytest.fixture(scope="module")
def raw_statements(statements_csv: Path) -> dict[str, dict[str, str]]:
    with open(statements_csv, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return {row[0]: dict(zip(header[1:], row[1:])) for row in reader}


@pytest.fixture(scope="module")
def database(subset_csv: Path) -> pd.DataFrame:
    return ptbxl.load_database(subset_csv)


@pytest.fixture(scope="module")
def statements(statements_csv: Path) -> pd.DataFrame:
    return ptbxl.load_scp_statements(statements_csv)


def independent_label_counts(rows, raw_statements, flag: str, column: str | None) -> Counter:
    """Records per label: codes whose statement has ``flag == 1.0``, mapped through ``column``."""
    counts: Counter = Counter()
    for row in rows:
        labels = set()
        for code in row["codes"]:  # every code counts, likelihood 0.0 included
            statement = raw_statements.get(code)
            if statement and statement[flag] == "1.0":
                labels.add(statement[column] if column else code)
        counts.update(labels)
    return counts


def test_bundled_statements_have_71_rows_and_five_superclasses() -> None:
    statements = ptbxl.load_scp_statements()
    assert len(statements) == 71
    diagnostic = statements[statements["diagnostic"] == 1.0]
    assert sorted(diagnostic["diagnostic_class"].unique()) == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert statements.loc["NORM", "diagnostic_class"] == "NORM"
    assert (len(diagnostic), int(statements["form"].sum()), int(statements["rhythm"].sum())) == (44, 19, 12)


def test_record_1_is_norm_in_superdiagnostic(subset_csv: Path, statements_csv: Path) -> None:
    dataset = ptbxl.load_ptbxl(subset_csv, "superdiagnostic", statements=statements_csv)
    assert dataset.labels.loc[1] == ("NORM",)
    assert dataset.classes == ("CD", "HYP", "MI", "NORM", "STTC")
    assert dataset.record_path(1) == PTBXL_FOLDER / "records100" / "00000" / "00001_lr"
    ids, targets = dataset.targets("train" if 1 in dataset.splits["train"] else "test")
    assert targets.dtype == np.uint8 and targets[list(ids).index(1)].tolist() == [0, 0, 0, 1, 0]


def test_superdiagnostic_counts_match_an_independent_count(database, statements, raw_rows, raw_statements) -> None:
    expected = independent_label_counts(raw_rows, raw_statements, "diagnostic", "diagnostic_class")
    labels = ptbxl.label_sets(database, statements, "superdiagnostic")
    matrix, classes = ptbxl.multi_hot(labels)
    assert classes == ("CD", "HYP", "MI", "NORM", "STTC")
    assert dict(zip(classes, matrix.sum(axis=0).tolist())) == dict(expected)
    assert sum(expected.values()) > 2500


@pytest.mark.parametrize(
    ("task", "flag", "column", "classes"),
    [
        ("subdiagnostic", "diagnostic", "diagnostic_subclass", ("IMI", "LVH", "STTC", "_AVB")),
        ("diagnostic", "diagnostic", None, ("IMI", "NDT", "LAFB")),
        ("form", "form", None, ("NDT", "PVC", "LVOLT")),
        ("rhythm", "rhythm", None, ("SR", "AFIB", "STACH")),
    ],
)
def test_task_counts_match_an_independent_count(database, statements, raw_rows, raw_statements, task, flag, column, classes) -> None:
    expected = independent_label_counts(raw_rows, raw_statements, flag, column)
    labels = ptbxl.label_sets(database, statements, task)
    counted = Counter(label for record in labels for label in record)
    assert counted == expected  # every class, benchmark min_samples=0 keeps all seen labels
    for name in classes:
        assert counted[name] == expected[name] > 0, name


def test_all_task_keeps_every_code_and_every_record(database, statements, raw_rows) -> None:
    labels = ptbxl.label_sets(database, statements, "all")
    expected = Counter(code for row in raw_rows for code in set(row["codes"]))
    assert len(labels) == len(raw_rows)
    assert Counter(code for record in labels for code in record) == expected


def test_folds_are_disjoint_and_follow_strat_fold(database, raw_rows) -> None:
    splits = ptbxl.split_folds(database)
    fold_of = {row["ecg_id"]: row["fold"] for row in raw_rows}
    train, validation, test = (set(splits[name].tolist()) for name in ptbxl.SPLITS)
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == set(fold_of)
    assert all(1 <= fold_of[ecg_id] <= 8 for ecg_id in train)
    assert {fold_of[ecg_id] for ecg_id in validation} == {9}
    assert {fold_of[ecg_id] for ecg_id in test} == {10}
    custom = ptbxl.split_folds(database, train_folds=(1, 2), validation_folds=(3,), test_folds=(4,))
    assert {fold_of[ecg_id] for ecg_id in custom["validation"]} == {3}
    assert len(custom["train"]) == sum(fold in (1, 2) for fold in fold_of.values())
    with pytest.raises(InputError, match="more than one split"):
        ptbxl.split_folds(database, train_folds=range(1, 10))


@pytest.mark.parametrize("task", ["diagnostic", "subdiagnostic", "superdiagnostic"])
def test_records_without_a_diagnostic_code_are_dropped(subset_csv, statements_csv, raw_rows, raw_statements, task) -> None:
    diagnostic_codes = {code for code, statement in raw_statements.items() if statement["diagnostic"] == "1.0"}
    without = {row["ecg_id"] for row in raw_rows if not set(row["codes"]) & diagnostic_codes}
    assert without, "the subset should hold records without any diagnostic statement"
    dataset = ptbxl.load_ptbxl(subset_csv, task, statements=statements_csv)
    kept = set(dataset.labels.index)
    assert not kept & without
    assert len(kept) == len(raw_rows) - len(without)
    assert set().union(*(set(ids.tolist()) for ids in dataset.splits.values())) == kept


def test_summary_holds_counts_and_no_patient_identifiers(subset_csv: Path) -> None:
    dataset = ptbxl.load_ptbxl(subset_csv, "rhythm", sampling_rate=500)
    summary = dataset.summary()
    text = json.dumps(summary)
    assert summary["records"]["train"] + summary["records"]["validation"] + summary["records"]["test"] == len(dataset.labels)
    assert summary["class_counts"]["test"]["SR"] > 0
    for column in IDENTIFYING_COLUMNS:
        assert column not in text
    assert "records500" not in text  # no record paths either
    assert dataset.labels.name == "rhythm" and dataset.record_names.name == "record_name"
    assert str(dataset.record_path(1)).endswith("records500/00000/00001_hr")


def test_missing_scp_codes_column_raises_typed_error(subset_csv: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ptbxl_database.csv"
    pd.read_csv(subset_csv).drop(columns="scp_codes").to_csv(broken, index=False)
    with pytest.raises(UnsupportedFormat, match="scp_codes"):
        ptbxl.load_database(broken)
    with pytest.raises(InputError):
        ptbxl.load_ptbxl(tmp_path)


def test_unreadable_and_malformed_files_raise_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no such file"):
        ptbxl.load_database(tmp_path)  # folder without ptbxl_database.csv
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UnreadableFile):
        ptbxl.load_database(empty)
    with pytest.raises(UnreadableFile):
        ptbxl.load_scp_statements(empty)
    bad_codes = tmp_path / "bad_codes.csv"
    bad_codes.write_text('ecg_id,scp_codes,strat_fold\n1,"{\'NORM\': 100.0}",1\n2,"__import__(\'os\')",1\n')
    with pytest.raises(UnsupportedFormat, match="ecg_id 2"):
        ptbxl.load_database(bad_codes)
    bad_fold = tmp_path / "bad_fold.csv"
    bad_fold.write_text('ecg_id,scp_codes,strat_fold\n1,"{}",one\n')
    with pytest.raises(UnsupportedFormat, match="strat_fold"):
        ptbxl.load_database(bad_fold)
    no_class = tmp_path / "statements.csv"
    no_class.write_text(",description,diagnostic,form,rhythm\nNORM,normal ECG,1.0,,\n")
    with pytest.raises(UnsupportedFormat, match="diagnostic_class"):
        ptbxl.load_scp_statements(no_class)


def test_unknown_task_and_sampling_rate_raise(database, statements, subset_csv: Path) -> None:
    with pytest.raises(InputError, match="unknown PTB-XL task 'superclass'"):
        ptbxl.label_sets(database, statements, "superclass")
    with pytest.raises(InputError, match="unknown PTB-XL task"):
        ptbxl.load_ptbxl(subset_csv, "diagnostics")
    with pytest.raises(InputError, match="100 or 500 Hz"):
        ptbxl.load_ptbxl(subset_csv, sampling_rate=250)


def write_synthetic_database(folder: Path) -> None:
    rows = [
        (1, "{'NORM': 0.0, 'SR': 0.0}", 1),  # likelihood 0.0 still counts (benchmark)
        (2, "{'SR': 100.0}", 9),  # no diagnostic code: dropped from diagnostic tasks
        (3, "{'IMI': 15.0, 'LVH': 0.0, 'AFIB': 0.0}", 10),
        (4, "{'NORM': 100.0}", 5),
    ]
    lines = ["ecg_id,patient_id,age,sex,report,scp_codes,strat_fold,filename_lr,filename_hr"]
    for ecg_id, codes, fold in rows:
        name = f"{ecg_id:05d}"
        lines.append(
            f'{ecg_id},{900 + ecg_id},63,1,private text,"{codes}",{fold},records100/00000/{name}_lr,records500/00000/{name}_hr'
        )
    (folder / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")


def test_synthetic_database_zero_likelihood_codes_count(tmp_path: Path) -> None:
    write_synthetic_database(tmp_path)
    dataset = ptbxl.load_ptbxl(tmp_path, "superdiagnostic")
    assert dataset.labels.to_dict() == {1: ("NORM",), 3: ("HYP", "MI"), 4: ("NORM",)}
    assert dataset.classes == ("HYP", "MI", "NORM")
    assert {name: ids.tolist() for name, ids in dataset.splits.items()} == {"train": [1, 4], "validation": [], "test": [3]}
    assert dataset.targets("test")[1].tolist() == [[1, 1, 0]]
    assert dataset.record_path(3) == tmp_path / "records100" / "00000" / "00003_lr"
    with pytest.raises(KeyError):
        dataset.record_path(2)
    rhythm = ptbxl.load_ptbxl(tmp_path, "rhythm")
    assert rhythm.labels.to_dict() == {1: ("SR",), 2: ("SR",), 3: ("AFIB",)}
    assert ptbxl.load_ptbxl(tmp_path, "diagnostic").labels.to_dict() == {1: ("NORM",), 3: ("IMI", "LVH"), 4: ("NORM",)}
    assert "private" not in json.dumps(dataset.summary()) and "patient_id" not in json.dumps(dataset.summary())


def test_min_samples_keeps_labels_seen_more_often_except_for_diagnostic(tmp_path: Path) -> None:
    write_synthetic_database(tmp_path)
    database, statements = ptbxl.load_database(tmp_path), ptbxl.load_scp_statements()
    # NORM appears twice, HYP and MI once: the benchmark keeps counts strictly above min_samples.
    assert ptbxl.label_sets(database, statements, "superdiagnostic", min_samples=1).to_dict() == {1: ("NORM",), 4: ("NORM",)}
    assert ptbxl.label_sets(database, statements, "superdiagnostic", min_samples=2).empty
    # select_data applies no count filter to the "diagnostic" task.
    assert len(ptbxl.label_sets(database, statements, "diagnostic", min_samples=5)) == 3


def test_multi_hot_orders_classes_like_multilabel_binarizer() -> None:
    matrix, classes = ptbxl.multi_hot(pd.Series([("STTC", "MI"), ("NORM",), ()]))
    assert classes == ("MI", "NORM", "STTC")
    assert matrix.dtype == np.uint8 and matrix.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    matrix, classes = ptbxl.multi_hot([("MI", "unseen")], classes=("NORM", "MI"))
    assert classes == ("NORM", "MI") and matrix.tolist() == [[0, 1]]
    with pytest.raises(ValueError):
        ptbxl.multi_hot([("MI",)], classes=("MI", "MI"))
