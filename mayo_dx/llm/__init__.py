"""Tools an LLM agent can call: MCP server, OpenAI/Anthropic definitions, guarded and PHI-free.

Modules: :mod:`~mayo_dx.llm.tools` (definitions, :func:`call_tool`, vendor shapes),
:mod:`~mayo_dx.llm.toolbox` (the guarded runner), :mod:`~mayo_dx.llm.server` (MCP over stdio
or streamable HTTP), :mod:`~mayo_dx.llm.guard` (paths and limits), :mod:`~mayo_dx.llm.phi`
(scrubber), :mod:`~mayo_dx.llm.audit` (audit log). Names below load on first use, so importing
this package needs neither the ``mcp`` SDK nor ``jsonschema`` (the ``[llm]`` extra).

Example:
    >>> from mayo_dx import llm
    >>> llm.tool_definitions("anthropic")[0]["name"]
    'analyze_ecg'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Toolbox", "build_server", "call_tool", "tool_definitions"]

_HOMES = {"Toolbox": "mayo_dx.llm.toolbox", "build_server": "mayo_dx.llm.server", "call_tool": "mayo_dx.llm.tools",
          "tool_definitions": "mayo_dx.llm.tools"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mayo_dx.llm' has no attribute {name!r}")
