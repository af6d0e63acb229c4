"""The audit log of tool calls: one JSON line per call, free of PHI, off unless asked for.

Each line records when a call ran, which tool, a keyed hash of the input path (never the path),
the model and its artifact SHA-256, the outcome (``assessed``, ``abstained``, ``cannot_assess``,
``rendered``, ``listed``, ``described``), the decision (positive label names, or the CT decision),
the error type when the call failed, and the latency. The hash is an HMAC-SHA256 keyed with
``hash_key`` (random per process unless given), so a path holding a patient's name cannot be
recovered by hashing guessed names; pass a fixed key to correlate calls across restarts.

Lines go to the ``mayo_dx.audit`` logger and, when configured, to a file (``--audit-log PATH``)
or stderr (``--audit-log -``). Never stdout: the stdio transport owns it.

Example:
    >>> import io, json
    >>> stream = io.StringIO()
    >>> audit = AuditLog(stream=stream, hash_key=b"k")
    >>> audit.record(tool="list_models", outcome="listed", latency_s=0.0012)
    >>> json.loads(stream.getvalue())["tool"]
    'list_models'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Sequence

__all__ = ["AuditLog"]

logger = logging.getLogger("mayo_dx.audit")


class AuditLog:
    """Write one JSON line per tool call.

    Args:
        path: File to append to; ``"-"`` for stderr; ``None`` with no ``stream``: disabled.
        stream: A text stream to write to instead of a file (tests, embedding).
        hash_key: Key of the input-path HMAC (random per process when omitted).

    Example:
        >>> AuditLog().enabled
        False
    """

    def __init__(self, path: str | Path | None = None, *, stream: IO[str] | None = None, hash_key: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._owned: IO[str] | None = None
        if stream is None and path is not None:
            if str(path) == "-":
                stream = sys.stderr
            else:
                target = Path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                self._owned = stream = open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._stream = stream
        self._key = hash_key if hash_key is not None else os.urandom(32)

    @property
    def enabled(self) -> bool:
        """Whether lines are written."""
        return self._stream is not None

    def input_hash(self, path: Path | str | None) -> str | None:
        """Keyed hash (HMAC-SHA256, hex, 32 characters) of an input path, or None.

        Example:
            >>> AuditLog(hash_key=b"k").input_hash("a/b.hea") == AuditLog(hash_key=b"k").input_hash("a/b.hea")
            True
        """
        if path is None:
            return None
        return hmac.new(self._key, str(path).encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32]

    def record(
        self,
        *,
        tool: str,
        outcome: str,
        latency_s: float,
        input_path: Path | str | None = None,
        model: str | None = None,
        model_sha256: str | None = None,
        decision: Sequence[str] | str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Write one line (nothing when disabled). Only the fields named here are written.

        Example:
            >>> AuditLog().record(tool="describe_model", outcome="described", latency_s=0.0)
        """
        if self._stream is None:
            return
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "tool": tool,
            "input_hash": self.input_hash(input_path),
            "model": model,
            "model_sha256": model_sha256,
            "outcome": outcome,
            "decision": list(decision) if isinstance(decision, (list, tuple)) else decision,
            "error_type": error_type,
            "latency_ms": round(latency_s * 1000.0, 2),
        }
        line = json.dumps(entry, sort_keys=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        logger.debug(line)

    def close(self) -> None:
        """Close the file this log opened (streams given by the caller stay open).

        Example:
            >>> AuditLog().close()
        """
        if self._owned is not None:
            self._owned.close()
            self._owned = None
            self._stream = None
