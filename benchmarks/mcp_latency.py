"""What MCP adds to a call: the same small SELECT through ``POST /api/execute`` and through the MCP
``query`` tool (``POST /api/mcp`` with the official ``mcp`` client), interleaved, and ``tools/list``
and ``explain`` alone.

    .venv/bin/python benchmarks/mcp_latency.py [--runs 50]

Starts its own dev stack on free ports in a temporary folder. One MCP client session (stateless
server: each call is one HTTP POST, answered as JSON); one REST client. Wall clock at the client,
so both include the devhost's HTTP front end. The MCP figure pays the SDK's request parsing and
validation, the tool's input model and the text rendering on top of the REST path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from approval_latency import percentiles

from devhost.stack import DevStack, Ports

SQL = "SELECT id, email FROM customers WHERE id < 4 ORDER BY id"


async def measure(stack: DevStack, runs: int) -> dict[str, dict[str, float]]:
    token = stack.token("devin", lifetime=3600)
    auth = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {"rest_execute": [], "mcp_query": [], "mcp_tools_list": [], "mcp_explain": []}
    async with httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(60)) as http, \
            streamable_http_client(f"{stack.base_url}/api/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session, httpx.AsyncClient(base_url=stack.base_url, timeout=60) as rest:
        await session.initialize()
        body = {"target": "demo-postgres", "sql": SQL}
        calls = {
            "rest_execute": lambda: rest.post("/api/execute", json=body, headers=auth),
            "mcp_query": lambda: session.call_tool("query", body),
            "mcp_tools_list": lambda: session.list_tools(),
            "mcp_explain": lambda: session.call_tool("explain", body),
        }
        for call in calls.values():  # warm-up: imports (the SDK is imported on the first MCP call), pools
            await call()
        for _ in range(runs):
            for name, call in calls.items():
                started = time.perf_counter()
                answer = await call()
                times[name].append((time.perf_counter() - started) * 1000)
                if name == "rest_execute":
                    assert answer.status_code == 200, answer.text
                elif name != "mcp_tools_list":
                    assert answer.is_error is False, answer
    return {name: percentiles(samples) for name, samples in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        stack = DevStack(Path(tmp), Ports.free(), quiet=True)
        stack.start()
        try:
            report = asyncio.run(measure(stack, args.runs))
        finally:
            stack.stop()
    print(json.dumps({"runs": args.runs, **{k: {m: round(v, 1) for m, v in x.items()} for k, x in report.items()}},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
