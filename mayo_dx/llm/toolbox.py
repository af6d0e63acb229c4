"""The guarded tool runner shared by the MCP server and :func:`mayo_dx.llm.tools.call_tool`.

One call: look the tool up, validate the arguments against its input schema, wait for a free
slot (at most ``limits.max_concurrent_calls`` calls run at once), run the handler in a worker
thread under ``limits.call_timeout_s``, turn any failure into ``cannot_assess`` with a reason
and an error type (never a traceback; unexpected errors are logged by type only), scrub PHI
(identifiers read from the input's own headers, its file names, and common patterns), validate
the result against the tool's output schema, and write one audit line.

Example:
    >>> import tempfile
    >>> toolbox = Toolbox(tempfile.mkdtemp(), [tempfile.mkdtemp()])
    >>> toolbox.call("list_models", {}).structured
    {'status': 'ok', 'models': []}
    >>> toolbox.call("analyze_ecg", {"path": "../x.hea"}).structured["error_type"]
    'PathNotAllowed'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from jsonschema import Draft202012Validator

from mayo_dx.errors import LimitExceeded, MayoDxError
from mayo_dx.llm.audit import AuditLog
from mayo_dx.llm.catalog import ModelCatalog
from mayo_dx.llm.context import CallFacts, ToolContext, ToolOutput
from mayo_dx.llm.guard import Limits, PathGuard, run_with_timeout
from mayo_dx.llm.phi import PhiScrubber, collect_identifiers
from mayo_dx.llm.tools import TOOLS, get_tool, sanitise_reason

__all__ = ["Toolbox", "cannot_assess"]

logger = logging.getLogger(__name__)

_OUTCOMES = {"assessed", "abstained", "cannot_assess"}


def cannot_assess(reason: str, error_type: str) -> ToolOutput:
    """The error result every tool returns for a failure.

    Example:
        >>> cannot_assess("the path is empty", "PathNotAllowed").structured["status"]
        'cannot_assess'
    """
    return ToolOutput({"status": "cannot_assess", "reason": sanitise_reason(reason), "error_type": error_type}, is_error=True)


class Toolbox:
    """The tools bound to one models folder and one or more data roots.

    Args:
        models: The models folder (see :class:`~mayo_dx.llm.catalog.ModelCatalog`).
        data_roots: Folders the tools may read.
        limits: Size, count, time and concurrency limits.
        audit: Audit log (default: disabled).
        threads: onnxruntime threads per predictor (``None``: onnxruntime's default).

    Example:
        >>> import tempfile
        >>> Toolbox(tempfile.mkdtemp(), [tempfile.mkdtemp()]).call("nope", {}).structured["error_type"]
        'UnknownTool'
    """

    def __init__(self, models: str | Path, data_roots: Sequence[str | Path], *, limits: Limits | None = None,
                 audit: AuditLog | None = None, threads: int | None = None) -> None:
        self.limits = limits or Limits()
        self.context = ToolContext(guard=PathGuard(data_roots, self.limits), catalog=ModelCatalog(models, threads=threads))
        self.audit = audit or AuditLog()
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrent_calls)
        self._input_validators = {tool.name: Draft202012Validator(tool.input_schema) for tool in TOOLS}
        self._output_validators = {tool.name: Draft202012Validator(tool.output_schema) for tool in TOOLS}

    def _keep(self) -> set[str]:
        """Strings the scrubber must leave alone: every card's names, codes and texts, and hashes."""
        keep: set[str] = set()
        catalog = self.context.catalog
        for name in catalog.names():
            entry = catalog.entry(name)
            card = entry.card
            keep.update({card.name, card.version, entry.sha256, card.training_data, card.intended_use, *card.limitations})
            for label in card.labels:
                keep.update(item for item in (label.name, label.code, label.system, label.description) if item)
        return keep

    def _run(self, name: str, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
        tool = get_tool(name)
        if tool is None:
            return cannot_assess(f"unknown tool {name!r}; available: {', '.join(item.name for item in TOOLS)}", "UnknownTool")
        errors = sorted(self._input_validators[name].iter_errors(arguments), key=lambda error: list(error.path))
        if errors:
            where = "/".join(str(part) for part in errors[0].path) or "arguments"
            return cannot_assess(f"invalid arguments ({where}): {errors[0].message}", "InvalidArguments")
        deadline = time.monotonic() + self.limits.call_timeout_s
        if not self._slots.acquire(timeout=self.limits.call_timeout_s):
            raise LimitExceeded("the server is busy (all call slots in use); try again shortly")

        def work() -> ToolOutput:
            try:
                return tool.handler(self.context, arguments, facts)
            finally:
                self._slots.release()

        return run_with_timeout(work, max(0.001, deadline - time.monotonic()), name=f"{name} call")

    def _scrub(self, output: ToolOutput, facts: CallFacts) -> ToolOutput:
        identifiers = collect_identifiers(facts.input_files)
        names = set(facts.file_names) | {path.name for path in [facts.input_path, *facts.input_files] if path is not None}
        for name in names:
            stem = name.split(".")[0]
            identifiers.add(name)
            if not stem.isalpha() or not stem.islower():  # 'truncated' is a word; 'Smith_J_0042' is not
                identifiers.add(stem)
        scrubber = PhiScrubber(identifiers, keep=self._keep())
        return ToolOutput(scrubber.scrub(output.structured), output.images, output.is_error)

    def call(self, name: str, arguments: dict[str, Any] | str | None = None) -> ToolOutput:
        """Run one tool call behind the guard (see the module docstring); never raises for bad input.

        Args:
            name: Tool name.
            arguments: The arguments (a dict, a JSON object string, or None for none).

        Example:
            >>> import tempfile
            >>> Toolbox(tempfile.mkdtemp(), [tempfile.mkdtemp()]).call("analyze_ecg", {}).structured["error_type"]
            'InvalidArguments'
        """
        started = time.perf_counter()
        facts = CallFacts()
        error_type: str | None = None
        try:
            if isinstance(arguments, str):
                arguments = json.loads(arguments)
            arguments = {} if arguments is None else arguments
            if not isinstance(arguments, dict):
                output = cannot_assess("the arguments must be a JSON object", "InvalidArguments")
            else:
                output = self._run(name, arguments, facts)
        except json.JSONDecodeError:
            output = cannot_assess("the arguments are not valid JSON", "InvalidArguments")
        except MayoDxError as error:
            output = cannot_assess(str(error), type(error).__name__)
        except Exception as error:  # the server keeps serving whatever a reader or model raised
            logger.warning("tool %s failed with an unexpected %s", name, type(error).__name__)
            output = cannot_assess(f"internal error while running the tool ({type(error).__name__}); the input may be "
                                   "malformed in a way the readers do not recognise", "InternalError")
        try:
            output = self._scrub(output, facts)
        except Exception as error:  # never let a scrubber failure pass unscrubbed text
            logger.warning("PHI scrubbing failed with %s; result withheld", type(error).__name__)
            output = cannot_assess("the result could not be checked for identifiers and was withheld", "InternalError")
        if get_tool(name) is not None:
            problems = list(self._output_validators[name].iter_errors(output.structured))
            if problems:
                logger.warning("tool %s produced a result outside its output schema: %s", name, problems[0].message[:200])
                output = cannot_assess("internal error: the result did not match the tool's declared schema", "InternalError")
        if output.is_error:
            error_type = output.structured.get("error_type")
        status = output.structured.get("status")
        outcome = status if status in _OUTCOMES else (facts.decision if isinstance(facts.decision, str) else "ok")
        decision = facts.decision if status in ("assessed", "abstained") else None
        self.audit.record(tool=name if get_tool(name) is not None else "<unknown tool>", outcome=str(outcome), latency_s=time.perf_counter() - started,
                          input_path=facts.input_path, model=facts.model, model_sha256=facts.model_sha256,
                          decision=decision, error_type=error_type)
        return output
