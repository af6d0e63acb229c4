"""MSD Task07-shaped folders: the synthetic writer, and the Decathlon reader on it and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mayo_dx.errors import PathNotAllowed, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.msd import (
    case_has_cancer,
    load_msd_case,
    map_msd_labels,
    msd_cancer_labels,
    read_msd_dataset,
)
from mayo_dx.imaging.nifti import write_nifti
from mayo_dx.imaging.phantom import PhantomTruth
from mayo_dx.imaging.phantom_io import write_msd_pancreas

N_TRAINING, N_TEST = 6, 2


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, PhantomTruth]]:
    folder = tmp_path_factory.mktemp("Task07_Pancreas")
    truths = write_msd_pancreas(folder, N_TRAINING, seed=3, n_test=N_TEST, shape=(32, 64, 64))
    return folder, truths


@pytest.fixture()
def copy(written: tuple[Path, dict[str, PhantomTruth]], tmp_path: Path) -> Path:
    """A private copy of the task folder to break."""
    return Path(shutil.copytree(written[0], tmp_path / "task"))


def _edit_json(folder: Path, change) -> None:
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_dataset_json_has_the_task07_fields(written: tuple[Path, dict[str, PhantomTruth]]) -> None:
    folder, truths = written
    data = json.loads((folder / "dataset.json").read_text())
    assert data["name"] == "Pancreas" and data["tensorImageSize"] == "3D"
    assert {"description", "reference", "licence", "relase"} <= set(data)
    assert data["modality"] == {"0": "CT"}
    assert data["labels"] == {"0": "background", "1": "pancreas", "2": "cancer"}
    assert (data["numTraining"], data["numTest"]) == (N_TRAINING, N_TEST)
    assert len(data["training"]) == N_TRAINING and len(data["test"]) == N_TEST
    for entry in data["training"]:
        assert set(entry) == {"image", "label"}
        assert entry["image"].startswith("./imagesTr/pancreas_") and entry["image"].endswith(".nii.gz")
        assert entry["label"] == entry["image"].replace("imagesTr", "labelsTr")
        assert (folder / entry["image"]).is_file() and (folder / entry["label"]).is_file()
    assert all(path.startswith("./imagesTs/pancreas_") and (folder / path).is_file() for path in data["test"])
    assert not (folder / "labelsTs").exists()
    assert set(json.loads((folder / "phantom_truth.json").read_text())) == set(truths)


def test_half_of_each_split_has_cancer_and_numbers_interleave(written: tuple[Path, dict[str, PhantomTruth]]) -> None:
    _, truths = written
    training, test = list(truths)[:N_TRAINING], list(truths)[N_TRAINING:]
    assert sum(truths[case].has_cancer for case in training) == N_TRAINING // 2
    assert sum(truths[case].has_cancer for case in test) == N_TEST // 2
    numbers = sorted(int(case.split("_")[1]) for case in truths)
    assert numbers == list(range(1, N_TRAINING + N_TEST + 1))
    assert {len(truths[case].lesions) for case in truths} == {0, 1}


def test_reader_lists_every_case(written: tuple[Path, dict[str, PhantomTruth]]) -> None:
    folder, truths = written
    dataset = read_msd_dataset(folder)
    assert dataset.name == "Pancreas" and dataset.modality == {0: "CT"} and dataset.warnings == ()
    assert dataset.labels == {0: "background", 1: "pancreas", 2: "cancer"}
    assert dataset.label_mapping == {0: 0, 1: 1, 2: 2} and dataset.lesion_values == (2,)
    assert [case.case_id for case in dataset.cases] == list(truths)
    assert all(case.label_path is not None and case.split == "training" for case in dataset.training)
    assert all(case.label_path is None and case.split == "test" for case in dataset.test)
    assert all(case.image_path.is_absolute() and case.image_path.is_file() for case in dataset.cases)
    assert dataset.fields["tensorImageSize"] == "3D" and dataset.fields["numTraining"] == N_TRAINING
    with pytest.raises(KeyError):
        dataset.case("pancreas_999")


def test_cases_load_aligned_with_labels_matching_the_truth(written: tuple[Path, dict[str, PhantomTruth]]) -> None:
    folder, truths = written
    dataset = read_msd_dataset(folder)
    assert msd_cancer_labels(dataset) == {case.case_id: int(truths[case.case_id].has_cancer) for case in dataset.training}
    for case in dataset.training:
        data = load_msd_case(dataset, case)
        truth = truths[case.case_id]
        assert data.labels is not None and data.labels.shape == data.volume.shape == (32, 64, 64)
        assert data.labels.dtype == np.uint8 and data.has_cancer == truth.has_cancer
        voxel_ml = float(np.prod(data.volume.spacing)) / 1000
        assert (data.labels == 1).sum() * voxel_ml == pytest.approx(truth.pancreas_volume_ml, abs=1e-3)
        assert (data.labels == 2).sum() * voxel_ml == pytest.approx(sum(l.volume_ml for l in truth.lesions), abs=1e-3)
    test_case = load_msd_case(dataset, dataset.test[0].case_id)
    assert test_case.labels is None and test_case.has_cancer is None and test_case.volume.hu.dtype == np.int16


def test_label_names_map_to_the_convention() -> None:
    assert map_msd_labels({0: "background", 1: "Pancreas", 2: "cancer"}) == {0: 0, 1: 1, 2: 2}
    assert map_msd_labels({0: "Background", 1: "pancreas", 2: "Tumour", 3: "PDAC"}) == {0: 0, 1: 1, 2: 2, 3: 2}
    assert map_msd_labels({0: "bg", 4: "pancreatic_tumor", 9: "pancreas-parenchyma"}) == {0: 0, 4: 2, 9: 1}
    assert map_msd_labels({0: "background", 1: "organ"}, overrides={"Organ": 1}) == {0: 0, 1: 1}
    with pytest.raises(UnsupportedFormat, match="liver"):
        map_msd_labels({0: "background", 1: "liver"})


def test_case_level_cancer_label() -> None:
    labels = np.zeros((2, 3, 3), dtype=np.uint8)
    assert not case_has_cancer(labels)
    labels[1, 1, 1] = 1
    assert not case_has_cancer(labels)
    labels[0, 0, 0] = 2
    assert case_has_cancer(labels) and not case_has_cancer(labels, (5,))


def test_nnunet_style_labels_and_remapped_values(copy: Path) -> None:
    _edit_json(copy, lambda data: data.update(labels={"background": 0, "pancreas": 1, "tumour": 2}))
    assert read_msd_dataset(copy).label_mapping == {0: 0, 1: 1, 2: 2}
    _edit_json(copy, lambda data: data.update(labels={"0": "background", "1": "cancer", "2": "pancreas"}))
    dataset = read_msd_dataset(copy)
    swapped = load_msd_case(dataset, dataset.training[0]).labels
    assert set(np.unique(swapped).tolist()) <= {0, 1, 2} and (swapped == 2).sum() > 0  # pancreas is now 2


def test_count_mismatch_is_a_warning(copy: Path) -> None:
    _edit_json(copy, lambda data: data.update(numTraining=99))
    assert any("numTraining" in warning for warning in read_msd_dataset(copy).warnings)


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        (lambda folder: shutil.rmtree(folder), UnreadableFile, "no such folder"),
        (lambda folder: (folder / "dataset.json").unlink(), UnreadableFile, "no dataset.json"),
        (lambda folder: (folder / "dataset.json").write_text("{not json"), UnreadableFile, "not valid JSON"),
        (lambda folder: (folder / "dataset.json").write_text("[]"), UnsupportedFormat, "expected an object"),
        (lambda folder: _edit_json(folder, lambda d: d.pop("training")), UnsupportedFormat, "'training'"),
        (lambda folder: _edit_json(folder, lambda d: d.update(labels=[])), UnsupportedFormat, "'labels'"),
        (lambda folder: _edit_json(folder, lambda d: d["training"][0].pop("label")), UnsupportedFormat, "training\\[0\\]"),
        (lambda folder: _edit_json(folder, lambda d: d.update(labels={"1": "spleen"})), UnsupportedFormat, "spleen"),
        (lambda folder: next((folder / "imagesTr").iterdir()).unlink(), UnreadableFile, "missing"),
        (lambda folder: _edit_json(folder, lambda d: d["test"].append("../outside.nii.gz")), PathNotAllowed, "outside"),
        (lambda folder: _edit_json(folder, lambda d: d["test"].append("/tmp/x.nii.gz")), PathNotAllowed, "absolute"),
        (lambda folder: _edit_json(folder, lambda d: d["test"].append(d["test"][0])), UnsupportedFormat, "more than once"),
    ],
)
def test_broken_folders_raise_typed_errors(copy: Path, breakage, error: type[Exception], message: str) -> None:
    breakage(copy)
    with pytest.raises(error, match=message):
        read_msd_dataset(copy)


def test_undeclared_label_values_and_corrupt_files_are_refused(copy: Path) -> None:
    dataset = read_msd_dataset(copy)
    case = dataset.training[0]
    volume = load_msd_case(dataset, case).volume
    bad = np.zeros(volume.shape, dtype=np.uint8)
    bad[0, 0, 0] = 7
    write_nifti(bad, case.label_path, like=volume)
    with pytest.raises(UnsupportedFormat, match=r"\[7\]"):
        load_msd_case(dataset, case)
    case.image_path.write_bytes(b"not a nifti file")
    with pytest.raises(UnreadableFile):
        load_msd_case(dataset, case)
