"""Load test of the MCP server over streamable HTTP (loopback only, bounded).

Starts ``mayo-dx serve --http`` on a free loopback port, then (1) fires ``--concurrent``
``analyze_ecg`` calls at once, each from its own MCP client session, and checks all succeed;
(2) makes ``--calls`` sequential calls on one session, reading the server's resident memory
(``/proc/PID/status`` VmRSS) after the first 10% and at the end. Prints p50/p95 latency and
the RSS growth as JSON.

Usage (the issue's figures):
    .venv/bin/python benchmarks/llm_load.py --models MODELS_DIR --data-root DATA_ROOT \\
        --path ecg/record.hea --concurrent 50 --calls 1000
Smoke mode: ``--concurrent 4 --calls 20``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _one_call(url: str, path: str) -> tuple[float, str]:
    from mcp import Client

    started = time.perf_counter()
    async with Client(url, read_timeout_seconds=300) as client:
        result = await client.call_tool("analyze_ecg", {"path": path})
    return time.perf_counter() - started, result.structured_content["status"]


async def _run(url: str, path: str, concurrent: int, calls: int, pid: int) -> dict:
    from mcp import Client

    outcomes: list[tuple[float, str]] = []

    async def worker() -> None:
        outcomes.append(await _one_call(url, path))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrent):
            group.start_soon(worker)
    burst_s = time.perf_counter() - started
    latencies: list[float] = []
    rss_early = None
    async with Client(url, read_timeout_seconds=300) as client:
        for index in range(calls):
            begin = time.perf_counter()
            result = await client.call_tool("analyze_ecg", {"path": path})
            latencies.append(time.perf_counter() - begin)
            assert result.structured_content["status"] in ("assessed", "abstained"), result.structured_content
            if index == max(1, calls // 10):
                rss_early = _rss_mb(pid)
    rss_end = _rss_mb(pid)
    latencies.sort()

    def quantile(values: list[float], q: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)

    burst = sorted(value for value, _ in outcomes)
    return {
        "concurrent_calls": concurrent,
        "concurrent_ok": sum(status in ("assessed", "abstained") for _, status in outcomes),
        "concurrent_wall_s": round(burst_s, 2),
        "concurrent_p50_ms": quantile(burst, 0.5), "concurrent_p95_ms": quantile(burst, 0.95),
        "sequential_calls": calls, "sequential_p50_ms": quantile(latencies, 0.5),
        "sequential_p95_ms": quantile(latencies, 0.95),
        "server_rss_mb_after_10pct": None if rss_early is None else round(rss_early, 1),
        "server_rss_mb_end": round(rss_end, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--path", required=True, help="ECG path relative to the data root")
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--max-concurrent", type=int, default=4, help="server call slots")
    arguments = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mayo_dx.cli", "serve", "--http", "--port", str(port), "--models",
                               arguments.models, "--data-root", arguments.data_root, "--threads", "1",
                               "--max-concurrent", str(arguments.max_concurrent)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.3)
        report = anyio.run(_run, f"http://127.0.0.1:{port}/mcp", arguments.path, arguments.concurrent, arguments.calls,
                           server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(report, indent=2))
    return 0 if report["concurrent_ok"] == arguments.concurrent else 1


if __name__ == "__main__":
    raise SystemExit(main())
