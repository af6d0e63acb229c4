"""The models folder: verified artifacts by name, for ``mayo-dx models``, ``predict`` and ``serve``.

A models folder holds ``<name>.onnx`` files (ECG) and ``<name>/`` artifact folders (two-stage
CT). :func:`list_artifacts` verifies each one (hashes, card) and summarises its card;
:func:`resolve_artifact` turns a model name into its path, so ``mayo-dx predict NAME ...`` works
on the default folder (:func:`mayo_dx.paths.default_models_dir`) without flags.

Example:
    >>> import tempfile
    >>> list_artifacts(tempfile.mkdtemp())
    []
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mayo_dx.artifact import read_artifact
from mayo_dx.errors import ArtifactError, ModelNotFound
from mayo_dx.paths import default_models_dir

__all__ = ["list_artifacts", "resolve_artifact"]


def _candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.iterdir())
            if (path.suffix == ".onnx" and path.is_file()) or (path / "manifest.json").is_file()]


def list_artifacts(folder: str | Path | None = None) -> list[dict[str, Any]]:
    """Summaries of the verified artifacts in ``folder`` (default: the default models folder).

    Each entry: name, path, task, version, labels, synthetic_training_data, sha256, and
    ``error`` instead of the card fields for an artifact that fails verification.

    Example:
        >>> import tempfile
        >>> list_artifacts(Path(tempfile.mkdtemp()) / "missing")
        []
    """
    entries: list[dict[str, Any]] = []
    for path in _candidates(Path(folder) if folder is not None else default_models_dir()):
        try:
            artifact = read_artifact(path)
        except ArtifactError as error:
            entries.append({"name": path.stem, "path": str(path), "error": str(error)})
            continue
        card = artifact.card
        test = card.metrics.get("test", {}) if isinstance(card.metrics, dict) else {}
        entries.append({
            "name": card.name, "path": str(path), "task": card.task, "version": card.version,
            "labels": list(card.label_names), "synthetic_training_data": card.synthetic_training_data,
            "test_metrics": {key: value for key, value in test.items() if "auroc" in key and not isinstance(value, dict)},
            "sha256": artifact.sha256,
        })
    return entries


def resolve_artifact(name_or_path: str | Path, folder: str | Path | None = None) -> Path:
    """An existing artifact path as given, else the artifact named so in the models folder.

    Raises:
        ModelNotFound: Neither a path nor a model name in the folder.

    Example:
        >>> resolve_artifact("no_such_model", "/nonexistent")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ModelNotFound: no artifact 'no_such_model' (not a path, and not in /nonexistent)
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    models = Path(folder) if folder is not None else default_models_dir()
    for candidate in (models / f"{name_or_path}.onnx", models / str(name_or_path)):
        if candidate.exists():
            return candidate
    for entry in list_artifacts(models):
        if entry.get("name") == str(name_or_path):
            return Path(entry["path"])
    raise ModelNotFound(f"no artifact {str(name_or_path)!r} (not a path, and not in {models})")
