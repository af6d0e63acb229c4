"""The MCP server driven by the SDK's real client: in process, over stdio (subprocess) and over HTTP."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema import Draft202012Validator

from mayo_dx.llm.server import build_server
from mayo_dx.llm.toolbox import Toolbox
from mayo_dx.llm.tools import TOOLS, get_tool
from tests.conftest import PROJECT_ROOT
from tests.llm.conftest import assert_no_phi

#: One call per tool (more for analyze_ecg), with the status expected without a CT model.
CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("list_models", {}, "ok"),
    ("describe_model", {"model": "tiny_ecg_llm"}, "ok"),
    ("analyze_ecg", {"path": "ecg/record_a.hea"}, "assessed"),
    ("analyze_ecg", {"path": "ecg/waveform_b.dcm"}, "assessed"),
    ("analyze_ecg", {"path": "bad/nan_leads.hea"}, "abstained"),
    ("analyze_ecg", {"path": "../outside.hea"}, "cannot_assess"),
    ("analyze_ct_pancreas", {"path": "ct/series_a"}, "cannot_assess"),  # no CT model installed here
    ("render_ecg", {"path": "ecg/record_a.hea"}, "ok"),
    ("render_ct", {"path": "ct/series_a"}, "ok"),
]


def _check_result(name: str, result: Any, expected: str) -> None:
    structured = result.structured_content
    assert structured["status"] == expected, (name, structured)
    assert result.is_error == (expected == "cannot_assess")
    Draft202012Validator(get_tool(name).output_schema).validate(structured)
    texts = [block.text for block in result.content if block.type == "text"]
    assert json.loads(texts[0]) == structured
    images = [block for block in result.content if block.type == "image"]
    if name.startswith("render_") and expected == "ok":
        assert images[0].mime_type == "image/png" and base64.b64decode(images[0].data)[:4] == b"\x89PNG"
    assert_no_phi(json.dumps(structured) + "".join(texts), f"MCP {name}")


async def _exercise(client: Any) -> None:
    listed = await client.list_tools()
    assert [tool.name for tool in listed.tools] == [tool.name for tool in TOOLS]
    for tool in listed.tools:
        assert tool.output_schema == get_tool(tool.name).output_schema and tool.annotations.read_only_hint
    for name, arguments, expected in CALLS:
        _check_result(name, await client.call_tool(name, arguments), expected)


def test_in_process_client_lists_and_calls_every_tool(models_dir: Path, data_root: Path) -> None:
    from mcp import Client

    toolbox = Toolbox(models_dir, [data_root], threads=1)

    async def main() -> None:
        async with Client(build_server(toolbox)) as client:
            await _exercise(client)
        async with Client(build_server(toolbox), mode="legacy") as client:  # the JSON-RPC stream path
            _check_result("list_models", await client.call_tool("list_models", {}), "ok")

    anyio.run(main)


def _serve_arguments(models_dir: Path, data_root: Path, audit: Path) -> list[str]:
    return ["-m", "mayo_dx.cli", "serve", "--models", str(models_dir), "--data-root", str(data_root),
            "--audit-log", str(audit), "--threads", "1"]


def test_stdio_subprocess(models_dir: Path, data_root: Path, tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    audit = tmp_path / "audit.jsonl"
    stderr_path = tmp_path / "stderr.txt"
    parameters = StdioServerParameters(command=sys.executable, args=_serve_arguments(models_dir, data_root, audit),
                                       cwd=str(PROJECT_ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})

    async def main() -> None:
        with open(stderr_path, "w") as errlog:
            async with Client(stdio_client(parameters, errlog=errlog), mode="legacy", read_timeout_seconds=120) as client:
                await _exercise(client)

    anyio.run(main)
    logs = stderr_path.read_text() + audit.read_text()
    assert_no_phi(logs, "server stderr and audit log")
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [line["tool"] for line in lines] == [name for name, _, _ in CALLS]
    assert lines[2]["model_sha256"] and lines[2]["outcome"] == "assessed"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_streamable_http_subprocess(models_dir: Path, data_root: Path, tmp_path: Path) -> None:
    from mcp import Client

    port = _free_port()
    audit = tmp_path / "audit.jsonl"
    with open(tmp_path / "stderr.txt", "w") as errlog:
        process = subprocess.Popen([sys.executable, *_serve_arguments(models_dir, data_root, audit), "--http",
                                    "--port", str(port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "stderr.txt").read_text()
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.3)

        async def main() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=120) as client:
                await _exercise(client)

        anyio.run(main)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert_no_phi((tmp_path / "stderr.txt").read_text() + audit.read_text(), "HTTP server logs")


def test_http_binds_loopback_unless_told(models_dir: Path, data_root: Path) -> None:
    from mayo_dx.cli import build_parser

    arguments = build_parser().parse_args(["serve", "--models", str(models_dir), "--data-root", str(data_root), "--http"])
    assert arguments.host == "127.0.0.1"
    assert build_parser().parse_args(["serve", "--models", "m", "--data-root", "d", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_serve_refuses_a_missing_root(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mayo_dx.cli import main

    assert main(["serve", "--models", str(models_dir), "--data-root", str(tmp_path / "absent")]) == 2
    assert "not an existing folder" in capsys.readouterr().err
