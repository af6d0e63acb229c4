"""CT training cases and their on-disk cache of preprocessed volumes (memory-mapped ``.npy``).

A :class:`CtCase` points at an image (NIfTI or DICOM folder), optionally a label map (0
background, 1 pancreas, 2 lesion) and a case label (1 cancer, 0 none). Cases come from a
Decathlon folder (:func:`cases_from_msd`) or a manifest CSV (:func:`cases_from_manifest`,
columns ``image``, optional ``label``, optional ``cancer``, optional ``case_id``; relative
paths resolve against the CSV's folder).

:class:`VolumeCache` runs the shared numpy preprocessing
(:func:`~mayo_dx.imaging.resample.preprocess_ct`) once per case and stage and keeps the result
under ``<root>/<stage>-<fingerprint>/``: ``<case>.image.npy`` (float32), ``<case>.labels.npy``
(uint8) and ``<case>.json`` (case label, lesion size, foreground boxes). The fingerprint hashes
the preprocessing parameters, the stage settings and each source file's size and time, so a
changed recipe or file is rebuilt, never reused. Readers open the arrays with
``mmap_mode="r"``: a training patch reads only its own pages, and no process holds every volume.

Stages:

* ``"localiser"``: the whole volume at the stage spacing; labels reduced to gland (1) vs 0.
* ``"analyser"``: the gland's bounding box (from the label map, or from ``box_provider`` for
  unlabelled cases, e.g. the trained localiser), widened by ``context_mm`` (room for jitter)
  and by ``CtPreprocessing.crop_margin_mm`` inside :func:`preprocess_ct`.

Example:
    >>> import tempfile
    >>> from mayo_dx.imaging.phantom_io import write_msd_pancreas
    >>> folder = tempfile.mkdtemp()
    >>> _ = write_msd_pancreas(folder, 2, seed=0, n_test=1, shape=(16, 48, 48), cancer_fraction=0.5)
    >>> cases = cases_from_msd(folder)
    >>> cache = VolumeCache(tempfile.mkdtemp(), "localiser", CtPreprocessing(target_spacing=(8.0, 8.0, 8.0)))
    >>> image, labels, meta = cache.load(cases[0])
    >>> image.dtype.name, type(image).__name__, sorted(set(labels.ravel().tolist())), cache.built
    ('float32', 'memmap', [0, 1], 1)
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mayo_dx.errors import InputError, UnreadableFile
from mayo_dx.imaging.measure import measure_labels
from mayo_dx.imaging.msd import msd_cancer_labels, read_msd_dataset
from mayo_dx.imaging.nifti import read_nifti_labels
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct, preprocess_labels
from mayo_dx.imaging.volume import CtVolume, Grid

__all__ = [
    "STAGES", "CtCase", "VolumeCache", "WorldBox", "cases_from_manifest", "cases_from_msd", "gland_world_box",
    "split_cases",
]

STAGES = ("localiser", "analyser")
WorldBox = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class CtCase:
    """One training or evaluation case.

    Attributes:
        case_id: Short identifier (file stem; never a patient identifier).
        image_path: NIfTI file or DICOM folder/file.
        label_path: NIfTI label map aligned with the image (0/1/2), or None.
        case_label: 1 cancer, 0 none, None unknown (then taken from the label map).

    Example:
        >>> CtCase("case_1", Path("case_1.nii.gz"), case_label=1).label_path is None
        True
    """

    case_id: str
    image_path: Path
    label_path: Path | None = None
    case_label: int | None = None


def cases_from_msd(folder: str | Path) -> list[CtCase]:
    """The labelled (training) cases of a Decathlon folder, with case labels from their masks.

    Example:
        >>> cases_from_msd("/no/such/folder")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.UnreadableFile: /no/such/folder: no such folder
    """
    dataset = read_msd_dataset(folder)
    if dataset.label_mapping != {0: 0, 1: 1, 2: 2}:
        raise InputError(f"{Path(folder).name}: labels {dict(dataset.labels)} are not 0 background, 1 pancreas, 2 lesion")
    labels = msd_cancer_labels(dataset)
    return [CtCase(case.case_id, case.image_path, case.label_path, labels[case.case_id]) for case in dataset.training]


def cases_from_manifest(path: str | Path) -> list[CtCase]:
    """Cases from a CSV with columns ``image`` and optional ``label``, ``cancer`` (0/1), ``case_id``.

    Raises:
        UnreadableFile: Missing CSV or listed files.
        InputError: No ``image`` column, a bad ``cancer`` value, a row with neither label nor cancer.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp()); (folder / "a.nii.gz").write_bytes(b"")
        0
        >>> _ = (folder / "cases.csv").write_text("image,cancer\\na.nii.gz,1\\n")
        >>> cases_from_manifest(folder / "cases.csv")[0].case_label
        1
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"{path.name}: no such manifest")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "image" not in rows[0]:
        raise InputError(f"{path.name}: a manifest needs an 'image' column and at least one row")
    cases, seen = [], set()
    for number, row in enumerate(rows, start=2):
        image = (path.parent / row["image"].strip()).resolve()
        label = (path.parent / row["label"].strip()).resolve() if (row.get("label") or "").strip() else None
        for file in (image, label):
            if file is not None and not file.exists():
                raise UnreadableFile(f"{path.name} line {number}: {file.name} does not exist")
        cancer = (row.get("cancer") or "").strip()
        if cancer not in ("", "0", "1"):
            raise InputError(f"{path.name} line {number}: cancer must be 0 or 1, got {cancer!r}")
        if not cancer and label is None:
            raise InputError(f"{path.name} line {number}: give a label map, a cancer value, or both")
        case_id = (row.get("case_id") or "").strip() or image.name.split(".")[0]
        if case_id in seen:
            raise InputError(f"{path.name} line {number}: case id {case_id!r} repeats")
        seen.add(case_id)
        cases.append(CtCase(case_id, image, label, int(cancer) if cancer else None))
    return cases


