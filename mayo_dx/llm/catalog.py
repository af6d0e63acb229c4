"""The models a tool server offers: verified artifacts found in one folder, loaded on first use.

A models folder holds single-file artifacts (``<name>.onnx``, ECG models) and artifact folders
(``<name>/manifest.json``, multi-stage CT models); see :mod:`mayo_dx.artifact`. The catalogue
reads and verifies every card when it is built (hashes included), so ``list_models`` and
``describe_model`` need no inference session; :meth:`ModelCatalog.predictor` loads the
onnxruntime sessions the first time a model is used and keeps them (predictors are
thread-safe). Artifacts that fail verification are left out and logged on stderr, so a
tampered file is never served. Models are known by their card's registry name.

Example:
    >>> import tempfile
    >>> ModelCatalog(tempfile.mkdtemp()).names()
    []
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayo_dx.artifact import read_artifact
from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError, InputError, ModelNotFound

__all__ = ["CatalogEntry", "ModelCatalog"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    """One verified artifact: where it is, its card and its SHA-256."""

    path: Path
    card: ModelCard
    sha256: str


class ModelCatalog:
    """Verified model artifacts of one folder, by registry name.

    Args:
        folder: The models folder (``mayo-dx serve --models DIR``).
        threads: onnxruntime ``intra_op_num_threads`` for every predictor (``None``: default).

    Raises:
        ValueError: The folder does not exist.

    Example:
        >>> import tempfile
        >>> ModelCatalog(tempfile.mkdtemp()).default("ecg")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ModelNotFound: no ecg model is installed on this server
    """

    def __init__(self, folder: str | Path, *, threads: int | None = None) -> None:
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise ValueError(f"models folder {folder} does not exist")
        self.threads = threads
        self._entries: dict[str, CatalogEntry] = {}
        self._predictors: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        """Re-scan the folder (cards are re-verified; loaded predictors of changed files are dropped).

        Example:
            >>> import tempfile
            >>> ModelCatalog(tempfile.mkdtemp()).refresh()
        """
        entries: dict[str, CatalogEntry] = {}
        for path in sorted(self.folder.iterdir()):
            if not (path.suffix == ".onnx" and path.is_file()) and not (path / "manifest.json").is_file():
                continue
            try:
                artifact = read_artifact(path)
            except ArtifactError as error:
                logger.warning("model artifact %s left out: %s", path.name, error)
                continue
            name = artifact.card.name
            if name in entries:
                logger.warning("model artifact %s left out: the name %r is already served by %s", path.name, name,
                               entries[name].path.name)
                continue
            entries[name] = CatalogEntry(path=path, card=artifact.card, sha256=artifact.sha256)
        with self._lock:
            self._predictors = {name: predictor for name, predictor in self._predictors.items()
                                if name in entries and entries[name].sha256 == predictor.artifact_sha256}
            self._entries = entries

    def names(self, task: str | None = None) -> list[str]:
        """Registry names, sorted, optionally of one task (``"ecg"``, ``"ct"``).

        Example:
            >>> import tempfile
            >>> ModelCatalog(tempfile.mkdtemp()).names("ct")
            []
        """
        return sorted(name for name, entry in self._entries.items() if task is None or entry.card.task == task)

    def entry(self, name: str) -> CatalogEntry:
        """The entry of one model.

        Raises:
            ModelNotFound: No model of that name; the message lists the installed ones.

        Example:
            >>> import tempfile
            >>> ModelCatalog(tempfile.mkdtemp()).entry("nope")
            Traceback (most recent call last):
            ...
            mayo_dx.errors.ModelNotFound: no model of that name is installed; installed: none (call list_models)
        """
        if not isinstance(name, str) or name not in self._entries:
            raise ModelNotFound(f"no model of that name is installed; installed: {', '.join(self.names()) or 'none'} (call list_models)")
        return self._entries[name]

    def default(self, task: str) -> str:
        """The model used when a call names none: the first installed model of the task, by name.

        Raises:
            ModelNotFound: No model of that task is installed.
        """
        names = self.names(task)
        if not names:
            raise ModelNotFound(f"no {task} model is installed on this server")
        return names[0]

    def choose(self, name: str | None, task: str) -> CatalogEntry:
        """The named model (checked to serve ``task``), or the task's default when ``name`` is None.

        Raises:
            ModelNotFound: Unknown name, or no model of the task.
            InputError: The named model serves another task.

        Example:
            >>> import tempfile
            >>> ModelCatalog(tempfile.mkdtemp()).choose(None, "ecg")
            Traceback (most recent call last):
            ...
            mayo_dx.errors.ModelNotFound: no ecg model is installed on this server
        """
        entry = self.entry(self.default(task) if name is None else name)
        if entry.card.task != task:
            raise InputError(f"model {entry.card.name} is a {entry.card.task} model; this tool needs a {task} model "
                             f"(installed: {', '.join(self.names(task)) or 'none'})")
        return entry

    def predictor(self, name: str) -> Any:
        """The loaded :class:`mayo_dx.runtime.Predictor` of a model (loaded once, then shared).

        Raises:
            ModelNotFound: Unknown name.
            ArtifactError: The artifact changed on disk or cannot be loaded.
        """
        entry = self.entry(name)
        with self._lock:
            predictor = self._predictors.get(name)
            if predictor is None:
                from mayo_dx.runtime import load

                predictor = load(entry.path, threads=self.threads, expected_sha256=entry.sha256)
                self._predictors[name] = predictor
            return predictor
