"""Demo step for the LLM tools: a real MCP client session calls every tool on the demo data.

The server is the one ``mayo-dx serve`` runs (the official ``mcp`` SDK), connected in process;
its data root is ``out/data`` and its models folder the one the demo exported into. Each call's
structured result is kept for the report (images are saved as PNG files instead of inlined).

Example:
    >>> from mayo_dx.demo.agent_tools import tool_calls
    >>> [name for name, _ in tool_calls({"ecg": "ecg/a.hea"})][:2]
    ['list_models', 'describe_model']
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

__all__ = ["call_every_tool", "tool_calls"]

StepResult = dict[str, Any]


def tool_calls(paths: dict[str, str], model: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The calls the demo makes: every tool at least once, plus a refused path.

    Args:
        paths: Data-root-relative paths by role: ``ecg``, ``ecg_corrupted``, ``ct``.
        model: Model for ``describe_model`` (default: the first listed).

    Example:
        >>> len(tool_calls({"ecg": "a.hea", "ct": "ct"}))
        7
    """
    calls: list[tuple[str, dict[str, Any]]] = [("list_models", {}), ("describe_model", {"model": model or ""})]
    if "ecg" in paths:
        calls += [("analyze_ecg", {"path": paths["ecg"]}), ("render_ecg", {"path": paths["ecg"]})]
    if "ecg_corrupted" in paths:
        calls.append(("analyze_ecg", {"path": paths["ecg_corrupted"]}))
    if "ct" in paths:
        calls += [("analyze_ct_pancreas", {"path": paths["ct"]}), ("render_ct", {"path": paths["ct"]})]
    calls.append(("analyze_ecg", {"path": "../../etc/passwd"}))  # outside the data root: refused
    return calls


def call_every_tool(out: Path, context: dict[str, Any], *, models: Path) -> StepResult:
    """Open an MCP client session on the mayo-dx server and call each tool; save images."""
    import anyio
    from mcp import Client

    from mayo_dx.llm.server import build_server
    from mayo_dx.llm.toolbox import Toolbox

    data_root = out / "data"
    paths = {role: str(Path(path).resolve().relative_to(data_root.resolve()))
             for role, path in context.get("tool_paths", {}).items()}
    toolbox = Toolbox(models, [data_root], threads=2)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []

    async def session() -> list[str]:
        async with Client(build_server(toolbox)) as client:
            listed = await client.list_tools()
            first = await client.call_tool("list_models", {})
            names = [entry["name"] for entry in first.structured_content.get("models", [])]
            calls = tool_calls(paths, model=names[0] if names else None)
            for number, (name, arguments) in enumerate(calls, start=1):
                result = await client.call_tool(name, arguments)
                images = []
                for index, block in enumerate(block for block in result.content if block.type == "image"):
                    image = figures / f"tool_{number:02d}_{name}_{index}.png"
                    image.write_bytes(base64.b64decode(block.data))
                    images.append(str(image))
                results.append({"tool": name, "arguments": arguments, "is_error": bool(result.is_error),
                                "result": result.structured_content, "images": images})
            return [tool.name for tool in listed.tools]

    listed = anyio.run(session)
    statuses = {f"{entry['tool']} {json.dumps(entry['arguments'])}": entry["result"].get("status") for entry in results}
    return {"tools_listed": listed, "statuses": statuses, "calls": results}