def split_cases(cases: Sequence[CtCase], validation_fraction: float, test_fraction: float = 0.0,
                seed: int = 0) -> dict[str, list[CtCase]]:
    """Seeded split into train/validation/test, stratified by case label (unknown as its own group).

    Example:
        >>> cases = [CtCase(f"c{i}", Path("x"), None, i % 2) for i in range(8)]
        >>> {name: len(part) for name, part in split_cases(cases, 0.25, 0.25).items()}
        {'train': 4, 'validation': 2, 'test': 2}
    """
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise ValueError("fractions must be non-negative and leave training cases")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[CtCase]] = {"train": [], "validation": [], "test": []}
    for group in (0, 1, None):
        members = [case for case in cases if case.case_label == group]
        order = [members[index] for index in rng.permutation(len(members))]
        n_validation = int(round(validation_fraction * len(order)))
        n_test = int(round(test_fraction * len(order)))
        parts["validation"] += order[:n_validation]
        parts["test"] += order[n_validation : n_validation + n_test]
        parts["train"] += order[n_validation + n_test :]
    return {name: sorted(part, key=lambda case: case.case_id) for name, part in parts.items()}


def gland_world_box(labels: np.ndarray, grid: Grid, context_mm: float = 0.0) -> WorldBox | None:
    """LPS corners (mm) of the voxels with label > 0, widened by ``context_mm``; None when empty.

    Example:
        >>> labels = np.zeros((4, 4, 4), np.uint8); labels[1:3, 1, 2] = 1
        >>> gland_world_box(labels, Grid((4, 4, 4), (2.0, 1.0, 1.0)))
        ((2.0, 1.0, 2.0), (2.0, 1.0, 4.0))
    """
    found = np.argwhere(np.asarray(labels) > 0)
    if not len(found):
        return None
    corners = grid.index_to_world(np.stack([found.min(axis=0), found.max(axis=0)]))
    low, high = corners.min(axis=0) - context_mm, corners.max(axis=0) + context_mm
    return tuple(float(v) for v in low), tuple(float(v) for v in high)  # type: ignore[return-value]


def _source_stamp(case: CtCase) -> list[Any]:
    stamp: list[Any] = [case.case_id, case.case_label]
    for path in (case.image_path, case.label_path):
        if path is not None:
            status = os.stat(path)
            stamp += [str(path), status.st_size, int(status.st_mtime)]
    return stamp


