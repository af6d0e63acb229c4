"""What a tool handler receives (the server's guard and catalogue) and what it returns.

Example:
    >>> output = ToolOutput(structured={"status": "ok"})
    >>> output.is_error, output.images
    (False, ())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayo_dx.llm.catalog import ModelCatalog
from mayo_dx.llm.guard import PathGuard

__all__ = ["CallFacts", "ToolContext", "ToolOutput"]


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result.

    Attributes:
        structured: The JSON result (validated against the tool's output schema).
        images: PNG images to attach (MCP image content), in order.
        is_error: True for a ``cannot_assess`` result (MCP ``isError``).
    """

    structured: dict[str, Any]
    images: tuple[bytes, ...] = ()
    is_error: bool = False


@dataclass
class CallFacts:
    """PHI-free facts a handler records for the audit log and the scrubber while it runs.

    Attributes:
        input_path: The resolved input path (hashed in the audit log, never written).
        input_files: Files read (their headers are searched for identifiers to scrub).
        model: Registry name of the model used.
        model_sha256: Its artifact SHA-256.
        decision: Positive label names, or the CT decision.
        file_names: Names of every file checked for the call (redacted from the result: a file
            name may hold a patient's name).
    """

    input_path: Path | None = None
    input_files: list[Path] = field(default_factory=list)
    model: str | None = None
    model_sha256: str | None = None
    decision: list[str] | str | None = None
    file_names: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ToolContext:
    """The server-side state every handler uses.

    Attributes:
        guard: Path checks and limits.
        catalog: The installed models.
    """

    guard: PathGuard
    catalog: ModelCatalog
