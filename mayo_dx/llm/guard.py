"""The guard in front of every LLM tool: allowed roots, path checks, size, count and time limits.

A model calling a tool names a file by a path string it may have been tricked into writing.
:class:`PathGuard` turns that string into a checked :class:`~pathlib.Path` or refuses it with a
:class:`~mayo_dx.errors.PathNotAllowed` that says why, before any reader opens anything:

- refused outright: an empty or non-string path, a null byte, a URL or anything with a scheme
  (``http:``, ``file:``, ``s3:``, a Windows drive ``C:``), any ``..`` component;
- relative paths are taken against the allowed roots; absolute paths are accepted only when
  they lie inside one;
- the path is resolved (every symbolic link followed) and must still lie inside a root;
- only regular files and folders are accepted: device files, FIFOs and sockets are refused
  (checked with ``stat``, never opened);
- every file a reader will open is checked the same way (the signal files a WFDB header names,
  each file of a DICOM folder), with limits on the size of each file, the number of files in a
  series and their total size (:class:`Limits`).

:func:`run_with_timeout` bounds the time of one call (see its notes on threads). The PHI
scrubber lives in :mod:`mayo_dx.llm.phi`, the audit log in :mod:`mayo_dx.llm.audit`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "ecg.hea").write_text("ecg 12 500 5000")
    >>> guard = PathGuard([root])
    >>> guard.resolve("ecg.hea").name
    'ecg.hea'
    >>> guard.resolve("../etc/passwd")
    Traceback (most recent call last):
    ...
    mayo_dx.errors.PathNotAllowed: the path may not contain '..' components; give a path inside the data root
"""

from __future__ import annotations

import os
import re
import stat
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence, TypeVar

from mayo_dx.errors import LimitExceeded, PathNotAllowed, UnreadableFile

__all__ = ["Limits", "PathGuard", "run_with_timeout"]

ResultT = TypeVar("ResultT")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_MAX_PATH_CHARACTERS = 1024
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits applied to every tool call.

    Attributes:
        max_file_bytes: Largest single file a tool reads (default 256 MiB; a 10 s 12-lead ECG
            is under 1 MiB, a 512 x 512 CT slice about 0.5 MiB).
        max_series_files: Most files in one DICOM series folder (default 2,000 slices).
        max_series_bytes: Largest total size of the files of one series (default 2 GiB).
        call_timeout_s: Wall time of one call, queueing included (default 120 s).
        max_concurrent_calls: Calls running at once; further calls wait for a slot (default 4).
    """

    max_file_bytes: int = 256 * _MIB
    max_series_files: int = 2000
    max_series_bytes: int = 2048 * _MIB
    call_timeout_s: float = 120.0
    max_concurrent_calls: int = 4

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_series_files", "max_series_bytes", "call_timeout_s", "max_concurrent_calls"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")


def _kind(mode: int) -> str | None:
    """A refusal reason for anything that is neither a regular file nor a folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file or folder"