class VolumeCache:
    """Preprocess each case once per stage and serve memory-mapped arrays (see module notes).

    Args:
        root: Cache folder (created).
        stage: ``"localiser"`` or ``"analyser"``.
        preprocessing: The stage's :class:`CtPreprocessing` (stored in the card).
        context_mm: Analyser only: extra room around the gland box for patch jitter.
        box_provider: Analyser only: ``volume -> world box`` for cases without a label map.

    Attributes:
        built: Cases preprocessed by this object (0 when everything came from disk).
        loaded: Cases opened from disk.

    Example:
        >>> import tempfile
        >>> VolumeCache(tempfile.mkdtemp(), "localiser", CtPreprocessing()).folder.name.startswith("localiser-")
        True
    """

    def __init__(self, root: str | Path, stage: str, preprocessing: CtPreprocessing, context_mm: float = 0.0,
                 box_provider: Callable[[CtVolume], WorldBox | None] | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage, self.preprocessing, self.context_mm = stage, preprocessing, float(context_mm)
        self.box_provider = box_provider
        recipe = json.dumps({"stage": stage, "preprocessing": preprocessing.to_dict(), "context_mm": self.context_mm,
                             "format": 1}, sort_keys=True)
        self.folder = Path(root) / f"{stage}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.built = 0
        self.loaded = 0

    def _paths(self, case: CtCase) -> tuple[Path, Path, Path]:
        return tuple(self.folder / f"{case.case_id}.{part}" for part in ("image.npy", "labels.npy", "json"))  # type: ignore[return-value]

    def is_cached(self, case: CtCase) -> bool:
        """True when the case's arrays exist for its current source files."""
        meta_path = self._paths(case)[2]
        if not meta_path.is_file():
            return False
        return json.loads(meta_path.read_text())["source"] == json.loads(json.dumps(_source_stamp(case)))

    def ensure(self, case: CtCase) -> None:
        """Build the case's cache entry unless it is already there (atomic per file)."""
        if self.is_cached(case):
            return
        image, labels, meta = self._prepare(case)
        image_path, label_path, meta_path = self._paths(case)
        for array, path in ((image, image_path), (labels, label_path)):
            if array is not None:
                temporary = path.with_name(path.name + ".partial.npy")
                np.save(temporary, array)
                os.replace(temporary, path)
        meta_path.write_text(json.dumps({**meta, "source": _source_stamp(case)}, indent=1))
        self.built += 1

    def load(self, case: CtCase) -> tuple[np.memmap, np.memmap | None, dict[str, Any]]:
        """``(image [z, y, x] float32, labels [z, y, x] uint8 or None, meta)``, memory-mapped."""
        self.ensure(case)
        image_path, label_path, meta_path = self._paths(case)
        meta = json.loads(meta_path.read_text())
        labels = np.load(label_path, mmap_mode="r") if meta["has_labels"] else None
        self.loaded += 1
        return np.load(image_path, mmap_mode="r"), labels, meta

    def _prepare(self, case: CtCase) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        volume = read_series(case.image_path, min_slices=1)
        labels = None
        if case.label_path is not None:
            labels = read_nifti_labels(case.label_path, like=volume)
            if labels.size and int(labels.max()) > 2:
                raise InputError(f"{case.case_id}: label values must be 0, 1, 2 (background, pancreas, lesion)")
        meta: dict[str, Any] = {"case_id": case.case_id, "has_labels": labels is not None,
                                "case_label": case.case_label, "lesion_diameter_mm": None}
        if labels is not None:
            lesions = measure_labels(labels, volume).lesions
            meta["case_label"] = int(bool(lesions)) if case.case_label is None else case.case_label
            meta["lesion_diameter_mm"] = max((item.longest_axial_diameter_mm for item in lesions), default=None)
        box = None
        if self.stage == "analyser":
            grid = Grid.of(volume)
            box = gland_world_box(labels, grid, self.context_mm) if labels is not None else None
            if box is None and self.box_provider is not None:
                box = self.box_provider(volume)
            if box is None:
                raise InputError(f"{case.case_id}: no pancreas box (no labelled gland and no localiser to find one)")
            meta["box_world_mm"] = [list(box[0]), list(box[1])]
        image, geometry = preprocess_ct(volume, self.preprocessing, box=box)
        meta["geometry"] = geometry.to_dict()
        prepared = None
        if labels is not None:
            prepared, _ = preprocess_labels(labels, volume, self.preprocessing, box=box)
            if self.stage == "localiser":
                prepared = (prepared > 0).astype(np.uint8)
            for name, mask in (("foreground_box", prepared > 0), ("lesion_box", prepared == 2)):
                found = np.argwhere(mask)
                meta[name] = [found.min(axis=0).tolist(), (found.max(axis=0) + 1).tolist()] if len(found) else None
        return np.ascontiguousarray(image, dtype=np.float32), prepared, meta
