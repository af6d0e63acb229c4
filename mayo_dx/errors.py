"""One error hierarchy for mayo-dx.

Every failure the library raises on purpose is a :class:`MayoDxError`. Problems with what a
caller handed in (a file, a path, a signal) are :class:`InputError`; the LLM tools turn those
into a structured "cannot assess: reason" and pipelines can catch them per input without
stopping a batch.

Example:
    >>> from mayo_dx.errors import InputError, UnreadableFile
    >>> issubclass(UnreadableFile, InputError)
    True
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "DuplicateSliceError",
    "ExportParityError",
    "GantryTiltError",
    "GeometryError",
    "InputError",
    "LimitExceeded",
    "MayoDxError",
    "MissingDependency",
    "ModelNotFound",
    "ObliqueVolume",
    "PathNotAllowed",
    "SeriesNotFound",
    "SliceGapError",
    "TooFewSlices",
    "UnitError",
    "UnreadableFile",
    "UnsupportedFormat",
]


class MayoDxError(Exception):
    """Base class of every error mayo-dx raises on purpose."""


class InputError(MayoDxError, ValueError):
    """The input (file, path, signal, volume) cannot be used as given."""


class UnreadableFile(InputError):
    """A file is missing, empty, truncated or corrupt."""


class UnsupportedFormat(InputError):
    """A file was read but is not a kind mayo-dx handles (e.g. a CT image given as an ECG)."""


class UnitError(InputError):
    """Physical units are missing, unknown or implausible for the signal."""


class PathNotAllowed(InputError):
    """A path lies outside the allowed data roots or is otherwise refused."""


class LimitExceeded(InputError):
    """An input or a call exceeds a configured limit (file size, files per series, time per call)."""


class SeriesNotFound(UnsupportedFormat):
    """A folder holds no usable CT series (empty, no DICOM, or every series skipped, with reasons)."""


class GeometryError(InputError):
    """Image geometry is inconsistent: mixed orientations, sizes or spacings, missing positions."""


class GantryTiltError(GeometryError):
    """Slice positions drift in-plane (a tilted gantry); the stack is not a regular grid."""


class SliceGapError(GeometryError):
    """Slices are missing: a step along the slice normal is far larger than the median step."""


class DuplicateSliceError(GeometryError):
    """Two slices share one position but hold different pixels."""


class ObliqueVolume(GeometryError):
    """The volume's axes are too far from the patient axes to reorient by permutation."""


class TooFewSlices(InputError):
    """A series has fewer slices than the reader's ``min_slices``."""


class ModelNotFound(MayoDxError, KeyError):
    """No model is registered (or stored) under the requested name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else "model not found"


class ArtifactError(MayoDxError):
    """A model artifact is missing, tampered with, truncated or inconsistent with its card."""


class ExportParityError(ArtifactError):
    """An exported graph disagrees with the network it came from beyond the stated tolerance."""


class MissingDependency(MayoDxError, ImportError):
    """An optional dependency (an extra) is needed for this feature but not installed."""