class PathGuard:
    """Resolve tool path arguments inside allowed roots, and check the files readers open.

    Args:
        roots: Folders the tools may read (each must exist). Relative paths are tried against
            them in order: the first root where the path exists wins (the first root otherwise).
        limits: Size and count limits (:class:`Limits`).

    Raises:
        ValueError: No root given, or a root that is not an existing folder.

    Example:
        >>> import tempfile
        >>> guard = PathGuard([tempfile.mkdtemp()])
        >>> guard.resolve("https://example.org/ecg.hea")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.PathNotAllowed: URLs are not accepted (scheme 'https:'); give a path inside the data root
    """

    def __init__(self, roots: Sequence[str | Path], limits: Limits | None = None) -> None:
        if not roots:
            raise ValueError("at least one allowed data root is needed")
        resolved = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise ValueError(f"allowed data root {root} is not an existing folder")
            resolved.append(path)
        self.roots: tuple[Path, ...] = tuple(resolved)
        self.limits = limits or Limits()

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def resolve(self, given: object) -> Path:
        """Check a path argument and return it resolved (symbolic links followed).

        The path need not exist (a reader then reports "no such file"), but when it exists it
        must be a regular file or a folder inside a root.

        Raises:
            PathNotAllowed: Not a string, empty, too long, a null byte, a URL or scheme, a
                ``..`` component, or a location outside every allowed root; a device file,
                FIFO or socket.

        Example:
            >>> import tempfile
            >>> PathGuard([tempfile.mkdtemp()]).resolve("a\\x00b")
            Traceback (most recent call last):
            ...
            mayo_dx.errors.PathNotAllowed: the path contains a null byte
        """
        if not isinstance(given, str):
            raise PathNotAllowed(f"the path must be a string, got {type(given).__name__}")
        text = given.strip()
        if not text:
            raise PathNotAllowed("the path is empty; give a file or folder inside the data root")
        if "\x00" in text:
            raise PathNotAllowed("the path contains a null byte")
        if len(text) > _MAX_PATH_CHARACTERS:
            raise PathNotAllowed(f"the path is longer than {_MAX_PATH_CHARACTERS} characters")
        scheme = _SCHEME.match(text)
        if scheme:
            raise PathNotAllowed(f"URLs are not accepted (scheme {scheme.group(0)!r}); give a path inside the data root")
        if text.startswith("\\\\") or text.startswith("//"):
            raise PathNotAllowed("network paths are not accepted; give a path inside the data root")
        parts = PurePosixPath(text.replace("\\", "/")).parts
        if ".." in parts:
            raise PathNotAllowed("the path may not contain '..' components; give a path inside the data root")
        candidate = Path(text)
        if candidate.is_absolute():
            candidates = [candidate]
        else:
            candidates = [root / candidate for root in self.roots]
            existing = [path for path in candidates if os.path.lexists(path)]
            candidates = existing[:1] or candidates[:1]
        resolved = candidates[0].resolve()
        if not self._inside(resolved):
            raise PathNotAllowed("the path lies outside the allowed data roots (after following links)")
        self._check_kind(resolved)
        return resolved

    def _check_kind(self, path: Path) -> os.stat_result | None:
        try:
            status = path.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UnreadableFile(f"the path cannot be examined ({type(error).__name__})") from error
        reason = _kind(status.st_mode)
        if reason:
            raise PathNotAllowed(f"the path is {reason}; only regular files and folders are read")
        return status

    def check_file(self, path: Path) -> Path:
        """Check one file a reader will open: inside a root once resolved, regular, within size.

        Raises:
            PathNotAllowed: Outside every root after following links, or not a regular file.
            LimitExceeded: Larger than ``limits.max_file_bytes``.

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> root = Path(tempfile.mkdtemp())
            >>> _ = (root / "x.dat").write_bytes(b"1234")
            >>> PathGuard([root]).check_file(root / "x.dat").name
            'x.dat'
        """
        resolved = Path(path).resolve()
        if not self._inside(resolved):
            raise PathNotAllowed("a file the input refers to lies outside the allowed data roots (after following links)")
        status = self._check_kind(resolved)
        if status is None:
            return resolved  # missing: the reader names it
        if stat.S_ISDIR(status.st_mode):
            raise PathNotAllowed("a folder was found where a file was expected")
        if status.st_size > self.limits.max_file_bytes:
            raise LimitExceeded(
                f"a file is {status.st_size / _MIB:.1f} MiB, above the limit of {self.limits.max_file_bytes / _MIB:.0f} MiB"
            )
        return resolved

    def series_files(self, folder: Path) -> list[Path]:
        """Every file under a series folder (links not followed into other folders), each checked.

        Raises:
            LimitExceeded: More than ``limits.max_series_files`` files, or more than
                ``limits.max_series_bytes`` in total, or one file above ``max_file_bytes``.
            PathNotAllowed: A file (or link) resolves outside the roots or is not a regular file.

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> root = Path(tempfile.mkdtemp())
            >>> _ = (root / "a.dcm").write_bytes(b"0")
            >>> [path.name for path in PathGuard([root]).series_files(root)]
            ['a.dcm']
        """
        files: list[Path] = []
        for directory, folders, names in os.walk(folder, followlinks=False):
            folders.sort()
            for name in sorted(names):
                files.append(Path(directory) / name)
                if len(files) > self.limits.max_series_files:
                    raise LimitExceeded(
                        f"the folder holds more than {self.limits.max_series_files} files; give the folder of one series"
                    )
            for name in folders:
                if (Path(directory) / name).is_symlink():
                    raise PathNotAllowed("the folder holds a link to another folder; links inside a series are not followed")
        checked = [self.check_file(path) for path in files]
        total = sum(path.stat().st_size for path in checked if path.exists())
        if total > self.limits.max_series_bytes:
            raise LimitExceeded(
                f"the series holds {total / _MIB:.0f} MiB, above the limit of {self.limits.max_series_bytes / _MIB:.0f} MiB"
            )
        return checked

    def check_files(self, paths: Iterable[Path]) -> list[Path]:
        """Check several files with :meth:`check_file`.

        Example:
            >>> import tempfile
            >>> PathGuard([tempfile.mkdtemp()]).check_files([])
            []
        """
        return [self.check_file(path) for path in paths]


def run_with_timeout(function: Callable[[], ResultT], timeout_s: float, *, name: str = "tool call") -> ResultT:
    """Run ``function`` in a daemon worker thread and wait at most ``timeout_s`` seconds.

    Python cannot stop a thread, so a call that overruns is abandoned, not killed: the caller
    gets :class:`~mayo_dx.errors.LimitExceeded` at once, and the abandoned thread runs on until
    its current step (reading, one ONNX run) ends; its result is discarded. The server bounds
    how many calls run at once (:attr:`Limits.max_concurrent_calls`), so abandoned calls cannot
    pile up without limit. Exceptions raised by ``function`` are re-raised here unchanged.

    Raises:
        LimitExceeded: The call took longer than ``timeout_s``.

    Example:
        >>> run_with_timeout(lambda: 2 + 2, 1.0)
        4
    """
    future: Future[ResultT] = Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as error:  # handed to the caller, who re-raises it
            future.set_exception(error)

    worker = threading.Thread(target=work, name=f"mayo-dx {name}", daemon=True)
    worker.start()
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        raise LimitExceeded(f"the {name} took longer than the limit of {timeout_s:g} s and was abandoned") from None
