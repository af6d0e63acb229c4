"""Medical Segmentation Decathlon (MSD) layout: Task07_Pancreas and folders shaped like it.

A Decathlon task folder holds ``dataset.json``, ``imagesTr/`` and ``labelsTr/`` (training
images with label maps) and ``imagesTs/`` (test images without labels), all NIfTI.
:func:`read_msd_dataset` validates ``dataset.json`` (required fields and types, paths resolved
relative to the folder and kept inside it, files present) and returns a typed
:class:`MsdDataset`; files are taken from the json, never from a directory listing (the real
archive carries macOS ``._pancreas_XXX.nii.gz`` debris). Label names are mapped to mayo-dx's
convention (0 background, 1 pancreas, 2 lesion) whatever values and names a dataset uses
(``cancer``, ``tumour``, ``tumor``, ``lesion``, ``mass``...), and a case is cancer-positive
when any voxel carries a lesion label. Both label orientations are read: MSD's
``{"0": "background"}`` and nnU-Net v2's ``{"background": 0}``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from mayo_dx.imaging.phantom_io import write_msd_pancreas
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_msd_pancreas(folder, 2, seed=0, n_test=1, shape=(16, 48, 48))
    >>> dataset = read_msd_dataset(folder)
    >>> dataset.name, len(dataset.training), len(dataset.test), dataset.label_mapping
    ('Pancreas', 2, 1, {0: 0, 1: 1, 2: 2})
    >>> case = load_msd_case(dataset, dataset.training[0].case_id)
    >>> case.volume.shape == case.labels.shape, case.has_cancer in (True, False)
    (True, True)
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from mayo_dx.errors import PathNotAllowed, UnreadableFile, UnsupportedFormat
from mayo_dx.imaging.nifti import read_nifti, read_nifti_labels
from mayo_dx.imaging.volume import CtVolume

__all__ = [
    "CONVENTION",
    "MsdCase",
    "MsdCaseData",
    "MsdDataset",
    "case_has_cancer",
    "load_msd_case",
    "map_msd_labels",
    "msd_cancer_labels",
    "read_msd_dataset",
]

#: mayo-dx's label convention for pancreas segmentation (as MSD Task07: 2 is "cancer" there).
CONVENTION: Mapping[str, int] = MappingProxyType({"background": 0, "pancreas": 1, "lesion": 2})
_NAME_PATTERNS = (  # (pattern on the normalised name, convention value); first match wins
    (r"^(background|bg|none|unlabel+ed|clear label)$", 0),
    (r"(cancer|tumou?r|lesion|mass|neoplasm|carcinoma|pdac|cyst|nodule)", 2),
    (r"^(pancreas|pancreatic parenchyma|pancreas parenchyma|parenchyma|normal pancreas|pancreatic gland|gland)$", 1),
)


@dataclass(frozen=True)
class MsdCase:
    """One case of a Decathlon dataset.

    Attributes:
        case_id: The file name without ``.nii.gz`` (e.g. ``pancreas_001``).
        image_path: Absolute path of the image.
        label_path: Absolute path of the label map (None for test cases).
        split: ``"training"`` or ``"test"``.
    """

    case_id: str
    image_path: Path
    label_path: Path | None
    split: str


@dataclass(frozen=True)
class MsdDataset:
    """A validated Decathlon ``dataset.json`` with its folder.

    Attributes:
        root: The task folder.
        name: ``name`` field (e.g. ``Pancreas``).
        description: ``description`` field ("" when absent).
        modality: Channel index to modality (e.g. ``{0: "CT"}``).
        labels: Label value to name, as the dataset states them.
        label_mapping: Label value to mayo-dx convention (0 background, 1 pancreas, 2 lesion).
        training: Training cases (with labels), in json order.
        test: Test cases (without labels), in json order.
        fields: Every other top-level field (reference, licence, release, tensorImageSize...).
        warnings: Inconsistencies found that do not stop reading (e.g. a wrong numTraining).
    """

    root: Path
    name: str
    description: str
    modality: Mapping[int, str]
    labels: Mapping[int, str]
    label_mapping: Mapping[int, int]
    training: tuple[MsdCase, ...]
    test: tuple[MsdCase, ...]
    fields: Mapping[str, Any]
    warnings: tuple[str, ...] = ()

    @property
    def cases(self) -> tuple[MsdCase, ...]:
        """Training then test cases."""
        return self.training + self.test

    @property
    def lesion_values(self) -> tuple[int, ...]:
        """Dataset label values that mean a lesion (mapped to 2)."""
        return tuple(value for value, mapped in self.label_mapping.items() if mapped == CONVENTION["lesion"])

    def case(self, case_id: str) -> MsdCase:
        """The case with this id (KeyError when absent)."""
        for item in self.cases:
            if item.case_id == case_id:
                return item
        raise KeyError(f"no case {case_id!r} in {self.root.name}")


@dataclass(frozen=True)
class MsdCaseData:
    """A loaded case: the volume and, for training cases, labels in mayo-dx's convention.

    Attributes:
        case: The case.
        volume: The CT volume (HU, LPS ``[z, y, x]``).
        labels: uint8 ``[z, y, x]`` (0 background, 1 pancreas, 2 lesion), or None for test cases.
        has_cancer: True when any voxel is a lesion; None without labels.
    """

    case: MsdCase
    volume: CtVolume
    labels: np.ndarray | None
    has_cancer: bool | None


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def map_msd_labels(labels: Mapping[int, str], overrides: Mapping[str, int] | None = None) -> dict[int, int]:
    """Map a dataset's label values to mayo-dx's convention (0 background, 1 pancreas, 2 lesion).

    Args:
        labels: Dataset value to name, e.g. ``{0: "background", 1: "pancreas", 2: "cancer"}``.
        overrides: Name to convention value for names the built-in rules do not know.

    Returns:
        Dataset value to convention value.

    Raises:
        UnsupportedFormat: A name that neither the rules nor ``overrides`` map.

    Example:
        >>> map_msd_labels({0: "background", 1: "Pancreas", 2: "Tumour"})
        {0: 0, 1: 1, 2: 2}
        >>> map_msd_labels({0: "bg", 5: "pancreatic tumor", 7: "pancreas"})
        {0: 0, 5: 2, 7: 1}
    """
    extra = {_normalise(name): int(value) for name, value in (overrides or {}).items()}
    mapping: dict[int, int] = {}
    unknown = []
    for value, name in labels.items():
        key = _normalise(str(name))
        if key in extra:
            mapping[int(value)] = extra[key]
            continue
        for pattern, target in _NAME_PATTERNS:
            if re.search(pattern, key):
                mapping[int(value)] = target
                break
        else:
            unknown.append(f"{value}: {name!r}")
    if unknown:
        raise UnsupportedFormat(
            f"unknown label names {', '.join(unknown)}; pass overrides={{name: 0|1|2}} (0 background, 1 pancreas, 2 lesion)"
        )
    return mapping


def _load_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not root.is_dir():
        raise UnreadableFile(f"{root}: no such folder")
    if not path.is_file():
        raise UnreadableFile(f"{root.name}: no dataset.json (not a Decathlon task folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableFile(f"{root.name}/dataset.json is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise UnsupportedFormat(f"{root.name}/dataset.json: expected an object, got {type(data).__name__}")
    return data


def _int_keyed(value: Any, field: str) -> dict[int, str]:
    """``{"0": "CT"}`` (MSD) or ``{"CT": 0}`` (nnU-Net v2) -> ``{0: "CT"}``."""
    if not isinstance(value, dict) or not value:
        raise UnsupportedFormat(f"dataset.json: {field!r} must be a non-empty object")
    result: dict[int, str] = {}
    for key, item in value.items():
        if str(key).strip().lstrip("-").isdigit() and isinstance(item, str):
            result[int(key)] = item
        elif isinstance(item, int) and not isinstance(item, bool):
            result[int(item)] = str(key)
        else:
            raise UnsupportedFormat(f"dataset.json: {field!r} entry {key!r}: {item!r} is not a value/name pair")
    return result


def _resolve(root: Path, entry: Any, where: str) -> Path:
    """``./imagesTr/x.nii.gz`` -> absolute path under ``root`` (checked lexically: symlinks allowed)."""
    if not isinstance(entry, str) or not entry.strip():
        raise UnsupportedFormat(f"dataset.json: {where} must be a path string, got {entry!r}")
    relative = Path(os.path.normpath(entry.strip().replace("\\", "/")))
    if relative.is_absolute():
        raise PathNotAllowed(f"dataset.json: {where} {entry!r} is absolute; Decathlon paths are relative ('./imagesTr/...')")
    if relative.parts and relative.parts[0] == "..":
        raise PathNotAllowed(f"dataset.json: {where} {entry!r} points outside the task folder")
    return root.absolute() / relative


def _case_id(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_msd_dataset(
    folder: str | Path, *, label_overrides: Mapping[str, int] | None = None, check_files: bool = True
) -> MsdDataset:
    """Read and validate a Decathlon task folder (``dataset.json`` and its files).

    Args:
        folder: The task folder (e.g. ``Task07_Pancreas``).
        label_overrides: Label name to convention value for unusual names.
        check_files: Require every listed file to exist (default).

    Returns:
        The dataset, with cases in json order.

    Raises:
        UnreadableFile: Missing folder, missing or unparsable ``dataset.json``, missing files.
        UnsupportedFormat: Missing or mistyped fields, unknown label names.
        PathNotAllowed: A listed path is absolute or escapes the folder.

    Example:
        >>> import tempfile
        >>> read_msd_dataset(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        mayo_dx.errors.UnreadableFile: ... no dataset.json (not a Decathlon task folder?)
    """
    root = Path(folder)
    data = _load_json(root)
    for field, kind in (("name", str), ("labels", dict), ("training", list)):
        if not isinstance(data.get(field), kind):
            raise UnsupportedFormat(f"dataset.json: field {field!r} is missing or not a {kind.__name__}")
    labels = _int_keyed(data["labels"], "labels")
    modality = _int_keyed(data["modality"], "modality") if "modality" in data else {}
    warnings = [] if modality else ["dataset.json has no 'modality' field"]
    training = []
    for number, entry in enumerate(data["training"]):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise UnsupportedFormat(f"dataset.json: training[{number}] must be an object with 'image' and 'label'")
        image = _resolve(root, entry["image"], f"training[{number}].image")
        label = _resolve(root, entry["label"], f"training[{number}].label")
        training.append(MsdCase(_case_id(image), image, label, "training"))
    test = []
    for number, entry in enumerate(data.get("test") or []):
        path = entry.get("image") if isinstance(entry, dict) else entry  # some variants use objects
        image = _resolve(root, path, f"test[{number}]")
        test.append(MsdCase(_case_id(image), image, None, "test"))
    for field, count in (("numTraining", len(training)), ("numTest", len(test))):
        if field in data and data[field] != count:
            warnings.append(f"dataset.json says {field} = {data[field]!r} but lists {count}")
    identifiers = [case.case_id for case in training + test]
    if len(set(identifiers)) != len(identifiers):
        raise UnsupportedFormat("dataset.json lists the same case more than once")
    if check_files:
        missing = [str(path.relative_to(root.absolute())) for case in training + test
                   for path in (case.image_path, case.label_path) if path is not None and not path.is_file()]  # fmt: skip
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise UnreadableFile(f"{root.name}: {len(missing)} listed files are missing: {', '.join(missing[:5])}{more}")
    known = {"name", "description", "labels", "modality", "training", "test"}
    return MsdDataset(
        root=root,
        name=data["name"],
        description=str(data.get("description", "")),
        modality=modality,
        labels=labels,
        label_mapping=map_msd_labels(labels, label_overrides),
        training=tuple(training),
        test=tuple(test),
        fields={key: value for key, value in data.items() if key not in known},
        warnings=tuple(warnings),
    )


def case_has_cancer(labels: np.ndarray, lesion_values: tuple[int, ...] = (2,)) -> bool:
    """Case-level label: True when any voxel carries a lesion value.

    Example:
        >>> labels = np.zeros((2, 2, 2), np.uint8); labels[0, 0, 0] = 2
        >>> case_has_cancer(labels), case_has_cancer(labels, (3,))
        (True, False)
    """
    return bool(np.isin(labels, lesion_values).any())


def _to_convention(raw: np.ndarray, dataset: MsdDataset, name: str) -> np.ndarray:
    present = np.unique(raw)
    unexpected = [int(value) for value in present if int(value) not in dataset.label_mapping]
    if unexpected:
        raise UnsupportedFormat(f"{name}: label values {unexpected} are not declared in dataset.json")
    lookup = np.zeros(int(present.max()) + 1 if present.size else 1, dtype=np.uint8)
    for value, mapped in dataset.label_mapping.items():
        if value < lookup.size:
            lookup[value] = mapped
    return lookup[raw]


def load_msd_case(dataset: MsdDataset, case: MsdCase | str) -> MsdCaseData:
    """Load a case's image and (for training cases) labels mapped to mayo-dx's convention.

    Raises:
        UnreadableFile: A missing or corrupt NIfTI file.
        GeometryError: Labels that do not align with the image.
        UnsupportedFormat: Label values that ``dataset.json`` does not declare.

    Example:
        >>> import tempfile
        >>> from mayo_dx.imaging.phantom_io import write_msd_pancreas
        >>> folder = tempfile.mkdtemp()
        >>> _ = write_msd_pancreas(folder, 1, seed=1, n_test=1, shape=(8, 32, 32))
        >>> dataset = read_msd_dataset(folder)
        >>> load_msd_case(dataset, dataset.test[0]).labels is None
        True
    """
    item = dataset.case(case) if isinstance(case, str) else case
    volume = read_nifti(item.image_path)
    if item.label_path is None:
        return MsdCaseData(item, volume, None, None)
    labels = _to_convention(read_nifti_labels(item.label_path, like=volume), dataset, item.label_path.name)
    labels.flags.writeable = False
    return MsdCaseData(item, volume, labels, case_has_cancer(labels))


def msd_cancer_labels(dataset: MsdDataset) -> dict[str, int]:
    """Case-level labels (1 cancer, 0 none) of every training case, reading label maps only.

    Example:
        >>> import tempfile
        >>> from mayo_dx.imaging.phantom_io import write_msd_pancreas
        >>> folder = tempfile.mkdtemp()
        >>> truth = write_msd_pancreas(folder, 2, seed=2, n_test=1, shape=(8, 32, 32), cancer_fraction=0.5)
        >>> sorted(msd_cancer_labels(read_msd_dataset(folder)).values())
        [0, 1]
    """
    result = {}
    for case in dataset.training:
        raw = read_nifti_labels(case.label_path)  # type: ignore[arg-type]
        result[case.case_id] = int(case_has_cancer(raw, dataset.lesion_values))
    return result
