"""Batch prediction to JSON lines: files, folders and manifests, streamed (runtime layer).

:func:`discover_inputs` turns what a user typed into a lazy stream of inputs:

* a **file** is one input (a WFDB ``.hea``/``.dat``/``.mat`` or a DICOM file);
* a **folder** is searched recursively (sorted, lazily) for ``.hea`` and ``.dcm`` files;
* a **manifest** (``.csv``) lists one input per row in a ``path`` column (case-insensitive);
  relative paths are taken relative to the manifest's folder.

:func:`predict_to_jsonl` writes one JSON line per input, in input order, whatever happens:
``{"input": ..., "kind": "diagnosis", ...}``, ``{"input": ..., "kind": "abstention", ...}`` or
``{"input": ..., "kind": "error", "error": "UnreadableFile", "reason": ...}``. The ``input``
field is the path as the user gave it (folder entries as ``<folder as given>/<relative
path>``, manifest entries as written in the manifest); no header field of any file is written,
so no PHI reaches the output beyond what the file names themselves hold.

Example:
    >>> list(discover_inputs(["no_such_file.hea"]))[0].name
    'no_such_file.hea'
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from mayo_dx.errors import InputError, MayoDxError

__all__ = ["INPUT_SUFFIXES", "InputItem", "discover_inputs", "predict_to_jsonl", "result_line"]

#: Suffixes found when a folder is searched (one per record: WFDB headers and DICOM files).
INPUT_SUFFIXES: tuple[str, ...] = (".hea", ".dcm")


@dataclass(frozen=True)
class InputItem:
    """One input of a batch.

    Attributes:
        name: The input as written in the output (as the user gave it).
        path: Where to read it.
        error: Set when the input failed before reading (e.g. a manifest without a path column).

    Example:
        >>> InputItem("a.hea", Path("a.hea")).error is None
        True
    """

    name: str
    path: Path
    error: MayoDxError | None = None


def _walk(folder: Path, shown: str) -> Iterator[InputItem]:
    for root, directories, files in os.walk(folder):
        directories.sort()
        for file_name in sorted(files):
            if file_name.lower().endswith(INPUT_SUFFIXES):
                path = Path(root) / file_name
                yield InputItem(name=str(Path(shown) / path.relative_to(folder)), path=path)


def _walk_studies(folder: Path, shown: str) -> Iterator[InputItem]:
    """CT: each NIfTI file is a study, and so is each folder holding other files (a DICOM series
    or a DICOMDIR tree, read whole by ``read_series``; its subfolders are not searched again)."""
    for root, directories, files in os.walk(folder):
        directories.sort()
        visible = sorted(name for name in files if not name.startswith("."))
        for file_name in visible:
            if file_name.lower().endswith((".nii", ".nii.gz")):
                path = Path(root) / file_name
                yield InputItem(name=str(Path(shown) / path.relative_to(folder)), path=path)
        if any(not name.lower().endswith((".nii", ".nii.gz")) for name in visible):
            directories[:] = []
            relative = Path(root).relative_to(folder)
            yield InputItem(name=str(Path(shown) / relative) if str(relative) != "." else shown, path=Path(root))


def _manifest(manifest: Path, shown: str) -> Iterator[InputItem]:
    try:
        handle = open(manifest, newline="", encoding="utf-8")
    except OSError as error:
        yield InputItem(shown, manifest, InputError(f"{manifest.name}: cannot open the manifest ({type(error).__name__})"))
        return
    with handle:
        reader = csv.DictReader(handle)
        column = next((name for name in reader.fieldnames or [] if name and name.strip().lower() == "path"), None)
        if column is None:
            yield InputItem(shown, manifest, InputError(f"{manifest.name}: a manifest needs a 'path' column"))
            return
        for row_number, row in enumerate(reader, start=2):
            value = (row.get(column) or "").strip()
            if not value:
                yield InputItem(f"{shown}:{row_number}", manifest, InputError(f"{manifest.name} row {row_number}: empty path"))
                continue
            path = Path(value)
            yield InputItem(name=value, path=path if path.is_absolute() else manifest.parent / path)


def discover_inputs(paths: Iterable[str | Path], task: str = "ecg") -> Iterator[InputItem]:
    """Expand files, folders and ``.csv`` manifests into a lazy stream of inputs.

    Args:
        paths: Files, folders and manifests as the user gave them.
        task: ``"ecg"`` (a folder gives each ``.hea``/``.dcm`` file) or ``"ct"`` (a folder gives
            each series folder and NIfTI file: one study each).

    Example:
        >>> [item.name for item in discover_inputs(["a.hea", "b.dcm"])]
        ['a.hea', 'b.dcm']
    """
    for given in paths:
        shown = str(given)
        path = Path(given)
        if path.is_dir():
            yield from (_walk_studies(path, shown) if task == "ct" else _walk(path, shown))
        elif path.suffix.lower() == ".csv":
            yield from _manifest(path, shown)
        else:
            yield InputItem(name=shown, path=path)


def result_line(name: str, result: Any) -> dict[str, Any]:
    """The JSON object written for one input (a result, or an error).

    Example:
        >>> result_line("x.hea", InputError("x.hea: the file is empty"))["kind"]
        'error'
    """
    if isinstance(result, BaseException):
        return {"input": name, "kind": "error", "error": type(result).__name__, "reason": str(result)}
    return {"input": name, **result.to_dict()}


def predict_to_jsonl(predictor: Any, items: Iterable[InputItem], out: TextIO, *, workers: int = 2,
                     progress: bool = True) -> dict[str, int]:
    """Predict every input and write one JSON line each, in order; never stop on a bad input.

    Args:
        predictor: A loaded predictor (:func:`mayo_dx.runtime.load`).
        items: Inputs, e.g. from :func:`discover_inputs` (consumed lazily).
        out: Text stream for the JSON lines.
        workers: Reader threads.
        progress: Show a tqdm progress bar on stderr.

    Returns:
        Count per kind (``diagnosis``, ``abstention``, ``error``).

    Example:
        >>> predict_to_jsonl(predictor, discover_inputs(["records/"]), sys.stdout)  # doctest: +SKIP
        {'diagnosis': 41, 'abstention': 2, 'error': 1}
    """
    from tqdm import tqdm

    names: deque[str] = deque()  # inputs fed but not yet written (bounded by the look-ahead)

    def sources() -> Iterator[Any]:
        for item in items:
            names.append(item.name)
            yield item.error if item.error is not None else item.path

    counts = {"diagnosis": 0, "abstention": 0, "error": 0}
    bar = tqdm(unit="input", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        for result in predictor.predict_many(sources(), workers=workers, on_error="return"):
            line = result_line(names.popleft(), result)
            counts[line["kind"]] += 1
            out.write(json.dumps(line, sort_keys=True) + "\n")
            bar.update(1)
    finally:
        bar.close()
    return counts
