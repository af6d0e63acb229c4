"""``mayo-dx serve`` and ``mayo-dx tools``: argument parsers and handlers of the LLM layer.

Importing this module imports nothing heavy; ``serve`` imports the ``mcp`` SDK when it runs
(the ``[llm]`` extra), with a one-line install hint when it is missing.

Example:
    >>> import argparse
    >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
    >>> add_llm_commands(commands)
    >>> sorted(commands.choices)
    ['serve', 'tools']
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_llm_commands", "run_llm_command"]

_FORMATS = ("mcp", "openai", "openai-chat", "anthropic")


def add_llm_commands(commands: Any) -> None:
    """Add the ``serve`` and ``tools`` subcommands to a subparsers object.

    Example:
        >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
        >>> add_llm_commands(commands)
    """
    serve = commands.add_parser("serve", help="serve the models as MCP tools (stdio by default, --http for HTTP)")
    serve.add_argument("--models", type=Path, default=None,
                       help="folder of model artifacts (default: $MAYO_DX_MODELS or ~/.local/share/mayo-dx/models)")
    serve.add_argument("--data-root", type=Path, action="append", required=True,
                       help="folder the tools may read (repeat for several); tool paths are relative to it")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1; others only when given)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    serve.add_argument("--audit-log", default=None, help="append JSON-lines audit records to this file ('-': stderr)")
    serve.add_argument("--timeout", type=float, default=120.0, help="seconds per tool call (default 120)")
    serve.add_argument("--max-concurrent", type=int, default=4, help="tool calls running at once (default 4)")
    serve.add_argument("--max-file-mb", type=float, default=256.0, help="largest file a tool reads, MiB (default 256)")
    serve.add_argument("--max-series-files", type=int, default=2000, help="most files in one CT series (default 2000)")
    serve.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads per model")

    tools = commands.add_parser("tools", help="print the tool definitions in one vendor's shape (JSON)")
    tools.add_argument("--format", choices=_FORMATS, default="mcp",
                       help="mcp, openai (Responses API), openai-chat (Chat Completions) or anthropic")


def _serve(arguments: argparse.Namespace) -> int:
    try:
        from mayo_dx.llm.server import serve_http, serve_stdio
    except ImportError as error:  # the [llm] extra is missing
        print(f"mayo-dx serve needs the LLM extra: pip install \"mayo-dx[llm]\" ({error.name} missing)", file=sys.stderr)
        return 2
    from mayo_dx.llm.audit import AuditLog
    from mayo_dx.llm.guard import Limits
    from mayo_dx.llm.toolbox import Toolbox

    limits = Limits(max_file_bytes=int(arguments.max_file_mb * 1024 * 1024), max_series_files=arguments.max_series_files,
                    call_timeout_s=arguments.timeout, max_concurrent_calls=arguments.max_concurrent)
    from mayo_dx.paths import default_models_dir

    models = arguments.models if arguments.models is not None else default_models_dir()
    try:
        toolbox = Toolbox(models, arguments.data_root, limits=limits, audit=AuditLog(arguments.audit_log),
                          threads=arguments.threads)
    except ValueError as error:
        print(f"mayo-dx serve: {error}", file=sys.stderr)
        return 2
    try:
        if arguments.http:
            serve_http(toolbox, host=arguments.host, port=arguments.port)
        else:
            serve_stdio(toolbox)
    except KeyboardInterrupt:
        pass
    finally:
        toolbox.audit.close()
    return 0


def run_llm_command(arguments: argparse.Namespace) -> int | None:
    """Run ``serve`` or ``tools``; None for any other command.

    Example:
        >>> run_llm_command(argparse.Namespace(command="demo")) is None
        True
    """
    if arguments.command == "tools":
        from mayo_dx.llm.tools import tool_definitions

        print(json.dumps(tool_definitions(arguments.format), indent=2))
        return 0
    if arguments.command == "serve":
        return _serve(arguments)
    return None
